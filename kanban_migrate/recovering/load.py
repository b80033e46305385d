"""Step 4 of recover: the salvaged rows into a fresh database, with no SQL from the damaged file.

Each table is created from a definition kanban-migrate trusts: the layout of head or of a
historical shape of the application when the salvaged table has one (its own CREATE statement,
never the file's), else a statement regenerated from the file's parsed definition
(:func:`kanban_migrate.salvage.sqlschema.create_table_sql`: names quoted, plain type names, key
sets; CHECKs, foreign keys, collations are not copied and are named in the report), else one made
from the column names. Plain column indexes are regenerated the same way; views and triggers of
the damaged file are never recreated. Each table's rows are read once, in order, in batches;
rows its constraints refuse go to ``lost_and_found`` (the layout of
:class:`kanban_migrate.salvage.dump.LostAndFound`), with the engine's unplaced rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..salvage.dump import FreelistMarks, LostAndFound, readable, table_statement
from ..salvage.sqlschema import (create_index_sql, parse_create_index, parse_create_table, quote_ident,
                                  uncopied_clauses)
from ..schema import INTERNAL_TABLES
from .report import RecoverReport, TableReport

BATCH = 2000
# a row refused for what it holds (not for a failing disk, which must stop the run)
ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError, ValueError)
PARTIAL_LISTED = 200  # partial rows named in the report (all are counted)


def trusted_statement(name: str, t, shapes: dict) -> str | None:
    """kanban-migrate's own CREATE statement for a salvaged table whose layout it knows."""
    candidates = shapes.get(name, [])
    if t.shape is not None:
        for shape in candidates:
            if shape.label == t.shape and shape.create_sql and len(shape.columns) == len(t.columns):
                return shape.create_sql
    td = parse_create_table(t.sql) if t.sql else None
    mine = ([(c.name.lower(), c.decl_type.upper()) for c in td.columns] if td is not None
            else None)
    names = [c.lower() for c in t.columns]
    for shape in candidates:
        if not shape.create_sql:
            continue
        theirs = parse_create_table(shape.create_sql)
        if theirs is None:
            continue
        if mine is not None:
            if [(c.name.lower(), c.decl_type.upper()) for c in theirs.columns] == mine:
                return shape.create_sql
        elif [c.name.lower() for c in theirs.columns] == names:
            return shape.create_sql
    return None


def _create(conn: sqlite3.Connection, name: str, t, shapes: dict, report: RecoverReport) -> list[str] | None:
    """Create the table; its column names, or None when no definition could be made."""
    sql = trusted_statement(name, t, shapes)
    notes: list[str] = []
    if sql is None:
        sql, _, notes = table_statement(name, t)
        clauses = uncopied_clauses(t.sql)
        if clauses:
            notes = notes + [f"recreated from its parsed definition without its {', '.join(clauses)} clause(s) "
                             "(expressions stored in a damaged file are never copied)"]
    for attempt in (sql, f"CREATE TABLE {quote_ident(name)} ({', '.join(f'c{i}' for i in range(len(t.columns))) or 'c0'})"):
        try:
            conn.execute(attempt)
        except (sqlite3.Error, ValueError) as exc:
            notes.append(f"its definition was refused ({exc})")
            continue
        for note in notes:
            report.dropped.append(f"table {name}: {note}")
        return [r[1] for r in conn.execute(f"PRAGMA table_info({quote_ident(name)})")]
    for note in notes:
        report.dropped.append(f"table {name}: {note}")
    return None


class _Lost:
    """Rows for lost_and_found, written as they come."""

    def __init__(self, conn: sqlite3.Connection, taken):
        self.conn = conn
        self.layout = LostAndFound(taken)
        self.deleted = 0  # of them, deleted rows (freelist, freeblock): set aside, but not a loss

    def add(self, page, rowid, source, reason, table, values) -> None:
        values = tuple(values)
        self.deleted += source in FreelistMarks.SOURCES
        for stmt in self.layout.prepare(len(values)):
            self.conn.execute(stmt)
        try:
            self.conn.execute(*self.layout.record(page, rowid, source, reason, table, values))
        except ROW_ERRORS as exc:
            self.layout.rows -= 1
            self.conn.execute(*self.layout.record(page, rowid, source, f"{reason}; its values could not be "
                                                  f"stored ({exc})", table, ()))


def load(result, staging: Path, report: RecoverReport, shapes: dict) -> int:
    """Build ``staging`` from ``result``; returns the number of rows placed (tables and
    lost_and_found together)."""
    from .. import head

    conn = sqlite3.connect(str(staging), isolation_level=None)
    placed = 0
    try:
        conn.execute("PRAGMA journal_mode=WAL")  # fast to build; the final step gives it a new board's mode
        conn.execute("PRAGMA synchronous=OFF")  # a work file: the final checks decide, not fsync
        conn.execute("BEGIN")
        lost = _Lost(conn, result.tables)
        marks = FreelistMarks(conn)
        created: dict[str, list[str]] = {}
        for name, t in result.tables.items():
            if name in INTERNAL_TABLES or name.lower().startswith("sqlite_"):
                continue
            have = _create(conn, name, t, shapes, report)
            tr = report.tables.setdefault(name, TableReport(name))
            tr.unreadable, tr.from_orphan_pages = t.unreadable_cells, t.orphan_rows
            tr.missing_subtrees = t.missing_subtrees
            tr.from_freelist = t.freelist_rows + t.freeblock_rows
            if have is None:
                for row in t.rows:
                    lost.add(row.page, row.rowid, row.source, f"table {name} could not be recreated", name, row.values)
                    tr.rejected += 1
                continue
            created[name] = have
            placed += _rows(conn, result, name, t, have, tr, lost, report, marks)
        for row in result.lost_and_found:
            lost.add(row.page, row.rowid, row.source, row.reason, row.table, row.values)
        report.lost_and_found = lost.layout.rows
        report.freelist_rows, report.deleted_set_aside = marks.rows, lost.deleted
        for tr in report.tables.values():
            tr.in_file = tr.recovered + tr.rejected + tr.deleted_set_aside  # every row read was placed or set aside
        placed += lost.layout.rows
        if "tasks" not in created:
            conn.execute(head.create_table_sql(head.tasks))
            report.notes.append("no row of the tasks table survived; an empty one was made")
        _indexes(conn, result, created, report)
        _sequence(conn, result, created)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return placed


def _rows(conn, result, name: str, t, have: list[str], tr: TableReport, lost: _Lost, report: RecoverReport,
          marks: FreelistMarks) -> int:
    """The table's rows: the runs the engine verified are copied by SQLite itself (our regenerated
    table is the destination; the engine's own statement reads the damaged copy, read-only and
    immutable), then every other row, read once, in order, in batches; a deleted row brought back
    (freelist, freeblock) one by one, listed in ``marks``."""
    from ..salvage import copy_sound_rows

    have_low = {c.lower() for c in have}
    idx = [i for i, c in enumerate(t.columns) if c.lower() in have_low]
    cols = [t.columns[i] for i in idx]
    if len(cols) < len(t.columns):
        gone = [c for c in t.columns if c.lower() not in have_low]
        report.dropped.append(f"table {name}: values of column(s) {', '.join(gone)} not kept "
                              "(its recreated definition has no such column)")
    use_rowid = t.rowid_alias is None and not t.without_rowid
    done = copy_sound_rows(result, name, conn, cols, use_rowid) if cols else 0
    names = (["_rowid_"] if use_rowid else []) + [quote_ident(c) for c in cols]
    sql = f"INSERT INTO {quote_ident(name)} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    key_at = _key_column(name, t.columns)
    chunk: list = []
    for row in t.rows:
        if row.source in FreelistMarks.SOURCES:
            done += _batch(conn, sql, name, chunk, idx, use_rowid, tr, lost, report, key_at)
            chunk = []
            done += _deleted_row(conn, sql, name, row, idx, use_rowid, tr, lost, marks)
            continue
        chunk.append(row)
        if len(chunk) >= BATCH:
            done += _batch(conn, sql, name, chunk, idx, use_rowid, tr, lost, report, key_at)
            chunk = []
    if chunk:
        done += _batch(conn, sql, name, chunk, idx, use_rowid, tr, lost, report, key_at)
    tr.recovered = done
    return done


def _values(row, idx, use_rowid):
    values = tuple(row.values)
    picked = [readable(values[i]) if i < len(values) else None for i in idx]
    return ([row.rowid] if use_rowid else []) + picked


def _key_column(name: str, columns: list[str]) -> int | None:
    """Where a row's key is among ``columns``: head's one-column primary key of the table (the
    key people know, e.g. a task's id), else None (the rowid is the key)."""
    from .. import head

    table = head.metadata.tables.get(name)
    pk = [c.name.lower() for c in table.primary_key.columns] if table is not None else []
    low = [c.lower() for c in columns]
    return low.index(pk[0]) if len(pk) == 1 and pk[0] in low else None


def _deleted_row(conn, sql, name, row, idx, use_rowid, tr: TableReport, lost: _Lost, marks: FreelistMarks) -> int:
    """A deleted row brought back: placed like any row, and listed in ``marks`` with the rowid it got.
    One its table refuses (a live row took its key since) is set aside; no live row is lost."""
    conn.execute("SAVEPOINT deleted")
    try:
        rowid = conn.execute(sql, _values(row, idx, use_rowid)).lastrowid
        marks.mark(name, rowid, row.source, row.page)
        conn.execute("RELEASE deleted")
        return 1
    except ROW_ERRORS as exc:
        conn.execute("ROLLBACK TO deleted")
        conn.execute("RELEASE deleted")
        tr.deleted_set_aside += 1
        lost.add(row.page, row.rowid, row.source, f"deleted row rejected by {name}: {exc}", name, row.values)
        return 0


def _batch(conn, sql, name, chunk, idx, use_rowid, tr: TableReport, lost: _Lost, report: RecoverReport,
           key_at: int | None = None) -> int:
    if not chunk:
        return 0
    values = [_values(row, idx, use_rowid) for row in chunk]
    conn.execute("SAVEPOINT batch")
    try:
        conn.executemany(sql, values)
        conn.execute("RELEASE batch")
        for row in chunk:
            _note_partial(row, name, report, key_at)
        return len(chunk)
    except ROW_ERRORS:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
    done = 0
    for row, vals in zip(chunk, values):  # one by one: keep what fits, keep the rest aside
        try:
            conn.execute(sql, vals)
            done += 1
            _note_partial(row, name, report, key_at)
        except ROW_ERRORS as exc:
            # e.g. a partial row whose NOT NULL column was cut to NULL: that row only goes aside
            tr.rejected += 1
            lost.add(row.page, row.rowid, row.source, f"rejected by {name}: {exc}", name, row.values)
    return done


def _note_partial(row, name: str, report: RecoverReport, key_at: int | None = None) -> None:
    """A row kept with only its readable part (a broken overflow chain) is listed in the report,
    once it is in its table (a row the table refused is in lost_and_found instead)."""
    if getattr(row, "partial", False):
        report.partial_count += 1
        if len(report.partial_rows) < PARTIAL_LISTED:
            values = tuple(row.values)
            if key_at is not None and key_at < len(values) and values[key_at] is not None:
                key = values[key_at]
            else:
                key = row.rowid if row.rowid is not None else (values[:1] or (None,))[0]
            report.partial_rows.append({"table": name, "key": readable(key),
                                        "columns": list(getattr(row, "partial_columns", None) or [])})


def _indexes(conn, result, created: dict[str, list[str]], report: RecoverReport) -> None:
    """The board's own plain column indexes that head does not define (the chain makes head's);
    every other stored object is named as not recreated."""
    from .. import head

    ours = {i.name for t in head.metadata.tables.values() for i in t.indexes}
    skipped: dict[str, list[str]] = {}
    for entry in result.schema:
        if entry.type == "table" or not entry.sql:
            continue
        if entry.type != "index":
            skipped.setdefault(entry.type, []).append(entry.name)
            continue
        if entry.name in ours or entry.tbl_name not in created:
            continue
        idx = parse_create_index(entry.sql)
        sql = create_index_sql(idx, created[entry.tbl_name]) if idx is not None and idx.table == entry.tbl_name else None
        if sql is None:
            skipped.setdefault("index", []).append(entry.name)
            continue
        conn.execute("SAVEPOINT idx")
        try:
            conn.execute(sql)
            conn.execute("RELEASE idx")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK TO idx")
            conn.execute("RELEASE idx")
            report.dropped.append(f"index {entry.name} not recreated: {exc}")
    for kind, names in skipped.items():
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        report.dropped.append(f"{len(names)} {kind}(s) of the damaged file not recreated (SQL stored in a damaged "
                              f"file is never run; only plain column indexes are rebuilt): {shown}")


def _sequence(conn, result, created) -> None:
    seq = result.tables.get("sqlite_sequence")
    if seq is None or "name" not in seq.columns or "seq" not in seq.columns:
        return
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        return
    ni, si = seq.columns.index("name"), seq.columns.index("seq")
    for row in seq.rows:
        values = tuple(row.values)
        if max(ni, si) >= len(values):
            continue
        name, value = values[ni], values[si]
        if name in created and isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
            if not conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (value, name)).rowcount:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, value))
