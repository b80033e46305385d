"""SQL scripts of salvaged rows, and the one ``lost_and_found`` layout.

:func:`write_dump` writes a SalvageResult as ``BEGIN; CREATE TABLE ...; INSERT ...; COMMIT;``
that any SQLite loads and that gives back exactly the salvaged values with their types
(integers, reals, text including quotes, newlines, NULs and invalid UTF-8, blobs). Rows the target
table would reject (duplicate PRIMARY KEY / UNIQUE values, NULL in a NOT NULL column, wrong type in
a STRICT table) go to the ``lost_and_found`` table instead, so loading never fails on them and
nothing is dropped. :func:`dump_database` writes a database that kanban-migrate built itself (the
rebuilt board of ``recover``) the same way.

No statement text stored in the salvaged file is written as it is: tables and indexes are
regenerated from their parsed definitions (:mod:`.sqlschema`), triggers are left out unless asked
for, and a view (which cannot run anything when it is created or loaded) only when it is one
complete ``CREATE VIEW`` statement. Each table's rows are read once, in order, never held.

:class:`LostAndFound` is the layout of the ``lost_and_found`` table, used by this script and by
the rebuilt board of ``recover`` alike: ``page, rowid_, source, reason, table_, ncol, c0, c1, ...``
(one ``cN`` per value; the table is widened with ``ALTER TABLE ... ADD COLUMN`` as wider rows come).
:class:`FreelistMarks` is the table that lists deleted rows brought back (``--include-freelist``);
in a script, such rows come last in their table after a comment that says so.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from .sqlschema import (TableDef, create_index_sql, create_table_sql, parse_create_index, parse_create_table,
                        quote_ident, single_statement, sql_literal)

__all__ = ["write_dump", "dump_database", "sql_literal", "DumpStats", "LostAndFound", "FreelistMarks", "lossless",
           "readable"]

LOST_AND_FOUND = "lost_and_found"
FREELIST_MARKS = "recovered_deleted_rows"  # see FreelistMarks
_LOST_FIXED = (("page", "INTEGER"), ("rowid_", "INTEGER"), ("source", "TEXT"), ("reason", "TEXT"),
               ("table_", "TEXT"), ("ncol", "INTEGER"))
MAX_LOST_VALUES = 2000 - len(_LOST_FIXED) - 4  # SQLite's default limit is 2000 columns a table


def _raw(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def lossless(value):
    """``value`` as SQLite can store it without losing a byte: text that is not valid UTF-8 (the
    reader keeps such bytes as surrogate escapes) becomes a BLOB of its original bytes; an integer
    beyond 64 bits becomes its decimal text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _raw(value)
    elif isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        return str(value)
    return value


def readable(value):
    """``value`` as every tool can read it: invalid UTF-8 bytes of a text become U+FFFD (the value
    stays text, in its own column); an integer beyond 64 bits becomes its decimal text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _raw(value).decode("utf-8", "replace")
    elif isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        return str(value)
    return value


class LostAndFound:
    """Rows that fit no table: the one layout, created on the first row, widened as needed."""

    def __init__(self, taken: Iterable[str] = (), name: str = LOST_AND_FOUND):
        low = {n.lower() for n in taken}
        pick, k = name, 1
        while pick.lower() in low:
            pick, k = f"{name}_{k}", k + 1
        self.name = pick
        self.width = -1  # -1: not created yet
        self.rows = 0

    def prepare(self, values: int) -> list[str]:
        """The statements that make room for a row of ``values`` values (none when there is)."""
        out = []
        if self.width < 0:
            out.append(f"CREATE TABLE {quote_ident(self.name)} (" +
                       ", ".join(f"{c} {t}" for c, t in _LOST_FIXED) + ")")
            self.width = 0
        while self.width < min(values, MAX_LOST_VALUES):
            out.append(f"ALTER TABLE {quote_ident(self.name)} ADD COLUMN c{self.width}")
            self.width += 1
        return out

    def record(self, page, rowid, source, reason, table, values) -> tuple[str, tuple]:
        """(INSERT statement with placeholders, parameters) for one row; values kept losslessly."""
        values = tuple(values)
        kept = values[:MAX_LOST_VALUES]
        if len(values) > len(kept):
            reason = f"{reason}; {len(values) - len(kept)} value(s) beyond {MAX_LOST_VALUES} not kept"
        names = [c for c, _ in _LOST_FIXED] + [f"c{i}" for i in range(len(kept))]
        sql = (f"INSERT INTO {quote_ident(self.name)} ({', '.join(names)}) "
               f"VALUES ({', '.join('?' * len(names))})")
        self.rows += 1
        params = (lossless(page), lossless(rowid), source, reason, table, len(values), *map(lossless, kept))
        return sql, params


@dataclass
class DumpStats:
    tables: int = 0
    rows: int = 0
    lost_rows: int = 0                  # rows written to lost_and_found (salvage's + diverted)
    diverted: dict[str, int] = field(default_factory=dict)   # table -> rows moved to lost_and_found
    skipped: list[str] = field(default_factory=list)         # objects not recreated, with reason
    lost_and_found_table: str = LOST_AND_FOUND


_STRICT_TYPES = {"INT": (int,), "INTEGER": (int,), "REAL": (float, int), "TEXT": (str,),
                 "BLOB": (bytes,), "ANY": None}


def _synth_create(name: str, columns, alias: str | None = None) -> str:
    parts = []
    for c in columns:
        parts.append(f"{quote_ident(c)} INTEGER PRIMARY KEY" if alias is not None and c == alias else quote_ident(c))
    return f"CREATE TABLE {quote_ident(name)}({', '.join(parts) or 'c0'})"


def _inline(sql: str, params: tuple) -> str:
    """An INSERT with its ``?`` placeholders (all at the end, in VALUES) spelled as literals."""
    head = sql[: sql.rindex("VALUES (")]
    return head + "VALUES(" + ",".join(sql_literal(v) for v in params) + ");\n"


def _write_lost(w, lost: LostAndFound, page, rowid, source, reason, table, values) -> None:
    values = tuple(values)
    for stmt in lost.prepare(len(values)):
        w(stmt + ";\n")
    w(_inline(*lost.record(page, rowid, source, reason, table, values)))


def table_statement(name: str, t) -> tuple[str, TableDef | None, list[str]]:
    """(CREATE TABLE regenerated from ``t.sql``'s parsed form, or made from the salvaged column
    names; its parsed definition; what of the stored definition was left out)."""
    td = parse_create_table(t.sql) if t.sql else None
    notes: list[str] = []
    if (td is not None and not td.virtual
            and sorted(c.name.lower() for c in td.columns) == sorted(c.lower() for c in t.columns)):
        sql, notes = create_table_sql(td, name)
    else:
        if t.sql:
            notes = ["its stored definition could not be parsed: recreated from the column names"]
        sql = _synth_create(name, t.columns, t.rowid_alias)
    return sql, parse_create_table(sql), notes


def write_dump(result, fp, *, lost_and_found: str = LOST_AND_FOUND,
               include_indexes: bool = True, include_triggers: bool = False,
               include_views: bool = True, source: str | None = None) -> DumpStats:
    """Write ``result`` (a SalvageResult) to the text file ``fp`` as an SQL script. ``source``:
    the board the header names (default: the file the salvage read, which may be a copy)."""
    stats = DumpStats()
    lost = LostAndFound(result.tables, lost_and_found)
    stats.lost_and_found_table = lost.name
    fp.write(f"-- salvage of {str(source or result.path)!r} by kanban_migrate.salvage\n")
    fp.write("PRAGMA foreign_keys=OFF;\nBEGIN;\n")
    index_defs = _index_defs(result)
    emitted = _write_tables(fp.write, result, index_defs, lost, stats)
    for r in result.lost_and_found:
        _write_lost(fp.write, lost, r.page, r.rowid, r.source, r.reason, r.table, r.values)
    stats.lost_rows = lost.rows
    _write_schema_objects(fp.write, result, index_defs, emitted, stats, include_indexes=include_indexes,
                          include_triggers=include_triggers, include_views=include_views)
    fp.write("COMMIT;\n")
    return stats


def _index_defs(result) -> dict:
    """The salvaged file's index definitions that parse, by name."""
    out = {}
    for e in result.schema:
        if e.type == "index" and e.sql:
            idx = parse_create_index(e.sql)
            if idx is not None:
                out[e.name] = idx
    return out


def _write_tables(w, result, index_defs: dict, lost: LostAndFound, stats: DumpStats) -> dict[str, TableDef | None]:
    """Each table's regenerated CREATE and its rows, then ``sqlite_sequence``; returns the
    definitions written, by table name."""
    emitted: dict[str, TableDef | None] = {}
    autoinc = False
    seq_rows = None
    for name, t in result.tables.items():
        low = name.lower()
        if low == "sqlite_sequence":
            seq_rows = t
            continue
        if low.startswith("sqlite_"):
            stats.skipped.append(f"{name}: internal table not recreated")
            w(f"-- {quote_ident(name)}: internal table, rows not recreated\n")
            continue
        sql, td, notes = table_statement(name, t)
        stats.skipped.extend(f"{name}: {note}" for note in notes)
        w(sql + ";\n")
        emitted[name] = td
        stats.tables += 1
        autoinc = autoinc or (td is not None and td.autoincrement)
        _write_rows(w, name, t, td, [i for i in index_defs.values() if i.table == name], lost, stats)
    if seq_rows is not None:
        if autoinc:
            w("DELETE FROM sqlite_sequence;\n")
            for row in seq_rows.rows:
                w("INSERT INTO sqlite_sequence(name,seq) VALUES(" +
                  ",".join(sql_literal(v) for v in tuple(row.values)[:2]) + ");\n")
        else:
            stats.skipped.append("sqlite_sequence: no AUTOINCREMENT table recreated")
    return emitted


def _write_schema_objects(w, result, index_defs: dict, emitted: dict, stats: DumpStats, *,
                          include_indexes: bool, include_triggers: bool, include_views: bool) -> None:
    """Plain column indexes regenerated; views and triggers only when asked and one statement."""
    for e in result.schema:
        if not e.sql or e.type == "table":
            continue
        if e.type == "index":
            if not include_indexes or e.tbl_name not in emitted:
                continue
            idx = index_defs.get(e.name)
            td = emitted[e.tbl_name]
            sql = create_index_sql(idx, td.column_names if td else []) if idx is not None else None
            if sql is None:
                stats.skipped.append(f"{e.name}: index on expressions, partial or unreadable: not recreated")
                w(f"-- {quote_ident(e.name)}: index not recreated (only plain column indexes are)\n")
                continue
            w(sql + ";\n")
        elif e.type in ("view", "trigger"):
            wanted = include_views if e.type == "view" else include_triggers and e.tbl_name in emitted
            if not wanted:
                stats.skipped.append(f"{e.name}: {e.type} not recreated")
                continue
            if not single_statement(e.sql, e.type.upper()):
                stats.skipped.append(f"{e.name}: {e.type} is not one CREATE {e.type.upper()} statement: not recreated")
                w(f"-- {quote_ident(e.name)}: {e.type} not recreated (its stored text is not one statement)\n")
                continue
            w(e.sql.rstrip().rstrip(";") + ";\n")


@dataclass
class _RowRules:
    """What the target table will enforce, computed once per table: its value count, NOT NULL
    columns, STRICT types and key sets (PRIMARY KEY, UNIQUE, unique plain indexes)."""

    width: int
    not_null: list[int] = field(default_factory=list)
    strict: list[tuple[int, tuple]] = field(default_factory=list)
    key_sets: list[list[int]] = field(default_factory=list)
    seen: list[set] = field(default_factory=list)
    without_rowid: bool = False

    @classmethod
    def of(cls, t, td: TableDef | None, indexes) -> _RowRules:
        lower = [c.lower() for c in t.columns]
        pos = {c: i for i, c in enumerate(lower)}
        rules = cls(len(lower), without_rowid=t.without_rowid)
        if td is not None and len(td.columns) == rules.width:
            for us in td.unique_sets:
                idx = [pos.get(c.lower()) for c in us]
                if None not in idx and not (len(idx) == 1 and idx[0] == td.rowid_alias):
                    rules.key_sets.append(idx)
            rules.not_null = [i for i, c in enumerate(td.columns) if c.not_null and i != td.rowid_alias]
            if td.strict:
                for i, c in enumerate(td.columns):
                    ty = _STRICT_TYPES.get(c.decl_type.upper().split("(")[0].strip())
                    if ty is not None:
                        rules.strict.append((i, ty))
        for idx in indexes:
            if idx.unique and idx.columns is not None and not idx.partial:
                cols = [pos.get(c.lower()) for c in idx.columns]
                if None not in cols:
                    rules.key_sets.append(cols)
        rules.seen = [set() for _ in rules.key_sets]
        return rules

    def refuses(self, vals: tuple) -> bool:
        """The table would refuse ``vals``; otherwise its keys are remembered."""
        if len(vals) != self.width or any(vals[i] is None for i in self.not_null):
            return True
        if any(v is not None and type(v) not in ty for i, ty in self.strict for v in (vals[i],)):
            return True
        keys = []
        for ks, seen in zip(self.key_sets, self.seen):
            key = tuple(vals[i] for i in ks)
            if None in key and not self.without_rowid:
                keys.append(None)
                continue
            if key in seen:
                return True
            keys.append(key)
        for key, seen in zip(keys, self.seen):
            if key is not None:
                seen.add(key)
        return False


def _insert_prefixes(name: str, t, td: TableDef | None) -> tuple[list[int], str, str | None]:
    """(the columns written, the INSERT prefix without a rowid, the prefix with one or None)."""
    columns = list(t.columns)
    insertable = list(range(len(columns)))
    if td is not None and len(td.columns) == len(columns):
        insertable = [i for i, c in enumerate(td.columns) if c.generated is None]
    lower = [c.lower() for c in columns]
    rowid_name = None
    if not t.without_rowid and t.rowid_alias is None:
        rowid_name = next((cand for cand in ("_rowid_", "rowid", "oid") if cand not in lower), None)
    col_sql = ",".join(quote_ident(columns[i]) for i in insertable)
    plain = f"INSERT INTO {quote_ident(name)}({col_sql}) VALUES("
    with_rowid = f"INSERT INTO {quote_ident(name)}({rowid_name},{col_sql}) VALUES(" if rowid_name else None
    return insertable, plain, with_rowid


def _write_rows(w, name: str, t, td: TableDef | None, indexes, lost: LostAndFound, stats: DumpStats) -> None:
    """The table's rows as INSERTs, in batches; a row the table would refuse goes to
    lost_and_found instead, so that loading the script never fails on it."""
    insertable, plain, with_rowid = _insert_prefixes(name, t, td)
    rules = _RowRules.of(t, td, indexes)
    all_cols = insertable == list(range(rules.width))
    diverted = written = 0
    lit = sql_literal
    out: list[str] = []
    deleted = False
    for row in t.rows:
        vals = tuple(row.values)
        if not deleted and row.source in FreelistMarks.SOURCES:
            deleted = True
            out.append("-- the rows below were deleted and came back from the freelist or freeblocks\n")
        if rules.refuses(vals):
            w("".join(out))
            out.clear()
            _write_lost(w, lost, row.page, row.rowid, row.source, f"rejected by {name}", name, vals)
            diverted += 1
            continue
        picked = vals if all_cols else [vals[i] for i in insertable]
        if row.rowid is not None and with_rowid:
            out.append(with_rowid + lit(row.rowid) + "," + ",".join(map(lit, picked)) + ");\n")
        else:
            out.append(plain + ",".join(map(lit, picked)) + ");\n")
        written += 1
        if len(out) >= 2048:
            w("".join(out))
            out.clear()
    w("".join(out))
    stats.rows += written
    if diverted:
        stats.diverted[name] = diverted


class FreelistMarks:
    """The table listing rows brought back from deleted content (``recover --include-freelist``):
    ``table_, key, rowid_, source, page`` — the table the row is in now, its key there (the
    primary key's value; a JSON array for a key of several columns; the rowid where there is no
    declared key), its rowid there, ``'freelist'`` or ``'freeblock'``, and the page of the damaged
    file it was read from. The row itself is in its table like any other: this table says which
    rows were deleted ones, in the rebuilt board and in ``--dump`` alike."""

    SOURCES = ("freelist", "freeblock")

    def __init__(self, conn: sqlite3.Connection, name: str = FREELIST_MARKS):
        self.conn, self.name, self.rows = conn, name, 0
        self._made = False

    def mark(self, table: str, rowid: int, source: str, page) -> None:
        """List the row of ``table`` at ``rowid`` (just inserted), its key computed by SQLite."""
        if not self._made:
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(self.name)} "
                              "(table_ TEXT, key, rowid_ INTEGER, source TEXT, page INTEGER)")
            self._made = True
        self.conn.execute(f"INSERT INTO {quote_ident(self.name)} (table_, key, rowid_, source, page) "
                          f"SELECT ?, {key_sql(self.conn, table)}, _rowid_, ?, ? FROM {quote_ident(table)} "
                          "WHERE _rowid_ = ?", (table, source, page, rowid))
        self.rows += 1

    @staticmethod
    def follow(conn: sqlite3.Connection, name: str = FREELIST_MARKS) -> None:
        """Point ``rowid_`` at each listed row again by its key (a table the revision chain
        rebuilt may have given its rows new rowids)."""
        if not _has_table(conn, name):
            return
        for (table,) in conn.execute(f"SELECT DISTINCT table_ FROM {quote_ident(name)}").fetchall():
            if _has_table(conn, table):
                conn.execute(f"UPDATE {quote_ident(name)} SET rowid_ = (SELECT _rowid_ FROM {quote_ident(table)} "
                             f"WHERE {key_sql(conn, table)} = {quote_ident(name)}.key) WHERE table_ = ?", (table,))


def key_sql(conn: sqlite3.Connection, table: str) -> str:
    """The SQL expression of a row's key in ``table``: its declared primary key's column, a
    ``json_array`` of its columns, else ``_rowid_``."""
    info = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    if len(pk) == 1:
        return quote_ident(pk[0])
    return f"json_array({', '.join(map(quote_ident, pk))})" if pk else "_rowid_"


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def dump_database(conn: sqlite3.Connection, fp, *, title: str) -> None:
    """Write the database open on ``conn`` as an SQL script.

    Only for a database kanban-migrate built itself (``recover``'s rebuilt board, before the
    revision chain): every statement in its schema was generated by :mod:`.sqlschema` or taken from
    kanban-migrate's own table definitions, so writing them out copies nothing from a damaged file.
    Rows are streamed; rowids of tables without an INTEGER PRIMARY KEY are kept. Rows listed in
    :data:`FREELIST_MARKS` (deleted rows brought back) come last in their table, after a comment.
    """
    w = fp.write
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    w(f"-- {title}\nPRAGMA foreign_keys=OFF;\nBEGIN;\n")
    objects = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                           "AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY rowid").fetchall()
    marks = _has_table(conn, FREELIST_MARKS)
    for kind, name, sql in objects:
        if kind == "table":
            w(sql + ";\n")
            _dump_table(conn, w, name, marks and name != FREELIST_MARKS)
    if _has_table(conn, "sqlite_sequence"):
        w("DELETE FROM sqlite_sequence;\n")
        for values in conn.execute("SELECT name, seq FROM sqlite_sequence"):
            w("INSERT INTO sqlite_sequence(name,seq) VALUES(" + ",".join(map(sql_literal, values)) + ");\n")
    for kind, name, sql in objects:
        if kind == "index":
            w(sql + ";\n")
    w("COMMIT;\n")


def _dump_table(conn: sqlite3.Connection, w, name: str, marks: bool) -> None:
    info = conn.execute(f"PRAGMA table_info({quote_ident(name)})").fetchall()
    cols = [r[1] for r in info]
    pk = [r for r in info if r[5]]
    alias = len(pk) == 1 and pk[0][2].upper() == "INTEGER"
    try:
        conn.execute(f"SELECT _rowid_ FROM {quote_ident(name)} LIMIT 0")
        has_rowid = True
    except sqlite3.OperationalError:  # WITHOUT ROWID
        has_rowid = marks = False
    rowid = has_rowid and not alias and "_rowid_" not in [c.lower() for c in cols]
    select = ", ".join((["_rowid_"] if rowid else []) + [quote_ident(c) for c in cols])
    prefix = f"INSERT INTO {quote_ident(name)}({select}) VALUES("
    query = f"SELECT {select} FROM {quote_ident(name)}"
    marked = f"_rowid_ IN (SELECT rowid_ FROM {quote_ident(FREELIST_MARKS)} WHERE table_ = ?)"
    if not marks:
        _dump_rows(w, prefix, conn.execute(query))
        return
    _dump_rows(w, prefix, conn.execute(f"{query} WHERE NOT {marked}", (name,)))
    n = conn.execute(f"SELECT COUNT(*) FROM {quote_ident(name)} WHERE {marked}", (name,)).fetchone()[0]
    if n:
        w(f"-- {n} row(s) below were deleted and came back from the freelist (recover --include-freelist); "
          f"table {FREELIST_MARKS} lists them\n")
        _dump_rows(w, prefix, conn.execute(f"{query} WHERE {marked}", (name,)))


def _dump_rows(w, prefix: str, cursor) -> None:
    out = []
    for values in cursor:
        out.append(prefix + ",".join(map(sql_literal, values)) + ");\n")
        if len(out) >= 2048:
            w("".join(out))
            out.clear()
    w("".join(out))
