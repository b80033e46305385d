"""Fixtures only: the engine pytest-alembic's built-in tests run against. Boards come from the
project's own pytest plugin (``kanban_board``, ``kanban_board_template``: kanban_migrate/pytest_plugin.py);
helpers are in ``support.py``, damage recipes in ``corruption.py``."""

from __future__ import annotations

import pytest

from kanban_migrate.upgrading.chain import make_config, make_engine


@pytest.fixture
def alembic_config():
    return make_config()


@pytest.fixture
def alembic_engine(tmp_path):
    engine = make_engine(tmp_path / "alembic-builtin.db", busy_timeout=5)
    yield engine
    engine.dispose()
