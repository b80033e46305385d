"""A snapshot of a board's schema, read with PRAGMAs, and a semantic comparison with head.

Standard library only. "Semantic" means what ``verify`` and the tests mean by "at head": per
column the declared type, NOT NULL, default, primary-key position and AUTOINCREMENT, per index its
name and columns; never the physical column order, which differs between fresh and upgraded boards.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field

_AUTOINC = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
INTERNAL_TABLES = frozenset({"sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4", "alembic_version"})


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _wrapped(v: str) -> bool:
    """Is ``v`` one parenthesised expression, ``( ... )``, the first parenthesis closing last?
    (``(1) + (2)`` is not: stripping its ends would leave ``1) + (2``.) Quoted text is skipped."""
    if not (v.startswith("(") and v.endswith(")")):
        return False
    depth, quote_char = 0, None
    for i, ch in enumerate(v):
        if quote_char:
            if ch == quote_char:
                quote_char = None
            continue
        if ch in "'\"`[":
            quote_char = "]" if ch == "[" else ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(v) - 1:
                return False
    return depth == 0


def norm_default(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip()
    while _wrapped(v):
        v = v[1:-1].strip()
    return v


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # declared type, upper-cased
    notnull: bool
    default: str | None  # normalised default expression
    pk: int  # position in the primary key, 0 when not part of it


@dataclass(frozen=True)
class Idx:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool
    partial: bool
    sql: str | None


@dataclass
class Table:
    name: str
    sql: str
    columns: dict[str, Col]
    autoincrement: bool
    without_rowid: bool
    foreign_keys: list[tuple] = field(default_factory=list)

    @property
    def rowid_alias(self) -> str | None:
        """The INTEGER PRIMARY KEY column (an alias of the rowid), if any."""
        pks = [c for c in self.columns.values() if c.pk]
        if len(pks) == 1 and pks[0].type == "INTEGER" and not self.without_rowid:
            return pks[0].name
        return None


@dataclass
class Schema:
    tables: dict[str, Table]
    indexes: dict[str, Idx]

    def has_table(self, name: str) -> bool:
        return name in self.tables

    def has_column(self, table: str, column: str) -> bool:
        t = self.tables.get(table)
        return t is not None and column in t.columns

    def columns(self, table: str) -> list[str]:
        t = self.tables.get(table)
        return list(t.columns) if t else []

    def indexes_of(self, table: str) -> list[Idx]:
        return [i for i in self.indexes.values() if i.table == table]


def snapshot(conn: sqlite3.Connection) -> Schema:
    """Read every table and index of the main database."""
    tables: dict[str, Table] = {}
    indexes: dict[str, Idx] = {}
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('table','index') ORDER BY rowid"
    ).fetchall()
    for typ, name, tbl, sql in rows:
        if typ != "table" or name.startswith("sqlite_") and name != "sqlite_sequence":
            continue
        cols: dict[str, Col] = {}
        for _cid, cname, ctype, notnull, dflt, pk in conn.execute(f"PRAGMA table_info({quote(name)})"):
            cols[cname] = Col(cname, (ctype or "").upper(), bool(notnull), norm_default(dflt), int(pk))
        fks = [tuple(r) for r in conn.execute(f"PRAGMA foreign_key_list({quote(name)})")]
        tables[name] = Table(
            name, sql or "", cols, bool(_AUTOINC.search(sql or "")), bool(_WITHOUT_ROWID.search(sql or "")), fks
        )
    for typ, name, tbl, sql in rows:
        if typ != "index" or sql is None:  # sql is NULL for automatic (constraint) indexes
            continue
        info = conn.execute(f"PRAGMA index_xinfo({quote(name)})").fetchall()
        cols = tuple(r[2] if r[2] is not None else "<expr>" for r in info if r[5])  # key columns only
        unique = bool(re.match(r"\s*CREATE\s+UNIQUE\b", sql, re.IGNORECASE))
        partial = bool(re.search(r"\bWHERE\b", sql, re.IGNORECASE))
        indexes[name] = Idx(name, tbl, cols, unique, partial, sql)
    return Schema(tables, indexes)


@dataclass(frozen=True)
class Difference:
    """One way a board differs from head."""

    kind: str  # missing-table, missing-column, column-differs, not-autoincrement, missing-index,
    #            index-differs, extra-table, extra-column, extra-index
    table: str | None
    name: str | None
    detail: str

    @property
    def is_extra(self) -> bool:
        return self.kind.startswith("extra-")


def column_differences(have: Col, want: Col, *, rowid_alias: bool) -> list[str]:
    out = []
    if have.type != want.type:
        out.append(f"type {have.type or '(none)'} instead of {want.type}")
    if have.pk != want.pk:
        out.append("primary key differs" if want.pk else "is part of the primary key")
    # NOT NULL on an INTEGER PRIMARY KEY (a rowid alias) means nothing: it can never be NULL.
    if have.notnull != want.notnull and not (rowid_alias and want.pk):
        out.append("NOT NULL" if have.notnull else "lacks NOT NULL")
    if have.default != want.default:
        out.append(f"default {have.default} instead of {want.default}")
    return out


def compare(board: Schema, head: Schema) -> list[Difference]:
    """Differences between ``board`` and ``head``; ``extra-*`` ones are things head does not know."""
    diffs: list[Difference] = []
    for name, want in head.tables.items():
        if name in INTERNAL_TABLES:
            continue
        have = board.tables.get(name)
        if have is None:
            diffs.append(Difference("missing-table", name, None, f"table {name} is missing"))
            continue
        alias = want.rowid_alias
        for cname, wcol in want.columns.items():
            hcol = have.columns.get(cname)
            if hcol is None:
                diffs.append(Difference("missing-column", name, cname, f"{name}.{cname} is missing"))
                continue
            problems = column_differences(hcol, wcol, rowid_alias=cname == alias)
            if problems:
                diffs.append(Difference("column-differs", name, cname, f"{name}.{cname}: " + ", ".join(problems)))
        if want.autoincrement and not have.autoincrement:
            diffs.append(Difference("not-autoincrement", name, None, f"{name} lacks AUTOINCREMENT"))
        for cname in have.columns:
            if cname not in want.columns:
                diffs.append(Difference("extra-column", name, cname, f"{name}.{cname} is not part of head"))
    for name in board.tables:
        if name not in head.tables and name not in INTERNAL_TABLES:
            diffs.append(Difference("extra-table", name, None, f"table {name} is not part of head"))
    for name, want in head.indexes.items():
        have = board.indexes.get(name)
        if have is None:
            diffs.append(Difference("missing-index", want.table, name, f"index {name} is missing"))
        elif (have.table, have.columns, have.unique, have.partial) != (want.table, want.columns, want.unique, want.partial):
            diffs.append(Difference(
                "index-differs", want.table, name,
                f"index {name} is on {have.table}({', '.join(have.columns)}), head has {want.table}({', '.join(want.columns)})",
            ))
    for name, have in board.indexes.items():
        if name not in head.indexes:
            diffs.append(Difference("extra-index", have.table, name, f"index {name} is not part of head"))
    return diffs


def at_head(board: Schema, head: Schema) -> bool:
    return not [d for d in compare(board, head) if not d.is_extra]
