"""recover's report, as a frightened user reads it: counts before and after, what kind of damage,
one verdict shared with `verify`, where the files are, what to do next and how to undo; deleted
rows brought back are marked; `--busy-timeout` is honoured; the dump names the board."""

from __future__ import annotations

import json
import os
import pty
import random
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corruption as C
from support import dir_state, pragma_rows, rows, sha256
from kanban_migrate.errors import ExitCode
from kanban_migrate.recovering import recover
from kanban_migrate.salvage import salvage, write_dump
from kanban_migrate.salvage.dump import FREELIST_MARKS
from kanban_migrate.upgrading import upgrade

KANBAN = ("tasks", "task_links", "task_comments", "task_events", "task_runs", "kanban_notify_subs")


def cli(*args, cwd=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, **kw)


def counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in KANBAN}
    finally:
        conn.close()


# --- counts before and after, next steps and undo ------------------------------------------------

def test_salvage_report_counts_rows_in_the_file_and_in_the_board(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=200, seed=3, name="kanban.db")
    before = counts(board)
    C.zero_root(board, "task_events", random.Random(1))
    original = sha256(board)
    proc = cli("recover", "--json", board)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is True and out["status"] == "recovered" and out["mode"] == "salvage"
    after = counts(board)
    for table in KANBAN:
        t = out["tables"][table]
        assert t["in_board"] == after[table], table
        # every row was readable (a zeroed interior root): the file held what the board held
        assert t["in_file"] == before[table], table
    assert after["task_runs"] >= before["task_runs"]  # the chain may add runs for running tasks
    # next steps and undo name real commands on absolute paths; the undo puts the original back
    assert out["next"][0] == f"kanban-migrate verify {board}   (check the recovered board yourself)"
    undo = shlex.split(out["undo"])
    assert undo[:3] == ["kanban-migrate", "restore", str(board)] and Path(undo[3]) == Path(out["original"])
    done = cli(*undo[1:])
    assert done.returncode == 0, done.stderr
    assert sha256(board) == original


def test_text_report_lists_counts_verdict_next_and_undo(kanban_board):
    board = kanban_board(shape="v7", tasks=150, seed=5, name="kanban.db")
    C.zero_root(board, "task_comments", random.Random(2))
    proc = cli("recover", board)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("tables were damaged: salvaged every readable row and rebuilt the board at head")
    header = next(i for i, line in enumerate(lines) if "in the file" in line and "in the board" in line)
    comments = next(line for line in lines[header:] if line.split()[0] == "task_comments").split()
    assert int(comments[1]) == int(comments[2]) == counts(board)["task_comments"]
    assert any(line.strip().startswith("verify: OK") for line in lines)
    assert any(line.strip() == f"next: kanban-migrate verify {board}   (check the recovered board yourself)"
               for line in lines)
    assert lines[-1].strip().startswith(f"undo: kanban-migrate restore {board} {board}.corrupt.")


def test_index_only_damage_is_said_so(kanban_board):
    board = kanban_board(shape="v7", tasks=100, seed=2, name="kanban.db")
    C.mismatch_index(board, "idx_tasks_status", "tasks", "assignee")
    before = rows(board, "tasks")
    report = recover(board)
    assert report.mode == "reindex" and report.code == 0
    text = "\n".join(report.lines())
    assert "only indexes were damaged" in text and "salvaged" not in text
    assert report.tables["tasks"].in_file == report.tables["tasks"].in_board == len(before)
    assert rows(board, "tasks") == before and report.undo_command() is not None


def test_output_report_says_the_source_is_untouched_and_how_to_use_the_result(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=100, seed=4, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(3))
    state = dir_state(board.parent)
    out = tmp_path / "rescued" / "kanban.db"
    report = recover(board, output=out)
    assert dir_state(board.parent) == {**state, **{k: v for k, v in dir_state(board.parent).items()
                                                   if k.startswith("rescued")}}
    text = "\n".join(report.lines())
    assert "undo: nothing to undo: the source was not changed" in text
    assert f"next: kanban-migrate verify {out}" in text
    assert f"'kanban-migrate recover {board}'" in text
    assert report.undo_command() is None and report.status == "recovered"


def test_keep_workdir_is_shown_and_shares_nothing_with_the_output(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=100, seed=4, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(3))
    out = tmp_path / "out.db"
    proc = cli("recover", board, "--output", out, "--keep-workdir")
    assert proc.returncode == 0, proc.stderr
    kept = [line.split("work folder kept: ")[1].split(" (")[0] for line in proc.stdout.splitlines()
            if "work folder kept: " in line]
    assert kept and Path(kept[0]).is_dir() and (Path(kept[0]) / "manifest.json").is_file()
    # the recovered board is a file of its own: not a second name of a file in the work folder
    assert os.stat(out).st_nlink == 1
    again = cli("recover", out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{out}: the file is healthy: nothing to recover")


# --- one verdict: recover and verify agree on the same board --------------------------------------

def _legacy(kanban_board):
    return kanban_board(shape="v2b", tasks=100, seed=1, name="kanban.db")


def _data_findings(kanban_board):
    board = kanban_board(shape="v7", tasks=100, seed=1, name="kanban.db")
    upgrade(board, backup=False)
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_gone0000', 'created', 1)")
    conn.close()
    return board


def _rebuilt(kanban_board):
    board = kanban_board(shape="v7", tasks=100, seed=1, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(5))
    recover(board)
    return board


def _extended(kanban_board):
    board = kanban_board(shape="v7", tasks=100, seed=1, name="kanban.db")
    upgrade(board, backup=False)
    C.extend_with_garbage(board, random.Random(6))
    return board


BOARDS = {"legacy-healthy": _legacy, "data-findings": _data_findings, "rebuilt": _rebuilt, "size-disagrees": _extended}


@pytest.mark.parametrize("case", list(BOARDS))
def test_recover_and_verify_give_one_verdict(case, kanban_board):
    board = BOARDS[case](kanban_board)
    before = json.loads(cli("verify", "--json", board).stdout)
    proc = cli("recover", "--json", board)
    assert proc.returncode in (0, 1), proc.stderr
    rec = json.loads(proc.stdout)
    after = json.loads(cli("verify", "--json", board).stdout)
    # what recover says of the board is what verify says of it afterwards
    serious = [f for f in after["findings"] if f["severity"] in ("error", "warning")]
    assert rec["verify"]["ok"] == after["ok"]
    assert rec["verify"]["errors"] + rec["verify"]["warnings"] == len(serious)
    # and recover never calls "nothing to recover" what verify sends to recover
    sends_to_recover = any("kanban-migrate recover" in (f["hint"] or "") for f in before["findings"])
    if rec["mode"] == "healthy":
        assert not sends_to_recover, before["findings"]
        assert rec["undo"] is None
    assert not any("kanban-migrate recover" in (f["hint"] or "") for f in after["findings"]), after["findings"]
    if case == "legacy-healthy":
        assert rec["mode"] == "healthy" and rec["verify"]["ok"] is False
        assert any("upgrade" in h for h in rec["verify"]["hints"])
    if case == "data-findings":
        assert rec["mode"] == "healthy" and rec["verify"]["warnings"] == 1 and after["ok"] is False
        assert rec["next"] == [f"kanban-migrate verify {board}   (the findings in full, with what to do)"]
    if case == "rebuilt":
        assert rec["mode"] == "healthy" and rec["verify"]["ok"] is True and after["ok"] is True
    if case == "size-disagrees":
        assert before["ok"] is False and rec["mode"] == "resized" and after["ok"] is True
        assert pragma_rows(board, "integrity_check") == [("ok",)]


# --- deleted rows brought back are marked ---------------------------------------------------------

@pytest.fixture
def with_deleted_rows(kanban_board):
    """A damaged board that kept deleted task rows on freed pages: (board, deleted task ids)."""
    board = kanban_board(shape="v7", tasks=300, seed=6, name="kanban.db")
    conn = sqlite3.connect(board)
    ids = {rowid: tid for rowid, tid in conn.execute("SELECT rowid, id FROM tasks")}
    conn.close()
    gone = {ids[r] for r in C.delete_rows(board, "tasks", "rowid % 50 = 0")}
    C.zero_root(board, "task_comments", random.Random(7))
    return board, gone


def test_deleted_rows_are_marked_in_the_board_and_the_dump(with_deleted_rows, tmp_path):
    board, gone = with_deleted_rows
    out, dump = tmp_path / "out.db", tmp_path / "salvage.sql"
    report = recover(board, output=out, dump=dump, include_freelist=True)
    conn = sqlite3.connect(out)
    marks = conn.execute(f"SELECT table_, key, rowid_, source FROM {FREELIST_MARKS}").fetchall()
    live = {r[0] for r in conn.execute("SELECT id FROM tasks")}
    back = {key for table, key, _rowid, _src in marks if table == "tasks"}
    assert back and back <= gone and back <= live  # only deleted rows are marked, and they are in the board
    for table, key, rowid, source in marks:
        assert source in ("freelist", "freeblock")
        assert conn.execute(f"SELECT id FROM {table} WHERE rowid = ?", (rowid,)).fetchone() == (key,)
    assert live - back == {r["id"] for r in rows(board, "tasks")} - gone  # nothing else came back unmarked
    conn.close()
    assert report.freelist_rows == len(marks)
    assert f"{len(marks)} deleted row(s) brought back" in "\n".join(report.lines())
    text = dump.read_text()
    comment = text.index("row(s) below were deleted and came back from the freelist")
    for key in back:
        assert text.index(f"'{key}'") > comment
    loaded = sqlite3.connect(tmp_path / "from-dump.db")
    loaded.executescript(text)
    assert {r[0] for r in loaded.execute(f"SELECT key FROM {FREELIST_MARKS} WHERE table_ = 'tasks'")} == back


def test_without_include_freelist_nothing_is_marked_or_brought_back(with_deleted_rows, tmp_path):
    board, gone = with_deleted_rows
    out = tmp_path / "out.db"
    report = recover(board, output=out)
    conn = sqlite3.connect(out)
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (FREELIST_MARKS,)).fetchone()
    assert not {r[0] for r in conn.execute("SELECT id FROM tasks")} & gone
    conn.close()
    assert report.freelist_rows == 0


def test_a_deleted_row_whose_key_was_reused_is_set_aside_not_lost(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=300, seed=6, name="kanban.db")
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("PRAGMA secure_delete=OFF")
    victims = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE rowid % 50 = 0")]
    conn.execute("DELETE FROM tasks WHERE rowid % 50 = 0")
    conn.executemany("INSERT INTO tasks (id, title, status, created_at) VALUES (?, 'made again', 'todo', 1)",
                     [(v,) for v in victims])
    conn.close()
    C.zero_root(board, "task_comments", random.Random(7))
    report = recover(board, output=tmp_path / "out.db", include_freelist=True)
    aside = report.tables["tasks"].deleted_set_aside
    assert aside >= 1 and report.deleted_set_aside >= aside
    assert report.code == 0, report.lines()  # every live row is there; the old copies are set aside
    out = sqlite3.connect(tmp_path / "out.db")
    assert {r[0] for r in out.execute("SELECT title FROM tasks WHERE id IN (%s)" % ",".join("?" * len(victims)),
                                      victims)} == {"made again"}
    assert out.execute("SELECT COUNT(*) FROM lost_and_found WHERE source IN ('freelist', 'freeblock') "
                       "AND table_ = 'tasks'").fetchone()[0] == aside
    assert "not a loss" in "\n".join(report.lines())


# --- the dump names the board -----------------------------------------------------------------

def test_dump_header_names_the_board_not_a_work_file(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=100, seed=8, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(8))
    proc = cli("recover", "kanban.db", "--output", "out.db", "--dump", "salvage.sql", cwd=board.parent)
    assert proc.returncode == 0, proc.stderr
    first = (board.parent / "salvage.sql").read_text().splitlines()[0]
    assert first.startswith(f"-- salvage of {str(board)!r} by kanban-migrate recover")
    assert ".kanban-recover" not in first
    # the library's own dump names what it is told to
    copy = tmp_path / "copy.db"
    copy.write_bytes(board.read_bytes())
    with salvage(copy) as result, open(tmp_path / "lib.sql", "w", encoding="utf-8") as fp:
        write_dump(result, fp, source=str(board))
    assert (tmp_path / "lib.sql").read_text().splitlines()[0] == f"-- salvage of {str(board)!r} by kanban_migrate.salvage"


# --- --busy-timeout is honoured -------------------------------------------------------------------

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
if sys.argv[3] == "close":
    conn.close()
print("released", flush=True)
time.sleep(60)
"""


def _hold(board: Path, seconds: float, then: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(board), str(seconds), then], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("where", ["in-place", "output"])
def test_busy_timeout_shorter_than_the_lock_refuses(where, kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=50, seed=1, name="kanban.db", journal_mode="delete")
    holder = _hold(board, 30, "keep")
    try:
        state = dir_state(board.parent)
        extra = ["--output", tmp_path / "out" / "r.db"] if where == "output" else []
        started = time.monotonic()
        proc = cli("recover", board, "--busy-timeout", "0.5", *extra, timeout=60)
        waited = time.monotonic() - started
        assert proc.returncode == ExitCode.BUSY, (proc.stdout, proc.stderr)
        assert "--busy-timeout 0.5" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert waited < 20
        assert dir_state(board.parent) == state
        assert not (tmp_path / "out" / "r.db").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("where", ["in-place", "output"])
def test_busy_timeout_longer_than_the_lock_waits_and_recovers(where, kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=50, seed=1, name="kanban.db", journal_mode="delete")
    # in place the holder must let go of the file too (an open board is in use); with --output
    # it stays open and the board is read as one snapshot once the lock is gone
    holder = _hold(board, 1.5, "close" if where == "in-place" else "keep")
    try:
        extra = ["--output", tmp_path / "r.db"] if where == "output" else []
        started = time.monotonic()
        proc = cli("recover", "--json", board, "--busy-timeout", "30", *extra, timeout=120)
        waited = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        assert holder.stdout.readline().strip() == "released"
        assert waited >= 1.0  # it waited for the lock rather than giving up or reading past it
        out = json.loads(proc.stdout)
        if where == "output":
            assert out["snapshot"] == "sqlite-backup" and counts(tmp_path / "r.db") == counts(board)
        else:
            assert out["mode"] == "healthy"
    finally:
        holder.kill()
        holder.wait()


# --- progress -------------------------------------------------------------------------------------

def test_progress_reports_a_growing_fraction_that_ends_full(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=100, seed=9, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(9))
    calls = []
    recover(board, output=tmp_path / "out.db", progress=lambda done, total, label: calls.append((done, total, label)))
    dones = [d for d, _t, _l in calls]
    assert dones == sorted(dones) and all(0 < d <= t for d, t, _l in calls)
    assert calls[-1][0] == calls[-1][1] > 4  # the salvage's phases joined the total
    assert any(label.startswith("salvage: ") for _d, _t, label in calls)


def test_progress_bar_on_a_terminal_only(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=100, seed=9, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(9))
    # piped (and with --json): nothing on standard error
    piped = cli("recover", board, "--output", tmp_path / "a.db")
    assert piped.returncode == 0 and piped.stderr == ""
    # on a terminal: a bar with a fraction on standard error
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "kanban_migrate", "recover", str(board), "--output",
                               str(tmp_path / "b.db")], stdout=subprocess.PIPE, stderr=follower, timeout=300,
                              env={**os.environ, "COLUMNS": "120"})
        os.close(follower)
        follower = None
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    text = seen.decode(errors="replace")
    assert "recovering kanban.db" in text and any(f"/{n}" in text for n in range(5, 20))
