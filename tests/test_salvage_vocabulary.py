"""Value lists (statuses, outcomes, delivery modes) are open vocabularies: they may help to
attribute an orphaned page to a table, never reject a row whose structure fits (issue 9).

The boards are real fixtures of the v1 era whose task_runs and tasks carry the values the real
application writes (``completed``, ``spawn_failed``, ``review_requested``...) and arbitrary
ones; one task_runs page is damaged, and every intact row must land in task_runs."""
from __future__ import annotations

import random
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from kanban_migrate import recover
from kanban_migrate.recovering.shapes import known_shapes
from kanban_migrate.salvage import TableShape, salvage
from kanban_migrate.salvage.shapes import candidate_from_shape, pick_candidate

sys.path.insert(0, str(Path(__file__).parent))
import corruption as C  # noqa: E402

RUN_STATUSES = ["completed", "spawn_failed", "gave_up", "scheduled", "review", "ready", "paused-by-ops", "Ω"]
OUTCOMES = ["review_requested", "changes_requested", "scheduled", "handed_off", None]
TASK_STATUSES = ["someday", "review", "ready", "parked"]


@pytest.fixture(scope="module")
def v1_board(tmp_path_factory, kanban_board_template) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "kanban.db"
    shutil.copyfile(kanban_board_template("v1", tasks=600, seed=13, journal_mode="delete"), path)
    rng = random.Random(9)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN")
    for (rid,) in con.execute("SELECT id FROM task_runs").fetchall():
        con.execute("UPDATE task_runs SET status=?, outcome=? WHERE id=?",
                    (rng.choice(RUN_STATUSES), rng.choice(OUTCOMES), rid))
    for (tid,) in con.execute("SELECT id FROM tasks").fetchall()[::5]:
        con.execute("UPDATE tasks SET status=? WHERE id=?", (rng.choice(TASK_STATUSES), tid))
    con.execute("COMMIT")
    con.close()
    assert len(C.leaf_pages(path, "task_runs")) >= 3, "task_runs needs an interior root for the test"
    return path


def _rows(path: Path, table: str) -> dict[int, tuple]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0]: tuple(r) for r in con.execute(f"SELECT * FROM {table}")}
    finally:
        con.close()


def _rowids_on(path: Path, pgno: int) -> set[int]:
    with salvage(path, shapes=known_shapes()) as res:
        return {r.rowid for r in res.tables["task_runs"].rows if r.page == pgno}


def _damage(kind: str, src: Path, dst: Path) -> set[int]:
    """Damage a copy; returns the task_runs rowids the damage destroyed."""
    dst.write_bytes(src.read_bytes())
    if kind == "root zeroed":
        C.zero_root(dst, "task_runs", random.Random(1))
        return set()
    pg = random.Random(2).choice(C.leaf_pages(src, "task_runs"))
    C.write_page(dst, pg, random.Random(3).randbytes(C.page_size(dst)))
    return _rowids_on(src, pg)


@pytest.mark.parametrize("kind", ["root zeroed", "leaf overwritten"])
def test_rows_outside_every_list_land_in_their_table(v1_board, tmp_path, kind):
    truth = _rows(v1_board, "task_runs")
    assert {r[4] for r in truth.values()} - set(RUN_STATUSES) == set()
    damaged = tmp_path / "damaged.db"
    destroyed = _damage(kind, v1_board, damaged)
    with salvage(damaged, shapes=known_shapes()) as res:
        got = {r.rowid: r.values for r in res.tables["task_runs"].rows}
        lost_runs = [r for r in res.lost_and_found if r.table == "task_runs" or
                     (len(r.values) == 16 and r.values[4] in RUN_STATUSES)]
    want = {k: v for k, v in truth.items() if k not in destroyed}
    assert {k: got.get(k) for k in want} == want
    assert lost_runs == []
    if kind == "root zeroed":
        assert res.tables["task_runs"].orphan_rows == len(truth)


def test_recover_keeps_rows_with_unknown_values(v1_board, tmp_path):
    truth = _rows(v1_board, "task_runs")
    damaged = tmp_path / "kanban.db"
    _damage("root zeroed", v1_board, damaged)
    out = tmp_path / "recovered.db"
    report = recover(damaged, output=out)
    assert report.mode == "salvage" and report.lost_and_found == 0
    con = sqlite3.connect(out)
    got = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, status, outcome FROM task_runs")}
    con.close()
    assert {k: (v[4], v[12]) for k, v in truth.items()} == {k: got.get(k) for k in truth}


def test_hints_never_reject_and_help_attribution():
    """Two tables of the same structure: a value list decides whose page it is, and a record
    with a value outside it still fits."""
    runs = TableShape.from_sql("CREATE TABLE runs (id INTEGER PRIMARY KEY, status TEXT NOT NULL)",
                               hints={"status": {"running", "done"}})
    notes = TableShape.from_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    c_runs, c_notes = candidate_from_shape("runs", runs), candidate_from_shape("notes", notes)
    assert c_runs.score([None, "completed"]) == 0          # outside the list: fits, no hit
    assert c_runs.score([None, "done"]) == 1               # in the list: a more specific match
    assert c_runs.score([None, 7]) == -1                   # the structure still decides
    page = [(i, [None, s]) for i, s in enumerate(["done", "running", "spawn_failed", "done"], 1)]
    cand, _stale = pick_candidate({}, [c_notes, c_runs], page, None)
    assert cand is c_runs
    odd = [(i, [None, s]) for i, s in enumerate(["completed", "gave_up"], 1)]
    cand, _stale = pick_candidate({}, [c_runs, c_notes], odd, None)
    assert cand is None      # nothing tells the two apart: lost_and_found, never a rejection
