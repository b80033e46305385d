"""recover: realistic boards damaged in each way, compared with the ground truth (the board before
damage, upgraded): nothing invented, and a yield floor per kind of damage."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import corruption as C
from support import dir_state, pragma_rows, rows, sha256
from kanban_migrate import head, schema
from kanban_migrate.board import journal_mode_for
from kanban_migrate.errors import ExitCode, Refused
from kanban_migrate.recovering import recover
from kanban_migrate.salvage.dump import FREELIST_MARKS
from kanban_migrate.upgrading import upgrade

KEYS = {"tasks": ("id",), "task_links": ("parent_id", "child_id"),
        "kanban_notify_subs": ("task_id", "platform", "chat_id", "thread_id")}


def key(table, row):
    return tuple(row[k] for k in KEYS.get(table, ("id",)))


@pytest.fixture
def damaged(tmp_path, kanban_board_template):
    """(board, truth): a fresh v2b board (600 tasks) to damage, and the same board upgraded."""
    src = kanban_board_template("v2b", 600, 4)
    board = tmp_path / "kanban.db"
    shutil.copyfile(src, board)
    truth = tmp_path / "truth.db"
    shutil.copyfile(src, truth)
    upgrade(truth, backup=False)
    return board, truth


def chain_made(table, row) -> bool:
    """A run the revision chain made for a running task without one (fixture runs all carry
    metadata; the chain never sets it)."""
    return table == "task_runs" and row["metadata"] is None


def compare(recovered: Path, truth: Path, *, tolerate: int = 0) -> dict[str, float]:
    """Every recovered row must be a row of the truth with the same values, except at most
    ``tolerate`` rows whose bytes the damage itself changed (bit flips, a garbage overflow page:
    SQLite files have no checksums, such damage cannot be told from data). Returns the yield per
    table (rows recovered unchanged / rows in the truth)."""
    yields, altered = {}, []
    for table in ("tasks", "task_events", "task_comments", "task_links", "kanban_notify_subs", "task_runs"):
        want = {key(table, r): r for r in rows(truth, table) if not chain_made(table, r)}
        matched = 0
        for r in rows(recovered, table):
            if chain_made(table, r):
                continue
            k = key(table, r)
            w = want.get(k)
            same = w is not None and all(
                value == w[col] for col, value in r.items()
                if col != "_rowid_" and not (table == "tasks" and col == "current_run_id"))
            if same:
                matched += 1
            else:
                altered.append((table, k))
        yields[table] = matched / len(want) if want else 1.0
    assert len(altered) <= tolerate, f"rows invented or altered: {altered[:10]}"
    return yields


CASES = {
    # name: (damage(board, rng), {table: minimum yield}, exit codes allowed)
    "table-leaf-overwritten": (lambda b, r: C.overwrite_leaf(b, "task_events", r), {"task_events": 0.93, "tasks": 1.0}),
    "interior-page-zeroed": (lambda b, r: C.zero_interior(b, "task_events", r), {"task_events": 1.0, "tasks": 1.0}),
    "root-page-zeroed": (lambda b, r: C.zero_root(b, "task_events", r), {"task_events": 1.0, "tasks": 1.0}),
    "index-pages-only": (lambda b, r: C.garble_index(b, "idx_events_task", r), {"task_events": 1.0, "tasks": 1.0}),
    "truncated-half": (lambda b, r: C.truncate_half(b, r), {"tasks": 0.3}),
    "bit-flips": (lambda b, r: C.bit_flips(b, r), {"tasks": 0.8, "task_events": 0.8}),
    "overflow-broken": (lambda b, r: C.break_overflow(b, r), {"tasks": 0.99, "task_events": 1.0}),
    "header-overwritten": (lambda b, r: C.overwrite_header(b, r), dict.fromkeys(
        ("tasks", "task_events", "task_comments", "task_links", "kanban_notify_subs", "task_runs"), 1.0)),
    "schema-page-damaged": (lambda b, r: C.damage_schema_page(b, r), dict.fromkeys(
        ("tasks", "task_events", "task_comments", "task_links", "kanban_notify_subs", "task_runs"), 1.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_recover_damaged_board(case, damaged, tmp_path):
    board, truth = damaged
    damage, floors = CASES[case]
    damage(board, random.Random(f"{case}-1125"))
    report = recover(board)
    assert report.code in (0, 1)
    assert report.original and Path(report.original).exists()
    assert sha256(Path(report.original)) != sha256(board)
    assert pragma_rows(board, "integrity_check") == [("ok",)]
    assert schema.at_head(schema.snapshot(sqlite3.connect(board)), head.expected())
    # the rebuilt board is a new board to the application's journal-mode rule
    assert pragma_rows(board, "journal_mode") == [(journal_mode_for("delete") or "delete",)]
    assert not Path(str(board) + "-wal").exists()
    # bit flips change values where they land (60 flips); a garbage overflow page changes the
    # one row it belongs to (3 pages); every other kind of damage must leave values untouched.
    tolerate = {"bit-flips": 60, "overflow-broken": 3}.get(case, 0)
    yields = compare(board, truth, tolerate=tolerate)
    for table, floor in floors.items():
        assert yields[table] >= floor, (table, yields[table], report.lines())
    if all(y == 1.0 for y in yields.values()):
        assert not report.missing_tasks


def left_by_a_killed_writer(board: Path, folder: Path, statements) -> Path:
    """The files a writer killed after committing leaves: its commits are in the -wal, never
    checkpointed (the files are copied while it still has the board open)."""
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")  # fresh fixtures follow the gate: DELETE on SQLite < 3.51.3
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("BEGIN")
    for sql, args in statements:
        conn.execute(sql, args)
    conn.execute("COMMIT")
    folder.mkdir()
    shutil.copyfile(board, folder / "kanban.db")
    shutil.copyfile(Path(str(board) + "-wal"), folder / "kanban.db-wal")
    conn.close()
    return folder / "kanban.db"


def test_uncheckpointed_wal_beside_a_damaged_main_file(tmp_path, kanban_board_template):
    src = kanban_board_template("v7", 300, 8)
    board = tmp_path / "kanban.db"
    shutil.copyfile(src, board)
    inserts = [("INSERT INTO tasks (id, title, status, created_at) VALUES (?, ?, 'todo', 1790000000)",
                (f"t_f{i:07x}", f"from the WAL {i}")) for i in range(50)]
    victim = left_by_a_killed_writer(board, tmp_path / "crashed", inserts)
    pg = C.leaf_pages(victim, "task_events")[0]
    C.write_page(victim, pg, random.Random(3).randbytes(C.page_size(victim)))
    report = recover(victim)
    assert report.wal_commits
    titles = {r["title"] for r in rows(victim, "tasks")}
    assert {f"from the WAL {i}" for i in range(50)} <= titles
    assert len(rows(victim, "tasks")) == 350


def test_wal_only_board(tmp_path, kanban_board_template):
    """A board whose main file is fine and whose WAL holds commits: checkpoint, nothing salvaged."""
    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v5", 100, 2), board)
    victim = left_by_a_killed_writer(board, tmp_path / "snap", [("UPDATE tasks SET title = title || ' (edited)'", ())])
    report = recover(victim)
    assert report.mode == "wal-only" and report.code == 0
    assert all(r["title"].endswith("(edited)") for r in rows(victim, "tasks"))


def test_index_only_damage_is_reindexed(tmp_path, kanban_board_template):
    src = kanban_board_template("v7", 100, 2)
    board = tmp_path / "kanban.db"
    shutil.copyfile(src, board)
    C.mismatch_index(board, "idx_tasks_status", "tasks", "assignee")
    lines = [r[0] for r in pragma_rows(board, "integrity_check")]
    assert any("missing from index idx_tasks_status" in line for line in lines)
    before = rows(board, "tasks")
    report = recover(board)
    assert report.mode == "reindex" and report.code == 0
    assert pragma_rows(board, "integrity_check") == [("ok",)]
    assert rows(board, "tasks") == before


def test_healthy_board_is_left_alone(kanban_board):
    board = kanban_board("v7", tasks=120, name="kanban.db")
    state = dir_state(board.parent)
    report = recover(board)
    assert report.mode == "healthy" and report.code == 0 and report.original is None
    assert dir_state(board.parent) == state


def test_output_leaves_the_source_untouched(damaged, tmp_path):
    board, truth = damaged
    C.zero_root(board, "task_events", random.Random(1))
    state = dir_state(board.parent)
    out = tmp_path / "out" / "recovered.db"
    report = recover(board, output=out, dump=tmp_path / "out" / "salvage.sql")
    state.pop("out/recovered.db", None)
    after = dir_state(board.parent)
    after = {k: v for k, v in after.items() if not k.startswith("out")}
    assert after == {k: v for k, v in state.items() if not k.startswith("out")}
    assert report.output == str(out)
    assert compare(out, truth)["task_events"] == 1.0
    # the dump loads into any sqlite3
    dump_db = tmp_path / "from-dump.db"
    c = sqlite3.connect(dump_db)
    c.executescript((tmp_path / "out" / "salvage.sql").read_text(encoding="utf-8"))
    assert c.execute("SELECT COUNT(*) FROM task_events").fetchone()[0] == len(rows(truth, "task_events"))
    c.close()


def test_repeated_recovery_does_not_pile_up_copies(damaged, tmp_path):
    board, _ = damaged
    C.zero_root(board, "task_events", random.Random(1))
    damaged_copy = tmp_path / "damaged-copy.db"
    shutil.copyfile(board, damaged_copy)
    first = recover(board)
    shutil.copyfile(damaged_copy, board)
    second = recover(board)
    assert first.original == second.original
    assert len(list(board.parent.glob("kanban.db.corrupt.*.bak"))) == 1


def test_in_use_board_is_refused(kanban_board):
    board = kanban_board("v7", tasks=120, name="kanban.db")
    C.zero_root(board, "task_events", random.Random(2))
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; f = open(sys.argv[1], 'rb'); print('open', flush=True); time.sleep(60)",
                               str(board)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        state = dir_state(board.parent)
        proc = subprocess.run([sys.executable, "-m", "kanban_migrate", "recover", str(board)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == ExitCode.BUSY
        assert len(proc.stderr.strip().splitlines()) == 1 and "in use" in proc.stderr
        assert dir_state(board.parent) == state
    finally:
        holder.kill()
        holder.wait()


def test_nothing_recoverable(tmp_path):
    junk = tmp_path / "kanban.db"
    junk.write_bytes(random.Random(5).randbytes(64 * 1024))
    state = dir_state(tmp_path)
    with pytest.raises(Refused, match="nothing could be recovered"):
        recover(junk)
    assert dir_state(tmp_path) == state


def test_cli_json(damaged):
    board, _ = damaged
    C.zero_interior(board, "task_events", random.Random(4))
    proc = subprocess.run([sys.executable, "-m", "kanban_migrate", "recover", "--json", str(board)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "salvage" and out["tables"]["task_events"]["recovered"] > 0


def test_garbage_freelist_trunk(tmp_path, kanban_board_template):
    """Deleted rows leave freelist pages; a garbage trunk must not crash or loop the salvage, and
    every live row comes back (deleted ones only with include_freelist, marked)."""
    src = kanban_board_template("v7", 600, 6)
    board = tmp_path / "kanban.db"
    shutil.copyfile(src, board)
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("DELETE FROM task_events WHERE id % 3 = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    truth = tmp_path / "truth.db"
    shutil.copyfile(board, truth)
    upgrade(truth, backup=False)
    trunk = C.garbage_freelist_trunk(board, random.Random(7))
    assert trunk, "the deletes should have made freelist pages"
    # make it malformed elsewhere too (with the events tree itself destroyed, a freed leaf page
    # could not be told from an orphaned live one once the freelist trunk is garbage)
    C.zero_root(board, "task_comments", random.Random(7))
    damaged_copy = tmp_path / "damaged.db"
    shutil.copyfile(board, damaged_copy)
    report = recover(board, include_freelist=False)
    yields = compare(board, truth)
    assert yields["task_events"] == 1.0 and yields["tasks"] == 1.0 and yields["task_comments"] == 1.0
    assert report.code in (0, 1)
    # with include_freelist, deleted rows may come back, but only marked as such: every event
    # the truth does not hold is listed in the marks table, and every live one is still there
    out = tmp_path / "with-freelist.db"
    again = recover(damaged_copy, output=out, include_freelist=True)
    live = {r["id"] for r in rows(truth, "task_events")}
    got = {r["id"] for r in rows(out, "task_events")}
    marked = {r["key"] for r in rows(out, FREELIST_MARKS) if r["table_"] == "task_events"} if again.freelist_rows else set()
    assert live <= got and got - live <= marked and not marked & live
    assert again.freelist_rows == len(marked) > 0, again.lines()
