"""upgrade refusals that need a second process or a flag (the bad-input matrix across every command
is tests/test_bad_input_matrix.py): one line saying why and what to do, a documented exit code, no
traceback, and the input byte-for-byte unchanged."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time


from support import dir_state
from kanban_migrate.errors import ExitCode


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_locked_board_is_refused_after_the_busy_timeout(tmp_path, kanban_board):
    path = kanban_board("v1", tasks=120, name="kanban.db")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = dir_state(tmp_path)
        started = time.monotonic()
        proc = run_cli("upgrade", "--busy-timeout", "1", path)
        assert time.monotonic() - started < 30
        assert proc.returncode == ExitCode.BUSY, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "locked" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert dir_state(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


def test_create_makes_a_board_at_head(tmp_path):
    path = tmp_path / "new" / "kanban.db"
    proc = run_cli("upgrade", "--create", path)
    assert proc.returncode == 0, proc.stderr
    assert "created at head" in proc.stdout
    c = sqlite3.connect(path)
    assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [("v7",)]
    c.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert run_cli("upgrade", "--create", empty).returncode == 0
    assert run_cli("upgrade", empty).stdout.strip().endswith("nothing to do")
