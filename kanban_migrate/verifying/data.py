"""The ``data`` check: the kanban invariants a broken board violates (spec section 3).

Every check is one SQL statement whose WHERE clause selects only the offending rows; Python
iterates the cursor and keeps a count and the first few ids (:class:`Examples`), so memory stays
flat and the cost is one pass over each table, done by SQLite. The checks of one table share
that pass (a *scan* with one flag column per check). Each unit of work is a :class:`Job`, so
the caller may spread them over several connections.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Callable

from ..schema import Schema, quote
from .model import Examples, Finding

HINT_UPGRADE = "run 'kanban-migrate upgrade' on it"
HINT_ORPHANS = ("the rows are unreachable from the board; restore the missing tasks from a backup "
                "or delete the rows")
_TEXT_TYPES = ("CHAR", "CLOB", "TEXT")
SQL_FUNCTION = "kmv_hasnul"


def has_nul(value) -> int:
    """Does a BLOB (a text column cast to BLOB) contain a NUL byte? (memchr speed)"""
    return 1 if value is not None and b"\x00" in value else 0


def prepare(conn: sqlite3.Connection) -> None:
    """Register the helper function the scans use on ``conn``."""
    conn.create_function(SQL_FUNCTION, 1, has_nul, deterministic=True)


def _sql_set(values) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values)) + ")"


def _is_text(declared: str) -> bool:
    d = declared.upper()
    return any(t in d for t in _TEXT_TYPES)


@dataclass
class Flag:
    """One check inside a table scan: ``expr`` is true for an offending row."""

    expr: str
    severity: str
    message: str  # formatted with n (count), table, values (a few offending values)
    hint: str | None = None
    value: str | None = None  # an expression whose distinct values the message lists


@dataclass
class Job:
    """A unit of work: run it on a connection, get findings. ``cost`` orders the work."""

    name: str
    run: Callable[[sqlite3.Connection], list[Finding]]
    cost: int = 0


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)


def _key(board: Schema, table: str) -> str:
    """The expression that names a row in examples."""
    t = board.tables[table]
    if "id" in t.columns:
        return quote("id")
    if table == "task_links":
        return "parent_id || ' -> ' || child_id"
    if table == "kanban_notify_subs":
        return "task_id || '/' || platform || '/' || chat_id"
    return "rowid"


def scan(conn: sqlite3.Connection, table: str, key: str, flags: list[Flag]) -> list[Finding]:
    """One pass over ``table``: count and sample the rows for which each flag holds."""
    cols = [key]
    for f in flags:
        cols.append(f"({f.expr})")
        cols.append(f.value if f.value else "NULL")
    where = " OR ".join(f"({f.expr})" for f in flags)
    sql = f"SELECT {', '.join(cols)} FROM {quote(table)} WHERE {where}"
    found = [Examples() for _ in flags]
    values: list[list] = [[] for _ in flags]
    try:
        for row in conn.execute(sql):
            for i, ex in enumerate(found):
                if row[1 + 2 * i]:
                    ex.add(row[0])
                    v = row[2 + 2 * i]
                    if flags[i].value and len(values[i]) < 5 and v not in values[i]:
                        values[i].append(v)
    except sqlite3.Error as exc:
        return [_stopped(table, exc)]
    out = []
    for f, ex, vals in zip(flags, found, values):
        if ex:
            shown = ", ".join(repr(v) for v in vals)
            out.append(Finding("data", f.severity, f.message.format(n=ex.count, table=table, values=shown),
                               table=table, hint=f.hint, count=ex.count, examples=ex.examples))
    return out


def _stopped(table: str, exc: Exception) -> Finding:
    return Finding("data", "error", f"the scan of {table} stopped: {exc}", table=table,
                   hint="see the integrity findings; run 'kanban-migrate recover' on it")


# ---- the scans -----------------------------------------------------------------------------------
#: Columns that hold long text: searched by memchr in Python (faster than SQL's instr on long
#: values); the short ones by instr() in SQL (no Python call per row).
LONG_TEXT = frozenset({"body"})


def _nul_expr(board: Schema, table: str, skip: tuple[str, ...] = ()) -> str | None:
    """True when any text column of the row holds a NUL byte."""
    t = board.tables[table]
    cols = [c.name for c in t.columns.values() if _is_text(c.type) and c.name not in skip]
    if not cols:
        return None
    terms = [f"{SQL_FUNCTION}(CAST({quote(c)} AS BLOB))" if c in LONG_TEXT else f"instr({quote(c)}, char(0)) > 0"
             for c in sorted(cols, key=lambda c: c in LONG_TEXT)]
    return " OR ".join(terms)


def _json_flag(table: str, column: str) -> Flag:
    c = quote(column)
    return Flag(f"{c} IS NOT NULL AND NOT json_valid({c})", "warning",
                "{n} row(s) of {table} whose " + column + " is not valid JSON",
                hint="the application cannot read these values; fix or clear them")


def _value_flag(table: str, column: str, allowed, *, nullable: bool, what: str) -> Flag:
    c = quote(column)
    expr = f"{c} NOT IN {_sql_set(allowed)}"
    expr = f"{c} IS NOT NULL AND {expr}" if nullable else f"{c} IS NULL OR {expr}"
    return Flag(expr, "warning", "{n} row(s) of {table} with an unknown " + what + " ({values})",
                hint="a newer application or a fork wrote them, or the rows are damaged; "
                     "check them before the board is used by this release",
                value=c)


def plan(board: Schema) -> Plan:
    """The data checks that fit the tables and columns this board has."""
    from .. import head

    p = Plan()
    tables = board.tables
    has = board.has_column

    def add_scan(table: str, flags: list[Flag], cost: int) -> None:
        flags = [f for f in flags if f is not None]
        if flags:
            key = _key(board, table)
            p.jobs.append(Job(f"scan {table}", lambda c, t=table, k=key, fl=flags: scan(c, t, k, fl), cost))

    def nul_flag(table: str, skip: tuple[str, ...] = ()) -> Flag | None:
        expr = _nul_expr(board, table, skip)
        if expr is None:
            return None
        return Flag(expr, "warning", "{n} row(s) of {table} with a NUL byte in a text column",
                    hint="NUL bytes cut the text short for most readers; the rows were written by a "
                         "buggy client or damaged")

    if "tasks" in tables:
        flags = []
        if has("tasks", "status"):
            flags.append(_value_flag("tasks", "status", head.TASK_STATUSES, nullable=False, what="status"))
        if has("tasks", "skills"):
            flags.append(_json_flag("tasks", "skills"))
        flags.append(nul_flag("tasks", skip=("skills",)))
        add_scan("tasks", flags, 50)
    if "task_events" in tables:
        flags = []
        if has("task_events", "kind"):
            old = head.EVENT_KIND_RENAMES
            flags.append(Flag(f"kind IN {_sql_set(old)}", "warning",
                              "{n} event(s) of {table} with a kind the upgrade renames ({values})",
                              hint=HINT_UPGRADE + " (it renames " +
                                   ", ".join(f"{a} -> {b}" for a, b in old.items()) + ")", value="kind"))
        if has("task_events", "payload"):
            flags.append(_json_flag("task_events", "payload"))
        # A NUL inside a payload makes it invalid JSON (caught above); the short columns are
        # searched here.
        flags.append(nul_flag("task_events", skip=("payload",)))
        add_scan("task_events", flags, 100)
    if "task_runs" in tables:
        flags = []
        if has("task_runs", "status"):
            flags.append(_value_flag("task_runs", "status", head.RUN_STATUSES, nullable=False, what="run status"))
        if has("task_runs", "outcome"):
            flags.append(_value_flag("task_runs", "outcome", head.RUN_OUTCOMES, nullable=True, what="run outcome"))
        if has("task_runs", "metadata"):
            flags.append(_json_flag("task_runs", "metadata"))
        flags.append(nul_flag("task_runs", skip=("metadata",)))
        add_scan("task_runs", flags, 10)
    if "kanban_notify_subs" in tables:
        flags = []
        if has("kanban_notify_subs", "delivery_mode"):
            flags.append(_value_flag("kanban_notify_subs", "delivery_mode", head.DELIVERY_MODES,
                                     nullable=False, what="delivery mode"))
        flags.append(nul_flag("kanban_notify_subs"))
        add_scan("kanban_notify_subs", flags, 5)
    for table in ("task_comments", "task_attachments", "task_links"):
        if table in tables:
            add_scan(table, [nul_flag(table)], 10 if table == "task_comments" else 3)

    if "tasks" in tables and has("tasks", "id"):
        for table, column in head.TASK_CHILDREN.items():
            if table in tables and has(table, column):
                p.jobs.append(Job(f"orphans {table}", lambda c, t=table, col=column: orphans(c, board, t, col),
                                  30 if table == "task_events" else 5))
        if "task_links" in tables:
            for column in ("parent_id", "child_id"):
                if has("task_links", column):
                    p.jobs.append(Job(f"orphans task_links.{column}",
                                      lambda c, col=column: orphans(c, board, "task_links", col), 3))
        if "task_runs" in tables and has("tasks", "current_run_id") and has("task_runs", "task_id"):
            p.jobs.append(Job("current runs", current_runs, 5))
        if has("tasks", "status") and has("tasks", "current_run_id"):
            p.jobs.append(Job("running without run", running_without_run, 2))
    p.jobs.sort(key=lambda j: -j.cost)
    return p


# ---- the referential checks ----------------------------------------------------------------------
def orphans(conn: sqlite3.Connection, board: Schema, table: str, column: str) -> list[Finding]:
    """Rows of ``table`` whose task does not exist. The distinct task ids come first (an index on
    the task column makes that one pass over the index), each is looked up once, and only the
    missing ones are counted."""
    c = quote(column)
    t = quote(table)
    sql = (f"SELECT g.tid FROM (SELECT DISTINCT {c} AS tid FROM {t}) AS g "
           f"WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = g.tid)")
    missing = Examples()
    try:
        for (tid,) in conn.execute(sql):
            (n,) = conn.execute(f"SELECT count(*) FROM {t} WHERE {c} IS ?", (tid,)).fetchone()
            missing.add(tid, n)
        if not missing:
            return []
        key = _key(board, table)
        marks = ", ".join("?" * len(missing.examples))
        examples = [r[0] for r in conn.execute(
            f"SELECT {key} FROM {t} WHERE {c} IN ({marks}) LIMIT 5", missing.examples)]
    except sqlite3.Error as exc:
        return [_stopped(table, exc)]
    what = {"parent_id": " (parent)", "child_id": " (child)"}.get(column, "")
    tasks = ", ".join(map(repr, missing.examples))
    return [Finding("data", "warning",
                    f"{missing.count} row(s) of {table} belong to a task{what} that does not exist ({tasks})",
                    table=table, hint=HINT_ORPHANS, count=missing.count, examples=examples)]


def current_runs(conn: sqlite3.Connection) -> list[Finding]:
    """``tasks.current_run_id`` must name an existing run of the same task."""
    sql = ("SELECT t.id, t.current_run_id, r.task_id FROM tasks AS t "
           "LEFT JOIN task_runs AS r ON r.id = t.current_run_id "
           "WHERE t.current_run_id IS NOT NULL AND (r.id IS NULL OR r.task_id IS NOT t.id)")
    gone, other = Examples(), Examples()
    try:
        for tid, _run, owner in conn.execute(sql):
            (gone if owner is None else other).add(tid)
    except sqlite3.Error as exc:
        return [_stopped("tasks", exc)]
    out = []
    hint = ("the dispatcher follows current_run_id: clear it (UPDATE tasks SET current_run_id = NULL ...) "
            "and let the task be reclaimed")
    if gone:
        out.append(Finding("data", "error", f"{gone.count} task(s) whose current_run_id names a run that does not exist",
                           table="tasks", hint=hint, count=gone.count, examples=gone.examples))
    if other:
        out.append(Finding("data", "error", f"{other.count} task(s) whose current_run_id names another task's run",
                           table="tasks", hint=hint, count=other.count, examples=other.examples))
    return out


def running_without_run(conn: sqlite3.Connection) -> list[Finding]:
    """Every ``running`` task has a run (spec section 5: the upgrade creates the missing ones)."""
    ex = Examples()
    try:
        for (tid,) in conn.execute("SELECT id FROM tasks WHERE status = 'running' AND current_run_id IS NULL"):
            ex.add(tid)
    except sqlite3.Error as exc:
        return [_stopped("tasks", exc)]
    if not ex:
        return []
    return [Finding("data", "warning", f"{ex.count} running task(s) without a run (current_run_id is NULL)",
                    table="tasks", hint="on a board not yet at head, 'kanban-migrate upgrade' creates their runs; "
                                        "at head, set them back to 'ready' so that they are claimed again", count=ex.count,
                    examples=ex.examples)]
