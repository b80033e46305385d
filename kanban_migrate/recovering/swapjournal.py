"""Where the swap journal of a board lives (:mod:`.swap`). Kept apart and nearly import-free,
because every command's file check looks for it: the cost there is one ``stat``."""

from __future__ import annotations

import os
import zlib
from pathlib import Path


def journal_path(board: Path) -> Path:
    """``.kanban-migrate-<crc32 and length of the board's name>.swap`` beside the board: a
    fixed-length name, whatever the board's name (the journal itself names its board)."""
    name = os.fsencode(board.name)
    return board.parent / f".kanban-migrate-{zlib.crc32(name):08x}{len(name):04x}.swap"
