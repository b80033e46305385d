"""Every table layout a kanban board has had, for matching pages whose table is unknown.

The layouts come from the two sources that define them: head (``kanban_migrate.head``) and the
application's history (``fixtures/shapes.toml``: each historical shape is replayed into an
in-memory database and its tables' CREATE statements, ALTER-appended columns included, read
back). Formats the application always writes (task ids, JSON) are checks; value lists
(statuses, outcomes, delivery modes) are only hints: they never reject a row.
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache

from .. import fixtures, head
from ..salvage import TableShape

TASK_ID = re.compile(r"t_[0-9a-f]{4,8}")
KANBAN = ("tasks", "task_links", "task_comments", "task_events", "task_runs", "task_attachments",
          "kanban_notify_subs")


def _looks_like_json(value) -> bool:
    """A cheap test that a text value is JSON (an object, array, string, number or literal): it
    only has to tell a JSON column from free text when matching orphan pages, on every record."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v:
        return False
    first, last = v[0], v[-1]
    if first == "{":
        return last == "}"
    if first == "[":
        return last == "]"
    if first == '"':
        return last == '"' and len(v) > 1
    if v in ("true", "false", "null"):
        return True
    try:
        float(v)
    except ValueError:
        return False
    return True


def _checks(table: str) -> dict:
    """What a row of ``table`` must look like: task ids and JSON text. These are formats the
    application has always written, never value lists."""
    task_ref = {"tasks": "id"}.get(table, "task_id")
    checks: dict = {task_ref: TASK_ID} if table != "task_links" else {"parent_id": TASK_ID, "child_id": TASK_ID}
    for column in head.JSON_COLUMNS.get(table, ()):
        checks[column] = _looks_like_json  # checks apply to non-NULL values
    return checks


def _hints(table: str) -> dict:
    """The values the application is known to write (statuses, kinds, outcomes, delivery
    modes): open vocabularies (spec §3) that help tell whose orphaned page it is, and never
    turn away a row whose structure fits."""
    if table == "tasks":
        return {"status": head.TASK_STATUSES, "workspace_kind": head.WORKSPACE_KINDS}
    if table == "task_runs":
        return {"status": head.RUN_STATUSES, "outcome": head.RUN_OUTCOMES}
    if table == "kanban_notify_subs":
        return {"delivery_mode": head.DELIVERY_MODES}
    return {}


def _layouts() -> dict[str, dict[tuple, tuple[str, str, int]]]:
    """table -> {layout: (create sql, label, columns of the table as first created)}; a layout is
    the (name, declared type, primary-key position) of each column in physical order."""
    out: dict[str, dict[tuple, tuple[str, str, int]]] = {t: {} for t in KANBAN}
    expected = head.expected()
    for t in KANBAN:
        sql = head.create_table_sql(head.metadata.tables[t])
        layout = tuple((c.name, c.type, c.pk) for c in expected.tables[t].columns.values())
        out[t][layout] = (sql, "head", len(layout))
    for name, shape in fixtures.shapes().items():
        conn = sqlite3.connect(":memory:")
        try:
            fixtures.build_schema(conn, shape)
            first = sqlite3.connect(":memory:")
            try:
                fixtures.build_schema(first, fixtures.Shape(name, "", shape.steps[:1], shape.pre))
                first_cols = {t: len(first.execute(f'PRAGMA table_info("{t}")').fetchall()) for t in KANBAN}
            finally:
                first.close()
            for t, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"):
                if t in out:
                    layout = tuple((r[1], r[2].upper(), r[5]) for r in conn.execute(f'PRAGMA table_info("{t}")'))
                    out[t].setdefault(layout, (sql, name, first_cols.get(t) or len(layout)))
        finally:
            conn.close()
    return out


@lru_cache(maxsize=None)
def known_shapes() -> dict[str, list[TableShape]]:
    """table name -> every layout it has had, newest (head) first."""
    autoinc = {t.name for t in head.metadata.tables.values() if t.dialect_kwargs.get("sqlite_autoincrement")}
    shapes: dict[str, list[TableShape]] = {
        "sqlite_sequence": [TableShape.from_sql("CREATE TABLE sqlite_sequence(name,seq)",
                                                checks={"name": str, "seq": int}, hints={"name": autoinc},
                                                label="sqlite")],
    }
    for table, layouts in _layouts().items():
        shapes[table] = [
            TableShape.from_sql(sql, checks=_checks(table), hints=_hints(table), label=label,
                                min_columns=min(first, len(cols)) if first else None)
            for cols, (sql, label, first) in layouts.items()
        ]
    return shapes
