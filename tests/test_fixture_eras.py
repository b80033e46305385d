"""The fixtures are the application's history as it really was (spec section 6, corrections)."""

from __future__ import annotations

import sqlite3

import pytest

from kanban_migrate import fixtures, head
from kanban_migrate.fingerprint import fingerprint
from kanban_migrate.schema import snapshot


@pytest.fixture(scope="module")
def boards(tmp_path_factory):
    base = tmp_path_factory.mktemp("eras")
    out = {}
    for shape in fixtures.shapes():
        info = fixtures.create(base / f"{shape}.db", shape, tasks=60, seed=9)
        conn = sqlite3.connect(info.path)
        try:
            out[shape] = snapshot(conn)
        finally:
            conn.close()
    return out


def cols(s, table):
    return set(s.columns(table))


def test_19_may_had_session_id_but_not_the_goal_project_or_block_columns(boards):
    tasks = cols(boards["v3"], "tasks")
    assert {"branch_name", "model_override", "max_retries", "session_id"} <= tasks
    assert not tasks & {"project_id", "goal_mode", "goal_max_turns", "block_kind", "block_recurrences"}
    assert not boards["v3"].has_table("task_attachments")


def test_end_of_may_brought_attachments_and_the_goal_loop(boards):
    tasks = cols(boards["v4"], "tasks")
    assert {"goal_mode", "goal_max_turns"} <= tasks and boards["v4"].has_table("task_attachments")
    assert not tasks & {"project_id", "block_kind", "block_recurrences", "provider_override"}


def test_june_brought_projects_and_typed_blocks(boards):
    assert {"project_id", "block_kind", "block_recurrences"} <= cols(boards["v4-june"], "tasks")
    assert "provider_override" not in cols(boards["v4-june"], "tasks")


def test_late_july_subscriptions_had_chat_type_and_delivery_metadata_only(boards):
    subs = cols(boards["v5-july"], "kanban_notify_subs")
    assert {"chat_type", "delivery_metadata"} <= subs
    assert not subs & {"delivery_mode", "user_id_alt", "last_ping_event_id"}
    tasks = cols(boards["v5-july"], "tasks")
    assert "provider_override" in tasks and "reasoning_effort" not in tasks
    assert {"delivery_mode", "user_id_alt", "last_ping_event_id"} <= cols(boards["v5"], "kanban_notify_subs")


def test_a_board_opened_by_each_release_gets_each_release_s_columns_at_its_end(boards):
    """v1 (30 April) opened by v2b, end of May, June, late July, August, September and v7: each
    release appends what it brought, in the application's add order."""
    tasks = boards["v1-upgraded"].columns("tasks")
    assert tasks[tasks.index("skills") + 1:] == [
        "consecutive_failures", "last_failure_error", "max_retries",           # v2b (May)
        "branch_name", "model_override", "goal_mode", "goal_max_turns", "session_id",  # end of May
        "project_id", "block_kind", "block_recurrences",                       # June
        "provider_override",                                                   # late July
        "reasoning_effort",                                                    # August
        "completion_contract",                                                 # September
        "worker_contract", "worker_started_at",                                # v7
    ]
    subs = boards["v1-upgraded"].columns("kanban_notify_subs")
    assert subs[subs.index("last_event_id") + 1:] == [
        "notifier_profile", "chat_type", "delivery_metadata",                  # May, late July
        "last_ping_event_id", "delivery_mode", "user_id_alt",                  # August
    ]


def test_every_shape_is_recognised(boards):
    expected = {"v0": "v0", "v0-v1": "v0-v1", "v1": "v1", "v2a": "v2a", "v2b": "v2b", "v3-half": "v3-half",
                "v3": "v3", "v4": "v4", "v4-june": "v4", "v5-july": "v5", "v5": "v5", "v6": "v6", "v7": "v7",
                "v1-upgraded": "v7", "notify-progress": "v7", "fork": "v2b", "recipes": "v5",
                "drifted": "v2b", "reduced": "v0"}
    assert set(expected) == set(boards)
    assert {name: fingerprint(s).shape for name, s in boards.items()} == expected


def test_run_history_uses_the_values_the_application_writes(tmp_path):
    for status, outcome in fixtures.RUN_ENDINGS:
        assert status in head.RUN_STATUSES and outcome in head.RUN_OUTCOMES
    info = fixtures.create(tmp_path / "kanban.db", "v7", tasks=300, seed=2)
    conn = sqlite3.connect(info.path)
    try:
        seen = set(conn.execute("SELECT status, outcome FROM task_runs"))
    finally:
        conn.close()
    statuses = {s for s, _ in seen}
    assert {"completed", "spawn_failed", "review"} <= statuses or len(statuses - {"done", "running"}) >= 4
    assert {s for s, _ in seen} <= head.RUN_STATUSES
    assert {o for _, o in seen if o is not None} <= head.RUN_OUTCOMES


def test_a_replacement_that_matches_nothing_is_an_error(monkeypatch):
    raw = fixtures._load()
    broken = {**raw, "era": {**raw["era"], "v5a": {**raw["era"]["v5a"],
                                                   "create_replace": [["no such text", "x"]]}}}
    monkeypatch.setattr(fixtures, "_load", lambda: broken)
    fixtures.eras.cache_clear()
    try:
        with pytest.raises(ValueError, match="matches nothing"):
            fixtures.eras()
    finally:
        fixtures.eras.cache_clear()
