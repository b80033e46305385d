"""upgrade, status, boards and backups against hostile boards, faults and live processes (issue 10).

One table drives the cases: each builds a folder, runs one command in a subprocess (as root, or as
``nobody`` where permissions are the point), and asserts the documented exit code, exactly one line
on stderr for a refusal (no traceback, nothing long quoted from the file), the folder byte-for-byte
unchanged (sha256 of every file and the listing) wherever nothing may change, a time bound, and
the case's own outcome (rows intact, triggers kept, no -shm made, no backup left, ...).
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

import corruption as C
from support import STRACE, dir_state, execute, kill_at
from kanban_migrate import head, schema
from kanban_migrate.schema import HEAD_INDEXES, HEAD_NAMES, KANBAN_TABLES
from kanban_migrate.upgrading import upgrade

ROOT = os.geteuid() == 0
ENV = {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}


# ---- helpers ----------------------------------------------------------------------------------------
def one(path: Path, query: str):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return c.execute(query).fetchall()
    finally:
        c.close()


def counts(path: Path) -> dict[str, int]:
    return {t: one(path, f'SELECT count(*) FROM "{t}"')[0][0] for t in ("tasks", "task_comments", "task_events")}


def extras(path: Path) -> list[tuple]:
    return one(path, "SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY name")


def stamp_of(path: Path):
    if not one(path, "SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"):
        return None
    rows = one(path, "SELECT version_num FROM alembic_version")
    return rows[0][0] if rows else None


def at_head(path: Path) -> bool:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return schema.at_head(schema.snapshot(c), head.expected())
    finally:
        c.close()


def as_nobody() -> list[str]:
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def open_folder() -> Path:
    """A folder ``nobody`` can reach (pytest's tmp_path lies under a 0700 folder)."""
    d = Path(tempfile.mkdtemp(prefix="km-issue10-"))
    d.chmod(0o777)
    return d


def wal_without_shm(src: Path, dest: Path) -> None:
    """``dest`` and ``dest-wal`` (holding a committed write) with no ``-shm``: copied while a
    connection keeps the WAL from being checkpointed."""
    work = dest.parent / ".wal-work"
    work.mkdir()
    board = work / "kanban.db"
    shutil.copyfile(src, board)
    c = sqlite3.connect(board, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("INSERT INTO task_comments (task_id, author, body, created_at) "
              "SELECT id, 'wal', 'only in the WAL', 1 FROM tasks LIMIT 1")
    shutil.copyfile(board, dest)
    shutil.copyfile(str(board) + "-wal", str(dest) + "-wal")
    c.close()
    shutil.rmtree(work)


@dataclass
class Case:
    build: Callable  # (folder, make) -> board path (or a dict with "board" and extra keys)
    args: list[str]  # the command; "{db}" is the board, "{dir}" the folder
    code: int | set[int]
    says: str | None = None  # a fragment of the one line (refusal) or of stdout
    unchanged: bool = False  # the folder must be byte-for-byte as it was
    check: Callable | None = None  # (folder, board, proc) -> None, more assertions
    user: str = "root"  # "nobody": run without privileges (root needed to set it up)
    limit: int | None = None  # RLIMIT_FSIZE for the command
    seconds: float = 60.0
    env: dict = field(default_factory=dict)


# ---- builders -----------------------------------------------------------------------------------------
def legacy(shape="v0", tasks=60):
    def build(d, make):
        return make(shape, tasks, d / "kanban.db")
    return build


def with_sql(shape, *statements, tasks=60, at_head_first=False):
    def build(d, make):
        p = make(shape, tasks, d / "kanban.db")
        if at_head_first:
            upgrade(p, backup=False)
        execute(p, *statements)
        return p
    return build


def junk_stamp(value_sql, rows=1):
    def build(d, make):
        p = make("v7", 40, d / "kanban.db")
        upgrade(p, backup=False)
        execute(p, "DROP TABLE alembic_version", "CREATE TABLE alembic_version (version_num)",
            *[f"INSERT INTO alembic_version VALUES ({value_sql})"] * rows)
        return p
    return build


def false_stamp(rev):
    def build(d, make):
        p = make("v0", 60, d / "kanban.db")
        execute(p, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
            f"INSERT INTO alembic_version VALUES ('{rev}')")
        return p
    return build


def hot_journal(d, make):
    p = make("v2b", 60, d / "kanban.db")
    execute(p, "PRAGMA journal_mode=DELETE")
    code = ("import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('PRAGMA cache_size=1'); c.execute('BEGIN'); "
            "c.execute(\"UPDATE tasks SET body = hex(randomblob(3000))\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(p)], check=True)
    assert Path(str(p) + "-journal").stat().st_size > 0
    return p


def fifo_sidecar(suffix):
    def build(d, make):
        p = make("v1", 40, d / "kanban.db")
        os.mkfifo(str(p) + suffix)
        return p
    return build


def odd_name(name):
    def build(d, make):
        return make("v1", 40, d / name)
    return build


def long_name(n):
    def build(d, make):
        return make("v1", 40, d / ("b" * (n - 3) + ".db"))
    return build


def mode_board(mode, folder_mode=0o777, wal=False):
    def build(d, make):
        p = make("v1", 40, d / "kanban.db")
        if wal:
            wal_without_shm(p, d / "w.db")
            os.replace(d / "w.db", p)
            os.replace(d / "w.db-wal", str(p) + "-wal")
            # the -shm an open connection has: present, so a read-write open would checkpoint
            c = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            c.execute("SELECT count(*) FROM tasks").fetchall()
            c.close()
            for f in (Path(str(p) + "-wal"), Path(str(p) + "-shm")):
                if f.exists():
                    f.chmod(0o666)
        p.chmod(mode)
        d.chmod(folder_mode)
        return p
    return build


def reader_lock(d, make):
    p = make("v1", 40, d / "kanban.db")
    execute(p, "PRAGMA journal_mode=DELETE")
    return p


def crafted_type(d, make):
    p = make("drifted", 40, d / "kanban.db")
    execute(p, "ALTER TABLE task_events ADD COLUMN extra \"TEXT) , INJECTED INTEGER CHECK (0\" DEFAULT 5")
    (created,), = one(p, "SELECT sql FROM sqlite_master WHERE name = 'task_events'")
    # a default ALTER TABLE cannot add: parenthesised parts
    C.set_schema_sql(p, "task_events", created[:-1] + ", e2 VARCHAR(10) DEFAULT ((1) + (2)))")
    return p


def stale_tmp(d, make):
    p = make("v1", 40, d / "kanban.db")
    dead = 4194000  # above any pid in use here
    for suffix in ("", "-journal"):
        Path(d / f".kanban.db.pre-upgrade.{dead}.tmp{suffix}").write_bytes(b"a full copy of the rows" * 100)
    Path(d / ".kanban.db.pre-upgrade.notapid.tmp").write_bytes(b"not ours")
    return p


# ---- per-case checks ------------------------------------------------------------------------------------
def rows_and_extras_kept(before_counts, before_extras):
    def check(d, p, proc):
        assert counts(p) == before_counts
        assert extras(p) == before_extras  # kept verbatim, recreated after the rebuild
        assert at_head(p) and one(p, "PRAGMA integrity_check") == [("ok",)]
    return check


def no_backup_no_sidecar(d, p, proc):
    assert not [f for f in os.listdir(d) if ".pre-upgrade." in f or f.endswith(("-wal", "-shm", "-journal"))]


def now_at_head(d, p, proc):
    assert at_head(p) and stamp_of(p) == "v7"
    again = run(["upgrade", str(p)])
    assert again.returncode == 0 and "nothing to do" in again.stdout


def no_shm(d, p, proc):
    assert not Path(str(p) + "-shm").exists()


def saw_the_wal(d, p, proc):
    no_shm(d, p, proc)


def exact_files(*names):
    def check(d, p, proc):
        listing = sorted(os.listdir(d))
        assert [n for n in listing if not n.endswith(".bak")] == sorted(names), listing
        assert len([n for n in listing if n.endswith(".bak")]) == 1, listing
    return check


def crafted_type_kept_harmless(d, p, proc):
    cols = [r[1] for r in one(p, "PRAGMA table_info(task_events)")]
    assert "extra" in cols and "e2" in cols and not any("INJECTED" in c.upper() for c in cols)
    ddl = one(p, "SELECT sql FROM sqlite_master WHERE name = 'task_events'")[0][0]
    assert "CHECK" not in ddl.upper()
    assert one(p, "SELECT count(*) FROM task_events WHERE extra = 5 AND e2 IS NULL") == \
        one(p, "SELECT count(*) FROM task_events")  # the rows' values came through
    info = {r[1]: r for r in one(p, "PRAGMA table_info(task_events)")}
    assert info["extra"][2] == "INTEGER"  # the unsafe type fell back to its affinity
    assert info["e2"][2] == "VARCHAR(10)" and info["e2"][4] == "(1) + (2)"  # the default, whole
    assert at_head(p)


def stale_tmp_gone(d, p, proc):
    names = os.listdir(d)
    assert not [n for n in names if n.startswith(".kanban.db.pre-upgrade.4194000")], names
    assert ".kanban.db.pre-upgrade.notapid.tmp" in names  # not a name it makes: not touched


def committed_as_said(d, p, proc):
    """The hint names exactly the revisions that are committed in the file."""
    line = proc.stderr.strip()
    stamp = stamp_of(p)
    assert "recover" not in line and "damaged" not in line
    if stamp is None:
        assert "nothing was changed" in line and "were applied" not in line
    else:
        revs = ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"]
        assert f"revisions {' '.join(revs[:revs.index(stamp) + 1])} were applied and committed" in line, line
        assert f"consistent at {stamp}" in line
    assert one(p, "PRAGMA integrity_check") == [("ok",)]
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]


def rolled_back_and_upgraded(d, p, proc):
    """SQLite rolled the interrupted write back (as the application's connect would): the bodies it
    was overwriting are the committed ones, and the board is at head."""
    assert not Path(str(p) + "-journal").exists()
    assert one(p, "SELECT count(*) FROM tasks WHERE length(body) = 6000") == [(0,)]
    assert at_head(p) and one(p, "PRAGMA integrity_check") == [("ok",)]


def no_backup_left(d, p, proc):
    assert not [n for n in os.listdir(d) if ".pre-upgrade." in n]


# ---- the table ----------------------------------------------------------------------------------------
def _trigger_case():
    statements = (
        "CREATE TRIGGER wipe_tasks AFTER INSERT ON task_events BEGIN DELETE FROM tasks; END",
        "CREATE TRIGGER wipe_comments AFTER UPDATE ON tasks BEGIN DELETE FROM task_comments; END",
        "CREATE TRIGGER wipe_on_stamp AFTER INSERT ON tasks BEGIN DELETE FROM task_events; END",
        "CREATE VIEW open_tasks AS SELECT id, title FROM tasks WHERE status != 'done'",
    )
    return statements


TRIGGERS = _trigger_case()
REBUILT_EXTRAS = (
    "CREATE VIEW event_log AS SELECT e.id, e.kind, t.title FROM task_events e JOIN tasks t ON t.id = e.task_id",
    "CREATE TRIGGER no_runs AFTER INSERT ON task_runs BEGIN DELETE FROM task_comments; END",
    "CREATE TRIGGER no_events AFTER UPDATE ON task_events BEGIN DELETE FROM tasks; END",
)

CASES: dict[str, Case] = {
    # data lost or silently wrong
    "triggers-never-fire": Case(with_sql("v0", *TRIGGERS), ["upgrade", "{db}"], 0),
    "triggers-views-on-rebuilt-tables": Case(with_sql("drifted", *REBUILT_EXTRAS), ["upgrade", "{db}"], 0),
    "view-named-task_runs": Case(with_sql("v0", "CREATE VIEW task_runs AS SELECT 1 AS id"), ["upgrade", "{db}"], 3,
                                 "view 'task_runs' takes the name", unchanged=True),
    "view-named-alembic_version": Case(with_sql("v1", "CREATE VIEW alembic_version AS SELECT 'v7' AS version_num"),
                                       ["upgrade", "{db}"], 3, "alembic_version is a view", unchanged=True),
    "table-named-like-an-index": Case(with_sql("v0", "CREATE TABLE idx_tasks_session_id (x)"), ["upgrade", "{db}"], 3,
                                      "takes the name", unchanged=True),
    "stamp-integer": Case(junk_stamp("1"), ["upgrade", "{db}"], 3, "holds the integer 1", unchanged=True),
    "stamp-null": Case(junk_stamp("NULL"), ["upgrade", "{db}"], 3, "holds NULL", unchanged=True),
    "stamp-blob": Case(junk_stamp("x'00ff10'"), ["upgrade", "{db}"], 3, "blob", unchanged=True),
    "stamp-1mb": Case(junk_stamp("printf('%.*c', 1000000, 'x')"), ["upgrade", "{db}"], 3, "1000000 characters",
                      unchanged=True),
    "stamp-two-rows": Case(junk_stamp("'v3'", rows=2), ["upgrade", "{db}"], 3, "several rows", unchanged=True),
    "stamp-junk-status": Case(junk_stamp("x'00ff10'"), ["status", "{db}"], 3, "blob", unchanged=True),
    "stamp-junk-sql": Case(junk_stamp("NULL"), ["upgrade", "--sql", "{db}"], 3, "holds NULL", unchanged=True),
    "stamp-junk-check": Case(junk_stamp("printf('%.*c', 1000000, 'x')"), ["upgrade", "--check", "{db}"], 3,
                             "not a revision id", unchanged=True),
    "false-v3-on-v0-status": Case(false_stamp("v3"), ["status", "{db}"], 0, "stamped v3 but the schema lacks",
                                  unchanged=True),
    "false-v3-on-v0-upgrade": Case(false_stamp("v3"), ["upgrade", "{db}"], 0, "stamped v3 but the schema lacks",
                                   check=now_at_head),
    "false-head-stamp-fast-path": Case(false_stamp("v7"), ["upgrade", "--quiet", "{db}"], 0, check=now_at_head),
    "crafted-column-type": Case(crafted_type, ["upgrade", "--no-backup", "{db}"], 0, check=crafted_type_kept_harmless),
    "file-size-limit-at-backup": Case(legacy("v1", 200), ["upgrade", "{db}"], 5, "file-size limit", unchanged=True,
                                      limit=40_000),
    "file-size-limit-mid-way": Case(legacy("drifted", 1500), ["upgrade", "--no-backup", "{db}"], 5,
                                    "file-size limit", check=committed_as_said, limit=1_200_000),
    "hot-journal": Case(hot_journal, ["upgrade", "{db}"], 0, check=rolled_back_and_upgraded),
    "hot-journal-status": Case(hot_journal, ["status", "{db}"], 3, "hot journal", unchanged=True),
    "hot-journal-check": Case(hot_journal, ["upgrade", "--check", "{db}"], 3, "hot journal", unchanged=True),
    # refusals that must change nothing
    "board-0444": Case(mode_board(0o444), ["upgrade", "{db}"], 5, "cannot write kanban.db", unchanged=True,
                       user="nobody", check=no_backup_no_sidecar),
    "wal-board-read-only-folder": Case(mode_board(0o666, folder_mode=0o555, wal=True), ["upgrade", "{db}"], 5,
                                       "folder is read-only", unchanged=True, user="nobody"),
    "unreadable-board-upgrade": Case(mode_board(0o000), ["upgrade", "{db}"], 5, "cannot read", unchanged=True,
                                     user="nobody"),
    "unreadable-board-status": Case(mode_board(0o000), ["status", "{db}"], 5, "cannot read", unchanged=True,
                                    user="nobody"),
    "stale-backup-tmp-removed": Case(stale_tmp, ["upgrade", "{db}"], 0, check=stale_tmp_gone),
    # hangs and crashes
    "fifo-journal": Case(fifo_sidecar("-journal"), ["upgrade", "{db}"], 3, "FIFO", unchanged=True, seconds=20),
    "fifo-wal": Case(fifo_sidecar("-wal"), ["upgrade", "{db}"], 3, "FIFO", unchanged=True, seconds=20),
    "fifo-wal-status": Case(fifo_sidecar("-wal"), ["status", "{db}"], 3, "FIFO", unchanged=True, seconds=20),
    "name-with-question-mark": Case(odd_name("a?b.db"), ["upgrade", "{db}"], 0, check=exact_files("a?b.db")),
    "name-with-hash": Case(odd_name("c#d.db"), ["upgrade", "{db}"], 0, check=exact_files("c#d.db")),
    "name-with-percent": Case(odd_name("e%41f%zz.db"), ["upgrade", "{db}"], 0, check=exact_files("e%41f%zz.db")),
    "name-250-bytes": Case(long_name(250), ["upgrade", "{db}"], 3, "too long for SQLite", unchanged=True),
    "name-240-bytes-backup": Case(long_name(240), ["upgrade", "{db}"], 3, "too long for a pre-upgrade backup",
                                  unchanged=True),
    "name-240-bytes-no-backup": Case(long_name(240), ["upgrade", "--no-backup", "{db}"], 0),
}


def run(args, *, user="root", limit=None, env=None, timeout=120):
    pre = None
    if limit is not None:
        pre = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # noqa: E731
    cmd = [sys.executable, "-m", "kanban_migrate", *args]
    if user == "nobody":
        cmd = [*as_nobody(), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=pre,
                          env={**ENV, **(env or {})}, cwd="/")


@pytest.fixture
def make(kanban_board_template):
    def make(shape, tasks, dest: Path) -> Path:
        shutil.copyfile(kanban_board_template(shape, tasks, 1), dest)
        return dest
    return make


@pytest.mark.parametrize("name", list(CASES))
def test_case(name, make, tmp_path):
    case = CASES[name]
    if case.user == "nobody" and not ROOT:
        pytest.skip("needs root to set up a board for an unprivileged user")
    folder = open_folder() if case.user == "nobody" else tmp_path / "in"
    folder.mkdir(exist_ok=True)
    try:
        p = case.build(folder, make)
        before = dir_state(folder)
        before_counts = counts(p) if name.startswith("triggers") else None
        before_extras = extras(p) if name.startswith("triggers") else None
        args = [a.replace("{db}", str(p)).replace("{dir}", str(folder)) for a in case.args]
        started = time.monotonic()
        proc = run(args, user=case.user, limit=case.limit, env=case.env, timeout=case.seconds + 30)
        elapsed = time.monotonic() - started
        folder.chmod(0o755)
        want = case.code if isinstance(case.code, set) else {case.code}
        assert proc.returncode in want, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
        assert elapsed < case.seconds
        assert "Traceback" not in proc.stdout + proc.stderr
        if proc.returncode >= 2:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("kanban-migrate: ") and "(" in lines[0], proc.stderr
            assert len(lines[0]) < 600  # nothing long quoted from the file
            if case.says:
                assert case.says in lines[0], lines[0]
        elif case.says:
            assert case.says in proc.stdout, proc.stdout
        if case.unchanged:
            assert dir_state(folder) == before
        if name.startswith("triggers"):
            rows_and_extras_kept(before_counts, before_extras)(folder, p, proc)
        if case.check:
            case.check(folder, p, proc)
    finally:
        if case.user == "nobody":
            for q in [folder, *folder.rglob("*")]:
                if not q.is_symlink():
                    q.chmod(0o755)
            shutil.rmtree(folder, ignore_errors=True)


def test_triggers_still_work_after_the_upgrade(make, tmp_path):
    """Kept means kept working: after the upgrade the board's trigger fires on the application's
    own writes as it did before."""
    p = make("v0", 30, tmp_path / "kanban.db")
    execute(p, "CREATE TABLE audit (what TEXT)",
        "CREATE TRIGGER audit_tasks AFTER INSERT ON tasks BEGIN INSERT INTO audit VALUES (new.id); END")
    upgrade(p, backup=False)
    assert one(p, "SELECT count(*) FROM audit") == [(0,)]  # never fired during the upgrade
    execute(p, "INSERT INTO tasks (id, title, status, created_at) VALUES ('t_after', 'x', 'todo', 1)")
    assert one(p, "SELECT what FROM audit") == [("t_after",)]


# ---- read-only commands make no file ------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["status"], ["upgrade", "--check"], ["upgrade", "--dry-run"], ["upgrade", "--sql"],
                                  ["boards"]])
def test_read_only_commands_make_no_shm_and_see_the_wal(args, make, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    p = home / "kanban.db"
    wal_without_shm(make("v1", 40, tmp_path / "src.db"), p)
    before = dir_state(home)
    cmd = [*args, "--home", str(home)] if args == ["boards"] else [*args, str(p)]
    proc = run(cmd)
    assert proc.returncode in (0, 1), proc.stderr
    assert dir_state(home) == before  # no -shm, nothing checkpointed
    assert not Path(str(p) + "-shm").exists()


def test_read_only_look_reads_what_is_in_the_wal(make, tmp_path):
    from kanban_migrate import board

    p = tmp_path / "kanban.db"
    wal_without_shm(make("v1", 40, tmp_path / "src.db"), p)
    conn = board.open_ro(board.check_file(p))
    try:
        assert conn.execute("SELECT count(*) FROM task_comments WHERE author = 'wal'").fetchone() == (1,)
    finally:
        conn.close()
    assert not Path(str(p) + "-shm").exists()
    assert not [q for q in Path(tempfile.gettempdir()).glob("kanban-migrate-read-*")
                if q.stat().st_mtime > time.time() - 5 and (q / "board.db").exists()]


# ---- locks, backups -------------------------------------------------------------------------------------------
def test_reader_lock_refusal_leaves_no_backup(make, tmp_path):
    p = reader_lock(tmp_path, make)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
         "c.execute('BEGIN'); c.execute('SELECT count(*) FROM tasks').fetchall(); print('reading', flush=True);"
         "time.sleep(60)", str(p)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "reading"
        before = dir_state(tmp_path)
        proc = run(["upgrade", "--busy-timeout", "1", str(p)])
        assert proc.returncode == 4, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "locked" in proc.stderr
        assert dir_state(tmp_path) == before
        no_backup_left(tmp_path, p, proc)
    finally:
        holder.kill()
        holder.wait()


def test_backup_gets_the_boards_mode_and_owner(make, tmp_path):
    p = make("v1", 30, tmp_path / "kanban.db")
    p.chmod(0o600)
    owner = None
    if ROOT:
        nobody = pwd.getpwnam("nobody")
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
        owner = (nobody.pw_uid, nobody.pw_gid)
    result = upgrade(p)
    st = Path(result.backup).stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    if owner:
        assert (st.st_uid, st.st_gid) == owner


@pytest.mark.skipif(not ROOT or not STRACE, reason="needs root and strace")
def test_backup_killed_half_way_leaves_nothing_forever(make, tmp_path):
    """SIGKILL at the rename that publishes the backup: the half-made copy is left; the next run
    removes it (its process is gone) and finishes."""
    p = make("v1", 60, tmp_path / "kanban.db")
    proc = subprocess.run([*kill_at("rename", 1), sys.executable, "-m", "kanban_migrate", "upgrade", str(p)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode != 0
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert left, "the kill left the temporary copy (the case this test is about)"
    assert stat.S_IMODE((tmp_path / left[0]).stat().st_mode) == stat.S_IMODE(p.stat().st_mode)
    again = run(["upgrade", str(p)])
    assert again.returncode == 0, again.stderr
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_prune_takes_names_literally(make, tmp_path):
    a = make("v1", 20, tmp_path / "board1.db")
    b = make("v2b", 20, tmp_path / "board[1].db")
    upgrade(a)
    upgrade(b)
    a_backups = sorted(n for n in os.listdir(tmp_path) if n.startswith("board1.db.pre-upgrade."))
    assert a_backups
    proc = run(["backups", "--prune", "0", str(b)])
    assert proc.returncode == 0, proc.stderr
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("board1.db.pre-upgrade.")) == a_backups
    assert not [n for n in os.listdir(tmp_path) if n.startswith("board[1].db.pre-upgrade.")]


def test_leftovers_of_a_killed_prune_are_listed_and_pruned(make, tmp_path):
    p = make("v1", 20, tmp_path / "kanban.db")
    gone = tmp_path / "kanban.db.corrupt.0123456789abcdef.bak"
    for suffix in ("-wal", "-shm"):
        Path(str(gone) + suffix).write_bytes(b"x" * 1000)
    listing = run(["backups", str(p)])
    assert listing.returncode == 0 and "leftover" in listing.stdout and "-wal" in listing.stdout, listing.stdout
    pruned = run(["backups", "--prune", "5", str(p)])
    assert pruned.returncode == 0, pruned.stderr
    assert sorted(os.listdir(tmp_path)) == ["kanban.db"]


# ---- HERMES_KANBAN_DB, boards --------------------------------------------------------------------------------
def test_pinned_folder_and_missing_file_are_said(make, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    make("v7", 20, home / "kanban.db")
    upgrade(home / "kanban.db", backup=False)
    folder = tmp_path / "pinned-folder"
    folder.mkdir()
    proc = run(["upgrade"], env={"HERMES_HOME": str(home), "HERMES_KANBAN_DB": str(folder)})
    assert proc.returncode == 3 and "is a directory" in proc.stderr and str(folder) in proc.stderr, proc.stderr
    missing = tmp_path / "nowhere" / "kanban.db"
    proc = run(["upgrade"], env={"HERMES_HOME": str(home), "HERMES_KANBAN_DB": str(missing)})
    assert proc.returncode == 0
    assert "HERMES_KANBAN_DB" in proc.stderr and "no such file" in proc.stderr, proc.stderr
    proc = run(["boards"], env={"HERMES_HOME": str(home), "HERMES_KANBAN_DB": str(folder)})
    assert proc.returncode == 0 and "is a directory" not in proc.stderr
    assert "pinned" in proc.stdout and "not-a-board" in proc.stdout, proc.stdout


def test_boards_lists_hostile_boards_without_crashing(make, tmp_path):
    home = tmp_path / "home"
    named = home / "kanban" / "boards"
    for slug, build in (("junk-int", junk_stamp("1")), ("junk-blob", junk_stamp("x'00ff'")),
                        ("junk-long", junk_stamp("printf('%.*c', 1000000, 'x')")), ("liar", false_stamp("v7")),
                        ("fifo", fifo_sidecar("-journal"))):
        (named / slug).mkdir(parents=True)
        build(named / slug, make)
    before = dir_state(home)
    proc = run(["boards", "--json", "--home", str(home)], timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    health = {Path(b["path"]).parent.name: (b["health"], b["detail"] or "") for b in json.loads(proc.stdout)}
    assert health["junk-int"][0] == health["junk-blob"][0] == health["junk-long"][0] == "bad-stamp"
    assert len(health["junk-long"][1]) < 400
    assert health["liar"][0] == "needs-upgrade" and "stamped v7 but" in health["liar"][1]
    assert health["fifo"][0] == "not-a-board" and "FIFO" in health["fifo"][1]
    assert dir_state(home) == before


# ---- disk full ---------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("16m", "small")


def test_disk_full_is_named_and_the_hint_is_true(make, small_disk):
    p = make("drifted", 600, small_disk / "kanban.db")
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - (1 << 20) - 300_000))  # past the up-front check, short of the rebuild
    proc = run(["upgrade", "--no-backup", str(p)])
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "disk is full" in line, line
    committed_as_said(small_disk, p, proc)
    filler.unlink()
    again = run(["upgrade", "--no-backup", str(p)])
    assert again.returncode == 0 and at_head(p)


@pytest.mark.parametrize("left", [8192, 1_500_000])
def test_disk_full_before_or_at_backup_changes_nothing(make, small_disk, left):
    """Too little room: refused up front (8 KB left) or when the backup fails (1.5 MB left, more
    than the up-front check asks without a backup): either way the folder is as it was."""
    p = make("v1", 200, small_disk / "kanban.db")
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(small_disk).free - left))
    before = dir_state(small_disk)
    proc = run(["upgrade", str(p)])
    assert proc.returncode == 5 and "disk is full" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert dir_state(small_disk) == before


# ---- two upgrades at once ------------------------------------------------------------------------------------------
def _upgrade_one(path, queue):
    from kanban_migrate.upgrading import upgrade_many

    r = upgrade_many([path], jobs=1)[0]
    queue.put((r.code, r.status, r.message, r.revision_after))


def test_two_upgrades_at_once_never_fail(kanban_board_template, tmp_path):
    """30 trials of two upgrades started together on one legacy board: each ends at head (exit 0,
    'upgraded' or 'already at head') or says the board is busy (exit 4); never 3 or 70."""
    import alembic.command  # noqa: F401  (imported once, before forking)

    import kanban_migrate.upgrading.chain  # noqa: F401

    ctx = multiprocessing.get_context("fork")
    src = kanban_board_template("v0", 20, 1)
    outcomes = []
    for i in range(30):
        p = tmp_path / f"b{i}.db"
        shutil.copyfile(src, p)
        queue = ctx.Queue()
        procs = [ctx.Process(target=_upgrade_one, args=(str(p), queue)) for _ in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        got = [queue.get(timeout=5) for _ in procs]
        outcomes.extend(got)
        assert all(code in (0, 4) for code, _status, _message, _after in got), got
        assert all(after == "v7" for code, _status, _message, after in got if code == 0), got  # as it is
        assert stamp_of(p) == "v7" and at_head(p)
        assert one(p, "PRAGMA integrity_check") == [("ok",)]
    assert {status for _c, status, _m, _a in outcomes} <= {"upgraded", "current", "busy"}


# ---- the fast path's view of head is head ---------------------------------------------------------------------------
def test_fast_path_head_names_are_heads():
    assert {t.name: tuple(c.name for c in t.columns) for t in head.metadata.tables.values()} == HEAD_NAMES
    assert tuple(head.metadata.tables) == KANBAN_TABLES
    assert sorted(ix.name for t in head.metadata.tables.values() for ix in t.indexes) == sorted(HEAD_INDEXES)


def hint_of_a_refusal_in_v4(p: Path, monkeypatch) -> str:
    """upgrade(p) with v4's backfill refusing: the hint of the error it raises."""
    from kanban_migrate.errors import KanbanMigrateError
    from kanban_migrate.upgrading import ops

    def refuse():
        raise ops.UpgradeRefused("injected")

    monkeypatch.setattr(ops, "backfill_running_runs", refuse)
    with pytest.raises(KanbanMigrateError) as info:
        upgrade(p)
    return info.value.hint


def test_failure_after_an_untrusted_stamp_says_what_was_committed(make, tmp_path, monkeypatch):
    """A false v3 stamp is removed and the chain runs from the base; a failure in v4 says v0..v3
    (not 'v4' only, not nothing) were committed, and the backup stays (something was committed)."""
    p = false_stamp("v3")(tmp_path, make)
    hint = hint_of_a_refusal_in_v4(p, monkeypatch)
    assert "revisions v0 v1 v2 v3 were applied and committed, the board is consistent at v3" in hint
    assert stamp_of(p) == "v3" and one(p, "SELECT count(*) FROM pragma_table_info('tasks') WHERE name='session_id'")[0][0]
    assert [n for n in os.listdir(tmp_path) if ".pre-upgrade." in n]


def test_refusal_before_any_commit_removes_its_backup(make, tmp_path, monkeypatch):
    p = make("v4", 30, tmp_path / "kanban.db")
    upgrade(p, backup=False)
    execute(p, "UPDATE alembic_version SET version_num = 'v3'")
    before = dir_state(tmp_path)
    assert "nothing was changed" in hint_of_a_refusal_in_v4(p, monkeypatch)
    assert dir_state(tmp_path) == before


def test_a_trigger_that_cannot_be_put_back_commits_nothing(make, tmp_path, monkeypatch):
    """If putting the triggers back fails, the transaction does not commit without them."""
    from kanban_migrate.upgrading import chain

    p = with_sql("v1", *TRIGGERS)(tmp_path, make)
    before = dir_state(tmp_path)

    def broken(dbapi, info):
        info.pop(chain._ASIDE, None)
        raise RuntimeError("injected: cannot create the trigger again")

    monkeypatch.setattr(chain, "_put_back", broken)
    with pytest.raises(Exception, match="injected"):
        upgrade(p, backup=False)
    assert dir_state(tmp_path) == before
    assert stamp_of(p) is None and len(extras(p)) == len(TRIGGERS)


def test_sigkill_on_a_rollback_journal_board_then_rerun_finishes(kanban_board_template, tmp_path):
    """A board kept in DELETE mode (the application's rule under the WAL-reset bug): a kill mid-
    revision leaves a hot journal; the next upgrade lets SQLite roll it back and finishes."""
    import random

    victim = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("drifted", 1500, 3), victim)
    execute(victim, "PRAGMA journal_mode=DELETE")
    reference = tmp_path / "reference.db"
    shutil.copyfile(victim, reference)
    upgrade(reference, backup=False)
    rng = random.Random(10)
    hot = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-m", "kanban_migrate", "upgrade", "--no-backup", str(victim)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(rng.uniform(0.4, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        journal = Path(str(victim) + "-journal")
        hot += journal.exists() and journal.stat().st_size > 0
    done = run(["upgrade", "--no-backup", str(victim)])
    assert done.returncode == 0, done.stderr
    assert at_head(victim) and one(victim, "PRAGMA integrity_check") == [("ok",)]
    assert counts(victim) == counts(reference)
    print("kills that left a hot journal:", hot)


def test_sql_script_sets_triggers_and_views_aside_too(make, tmp_path):
    """The --sql script, run by hand on the board, keeps the rows the triggers would delete and
    puts the triggers and views back, on a board whose tables are rebuilt too."""
    p = with_sql("drifted", *REBUILT_EXTRAS, TRIGGERS[0], tasks=40)(tmp_path, make)
    before_counts, before_extras = counts(p), extras(p)
    proc = run(["upgrade", "--sql", str(p)])
    assert proc.returncode == 0, proc.stderr
    c = sqlite3.connect(p)
    c.executescript(proc.stdout)
    c.close()
    assert counts(p) == before_counts and extras(p) == before_extras
    assert stamp_of(p) == "v7" and at_head(p)
