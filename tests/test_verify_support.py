"""Helpers for the verify tests: boards of every shape, planted problems, file digests."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

from kanban_migrate.pytest_plugin import board_template


def upgrade(path: Path) -> None:
    try:
        from kanban_migrate.upgrading import upgrade as _upgrade
    except ImportError:  # pragma: no cover - before the public API existed
        _upgrade = None
    if _upgrade is not None:
        _upgrade(path, backup=False)
        return
    from alembic import command  # pragma: no cover

    from kanban_migrate.upgrading.chain import make_config, make_engine  # pragma: no cover

    eng = make_engine(path)  # pragma: no cover
    with eng.connect() as c:  # pragma: no cover
        command.upgrade(make_config(connection=c), "head")
    eng.dispose()  # pragma: no cover


def make_board(tmp_path: Path, shape: str = "v7", *, tasks: int = 40, seed: int = 11, at_head: bool = True,
               name: str = "kanban.db", journal_mode: str = "wal") -> Path:
    path = tmp_path / name
    shutil.copyfile(board_template(shape, tasks, seed, journal_mode), path)
    if at_head:
        upgrade(path)
    checkpoint(path)
    if journal_mode.lower() == "delete":  # whatever the upgrade's journal-mode rule
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
    return path


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file and leave no sidecars (a board nobody has open)."""
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode == "wal":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def plant(path: Path, *statements: str, params=()) -> None:
    """Run statements on the board the way a buggy client would (foreign keys off), then checkpoint."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN")
        for stmt in statements:
            conn.execute(stmt, params) if params else conn.execute(stmt)
        conn.execute("COMMIT")
    finally:
        conn.close()
    checkpoint(path)


def query(path: Path, sql: str, params=()):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def findings(report, check=None, severity=None, table=None):
    return [f for f in report.findings
            if (check is None or f.check == check) and (severity is None or f.severity == severity)
            and (table is None or f.table == table)]
