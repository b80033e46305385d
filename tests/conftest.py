"""Shared test helpers, and the engine pytest-alembic's built-in tests run against."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from kanban_migrate import fixtures as fx
from kanban_migrate.upgrading.chain import make_config, make_engine

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "sqlite-forensic-corpus-v2.0"


# ---- pytest-alembic ------------------------------------------------------------------------------
@pytest.fixture
def alembic_config():
    return make_config()


@pytest.fixture
def alembic_engine(tmp_path):
    engine = make_engine(tmp_path / "alembic-builtin.db", busy_timeout=5)
    yield engine
    engine.dispose()


# ---- boards ---------------------------------------------------------------------------------------
_CACHE: dict[tuple, Path] = {}


@pytest.fixture(scope="session")
def board_cache(tmp_path_factory):
    """Build each (shape, tasks, seed) board once per session; tests get copies."""
    base = tmp_path_factory.mktemp("boards")

    def get(shape: str, tasks: int = 120, seed: int = 1) -> Path:
        key = (shape, tasks, seed)
        if key not in _CACHE:
            path = base / f"{shape}-{tasks}-{seed}.db"
            fx.create(path, shape, tasks=tasks, seed=seed)
            _CACHE[key] = path
        return _CACHE[key]

    return get


@pytest.fixture
def make_board(board_cache, tmp_path):
    """``make_board(shape, tasks=120, seed=1, name="kanban.db")`` -> a fresh copy in tmp_path."""

    def make(shape: str, tasks: int = 120, seed: int = 1, name: str = "kanban.db") -> Path:
        dest = tmp_path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(board_cache(shape, tasks, seed), dest)
        return dest

    return make


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dir_state(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` with its hash: a refusal must leave this unchanged."""
    return {
        str(p.relative_to(directory)): (sha256(p) if p.is_file() else "<dir>")
        for p in sorted(Path(directory).rglob("*"))
    }


def rows(path: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT rowid AS _rowid_, * FROM "{table}" ORDER BY rowid')]
    except sqlite3.OperationalError:  # WITHOUT ROWID
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    finally:
        conn.close()


def pragma_rows(path: Path, pragma: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchall()
    finally:
        conn.close()
