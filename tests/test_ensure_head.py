"""``kanban_migrate.ensure_head``: what the application could call on every connect."""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corruption as C
from support import dir_state, pragma_rows, rows, sha256, tables
from kanban_migrate import ensure, head
from kanban_migrate.errors import BoardBusy, CorruptBoard, ExitCode, MissingBoard, NotABoard
from kanban_migrate.upgrading import upgrade

ensure_head = ensure.ensure_head


def as_the_application_left_it(path: Path) -> None:
    """A fresh v7 fixture after the application's own connect: old event kinds renamed, every
    running task with its run (the application does both on every first connect)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for old, new in head.EVENT_KIND_RENAMES.items():
        conn.execute("UPDATE task_events SET kind = ? WHERE kind = ?", (new, old))
    conn.execute("UPDATE tasks SET status = 'todo' WHERE status = 'running' AND current_run_id IS NULL")
    conn.execute("COMMIT")
    conn.close()


def everything(path: Path) -> dict:
    return {t: rows(path, t) for t in tables(path)}


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_at_head_nothing_is_written(kanban_board, mode):
    path = kanban_board("v2b", tasks=120, name="kanban.db")
    upgrade(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={mode}")
    conn.close()
    before, mtime, listing = sha256(path), path.stat().st_mtime_ns, dir_state(path.parent)
    time.sleep(0.01)
    for _ in range(3):
        assert ensure_head(path) == "current"
    assert sha256(path) == before and path.stat().st_mtime_ns == mtime
    assert dir_state(path.parent) == listing  # no -wal, -shm, lock file or backup made


def test_at_head_beside_a_writer_holding_the_write_lock(kanban_board):
    """Answered from the stamp: a writer in its transaction does not make it wait."""
    path = kanban_board("v1", tasks=120, name="kanban.db")
    upgrade(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE tasks SET priority = priority + 1")
    try:
        started = time.monotonic()
        assert ensure_head(path, busy_timeout=5) == "current"
        assert time.monotonic() - started < 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_the_at_head_path_imports_the_standard_library_only(kanban_board):
    path = kanban_board("v0", tasks=120, name="kanban.db")
    upgrade(path)
    code = ("import sys, kanban_migrate\n"
            f"assert kanban_migrate.ensure_head({str(path)!r}) == 'current'\n"
            "heavy = [m for m in ('sqlalchemy', 'alembic', 'click', 'rich') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_legacy_board_is_upgraded(kanban_board):
    path = kanban_board("v1", tasks=120, name="kanban.db")
    before = everything(path)
    assert ensure_head(path) == "upgraded"
    assert pragma_rows(path, "integrity_check") == [("ok",)]
    assert [r["version_num"] for r in rows(path, "alembic_version")] == [head.HEAD]
    assert len(rows(path, "tasks")) == len(before["tasks"])
    assert len(list(path.parent.glob("kanban.db.pre-upgrade.*.bak"))) == 1
    digest = sha256(path)
    assert ensure_head(path) == "current" and sha256(path) == digest


def test_an_unstamped_board_already_at_head_is_only_stamped(tmp_path, kanban_board):
    path = kanban_board("v7", tasks=120, seed=4, name="kanban.db")
    as_the_application_left_it(path)
    before, mode = everything(path), pragma_rows(path, "journal_mode")
    assert ensure_head(path) == "stamped"
    after = everything(path)
    assert [r["version_num"] for r in after.pop("alembic_version")] == [head.HEAD]
    assert after == before  # every row of every table as it was
    assert pragma_rows(path, "journal_mode") == mode
    assert not list(tmp_path.glob("*.bak"))  # no backup was needed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kanban.db", "kanban.db.init.lock"]
    assert ensure_head(path) == "current"


def test_an_unstamped_head_board_with_pending_data_changes_is_upgraded(tmp_path, kanban_board):
    path = kanban_board("v7", tasks=120, seed=4, name="kanban.db")  # old event kinds, running tasks without runs
    assert ensure_head(path) == "upgraded"
    assert not [e for e in rows(path, "task_events") if e["kind"] in head.EVENT_KIND_RENAMES]
    assert all(t["current_run_id"] for t in rows(path, "tasks") if t["status"] == "running")
    assert len(list(tmp_path.glob("kanban.db.pre-upgrade.*.bak"))) == 1


def test_a_malformed_board_is_refused_untouched(kanban_board):
    path = kanban_board("v2b", tasks=120, name="kanban.db")
    C.overwrite_leaf(path, "tasks", random.Random(5))
    before = sha256(path)
    with pytest.raises(CorruptBoard) as info:
        ensure_head(path)
    assert info.value.code == ExitCode.REFUSED and "recover" in info.value.hint
    assert sha256(path) == before
    # nothing but the application's own init lock beside it: no backup, no -wal/-shm
    assert sorted(p.name for p in path.parent.iterdir()) == ["kanban.db", "kanban.db.init.lock"]


def test_not_a_board_is_refused_before_anything_is_made(tmp_path):
    path = tmp_path / "kanban.db"
    path.write_bytes(b"not a database at all" * 100)
    state = dir_state(tmp_path)
    with pytest.raises(NotABoard):
        ensure_head(path)
    assert dir_state(tmp_path) == state


def test_missing_board_is_created_unless_told_not_to(tmp_path):
    path = tmp_path / "boards" / "kanban.db"
    with pytest.raises(MissingBoard):
        ensure_head(path, create=False)
    assert list(tmp_path.iterdir()) == []
    assert ensure_head(path) == "created"
    assert [r["version_num"] for r in rows(path, "alembic_version")] == [head.HEAD]
    assert ensure_head(path) == "current"


def hold_init_lock(path: str, ready, release) -> None:
    import fcntl

    fd = os.open(path + ensure.INIT_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    release.wait(30)
    os.close(fd)


def test_the_application_initialising_the_board_makes_it_wait_then_refuse(kanban_board):
    path = kanban_board("v0", tasks=120, name="kanban.db")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=hold_init_lock, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        before = sha256(path)
        started = time.monotonic()
        with pytest.raises(BoardBusy):
            ensure_head(path, busy_timeout=0.4)
        assert 0.3 < time.monotonic() - started < 5
        assert sha256(path) == before and not list(path.parent.glob("*.bak"))
    finally:
        release.set()
        holder.join(30)
    assert ensure_head(path) == "upgraded"


def call_ensure_head(path: str, start, out) -> None:
    start.wait(30)
    try:
        out.put(ensure_head(path, busy_timeout=60))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(repr(exc))


def test_concurrent_callers_upgrade_once(kanban_board):
    path = kanban_board("v1", tasks=300, name="kanban.db")
    tasks = len(rows(path, "tasks"))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=call_ensure_head, args=(str(path), start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert results == ["current", "current", "current", "upgraded"]
    assert [r["version_num"] for r in rows(path, "alembic_version")] == [head.HEAD]
    assert len(rows(path, "tasks")) == tasks
    assert len(list(path.parent.glob("kanban.db.pre-upgrade.*.bak"))) == 1
    assert pragma_rows(path, "integrity_check") == [("ok",)]


def test_stamping_waits_for_the_write_lock_then_refuses(kanban_board):
    path = kanban_board("v7", tasks=40, seed=4, name="kanban.db")
    as_the_application_left_it(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        before = sha256(path)
        started = time.monotonic()
        with pytest.raises(BoardBusy):
            ensure_head(path, busy_timeout=0.3)
        assert time.monotonic() - started >= 0.25
        assert sha256(path) == before and "alembic_version" not in tables(path)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert ensure_head(path) == "stamped"


def test_a_hot_journal_left_by_a_killed_writer_is_rolled_back_not_refused(tmp_path, kanban_board):
    """A DELETE board whose writer died mid-transaction: its -journal must be rolled back by a
    read-write connection (as the application's connect does); a read-only one cannot."""
    live = kanban_board("v7", tasks=300, journal_mode="delete", name="live/kanban.db")
    upgrade(live)
    committed = rows(live, "tasks")
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA cache_size=1")  # spill the change into the main file
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE tasks SET body = 'half-written'")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-journal"):  # the files as a kill -9 leaves them
        (crashed / ("kanban.db" + suffix)).write_bytes(Path(str(live) + suffix).read_bytes())
    writer.execute("ROLLBACK")
    writer.close()
    path = crashed / "kanban.db"
    assert ensure_head(path) == "current"
    assert not (crashed / "kanban.db-journal").exists()
    assert rows(path, "tasks") == committed  # the half-written transaction is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the board another owner")
def test_the_init_lock_made_here_belongs_to_the_board_s_owner(kanban_board):
    """The application (running as the board's owner) must still be able to open the lock file."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    path = kanban_board("v0", tasks=120, name="kanban.db")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    os.chmod(path, 0o640)
    assert ensure_head(path) == "upgraded"
    lock = Path(str(path) + ensure.INIT_LOCK_SUFFIX)
    st = lock.stat()
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert st.st_mode & 0o777 == 0o640
