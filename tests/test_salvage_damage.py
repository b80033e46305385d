"""The salvage engine on small kanban-like boards damaged in known ways.

Every case checks three things: salvage() does not raise; every row it returns in a
table exists unchanged in the ground truth (no invented or altered rows); and a yield
floor derived from *what the damage destroyed* (read from SQLite's dbstat page map of
the undamaged file), not from what the engine happened to return.

The board uses 1024-byte pages so that a few thousand rows give interior b-tree pages
two levels deep, overflow chains for long task bodies and a multi-page sqlite_schema.
"""
from __future__ import annotations

import os
import random
import shutil
import sqlite3
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

import corruption as C
from kanban_migrate.salvage import TableShape, salvage, wal_summary, write_dump
from kanban_migrate.salvage.fileformat import (DbHeader, decode_record, local_payload_size,
                                                read_varint, read_varint_signed)
from kanban_migrate.salvage.sqlschema import parse_create_table
from kanban_migrate.salvage.wal import read_wal

PAGE = 1024

TASKS_SQL = """CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    assignee TEXT,
    status TEXT NOT NULL,
    priority INTEGER DEFAULT 0,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    workspace_kind TEXT NOT NULL DEFAULT 'scratch',
    workspace_path TEXT,
    claim_lock TEXT,
    claim_expires INTEGER,
    tenant TEXT,
    result TEXT
)"""
EVENTS_SQL = """CREATE TABLE task_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    run_id INTEGER,
    kind TEXT NOT NULL,
    payload TEXT,
    created_at INTEGER NOT NULL
)"""
COMMENTS_SQL = """CREATE TABLE task_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
)"""
INDEXES = [
    "CREATE INDEX idx_tasks_assignee_status ON tasks(assignee, status)",
    "CREATE INDEX idx_tasks_status ON tasks(status)",
    "CREATE INDEX idx_tasks_tenant ON tasks(tenant)",
    "CREATE INDEX idx_comments_task ON task_comments(task_id, created_at)",
    "CREATE INDEX idx_events_task ON task_events(task_id, created_at)",
]
STATUSES = ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done", "archived"]
KINDS = ["created", "promoted", "claimed", "heartbeat", "completed", "blocked", "gave_up", "reprioritized"]
TASK_ID = r"t_[0-9a-f]{8}"

SHAPES = {
    "tasks": TableShape.from_sql(TASKS_SQL, label="test-head",
                                 checks={"id": TASK_ID, "status": set(STATUSES),
                                         "workspace_kind": {"scratch", "worktree", "dir"}}),
    "task_events": TableShape.from_sql(EVENTS_SQL, checks={"task_id": TASK_ID, "kind": set(KINDS)}),
    "task_comments": TableShape.from_sql(COMMENTS_SQL, checks={"task_id": TASK_ID}),
}


def _words(rng, n):
    return " ".join(rng.choice(["lorem", "ipsum", "kanban", "worker", "retry", "dispatch", "it's",
                                "\"quoted\"", "line\nbreak", "émigré", "数据", "ok"]) for _ in range(n))


def _populate(con, rng, n_tasks=220, n_events=2600, n_comments=300):
    ids = []
    for i in range(n_tasks):
        tid = "t_%08x" % rng.getrandbits(32)
        ids.append(tid)
        long_body = i % 3 == 0
        body = _words(rng, rng.randint(500, 1100) if long_body else rng.randint(2, 30))
        con.execute("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            tid, _words(rng, 4), body, rng.choice(["alice", "bob", None]), rng.choice(STATUSES),
            rng.randint(-2, 5), "tester", 1_700_000_000 + i, rng.choice([None, 1_700_000_100 + i]),
            None, rng.choice(["scratch", "worktree", "dir"]), rng.choice([None, f"/tmp/w/{i}"]),
            None, None, rng.choice([None, "acme"]), rng.choice([None, '{"ok": true}'])))
    for i in range(n_events):
        con.execute("INSERT INTO task_events(task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)",
                    (rng.choice(ids), rng.choice([None, rng.randint(1, 400)]), rng.choice(KINDS),
                     '{"n": %d, "note": "%s"}' % (i, _words(rng, rng.randint(1, 6)).replace('"', "'")
                                                   .replace("\n", " ")),
                     1_700_000_000 + i))
    for i in range(n_comments):
        con.execute("INSERT INTO task_comments(task_id, author, body, created_at) VALUES (?,?,?,?)",
                    (rng.choice(ids), rng.choice(["alice", "bob"]), _words(rng, rng.randint(3, 40)),
                     1_700_000_000 + i))
    return ids


def _create(path: Path, wal: bool = False):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute("PRAGMA secure_delete=ON")
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("BEGIN")
    for sql in (TASKS_SQL, EVENTS_SQL, COMMENTS_SQL, *INDEXES):
        con.execute(sql)
    return con


def _truth(path: Path) -> dict[str, dict[int, tuple]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = {}
    for t in ("tasks", "task_events", "task_comments"):
        out[t] = {r[0]: tuple(r[1:]) for r in con.execute(f"SELECT rowid, * FROM {t}")}
    con.close()
    return out


def _pagemap(path: Path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT name, path, pageno, pagetype, ncell FROM dbstat").fetchall()
    except sqlite3.OperationalError as e:   # pragma: no cover - depends on the SQLite build
        pytest.skip(f"this SQLite has no dbstat virtual table ({e})")
    finally:
        con.close()
    return rows


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board with a freelist: 400 events deleted after the fact (secure_delete on)."""
    d = tmp_path_factory.mktemp("board")
    path = d / "kanban.db"
    rng = random.Random(20260915)
    con = _create(path)
    _populate(con, rng)
    con.execute("COMMIT")
    before = _truth(path)
    con.execute("DELETE FROM task_events WHERE id BETWEEN 1000 AND 1399")
    con.close()
    assert sqlite3.connect(path).execute("PRAGMA freelist_count").fetchone()[0] > 0
    return {"path": path, "truth": _truth(path), "before_delete": before, "pages": _pagemap(path)}


def _copy(board, tmp_path, name="damaged.db") -> Path:
    dst = tmp_path / name
    shutil.copyfile(board["path"], dst)
    return dst


def _check(res, truth, *, allow=None) -> dict[str, int]:
    """No invented rows: every row returned matches the truth. Returns rows recovered per table.

    ``allow(row)`` may excuse a mismatch (used where the damage itself altered stored values).
    """
    got = {}
    for name, want in truth.items():
        t = res.tables.get(name)
        ok = set()
        if t is not None:
            for r in t.rows:
                assert len(r.values) == len(t.columns)
                if r.rowid in want and want[r.rowid] == r.values and \
                        [type(v) for v in want[r.rowid]] == [type(v) for v in r.values]:
                    ok.add(r.rowid)
                elif allow is None or not allow(r):
                    raise AssertionError(f"{name}: row {r!r} is not in the ground truth")
        got[name] = len(ok)
    return got


def _total(truth) -> int:
    return sum(len(v) for v in truth.values())


def _pages_of(board, name, pagetype=None):
    return [p for n, _path, p, t, _c in board["pages"] if n == name and (pagetype is None or t == pagetype)]


def _leaf_cells(board, pgno) -> int:
    return next(c for _n, _p, p, _t, c in board["pages"] if p == pgno)


# --------------------------------------------------------------------------- healthy file

def test_intact_board_is_read_exactly(board):
    res = salvage(board["path"])
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}
    assert not res.lost_and_found
    assert res.header is not None and res.header.problems(os.path.getsize(board["path"])) == []
    assert res.tables["task_events"].rowid_alias == "id"
    assert all(r.source == "btree" for t in res.tables.values() for r in t.rows)
    assert res.indexes["idx_events_task"].entries == len(board["truth"]["task_events"])


# --------------------------------------------------------------------------- damage cases

def test_table_leaf_overwritten(board, tmp_path):
    """Floor: every row except the cells of the overwritten leaf."""
    path = _copy(board, tmp_path)
    leaves = _pages_of(board, "task_events", "leaf")
    victim = leaves[len(leaves) // 2]
    C.write_page(path, victim, random.Random(1).randbytes(PAGE), ps=PAGE)
    res = salvage(path)
    got = _check(res, board["truth"])
    assert sum(got.values()) >= _total(board["truth"]) - _leaf_cells(board, victim)
    assert got["tasks"] == len(board["truth"]["tasks"])


def test_interior_page_zeroed(board, tmp_path):
    """Floor 100%: the leaves under a zeroed non-root interior page come back as orphans
    (rowid range behind the broken pointer + record shape)."""
    path = _copy(board, tmp_path)
    interior = [p for n, pth, p, t, _c in board["pages"]
                if n == "task_events" and t == "internal" and pth != "/"]
    assert interior, "fixture too small: task_events needs a two-level b-tree"
    C.zero_page(path, interior[0], ps=PAGE)
    res = salvage(path)
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}
    assert res.tables["task_events"].orphan_rows > 0
    assert res.tables["task_events"].missing_subtrees >= 1


@pytest.mark.parametrize("table", ["task_events", "tasks"])
def test_root_page_zeroed(board, tmp_path, table):
    """Floor 100%: with the root gone, the surviving interior pages and leaves are orphans
    and are matched back to the table through the surviving schema's column shape."""
    path = _copy(board, tmp_path)
    root = next(p for n, pth, p, _t, _c in board["pages"] if n == table and pth == "/")
    C.zero_page(path, root, ps=PAGE)
    res = salvage(path)
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}
    assert res.tables[table].orphan_rows == len(board["truth"][table])


def test_index_pages_only(board, tmp_path):
    """Floor 100%: indexes are not needed to read tables."""
    path = _copy(board, tmp_path)
    idx_pages = [p for n, _pth, p, _t, _c in board["pages"] if n.startswith(("idx_", "sqlite_autoindex"))]
    for p in idx_pages:
        C.zero_page(path, p, ps=PAGE)
    res = salvage(path)
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}


def test_truncated_file(board, tmp_path):
    """Floor: every row whose leaf page and all overflow pages lie before the cut."""
    path = _copy(board, tmp_path)
    npages = os.path.getsize(path) // PAGE
    cut = int(npages * 0.6)
    C.cut_tail(path, os.path.getsize(path) - (cut * PAGE + 300))    # a partial last page as well
    leaf_of_path = {}
    lost = 0
    for n, pth, p, t, c in board["pages"]:
        if n in board["truth"] and t == "leaf":
            leaf_of_path[(n, pth)] = p
            if p > cut:
                lost += c
    broken_cells = set()
    for n, pth, p, t, _c in board["pages"]:
        if n in board["truth"] and t == "overflow" and p > cut:
            leaf_path = pth[:pth.rindex("/") + 1]
            if leaf_of_path[(n, leaf_path)] <= cut:
                broken_cells.add((n, leaf_path, pth[pth.rindex("/") + 1:pth.index("+")]))
    floor = _total(board["truth"]) - lost - len(broken_cells)
    res = salvage(path)
    got = _check(res, board["truth"])
    assert sum(got.values()) >= floor
    assert len([r for r in res.lost_and_found if "overflow" in r.reason]) >= len(broken_cells)


def test_bit_flips(board, tmp_path):
    """Random bit flips in 40 bytes. A flipped byte inside a stored value changes the value
    on disk (no checksums to notice), so a returned row may differ from the truth only when
    it was read from a flipped page or a flipped overflow page. Floor: every row on a leaf
    page with no flipped byte, less the long-body tasks (their overflow pages may be hit),
    less 20% slack for rows behind flipped interior pages whose leaves fail shape checks."""
    path = _copy(board, tmp_path)
    flipped = {off // PAGE + 1 for off in C.bit_flips(path, random.Random(7), flips=40)}  # page 1 kept
    overflow_pages = set(_pages_of_type(board, "overflow"))
    hit_overflow = bool(flipped & overflow_pages)

    def allow(r):
        return r.page in flipped or (hit_overflow and len(r.values) == 16 and r.values[2]
                                     and len(r.values[2]) > 900)
    res = salvage(path)
    got = _check(res, board["truth"], allow=allow)
    on_flipped = sum(c for n, _p, p, t, c in board["pages"] if t == "leaf" and p in flipped)
    long_tasks = sum(1 for v in board["truth"]["tasks"].values() if v[2] and len(v[2]) > 900)
    floor = (_total(board["truth"]) - on_flipped - long_tasks) * 0.8
    assert sum(got.values()) >= floor


def _pages_of_type(board, pagetype):
    return [p for _n, _pth, p, t, _c in board["pages"] if t == pagetype]


def test_overflow_page_broken(board, tmp_path):
    """Floor: all rows but the one whose overflow chain lost a middle page; that row stays in
    tasks with its readable part, marked partial with the cut columns named (issue 8): every
    column before the cut as stored, the cut text a prefix of the original."""
    path = _copy(board, tmp_path)
    chains = defaultdict(list)
    for n, pth, p, t, _c in board["pages"]:
        if n == "tasks" and t == "overflow":
            chains[pth[:pth.index("+")]].append((pth, p))
    cell, pages = next((k, sorted(v)) for k, v in chains.items() if len(v) >= 3)
    C.zero_page(path, pages[1][1], ps=PAGE)
    res = salvage(path)
    got = _check(res, board["truth"], allow=lambda r: r.partial)
    assert got["tasks"] == len(board["truth"]["tasks"]) - 1
    assert got["task_events"] == len(board["truth"]["task_events"])
    assert not [r for r in res.lost_and_found if r.reason == "overflow chain broken"]
    partial = [r for r in res.tables["tasks"].rows if r.partial]
    assert len(partial) == 1
    row, cols = partial[0], res.tables["tasks"].columns
    want = board["truth"]["tasks"][row.rowid]
    assert row.partial_columns[0] == "body"
    for i, c in enumerate(cols):
        if c not in row.partial_columns:
            assert row.values[i] == want[i], c
    body = row.values[cols.index("body")]
    assert body and want[2].startswith(body.rstrip("\ufffd")) and len(body) < len(want[2])


def test_first_16_bytes_overwritten(board, tmp_path):
    """Floor 100%: the magic string is not needed (issue #29507 kind of damage)."""
    path = _copy(board, tmp_path)
    C.poke(path, 0, b"GARBAGE-GARBAGE!")
    res = salvage(path)
    assert any("magic" in p for p in res.header_problems)
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}


def test_schema_root_page_zeroed(board, tmp_path):
    """Page 1 (header + sqlite_schema root) zeroed. Floor 100%: the page size is guessed
    from the page layout and the schema rows come back from its surviving leaf pages."""
    schema_pages = _pages_of(board, "sqlite_schema")
    assert len(schema_pages) > 1, "fixture: sqlite_schema must span several pages"
    path = _copy(board, tmp_path)
    C.zero_page(path, 1, ps=PAGE)
    res = salvage(path)
    assert res.page_size == PAGE
    assert {"tasks", "task_events", "task_comments"} <= {e.name for e in res.schema}
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}


def test_schema_destroyed_tables_found_by_shape(board, tmp_path):
    """Every sqlite_schema page zeroed. Without shapes nothing can be named, so every
    record goes to lost_and_found; with the caller's shapes every row comes back (floor 100%)."""
    path = _copy(board, tmp_path)
    for p in _pages_of(board, "sqlite_schema"):
        C.zero_page(path, p, ps=PAGE)
    bare = salvage(path)
    assert bare.schema == []
    assert _check(bare, board["truth"]) == {"tasks": 0, "task_events": 0, "task_comments": 0}
    assert len(bare.lost_and_found) >= _total(board["truth"])
    res = salvage(path, shapes=SHAPES)
    got = _check(res, board["truth"])
    assert got == {k: len(v) for k, v in board["truth"].items()}
    assert res.tables["tasks"].shape == "test-head"
    assert res.tables["tasks"].sql == TASKS_SQL
    # the two sqlite_sequence rows match no shape: kept in lost_and_found, not dropped
    assert any(r.values[:1] == ("task_events",) for r in res.lost_and_found)


def test_garbage_freelist_trunk(board, tmp_path):
    """Floor 100% of live rows. With include_freelist the rows returned are still real
    (freelist pages were zeroed by secure_delete, so nothing stale comes back)."""
    path = _copy(board, tmp_path)
    hdr = DbHeader.parse(path.read_bytes()[:100])
    assert hdr.freelist_trunk
    C.write_page(path, hdr.freelist_trunk, random.Random(3).randbytes(PAGE), ps=PAGE)
    for include in (False, True):
        res = salvage(path, include_freelist=include)
        got = _check(res, board["truth"] if not include else board["before_delete"])
        assert got == {k: len(v) for k, v in board["truth"].items()}


def test_wal_commits_beside_damaged_main_file(tmp_path):
    """Uncheckpointed WAL commits are read (newest committed page versions win), an
    uncommitted/garbage tail is ignored, and a leaf zeroed in the main file that the WAL
    does not hold costs only its own cells (floor)."""
    live = tmp_path / "live.db"
    rng = random.Random(99)
    con = _create(live, wal=True)
    ids = _populate(con, rng, n_tasks=120, n_events=1500, n_comments=50)
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # commits that stay in the WAL
    con.execute("BEGIN")
    con.execute("UPDATE tasks SET status='done', result='finished in wal' WHERE id IN (SELECT id FROM tasks LIMIT 30)")
    for i in range(200):
        con.execute("INSERT INTO task_events(task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)",
                    (rng.choice(ids), None, "completed", '{"wal": %d}' % i, 1_800_000_000 + i))
    con.execute("COMMIT")
    snap = tmp_path / "snap.db"
    shutil.copyfile(live, snap)                        # copied while the connection holds the WAL
    shutil.copyfile(str(live) + "-wal", str(snap) + "-wal")
    con.close()
    assert os.path.getsize(str(snap) + "-wal") > 0
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    shutil.copyfile(snap, truth_dir / "t.db")
    shutil.copyfile(str(snap) + "-wal", truth_dir / "t.db-wal")
    truth = _truth(truth_dir / "t.db")
    assert any(v[15] == "finished in wal" for v in truth["tasks"].values())

    # what the WAL holds
    wal_path = str(snap) + "-wal"
    idx = read_wal(wal_path)
    C.torn_wal_frame(wal_path, random.Random(5), PAGE)  # an uncommitted torn frame at the end
    s = wal_summary(wal_path, snap)
    assert s.committed_frames > 0 and s.has_uncheckpointed_commits and s.uncheckpointed_known
    assert s.tail_uncommitted_frames >= 1
    assert s.pages == len(idx.offsets)

    # damage a task_events leaf of the main file that the WAL does not cover
    con = sqlite3.connect(f"file:{snap}?mode=ro", uri=True)
    pages = con.execute("SELECT pageno, ncell FROM dbstat WHERE name='task_events' AND pagetype='leaf'").fetchall()
    con.close()
    victim, ncell = next((p, c) for p, c in pages if p not in idx.offsets)
    C.zero_page(snap, victim, ps=PAGE)
    res = salvage(snap)
    assert res.wal is not None and res.wal.committed_frames == s.committed_frames
    got = _check(res, truth)
    assert sum(got.values()) >= _total(truth) - ncell
    assert got["tasks"] == len(truth["tasks"])        # the WAL's updated rows, not the old ones
    # without the WAL the same file gives the old versions, never a mix within a page
    old = salvage(snap, wal_path=False)
    assert old.wal is None
    assert len(old.tables["task_events"].rows) < len(res.tables["task_events"].rows)


# --------------------------------------------------------------------------- dump round trip

TRICKY_ROWS = [
    (1, "plain", 0, 0.0, b""),
    (2, "it's \"quoted\"; DROP TABLE x; --", -1, 0.1, b"\x00\x01\xff"),
    (3, "line1\nline2\r\n\ttab", 2**63 - 1, 1e300, bytes(range(256))),
    (4, "nul\x00inside\x00", -(2**63), -2.5e-308, None),
    (5, "", 2**31, float("inf"), b"'"),
    (6, "émigré 数据 😀", -(2**31) - 1, -0.0, b"X'00'"),
    (7, None, None, 123456789.123456789, None),
    (8, "\x00", 255, 2.0**-1074, b"\n"),
    (9, "1234", 1234, 3.141592653589793, b"1234"),
]


def _roundtrip_db(tmp_path) -> Path:
    path = tmp_path / "tricky.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, i INTEGER, f REAL, b BLOB)")
    con.execute("CREATE TABLE \"we\"\"ird name\"(\"a b\" TEXT, [c] ANY, `d` NUMERIC)")   # rowid table, no alias
    con.execute("CREATE TABLE wr(k TEXT PRIMARY KEY, v) WITHOUT ROWID")
    con.executemany("INSERT INTO t VALUES (?,?,?,?,?)", TRICKY_ROWS)
    rng = random.Random(11)
    for i in range(300):
        con.execute("INSERT INTO t(s, i, f, b) VALUES (?,?,?,?)",
                    (_words(rng, rng.randint(1, 400)), rng.randint(-2**63, 2**63 - 1),
                     struct.unpack("d", rng.randbytes(8))[0] if i % 2 else rng.random() * 10 ** rng.randint(-20, 20),
                     rng.randbytes(rng.randint(0, 2000))))
    for i in range(50):
        con.execute('INSERT INTO "we""ird name" VALUES (?,?,?)', (f"r{i}", rng.choice([1, 2.5, "x", b"y", None]), str(i)))
        con.execute("INSERT INTO wr VALUES (?, ?)", (f"key{i:03d}", rng.choice([1, 2.5, "x", b"y", None])))
    con.execute("DELETE FROM t WHERE id % 7 = 0")
    con.execute("CREATE INDEX t_s ON t(s)")
    con.execute("CREATE VIEW v AS SELECT id, s FROM t")
    con.commit()
    con.close()
    return path


def _all_rows(path: Path):
    con = sqlite3.connect(path)
    con.text_factory = bytes      # compare text byte-exactly
    out = {}
    for name, wr in (("t", False), ('we"ird name', False), ("wr", True)):
        q = name.replace('"', '""')
        sel = f'SELECT {"" if wr else "rowid, "}*, ' + ", ".join(
            f"typeof({c})" for c in ("s, i, f, b" if name == "t" else '"a b", c, d' if not wr else "k, v").split(", "))
        rows = con.execute(sel + f' FROM "{q}"').fetchall()
        out[name] = sorted(rows, key=repr)
    con.close()
    return out


def _floats_equal(a, b):
    return a == b or (a != a and b != b)


def test_write_dump_round_trip(tmp_path):
    """Load the dump into a fresh database: every value and its type is identical."""
    src = _roundtrip_db(tmp_path)
    res = salvage(src)
    out = tmp_path / "dump.sql"
    with open(out, "w", encoding="utf-8") as fp:
        stats = write_dump(res, fp)
    assert stats.lost_rows == 0 and stats.diverted == {}
    script = out.read_text(encoding="utf-8")
    assert script.startswith("--") and "BEGIN;" in script and script.rstrip().endswith("COMMIT;")
    dst = tmp_path / "reloaded.db"
    con = sqlite3.connect(dst)
    con.executescript(script)
    con.close()
    assert _all_rows(dst) == _all_rows(src)
    # the view came back too
    assert sqlite3.connect(dst).execute("SELECT count(*) FROM v").fetchone()[0] == \
        sqlite3.connect(src).execute("SELECT count(*) FROM t").fetchone()[0]
    sqlite_cli = shutil.which("sqlite3")
    if sqlite_cli:
        dst2 = tmp_path / "reloaded_cli.db"
        subprocess.run([sqlite_cli, str(dst2)], stdin=open(out, "rb"), check=True, capture_output=True)
        assert _all_rows(dst2) == _all_rows(src)


def test_write_dump_damaged_board_loads(board, tmp_path):
    """A damaged board's dump (with lost_and_found and duplicate keys diverted) loads and
    holds exactly the salvaged rows."""
    path = _copy(board, tmp_path)
    for p in _pages_of(board, "sqlite_schema"):
        C.zero_page(path, p, ps=PAGE)
    leaves = _pages_of(board, "task_events", "leaf")
    C.write_page(path, leaves[3], random.Random(2).randbytes(PAGE), ps=PAGE)
    res = salvage(path, shapes=SHAPES)
    # a duplicate primary key (an old copy of a task under another rowid) must not break loading
    t = res.tables["tasks"]
    first = next(iter(t.rows))
    t.rows.add(10**9, first.values, "orphan", first.page)
    out = tmp_path / "dump.sql"
    with open(out, "w", encoding="utf-8") as fp:
        stats = write_dump(res, fp)
    assert stats.diverted == {"tasks": 1}
    con = sqlite3.connect(tmp_path / "re.db")
    con.executescript(out.read_text(encoding="utf-8"))
    for name in ("tasks", "task_events", "task_comments"):
        n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        assert n == len(res.tables[name].rows) - stats.diverted.get(name, 0)
    lf = con.execute("SELECT count(*) FROM lost_and_found").fetchone()[0]
    assert lf == len(res.lost_and_found) + 1
    rows = {r[0]: tuple(r[1:]) for r in con.execute("SELECT rowid, * FROM tasks")}
    for r in list(t.rows)[:-1]:
        assert rows[r.rowid] == r.values


# --------------------------------------------------------------------------- building blocks

def test_varints_and_records():
    assert read_varint(bytes([0x7F]), 0) == (0x7F, 1)
    assert read_varint(bytes([0x81, 0x00]), 0) == (128, 2)
    assert read_varint(bytes([0xFF] * 9), 0) == (2**64 - 1, 9)
    assert read_varint_signed(bytes([0xFF] * 9), 0) == (-1, 9)
    with pytest.raises(IndexError):
        read_varint(bytes([0x81]), 0)
    # header: 7 bytes; NULL, int8, int24, float, 0, 1, text(3), blob(2)
    rec = bytes([8, 0, 1, 3, 7, 8, 9, 19, 16]) + b"\xff" + b"\x80\x00\x01" + struct.pack(">d", 1.5) + b"abc" + b"\x00\x01"
    rec = bytes([len([0, 1, 3, 7, 8, 9, 19, 16]) + 1]) + rec[1:]
    assert decode_record(rec, 0, len(rec)) == [None, -1, -8388607, 1.5, 0, 1, "abc", b"\x00\x01"]
    with pytest.raises(ValueError):
        decode_record(rec, 0, len(rec) - 1)
    assert local_payload_size(100, 1024, True) == 100
    assert local_payload_size(5000, 1024, True) < 1024


def test_header_problems():
    good = sqlite3.connect(":memory:")
    con = sqlite3.connect(":memory:")
    del good, con
    raw = bytearray(100)
    raw[:16] = b"SQLite format 3\x00"
    struct.pack_into(">HBBBBBB", raw, 16, 1, 1, 1, 0, 64, 32, 32)
    struct.pack_into(">I", raw, 44, 4)
    struct.pack_into(">I", raw, 56, 1)
    h = DbHeader.parse(bytes(raw))
    assert h.page_size == 65536 and h.problems() == []
    struct.pack_into(">H", raw, 16, 1000)
    raw[21] = 65
    raw[56 + 3] = 9
    probs = DbHeader.parse(bytes(raw)).problems()
    assert any("page size 1000" in p for p in probs)
    assert any("max embedded payload fraction" in p for p in probs)
    assert any("text encoding" in p for p in probs)


def test_create_table_parser():
    td = parse_create_table(TASKS_SQL)
    assert td.column_names[:3] == ["id", "title", "body"] and td.rowid_alias is None
    assert td.columns[10].default == "scratch" and td.columns[1].not_null
    td = parse_create_table(EVENTS_SQL)
    assert td.rowid_alias == 0 and td.autoincrement
    td = parse_create_table('CREATE TABLE "a""b" ([x y] INTEGER PRIMARY KEY DESC, `z` TEXT, '
                            "'w' DEFAULT -5, g AS (z || 1), CONSTRAINT pk UNIQUE (z, w), CHECK (w > 0))")
    assert td.name == 'a"b' and td.column_names == ["x y", "z", "w", "g"]
    assert td.rowid_alias is None          # INTEGER PRIMARY KEY DESC is not a rowid alias
    assert td.columns[2].default == -5 and td.columns[3].generated == "VIRTUAL"
    assert ["z", "w"] in td.unique_sets
    td = parse_create_table("CREATE TABLE k(a TEXT, b INT, c, PRIMARY KEY (c, a)) WITHOUT ROWID")
    assert td.without_rowid and td.record_order() == [2, 0, 1]
    td = parse_create_table("CREATE TABLE x(id INTEGER, v, PRIMARY KEY(id))")
    assert td.rowid_alias == 0


# --------------------------------------------------------------------------- more behaviour

def test_time_limit_is_reported(board):
    res = salvage(board["path"], time_limit=0)
    assert res.timed_out
    assert any("time limit" in p for p in res.problems)
    _check(res, board["truth"])        # what it did read is still right


def test_unopenable_path_raises(tmp_path):
    with pytest.raises(OSError):
        salvage(tmp_path / "missing.db")
    empty = tmp_path / "kanban.db"
    empty.write_bytes(b"")             # zero-byte placeholder board (#94106)
    res = salvage(empty)
    assert res.tables == {} and res.header is None and res.pages_total == 0


def test_deleted_rows_only_with_include_freelist(tmp_path):
    """secure_delete OFF (early boards): deleted rows survive on freelist pages and in
    freeblocks. They never come back by default; with include_freelist they come back
    marked, and each one is a row the table really held."""
    path = tmp_path / "old.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute("PRAGMA secure_delete=OFF")
    con.execute(EVENTS_SQL)
    rng = random.Random(4)
    con.execute("BEGIN")
    for i in range(1500):
        con.execute("INSERT INTO task_events(task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)",
                    ("t_%08x" % rng.getrandbits(32), None, rng.choice(KINDS), '{"i": %d}' % i, 1_700_000_000 + i))
    con.execute("COMMIT")
    before = _truth_of(path, "task_events")
    con.execute("DELETE FROM task_events WHERE id BETWEEN 200 AND 700")      # whole leaves freed
    con.execute("DELETE FROM task_events WHERE id % 10 = 3")                # freeblocks in live leaves
    con.close()
    after = _truth_of(path, "task_events")
    res = salvage(path)
    assert {r.rowid for r in res.tables["task_events"].rows} == set(after)
    res = salvage(path, include_freelist=True)
    rows = res.tables["task_events"].rows
    live = [r for r in rows if r.source == "btree"]
    extra = [r for r in rows if r.source != "btree"]
    assert {r.rowid: r.values for r in live} == after
    assert {r.source for r in extra} <= {"freelist", "freeblock"}
    old_values = set(before.values())
    for r in extra:
        if r.rowid is not None:
            assert r.rowid not in after and before[r.rowid] == r.values
        else:                                  # carved from a freeblock: rowid unknown
            assert r.values[1:] in {v[1:] for v in old_values}
    deleted = len(before) - len(after)
    assert len(extra) >= deleted * 0.5, f"only {len(extra)} of {deleted} deleted rows found"


def _truth_of(path, table):
    con = sqlite3.connect(path)
    out = {r[0]: tuple(r[1:]) for r in con.execute(f"SELECT rowid, * FROM {table}")}
    con.close()
    return out


@pytest.mark.parametrize("auto_vacuum", ["NONE", "FULL"])
def test_same_shape_tables_use_structure(tmp_path, auto_vacuum):
    """Two tables of identical shape: when a non-root interior page is zeroed, its leaves
    can only be told apart by b-tree structure (the rowid range behind the broken pointer,
    or the pointer map in auto-vacuum files). Floor 100%, every row in its own table."""
    path = tmp_path / "twins.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute(f"PRAGMA auto_vacuum={auto_vacuum}")
    con.execute(EVENTS_SQL)
    con.execute(EVENTS_SQL.replace("task_events", "task_events_archive"))
    rng = random.Random(8)
    con.execute("BEGIN")
    for i in range(3000):
        for t in ("task_events", "task_events_archive"):
            con.execute(f"INSERT INTO {t}(task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)",
                        ("t_%08x" % rng.getrandbits(32), None, rng.choice(KINDS), '{"i": %d}' % i, i))
    con.execute("COMMIT")
    pages = con.execute("SELECT path, pageno FROM dbstat WHERE name='task_events' AND pagetype='internal'").fetchall()
    con.close()
    truth = {t: _truth_of(path, t) for t in ("task_events", "task_events_archive")}
    victim = next(p for pth, p in pages if pth != "/")
    C.zero_page(path, victim, ps=PAGE)
    res = salvage(path)
    got = _check(res, truth)
    assert got == {k: len(v) for k, v in truth.items()}
    assert res.tables["task_events"].orphan_rows > 0
    assert res.tables["task_events_archive"].orphan_rows == 0


def _freed_leaves_board(path: Path, *, twin: bool = False):
    """task_events (and a same-layout twin, or task_comments) with secure_delete OFF; a range of
    task_events deleted so whole leaves are freed and keep their old cells. Returns the
    task_events rows before the delete."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={PAGE}")
    con.execute("PRAGMA secure_delete=OFF")
    other = "task_events_archive" if twin else "task_comments"
    con.execute(EVENTS_SQL)
    con.execute(EVENTS_SQL.replace("task_events", other) if twin else COMMENTS_SQL)
    rng = random.Random(12)
    con.execute("BEGIN")
    for i in range(3000 if twin else 1500):
        for t in ("task_events", other) if twin else ("task_events",):
            con.execute(f"INSERT INTO {t}(task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)",
                        (f"t_{rng.getrandbits(32):08x}", None, rng.choice(KINDS), f'{{"i": {i}}}',
                         1_700_000_000 + i))
        if not twin and i % 5 == 0:
            con.execute("INSERT INTO task_comments(task_id, author, body, created_at) VALUES (?,?,?,?)",
                        (f"t_{rng.getrandbits(32):08x}", "alice", _words(rng, 8), 1_700_000_000 + i))
    con.execute("COMMIT")
    before = _truth_of(path, "task_events")
    con.execute("DELETE FROM task_events WHERE id BETWEEN 200 AND 700")
    con.close()
    hdr = DbHeader.parse(path.read_bytes()[:100])
    assert hdr.freelist_trunk, "the delete should have freed pages"
    # a garbage trunk lists nothing: the freed leaves look like orphan leaves
    C.write_page(path, hdr.freelist_trunk, random.Random(3).randbytes(PAGE), ps=PAGE)
    return before


def test_freed_leaves_of_a_completely_read_table_are_stale(tmp_path):
    """task_events' b-tree is intact and read completely, so its walk found every live leaf:
    a leaf of its shape that no walk reached can only be a freed page. Its rows never come
    back as live rows (counted in pages_stale); with include_freelist they come back marked
    'freelist', never displacing a live row. task_comments, whose root is zeroed (walk
    incomplete), still gets every row back from its orphan leaves."""
    path = tmp_path / "old.db"
    before = _freed_leaves_board(path)
    truth = {t: _truth_of(path, t) for t in ("task_events", "task_comments")}
    deleted = set(before) - set(truth["task_events"])
    con = sqlite3.connect(path)
    comments_root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='task_comments'").fetchone()[0]
    con.close()
    C.zero_page(path, comments_root, ps=PAGE)

    res = salvage(path, shapes=SHAPES)
    events = res.tables["task_events"]
    assert {r.rowid: r.values for r in events.rows} == truth["task_events"]
    assert {r.source for r in events.rows} == {"btree"}
    assert res.pages_stale >= 1
    assert not any(r.rowid in deleted for r in res.lost_and_found)
    assert _check(res, truth) == {k: len(v) for k, v in truth.items()}
    assert res.tables["task_comments"].orphan_rows == len(truth["task_comments"])

    res = salvage(path, include_freelist=True, shapes=SHAPES)
    rows = res.tables["task_events"].rows
    assert {r.rowid: r.values for r in rows if r.source == "btree"} == truth["task_events"]
    assert all(r.source == "btree" for r in rows if r.rowid in truth["task_events"])
    extra = [r for r in rows if r.source != "btree"]
    assert {r.source for r in extra} <= {"freelist", "freeblock"}
    for r in extra:
        if r.rowid is not None:
            assert r.rowid in deleted and before[r.rowid] == r.values
    stale_rows = [r for r in extra if r.source == "freelist"]
    assert len(stale_rows) >= len(deleted) * 0.5, f"only {len(stale_rows)} of {len(deleted)} deleted rows"
    assert res.pages_stale >= 1
    got = _check(res, {"task_comments": truth["task_comments"]})
    assert got == {"task_comments": len(truth["task_comments"])}


def test_page_fitting_a_complete_and_an_incomplete_table(tmp_path):
    """Two tables of one layout. task_events_archive loses a subtree behind an unreadable
    interior cell; task_events is read completely and has freed leaves (garbage freelist
    trunk). The archive's orphan leaves fit both tables equally: they go to the archive, whose
    walk lost that rowid range (floor 100%). The freed task_events leaves lie outside the
    archive's lost range: they are given to neither table as live rows."""
    path = tmp_path / "twins.db"
    before = _freed_leaves_board(path, twin=True)
    truth = {t: _truth_of(path, t) for t in ("task_events", "task_events_archive")}
    deleted = set(before) - set(truth["task_events"])
    con = sqlite3.connect(path)
    pages = con.execute("SELECT pageno FROM dbstat WHERE name='task_events_archive' AND pagetype='internal' "
                        "AND path != '/' ORDER BY pageno").fetchall()
    con.close()
    # an interior page whose rowids lie above the deleted range; make its second cell unreadable
    data = path.read_bytes()
    victim = None
    for (pg,) in pages:
        page = data[(pg - 1) * PAGE:pg * PAGE]
        ncell = struct.unpack_from(">H", page, 3)[0]
        first = struct.unpack_from(">H", page, 12)[0]
        if ncell >= 3 and read_varint(page, first + 4)[0] > max(deleted):
            victim = pg
            break
    assert victim is not None
    C.poke_page(path, victim, 12 + 2, struct.pack(">H", 0xFFFF), ps=PAGE)  # cell pointer beyond the page

    res = salvage(path)
    assert res.tables["task_events_archive"].unreadable_cells >= 1
    got = _check(res, truth)
    assert got == {k: len(v) for k, v in truth.items()}
    assert res.tables["task_events_archive"].orphan_rows > 0
    assert {r.source for r in res.tables["task_events"].rows} == {"btree"}
    assert not any(r.rowid in deleted for r in res.tables["task_events"].rows)
    archive = res.tables["task_events_archive"].rows
    assert all(r.source == "btree" for r in archive if r.rowid in deleted)


def test_damaged_payload_size_of_an_intact_record(tmp_path):
    """A bit flip in a cell's payload-size varint while the record is whole: the row comes back
    unchanged, read by its own header (as SQLite's .recover does), and is counted as repaired."""
    import sqlite3 as _sqlite3

    from kanban_migrate.salvage import salvage as _salvage

    db = tmp_path / "flip.db"
    conn = _sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"row {i}", i * 7) for i in range(1, 21)])
    conn.commit()
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='t'").fetchone()[0]
    conn.close()
    C.overstate_payload(db, root, by=4)  # the payload claims 4 bytes more than the record holds
    result = _salvage(db, False)
    rows = {r.rowid: r.values for r in result.tables["t"].rows}
    assert rows == {i: (i, f"row {i}", i * 7) for i in range(1, 21)}
    assert result.cells_repaired == 1 and result.tables["t"].unreadable_cells == 0
