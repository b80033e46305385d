"""recover must never make things worse: the adversarial suite of issue 8.

Each case tries to make ``recover`` lose data, change a file it does not own, leave files behind,
run SQL that a damaged file supplies, race a live application, or crash on a hostile machine, and
asserts the outcome: rows intact, files unchanged (sha256 and listings), modes and owners kept,
one line and a documented exit code on refusal, and a readable board at the path at every moment.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

import corruption as C
from support import STRACE, dir_state, kill_at, sha256
from kanban_migrate.errors import BoardBusy, ExitCode, UsageError
from kanban_migrate.recovering import recover

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (tmpfs mounts, chown, setpriv)")


# ---- helpers --------------------------------------------------------------------------------------
def cli(*args, cwd=None, preexec=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, preexec_fn=preexec, timeout=timeout)


def refused(proc, code: int) -> str:
    """One line ``kanban-migrate: ...`` on stderr and the exit code."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kanban-migrate: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)


def task_ids(path: Path) -> set[str]:
    conn = ro(path)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM tasks")}
    finally:
        conn.close()


def app_ids(path: Path) -> set[str]:
    """Task ids read as the application reads them (a read-write connection)."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM tasks")}
    finally:
        conn.close()


def integrity(path: Path) -> list:
    conn = ro(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def ours_left(folder: Path) -> list[str]:
    """Files of this tool's own making still in ``folder`` (work folders, images, journals)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".kanban-recover-", ".kanban-migrate-")))


@pytest.fixture
def damaged(tmp_path, kanban_board_template):
    """A v7 board (120 tasks) with its task_events root page zeroed, alone in a folder."""
    folder = tmp_path / "home"
    folder.mkdir()
    board = folder / "kanban.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    C.zero_root(board, "task_events", random.Random(1))
    return board


# ---- data and files it must never destroy --------------------------------------------------------
def test_an_existing_workdir_is_never_removed(damaged, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "keep.txt").write_text("mine")
    (mine / "sub" / "deep.bin").write_bytes(b"\x00" * 100)
    before = dir_state(mine)
    report = recover(damaged, workdir=mine)
    assert report.code in (0, 1)
    assert dir_state(mine) == before


def test_workdir_dot_in_the_boards_folder_keeps_the_folder(damaged):
    folder = damaged.parent
    (folder / "notes.txt").write_text("keep me")
    backup = folder / "kanban.db.pre-upgrade.0123456789abcdef.bak"
    shutil.copyfile(damaged, backup)
    others = {n: sha256(folder / n) for n in ("notes.txt", backup.name)}
    proc = cli("recover", "--workdir", ".", "kanban.db", cwd=folder)
    assert proc.returncode in (0, 1), proc.stderr
    assert {n: sha256(folder / n) for n in others} == others
    assert integrity(damaged) == [("ok",)] and len(task_ids(damaged)) == 120
    assert ours_left(folder) == []


def test_workdir_on_another_file_system(damaged, tmpfs, tmp_path):
    mnt = tmpfs("64m")
    out = tmp_path / "rescued.db"
    report = recover(damaged, workdir=mnt, output=out)
    assert report.code in (0, 1) and len(task_ids(out)) == 120
    report = recover(damaged, workdir=mnt)
    assert report.code in (0, 1)
    assert integrity(damaged) == [("ok",)] and len(task_ids(damaged)) == 120
    assert Path(report.original).exists()
    assert list(mnt.iterdir()) == []


def test_the_fresh_quarantine_copy_survives_pruning(damaged):
    future = time.time() + 3600
    for i in range(10):
        p = damaged.with_name(f"kanban.db.corrupt.{i:016x}.bak")
        p.write_bytes(b"old")
        os.utime(p, (future + i, future + i))
    report = recover(damaged)
    assert Path(report.original).exists()
    assert len(list(damaged.parent.glob("kanban.db.corrupt.*.bak"))) <= 10


@pytest.mark.parametrize("target", ["an existing file", "the board, with --output", "the board, in place",
                                    "the same path as --output"])
def test_dump_never_overwrites(damaged, tmp_path, target):
    other = tmp_path / "precious.sql"
    other.write_text("precious")
    args = {"an existing file": ["--dump", other, "--output", tmp_path / "o.db"],
            "the board, with --output": ["--dump", damaged, "--output", tmp_path / "o.db"],
            "the board, in place": ["--dump", damaged],
            "the same path as --output": ["--dump", tmp_path / "same.db", "--output", tmp_path / "same.db"]}[target]
    state = dir_state(tmp_path)
    refused(cli("recover", damaged, *args), ExitCode.USAGE)
    assert dir_state(tmp_path) == state


def test_a_failed_final_checkpoint_is_never_taken_for_a_board(tmp_path, kanban_board_template):
    from kanban_migrate.recovering.final import check_final, final_checkpoint

    db = tmp_path / "rebuilt.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE tasks SET title = title || '!'")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM tasks").fetchone()  # pins the WAL: the checkpoint cannot finish
    writer.execute("UPDATE tasks SET title = title || '?'")
    with pytest.raises(Exception, match="final checkpoint did not complete"):
        final_checkpoint(db, new_board=True)
    reader.close()
    writer.close()
    short = tmp_path / "short.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), short)
    C.cut_tail(short, C.page_size(short))
    assert "header says" in check_final(short)
    assert check_final(kanban_board_template("v7", 120, 1)) is None


def unchanged_or_whole(proc, says: str, board: Path, state: dict, must_fail: bool = False) -> None:
    """Exit 5 saying ``says`` with the board's folder as it was (``state``), or a whole board of
    120 tasks with nothing of the run left in its folder."""
    if proc.returncode == ExitCode.ENVIRONMENT or must_fail:
        assert says in refused(proc, ExitCode.ENVIRONMENT)
        assert dir_state(board.parent) == state
    else:
        assert proc.returncode in (0, 1), proc.stderr
        assert integrity(board) == [("ok",)] and len(task_ids(board)) == 120
        assert ours_left(board.parent) == []


@pytest.mark.parametrize("fraction", [0.5, 1.0, 1.3])
def test_file_size_limit(damaged, fraction):
    """EFBIG at any point: exit 5 with nothing changed, or a whole board."""
    folder = damaged.parent
    state = dir_state(folder)
    limit = int(damaged.stat().st_size * fraction)

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = cli("recover", damaged, preexec=cap)
    unchanged_or_whole(proc, "file-size limit", damaged, state)


@pytest.mark.parametrize("room", [1.5, 2.6, 3.6, 4.6, 6.5])
def test_disk_full(tmpfs, kanban_board_template, room):
    """ENOSPC at whichever step the space runs out: exit 5 with nothing changed, or a whole board."""
    src = kanban_board_template("v7", 120, 1)
    mnt = tmpfs(f"{int(src.stat().st_size * room) // 4096 * 4096}")
    board = mnt / "kanban.db"
    shutil.copyfile(src, board)
    C.zero_root(board, "task_events", random.Random(1))
    state = dir_state(mnt)
    proc = cli("recover", board)
    unchanged_or_whole(proc, "space", board, state, must_fail=room < 2)


def test_read_only_folder(tmpfs, kanban_board_template, tmp_path):
    mnt = tmpfs("64m")
    board = mnt / "kanban.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    C.zero_root(board, "task_events", random.Random(1))
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    state = dir_state(mnt)
    refused(cli("recover", board), ExitCode.ENVIRONMENT)
    assert dir_state(mnt) == state
    out = tmp_path / "rescued.db"
    proc = cli("recover", board, "--output", out)
    assert proc.returncode in (0, 1), proc.stderr
    assert len(task_ids(out)) == 120 and dir_state(mnt) == state


def test_names_with_uri_characters(tmp_path, kanban_board_template):
    folder = tmp_path / "a?b#c%20d"
    folder.mkdir()
    board = folder / "k?a#n%25.db"
    plain = tmp_path / "plain.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), plain)
    C.zero_root(plain, "task_events", random.Random(1))
    plain.rename(board)
    out, dump = folder / "o?#%.db", folder / "d?#%.sql"
    proc = cli("recover", board, "--output", out, "--dump", dump)
    assert proc.returncode in (0, 1), proc.stderr
    assert len(task_ids(out)) == 120 and dump.stat().st_size > 0
    proc = cli("recover", board)
    assert proc.returncode in (0, 1), proc.stderr
    assert len(task_ids(board)) == 120 and ours_left(folder) == []


def test_a_name_near_255_bytes(tmp_path, kanban_board_template):
    board = tmp_path / ("k" * 248 + ".db")
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    C.zero_root(board, "task_events", random.Random(1))
    state = dir_state(tmp_path)
    assert "too long" in refused(cli("recover", board), ExitCode.REFUSED)
    assert dir_state(tmp_path) == state
    out = tmp_path / ("o" * 247 + ".db")  # 250 bytes: its -wal and -shm still fit
    proc = cli("recover", board, "--output", out)
    assert proc.returncode in (0, 1), proc.stderr
    assert len(task_ids(out)) == 120


@pytest.mark.parametrize("where", ["in place", "--output"])
def test_a_fifo_beside_the_board_is_refused_not_opened(damaged, tmp_path, where):
    os.mkfifo(str(damaged) + "-journal")
    state = dir_state(damaged.parent)
    args = ["--output", tmp_path / "o.db"] if where == "--output" else []
    assert "FIFO" in refused(cli("recover", damaged, *args, timeout=60), ExitCode.REFUSED)
    assert dir_state(damaged.parent) == state and not (tmp_path / "o.db").exists()


def test_holes_are_not_copied_dense(damaged):
    hole = 64 << 20
    C.grow(damaged, hole)
    if damaged.stat().st_blocks * 512 >= hole:
        pytest.skip("this file system does not keep holes")
    report = recover(damaged, keep_workdir=True)
    work = Path(report.workdir)
    for p in [*work.iterdir(), Path(report.original)]:
        assert p.stat().st_blocks * 512 < 8 << 20, p
    shutil.rmtree(work)


# ---- SQL a damaged file supplies is never run or written -----------------------------------------
def test_schema_rows_of_a_crafted_file_never_run(tmp_path, kanban_board_template):
    board, other = tmp_path / "kanban.db", tmp_path / "other.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    shutil.copyfile(kanban_board_template("v7", 50, 2), other)
    C.hostile_schema(board, other)
    before = sha256(other)
    out, dump = tmp_path / "out.db", tmp_path / "salvage.sql"
    report = recover(board, output=out, dump=dump)
    assert sha256(other) == before
    assert len(task_ids(out)) == 120
    conn = ro(out)
    assert conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall() == []
    assert [r[1] for r in conn.execute("PRAGMA table_info(notes)")] == ["id", "body"]
    conn.close()
    script = dump.read_text()
    for text in ("ATTACH", "o.tasks", "TRIGGER", "INJECTED", "DELETE FROM tasks"):
        assert text not in script, text
    assert any("zz_ix0" in d for d in report.dropped)
    c = sqlite3.connect(tmp_path / "replayed.db")
    c.executescript(script)
    assert c.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 120


def test_a_declared_type_never_adds_a_column():
    from kanban_migrate.salvage.sqlschema import create_table_sql, parse_create_table

    td = parse_create_table('CREATE TABLE t(id INTEGER PRIMARY KEY, b "TEXT) , INJECTED INT CHECK (0)", c TEXT(20))')
    sql, dropped = create_table_sql(td)
    conn = sqlite3.connect(":memory:")
    conn.execute(sql)
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "b", "c"]
    assert "INJECTED" not in sql and "CHECK" not in sql and dropped


# ---- live boards ---------------------------------------------------------------------------------
WRITER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA wal_autocheckpoint=20")
print("ready", flush=True)
i = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    conn.execute("BEGIN IMMEDIATE")
    for _ in range(20):
        conn.execute("INSERT INTO tasks (id, title, status, created_at, body) VALUES (?, 'live', 'todo', 1, ?)",
                     (f"t_{i:08x}", "x" * 3000))
        i += 1
    conn.execute("COMMIT")
print(i, flush=True)
"""


def test_output_of_a_live_healthy_board_is_one_snapshot(kanban_board, tmp_path):
    board = kanban_board("v7", tasks=120, name="kanban.db")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(board), "6"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        for n in range(3):
            before = len(task_ids(board))
            out = tmp_path / f"out{n}.db"
            proc = cli("recover", "--json", "--output", out, board)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["mode"] in ("healthy", "wal-only")
            assert integrity(out) == [("ok",)]
            assert len(task_ids(out)) >= before
    finally:
        writer.wait(timeout=60)


APP = r"""
import sqlite3, sys
for i in range(int(sys.argv[2])):
    conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("INSERT INTO tasks (id, title, status, created_at) VALUES (?, ?, 'todo', 1)", (f"t_a{i:07x}", f"app {i}"))
    conn.close()
"""


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_in_place_writes_during_the_run_are_kept(damaged, mode):
    from kanban_migrate.recovering.swapjournal import journal_path

    conn = sqlite3.connect(damaged, isolation_level=None)
    assert conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode
    conn.close()

    run = subprocess.Popen([sys.executable, "-m", "kanban_migrate", "recover", str(damaged)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not journal_path(damaged).exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert journal_path(damaged).exists(), "the run should hold the board while it works"
    app = subprocess.run([sys.executable, "-c", APP, str(damaged), "20"], capture_output=True, text=True, timeout=120)
    assert app.returncode == 0, app.stderr
    assert run.wait(timeout=120) in (0, 1), run.stderr.read()
    ids = task_ids(damaged)
    assert {f"t_a{i:07x}" for i in range(20)} <= ids and len(ids) == 140
    assert integrity(damaged) == [("ok",)]


def test_a_second_hard_link_is_refused_in_place(damaged, tmp_path):
    os.link(damaged, tmp_path / "alias.db")
    state = dir_state(damaged.parent)
    assert "hard links" in refused(cli("recover", damaged), ExitCode.BUSY)
    assert dir_state(damaged.parent) == state
    proc = cli("recover", damaged, "--output", tmp_path / "out.db")
    assert proc.returncode in (0, 1), proc.stderr
    proc = cli("recover", damaged, "--assume-idle")
    assert proc.returncode in (0, 1), proc.stderr
    assert len(task_ids(tmp_path / "alias.db")) == 120  # the other name sees the rebuilt board too


@needs_root
def test_another_users_board_is_refused_in_place(tmp_path, kanban_board_template):
    """As a user who cannot list another user's open files, that user's board cannot be proven idle."""
    from kanban_migrate.recovering import run as run_module  # every step's module loaded before dropping root
    from kanban_migrate.recovering import inuse, load, snapshot, swap, triage  # noqa: F401

    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kanban-shared-"))  # outside pytest's root-only folders
    request_cleanup = shutil.rmtree
    os.chmod(folder, 0o777)
    board = folder / "kanban.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    C.zero_root(board, "task_events", random.Random(1))
    os.chmod(board, 0o666)
    os.chown(board, 12345, 12345)
    state = dir_state(folder)
    os.seteuid(65534)
    try:
        with pytest.raises(BoardBusy, match="cannot inspect") as refusal:
            run_module.recover(board)
    finally:
        os.seteuid(0)
    assert "--output" in refusal.value.line()
    assert dir_state(folder) == state
    report = recover(board, output=folder / "out.db")
    assert report.code in (0, 1) and len(task_ids(folder / "out.db")) == 120
    request_cleanup(folder)


# ---- ownership, privacy, damaged text ------------------------------------------------------------
@needs_root
def test_modes_and_owner_follow_the_board(damaged, tmp_path):
    os.chmod(damaged, 0o600)
    os.chown(damaged, 12345, 23456)
    ino = damaged.stat().st_ino
    report = recover(damaged, dump=tmp_path / "d.sql", keep_workdir=True)
    made = [Path(report.original), tmp_path / "d.sql", damaged]
    work = Path(report.workdir)
    made += list(work.iterdir())
    for p in made:
        st = p.stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 12345, 23456), p
    st = work.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, 12345)
    assert damaged.stat().st_ino == ino
    out = tmp_path / "o.db"
    recover(Path(report.original), output=out)
    assert (out.stat().st_mode & 0o777, out.stat().st_uid) == (0o600, 12345)


def test_invalid_utf8_is_kept_losslessly(tmp_path, kanban_board_template):
    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), board)
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("CREATE TABLE scratch(a TEXT, b TEXT)")
    for i in range(300):
        conn.execute("INSERT INTO scratch VALUES (CAST(X'66ff80c3' AS TEXT), ?)", (f"row {i} " * 20,))
    conn.close()
    C.forget_table(board, "scratch")  # its pages now belong to no table
    C.zero_root(board, "task_events", random.Random(3))
    report = recover(board)
    assert report.code in (0, 1) and report.lost_and_found
    conn = ro(board)
    values = [v for row in conn.execute("SELECT * FROM lost_and_found") for v in row[6:]]
    conn.close()
    assert b"f\xff\x80\xc3" in values  # the bytes as they were, as a BLOB
    assert len(task_ids(board)) == 120


def test_partial_rows_are_listed():
    from kanban_migrate.recovering.load import load
    from kanban_migrate.recovering.report import RecoverReport

    class PartialRow(tuple):
        rowid = property(lambda s: s[0])
        values = property(lambda s: s[1])
        source = "btree"
        page = 7
        partial = True
        partial_columns = ["body"]

    rows = iter([PartialRow((1, ("t_0001", "half a bo")))])
    table = SimpleNamespace(columns=["id", "body"], rows=rows, sql="CREATE TABLE notes(id TEXT, body TEXT)",
                            shape=None, rowid_alias=None, without_rowid=False, unreadable_cells=0, orphan_rows=0,
                            missing_subtrees=0, freelist_rows=0, freeblock_rows=0, source_path=None)
    result = SimpleNamespace(tables={"notes": table}, lost_and_found=iter([]), schema=[])
    report = RecoverReport("x")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        assert load(result, Path(d) / "b.db", report, {}) == 1
    assert report.partial_rows == [{"table": "notes", "key": 1, "columns": ["body"]}]
    assert report.rows_lost and any("readable part" in line for line in report.lines())


# ---- crashes: a kill at every rename/fsync/unlink of the swap ------------------------------------
def _victim(folder: Path, src: Path) -> Path:
    """A damaged WAL board whose -wal holds commits no checkpoint has seen (a killed writer)."""
    folder.mkdir()
    board = folder / "kanban.db"
    shutil.copyfile(src, board)
    C.zero_root(board, "task_events", random.Random(1))
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("BEGIN")
    for i in range(30):
        conn.execute("INSERT INTO tasks (id, title, status, created_at) VALUES (?, ?, 'todo', 1)",
                     (f"t_w{i:07x}", f"wal {i}"))
    conn.execute("COMMIT")
    snap = folder.parent / (folder.name + "-files")
    snap.mkdir()
    for s in ("", "-wal"):
        shutil.copyfile(str(board) + s, snap / ("kanban.db" + s))
    conn.close()
    shutil.rmtree(folder)
    snap.rename(folder)
    return board


SYSCALLS = ("rename", "link", "unlink", "fsync")


def _kill_points(trace: str) -> list[tuple[str, int]]:
    """(syscall, n), n counting that syscall from the start of the run as strace's when= does:
    every rename (the journal's versions and the swap itself), every call right around the swap's
    rename, and a spread of the links, unlinks and fsyncs from the swap image on (building it,
    keeping the original aside, the clean-up)."""
    counts = dict.fromkeys(SYSCALLS, 0)
    renames, ordered, swapping = [], [], False
    for line in trace.splitlines():
        call = line.split(" ", 1)[-1].split("(", 1)[0].strip()
        if call not in counts or "resumed>" in line:
            continue
        counts[call] += 1
        swapping = swapping or ".image" in line
        if call == "rename":
            renames.append((call, counts[call]))
        if swapping:
            ordered.append((call, counts[call]))
    swap_at = ordered.index(renames[-1])
    around = ordered[max(0, swap_at - 2): swap_at + 5]
    spread = ordered[:: max(1, len(ordered) // 4)]
    return list(dict.fromkeys(renames + around + spread))


@pytest.mark.skipif(not STRACE, reason="needs strace for fault injection")
def test_a_kill_anywhere_in_the_swap_loses_nothing(tmp_path, kanban_board_template):
    from kanban_migrate.board import check_file, journal_mode_for
    from kanban_migrate.recovering.swapjournal import journal_path

    src = kanban_board_template("v7", 120, 1)
    dry = _victim(tmp_path / "dry", src)
    want = task_ids(dry)
    trace = tmp_path / "trace"
    cmd = [sys.executable, "-m", "kanban_migrate", "recover", str(dry)]
    subprocess.run([STRACE, "-f", "-qq", "-o", str(trace), "-e", "trace=" + ",".join(SYSCALLS), *cmd],
                   check=True, capture_output=True, timeout=300)
    points = _kill_points(trace.read_text())
    assert len(points) >= 8 and ("rename", 4) in points, points
    for k, (call, n) in enumerate(points):
        folder = tmp_path / f"k{k}"
        board = _victim(folder, src)
        original = {p.name: sha256(p) for p in folder.iterdir()}
        killed = subprocess.run([*kill_at(call, n), sys.executable, "-m", "kanban_migrate", "recover", str(board)],
                                capture_output=True, timeout=300)
        assert killed.returncode != 0, (call, n)
        untouched = all((folder / p).exists() and sha256(folder / p) == h for p, h in original.items())
        # the board at the path is always readable as the application opens it, with every committed row
        assert app_ids(board) >= want, (call, n)
        try:
            swapped = integrity(board) == [("ok",)]  # the rebuilt board (the original is damaged)
        except sqlite3.DatabaseError:
            swapped = False
        assert swapped or untouched, (call, n)  # before its swap, the run changed nothing
        journaled = journal_path(board).exists()
        # the application writes, then any later command settles the run
        app = subprocess.run([sys.executable, "-c", APP, str(board), "1"], capture_output=True, text=True)
        assert app.returncode == 0, (call, n, app.stderr)
        if k % 4 == 0:
            later = cli("status", board)
            assert "Traceback" not in later.stderr, later.stderr
        else:  # the same hook every command's file check runs, without a new interpreter
            check_file(board)
        assert ours_left(folder) == [], (call, n)
        assert task_ids(board) >= want | {"t_a0000000"}, (call, n)
        if swapped and journaled:  # settled as an uninterrupted run ends: a new board's journal mode
            conn = ro(board)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == (journal_mode_for("delete") or "delete")
            conn.close()
        if k % 5 == 0:  # and a whole run afterwards still works
            again = cli("recover", board)
            assert again.returncode in (0, 1), (call, n, again.stderr)
            assert task_ids(board) >= want | {"t_a0000000"}, (call, n)
            assert integrity(board) == [("ok",)] and ours_left(folder) == []
        shutil.rmtree(folder)


def test_a_live_runs_journal_means_busy(damaged):
    from kanban_migrate.recovering.swapjournal import journal_path

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
        journal_path(damaged).write_text(json.dumps({"board": str(damaged), "pid": sleeper.pid, "start": start,
                                                     "phase": "work", "planned": [], "made": []}))
        with pytest.raises(BoardBusy, match="in progress"):
            recover(damaged)
    finally:
        sleeper.kill()
        sleeper.wait()
    recover(damaged)  # the run is dead: its journal is settled first
    assert not journal_path(damaged).exists()


def test_output_path_that_exists_is_refused(damaged, tmp_path):
    out = tmp_path / "exists.db"
    out.write_text("x")
    with pytest.raises(UsageError):
        recover(damaged, output=out)
    assert out.read_text() == "x"


def test_a_planted_journal_removes_nobodys_files(damaged, tmp_path):
    from kanban_migrate.board import check_file
    from kanban_migrate.recovering.swapjournal import journal_path

    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    before = sha256(damaged)
    journal_path(damaged).write_text(json.dumps({"board": str(damaged), "pid": 2 ** 22 + 7, "start": "1",
                                                 "phase": "work", "made": [str(precious), str(damaged)],
                                                 "planned": [str(damaged) + "-wal"]}))
    check_file(damaged)
    assert precious.read_text() == "mine" and sha256(damaged) == before
    assert not journal_path(damaged).exists()


def test_a_hot_journal_is_rolled_back_before_the_salvage(tmp_path, kanban_board_template):
    """A writer killed mid-transaction leaves uncommitted pages in the main file and the originals
    in its -journal: the recovered board holds the committed rows, never the half-written ones."""
    src = tmp_path / "src.db"
    shutil.copyfile(kanban_board_template("v7", 120, 1), src)
    conn = sqlite3.connect(src, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    C.zero_root(src, "task_events", random.Random(1))
    folder = tmp_path / "crashed"
    folder.mkdir()
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("PRAGMA cache_size=1")  # spill: the main file gets the uncommitted pages
    writer.execute("BEGIN")
    writer.execute("UPDATE tasks SET title = title || ' (never committed)'")
    for suffix in ("", "-journal"):
        shutil.copyfile(str(src) + suffix, folder / ("kanban.db" + suffix))
    writer.execute("ROLLBACK")
    writer.close()
    board = folder / "kanban.db"
    report = recover(board)
    assert report.code in (0, 1)
    conn = ro(board)
    titles = [r[0] for r in conn.execute("SELECT title FROM tasks")]
    conn.close()
    assert len(titles) == 120 and not [t for t in titles if t.endswith("(never committed)")]
    assert integrity(board) == [("ok",)]
    assert not Path(str(board) + "-journal").exists()
