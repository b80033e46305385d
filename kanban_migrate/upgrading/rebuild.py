"""A table rebuild, planned as statements and then applied.

Its own piece because it is the riskiest SQL of the upgrade (rows copied between two tables, TEXT
ids renumbered, references following them): :func:`plan` is a pure function of the board's schema
snapshot, so ``tests/test_ops.py`` checks the exact statements it emits on a tiny schema, as
Alembic tests its operations, without running a migration. :func:`apply` runs them and owns the
one safety check that needs the data: ``PRAGMA foreign_key_check`` finds no new violation.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Callable

from .. import head
from ..schema import Schema, quote

RUN_IDS = "_kanban_migrate_run_ids"  # temp table: a renumbered task_runs' old id -> new id
#: Columns that point at ``task_runs.id`` and follow its renumbering.
RUN_REFERENCES = (("tasks", "current_run_id"), ("task_events", "run_id"))


class UpgradeRefused(Exception):
    """A revision found the board in a state it must not change (its transaction rolls back)."""


@dataclass
class Plan:
    table: str
    renumbered: bool
    statements: list[str] = field(default_factory=list)


def order(tables: list[str]) -> list[str]:
    """``tables`` with ``task_runs`` first: its renumbering rewrites the references to it while
    they still hold the old TEXT ids; a rebuild of ``tasks`` or ``task_events`` casts them to
    INTEGER, which would turn an id like ``run-b`` into 0 before it could be followed."""
    return sorted(tables, key=lambda t: t != "task_runs")


def scratch_name(table: str) -> str:
    return f"_kanban_migrate_new_{table}"


def plan(have: Schema, table: str, rev: str, *, old_seq: int | None = None) -> Plan:
    """The statements that rebuild ``table`` as head defines it at ``rev`` (SQLite's documented
    12-step procedure), given the board's schema ``have`` and its ``sqlite_sequence`` value.

    Create the new table, copy the rows by shared column names, drop the old one, rename the new
    one, set ``sqlite_sequence``, recreate the table's indexes (head's by their head definition,
    any others verbatim). Columns head does not know are kept with their data; head columns a
    later revision adds and the board already has are kept too. TEXT ids of an AUTOINCREMENT table
    are dropped and the rows renumbered in their original order; for ``task_runs`` the references
    in :data:`RUN_REFERENCES` follow the new numbers."""
    old = have.tables[table]
    want_table = head.metadata.tables[table]
    want = head.expected().tables[table]
    head_names = {c.name for c in want_table.columns}
    keep = {name for name in old.columns if name in head_names}
    extras = [kept_column(c) for c in old.columns.values() if c.name not in head_names]
    tmp = scratch_name(table)
    out = [head.create_table_sql(want_table, name=tmp, upto=rev, keep=keep, extra=extras)]
    new_cols = [c.name for c in want_table.columns if head.at(rev, c) or c.name in keep] + [c.name for c in extras]

    alias = want.rowid_alias
    renumber = alias is not None and alias in old.columns and old.columns[alias].type != "INTEGER"
    order = "rowid" if not old.without_rowid else ", ".join(quote(c.name) for c in old.columns.values() if c.pk)
    cols, exprs = _copy_columns(old, want, want_table, new_cols, alias if renumber else None, order)
    follow = renumber and table == "task_runs"
    if follow:
        out.append(f"DROP TABLE IF EXISTS temp.{RUN_IDS}")
        out.append(f"CREATE TEMP TABLE {RUN_IDS} AS SELECT CAST(id AS TEXT) AS old_id, "
                   f"ROW_NUMBER() OVER (ORDER BY {order}) AS new_id FROM {quote(table)}")
    out.append(f"INSERT INTO {quote(tmp)} ({', '.join(quote(c) for c in cols)}) "
               f"SELECT {', '.join(exprs)} FROM {quote(table)} ORDER BY {order}")
    out.append(f"DROP TABLE {quote(table)}")
    out.append(f"ALTER TABLE {quote(tmp)} RENAME TO {quote(table)}")
    if want.autoincrement and alias:
        floor = int(old_seq or 0) if not renumber else 0
        out.append(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")
        out.append(f"INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', "
                   f"MAX({floor}, COALESCE((SELECT MAX({quote(alias)}) FROM {quote(table)}), 0))")
    for index in have.indexes_of(table):
        head_index = next((i for i in want_table.indexes if i.name == index.name), None)
        if head_index is not None:
            if all(c.name in new_cols for c in head_index.columns):
                out.append(head.create_index_sql(head_index))
        elif index.sql:
            out.append(index.sql)
    if follow:
        for child, col in RUN_REFERENCES:
            if have.has_column(child, col):
                out.append(f"UPDATE {child} SET {col} = (SELECT new_id FROM {RUN_IDS} "
                           f"WHERE old_id = CAST({child}.{col} AS TEXT)) "
                           f"WHERE CAST({col} AS TEXT) IN (SELECT old_id FROM {RUN_IDS})")
        out.append(f"DROP TABLE temp.{RUN_IDS}")
    return Plan(table, renumber, out)


def _copy_columns(old, want, want_table, new_cols: list[str], renumbered: str | None,
                  order: str) -> tuple[list[str], list[str]]:
    """The columns the copy fills and the expression each takes from the old table."""
    cols, exprs = [], []
    for name in new_cols:
        wcol = want.columns.get(name)
        if name == renumbered:
            cols.append(name)
            exprs.append(f"ROW_NUMBER() OVER (ORDER BY {order})")
            continue
        if name not in old.columns:
            if wcol is None or wcol.default is not None or not wcol.notnull:
                continue  # the new table's default (or NULL) applies
            cols.append(name)
            exprs.append(want_table.c[name].info.get("fill", "NULL"))
            continue
        expr = quote(name)
        if wcol is not None:
            fill = wcol.default if wcol.default is not None else want_table.c[name].info.get("fill")
            if wcol.type == "INTEGER" and old.columns[name].type != "INTEGER" and name != want.rowid_alias:
                expr = f"CAST({expr} AS INTEGER)"  # a TEXT cursor becomes a number again
            if wcol.notnull and fill is not None:
                expr = f"COALESCE({expr}, {fill})"
        cols.append(name)
        exprs.append(expr)
    return cols, exprs


def apply(p: Plan, run: Callable[[str], None], conn: sqlite3.Connection) -> dict:
    """Run the plan's statements through ``run`` (online: the migration connection; offline: the
    script and its shadow). Foreign keys are off for the migration connection, as SQLite's
    procedure requires, so ``PRAGMA foreign_key_check`` on ``conn`` must find no new violation."""
    fk_before = len(conn.execute("PRAGMA foreign_key_check").fetchall())
    for stmt in p.statements:
        run(stmt)
    fk_after = len(conn.execute("PRAGMA foreign_key_check").fetchall())
    if fk_after > fk_before:
        raise UpgradeRefused(f"rebuilding {p.table} would break {fk_after - fk_before} foreign-key reference(s)")
    return {"table": p.table, "renumbered": p.renumbered}


def kept_column(c):
    """A column head does not know, for the rebuilt table. Its declared type comes from the file,
    so it is used only when it is a plain type name (``salvage.sqlschema.safe_type``), else its
    affinity: a type like ``TEXT) , x INTEGER CHECK (0`` must not add a column or a constraint. Its
    default is the expression SQLite parsed, parenthesised again as a whole."""
    from ..salvage.sqlschema import affinity, safe_type

    declared = safe_type(c.type) if c.type else ""
    if declared is None:
        declared = affinity(c.type)
    default = f"({c.default})" if c.default is not None else None
    return head.raw_column(c.name, declared, notnull=c.notnull, default=default)
