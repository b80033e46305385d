"""Where the swap journal of a board lives (:mod:`.swap`). Kept apart and nearly import-free,
because every command's file check looks for it: the cost there is two ``stat`` calls."""

from __future__ import annotations

import os
import zlib
from pathlib import Path


def journal_path(board: Path) -> Path:
    """``.kanban-migrate-<crc32 and length of the board's name>.swap`` beside the board: a
    fixed-length name, whatever the board's name (the journal itself names its board)."""
    name = os.fsencode(board.name)
    return board.parent / f".kanban-migrate-{zlib.crc32(name):08x}{len(name):04x}.swap"


def next_journal_path(board: Path) -> Path:
    """Where the journal's next version is written before it is renamed over the journal."""
    return Path(f"{journal_path(board)}-new")


def pending(board: Path) -> bool:
    """A recover run left a swap journal (or the first version of one) beside the board."""
    return os.path.exists(journal_path(board)) or os.path.exists(next_journal_path(board))
