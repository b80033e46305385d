"""Step 3 of recover: on a copy, checkpoint the WAL and ask SQLite's integrity check what is wrong.

Healthy after the checkpoint means the WAL only needed checkpointing; damage in indexes only is
repaired with ``REINDEX``; anything else means salvage.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def integrity_lines(path: Path) -> tuple[list[str] | None, str | None, tuple | None]:
    """Checkpoint the copy at ``path`` and run integrity_check: (problem lines, error, checkpoint)."""
    from ..verifying.checks import result_lines

    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            ckpt = None
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                ckpt = tuple(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            lines = result_lines(conn.execute("PRAGMA integrity_check"))
            return lines, None, ckpt
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        from .files import environment_cause

        if environment_cause(exc) and "disk i/o" not in str(exc).lower():
            raise  # the machine failed, not the board
        return None, str(exc), None
    except sqlite3.Error as exc:
        return None, str(exc), None


def index_only(lines: list[str]) -> bool:
    from ..verifying.checks import _INDEX_ONLY

    return bool(lines) and all(_INDEX_ONLY.match(line) for line in lines)
