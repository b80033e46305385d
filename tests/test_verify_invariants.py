"""verify's data rules one by one (kanban_migrate.verifying.invariants), Alembic-style: by the SQL
each rule emits and by the finding it produces on a tiny board with one planted problem, without
running the whole of ``verify``. ``test_verify_data_sql.py`` checks the rules as ``verify`` runs them."""

from __future__ import annotations

import sqlite3

import pytest

from kanban_migrate.schema import snapshot
from kanban_migrate.verifying import invariants, scan
from kanban_migrate.verifying.invariants import Orphans, Vocabulary, in_set, nul_test, run_flags, table_flags

TASKS = 12


@pytest.fixture
def board(kanban_board):
    """``(path, conn)``: a tiny head-shaped board (unstamped, as the application leaves it) and a
    connection with the rules' functions; changes through ``conn`` are what the rules see."""
    path = kanban_board(shape="v7", tasks=TASKS, seed=3, journal_mode="delete")
    conn = sqlite3.connect(path, isolation_level=None)
    invariants.prepare(conn)
    yield path, conn
    conn.close()


def add_runs(conn, n: int, **values) -> list[tuple[str, int]]:
    """``n`` runs, one for each of the first ``n`` tasks, each the task's current run:
    ``[(task id, run id)]``."""
    out = []
    for (tid,) in conn.execute(f"SELECT id FROM tasks ORDER BY rowid LIMIT {n}").fetchall():
        cols = {"task_id": tid, "status": "done", "started_at": 1, **values}
        cur = conn.execute(f"INSERT INTO task_runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           tuple(cols.values()))
        conn.execute("UPDATE tasks SET current_run_id = ? WHERE id = ?", (cur.lastrowid, tid))
        out.append((tid, cur.lastrowid))
    return out


def offending(conn, table: str, flag) -> list:
    """The rowids the flag's SQL selects."""
    return [r[0] for r in conn.execute(f"SELECT rowid FROM {table} WHERE {flag.expr} ORDER BY rowid")]


def by_message(flags, words: str):
    (flag,) = [f for f in flags if words in f.message]
    return flag


# ---- the SQL the rules emit -----------------------------------------------------------------------
def test_in_set_is_a_case_of_quoted_literals_in_sorted_order():
    assert in_set("kind", {"ready", "o'clock"}) == "(CASE kind WHEN 'o''clock' THEN 1 WHEN 'ready' THEN 1 ELSE 0 END)"


def test_nul_test_uses_instr_for_short_and_printf_for_long_values():
    assert nul_test("x") == "(instr(x, char(0)) > 0 AND typeof(x) = 'text')"
    assert nul_test("x", long=True) == "(CAST(printf('%s', x) AS BLOB) <> CAST(x AS BLOB) AND typeof(x) = 'text')"
    conn = sqlite3.connect(":memory:")
    for long in (False, True):
        sql = f"SELECT {nul_test('?', long=long).replace('?', '?1')}"
        assert [conn.execute(sql, (v,)).fetchone()[0] for v in ("a\x00b", "ab", b"a\x00b", None)] == [1, 0, 0, 0], long


def test_the_rules_of_each_table_on_a_head_board(board):
    _path, conn = board
    schema = snapshot(conn)
    assert [f.message.split(" ", 1)[1] for f in table_flags(schema, "tasks", stamped=False)] == [
        "row(s) of {table} whose skills is not valid JSON",
        "task(s) whose current_run_id names a run that does not exist",
        "task(s) whose current_run_id names another task's run",
        "running task(s) without a run (current_run_id is NULL), as boards from before runs keep them"]
    assert [f.value for f in table_flags(schema, "task_events")] == ["kind", None]
    assert ["metadata" in f.expr for f in table_flags(schema, "task_runs")] == [True]
    assert table_flags(schema, "task_links") == [] and table_flags(schema, "task_comments") == []
    assert invariants.nul_flag(schema, "task_links", skip=("parent_id", "child_id")) is None


def test_a_running_task_without_a_run_is_info_unstamped_and_a_warning_stamped(board):
    _path, conn = board
    schema = snapshot(conn)
    for stamped, severity in ((False, "info"), (True, "warning")):
        flag = by_message(run_flags(schema, stamped=stamped), "without a run")
        assert flag.severity == severity
    flag = by_message(run_flags(schema), "without a run")
    assert offending(conn, "tasks", flag) == []
    add_runs(conn, 2, status="running")
    conn.execute("UPDATE tasks SET status = 'running' WHERE rowid IN (1, 2, 3)")
    assert offending(conn, "tasks", flag) == [3]  # tasks 1 and 2 have their run


def test_current_run_id_naming_a_missing_run_or_another_tasks_run(board):
    _path, conn = board
    flags = run_flags(snapshot(conn))
    missing, foreign = by_message(flags, "does not exist"), by_message(flags, "another task's run")
    assert offending(conn, "tasks", missing) == offending(conn, "tasks", foreign) == []
    (_, run_a), (_, run_b), _ = add_runs(conn, 3)
    assert offending(conn, "tasks", missing) == offending(conn, "tasks", foreign) == []
    conn.execute(f"UPDATE tasks SET current_run_id = {run_b} WHERE rowid = 1")
    conn.execute("UPDATE tasks SET current_run_id = 987654 WHERE rowid = 2")
    assert (offending(conn, "tasks", missing), offending(conn, "tasks", foreign)) == ([2], [1])
    assert missing.severity == foreign.severity == "error"


def test_json_rule_flags_invalid_json_and_a_nul_after_valid_json(board):
    _path, conn = board
    flag = invariants.json_flag("payload")
    ids = [r[0] for r in conn.execute("SELECT id FROM task_events ORDER BY id LIMIT 3")]
    conn.execute("UPDATE task_events SET payload = '{\"a\": 1}' || char(0) || 'junk' WHERE id = ?", (ids[0],))
    conn.execute("UPDATE task_events SET payload = '[1,]' WHERE id = ?", (ids[1],))
    conn.execute("UPDATE task_events SET payload = NULL WHERE id = ?", (ids[2],))
    assert offending(conn, "task_events", flag) == ids[:2]


def test_old_event_kinds_are_info_and_list_the_renames(board):
    _path, conn = board
    flag = invariants.event_kind_flag()
    assert (flag.severity, flag.value) == ("info", "kind")
    assert "ready -> promoted" in flag.hint
    (eid,) = conn.execute("SELECT min(id) FROM task_events WHERE kind = 'created'").fetchone()
    conn.execute("UPDATE task_events SET kind = 'spawn_auto_blocked' WHERE id = ?", (eid,))
    old = [r[0] for r in conn.execute("SELECT id FROM task_events WHERE kind IN ('ready', 'priority', "
                                      "'spawn_auto_blocked') ORDER BY id")]
    assert eid in old and offending(conn, "task_events", flag) == old  # the application's era wrote some too


def test_vocabulary_finding_is_info_with_count_values_and_examples(board):
    _path, conn = board
    add_runs(conn, 3, outcome="completed")
    conn.execute("UPDATE task_runs SET outcome = 'vanished' WHERE id IN (SELECT id FROM task_runs ORDER BY id LIMIT 2)")
    conn.execute("UPDATE task_runs SET outcome = NULL WHERE id = (SELECT max(id) FROM task_runs)")
    ids = [r[0] for r in conn.execute("SELECT id FROM task_runs ORDER BY id LIMIT 2")]
    (unit,) = [u for u in invariants.vocabularies(snapshot(conn)) if u.name == "values task_runs.outcome"]
    (f,) = unit.check(conn)
    assert (f.check, f.severity, f.table, f.count, f.examples) == ("data", "info", "task_runs", 2, ids)
    assert "'vanished' x2" in f.message and "not damage" in f.message
    nulls = Vocabulary(snapshot(conn), "task_runs", "outcome", {"completed"}, nullable=True, what="outcome")
    assert all("None" not in x.message for x in nulls.check(conn))  # NULL is allowed there


def test_orphans_lists_the_missing_task_and_counts_its_rows(board):
    _path, conn = board
    (tid, n) = conn.execute("SELECT task_id, count(*) FROM task_comments GROUP BY task_id ORDER BY 2 DESC LIMIT 1").fetchone()
    conn.execute("DELETE FROM tasks WHERE id = ?", (tid,))
    unit = Orphans(snapshot(conn), "task_comments", "task_id", nul=True)
    assert unit.gone(conn, "x.task_id") == "NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = x.task_id)"
    (f,) = unit.check(conn)
    assert (f.severity, f.table, f.count) == ("warning", "task_comments", n)
    assert f"({tid!r})" in f.message and not unit.nul_found


def test_orphans_without_an_index_on_tasks_id_use_not_in(tmp_path):
    conn = sqlite3.connect(tmp_path / "fork.db")
    conn.executescript("CREATE TABLE tasks (id TEXT); CREATE TABLE task_links (parent_id TEXT, child_id TEXT);"
                       "INSERT INTO tasks VALUES ('t_1'); INSERT INTO task_links VALUES ('t_1', 't_2');")
    unit = Orphans(snapshot(conn), "task_links", "child_id", nul=True)
    assert unit.gone(conn, "x.child_id") == "(x.child_id IS NULL OR x.child_id NOT IN (SELECT id FROM tasks WHERE id IS NOT NULL))"
    (f,) = unit.check(conn)
    assert f.count == 1 and "(child)" in f.message and f.examples == ["t_1 -> t_2"]


def test_the_count_pass_sql_of_a_ranged_scan(board):
    _path, conn = board
    flag = invariants.json_flag("payload")
    s = scan.Scan("task_events", '"id"', [flag], "rowid")
    assert s.count_sql(True) == (
        f"SELECT count(*), sum(CASE WHEN {flag.expr} THEN 1 ELSE 0 END), min(CASE WHEN {flag.expr} THEN rowid END) "
        f'FROM "task_events" WHERE rowid BETWEEN ? AND ? AND ({flag.expr})')


def test_the_quick_plan_reads_no_content_table_but_the_running_tasks(board):
    _path, conn = board
    schema = snapshot(conn)
    quick = {j.name for j in scan.plan(schema, conn, quick=True, stamped=False).jobs}
    full = {j.name for j in scan.plan(schema, conn, stamped=False).jobs}
    assert quick == {"values tasks.status", "values task_runs.status", "values task_runs.outcome",
                     "values kanban_notify_subs.delivery_mode", "scan tasks", "scan task_runs",
                     "scan kanban_notify_subs", "scan task_attachments", "orphans task_runs",
                     "orphans task_attachments", "orphans kanban_notify_subs", "orphans task_links.parent_id",
                     "orphans task_links.child_id"}
    assert full - quick == {"scan task_events", "scan task_comments", "orphans task_events", "orphans task_comments"}
    (tasks,) = [u for u in scan.plan(schema, conn, quick=True).units if getattr(u, "table", None) == "tasks"
                and isinstance(u, scan.Scan)]
    assert tasks.scope == scan.QUICK_TASKS and "status = 'running'" in tasks.count_sql(False)
