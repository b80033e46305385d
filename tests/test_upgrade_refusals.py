"""Bad input: one line saying why and what to do, a documented exit code, no traceback, and the
input byte-for-byte unchanged."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import dir_state
from kanban_migrate.errors import ExitCode


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _not_sqlite(d: Path) -> Path:
    p = d / "kanban.db"
    p.write_bytes(b"this is not a database\n" * 50)
    return p


def _header_overwritten(d: Path, make_board) -> Path:
    p = make_board("v2b")
    data = bytearray(p.read_bytes())
    data[:16] = b"GIF89a\x01\x00\x01\x00\x00\xff\x00,\x00\x00"
    p.write_bytes(bytes(data))
    return p


def _magic_only(d: Path) -> Path:
    p = d / "kanban.db"
    p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20)
    assert p.stat().st_size == 36
    return p


def _other_app(d: Path) -> Path:
    p = d / "kanban.db"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    c.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
    c.commit()
    c.close()
    return p


def _directory(d: Path) -> Path:
    p = d / "kanban.db"
    p.mkdir()
    return p


def _missing(d: Path) -> Path:
    return d / "nothing-here" / "kanban.db"


def _corrupt(d: Path, make_board) -> Path:
    p = make_board("v1", tasks=300)
    conn = sqlite3.connect(p)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='task_events'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(p.read_bytes())
    # Garbage over the table's interior root page (its cell pointers point nowhere sane).
    data[(root - 1) * page + 8:(root - 1) * page + 200] = os.urandom(192)
    p.write_bytes(bytes(data))
    return p


def _newer(d: Path, make_board) -> Path:
    p = make_board("v7")
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    c.execute("INSERT INTO alembic_version VALUES ('v9')")
    c.commit()
    c.close()
    return p


def _empty(d: Path) -> Path:
    p = d / "kanban.db"
    p.write_bytes(b"")
    return p


CASES = {
    "not-a-database": (_not_sqlite, ExitCode.REFUSED, "not a SQLite database"),
    "header-overwritten": (_header_overwritten, ExitCode.REFUSED, "not a SQLite database"),
    "magic-only-36-bytes": (_magic_only, ExitCode.REFUSED, "truncated"),
    "another-application": (_other_app, ExitCode.REFUSED, "not a kanban board"),
    "directory": (_directory, ExitCode.REFUSED, "is a directory"),
    "missing": (_missing, ExitCode.USAGE, "no such file"),
    "corrupt": (_corrupt, ExitCode.REFUSED, "recover"),
    "newer-revision": (_newer, ExitCode.REFUSED, "does not know"),
    "zero-bytes": (_empty, ExitCode.REFUSED, "--create"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refusal(case, tmp_path, make_board):
    build, code, words = CASES[case]
    try:
        path = build(tmp_path, make_board)
    except TypeError:
        path = build(tmp_path)
    before = dir_state(tmp_path)
    proc = run_cli("upgrade", path)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert words in lines[0]
    assert lines[0].startswith("kanban-migrate: ")
    assert dir_state(tmp_path) == before
    assert not path.exists() if case == "missing" else True


def test_locked_board_is_refused_after_the_busy_timeout(tmp_path, make_board):
    path = make_board("v1")
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
