"""verify: each planted problem yields its finding (check, severity, table); healthy boards none."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from kanban_migrate import fixtures, head
from kanban_migrate.errors import MissingBoard
from kanban_migrate.verifying import Finding, VerifyReport, verify
from kanban_migrate.verifying.checks import classify, result_lines
from test_verify_support import digest, findings, listing, make_board, plant, query

import corruption as C


def problems(report):
    return [(f.check, f.severity, f.table, f.message) for f in report.findings if f.severity != "info"]


# ---- healthy boards ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", list(fixtures.shapes()))
def test_every_fixture_shape_at_head_is_healthy(tmp_path, shape):
    path = make_board(tmp_path, shape, tasks=60, seed=5)
    before = digest(path)
    report = verify(path)
    assert report.ok, problems(report)
    assert report.revision == head.HEAD
    assert report.shape and report.shape.startswith("v7")
    assert digest(path) == before and listing(tmp_path) == ["kanban.db"]
    assert report.exit_code == 0
    quick = verify(path, quick=True)
    assert quick.ok and quick.exit_code == 0, problems(quick)


def test_legacy_columns_and_fork_columns_are_info(tmp_path):
    path = make_board(tmp_path, "fork")
    report = verify(path)
    assert report.ok
    infos = findings(report, "schema", "info", "tasks")
    text = " ".join(f.message for f in infos)
    assert "spawn_failures" in text and "claim_pidns" in text
    assert findings(report, "schema", "info", "task_events")  # protocol columns and their index


def test_text_fingerprints_in_worker_started_at_are_not_findings(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE tasks SET worker_started_at = '1700000000|1790000510' WHERE rowid % 3 = 0",
          "UPDATE tasks SET worker_started_at = 'unverified' WHERE rowid % 3 = 1",
          "UPDATE task_runs SET worker_started_at = '|179000051092'")
    assert verify(path).ok


# ---- revision ------------------------------------------------------------------------------------
def test_legacy_board_is_a_revision_warning_and_schema_errors(tmp_path):
    path = make_board(tmp_path, "v0", at_head=False)
    report = verify(path)
    assert not report.ok and report.revision is None and report.shape == "v0"
    (rev,) = findings(report, "revision")
    assert (rev.severity, rev.table) == ("warning", "alembic_version") and "upgrade" in rev.hint
    missing = findings(report, "schema", "error", "tasks")
    assert any("worker_contract" in f.message for f in missing)
    assert findings(report, "schema", "error", "task_runs")  # a missing table


def test_unknown_revision_is_an_error(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE alembic_version SET version_num = 'v99'")
    report = verify(path)
    (rev,) = findings(report, "revision")
    assert (rev.severity, rev.table) == ("error", "alembic_version")
    assert report.revision == "v99" and "newer" in rev.message


def test_older_stamp_on_a_schema_at_head_is_info(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE alembic_version SET version_num = 'v5'")
    report = verify(path)
    (rev,) = findings(report, "revision")
    assert rev.severity == "info" and "v5" in rev.message and "without changing anything" in rev.message
    assert report.ok and report.exit_code == 0


def test_older_stamp_on_an_older_schema_is_a_warning(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE alembic_version SET version_num = 'v5'", "ALTER TABLE tasks DROP COLUMN worker_contract")
    (rev,) = findings(verify(path), "revision")
    assert rev.severity == "warning" and "v5" in rev.message


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_unstamped_board_at_head_is_healthy(tmp_path, journal_mode):
    """The application never stamps: a board straight from it is the normal case (spec section 3)."""
    path = make_board(tmp_path, "v7", at_head=False, journal_mode=journal_mode)
    assert query(path, "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'") == [(0,)]
    report = verify(path)
    assert report.ok, problems(report)
    assert report.exit_code == 0 and report.revision is None
    (rev,) = findings(report, "revision")
    assert rev.severity == "info"
    assert rev.message == "not yet stamped; `upgrade` stamps it without changing anything"


def test_a_huge_junk_stamp_is_shown_as_a_short_excerpt(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE alembic_version SET version_num = ?", params=("x" * 1_000_000,))
    (rev,) = findings(verify(path), "revision")
    assert rev.severity == "error" and len(rev.message) < 200 and "1000000" in rev.message


# ---- schema --------------------------------------------------------------------------------------
def test_missing_head_column_and_index_are_errors(tmp_path):
    path = make_board(tmp_path)
    plant(path, "ALTER TABLE tasks DROP COLUMN worker_contract", "DROP INDEX idx_events_run")
    report = verify(path)
    cols = findings(report, "schema", "error", "tasks")
    assert len(cols) == 1 and "worker_contract" in cols[0].message and cols[0].examples == ["worker_contract"]
    (ix,) = findings(report, "schema", "error", "task_events")
    assert "idx_events_run" in ix.message and "upgrade" in ix.hint


def test_column_that_differs_from_head_is_an_error(tmp_path):
    path = make_board(tmp_path)
    # Rebuild task_comments with a TEXT id (a "drifted" table, #35096) and no AUTOINCREMENT.
    plant(path,
          "CREATE TABLE c2 (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, author TEXT NOT NULL, "
          "body TEXT NOT NULL, created_at INTEGER NOT NULL)",
          "INSERT INTO c2 SELECT * FROM task_comments", "DROP TABLE task_comments",
          "ALTER TABLE c2 RENAME TO task_comments",
          "CREATE INDEX idx_comments_task ON task_comments(task_id, created_at)")
    report = verify(path)
    errs = findings(report, "schema", "error", "task_comments")
    text = " ".join(f.message for f in errs)
    assert "TEXT instead of INTEGER" in text and "AUTOINCREMENT" in text


def test_index_on_other_columns_is_an_error(tmp_path):
    path = make_board(tmp_path)
    plant(path, "DROP INDEX idx_tasks_tenant", "CREATE INDEX idx_tasks_tenant ON tasks(tenant, status)")
    (f,) = findings(verify(path), "schema", "error", "tasks")
    assert "idx_tasks_tenant" in f.message


def test_unknown_table_and_column_are_info(tmp_path):
    path = make_board(tmp_path)
    plant(path, "CREATE TABLE spawn_failures_log (x)", "ALTER TABLE task_runs ADD COLUMN worker_session_id TEXT")
    report = verify(path)
    assert report.ok
    assert findings(report, "schema", "info", "spawn_failures_log")
    assert findings(report, "schema", "info", "task_runs")


def test_sqlite_file_of_something_else_is_not_a_kanban_board(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.commit()
    conn.close()
    report = verify(path)
    (f,) = findings(report, "schema")
    assert f.severity == "error" and "not a kanban board" in f.message
    assert report.shape == "not-kanban" and not findings(report, "data") and not findings(report, "revision")


# ---- data ----------------------------------------------------------------------------------------
def ids(path, sql):
    return [r[0] for r in query(path, sql)]


#: Values the real application writes (spec section 3, measured by running its own code) and values
#: nobody has written yet: an open vocabulary is never a reason for ok: false.
APP_VALUES = [("tasks", "status", v) for v in ("completed", "spawn_failed", "gave_up", "scheduled", "review", "ready")]
APP_VALUES += [("task_runs", "status", v) for v in ("completed", "spawn_failed", "gave_up", "scheduled", "review", "ready")]
APP_VALUES += [("task_runs", "outcome", v) for v in ("scheduled", "review_requested", "changes_requested")]
UNKNOWN_VALUES = [("tasks", "status", "bogus"), ("task_runs", "status", "exploded"), ("task_runs", "outcome", "vanished"),
                  ("kanban_notify_subs", "delivery_mode", "carrier-pigeon"), ("tasks", "status", "\u00e9t\u00e9 \U0001f680"),
                  ("task_runs", "outcome", "x" * 5000)]


def _set_values(path, table, column, value, n=3):
    key = "id" if table != "kanban_notify_subs" else "task_id || '/' || platform || '/' || chat_id"
    planted = ids(path, f"SELECT {key} FROM {table} ORDER BY rowid LIMIT {n}")
    assert len(planted) == n
    plant(path, f"UPDATE {table} SET {column} = ? WHERE rowid IN (SELECT rowid FROM {table} ORDER BY rowid LIMIT {n})",
          params=(value,))
    return planted


@pytest.mark.parametrize("table,column,value", APP_VALUES)
def test_values_the_application_writes_are_healthy(tmp_path, table, column, value):
    path = make_board(tmp_path)
    _set_values(path, table, column, value)
    for quick in (False, True):
        report = verify(path, quick=quick)
        assert report.ok and report.exit_code == 0, problems(report)
        assert all(f.severity == "info" for f in findings(report, "data"))


@pytest.mark.parametrize("table,column,value", UNKNOWN_VALUES)
def test_unknown_values_are_at_most_info(tmp_path, table, column, value):
    path = make_board(tmp_path)
    planted = _set_values(path, table, column, value)
    report = verify(path)
    assert report.ok and report.exit_code == 0, problems(report)
    (f,) = findings(report, "data", table=table)
    assert (f.severity, f.count) == ("info", 3)
    assert f.examples == planted and "not damage" in f.message
    assert len(f.message) < 400  # a long value is shown as an excerpt
    (q,) = findings(verify(path, quick=True), "data", table=table)  # the same answer from the index
    assert (q.severity, q.count, q.examples) == ("info", 3, planted)


def test_non_text_and_null_values_outside_a_vocabulary_are_info(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE task_runs SET status = 42 WHERE rowid = 1", "UPDATE task_runs SET outcome = x'00ff' WHERE rowid = 2",
          "UPDATE kanban_notify_subs SET delivery_mode = 7 WHERE rowid = 1")
    report = verify(path)
    assert report.ok, problems(report)
    runs = findings(report, "data", table="task_runs")
    assert sorted(f.count for f in runs) == [1, 1] and {f.severity for f in runs} == {"info"}
    (subs,) = findings(report, "data", table="kanban_notify_subs")
    assert (subs.severity, subs.count) == ("info", 1)


def test_old_event_kinds_are_info_with_the_upgrade_hint(tmp_path):
    path = make_board(tmp_path)
    plant(path, "UPDATE task_events SET kind = 'spawn_auto_blocked' WHERE id IN (2, 4)")
    report = verify(path)
    (f,) = findings(report, "data", table="task_events")
    assert (f.severity, f.count, f.examples) == ("info", 2, [2, 4])
    assert "upgrade" in f.hint and report.ok


def test_current_run_id_of_a_missing_run_is_an_error(tmp_path):
    path = make_board(tmp_path)
    (tid,) = ids(path, "SELECT id FROM tasks WHERE status = 'todo' LIMIT 1")
    plant(path, f"UPDATE tasks SET current_run_id = 987654 WHERE id = '{tid}'")
    (f,) = findings(verify(path), "data", table="tasks")
    assert (f.severity, f.count, f.examples) == ("error", 1, [tid]) and "does not exist" in f.message


def test_current_run_id_of_another_tasks_run_is_an_error(tmp_path):
    path = make_board(tmp_path)
    (run, owner) = query(path, "SELECT id, task_id FROM task_runs LIMIT 1")[0]
    (tid,) = ids(path, f"SELECT id FROM tasks WHERE status = 'todo' AND id != '{owner}' LIMIT 1")
    plant(path, f"UPDATE tasks SET current_run_id = {run} WHERE id = '{tid}'")
    (f,) = findings(verify(path), "data", table="tasks")
    assert (f.severity, f.examples) == ("error", [tid]) and "another task" in f.message


def test_running_task_without_a_run_on_an_unstamped_board_is_info(tmp_path):
    """Boards the application took to head from an era before runs keep such tasks; upgrade
    creates their runs."""
    path = make_board(tmp_path, at_head=False)
    (tid,) = ids(path, "SELECT id FROM tasks WHERE status = 'todo' LIMIT 1")
    plant(path, f"UPDATE tasks SET status = 'running', current_run_id = NULL WHERE id = '{tid}'")
    report = verify(path)
    f = [f for f in findings(report, "data", table="tasks") if "without a run" in f.message]
    assert f and f[0].severity == "info" and tid in f[0].examples and "upgrade" in f[0].hint
    assert report.ok, problems(report)


def test_running_task_without_a_run_is_a_warning(tmp_path):
    path = make_board(tmp_path)
    (tid,) = ids(path, "SELECT id FROM tasks WHERE status = 'todo' LIMIT 1")
    plant(path, f"UPDATE tasks SET status = 'running', current_run_id = NULL WHERE id = '{tid}'")
    (f,) = findings(verify(path), "data", table="tasks")
    assert (f.severity, f.examples) == ("warning", [tid]) and "without a run" in f.message


@pytest.mark.parametrize("table", ["task_events", "task_comments", "task_runs", "task_attachments",
                                   "kanban_notify_subs"])
def test_rows_of_a_missing_task_are_warnings(tmp_path, table):
    path = make_board(tmp_path, tasks=80)
    (tid,) = ids(path, f"SELECT task_id FROM {table} GROUP BY task_id ORDER BY count(*) DESC LIMIT 1")
    n = query(path, f"SELECT count(*) FROM {table} WHERE task_id = ?", (tid,))[0][0]
    plant(path, f"DELETE FROM tasks WHERE id = '{tid}'",
          f"DELETE FROM task_links WHERE parent_id = '{tid}' OR child_id = '{tid}'",
          *(f"DELETE FROM {t} WHERE task_id = '{tid}'" for t in head.TASK_CHILDREN if t != table))
    report = verify(path)
    (f,) = findings(report, "data", table=table)
    assert (f.severity, f.count) == ("warning", n) and tid in f.message
    assert 1 <= len(f.examples) <= min(n, 5)


def test_links_to_a_missing_task_are_warnings(tmp_path):
    path = make_board(tmp_path, tasks=80)
    parent, child = query(path, "SELECT parent_id, child_id FROM task_links LIMIT 1")[0]
    plant(path, "INSERT INTO task_links VALUES ('t_deadbeef', ?)", params=(child,))
    (f,) = findings(verify(path), "data", table="task_links")
    assert (f.severity, f.count, f.examples) == ("warning", 1, [f"t_deadbeef -> {child}"])
    assert "(parent)" in f.message


@pytest.mark.parametrize("table,column", [("task_events", "payload"), ("tasks", "skills"),
                                          ("task_runs", "metadata")])
def test_json_that_does_not_parse_is_a_warning(tmp_path, table, column):
    path = make_board(tmp_path)
    (rid,) = ids(path, f"SELECT id FROM {table} WHERE {column} IS NOT NULL LIMIT 1")
    plant(path, f"UPDATE {table} SET {column} = '{{\"by\": \"coder\", ' WHERE id = ?", params=(rid,))
    (f,) = findings(verify(path), "data", table=table)
    assert (f.severity, f.count, f.examples) == ("warning", 1, [rid]) and column in f.message


@pytest.mark.parametrize("table,column", [("tasks", "title"), ("tasks", "body"), ("task_comments", "body"),
                                          ("task_events", "kind"), ("kanban_notify_subs", "chat_id")])
def test_nul_bytes_in_text_columns_are_warnings(tmp_path, table, column):
    path = make_board(tmp_path)
    (rowid,) = ids(path, f"SELECT rowid FROM {table} LIMIT 1 OFFSET 2")
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", ("before\x00after", rowid))
    conn.commit()
    conn.close()
    report = verify(path)
    (f,) = [f for f in findings(report, "data", table=table) if "NUL" in f.message]
    assert (f.severity, f.count) == ("warning", 1)


def test_data_counts_are_exact_and_examples_few_on_many_rows(tmp_path):
    path = make_board(tmp_path, tasks=400)
    plant(path, "UPDATE task_events SET payload = 'not json' WHERE id % 2 = 0")
    n = query(path, "SELECT count(*) FROM task_events WHERE id % 2 = 0")[0][0]
    (f,) = findings(verify(path), "data", table="task_events")
    assert f.count == n > 1000 and f.examples == [2, 4, 6, 8, 10]


@pytest.mark.slow
def test_data_scan_memory_stays_flat(tmp_path):
    import tracemalloc

    small = make_board(tmp_path, tasks=500, name="small.db")
    big = make_board(tmp_path, tasks=8000, name="big.db")
    for p in (small, big):
        plant(p, "UPDATE task_events SET kind = 'ready'")  # every event is a finding
    peaks = []
    for p in (small, big):
        verify(p)  # warm imports
        tracemalloc.start()
        report = verify(p)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        (f,) = findings(report, "data", table="task_events")
        assert f.count == query(p, "SELECT count(*) FROM task_events")[0][0] and len(f.examples) == 5
    assert peaks[1] < 2 * peaks[0] + 256 * 1024, peaks  # 16x the rows, not 16x the memory


# ---- integrity -----------------------------------------------------------------------------------
def test_result_lines_read_both_forms():
    one_row = [("*** in database main ***\nPage 5: free space corruption\nOn tree page 7 cell 2: Rowid 9 out of order",)]
    many_rows = [("row 3 missing from index idx_a",), ("wrong # of entries in index idx_a",)]
    assert result_lines(one_row) == ["Page 5: free space corruption", "On tree page 7 cell 2: Rowid 9 out of order"]
    assert result_lines(many_rows) == ["row 3 missing from index idx_a", "wrong # of entries in index idx_a"]
    assert result_lines([("ok",)]) == []


def test_classify_tells_index_damage_from_table_damage():
    (ix,) = classify(["row 3 missing from index idx_a", "wrong # of entries in index idx_a"], {"idx_a": "tasks"})
    assert (ix.check, ix.severity, ix.table, ix.count) == ("integrity", "error", "tasks", 2)
    assert "REINDEX idx_a" in ix.hint and "recover" not in ix.hint.replace("no recover", "")
    (tb,) = classify(["row 3 missing from index idx_a", "Page 4: free space corruption"], {"idx_a": "tasks"})
    assert "recover" in tb.hint and tb.count == 2
    (nn,) = classify(["NULL value in tasks.title"], {})
    assert nn.table == "tasks"


def test_index_only_damage_found_by_full_check_with_reindex_hint(tmp_path):
    path = make_board(tmp_path)
    # The index keeps entries built for (status); the schema now says (title): index damage only.
    C.mismatch_index(path, "idx_tasks_status", "tasks", "title")
    report = verify(path, full=True)
    (f,) = findings(report, "integrity")
    assert (f.severity, f.table) == ("error", "tasks")
    assert "REINDEX idx_tasks_status" in f.hint and f.count >= 1


def _page_of(path, name):
    return query(path, "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,))[0][0]


def test_table_damage_is_an_error_with_the_recover_hint(tmp_path):
    path = make_board(tmp_path, tasks=5)
    pgno = _page_of(path, "task_links")  # a one-page table: the root is a leaf
    C.poke_page(path, pgno, 3, b"\x00\x7f")  # the page's cell count: far more cells than fit
    for full in (False, True):
        report = verify(path, full=full)
        errs = findings(report, "integrity", "error")
        assert errs and all("recover" in f.hint for f in errs), problems(report)


def test_not_a_database_after_a_sane_header_is_a_finding(tmp_path):
    path = make_board(tmp_path, tasks=5)
    C.poke_page(path, 1, 100, b"\xff" * 200)  # page 1's b-tree header: sqlite_master unreadable
    report = verify(path)
    assert findings(report, "integrity", "error") and not report.ok


def test_foreign_key_violations_are_reported_for_tables_that_declare_them(tmp_path):
    path = make_board(tmp_path, "recipes")
    (tid,) = ids(path, "SELECT task_id FROM recipe_instance_tasks LIMIT 1")
    plant(path, f"DELETE FROM tasks WHERE id = '{tid}'")
    report = verify(path)
    fk = findings(report, "integrity", table="recipe_instance_tasks")
    assert fk and fk[0].severity == "warning" and fk[0].count == 1 and "tasks" in fk[0].message


# ---- file ----------------------------------------------------------------------------------------
def test_missing_path_raises_usage_error(tmp_path):
    with pytest.raises(MissingBoard) as info:
        verify(tmp_path / "nope.db")
    assert info.value.code == 2


def test_directory_is_a_file_error(tmp_path):
    (f,) = verify(tmp_path).findings
    assert (f.check, f.severity) == ("file", "error")


def test_zero_byte_file_is_a_file_warning(tmp_path):
    path = tmp_path / "kanban.db"
    path.write_bytes(b"")
    report = verify(path)
    (f,) = report.findings
    assert (f.check, f.severity) == ("file", "warning") and "--create" in f.hint
    assert listing(tmp_path) == ["kanban.db"]


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 50, b"SQLite", bytes(4096)])
def test_not_sqlite_is_a_file_error(tmp_path, content):
    path = tmp_path / "kanban.db"
    path.write_bytes(content)
    report = verify(path)
    (f,) = findings(report, "file", "error")
    assert "not" in f.message and report.shape is None and not report.ok
    assert path.read_bytes() == content and listing(tmp_path) == ["kanban.db"]


@pytest.mark.parametrize("offset,value,words", [
    (16, b"\x03\xe8", "page size 1000"),     # not a power of two
    (18, b"\x03", "write version"),          # file format numbers
    (21, b"\x50", "payload fraction"),
])
def test_insane_header_is_a_file_error(tmp_path, offset, value, words):
    path = make_board(tmp_path, tasks=5)
    C.poke_page(path, 1, offset, value)
    report = verify(path)
    errs = findings(report, "file", "error")
    assert errs and words in errs[0].message


def test_too_many_reserved_bytes_is_a_file_error(tmp_path):
    path = tmp_path / "small-pages.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=512")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    assert verify(path).ok or not findings(verify(path), "file", "error")
    C.poke_page(path, 1, 20, b"\x28")  # 40 reserved bytes: 472 usable, SQLite needs 480
    errs = findings(verify(path), "file", "error")
    assert errs and "usable page size" in errs[0].message


def test_truncated_file_is_a_file_error(tmp_path):
    path = make_board(tmp_path, tasks=30)
    C.cut_tail(path, 1000)
    errs = findings(verify(path), "file", "error")
    assert any("multiple of the page size" in f.message for f in errs)


def test_file_longer_than_its_header_says_is_a_file_error(tmp_path):
    path = make_board(tmp_path, tasks=30)
    C.grow(path, 4096 * 2)
    errs = findings(verify(path), "file", "error")
    assert any("page count" in f.message for f in errs)


def test_delete_journal_mode_is_info(tmp_path):
    path = make_board(tmp_path, journal_mode="delete")
    report = verify(path)
    assert report.ok
    assert any("DELETE" in f.message for f in findings(report, "file", "info"))


def test_a_journal_sqlite_ignores_is_info(tmp_path):
    path = make_board(tmp_path, journal_mode="delete")
    (tmp_path / "kanban.db-journal").write_bytes(b"\x00" * 512)  # zeroed header: not hot to SQLite
    report = verify(path)
    assert report.ok, problems(report)
    assert any("rollback journal" in f.message for f in findings(report, "file", "info"))


def _hot_journal(tmp_path):
    """A writer killed in mid-commit (its cache spilled into the file): a hot rollback journal."""
    import subprocess
    import sys

    path = make_board(tmp_path, tasks=200, journal_mode="delete")
    killed = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
              "c.execute('PRAGMA cache_size=2'); c.execute('BEGIN');"
              "c.execute(\"UPDATE tasks SET body = hex(randomblob(3000))\"); os._exit(9)")
    subprocess.run([sys.executable, "-c", killed, str(path)], check=False)
    journal = tmp_path / "kanban.db-journal"
    assert journal.stat().st_size > 0
    return path, journal


def test_a_hot_journal_is_checked_as_the_rolled_back_board(tmp_path, monkeypatch):
    """Read-only SQLite cannot roll a hot journal back; verify checks a copy that SQLite rolled
    back (what the application's next open will see), and touches neither file."""
    import tempfile

    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    path, journal = _hot_journal(board_dir)
    before = (digest(path), digest(journal), listing(board_dir))
    report = verify(path)
    assert report.ok and report.exit_code == 0, problems(report)
    assert any("rolls it back" in f.message for f in findings(report, "file", "info"))
    assert (digest(path), digest(journal), listing(board_dir)) == before
    assert listing(work) == []


def test_a_hot_journal_without_room_for_a_copy_is_not_checked_and_not_called_damage(tmp_path, monkeypatch):
    from kanban_migrate.verifying import access

    def full(facts, need):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(access, "_private_dir", full)
    path, journal = _hot_journal(tmp_path)
    before = (digest(path), digest(journal), listing(tmp_path))
    report = verify(path)
    assert report.ok is None and report.exit_code == 4
    assert "hot rollback journal" in report.not_checked.reason and "application" in report.not_checked.hint
    assert not findings(report, "integrity") and not findings(report, "data")
    assert (digest(path), digest(journal), listing(tmp_path)) == before


def test_backups_beside_the_board_are_counted(tmp_path):
    path = make_board(tmp_path)
    for i in range(2):
        (tmp_path / f"kanban.db.pre-upgrade.{i:016x}.bak").write_bytes(b"x")
    report = verify(path)
    assert report.ok
    (f,) = [f for f in findings(report, "file", "info") if "pre-upgrade" in f.message]
    assert f.count == 2
    for i in range(12):
        (tmp_path / f"kanban.db.corrupt.{i:016x}.bak").write_bytes(b"x")
    (f,) = findings(verify(path), "file", "warning")
    assert f.count == 12 and "quarantine" in f.message


def _live_wal(path):
    """A connection that keeps committed frames in the WAL (no checkpoint) and -shm alive."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE tasks SET title = title || '!' WHERE rowid <= 5")
    return conn


def test_wal_with_pending_frames_and_a_live_writer_is_info(tmp_path):
    path = make_board(tmp_path)
    conn = _live_wal(path)
    try:
        before = digest(path)
        report = verify(path)
        assert report.ok, problems(report)
        assert any("not yet checkpointed" in f.message for f in findings(report, "file", "info"))
        assert digest(path) == before
    finally:
        conn.close()


def test_stale_wal_is_a_warning_with_checkpoint_hint(tmp_path):
    path = make_board(tmp_path)
    conn = _live_wal(path)
    try:
        old = time.time() - 3 * 3600
        os.utime(str(path) + "-wal", (old, old))
        (f,) = findings(verify(path), "file", "warning")
        assert "stale" in f.message and "wal_checkpoint" in f.hint
    finally:
        conn.close()


def test_wal_without_shm_is_read_from_a_copy_and_nothing_is_created(tmp_path):
    (tmp_path / "src").mkdir()
    src = make_board(tmp_path / "src")
    conn = _live_wal(src)
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    (board_dir / "kanban.db").write_bytes(src.read_bytes())
    (board_dir / "kanban.db-wal").write_bytes((src.parent / "kanban.db-wal").read_bytes())
    conn.close()
    path = board_dir / "kanban.db"
    before = (digest(path), digest(board_dir / "kanban.db-wal"))
    report = verify(path)
    (f,) = findings(report, "file", "warning")
    assert "no -shm" in f.message and "wal_checkpoint" in f.hint
    # the WAL's rows were seen: the titles changed in it
    assert report.revision == head.HEAD and not findings(report, "integrity")
    assert listing(board_dir) == ["kanban.db", "kanban.db-wal"]
    assert (digest(path), digest(board_dir / "kanban.db-wal")) == before


def test_large_wal_is_a_warning(tmp_path):
    path = make_board(tmp_path, tasks=300)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(6):
        conn.execute("UPDATE tasks SET body = hex(randomblob(4000))")
    try:
        assert os.path.getsize(str(path) + "-wal") > 8 * 1024 * 1024
        warn = findings(verify(path), "file", "warning")
        assert warn and "large" in warn[0].message
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_verify_never_writes(tmp_path, mode):
    path = make_board(tmp_path, journal_mode=mode)
    if mode == "delete":
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
    before, files, mtime = digest(path), listing(tmp_path), path.stat().st_mtime_ns
    verify(path)
    verify(path, full=True)
    assert (digest(path), listing(tmp_path), path.stat().st_mtime_ns) == (before, files, mtime)


# ---- the report ----------------------------------------------------------------------------------
def test_report_dict_has_exactly_the_documented_keys(tmp_path):
    path = make_board(tmp_path, "v0", at_head=False)
    d = verify(path).to_dict()
    assert list(d) == ["path", "ok", "shape", "revision", "findings", "not_checked"]
    assert d["not_checked"] is None
    assert d["ok"] is False and d["path"] == str(path)
    for f in d["findings"]:
        assert list(f) == ["check", "severity", "table", "message", "hint", "count", "examples"]
        assert f["check"] in ("file", "integrity", "schema", "revision", "data")
        assert f["severity"] in ("error", "warning", "info")
    json.dumps(d)
    sev = [f["severity"] for f in d["findings"]]
    assert sev == sorted(sev, key=["error", "warning", "info"].index)


def test_ok_means_no_error_and_no_warning():
    r = VerifyReport("x", findings=[Finding("file", "info", "note")])
    assert r.ok and r.exit_code == 0
    r.findings.append(Finding("data", "warning", "w"))
    assert not r.ok and r.exit_code == 1
    with pytest.raises(ValueError):
        Finding("file", "fatal", "no such severity")


def test_top_level_api_is_the_function(tmp_path):
    import kanban_migrate
    import kanban_migrate.verifying  # noqa: F401  (importing the package must not shadow the function)

    path = make_board(tmp_path)
    assert kanban_migrate.verify(path).ok
    assert kanban_migrate.verify is kanban_migrate.verifying.verify


def test_data_checks_can_be_left_out(tmp_path):
    """verify(data=False) runs file, integrity, schema and revision only (recover's check)."""
    path = make_board(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tasks SET status = 'no-such-status' WHERE rowid = 1")
    conn.commit()
    conn.close()
    assert any(f.check == "data" for f in verify(path).findings)
    assert not any(f.check == "data" for f in verify(path, data=False).findings)


def test_quick_reads_the_small_tables_and_the_status_index_only(tmp_path):
    """--quick: quick_check, the vocabularies, the runs of running tasks and every check of the
    small tables; JSON, NUL bytes and references of the content tables are the default's."""
    path = make_board(tmp_path, tasks=80)
    (run_id,) = ids(path, "SELECT id FROM task_runs WHERE metadata IS NOT NULL LIMIT 1")
    (todo, running) = ids(path, "SELECT id FROM tasks WHERE status = 'todo' LIMIT 2")
    plant(path, "UPDATE task_runs SET metadata = '{broken' WHERE id = ?", params=(run_id,))
    plant(path, f"UPDATE tasks SET status = 'running', current_run_id = 987654 WHERE id = '{running}'",
          f"UPDATE tasks SET current_run_id = 987655 WHERE id = '{todo}'",
          "UPDATE task_events SET payload = 'not json' WHERE id = 3",
          "INSERT INTO task_comments (task_id, author, body, created_at) VALUES ('t_gone', 'a', 'b', 1)")
    thorough, quick = verify(path), verify(path, quick=True)
    for report in (thorough, quick):
        assert findings(report, "data", "warning", "task_runs")  # the small table's JSON
        (cur,) = [f for f in findings(report, "data", "error", "tasks") if "does not exist" in f.message]
        assert running in cur.examples
    (cur,) = [f for f in findings(thorough, "data", "error", "tasks") if "does not exist" in f.message]
    assert cur.count == 2  # the thorough check looks at every task, quick only at the running ones
    assert findings(thorough, "data", table="task_events") and findings(thorough, "data", table="task_comments")
    assert not findings(quick, "data", table="task_events") and not findings(quick, "data", table="task_comments")


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_names_with_uri_characters_leave_nothing_beside_the_board(tmp_path, journal_mode):
    """Every connection verify makes names the board by a quoted URI: '?', '#' and '%' in a name
    open that file, not a stray one."""
    path = make_board(tmp_path, name="board ?x=1#y%41.db", journal_mode=journal_mode)
    before = (digest(path), listing(tmp_path))
    report = verify(path)
    assert report.ok, problems(report)
    assert report.revision == head.HEAD
    assert (digest(path), listing(tmp_path)) == before
