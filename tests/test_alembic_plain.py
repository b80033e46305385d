"""Plain ``alembic -x db=PATH upgrade head`` (the README advertises it) has the safety of
``kanban-migrate upgrade``: the same refusals in one line, no board made without ``-x create=1``,
the pre-upgrade backup, Alembic's usual log lines, and no traceback for ``downgrade base``."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

from support import ROOT, dir_state, stamps
from corruption import garble_index

ALEMBIC = Path(sys.executable).with_name("alembic")


def alembic(*args):
    return subprocess.run([str(ALEMBIC), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_upgrade_logs_backs_up_and_reaches_head(kanban_board):
    path = kanban_board("v0", tasks=120, name="kanban.db")
    proc = alembic("-x", f"db={path}", "upgrade", "head")
    assert proc.returncode == 0, proc.stderr
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> v0" in proc.stderr
    assert "Running upgrade v6 -> v7" in proc.stderr and "backup: " in proc.stderr
    assert stamps(path) == ["v7"]
    assert len(list(path.parent.glob("kanban.db.pre-upgrade.*.bak"))) == 1


def test_a_damaged_board_is_refused_unchanged_in_one_line(kanban_board_template, tmp_path):
    path = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v0", 200, 3), path)
    garble_index(path, "idx_events_task", random.Random(1))
    before = dir_state(tmp_path)
    proc = alembic("-x", f"db={path}", "upgrade", "head")
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"kanban-migrate: {path}: board fails PRAGMA quick_check") and "recover" in proc.stderr
    assert dir_state(tmp_path) == before  # no revision committed, no backup


def test_a_missing_board_is_made_only_when_asked(tmp_path):
    path = tmp_path / "kanban.db"
    for command in (("upgrade", "head"), ("current",)):
        proc = alembic("-x", f"db={path}", *command)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"kanban-migrate: {path}: no such file (check the path, or pass -x create=1 "
                                       "to 'alembic upgrade' to make a new board)")
        assert not list(tmp_path.iterdir())
    made = alembic("-x", f"db={path}", "-x", "create=1", "upgrade", "head")
    assert made.returncode == 0, made.stderr
    assert stamps(path) == ["v7"]


def test_downgrade_below_the_base_is_one_line(kanban_board):
    from kanban_migrate.upgrading import upgrade

    path = kanban_board("v5", tasks=120, name="kanban.db")
    upgrade(path, backup=False)
    before = dir_state(path.parent)
    proc = alembic("-x", f"db={path}", "downgrade", "base")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"kanban-migrate: {path}: v0 is the base of the chain")
    assert dir_state(path.parent) == before
