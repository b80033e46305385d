"""verify beside a live application, with a full TMPDIR, on a locked board: a check that cannot run
is never reported as damage, verify never writes, and nothing it makes is left behind.

The writer is a separate process with the application's connection settings (spec section 2). To
make "the application starts writing while the check runs" certain rather than lucky, a hook starts
it from inside the integrity check and waits until it has committed (and, on a WAL board,
checkpointed into the main file) before the check reads anything.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kanban_migrate.verifying import access, checks, verify
from test_verify_support import digest, findings, listing, make_board

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

WRITER = r"""
import os, sqlite3, sys, time
path, ready, stop = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlite3.connect(path, timeout=120, isolation_level=None)
from kanban_migrate.board import APP_PRAGMAS  # the application's settings
for p in ("busy_timeout=120000", "foreign_keys=ON", *APP_PRAGMAS):
    conn.execute("PRAGMA " + p)
wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
n = 0
def commit():
    global n
    n += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO tasks (id, title, body, status, created_at) VALUES (?, 'live', ?, 'todo', 1)",
                 (f"t_live{os.getpid()}_{n}", os.urandom(1500).hex()))
    conn.execute("INSERT INTO task_events (task_id, kind, payload, created_at) VALUES (?, 'created', '{}', 1)",
                 (f"t_live{os.getpid()}_{n}",))
    conn.execute("COMMIT")
for _ in range(40):
    commit()
if wal:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the dispatcher's checkpoint: the main file changes
open(ready, "w").write(str(n))
while not os.path.exists(stop):
    commit()
    time.sleep(0.002)
conn.close()
"""


class Writer:
    """The application, writing: started on demand, stopped at the end of the test."""

    def __init__(self, board: Path, work: Path):
        self.board, self.ready, self.stop = board, work / "writer.ready", work / "writer.stop"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(self.board), str(self.ready), str(self.stop)])
        deadline = time.monotonic() + 60
        while wait and not self.ready.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.01)

    def finish(self) -> None:
        if self.proc is not None:
            self.stop.write_text("stop")
            assert self.proc.wait(timeout=60) == 0


@pytest.fixture
def writer(tmp_path):
    made = []

    def make(board: Path) -> Writer:
        w = Writer(board, tmp_path)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.proc is not None and w.proc.poll() is None:
            w.stop.write_text("stop")
            w.proc.wait(timeout=60)


def start_inside_the_check(monkeypatch, w: Writer) -> None:
    """The writer starts (and commits) after the check opened the board, before it reads."""
    original = checks.check_integrity
    started = threading.Event()

    def hooked(conn, **kw):
        if not started.is_set():
            started.set()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the board is open and read
            w.start()
        return original(conn, **kw)

    monkeypatch.setattr(checks, "check_integrity", hooked)


def damage(report):
    return [(f.check, f.message) for f in report.findings
            if f.severity in ("error", "warning") and f.check in ("file", "integrity", "data")]


def notes(report):
    return " | ".join(f.message for f in report.findings if f.severity == "info")


# ---- a writer starts during the check -----------------------------------------------------------------
@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_writer_that_starts_during_the_check_is_no_damage(tmp_path, monkeypatch, writer, journal_mode):
    """Issue 10: a WAL board at rest was read immutable; the application's checkpoint during the
    check made 15 of 15 runs report "malformed" or index damage. Now the change is noticed and the
    board read again (live WAL; a DELETE board from a snapshot)."""
    path = make_board(tmp_path, tasks=300, journal_mode=journal_mode)
    w = writer(path)
    start_inside_the_check(monkeypatch, w)
    report = verify(path)
    w.finish()
    assert report.ok, damage(report)
    assert "changed while it was checked" in notes(report)
    if journal_mode == "delete":
        assert "snapshot" in notes(report)
    assert listing(tmp_path) == sorted(["kanban.db", "writer.ready", "writer.stop"])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_a_writer_racing_the_check_never_makes_damage(tmp_path, writer):
    """The race as the application makes it: no hook, the writer starts just after verify."""
    path = make_board(tmp_path, tasks=1500)
    for i in range(3):
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", verify(path)))
        t.start()
        time.sleep(0.02 * i)
        w = writer(path)
        w.start(wait=False)
        t.join()
        w.finish()
        (tmp_path / "writer.stop").unlink()
        (tmp_path / "writer.ready").unlink(missing_ok=True)
        assert result["r"].ok, damage(result["r"])


def test_a_board_that_never_stops_changing_is_not_checked_exit_4(tmp_path, monkeypatch):
    path = make_board(tmp_path, journal_mode="delete")
    monkeypatch.setattr(access.View, "unchanged", lambda self: False)
    before = (digest(path), listing(tmp_path))
    report = verify(path)
    assert report.ok is None and report.exit_code == 4
    assert f"each of {access.ATTEMPTS}" in report.not_checked.reason
    assert not findings(report, "integrity") and not findings(report, "data") and not findings(report, "schema")
    assert (digest(path), listing(tmp_path)) == before


# ---- every way of reading is read-only ----------------------------------------------------------------
def _first_attempt_changed(monkeypatch):
    """The first reading counts as changed: the second is a snapshot (DELETE) or a fresh read."""
    calls = []
    real = access.View.unchanged

    def once(self):
        calls.append(self.mode)
        return False if len(calls) == 1 else real(self)

    monkeypatch.setattr(access.View, "unchanged", once)
    return calls


def _no_room(monkeypatch):
    def full(facts, need):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(access, "_private_dir", full)


@pytest.mark.parametrize("case", ["wal at rest", "wal, empty -wal, no -shm", "delete watched", "delete snapshot",
                                  "delete in place", "wal live", "wal private copy"])
def test_every_way_of_reading_leaves_the_board_as_it_was(tmp_path, monkeypatch, case):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    mode = "delete" if case.startswith("delete") else "wal"
    path = make_board(board_dir, journal_mode=mode)
    keep = None
    if case == "wal, empty -wal, no -shm":
        (board_dir / "kanban.db-wal").write_bytes(b"")
    if case == "wal live":
        keep = sqlite3.connect(path, isolation_level=None)
        keep.execute("PRAGMA wal_autocheckpoint=0")
        keep.execute("UPDATE tasks SET title = title || '!' WHERE rowid <= 3")
    if case == "wal private copy":
        src = make_board(tmp_path, name="src.db")
        keep = sqlite3.connect(src, isolation_level=None)
        keep.execute("PRAGMA wal_autocheckpoint=0")
        keep.execute("UPDATE tasks SET title = title || '!' WHERE rowid <= 3")
        path.write_bytes(src.read_bytes())
        (board_dir / "kanban.db-wal").write_bytes(Path(str(src) + "-wal").read_bytes())
    calls = _first_attempt_changed(monkeypatch) if case in ("delete snapshot", "delete in place") else []
    if case == "delete in place":
        _no_room(monkeypatch)
    # A live WAL's -shm is shared memory that every reader writes its read mark into: not the board.
    files = sorted(p for p in board_dir.iterdir() if not p.name.endswith("-shm"))
    names = listing(board_dir)
    before = [(p.name, digest(p), p.stat().st_mtime_ns) for p in files]
    report = verify(path)
    if case == "wal private copy":  # a -wal with commits and no -shm is itself worth a warning
        assert [f.message for f in report.warnings if "no -shm" not in f.message] == [] and not report.errors
    else:
        assert report.ok, damage(report)
    assert [(p.name, digest(p), p.stat().st_mtime_ns) for p in files] == before and listing(board_dir) == names
    if keep is not None:
        keep.close()
    assert listing(tmp) == []  # no snapshot or private copy left behind
    if case == "delete snapshot":
        assert calls == ["watched", "snapshot"] and "snapshot" in notes(report)
    if case == "delete in place":
        assert calls == ["watched", "in place"] and "checked in place" in notes(report)
    if case == "wal private copy":
        assert "private copy" in notes(report)


# ---- TMPDIR without room, a file-size limit ------------------------------------------------------------
def _cli(*args, env=None, preexec_fn=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", "verify", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, preexec_fn=preexec_fn, timeout=timeout,
                          cwd=ROOT)


@pytest.fixture
def small_tmpfs(tmpfs):
    return tmpfs("256k", "small-tmp")


def _wal_without_shm(tmp_path) -> Path:
    """A WAL board whose -wal holds commits and has no -shm: it can only be read from a copy."""
    src = make_board(tmp_path, tasks=120, name="src.db")
    keep = sqlite3.connect(src, isolation_level=None)
    keep.execute("PRAGMA wal_autocheckpoint=0")
    keep.execute("UPDATE tasks SET title = title || '!' WHERE rowid <= 5")
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    path = board_dir / "kanban.db"
    path.write_bytes(src.read_bytes())
    (board_dir / "kanban.db-wal").write_bytes(Path(str(src) + "-wal").read_bytes())
    keep.close()
    return path


def test_tmpdir_without_room_is_exit_5_not_damage_and_leaves_nothing(tmp_path, small_tmpfs):
    path = _wal_without_shm(tmp_path)
    before = [(p.name, digest(p)) for p in sorted(path.parent.iterdir())]
    res = _cli("--json", path, env={"TMPDIR": str(small_tmpfs)})
    assert res.returncode == 5, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"kanban-migrate: {path}: ") and "TMPDIR" in line
    report = json.loads(res.stdout)
    assert report["ok"] is None and report["not_checked"]["code"] == 5
    assert not [f for f in report["findings"] if f["check"] in ("integrity", "data", "schema")]
    assert [(p.name, digest(p)) for p in sorted(path.parent.iterdir())] == before  # no -shm made
    assert listing(small_tmpfs) == []


def test_a_copy_cut_short_by_a_file_size_limit_is_exit_5_and_removed(tmp_path):
    """The room check passes, the copy fails half-way (EFBIG): the partial copy goes too."""
    path = _wal_without_shm(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    limit = path.stat().st_size // 2
    res = _cli(path, env={"TMPDIR": str(tmp)},
               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert res.returncode == 5, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "too large" in res.stderr.lower()
    assert res.stdout == "" and listing(tmp) == []


def test_a_delete_board_without_room_for_a_snapshot_is_checked_in_place(tmp_path, monkeypatch, writer, small_tmpfs):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(small_tmpfs))
    path = make_board(tmp_path, tasks=300, journal_mode="delete")
    w = writer(path)
    start_inside_the_check(monkeypatch, w)
    report = verify(path)
    w.finish()
    assert report.ok, damage(report)
    assert "checked in place" in notes(report) and listing(small_tmpfs) == []


# ---- locks -------------------------------------------------------------------------------------------
HOLDER = r"""
import sqlite3, sys, time, os
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute(sys.argv[2])
conn.execute("INSERT INTO task_comments (task_id, author, body, created_at) VALUES ('t', 'a', 'b', 1)")
open(sys.argv[3], "w").write("held")
while not os.path.exists(sys.argv[4]):
    time.sleep(0.01)
conn.execute("ROLLBACK")
"""


@pytest.fixture
def holder(tmp_path):
    procs = []

    def hold(path: Path, begin: str):
        held, stop = tmp_path / f"held-{len(procs)}", tmp_path / f"release-{len(procs)}"
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), begin, str(held), str(stop)])
        procs.append((proc, stop))
        deadline = time.monotonic() + 30
        while not held.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)

    yield hold
    for proc, stop in procs:
        stop.write_text("go")
        proc.wait(timeout=30)


def test_a_locked_board_is_exit_4_in_one_line_not_an_integrity_error(tmp_path, holder):
    path = make_board(tmp_path, journal_mode="delete")
    before = digest(path)
    holder(path, "BEGIN EXCLUSIVE")
    started = time.monotonic()
    res = _cli("--busy-timeout", "0.5", path)
    assert time.monotonic() - started < 30
    assert res.returncode == 4, (res.stdout, res.stderr)
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"kanban-migrate: {path}: ") and "locked" in line and "--busy-timeout" in line
    assert "integrity" not in res.stdout + res.stderr and res.stdout == ""
    report = json.loads(_cli("--json", "--busy-timeout", "0.2", path).stdout)
    assert report["ok"] is None and report["not_checked"]["code"] == 4
    assert all(f["check"] == "file" for f in report["findings"])
    assert digest(path) == before


def test_a_writer_in_its_transaction_does_not_stop_the_check(tmp_path, holder):
    """A RESERVED lock (a transaction that has written but not committed) lets readers in."""
    path = make_board(tmp_path, journal_mode="delete")
    holder(path, "BEGIN IMMEDIATE")
    res = _cli("--busy-timeout", "0.5", path)
    assert res.returncode == 0, (res.stdout, res.stderr)


def _mend_and_compare(path, copy):
    """Mend ``copy`` against the board at ``path`` as verify does under its read lock; the copy
    must then equal the board byte for byte."""
    watch = access._watch(path, 5)
    src, dst = os.open(path, os.O_RDONLY), os.open(copy, os.O_RDWR)
    try:
        access._mend_locked(watch, src, dst)
    finally:
        watch.close()
        os.close(src)
        os.close(dst)
    assert digest(copy) == digest(path)

def test_a_mended_snapshot_is_the_board_byte_for_byte(tmp_path):
    """The copy taken while a writer committed is mended under one lock into an exact copy,
    whether the board grew, shrank or changed in place."""
    path = make_board(tmp_path, tasks=200, journal_mode="delete")
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE tasks SET title = 'changed' WHERE rowid % 7 = 0")
    conn.execute("INSERT INTO task_comments (task_id, author, body, created_at) "
                 "SELECT id, 'a', hex(randomblob(3000)), 1 FROM tasks")  # grows the file
    conn.close()
    _mend_and_compare(path, copy)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM task_comments")
    conn.execute("VACUUM")  # shrinks it
    conn.close()
    _mend_and_compare(path, copy)


def test_an_interrupted_snapshot_leaves_nothing_in_tmpdir(tmp_path, monkeypatch):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    path = make_board(tmp_path, journal_mode="delete")
    _first_attempt_changed(monkeypatch)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(access, "copy_range", interrupted)
    with pytest.raises(KeyboardInterrupt):
        verify(path)
    assert listing(tmp) == []


def test_a_change_interrupts_the_watched_check_at_once(tmp_path, monkeypatch, writer):
    """The watched reading is dropped when the board changes, so it is stopped as soon as the
    change is seen: here a statement that would run for minutes is interrupted."""
    monkeypatch.setattr(access, "POLL_SECONDS", 0.02)
    path = make_board(tmp_path, tasks=100, journal_mode="delete")
    w = writer(path)
    original = checks.check_integrity
    seen = []

    def long_check(conn, **kw):
        if not seen:
            w.start()
            try:
                conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000000) "
                             "SELECT count(*) FROM n").fetchone()
                seen.append("ran to the end")
            except sqlite3.OperationalError as exc:
                seen.append(exc.sqlite_errorname)
        return original(conn, **kw)

    monkeypatch.setattr(checks, "check_integrity", long_check)
    report = verify(path)
    w.finish()
    assert seen == ["SQLITE_INTERRUPT"]
    assert report.ok, damage(report)
    assert "changed while it was checked" in notes(report) and "snapshot" in notes(report)
