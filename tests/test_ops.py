"""The upgrade's riskiest SQL, checked by the statements it emits on a tiny schema (as Alembic tests
its operations), and by running exactly those statements on a few rows."""

from __future__ import annotations

import sqlite3

import pytest

from kanban_migrate.schema import snapshot
from kanban_migrate.upgrading import rebuild, upgrade

DRIFTED = """
CREATE TABLE tasks(id TEXT PRIMARY KEY, title TEXT, status TEXT, current_run_id TEXT, created_at INTEGER);
CREATE TABLE task_runs(id TEXT PRIMARY KEY, task_id TEXT, status TEXT, started_at INTEGER, note TEXT);
CREATE INDEX idx_runs_task ON task_runs(task_id);
CREATE INDEX my_runs_note ON task_runs(note);
CREATE TABLE task_events(id TEXT PRIMARY KEY, task_id TEXT, run_id TEXT, kind TEXT, created_at INTEGER);
INSERT INTO tasks VALUES ('t1', 'a', 'running', 'run-b', 1), ('t2', 'b', 'done', NULL, 1);
INSERT INTO task_runs VALUES ('run-a', 't1', 'done', 1, 'first'), ('run-b', 't1', 'running', 2, NULL);
INSERT INTO task_events VALUES ('e1', 't1', 'run-b', 'claimed', 3), ('e2', 't2', NULL, 'created', 1);
"""


@pytest.fixture
def drifted():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(DRIFTED)
    yield conn
    conn.close()


def index_of(statements: list[str], prefix: str) -> int:
    hits = [i for i, s in enumerate(statements) if s.startswith(prefix)]
    assert len(hits) == 1, (prefix, statements)
    return hits[0]


def test_text_ids_are_renumbered_in_rowid_order(drifted):
    plan = rebuild.plan(snapshot(drifted), "task_runs", "v4")
    assert plan.renumbered
    insert = plan.statements[index_of(plan.statements, 'INSERT INTO "_kanban_migrate_new_task_runs"')]
    assert insert.startswith('INSERT INTO "_kanban_migrate_new_task_runs" ("id", ')
    assert "SELECT ROW_NUMBER() OVER (ORDER BY rowid), " in insert
    assert insert.endswith('FROM "task_runs" ORDER BY rowid')
    assert '"note"' in insert  # a column head does not know keeps its data


def test_references_to_renumbered_runs_follow_through_the_id_map(drifted):
    s = rebuild.plan(snapshot(drifted), "task_runs", "v4").statements
    made = index_of(s, f"CREATE TEMP TABLE {rebuild.RUN_IDS} AS SELECT CAST(id AS TEXT) AS old_id, "
                       "ROW_NUMBER() OVER (ORDER BY rowid) AS new_id")
    copied = index_of(s, 'INSERT INTO "_kanban_migrate_new_task_runs"')
    renamed = index_of(s, 'ALTER TABLE "_kanban_migrate_new_task_runs" RENAME TO "task_runs"')
    tasks = index_of(s, "UPDATE tasks SET current_run_id = ")
    events = index_of(s, "UPDATE task_events SET run_id = ")
    dropped = index_of(s, f"DROP TABLE temp.{rebuild.RUN_IDS}")
    assert made < copied < renamed < tasks < events < dropped == len(s) - 1
    assert s[tasks].endswith(f"WHERE CAST(current_run_id AS TEXT) IN (SELECT old_id FROM {rebuild.RUN_IDS})")


def test_a_missing_reference_column_is_not_updated(drifted):
    drifted.execute("ALTER TABLE tasks DROP COLUMN current_run_id")
    s = rebuild.plan(snapshot(drifted), "task_runs", "v4").statements
    assert not [x for x in s if x.startswith("UPDATE tasks")]
    assert [x for x in s if x.startswith("UPDATE task_events SET run_id")]


def test_renumbered_sequence_starts_from_the_new_ids_kept_sequence_from_the_old(drifted):
    s = rebuild.plan(snapshot(drifted), "task_runs", "v4", old_seq=50).statements
    assert s[index_of(s, "INSERT INTO sqlite_sequence")].startswith("INSERT INTO sqlite_sequence (name, seq) "
                                                                     "SELECT 'task_runs', MAX(0, ")
    drifted.executescript("CREATE TABLE task_comments(id INTEGER PRIMARY KEY, task_id TEXT, author TEXT, "
                          "body TEXT, created_at INTEGER)")
    plan = rebuild.plan(snapshot(drifted), "task_comments", "v4", old_seq=50)
    assert not plan.renumbered
    assert "ROW_NUMBER" not in " ".join(plan.statements)
    assert "MAX(50, " in plan.statements[index_of(plan.statements, "INSERT INTO sqlite_sequence")]


def test_indexes_come_back_heads_by_head_others_verbatim(drifted):
    s = rebuild.plan(snapshot(drifted), "task_runs", "v4").statements
    assert "CREATE INDEX idx_runs_task ON task_runs (task_id, started_at)" in s
    assert "CREATE INDEX my_runs_note ON task_runs(note)" in s


def test_a_hostile_declared_type_cannot_add_a_column(drifted):
    drifted.execute('ALTER TABLE task_runs ADD COLUMN "x" "TEXT) , y INTEGER CHECK (0"')
    create = rebuild.plan(snapshot(drifted), "task_runs", "v4").statements[0]
    assert "CHECK" not in create and " y INTEGER" not in create


def test_run_references_survive_the_v4_rebuild_order(drifted):
    """The statements of every rebuild v4 makes, run in ``rebuild.order``: non-numeric TEXT run ids
    are still followed (rebuilding tasks or task_events first would cast them to 0)."""
    assert rebuild.order(["tasks", "task_events", "task_runs"])[0] == "task_runs"
    for table in rebuild.order(["tasks", "task_events", "task_runs"]):
        for stmt in rebuild.plan(snapshot(drifted), table, "v4").statements:
            drifted.execute(stmt)
    runs = dict(drifted.execute("SELECT note, id FROM task_runs WHERE note IS NOT NULL"))
    assert runs == {"first": 1}
    assert drifted.execute("SELECT id, current_run_id FROM tasks ORDER BY id").fetchall() == [("t1", 2), ("t2", None)]
    assert drifted.execute("SELECT task_id, run_id FROM task_events ORDER BY id").fetchall() == [("t1", 2), ("t2", None)]
    assert not drifted.execute("SELECT name FROM sqlite_temp_master").fetchall()


def test_apply_refuses_a_new_foreign_key_violation_but_not_an_old_one():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(id INTEGER, pid REFERENCES p(id));"
                       "INSERT INTO c VALUES (1, 99)")
    ok = rebuild.Plan("c", False, ["INSERT INTO p VALUES (1)"])
    assert rebuild.apply(ok, conn.execute, conn) == {"table": "c", "renumbered": False}
    bad = rebuild.Plan("c", False, ["INSERT INTO c VALUES (2, 98)"])
    with pytest.raises(rebuild.UpgradeRefused, match="would break 1 foreign-key reference"):
        rebuild.apply(bad, conn.execute, conn)


def test_triggers_and_views_are_set_aside_for_every_revision_that_changes_something(tmp_path, kanban_board):
    """``--sql``: in every revision's transaction that does more than move the stamp, the board's
    trigger and view are dropped before the first statement and made again, view first, just
    before its COMMIT (a trigger must not fire on the upgrade's own changes)."""
    path = kanban_board("v1", tasks=3, seed=1, name="kanban.db")
    trigger = "CREATE TRIGGER trg AFTER INSERT ON task_events BEGIN DELETE FROM tasks; END"
    view = "CREATE VIEW vv AS SELECT id FROM task_runs"
    conn = sqlite3.connect(path)
    conn.execute(trigger)
    conn.execute(view)
    conn.commit()
    conn.close()
    script = "\n".join(line for line in upgrade(path, sql=True).sql.splitlines() if not line.startswith("--"))
    blocks = [b.split("COMMIT;")[0] for b in script.split("BEGIN;")[1:]]
    stamp = ("UPDATE alembic_version", "INSERT INTO alembic_version", "CREATE TABLE alembic_version")
    statements = [[s.strip() for s in b.split(";\n") if s.strip() and not s.strip().startswith(stamp)]
                  for b in blocks]
    changing = [s for s in statements if s]
    assert len(changing) >= 5
    for s in changing:
        assert s[:2] == ['DROP TRIGGER IF EXISTS "trg"', 'DROP VIEW IF EXISTS "vv"'], s[:3]
        assert s[-2:] == [view, trigger], s[-3:]
