"""Fixtures: the boards tests work on, and the engine pytest-alembic's built-in tests run against.
Helpers are in ``support.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kanban_migrate import fixtures as fx
from kanban_migrate.upgrading.chain import make_config, make_engine

# test_cli.py (issue 11's) still imports these from here.
from support import CORPUS, ROOT, dir_state, pragma_rows, rows, sha256, tables  # noqa: E402,F401


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
