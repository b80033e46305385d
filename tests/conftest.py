"""Fixtures, and the session's one setup step: the engine pytest-alembic's built-in tests run
against. Boards come from the project's own pytest plugin (``kanban_board``, ``kanban_board_template``: kanban_migrate/pytest_plugin.py);
helpers are in ``support.py``, damage recipes in ``corruption.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kanban_migrate.upgrading.chain import make_config, make_engine


def pytest_configure(config):
    """The suite runs the command line in hundreds of child processes. An installed package has
    its modules compiled (and head's facts kept, :mod:`kanban_migrate.headfacts`); a source tree
    on a machine that sets ``PYTHONDONTWRITEBYTECODE`` (this workplace does) has neither, and each
    child would compile the package again (a fifth of the suite's CPU). So the session compiles
    them once, first, as an install does. Children then have nothing to write: a test that kills at
    the N-th rename must count only the command's own renames, never a compiled module saved."""
    if hasattr(config, "workerinput"):  # xdist workers: the controlling process did it
        return
    import compileall

    from kanban_migrate import headfacts
    from support import ROOT

    for folder in ("kanban_migrate", "alembic"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    headfacts.keep()


@pytest.fixture
def alembic_config():
    return make_config()


@pytest.fixture
def alembic_engine(tmp_path):
    engine = make_engine(tmp_path / "alembic-builtin.db", busy_timeout=5)
    yield engine
    engine.dispose()


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size, name="mnt")`` -> a fresh tmpfs of ``size`` (mount's ``size=``: "16m",
    "256k", bytes) mounted at ``tmp_path/name``, for disk-full tests; unmounted afterwards.
    Skips where tmpfs cannot be mounted (not root, no mount)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root and mount")
    mounted: list[Path] = []

    def mount(size: str, name: str = "mnt") -> Path:
        where = tmp_path / name
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)

