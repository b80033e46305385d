"""``recover`` points at the kept copies that hold the rows it could not recover, and
``recover DB --from-backup BACKUP`` brings those rows back: only rows whose key the board lacks,
marked, in one transaction after a pre-change backup, with the board's invariants kept; every
refusal leaves the board (and the copy) byte for byte as they were."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import corruption
from support import dir_state, rows, sha256, tables
from kanban_migrate.backup import list_backups
from kanban_migrate.recovering import recover
from kanban_migrate.recovering.frombackup import MARKS, bring_back, holdings
from kanban_migrate.upgrading import upgrade

TASKS = 120


def cli(*args, preexec_fn=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES", "KANBAN_MIGRATE"))}
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, preexec_fn=preexec_fn)


def _sql(path: Path, sql: str, args=()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        out = conn.execute(sql, args).fetchall()
        conn.commit()
        return out
    finally:
        conn.close()


def _damage_tasks(board: Path) -> None:
    """Overwrite one table leaf of tasks (seeded): its tasks are lost, their events and comments survive."""
    corruption.overwrite_leaf(board, "tasks", random.Random(3))


@pytest.fixture
def lost(kanban_board):
    """A v0 board upgraded (its pre-upgrade backup is a v0 board), then damaged, then recovered in
    place: ``(board, report, pre-upgrade backup)``; the report lost tasks."""
    board = kanban_board(shape="v0", tasks=TASKS, seed=7, name="kanban.db")
    result = upgrade(board)
    _damage_tasks(board)
    report = recover(board)
    assert report.code == 1 and report.missing_tasks, report.lines()
    return board, report, Path(result.backup)


def test_the_report_names_the_backup_that_holds_the_lost_tasks(kanban_board, tmp_path):
    board = kanban_board(shape="v0", tasks=TASKS, seed=7, name="kanban.db")
    backup = Path(upgrade(board).backup)
    _damage_tasks(board)
    junk = board.with_name("kanban.db.pre-restore.00000000deadbeef.bak")  # a kept copy that is not SQLite
    junk.write_bytes(os.urandom(4096))
    proc = cli("recover", board)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout
    assert f"are in {backup.name}" in text or f"is in {backup.name}" in text, text
    assert f"bring them back: kanban-migrate recover {board} --from-backup {backup.name}" in text, text
    # the ids named are the lost tasks, and the backup holds each
    line = next(x for x in text.splitlines() if "task(s) lost:" in x)
    ids = line.split("lost: ")[1].split(" —")[0].split(", ")
    held = {r["id"] for r in rows(backup, "tasks")}
    assert ids and set(ids) <= held and not set(ids) & {r["id"] for r in rows(board, "tasks")}
    # the library's view: the quarantine copy this run made is not read, the junk one says why
    found = {h.name: h for h in holdings(board, lost_tasks=ids)}
    assert found[backup.name].rows["tasks"] == len(ids) and found[backup.name].lost_tasks == sorted(ids)
    assert found[junk.name].unreadable and not found[junk.name].rows


def test_json_report_lists_backups_only_when_rows_were_lost(lost, kanban_board):
    board, report, backup = lost
    listed = report.to_dict()["lost_rows_in_backups"]
    assert [h["name"] for h in listed] == [backup.name]
    assert listed[0]["lost_tasks"] == sorted(report.missing_tasks)
    assert listed[0]["samples"]["tasks"][:3] == sorted(report.missing_tasks)[:3]
    assert report.original and Path(report.original).name not in {h["name"] for h in listed}
    healthy = kanban_board(shape="v0", tasks=20, seed=2, name="healthy.db")
    upgrade(healthy)
    assert recover(healthy).lost_rows_in_backups == []


def test_from_backup_brings_the_lost_rows_back_marked_and_verify_passes(lost):
    board, report, backup = lost
    kept = sha256(backup)
    survivor = rows(board, "tasks")[0]["id"]
    _sql(board, "UPDATE tasks SET title = 'newer than the backup' WHERE id = ?", (survivor,))
    events_before = len(rows(board, "task_events"))
    before = {r["id"] for r in rows(board, "tasks")}
    proc = cli("recover", board, "--from-backup", backup.name, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["rows"]["tasks"] == len(report.missing_tasks) and not result["left_out"]
    assert result["ok"] is True and result["status"] == "brought-back"
    assert sha256(backup) == kept  # the copy is only read
    old = {r["id"]: r for r in rows(backup, "tasks")}
    now = {r["id"]: r for r in rows(board, "tasks")}
    assert set(report.missing_tasks) <= set(now) and before <= set(now)
    for tid in report.missing_tasks:  # as the backup holds them, on the columns it has
        assert all(now[tid][c] == v for c, v in old[tid].items() if c != "_rowid_"), tid
    assert now[survivor]["title"] == "newer than the backup"  # a surviving row is never overwritten
    assert len(rows(board, "task_events")) == events_before
    marks = _sql(board, f"SELECT table_, key, backup FROM {MARKS} ORDER BY key")
    assert marks == [("tasks", t, backup.name) for t in sorted(report.missing_tasks)]
    # the board before is kept as upgrade keeps it, and restore puts it back
    pre = Path(result["pre_change_backup"])
    assert pre in {b.path for b in list_backups(board)} and pre.name.startswith("kanban.db.pre-upgrade.")
    assert {r["id"] for r in rows(pre, "tasks")} == before
    check = cli("verify", board)
    assert check.returncode == 0, check.stdout + check.stderr
    again = cli("recover", board, "--from-backup", backup.name)
    assert again.returncode == 0 and "nothing to bring back" in again.stdout, again.stdout + again.stderr
    undo = cli("restore", board, pre.name)  # the command the result names
    assert undo.returncode == 0, undo.stderr
    assert {r["id"] for r in rows(board, "tasks")} == before and MARKS not in tables(board)


def _orphans(board: Path) -> set:
    from kanban_migrate.head import TASK_CHILDREN

    return {(t, r[0]) for t, c in TASK_CHILDREN.items()
            for r in _sql(board, f"SELECT rowid FROM {t} WHERE {c} NOT IN (SELECT id FROM tasks)")}


def test_rows_whose_task_is_gone_are_left_out_and_references_kept_true(lost):
    """A copy holding events of a task that is in neither, and a task naming a run it does not own."""
    board, report, _ = lost
    copy = board.with_name("kanban.db.pre-upgrade.00000000c0ffee00.bak")
    shutil.copyfile(board, copy)
    victim, other = [r["id"] for r in rows(board, "tasks")][:2]
    foreign_run = _sql(board, "SELECT id FROM task_runs WHERE task_id != ? LIMIT 1", (other,))[0][0]
    _sql(copy, "DELETE FROM tasks WHERE id = ?", (victim,))
    _sql(copy, "UPDATE tasks SET current_run_id = ?, status = 'done' WHERE id = ?", (foreign_run, other))
    _sql(copy, "UPDATE task_events SET run_id = ? WHERE task_id = ?", (foreign_run, other))
    n_events = _sql(board, "SELECT count(*) FROM task_events WHERE task_id = ?", (victim,))[0][0]
    _sql(board, "DELETE FROM task_events WHERE task_id IN (?, ?)", (victim, other))
    _sql(board, "DELETE FROM tasks WHERE id IN (?, ?)", (victim, other))
    orphans = _orphans(board)  # recover's own (the tasks it lost): the pre-upgrade backup holds them
    result = bring_back(board, copy.name)
    assert result.code == 1 and result.left_out == {"task_events": n_events}, result.lines()
    assert any("neither the board nor" in r for r in result.reasons)
    assert result.rows["tasks"] == 1 and result.cleared
    assert _sql(board, "SELECT current_run_id FROM tasks WHERE id = ?", (other,)) == [(None,)]
    assert _sql(board, "SELECT count(*), count(run_id) FROM task_events WHERE task_id = ?", (other,))[0][1] == 0
    assert result.rows["task_events"] == _sql(copy, "SELECT count(*) FROM task_events WHERE task_id = ?", (other,))[0][0]
    assert _sql(board, "SELECT count(*) FROM task_events WHERE task_id = ?", (victim,)) == [(0,)]
    assert _orphans(board) < orphans  # nothing brought back lacks its task; the returned task has its rows


def test_a_wal_backup_is_read_through_a_private_copy(lost):
    """A kept copy with a -wal (rows only in the WAL) and no -shm: found and brought back; nothing is
    written beside the copy."""
    board, report, _ = lost
    copy = board.with_name("kanban.db.pre-restore.00000000000a11ce.bak")
    corruption.commit_only_in_wal(board, copy, "INSERT INTO tasks (id, title, status, created_at) "
                                             "VALUES ('t_wa1', 'in the wal', 'todo', 1)")
    state = {p.name: sha256(p) for p in board.parent.iterdir() if p.name.startswith(copy.name)}
    found = {h.name: h for h in holdings(board)}[copy.name]
    assert found.rows == {"tasks": 1} and found.samples["tasks"] == ["t_wa1"]
    assert bring_back(board, copy.name).rows == {"tasks": 1}
    assert {p.name: sha256(p) for p in board.parent.iterdir() if p.name.startswith(copy.name)} == state


def _holder(board: Path):
    code = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('SELECT count(*) FROM tasks').fetchone(); print('open', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(board)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def _efbig():
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_refusals_leave_the_board_and_the_copies_unchanged(lost, kanban_board):
    board, report, backup = lost
    other = kanban_board(shape="v0", tasks=TASKS, seed=99, name="other.db")
    other_backup = Path(upgrade(other).backup)
    disguised = board.with_name("kanban.db.pre-upgrade.0123456789abcdef.bak")  # another board's, renamed
    shutil.copyfile(other_backup, disguised)
    not_a_board = board.with_name("kanban.db.pre-upgrade.fedcba9876543210.bak")
    not_a_board.write_text("not sqlite\n" * 100)
    cases = [  # (args, exit code, what the line says)
        ((board.with_name("gone.bak"),), 2, "no such file"),
        (("nomatch",), 2, "matches no backup"),
        ((other_backup,), 3, "is not a kept copy"),
        ((disguised.name,), 3, "a copy of another board"),
        ((not_a_board.name,), 3, "not a SQLite database"),
        ((Path(report.original).name,), 3, "the kept copy is damaged"),  # the original recover kept
        ((backup.name, "--output", board.with_name("out.db")), 2, "--from-backup"),
    ]
    folder = board.parent
    for args, code, says in cases:
        state = dir_state(folder)
        proc = cli("recover", board, "--from-backup", *args)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("kanban-migrate: ") and says in lines[0], (args, lines)
        assert dir_state(folder) == state, args
    state = dir_state(folder)
    holder = _holder(board)
    try:
        proc = cli("recover", board, "--from-backup", backup.name)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 4 and "in use" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert dir_state(folder) == state
    proc = cli("recover", board, "--from-backup", backup.name, preexec_fn=_efbig)  # the work copy cannot be made
    assert proc.returncode == 5 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert dir_state(folder) == state


def test_a_board_with_a_pending_wal_is_unchanged_until_rows_come_back(lost, kanban_board):
    """A WAL board whose -wal holds a commit (no process has it open): a refusal and a run with
    nothing to bring back leave its files as they were (no checkpoint); bringing rows back keeps
    the commit that was only in the WAL."""
    board, report, backup = lost
    corruption.commit_only_in_wal(board, board, "UPDATE tasks SET title = 'only in the wal' WHERE rowid = 1")
    other = kanban_board(shape="v0", tasks=TASKS, seed=99, name="other.db")
    disguised = board.with_name("kanban.db.pre-upgrade.0123456789abcdef.bak")
    shutil.copyfile(Path(upgrade(other).backup), disguised)
    same = board.with_name("kanban.db.pre-restore.5a5a5a5a5a5a5a5a.bak")  # holds nothing the board lacks
    shutil.copyfile(board, same)
    shutil.copyfile(f"{board}-wal", f"{same}-wal")
    state = dir_state(board.parent)
    proc = cli("recover", board, "--from-backup", disguised.name)
    assert proc.returncode == 3 and "another board" in proc.stderr, proc.stderr
    assert dir_state(board.parent) == state
    proc = cli("recover", board, "--from-backup", same.name)
    assert proc.returncode == 0 and "nothing to bring back" in proc.stdout, proc.stdout + proc.stderr
    assert dir_state(board.parent) == state
    result = bring_back(board, backup.name)
    assert result.code == 0 and result.rows["tasks"] == len(report.missing_tasks)
    assert _sql(board, "SELECT title FROM tasks WHERE rowid = 1") == [("only in the wal",)]


def test_a_drifted_copy_is_compared_only_where_its_ids_are_the_boards(kanban_board):
    """A copy whose side tables have text ids (the upgrade renumbers them): those tables are never
    compared or brought back (exit 1 says so); tasks still are."""
    board = kanban_board(shape="drifted", tasks=40, seed=3, name="kanban.db")
    backup = Path(upgrade(board).backup)
    victim = rows(board, "tasks")[0]["id"]
    for table, column in (("task_links", "parent_id"), ("task_links", "child_id"), ("task_events", "task_id"),
                          ("task_comments", "task_id"), ("task_runs", "task_id"), ("kanban_notify_subs", "task_id")):
        _sql(board, f"DELETE FROM {table} WHERE {column} = ?", (victim,))
    _sql(board, "DELETE FROM tasks WHERE id = ?", (victim,))
    held = {h.name: h for h in holdings(board)}[backup.name]
    assert held.rows.get("tasks") == 1 and any("renumbers" in n for n in held.notes)
    drifted = {n.split(":")[0] for n in held.notes}
    assert drifted and not drifted & set(held.rows)
    result = bring_back(board, backup.name)
    assert result.code == 1 and set(result.not_compared) == drifted and result.rows.get("tasks") == 1
    assert not drifted & set(result.rows)


def test_a_damaged_copy_is_named_but_never_offered(lost):
    """A second damage and recover: the first run's quarantine copy (damaged) may hold lost rows
    too; the report says it is damaged and offers only the sound copy's command."""
    board, first, backup = lost
    corruption.overwrite_leaf(board, "tasks", random.Random(11))
    report = recover(board)
    text = "\n".join(report.lines())
    old = Path(first.original).name
    held = {h["name"]: h for h in report.lost_rows_in_backups}
    assert held[backup.name]["damaged"] is None and f"--from-backup {backup.name}" in text, text
    assert held[old]["rows"] and held[old]["damaged"] and f"but {old} is damaged" in text, text
    assert f"--from-backup {old}" not in text
    assert Path(report.original).name not in held


def test_a_killed_run_leaves_the_board_as_it_was_and_its_work_is_removed_next_time(lost):
    """SIGKILL once the copy of the backup is at head in the work folder: the board is as it was;
    the next command that looks at the board removes the work folder (the swap journal's rule)."""
    board, _, backup = lost
    state = dir_state(board.parent)
    code = ("import os, sys; import kanban_migrate.recovering.frombackup as f\n"
            "real = f._copy_to_head\n"
            "def killed(*a):\n    real(*a); os.kill(os.getpid(), 9)\n"
            "f._copy_to_head = killed\nf.bring_back(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(board), backup.name], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert dir_state(board.parent) != state  # the work folder and the journal are there
    assert cli("status", board).returncode in (0, 1)
    assert dir_state(board.parent) == state
