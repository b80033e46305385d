"""Every fixture shape reaches exactly head with every row and value kept, except the documented
data changes (spec section 5), which are asserted value by value."""

from __future__ import annotations

import sqlite3
import time

import pytest

from support import pragma_rows, rows, sha256, tables
from kanban_migrate import fixtures, head, schema
from kanban_migrate.board import journal_mode_for
from kanban_migrate.fingerprint import LEGACY_COLUMNS
from kanban_migrate.upgrading import upgrade

SHAPES = list(fixtures.shapes())
RENAMES = head.EVENT_KIND_RENAMES
AUTOINC = {"task_events", "task_comments", "task_runs", "task_attachments"}


def snapshot_of(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return schema.snapshot(conn)
    finally:
        conn.close()


def key_of(table: str, row: dict):
    if table == "tasks":
        return row["id"]
    if table == "task_links":
        return (row["parent_id"], row["child_id"])
    if table == "kanban_notify_subs":
        return (row["task_id"], row["platform"], row["chat_id"], row["thread_id"])
    if table in AUTOINC:
        return row["id"]
    return row["_rowid_"]


def renumbered(before_schema, table: str) -> bool:
    t = before_schema.tables.get(table)
    return table in AUTOINC and t is not None and t.columns["id"].type != "INTEGER"


@pytest.mark.parametrize("shape", SHAPES)
def test_upgrade_reaches_head_and_keeps_every_row(shape, kanban_board):
    path = kanban_board(shape, tasks=120, name="kanban.db")
    before_schema = snapshot_of(path)
    before = {t: rows(path, t) for t in tables(path)}
    mode_before = pragma_rows(path, "journal_mode")[0][0]

    result = upgrade(path)
    assert result.status == "upgraded" and result.revision_after == head.HEAD
    assert result.applied == list(head.REVISIONS)

    # --- exactly head (extras are only what the board had and head does not know)
    after_schema = snapshot_of(path)
    diffs = schema.compare(after_schema, head.expected())
    assert [d.detail for d in diffs if not d.is_extra] == []
    for d in diffs:
        if d.kind == "extra-column":
            assert before_schema.has_column(d.table, d.name), d.detail
        elif d.kind == "extra-table":
            assert before_schema.has_table(d.table), d.detail
        elif d.kind == "extra-index":
            assert d.name in before_schema.indexes, d.detail
    assert pragma_rows(path, "integrity_check") == [("ok",)]
    assert pragma_rows(path, "foreign_key_check") == []
    # the application's journal-mode rule: a WAL board stays WAL, any other follows the gate
    assert pragma_rows(path, "journal_mode") == [(journal_mode_for(mode_before) or mode_before,)]

    # --- every row and every value survives, but for the documented data changes
    after = {t: rows(path, t) for t in tables(path)}
    run_id_map: dict = {}
    if renumbered(before_schema, "task_runs"):
        old_runs = before["task_runs"]
        run_id_map = {r["id"]: i for i, r in enumerate(old_runs, start=1)}
    for table, old_rows in before.items():
        if table == "alembic_version":
            continue
        new_rows = after[table]
        if renumbered(before_schema, table):
            # TEXT ids are dropped and the rows renumbered in their original order.
            assert [r["id"] for r in new_rows[: len(old_rows)]] == list(range(1, len(old_rows) + 1))
            new_by_key = {i: r for i, r in enumerate(new_rows, start=1)}
            old_by_key = {i: r for i, r in enumerate(old_rows, start=1)}
        else:
            new_by_key = {key_of(table, r): r for r in new_rows}
            old_by_key = {key_of(table, r): r for r in old_rows}
        assert set(old_by_key) <= set(new_by_key), f"{table}: rows lost"
        extra_keys = set(new_by_key) - set(old_by_key)
        if table != "task_runs":
            assert not extra_keys, f"{table}: rows invented"
        for k, old in old_by_key.items():
            new = new_by_key[k]
            for col, value in old.items():
                if col == "_rowid_" or (col == "id" and renumbered(before_schema, table)):
                    continue
                expected = value
                if table == "task_events" and col == "kind":
                    expected = RENAMES.get(value, value)
                if table == "kanban_notify_subs" and col == "last_event_id":
                    expected = int(value)
                if col in ("current_run_id", "run_id") and run_id_map and value in run_id_map:
                    expected = run_id_map[value]
                if table == "tasks" and col == "current_run_id" and value is None and old["status"] == "running":
                    continue  # backfilled: asserted below
                assert new[col] == expected, (table, k, col)
            # columns the upgrade added: their documented values
            for col in set(new) - set(old):
                if table == "tasks" and col == "consecutive_failures":
                    assert new[col] == (old.get("spawn_failures") or 0), k
                elif table == "tasks" and col == "last_failure_error":
                    assert new[col] == old.get("last_spawn_error"), k
                elif table == "kanban_notify_subs" and col == "delivery_mode":
                    assert new[col] == ("notify" if old["platform"] == "tui" else "notify+wake"), k
                elif table == "tasks" and col == "current_run_id":
                    continue
                else:
                    default = head.expected().tables[table].columns[col].default
                    assert new[col] == (None if default is None else eval(default)), (table, col)
        assert not [c for c in (set(old_rows[0]) if old_rows else set()) if c not in (set(new_rows[0]) if new_rows else set())]

    # --- a run for every running task that had none, and current_run_id pointing at it
    old_tasks = {t["id"]: t for t in before["tasks"]}
    runs = {r["id"]: r for r in after["task_runs"]}
    original_run_count = len(before.get("task_runs", []))
    backfilled = 0
    for t in after["tasks"]:
        if t["status"] != "running":
            continue
        run = runs[t["current_run_id"]]
        assert run["task_id"] == t["id"]
        if old_tasks[t["id"]].get("current_run_id") is None:
            backfilled += 1
            assert run["status"] == "running"
            assert run["profile"] == t["assignee"]
            if t["started_at"] is not None:
                assert run["started_at"] == t["started_at"]
            else:  # a task without a start time: the run starts at the upgrade
                assert abs(run["started_at"] - time.time()) < 600
            for col in ("claim_lock", "claim_expires", "worker_pid", "max_runtime_seconds", "last_heartbeat_at"):
                assert run[col] == t[col], col
    assert len(after["task_runs"]) == original_run_count + backfilled
    assert backfilled > 0 or not any(t["status"] == "running" for t in before["tasks"])

    # --- event kinds: none of the old ones left
    assert not [e for e in after["task_events"] if e["kind"] in RENAMES]

    # --- a second upgrade changes nothing
    digest = sha256(path)
    again = upgrade(path)
    assert again.status == "current" and again.applied == []
    assert sha256(path) == digest


@pytest.mark.parametrize("shape", ["v1", "v2b", "drifted", "fork"])
def test_legacy_and_fork_columns_keep_their_data(shape, kanban_board):
    path = kanban_board(shape, tasks=120, name="kanban.db")
    before_schema = snapshot_of(path)
    head_cols = {t: set(head.metadata.tables[t].c.keys()) for t in head.metadata.tables}
    unknown = [(t, c) for t in head_cols if before_schema.has_table(t) for c in before_schema.columns(t)
               if c not in head_cols[t]]
    assert unknown, "the fixture should carry columns head does not know"
    before = {(t, c): [r[c] for r in rows(path, t)] for t, c in unknown}
    upgrade(path)
    for (t, c), values in before.items():
        assert [r[c] for r in rows(path, t)][: len(values)] == values, (t, c)
    if shape == "fork":
        after = snapshot_of(path)
        assert after.indexes["idx_events_correlation"].columns == ("correlation_id",)
        assert after.indexes["idx_tasks_claim_pidns"].columns == ("claim_pidns",)
    if "spawn_failures" in before_schema.columns("tasks"):
        assert "spawn_failures" in snapshot_of(path).columns("tasks")
    assert LEGACY_COLUMNS["tasks"] >= {c for t, c in unknown if t == "tasks" and c.startswith(("spawn", "last_spawn"))}


def test_drifted_run_ids_follow_their_runs(kanban_board):
    path = kanban_board("drifted", tasks=120, name="kanban.db")
    old_runs = rows(path, "task_runs")
    old_tasks = {t["id"]: t for t in rows(path, "tasks")}
    old_events = rows(path, "task_events")
    upgrade(path)
    new_runs = {r["id"]: r for r in rows(path, "task_runs")}
    by_old = {r["id"]: i for i, r in enumerate(old_runs, start=1)}
    for t in rows(path, "tasks"):
        old = old_tasks[t["id"]]["current_run_id"]
        if old is not None:
            assert new_runs[t["current_run_id"]]["task_id"] == t["id"]
            assert t["current_run_id"] == by_old[old]
    for old, new in zip(old_events, rows(path, "task_events")):
        if old["run_id"] is not None:
            assert new["run_id"] == by_old[old["run_id"]]
    conn = sqlite3.connect(path)
    seqs = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
    for table in ("task_events", "task_comments", "task_runs"):
        assert seqs[table] == conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()[0]
    conn.close()


def test_half_upgraded_board_from_the_session_id_release(kanban_board):
    path = kanban_board("v3-half", tasks=120, name="kanban.db")
    info = fixtures.create(path.with_name("again.db"), "v3-half", tasks=5)
    assert info.aborted and "no such column: session_id" in info.aborted[0]
    s = snapshot_of(path)
    assert s.has_table("task_runs") and not s.has_column("tasks", "session_id")
    result = upgrade(path)
    assert result.shape.startswith("v3-half")
    assert schema.at_head(snapshot_of(path), head.expected())


def test_v2a_renamed_counters_are_not_copied_again(kanban_board):
    path = kanban_board("v2a", tasks=120, name="kanban.db")
    before = {t["id"]: t["consecutive_failures"] for t in rows(path, "tasks")}
    upgrade(path)
    assert {t["id"]: t["consecutive_failures"] for t in rows(path, "tasks")} == before
    assert "spawn_failures" not in snapshot_of(path).columns("tasks")


def test_notify_progress_of_the_upstream_snapshot_is_kept_and_no_warning(kanban_board):
    """kanban_notify_subs.notify_progress (one upstream snapshot, not upstream main): kept with its
    values through the upgrade, and a column head does not know is information, never a warning."""
    from kanban_migrate.verifying import verify

    path = kanban_board("notify-progress", tasks=120, name="kanban.db")
    before = [(r["task_id"], r["notify_progress"]) for r in rows(path, "kanban_notify_subs")]
    assert before
    assert upgrade(path).status == "upgraded"
    assert [(r["task_id"], r["notify_progress"]) for r in rows(path, "kanban_notify_subs")] == before
    col = snapshot_of(path).tables["kanban_notify_subs"].columns["notify_progress"]
    assert (col.type, col.notnull, col.default) == ("INTEGER", True, "0")
    report = verify(path)
    about = [f for f in report.findings if "notify_progress" in f.message]
    assert about and {f.severity for f in about} == {"info"}
    assert report.ok
