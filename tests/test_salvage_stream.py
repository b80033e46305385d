"""Rows as streams, and SQLite reading what it can (issue 13).

Clean runs of a table's b-tree are verified by SQLite reading them back and copied by it;
everything else is decoded in Python and spooled. These tests try to make the two paths
disagree: damage beside a run, invalid UTF-8 inside one, a destination refusing a run, rows
iterated twice, and a spool that must leave nothing behind.
"""
from __future__ import annotations

import os
import random
import sqlite3
import sys
import threading
from pathlib import Path

import pytest


from kanban_migrate.salvage import copy_sound_rows, salvage
from kanban_migrate.salvage.model import SPOOL_BATCH, RowidSet, Segment, Spool

sys.path.insert(0, str(Path(__file__).parent))
import corruption as C  # noqa: E402

SQL = "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, n INTEGER)"


def _board(path: Path, rows: int = 3000) -> dict[int, tuple]:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA page_size=1024")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute(SQL)
    rng = random.Random(5)
    con.execute("BEGIN")
    for i in range(1, rows + 1):
        body = "x" * rng.randint(0, 1500) if i % 97 == 0 else f"body {i} é 数据"
        con.execute("INSERT INTO notes VALUES (?,?,?,?)", (i, f"title {i}", body, i * 7))
    con.execute("COMMIT")
    truth = {r[0]: tuple(r) for r in con.execute("SELECT * FROM notes")}
    con.close()
    return truth


def _copy_all(res, tmp_path: Path) -> tuple[int, dict[int, tuple]]:
    """Copy what SQLite can into a fresh database, then the rest from the stream."""
    dest = sqlite3.connect(tmp_path / "dest.db", isolation_level=None)
    dest.execute(SQL)
    dest.execute("BEGIN")
    t = res.tables["notes"]
    copied = copy_sound_rows(res, "notes", dest, t.columns)
    rest = list(t.rows)
    for r in rest:
        dest.execute("INSERT INTO notes VALUES (?,?,?,?)", r.values)
    dest.execute("COMMIT")
    got = {r[0]: tuple(r) for r in dest.execute("SELECT * FROM notes")}
    dest.close()
    assert copied + len(rest) == len(got), "a row was copied and streamed both"
    return copied, got


def test_intact_table_is_sound_and_copied_by_sqlite(tmp_path):
    path = tmp_path / "b.db"
    truth = _board(path)
    with salvage(path) as res:
        t = res.tables["notes"]
        assert t.sound and t.source_path == str(path)
        assert len(t.rows) == len(truth)
        assert [r.values for r in t.rows] == [r.values for r in t.rows]   # iterable again
        assert {r.rowid: r.values for r in t.rows} == truth
        copied, got = _copy_all(res, tmp_path)
        assert copied == len(truth) and got == truth
        assert len(t.rows) == 0 and list(t.rows) == []


def test_damaged_leaf_splits_runs_and_nothing_doubles(tmp_path):
    path = tmp_path / "b.db"
    truth = _board(path)
    leaves = C.leaf_pages(path, "notes")
    victim = leaves[len(leaves) // 2]
    with salvage(path) as res:
        destroyed = {r.rowid for r in res.tables["notes"].rows if r.page == victim}
    C.write_page(path, victim, random.Random(1).randbytes(1024))
    with salvage(path) as res:
        t = res.tables["notes"]
        assert not t.sound and len(t.rows.runs) >= 2 and all(r.verified for r in t.rows.runs)
        copied, got = _copy_all(res, tmp_path)
    assert copied > 0
    assert got == {k: v for k, v in truth.items() if k not in destroyed}


def test_invalid_utf8_goes_through_python_and_is_kept(tmp_path):
    path = tmp_path / "b.db"
    truth = _board(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE notes SET body = CAST(x'41c328ff42' AS TEXT) WHERE id = 1500")
    con.commit()
    con.close()
    with salvage(path) as res:
        t = res.tables["notes"]
        assert not t.sound                      # the run holding row 1500 is not SQLite's to copy
        bad = [r for r in t.rows if r.rowid == 1500]
        assert bad[0].values[2].encode("utf-8", "surrogateescape") == b"A\xc3(\xffB"
        dest = sqlite3.connect(tmp_path / "dest.db", isolation_level=None)
        dest.execute(SQL)
        copy_sound_rows(res, "notes", dest, t.columns)
        assert dest.execute("SELECT count(*) FROM notes WHERE id = 1500").fetchone()[0] == 0
        streamed = {r.rowid for r in t.rows}
        assert 1500 in streamed and len(streamed) + dest.execute("SELECT count(*) FROM notes").fetchone()[0] == len(truth)
        dest.close()


def test_a_run_the_destination_refuses_stays_in_the_stream(tmp_path):
    path = tmp_path / "b.db"
    truth = _board(path)
    with salvage(path) as res:
        t = res.tables["notes"]
        dest = sqlite3.connect(tmp_path / "dest.db", isolation_level=None)
        dest.execute(SQL.replace("n INTEGER", "n INTEGER CHECK (n <> 7 * 2000)"))
        dest.execute("BEGIN")
        copied = copy_sound_rows(res, "notes", dest, t.columns)
        rest = {r.rowid for r in t.rows}
        dest.execute("COMMIT")
        have = {r[0] for r in dest.execute("SELECT id FROM notes")}
        dest.close()
    assert 2000 in rest and 2000 not in have
    assert copied == len(have) and have | rest == set(truth) and not have & rest


def test_wal_overlay_keeps_the_python_path(tmp_path):
    path = tmp_path / "b.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute(SQL)
    con.executemany("INSERT INTO notes VALUES (?,?,?,?)", [(i, f"t{i}", "b", i) for i in range(1, 500)])
    keep = sqlite3.connect(path)          # keeps the WAL from being checkpointed away on close
    keep.execute("SELECT count(*) FROM notes").fetchone()
    con.close()
    assert Path(f"{path}-wal").stat().st_size > 0
    with salvage(path) as res:
        t = res.tables["notes"]
        assert not t.source_path and not t.rows.runs     # SQLite would not see the WAL's pages
        assert len(t.rows) == 499
    keep.close()


def test_rowid_set_matches_a_set():
    rng = random.Random(7)
    rs, ref = RowidSet(), set()
    for _ in range(5000):
        r = rng.randint(-50, 400)
        assert rs.add(r) == (r not in ref)
        ref.add(r)
        assert all(a <= b for a, b in zip(rs.lo, rs.hi))
    assert all((r in rs) == (r in ref) for r in range(-60, 410))
    rs2 = RowidSet()
    rs2.extend_ascending([1, 2, 3, 10, 11])
    rs2.extend_ascending([12, 13])
    assert (rs2.lo, rs2.hi) == ([1, 10], [3, 13])


def test_spool_batches_keep_order_and_leave_nothing_behind(tmp_path):
    spool = Spool(tmp_path)
    seg = Segment(spool)
    items = [(i, ("v\udcff" * (i % 3), b"\x00", 1.5, None), "orphan", i) for i in range(SPOOL_BATCH * 2 + 5)]
    for it in items:
        seg.append(it)
    assert list(seg) == items and list(seg) == items and len(seg) == len(items)
    assert os.listdir(tmp_path) == []       # an anonymous file: nothing to clean up, even after a crash
    spool.close()


@pytest.mark.parametrize("time_limit", [0.0, 60.0])
def test_read_back_thread_never_outlives_the_salvage(tmp_path, time_limit):
    path = tmp_path / "b.db"
    _board(path, rows=800)
    with salvage(path, time_limit=time_limit) as res:
        assert not [t for t in threading.enumerate() if t.name == "salvage-read-back"]
        if time_limit:
            assert res.tables["notes"].sound
        else:
            assert res.timed_out


def test_recover_lets_sqlite_copy_the_sound_runs(tmp_path, monkeypatch, kanban_board):
    """Through recover's load step: most rows are copied by SQLite, the rest streamed, and the
    rebuilt board holds every surviving row once."""
    import kanban_migrate.salvage as salvage_pkg
    from kanban_migrate import recover

    board = kanban_board("v7", tasks=300, seed=4, journal_mode="delete", name="kanban.db")
    truth = {r[0] for r in sqlite3.connect(board).execute("SELECT id FROM task_events")}
    victim = C.leaf_pages(board, "task_events")[1]
    with salvage(board) as res:
        destroyed = {r.rowid for r in res.tables["task_events"].rows if r.page == victim}
    C.write_page(board, victim, random.Random(8).randbytes(C.page_size(board)))
    copied: dict[str, int] = {}
    real = salvage_pkg.copy_sound_rows

    def spy(result, table, *args, **kwargs):
        copied[table] = real(result, table, *args, **kwargs)
        return copied[table]
    monkeypatch.setattr(salvage_pkg, "copy_sound_rows", spy)
    out = tmp_path / "out.db"
    recover(board, output=out)
    got = [r[0] for r in sqlite3.connect(out).execute("SELECT id FROM task_events")]
    assert sorted(got) == sorted(truth - destroyed)
    assert copied["task_events"] == len(got) and copied["tasks"] == 300


def test_orphan_steps_one_by_one(tmp_path):
    """The phases run on their own over one state: a zeroed interior page leaves its leaves
    unreached, the orphan steps find them, group them and give their rows back."""
    from kanban_migrate.salvage import engine, orphans
    from kanban_migrate.salvage.walk import walk_all

    path = tmp_path / "b.db"
    truth = _board(path, rows=6000)
    pages = C.btree_pages(path, C.root_of(path, "notes"))
    interior = next(p for p, kind in sorted(pages.items()) if kind == 0x05 and p != C.root_of(path, "notes"))
    C.write_page(path, interior, b"")
    sv, _probe = engine.open_state(str(path), False)
    engine.phase_header(sv)
    engine.phase_schema(sv)
    walk_all(sv, sv.schema)
    t = sv.tables["notes"]
    assert t.out.missing_subtrees == 1 and "table:notes" not in sv.complete
    scan = orphans.find_unreached(sv)
    assert scan.leaves and set(scan.leaves.values()) == {"orphan"}
    orphans.group_by_interiors(sv, scan)
    orphans.place_table_leaves(sv, scan)
    assert t.out.orphan_rows > 0 and all(pg in sv.claimed for pg in scan.leaves)
    assert {r.rowid: r.values for r in t.rows} == truth


def test_the_damaged_files_schema_is_never_trusted(tmp_path):
    """SQLite reads the salvaged file through its own schema only with trusted_schema off, so a
    view, trigger or generated column that file declares can run no function that is not innocuous."""
    from kanban_migrate.salvage.sqlcopy import attach_source

    path = tmp_path / "b.db"
    _board(path)
    with salvage(path) as res:
        conn = sqlite3.connect(":memory:")
        conn.execute("PRAGMA trusted_schema=ON")
        try:
            assert attach_source(conn, res)
            assert conn.execute("PRAGMA trusted_schema").fetchone() == (0,)
        finally:
            conn.close()
