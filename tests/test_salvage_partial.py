"""Rows whose overflow chain is broken stay in their own table with their readable part
(issue 8: "Damaged text is not always handled"), marked ``partial`` with the cut columns named;
only a record whose header is unreadable goes to lost_and_found."""
from __future__ import annotations

import random
import shutil
import sqlite3

import pytest

import corruption as C
from kanban_migrate.salvage import salvage
from kanban_migrate.salvage.fileformat import decode_record, decode_record_prefix


def _truth(path, table="tasks"):
    c = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        cols = [r[1] for r in c.execute(f"PRAGMA table_info({table})")]
        return cols, {r[0]: tuple(r[1:]) for r in c.execute(f"SELECT rowid, * FROM {table}")}
    finally:
        c.close()


@pytest.fixture
def broken_board(tmp_path, kanban_board_template):
    """(board, columns, truth, hit): a v2b board whose long task bodies lost the second page of
    their overflow chains to garbage (three rows), the ground truth, and {rowid: chain} hit."""
    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v2b", 600, 4), board)
    cols, truth = _truth(board)
    hit = C.garble_overflow_chains(board, "tasks", random.Random(8), count=3, at=1)
    assert len(hit) == 3
    return board, cols, truth, hit


def _prefix_of(cut, whole) -> bool:
    if cut is None:
        return True
    if isinstance(cut, str) and cut.endswith("\ufffd"):
        cut = cut[:-1]
    return type(cut) is type(whole) and whole[:len(cut)] == cut and len(cut) < len(whole)


def test_broken_chains_stay_in_their_table(broken_board):
    board, cols, truth, hit = broken_board
    with salvage(board) as res:
        t = res.tables["tasks"]
        assert t.columns == cols
        got = {r.rowid: r for r in t.rows}
        assert not [r for r in res.lost_and_found if r.table == "tasks"]
        assert set(got) == set(truth)
        for rowid, row in got.items():
            want = truth[rowid]
            if rowid not in hit:
                assert not row.partial and row.partial_columns == () and row.values == want
                continue
            assert row.partial and row.source == "btree"
            assert "body" in row.partial_columns
            cut = [cols.index(c) for c in row.partial_columns]
            assert cut == list(range(cols.index("body"), len(cols)))[:len(cut)]
            for i, (have, orig) in enumerate(zip(row.values, want)):
                if i in cut:
                    assert _prefix_of(have, orig), (cols[i], have, orig)
                else:
                    assert have == orig and type(have) is type(orig), cols[i]
            body = row.values[cols.index("body")]
            assert body and len(body) >= 1000     # the local part and the first overflow page


def test_recover_keeps_or_sets_aside_partial_rows(broken_board, tmp_path):
    """The rebuilt board: a partial row goes into tasks when the table takes it, and the report
    lists it (table, key, columns); a head tasks row cut before its NOT NULL columns (status,
    created_at) is refused by the table and is in lost_and_found instead, never dropped."""
    from kanban_migrate import recover

    board, cols, truth, hit = broken_board
    out = tmp_path / "out.db"
    report = recover(board, output=out)
    ids = {truth[r][0] for r in hit}
    listed = {p["key"]: p for p in report.partial_rows}
    c = sqlite3.connect(out)
    try:
        kept = {r[0]: r for r in c.execute("SELECT id, title FROM tasks")}
        lost_rows = c.execute("SELECT * FROM lost_and_found").fetchall() if c.execute(
            "SELECT 1 FROM sqlite_master WHERE name='lost_and_found'").fetchone() else []
    finally:
        c.close()
    print(report.partial_rows, report.partial_count, len(lost_rows), report.lost_and_found)
    for tid in ids:
        if tid in kept:
            assert listed[tid]["table"] == "tasks" and "body" in listed[tid]["columns"]
        else:
            assert tid not in listed
    assert report.partial_count == len(ids & set(kept))
    assert report.lost_and_found >= len(ids - set(kept))
    assert len(kept) >= len(truth) - len(ids)


def test_recover_puts_partial_rows_in_their_table(tmp_path, kanban_board_template):
    """Tasks whose long text is their last column (last_failure_error): a broken chain cuts only
    that column and max_retries after it, the table takes the row, the report lists it."""
    from kanban_migrate import recover

    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v2b", 600, 4), board)
    c = sqlite3.connect(board)
    picked = [r[0] for r in c.execute("SELECT rowid FROM tasks ORDER BY rowid LIMIT 4 OFFSET 100")]
    with c:
        c.executemany("UPDATE tasks SET body = 'short', last_failure_error = ? WHERE rowid = ?",
                      [(f"Traceback {i} émigré 数据 " * 900, r) for i, r in enumerate(picked)])
    c.execute("VACUUM")
    c.close()
    cols, truth = _truth(board)
    hit = C.garble_overflow_chains(board, "tasks", random.Random(3), count=2, at=1, rowids=set(picked))
    assert len(hit) == 2
    ids = {truth[r][0]: r for r in hit}
    with salvage(board) as res:
        rows = {r.rowid: r for r in res.tables["tasks"].rows if r.rowid in hit}
    assert set(rows) == set(hit)
    for rowid, row in rows.items():
        assert row.partial and row.partial_columns[0] == "last_failure_error"
    out = tmp_path / "out.db"
    report = recover(board, output=out)
    listed = {p["key"]: p for p in report.partial_rows}
    assert set(listed) == set(ids) and report.partial_count == len(ids)
    for tid, rowid in ids.items():
        assert listed[tid]["table"] == "tasks"
        assert listed[tid]["columns"][0] == "last_failure_error"
    c = sqlite3.connect(out)
    c.row_factory = sqlite3.Row
    try:
        got = {r["id"]: dict(r) for r in c.execute("SELECT * FROM tasks")}
    finally:
        c.close()
    assert set(ids) <= set(got)
    for tid, rowid in ids.items():
        want = dict(zip(cols, truth[rowid]))
        have = got[tid]
        assert _prefix_of(have["last_failure_error"], want["last_failure_error"])
        for name in ("title", "body", "status", "created_at", "assignee", "consecutive_failures"):
            assert have[name] == want[name], name
    assert report.lost_and_found == 0
    assert report.rows_lost        # rows kept only in part: the report's code says so


def test_decode_record_prefix():
    # header: size 4, types int8 (1), text of 6 bytes (25), float (7)
    rec = bytes([4, 1, 25, 7]) + b"\x05" + "ab€d".encode()[:6] + b"\0" * 8
    assert decode_record(rec, 0, len(rec)) == [5, "ab€d", 0.0]
    size = len(rec)
    assert decode_record_prefix(rec, size) == ([5, "ab€d", 0.0], [])
    assert decode_record_prefix(rec[:8], size) == ([5, "ab\ufffd", None], [1, 2])   # € cut mid-sequence
    assert decode_record_prefix(rec[:7], size) == ([5, "ab", None], [1, 2])
    assert decode_record_prefix(rec[:5] + b"\xff", size) == ([5, b"\xff".decode("utf-8", "surrogateescape"),
                                                              None], [1, 2])
    assert decode_record_prefix(rec[:5], size) == ([5, None, None], [1, 2])          # nothing of the text
    assert decode_record_prefix(rec[:3], size) is None                                # header cut
    assert decode_record_prefix(bytes([4, 1, 10, 7]) + rec[4:], size) is None        # reserved type
    assert decode_record_prefix(rec[:7], size + 1) is None                            # sizes do not add up
