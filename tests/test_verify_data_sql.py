"""verify's data checks run as SQL: the Python stand-in for json_valid agrees with SQLite's, big
tables cut into rowid ranges give the same findings as one pass, task ids are searched for NUL
bytes through their distinct values, and nothing is left running."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from kanban_migrate.verifying import invariants, scan, verify, work
from test_verify_support import findings, make_board, plant, query


def summary(report):
    return [(f.check, f.severity, f.table, f.message, f.count, list(f.examples)) for f in report.findings]


def data_summary(report):
    return [x for x in summary(report) if x[0] == "data"]


JSON_VALUES = [
    '{"by": "coder", ',     # cut short
    '{"a": 1}\x00junk',     # valid up to a NUL: SQLite's parser stops there, no JSON text has one
    "NaN",                  # Python's json accepts it by default, JSON does not
    "[1,]",
    "",
    "01",
    '"tab\tinside"',        # a control character inside a string
    '{"a": 1, "a": 2}',     # duplicate keys are valid
    "1e999",
    ' [1, {"b": null}] \n',
]


@pytest.fixture
def broken_board(tmp_path):
    """A board with one of each data problem, some of them many times."""
    path = make_board(tmp_path, tasks=200)
    events = [r[0] for r in query(path, "SELECT id FROM task_events WHERE payload IS NOT NULL ORDER BY id")]
    runs = [r[0] for r in query(path, "SELECT id FROM task_runs WHERE metadata IS NOT NULL ORDER BY id")]
    tasks = [r[0] for r in query(path, "SELECT id FROM tasks WHERE skills IS NOT NULL ORDER BY rowid")]
    conn = sqlite3.connect(path)
    for i, value in enumerate(JSON_VALUES):
        conn.execute("UPDATE task_events SET payload = ? WHERE id = ?", (value, events[10 * i + 3]))
        conn.execute("UPDATE task_runs SET metadata = ? WHERE id = ?", (value, runs[i]))
        conn.execute("UPDATE tasks SET skills = ? WHERE id = ?", (value, tasks[i]))
    conn.execute("UPDATE task_events SET kind = 'ready' WHERE id % 7 = 0")
    conn.execute("UPDATE task_events SET kind = 'comm' || char(0) || 'ented' WHERE id % 11 = 0")
    conn.execute("UPDATE tasks SET title = title || char(0) WHERE rowid % 13 = 0")
    conn.execute("UPDATE tasks SET body = body || char(0) || 'tail' WHERE rowid % 17 = 0")
    conn.execute("UPDATE tasks SET status = 'bogus' WHERE rowid % 19 = 0")
    conn.execute("UPDATE task_runs SET outcome = 'vanished' WHERE id % 5 = 0")
    conn.execute("UPDATE kanban_notify_subs SET delivery_mode = 'pigeon' WHERE rowid % 3 = 0")
    conn.execute("UPDATE task_comments SET author = 'x' || char(0) WHERE id % 9 = 0")
    conn.commit()
    conn.close()
    (gone,) = query(path, "SELECT task_id FROM task_events GROUP BY task_id ORDER BY count(*) DESC LIMIT 1")[0]
    plant(path, f"DELETE FROM tasks WHERE id = '{gone}'")
    return path


def test_json_stand_in_agrees_with_sqlite_json_valid():
    conn = sqlite3.connect(":memory:")
    flag = invariants.json_flag("v").expr.replace('"v"', "?")
    for value in JSON_VALUES + ['{"a": [1, 2, {"b": "\u00e9"}]}', "true", "-0", "1.", '"\\x"', "\ufeff[1]"]:
        (sql,) = conn.execute(f"SELECT {flag}", (value,) * flag.count("?")).fetchone()
        assert invariants.py_json_valid(value) == (not sql), repr(value)
    conn.create_function("json_valid", 1, invariants.py_json_valid, deterministic=True)
    for value in JSON_VALUES:
        (py,) = conn.execute(f"SELECT {flag}", (value,) * flag.count("?")).fetchone()
        assert py == (not invariants.py_json_valid(value)), repr(value)


def test_sql_path_and_python_fallback_give_the_same_findings(broken_board, monkeypatch):
    sql = verify(broken_board)
    json_findings = [f for f in findings(sql, "data") if "not valid JSON" in f.message]
    assert {f.table for f in json_findings} == {"tasks", "task_events", "task_runs"}
    for f in json_findings:
        assert f.count == 7  # every planted value but the last three

    calls = []
    stand_in = invariants.py_json_valid

    def counting(value):
        calls.append(1)
        return stand_in(value)

    monkeypatch.setattr(invariants, "has_json", lambda conn: False)
    monkeypatch.setattr(invariants, "py_json_valid", counting)
    fallback = verify(broken_board)
    assert calls, "the Python stand-in was not used"
    assert summary(fallback) == summary(sql)


def test_rowid_ranges_give_the_same_findings_as_one_pass(broken_board, monkeypatch):
    whole = verify(broken_board)
    monkeypatch.setattr(scan, "CHUNK_ROWS", {"task_events": 37, "tasks": 11})
    chunked = verify(broken_board)
    assert summary(chunked) == summary(whole)
    (kinds,) = [f for f in findings(chunked, "data", table="task_events") if "renames" in f.message]
    assert kinds.count == query(broken_board, "SELECT count(*) FROM task_events WHERE kind = 'ready'")[0][0]
    assert kinds.examples == [7, 14, 21, 28, 35]  # the first ones, in rowid order, across ranges


def test_ranges_cover_every_rowid(tmp_path, monkeypatch):
    path = make_board(tmp_path, tasks=60)
    plant(path, "INSERT INTO task_events (id, task_id, kind, created_at) "
                "SELECT 9223372036854775807, task_id, 'ready', 0 FROM task_events LIMIT 1",
          "INSERT INTO task_events (id, task_id, kind, created_at) "
          "SELECT -9223372036854775808, task_id, 'ready', 0 FROM task_events LIMIT 1")
    monkeypatch.setattr(scan, "CHUNK_ROWS", {"task_events": 10})
    (f,) = findings(verify(path), "data", table="task_events")
    assert f.count == 2 and f.examples == [-9223372036854775808, 9223372036854775807]


def test_nul_in_a_task_id_is_found_through_the_distinct_ids_and_counted_once(tmp_path):
    path = make_board(tmp_path, tasks=80)
    (tid,) = query(path, "SELECT task_id FROM task_events GROUP BY task_id ORDER BY count(*) DESC LIMIT 1")[0]
    n = query(path, "SELECT count(*) FROM task_events WHERE task_id = ?", (tid,))[0][0]
    first = query(path, "SELECT min(id) FROM task_events WHERE task_id = ?", (tid,))[0][0]
    conn = sqlite3.connect(path)
    conn.execute("UPDATE task_events SET task_id = task_id || char(0) WHERE task_id = ?", (tid,))
    conn.execute("UPDATE task_events SET kind = kind || char(0) WHERE id = ?", (first,))  # both: once
    conn.execute("UPDATE task_events SET kind = kind || char(0) WHERE id = 1 AND task_id != ?", (tid + "\x00",))
    conn.commit()
    conn.close()
    extra = query(path, "SELECT count(*) FROM task_events WHERE id = 1 AND instr(task_id, char(0)) = 0")[0][0]
    report = verify(path)
    (nul,) = [f for f in findings(report, "data", table="task_events") if "NUL" in f.message]
    assert nul.count == n + extra and first in nul.examples
    (orphans,) = [f for f in findings(report, "data", table="task_events") if "does not exist" in f.message]
    assert orphans.count == n  # the id with a NUL names no task


def test_nul_in_task_links_is_found_though_the_table_has_no_scan_of_its_own(tmp_path):
    path = make_board(tmp_path, tasks=80)
    child = query(path, "SELECT child_id FROM task_links LIMIT 1")[0][0]
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO task_links VALUES (?, ?)", ("t_\x00evil", child))
    conn.commit()
    conn.close()
    report = verify(path)
    table = findings(report, "data", table="task_links")
    (nul,) = [f for f in table if "NUL" in f.message]
    assert nul.count == 1 and nul.examples == [f"t_\x00evil -> {child}"]
    assert [f for f in table if "does not exist" in f.message]


def test_a_blob_with_nul_bytes_in_a_text_column_is_not_a_nul_finding(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE tasks SET result = X'00ff00' WHERE rowid = 3",
          "UPDATE tasks SET body = zeroblob(3000) WHERE rowid = 4")
    report = verify(path)
    assert not [f for f in findings(report, "data") if "NUL" in f.message], findings(report, "data")


def test_nul_in_a_long_text_value_is_found_at_any_offset(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE tasks SET body = hex(randomblob(20000)) || char(0) WHERE rowid = 5",
          "UPDATE tasks SET body = char(0) || hex(randomblob(20000)) WHERE rowid = 6",
          "UPDATE tasks SET body = hex(randomblob(20000)) WHERE rowid = 7")
    (f,) = [f for f in findings(verify(path), "data", table="tasks") if "NUL" in f.message]
    ids = [r[0] for r in query(path, "SELECT id FROM tasks WHERE rowid IN (5, 6) ORDER BY rowid")]
    assert f.count == 2 and f.examples == ids


def test_no_thread_is_left_running(tmp_path, monkeypatch):
    path = make_board(tmp_path)
    before = threading.active_count()
    verify(path)
    verify(path, full=True)
    assert threading.active_count() == before

    def broken(*a, **kw):
        raise RuntimeError("planning failed")

    monkeypatch.setattr(scan, "plan", broken)
    report = verify(path)
    assert report.ok is None and report.exit_code == 70  # a bug, never a finding about the board
    assert "planning failed" in report.not_checked.reason and not report.errors
    assert threading.active_count() == before


def test_a_task_id_with_a_nul_shared_by_tasks_and_events_is_counted_in_both(tmp_path):
    path = make_board(tmp_path, tasks=80)
    (tid,) = query(path, "SELECT task_id FROM task_events GROUP BY task_id ORDER BY count(*) DESC LIMIT 1")[0]
    n = query(path, "SELECT count(*) FROM task_events WHERE task_id = ?", (tid,))[0][0]
    plant(path, *(f"UPDATE {t} SET task_id = task_id || char(0) WHERE task_id = '{tid}'"
                  for t in ("task_events", "task_comments", "task_runs", "task_attachments", "kanban_notify_subs")),
          f"UPDATE task_links SET parent_id = parent_id || char(0) WHERE parent_id = '{tid}'",
          f"UPDATE task_links SET child_id = child_id || char(0) WHERE child_id = '{tid}'",
          f"UPDATE tasks SET id = id || char(0) WHERE id = '{tid}'")
    report = verify(path)
    assert not [f for f in findings(report, "data") if "does not exist" in f.message]  # no orphans
    (events,) = [f for f in findings(report, "data", table="task_events") if "NUL" in f.message]
    assert events.count == n
    (tasks,) = [f for f in findings(report, "data", table="tasks") if "NUL" in f.message]
    assert tasks.count == 1


def test_orphans_of_a_task_column_with_another_collation_are_still_found(tmp_path):
    path = make_board(tmp_path, tasks=80)
    (tid,) = query(path, "SELECT task_id FROM task_events GROUP BY task_id ORDER BY count(*) DESC LIMIT 1")[0]
    sql = query(path, "SELECT sql FROM sqlite_master WHERE name = 'task_events'")[0][0]
    plant(path, "DROP INDEX idx_events_task", "DROP INDEX idx_events_run",
          "ALTER TABLE task_events RENAME TO old_events",
          sql.replace("task_id TEXT NOT NULL", "task_id TEXT NOT NULL COLLATE NOCASE"),
          "INSERT INTO task_events SELECT * FROM old_events", "DROP TABLE old_events",
          "CREATE INDEX idx_events_task ON task_events(task_id, created_at)",
          "CREATE INDEX idx_events_run ON task_events(run_id, id)",
          f"UPDATE task_events SET task_id = upper(task_id) WHERE task_id = '{tid}'")
    n = query(path, "SELECT count(*) FROM task_events WHERE task_id = ?", (tid.upper(),))[0][0]
    (f,) = [f for f in findings(verify(path), "data", table="task_events") if "does not exist" in f.message]
    assert f.count == n > 1 and tid.upper() in f.message


def test_parse_jobs_never_run_side_by_side():
    import time

    running, overlaps, order = [], [], []
    lock = threading.Lock()

    def job(name, kind, seconds):
        def run(conn):
            with lock:
                running.append((name, kind))
                if sum(k == "parse" for _, k in running) > 1:
                    overlaps.append(list(running))
                order.append(name)
            time.sleep(seconds)
            with lock:
                running.remove((name, kind))
        return work.Job(name, run, 0, kind)

    queue = work.Work()
    queue.put([job(f"p{i}", "parse", 0.02) for i in range(4)] + [job(f"l{i}", "light", 0.005) for i in range(6)]
             + [job(f"s{i}", "scan", 0.01) for i in range(3)])
    queue.close()
    threads = [threading.Thread(target=queue.drain, args=(None,)) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=10)
    assert not overlaps
    assert sorted(order) == sorted([f"p{i}" for i in range(4)] + [f"l{i}" for i in range(6)] + [f"s{i}" for i in range(3)])
    assert order.index("l0") < order.index("s0")  # beside a parse, light jobs first


def test_connections_do_not_map_the_file(tmp_path):
    # A memory map lets SQLite 3.40 read past the end of a damaged file's last page (SIGSEGV on
    # SQLite Forensic Corpus 14-03 under integrity_check): verify reads through read().
    from kanban_migrate.verifying import checks

    path = make_board(tmp_path, tasks=5)
    conn = checks.connect(f"file:{path}?mode=ro", 1)
    try:
        assert conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    finally:
        conn.close()


def test_orphans_are_found_when_tasks_id_has_no_index(tmp_path):
    # (a forked schema: the lookups go through NOT IN and its temporary index, not a scan per row)
    import time

    path = make_board(tmp_path, tasks=1500)
    sql = query(path, "SELECT sql FROM sqlite_master WHERE name = 'tasks'")[0][0]
    plant(path, "ALTER TABLE tasks RENAME TO old_tasks",
          sql.replace("id TEXT PRIMARY KEY", "id TEXT"),
          "INSERT INTO tasks SELECT * FROM old_tasks", "DROP TABLE old_tasks",
          "DELETE FROM tasks WHERE rowid % 100 = 0")
    gone = query(path, "SELECT count(*) FROM task_events WHERE task_id NOT IN (SELECT id FROM tasks)")[0][0]
    started = time.monotonic()
    report = verify(path)
    assert time.monotonic() - started < 10
    (f,) = [f for f in findings(report, "data", table="task_events") if "does not exist" in f.message]
    assert f.count == gone > 0
