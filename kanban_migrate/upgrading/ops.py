"""Convergent operations: the vocabulary the revisions in ``alembic/versions`` are written in.

Its own piece because it is the only module a revision imports: the revisions stay a few lines
each, and what an operation does to any board shape is decided (and tested) here. The table
rebuild, the riskiest operation, is planned and applied in :mod:`.rebuild`.

Each operation inspects the board inside the revision's transaction and does only what is missing,
so a revision is correct on every board the wild holds, not just on the shape before it. The
definitions come from :mod:`kanban_migrate.head`; nothing here restates the schema.

Online, the board is inspected through the migration connection. Offline (``--sql``), a *shadow*:
an in-memory database that starts with the board's schema and receives every statement emitted,
so later operations see what earlier ones would have done.
"""

from __future__ import annotations

import sqlite3

from alembic import op

from .. import head
from ..schema import Schema, quote, snapshot
from .rebuild import UpgradeRefused  # noqa: F401  (raised by revisions as ops.UpgradeRefused)

SHADOW = "kanban_shadow"  # MigrationContext option holding the offline shadow connection


def _conn() -> sqlite3.Connection:
    ctx = op.get_context()
    if ctx.as_sql:
        return ctx.opts[SHADOW]
    return op.get_bind().connection.driver_connection


def run(sql: str) -> None:
    """Execute one statement (online) or emit it and apply it to the shadow (offline)."""
    ctx = op.get_context()
    if ctx.as_sql:
        _set_aside_offline(ctx)
        _emit(ctx, sql)
    else:
        op.get_bind().exec_driver_sql(sql)


_ASIDE = "kanban_set_aside"  # MigrationContext option: the triggers and views the script dropped


def _emit(ctx, sql: str) -> None:
    op.execute(sql.replace(":", "\\:"))
    ctx.opts[SHADOW].execute(sql)


def _set_aside_offline(ctx) -> None:
    """``--sql``: the script drops the board's triggers and views before a revision's first
    statement and creates them again before its COMMIT (:func:`put_back_offline`), as the online
    upgrade does in every transaction (``chain._set_aside``)."""
    if ctx.opts.get(_ASIDE) is not None:
        return
    rows = ctx.opts[SHADOW].execute(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'view') AND sql IS NOT NULL "
        "ORDER BY rowid"
    ).fetchall()
    ctx.opts[_ASIDE] = rows
    for kind in ("trigger", "view"):
        for typ, name, _sql in rows:
            if typ == kind:
                _emit(ctx, f"DROP {kind.upper()} IF EXISTS {quote(name)}")


def put_back_offline(ctx, **_kw) -> None:
    """An ``on_version_apply`` callback for ``--sql``: the views, then the triggers, set aside by
    this revision's script, created again before its COMMIT."""
    rows = ctx.opts.pop(_ASIDE, None)
    for kind in ("view", "trigger"):
        for typ, _name, sql in rows or ():
            if typ == kind:
                _emit(ctx, sql)


def board() -> Schema:
    return snapshot(_conn())


def has_table(table: str) -> bool:
    return board().has_table(table)


def has_column(table: str, column: str) -> bool:
    return board().has_column(table, column)


def scalar(sql: str):
    """A value read from the board (online) or the shadow (offline, where tables are empty)."""
    row = _conn().execute(sql).fetchone()
    return row[0] if row else None


# ---- schema ------------------------------------------------------------------------------------
def ensure_tables(rev: str) -> list[str]:
    """Create the head tables that exist at ``rev`` and are missing, as they stand at ``rev``."""
    have = board()
    made = []
    for table in head.metadata.sorted_tables:
        if head.at(rev, table) and not have.has_table(table.name):
            run(head.create_table_sql(table, upto=rev))
            made.append(table.name)
    return made


def add_columns(table: str, rev: str) -> list[str]:
    """Add the columns revision ``rev`` introduces to ``table`` where missing, in the application's
    order. A column that ``ALTER TABLE`` cannot add (NOT NULL without a default) makes the table
    be rebuilt instead. Returns the names of the columns added."""
    have = board()
    if not have.has_table(table):
        return []
    missing = [c for c in head.columns_added_by(table, rev) if not have.has_column(table, c.name)]
    if any(not c.nullable and c.server_default is None for c in missing):
        rebuild(table, rev)
        return [c.name for c in missing]
    for col in missing:
        run(f"ALTER TABLE {quote(table)} ADD COLUMN {head.column_ddl(col)}")
    return [c.name for c in missing]


def converge(rev: str) -> dict[str, list[str]]:
    """Tables, then columns, then the indexes that depend on them, for revision ``rev``."""
    ensure_tables(rev)
    added = {t.name: add_columns(t.name, rev) for t in head.metadata.sorted_tables}
    create_indexes(rev)
    return added


def create_indexes(rev: str) -> list[str]:
    """Create the head indexes introduced at ``rev`` (after their columns exist); an index of that
    name with other columns is replaced."""
    made = []
    have = board()
    for index in head.indexes_added_by(rev):
        table = index.table.name
        if not have.has_table(table) or not all(have.has_column(table, c.name) for c in index.columns):
            continue
        current = have.indexes.get(index.name)
        wanted = (table, tuple(c.name for c in index.columns))
        if current is not None:
            if (current.table, current.columns) == wanted and not current.unique and not current.partial:
                continue
            run(f"DROP INDEX {quote(index.name)}")
        run(head.create_index_sql(index))
        made.append(index.name)
    return made


def drifted(table: str, rev: str) -> list[str]:
    """Why ``table`` must be rebuilt to match head at ``rev`` (empty when it need not be).

    A head column present with another declared type, NOT NULL, default or primary key (TEXT ids,
    a TEXT cursor), or a table without the AUTOINCREMENT head gives it (#35096, #112953)."""
    from ..schema import column_differences

    have = board()
    t = have.tables.get(table)
    if t is None:
        return []
    want = head.expected().tables[table]
    reasons = []
    for name, wcol in want.columns.items():
        hcol = t.columns.get(name)
        if hcol is not None:
            problems = column_differences(hcol, wcol, rowid_alias=name == want.rowid_alias)
            reasons.extend(f"{name}: {p}" for p in problems)
    if want.autoincrement and not t.autoincrement:
        reasons.append("no AUTOINCREMENT")
    return reasons


def rebuild(table: str, rev: str) -> dict:
    """Rebuild ``table`` as head defines it at ``rev``: planned from the board's schema
    (:func:`kanban_migrate.upgrading.rebuild.plan`), then applied with the foreign-key check."""
    from . import rebuild as _rebuild

    have = board()
    seq = scalar(f"SELECT seq FROM sqlite_sequence WHERE name = '{table}'") if have.has_table("sqlite_sequence") else None
    return _rebuild.apply(_rebuild.plan(have, table, rev, old_seq=seq), run, _conn())


def rebuild_drifted(tables: list[str], rev: str) -> list[str]:
    """Rebuild those of ``tables`` that drifted from head at ``rev``, in :func:`.rebuild.order`."""
    from .rebuild import order

    done = []
    for table in order(tables):
        if drifted(table, rev):
            rebuild(table, rev)
            done.append(table)
    return done


# ---- data ---------------------------------------------------------------------------------------
def rename_event_kinds() -> None:
    """``ready`` -> ``promoted``, ``priority`` -> ``reprioritized``, ``spawn_auto_blocked`` -> ``gave_up``."""
    if not has_table("task_events"):
        return
    renames = head.EVENT_KIND_RENAMES
    cases = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in renames.items())
    keys = ", ".join(f"'{old}'" for old in renames)
    run(f"UPDATE task_events SET kind = CASE kind {cases} END WHERE kind IN ({keys})")


def backfill_running_runs() -> None:
    """A run for every task that is ``running`` without one, and ``current_run_id`` pointing at it."""
    if not has_table("task_runs") or not has_column("tasks", "current_run_id"):
        return
    # By v4 the chain has given tasks every column read here (v0 and v1 add them where missing).
    run(
        "INSERT INTO task_runs (task_id, profile, status, claim_lock, claim_expires, worker_pid, "
        "max_runtime_seconds, last_heartbeat_at, started_at) "
        "SELECT id, assignee, 'running', claim_lock, claim_expires, worker_pid, max_runtime_seconds, "
        "last_heartbeat_at, COALESCE(started_at, CAST(strftime('%s','now') AS INTEGER)) "
        "FROM tasks WHERE status = 'running' AND current_run_id IS NULL ORDER BY rowid"
    )
    run(
        "UPDATE tasks SET current_run_id = (SELECT MAX(r.id) FROM task_runs r WHERE r.task_id = tasks.id) "
        "WHERE status = 'running' AND current_run_id IS NULL"
    )


# ---- downgrades ----------------------------------------------------------------------------------
def unconverge(rev: str) -> None:
    """Undo :func:`converge` for ``rev``: drop its indexes, then its columns, then its tables
    (the data they hold goes with them)."""
    have = board()
    for index in head.indexes_added_by(rev):
        if index.name in have.indexes:
            run(f"DROP INDEX {quote(index.name)}")
    for table in head.metadata.sorted_tables:
        if head.since(table) == rev:
            continue
        for col in reversed(head.columns_added_by(table.name, rev)):
            if have.has_column(table.name, col.name):
                run(f"ALTER TABLE {quote(table.name)} DROP COLUMN {quote(col.name)}")
    for table in reversed(head.tables_added_by(rev)):
        if have.has_table(table.name):
            run(f"DROP TABLE {quote(table.name)}")
