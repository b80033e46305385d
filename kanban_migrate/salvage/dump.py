"""Write a SalvageResult as an SQL script that any SQLite can load.

The script is ``BEGIN; CREATE TABLE ...; INSERT ...; COMMIT;`` and is replay-correct:
loading it gives back exactly the salvaged values with their types (integers, reals,
text including quotes, newlines and NULs, blobs). Rows that the target table would
reject (duplicate PRIMARY KEY / UNIQUE values, NULL in a NOT NULL column, wrong type in a
STRICT table) are written to the ``lost_and_found`` table instead, so loading never fails
on them and nothing is dropped.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .sqlschema import TableDef, parse_create_index, parse_create_table, quote_ident

__all__ = ["write_dump", "sql_literal", "DumpStats"]

_MIN_INT = -(1 << 63)
_SPECIAL = re.compile("([\x00\r])")


def sql_literal(v) -> str:
    """An SQL literal that SQLite reads back as exactly ``v`` (same value, same type)."""
    if v is None:
        return "NULL"
    t = type(v)
    if t is str:
        if v.isascii() and "\x00" not in v and "\r" not in v:
            return "'" + v.replace("'", "''") + "'"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            # invalid UTF-8 kept via surrogateescape by the reader: write the original bytes
            try:
                raw = v.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = v.encode("utf-8", "surrogatepass")
            return "CAST(X'" + raw.hex() + "' AS TEXT)"
        if "\x00" in v or "\r" in v:
            # NUL cannot appear in SQL text and a CR would not survive a text-mode reader
            # (universal newlines): spell both as char() calls
            parts = []
            for piece in _SPECIAL.split(v):
                if piece == "\x00":
                    parts.append("char(0)")
                elif piece == "\r":
                    parts.append("char(13)")
                elif piece:
                    parts.append("'" + piece.replace("'", "''") + "'")
            return "(" + "||".join(parts) + ")"
        return "'" + v.replace("'", "''") + "'"
    if t is int:
        if v == _MIN_INT:
            return "(-9223372036854775807-1)"
        return str(v)
    if t is float:
        if math.isnan(v):
            return "NULL"
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        r = repr(v)
        return r
    if t is bytes or t is bytearray or t is memoryview:
        return "X'" + bytes(v).hex() + "'"
    if t is bool:
        return "1" if v else "0"
    if isinstance(v, int):
        return sql_literal(int(v))
    if isinstance(v, float):
        return sql_literal(float(v))
    return sql_literal(str(v))


@dataclass
class DumpStats:
    tables: int = 0
    rows: int = 0
    lost_rows: int = 0                  # rows written to lost_and_found (salvage's + diverted)
    diverted: dict[str, int] = field(default_factory=dict)   # table -> rows moved to lost_and_found
    skipped: list[str] = field(default_factory=list)         # objects not recreated, with reason
    lost_and_found_table: str = "lost_and_found"


_STRICT_TYPES = {"INT": (int,), "INTEGER": (int,), "REAL": (float, int), "TEXT": (str,),
                 "BLOB": (bytes,), "ANY": None}


def _synth_create(name: str, columns, types=None, alias: str | None = None) -> str:
    parts = []
    for i, c in enumerate(columns):
        t = (types[i] if types and i < len(types) and types[i] else "")
        if alias is not None and c == alias:
            parts.append(f"{quote_ident(c)} INTEGER PRIMARY KEY")
        else:
            parts.append(f"{quote_ident(c)} {t}".rstrip())
    return f"CREATE TABLE {quote_ident(name)}({', '.join(parts)})"


def write_dump(result, fp, *, lost_and_found: str = "lost_and_found",
               include_indexes: bool = True, include_triggers: bool = True,
               include_views: bool = True) -> DumpStats:
    """Write ``result`` (a SalvageResult) to the text file ``fp`` as an SQL script."""
    stats = DumpStats()
    w = fp.write
    names_lower = {n.lower() for n in result.tables}
    lf_name = lost_and_found
    k = 1
    while lf_name.lower() in names_lower:
        lf_name = f"{lost_and_found}_{k}"
        k += 1
    stats.lost_and_found_table = lf_name

    w(f"-- salvage of {str(result.path)!r} by kanban_migrate.salvage\n")
    w("PRAGMA foreign_keys=OFF;\nBEGIN;\n")
    lost: list[tuple] = []        # (page, rowid, values)
    for r in result.lost_and_found:
        lost.append((r.page, r.rowid, r.values))

    index_entries = [e for e in result.schema if e.type == "index" and e.sql]
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
            w(f"-- {name}: internal table, {len(t.rows)} rows not recreated\n")
            continue
        td = parse_create_table(t.sql) if t.sql else None
        sql = t.sql
        if td is None or td.virtual:
            if t.sql:
                w("-- original definition could not be used: " + " ".join(t.sql.split())[:200] + "\n")
            sql = _synth_create(name, t.columns, None, t.rowid_alias)
            td = parse_create_table(sql)
        w(sql.rstrip().rstrip(";") + ";\n")
        emitted[name] = td
        stats.tables += 1
        if td is not None and td.autoincrement:
            autoinc = True
        _write_rows(w, name, t, td, index_entries, lost, stats)

    if seq_rows is not None and seq_rows.rows:
        if autoinc:
            w("DELETE FROM sqlite_sequence;\n")
            for row in seq_rows.rows:
                w("INSERT INTO sqlite_sequence(name,seq) VALUES(" +
                  ",".join(sql_literal(v) for v in row.values[:2]) + ");\n")
        else:
            stats.skipped.append("sqlite_sequence: no AUTOINCREMENT table recreated")

    # lost_and_found
    if lost:
        ncol = max((len(v) for _p, _r, v in lost), default=0)
        cols = ", ".join(["page INTEGER", "rowid INTEGER", "ncol INTEGER"] + [f"c{i}" for i in range(ncol)])
        w(f"CREATE TABLE {quote_ident(lf_name)}({cols});\n")
        prefix = (f"INSERT INTO {quote_ident(lf_name)}(page, rowid, ncol" +
                  "".join(f", c{i}" for i in range(ncol)) + ") VALUES(")
        for page, rowid, vals in lost:
            vals = tuple(vals)
            w(prefix + ",".join([sql_literal(page), sql_literal(rowid), str(len(vals))] +
                                [sql_literal(v) for v in vals] + ["NULL"] * (ncol - len(vals))) + ");\n")
        stats.lost_rows = len(lost)

    # indexes, views, triggers
    for e in result.schema:
        if not e.sql or e.type == "table":
            continue
        if e.type == "index":
            if not include_indexes:
                continue
            if e.tbl_name not in emitted:
                continue
            idx = parse_create_index(e.sql)
            if idx is not None and idx.unique and (idx.columns is None or idx.partial):
                stats.skipped.append(f"{e.name}: unique index on expressions/partial not recreated")
                w(f"-- {e.name}: unique index not recreated (its constraint could not be checked)\n")
                continue
        elif e.type == "view":
            if not include_views:
                continue
        elif e.type == "trigger":
            if not include_triggers or e.tbl_name not in emitted:
                continue
        else:
            continue
        w(e.sql.rstrip().rstrip(";") + ";\n")
    w("COMMIT;\n")
    return stats


def _write_rows(w, name: str, t, td: TableDef | None, index_entries, lost: list, stats: DumpStats) -> None:
    columns = list(t.columns)
    n = len(columns)
    # columns that can be inserted (generated columns cannot)
    insertable = list(range(n))
    if td is not None and len(td.columns) == n:
        insertable = [i for i, c in enumerate(td.columns) if c.generated is None]
    lower = [c.lower() for c in columns]
    rowid_name = None
    if not t.without_rowid and t.rowid_alias is None:
        for cand in ("_rowid_", "rowid", "oid"):
            if cand not in lower:
                rowid_name = cand
                break
    col_sql = ",".join(quote_ident(columns[i]) for i in insertable)
    prefix_norowid = f"INSERT INTO {quote_ident(name)}({col_sql}) VALUES("
    prefix_rowid = (f"INSERT INTO {quote_ident(name)}({rowid_name},{col_sql}) VALUES("
                    if rowid_name else prefix_norowid)

    # constraints the target table will enforce
    pos = {c: i for i, c in enumerate(lower)}
    key_sets: list[list[int]] = []
    not_null: list[int] = []
    strict_checks: list[tuple[int, tuple | None]] = []
    if td is not None and len(td.columns) == n:
        for us in td.unique_sets:
            idx = [pos.get(c.lower()) for c in us]
            if None not in idx and not (len(idx) == 1 and idx[0] == td.rowid_alias):
                key_sets.append(idx)
        not_null = [i for i, c in enumerate(td.columns) if c.not_null and i != td.rowid_alias]
        if td.strict:
            for i, c in enumerate(td.columns):
                ty = _STRICT_TYPES.get(c.decl_type.upper().split("(")[0].strip())
                if ty is not None:
                    strict_checks.append((i, ty))
    for e in index_entries:
        if e.tbl_name != name:
            continue
        idx = parse_create_index(e.sql)
        if idx is not None and idx.unique and idx.columns is not None and not idx.partial:
            cols = [pos.get(c.lower()) for c in idx.columns]
            if None not in cols:
                key_sets.append(cols)
    seen_keys = [set() for _ in key_sets]
    all_cols = insertable == list(range(n))
    without_rowid = t.without_rowid
    diverted = 0
    lit = sql_literal
    out = []
    for row in t.rows:
        vals = row.values
        bad = False
        for i in not_null:
            if vals[i] is None:
                bad = True
                break
        if not bad and strict_checks:
            for i, ty in strict_checks:
                v = vals[i]
                if v is not None and type(v) not in ty:
                    bad = True
                    break
        if not bad and key_sets:
            keys = []
            for ks, seen in zip(key_sets, seen_keys):
                key = tuple(vals[i] for i in ks)
                if None in key and not without_rowid:
                    keys.append(None)
                    continue
                if key in seen:
                    bad = True
                    break
                keys.append(key)
            if not bad:
                for key, seen in zip(keys, seen_keys):
                    if key is not None:
                        seen.add(key)
        if bad:
            lost.append((row.page, row.rowid, vals))
            diverted += 1
            continue
        if row.rowid is not None and rowid_name:
            out.append(prefix_rowid + lit(row.rowid) + "," +
                       ",".join(map(lit, vals if all_cols else [vals[i] for i in insertable])) + ");\n")
        else:
            out.append(prefix_norowid +
                       ",".join(map(lit, vals if all_cols else [vals[i] for i in insertable])) + ");\n")
        if len(out) >= 2048:
            w("".join(out))
            out.clear()
    if out:
        w("".join(out))
    stats.rows += len(t.rows) - diverted
    if diverted:
        stats.diverted[name] = diverted
