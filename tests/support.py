"""Helpers the tests share: reading a board without changing it, running statements on one,
hashing files and folders. Fixtures live in ``conftest.py`` (boards come from the project's own
pytest plugin: ``kanban_board``, ``kanban_board_template``); damage recipes in ``corruption.py``."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

from kanban_migrate.board import uri

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "sqlite-forensic-corpus-v2.0"


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(uri(Path(path), mode="ro"), uri=True)


def execute(path: Path, *statements: str) -> None:
    """Run ``statements`` on the board, each committed on its own (autocommit)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dir_state(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` with its hash: a refusal must leave this unchanged."""
    return {
        str(p.relative_to(directory)): (sha256(p) if p.is_file() else "<dir>")
        for p in sorted(Path(directory).rglob("*"))
    }


def rows(path: Path, table: str) -> list[dict]:
    conn = _ro(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT rowid AS _rowid_, * FROM "{table}" ORDER BY rowid')]
    except sqlite3.OperationalError:  # WITHOUT ROWID
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    conn = _ro(path)
    try:
        return [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    finally:
        conn.close()


def pragma_rows(path: Path, pragma: str) -> list[tuple]:
    conn = _ro(path)
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchall()
    finally:
        conn.close()


def stamps(path: Path) -> list[str]:
    """Every ``alembic_version`` row of the board (``[]``: never stamped): exactly one at head
    is ``[HEAD]``."""
    if "alembic_version" not in tables(path):
        return []
    return [r["version_num"] for r in rows(path, "alembic_version")]


STRACE = shutil.which("strace")


def kill_at(call: str, n: int) -> list[str]:
    """The command prefix that runs a command under strace and SIGKILLs it at the ``n``-th call of
    syscall ``call`` (counted from the start of the run). Not ``--seccomp-bpf``, though it would
    make the run about four times faster: strace 6.1 never injects with it."""
    return [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
            "-e", f"inject={call}:signal=KILL:when={n}"]
