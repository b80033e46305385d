"""pytest plugin (entry point ``pytest11``): legacy kanban boards for any project's tests.

    def test_my_app_opens_old_boards(kanban_board):
        path = kanban_board(shape="v0", tasks=200, seed=1)   # a fresh board in tmp_path
        ...

    def test_every_shape(legacy_board):                     # parametrized over every shape
        assert legacy_board.exists()

The shapes are the ones ``kanban-migrate fixtures list`` prints; boards are built on demand
(deterministic for a given shape, size and seed) and copied, so each test gets its own file. Each
board is in the journal mode the application of its releases left it in (under the running
SQLite: a board made by a release of July or later is DELETE where SQLite has the WAL-reset bug);
``journal_mode="wal"`` or ``"delete"`` asks for one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _shapes() -> list[str]:
    from kanban_migrate.fixtures import shapes

    return list(shapes())


@pytest.fixture(scope="session")
def _kanban_board_cache(tmp_path_factory):
    built: dict[tuple, Path] = {}
    base = tmp_path_factory.mktemp("kanban-boards")

    def get(shape: str, tasks: int, seed: int, journal_mode: str | None = None) -> Path:
        from kanban_migrate.fixtures import create

        key = (shape, tasks, seed, journal_mode)
        if key not in built:
            path = base / f"{shape}-{tasks}-{seed}-{journal_mode or 'app'}.db"
            create(path, shape, tasks=tasks, seed=seed, journal_mode=journal_mode)
            built[key] = path
        return built[key]

    return get


@pytest.fixture
def kanban_board(tmp_path, _kanban_board_cache):
    """Factory: ``kanban_board(shape="v0", tasks=200, seed=1, name=None, journal_mode=None)``
    returns the path of a fresh board of that shape in ``tmp_path``."""
    count = 0

    def make(shape: str = "v0", tasks: int = 200, seed: int = 1, name: str | None = None,
             journal_mode: str | None = None) -> Path:
        nonlocal count
        count += 1
        dest = tmp_path / (name or f"kanban-{shape}-{count}.db")
        shutil.copyfile(_kanban_board_cache(shape, tasks, seed, journal_mode), dest)
        return dest

    return make


def pytest_generate_tests(metafunc):
    if "legacy_board" in metafunc.fixturenames:
        metafunc.parametrize("legacy_board_shape", _shapes(), ids=_shapes())


@pytest.fixture
def legacy_board_shape(request):
    return request.param


@pytest.fixture
def legacy_board(kanban_board, legacy_board_shape) -> Path:
    """A board of each historical shape in turn (200 tasks, seed 1)."""
    return kanban_board(shape=legacy_board_shape, tasks=200, seed=1, name="kanban.db")
