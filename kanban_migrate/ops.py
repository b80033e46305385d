"""Convergent operations: the vocabulary the revisions in ``alembic/versions`` are written in.

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

from . import head
from .schema import Schema, quote, snapshot

SHADOW = "kanban_shadow"  # MigrationContext option holding the offline shadow connection


class UpgradeRefused(Exception):
    """A revision found the board in a state it must not change (its transaction rolls back)."""


def _conn() -> sqlite3.Connection:
    ctx = op.get_context()
    if ctx.as_sql:
        return ctx.opts[SHADOW]
    return op.get_bind().connection.driver_connection


def offline() -> bool:
    return op.get_context().as_sql


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
    upgrade does in every transaction (``migration._set_aside``)."""
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
    from .schema import column_differences

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
    """Rebuild ``table`` as head defines it at ``rev`` (SQLite's documented 12-step procedure).

    Create the new table, copy the rows by shared column names, drop the old one, rename the new
    one, recreate the table's indexes (head's by their head definition, any others verbatim) and
    set ``sqlite_sequence``. Columns head does not know are kept with their data; head columns a
    later revision adds and the board already has are kept too. TEXT ids of an AUTOINCREMENT table
    are dropped and the rows renumbered in their original order; for ``task_runs`` the references
    in ``tasks.current_run_id`` and ``task_events.run_id`` follow the new numbers. Foreign keys are
    off for the migration connection; ``PRAGMA foreign_key_check`` must find no new violation.
    """
    have = board()
    old = have.tables[table]
    want_table = head.metadata.tables[table]
    want = head.expected().tables[table]
    head_names = {c.name for c in want_table.columns}
    keep = {name for name in old.columns if name in head_names}
    extras = [_kept_column(c) for c in old.columns.values() if c.name not in head_names]
    fk_before = len(_conn().execute("PRAGMA foreign_key_check").fetchall())
    old_seq = scalar(f"SELECT seq FROM sqlite_sequence WHERE name = '{table}'") if have.has_table("sqlite_sequence") else None
    tmp = f"_kanban_migrate_new_{table}"
    run(head.create_table_sql(want_table, name=tmp, upto=rev, keep=keep, extra=extras))
    new_cols = [c.name for c in want_table.columns if head.at(rev, c) or c.name in keep] + [c.name for c in extras]

    alias = want.rowid_alias
    renumber = alias is not None and alias in old.columns and old.columns[alias].type != "INTEGER"
    order = "rowid" if not old.without_rowid else ", ".join(quote(c.name) for c in old.columns.values() if c.pk)
    cols, exprs = [], []
    for name in new_cols:
        wcol = want.columns.get(name)
        if name == alias and renumber:
            cols.append(name)
            exprs.append(f"ROW_NUMBER() OVER (ORDER BY {order})")
            continue
        if name not in old.columns:
            if wcol is None or wcol.default is not None or not wcol.notnull:
                continue  # the new table's default (or NULL) applies
            cols.append(name)
            exprs.append(head.metadata.tables[table].c[name].info.get("fill", "NULL"))
            continue
        expr = quote(name)
        if wcol is not None:
            fill = wcol.default if wcol.default is not None else head.metadata.tables[table].c[name].info.get("fill")
            if wcol.type == "INTEGER" and old.columns[name].type != "INTEGER" and name != alias:
                expr = f"CAST({expr} AS INTEGER)"  # a TEXT cursor becomes a number again
            if wcol.notnull and fill is not None:
                expr = f"COALESCE({expr}, {fill})"
        cols.append(name)
        exprs.append(expr)
    if renumber and table == "task_runs":
        run("DROP TABLE IF EXISTS temp._kanban_migrate_run_ids")
        run(
            "CREATE TEMP TABLE _kanban_migrate_run_ids AS SELECT CAST(id AS TEXT) AS old_id, "
            f"ROW_NUMBER() OVER (ORDER BY {order}) AS new_id FROM {quote(table)}"
        )
    run(
        f"INSERT INTO {quote(tmp)} ({', '.join(quote(c) for c in cols)}) "
        f"SELECT {', '.join(exprs)} FROM {quote(table)} ORDER BY {order}"
    )
    run(f"DROP TABLE {quote(table)}")
    run(f"ALTER TABLE {quote(tmp)} RENAME TO {quote(table)}")
    if want.autoincrement and alias:
        floor = int(old_seq or 0) if not renumber else 0
        run(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")
        run(
            f"INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', "
            f"MAX({floor}, COALESCE((SELECT MAX({quote(alias)}) FROM {quote(table)}), 0))"
        )
    for index in have.indexes_of(table):
        head_index = next((i for i in want_table.indexes if i.name == index.name), None)
        if head_index is not None:
            if all(c.name in new_cols for c in head_index.columns):
                run(head.create_index_sql(head_index))
        elif index.sql:
            run(index.sql)
    if renumber and table == "task_runs":
        for child, col in (("tasks", "current_run_id"), ("task_events", "run_id")):
            if has_column(child, col):
                run(
                    f"UPDATE {child} SET {col} = (SELECT new_id FROM _kanban_migrate_run_ids "
                    f"WHERE old_id = CAST({child}.{col} AS TEXT)) "
                    f"WHERE CAST({col} AS TEXT) IN (SELECT old_id FROM _kanban_migrate_run_ids)"
                )
        run("DROP TABLE temp._kanban_migrate_run_ids")
    fk_after = len(_conn().execute("PRAGMA foreign_key_check").fetchall())
    if fk_after > fk_before:
        raise UpgradeRefused(f"rebuilding {table} would break {fk_after - fk_before} foreign-key reference(s)")
    return {"table": table, "renumbered": renumber}


def _kept_column(c):
    """A column head does not know, for the rebuilt table. Its declared type comes from the file,
    so it is used only when it is a plain type name (``salvage.sqlschema.safe_type``), else its
    affinity: a type like ``TEXT) , x INTEGER CHECK (0`` must not add a column or a constraint. Its
    default is the expression SQLite parsed, parenthesised again as a whole."""
    from .salvage.sqlschema import affinity, safe_type

    declared = safe_type(c.type) if c.type else ""
    if declared is None:
        declared = affinity(c.type)
    default = f"({c.default})" if c.default is not None else None
    return head.raw_column(c.name, declared, notnull=c.notnull, default=default)


def rebuild_drifted(tables: list[str], rev: str) -> list[str]:
    done = []
    for table in tables:
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
