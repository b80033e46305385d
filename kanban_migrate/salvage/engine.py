"""Salvage the rows of a (possibly damaged) SQLite database without using SQLite.

``salvage()`` reads the file (and its WAL) page by page: it walks sqlite_schema and each
table b-tree as far as it can be read, then scans every page for b-tree pages no walk
reached and gives their rows back to the right table (by b-tree structure where it
survives, otherwise by matching the records against candidate table shapes). Anything
that cannot be placed goes to ``lost_and_found``; nothing is silently dropped. A page no
walk reached that belongs to a table whose walk was complete is a freed page (stale
content the freelist no longer lists, e.g. behind a garbage trunk): its rows are deleted
rows, counted in ``pages_stale`` and returned only with ``include_freelist``.
"""
from __future__ import annotations

import os
import re
import struct
import time
from operator import itemgetter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .fileformat import (MAGIC, PAGE_INDEX_INTERIOR, PAGE_TABLE_INTERIOR,
                         PAGE_TABLE_LEAF, DbHeader, FreelistInfo, PageHeader, RecordError,
                         cell_pointers, decode_record, freeblocks, local_payload_size,
                         parse_page_header, pending_byte_page, ptrmap_page_for, ptrmap_pages,
                         read_overflow, read_varint, read_varint_signed, text_codec, text_decoder,
                         walk_freelist)
from .sqlschema import NO_DEFAULT, TableDef, affinity, parse_create_table
from .wal import PageSource, WalIndex, WalSummary, _map_file, read_wal

__all__ = ["salvage", "SalvageResult", "TableSalvage", "IndexSalvage", "Row", "LostRow",
           "SchemaEntry", "TableShape", "ColumnCheck"]

_U32 = struct.Struct(">I")
_ERRORS = (IndexError, ValueError, struct.error, RecordError, TypeError, OverflowError)
SOURCES = ("btree", "orphan", "freelist", "freeblock")

ColumnCheck = "Callable[[object], bool] | re.Pattern | str | type | Iterable"


# --------------------------------------------------------------------------- result types

class Row(tuple):
    """One salvaged row: (rowid, values, source, page) with attribute access.

    ``values`` is a tuple with the table's full column count, rowid alias filled in;
    ``rowid`` is None for WITHOUT ROWID tables and carved freeblock rows; ``source`` is
    'btree', 'orphan', 'freelist' or 'freeblock'; ``page`` is where the cell was read.
    """

    __slots__ = ()
    rowid = property(itemgetter(0))
    values = property(itemgetter(1))
    source = property(itemgetter(2))
    page = property(itemgetter(3))

    def __new__(cls, rowid, values, source, page):
        return _tnew(cls, (rowid, values, source, page))

    def __repr__(self) -> str:
        return f"Row(rowid={self[0]!r}, values={self[1]!r}, source={self[2]!r}, page={self[3]})"


_tnew = tuple.__new__


@dataclass
class LostRow:
    """A record that could not be given to any table (or could not be read completely)."""

    page: int
    rowid: int | None
    values: tuple
    source: str           # where the page came from: 'btree', 'orphan', 'freelist', 'freeblock'
    reason: str           # 'no matching table', 'overflow chain broken', ...
    table: str | None = None   # the table the page belonged to, when known


@dataclass
class SchemaEntry:
    type: str
    name: str
    tbl_name: str
    rootpage: int
    sql: str | None
    source: str = "btree"     # 'btree' (reached from page 1), 'orphan' (found on an orphan page), 'shape'
    page: int = 1


@dataclass
class TableSalvage:
    name: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    unreadable_cells: int = 0
    orphan_rows: int = 0
    sql: str | None = None
    rootpage: int | None = None
    without_rowid: bool = False
    rowid_alias: str | None = None
    shape: str | None = None          # label of the caller-supplied shape that matched, if any
    pages: int = 0                    # pages reached by the b-tree walk
    missing_subtrees: int = 0         # child pointers the walk could not follow
    freelist_rows: int = 0
    freeblock_rows: int = 0
    overlong_records: int = 0         # live records with more values than columns (extra values cut)


@dataclass
class IndexSalvage:
    name: str
    table: str
    rootpage: int
    entries: int = 0
    pages: int = 0
    unreadable_cells: int = 0
    missing_subtrees: int = 0


@dataclass
class SalvageResult:
    path: str
    header: DbHeader | None
    header_problems: list[str]
    encoding: str
    page_size: int
    usable_size: int
    schema: list[SchemaEntry]
    tables: dict[str, TableSalvage]
    indexes: dict[str, IndexSalvage]
    lost_and_found: list[LostRow]
    wal: WalSummary | None
    pages_total: int
    pages_unreadable: int
    pages_orphan: int
    timed_out: bool
    elapsed: float
    freelist: FreelistInfo | None = None
    problems: list[str] = field(default_factory=list)
    # b-tree pages no walk reached whose records belong to a table whose walk was complete:
    # freed pages that kept their old cells (stale content). Skipped unless include_freelist,
    # which returns their rows marked 'freelist'.
    pages_stale: int = 0
    cells_repaired: int = 0  # records read by their own header when the cell's payload size was damaged

    def rows(self, table: str) -> list[Row]:
        t = self.tables.get(table)
        return t.rows if t is not None else []


# --------------------------------------------------------------------------- shapes

@dataclass(frozen=True)
class TableShape:
    """What the rows of one table look like, for matching pages whose table is unknown.

    ``columns`` are in physical (record) order. ``types`` are declared types (give
    affinities; None: anything). ``checks`` maps a column name to a check applied to its
    non-NULL values: a callable returning bool, a compiled regex or a pattern string
    (full match on text values), a type (isinstance) or a collection of allowed values.
    ``min_columns`` is the shortest record accepted (rows written before ALTER TABLE ADD
    COLUMN are shorter; default: all columns). Supply several shapes per table name for
    legacy layouts; ``label`` says which one matched.
    """

    columns: tuple[str, ...]
    types: tuple[str | None, ...] | None = None
    rowid_alias: str | None = None
    not_null: frozenset[str] = frozenset()
    checks: Mapping[str, object] = field(default_factory=dict)
    defaults: Mapping[str, object] = field(default_factory=dict)
    without_rowid: bool = False
    primary_key: tuple[str, ...] = ()
    create_sql: str | None = None
    min_columns: int | None = None
    label: str | None = None

    @classmethod
    def from_sql(cls, create_sql: str, *, checks: Mapping[str, object] | None = None,
                 min_columns: int | None = None, label: str | None = None) -> "TableShape":
        td = parse_create_table(create_sql)
        if td is None or td.virtual:
            raise ValueError(f"not a CREATE TABLE statement with columns: {create_sql[:80]!r}")
        order = td.record_order()
        cols = tuple(td.columns[i].name for i in order)
        return cls(
            columns=cols,
            types=tuple(td.columns[i].decl_type for i in order),
            rowid_alias=td.columns[td.rowid_alias].name if td.rowid_alias is not None else None,
            not_null=frozenset(c.name for c in td.columns if c.not_null),
            checks=dict(checks or {}),
            defaults={c.name: c.default for c in td.columns if c.default is not NO_DEFAULT},
            without_rowid=td.without_rowid,
            primary_key=tuple(td.primary_key),
            create_sql=create_sql,
            min_columns=min_columns,
            label=label,
        )


def _compile_check(chk) -> Callable[[object], bool] | None:
    if chk is None:
        return None
    if isinstance(chk, re.Pattern) or isinstance(chk, str):
        rx = re.compile(chk) if isinstance(chk, str) else chk
        fm = rx.fullmatch
        return lambda v: isinstance(v, str) and fm(v) is not None
    if isinstance(chk, type):
        if chk is int:
            return lambda v: type(v) is int
        return lambda v: isinstance(v, chk)
    if callable(chk):
        def safe(v, f=chk):
            try:
                return bool(f(v))
            except Exception:
                return False
        return safe
    allowed = frozenset(chk)
    return lambda v: v in allowed if not isinstance(v, (bytes, bytearray)) else v in allowed


_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*").fullmatch
_SCHEMA_TYPES = frozenset(("table", "index", "view", "trigger"))


class _Candidate:
    """A table a record can be matched against (from the schema and/or a caller shape)."""

    __slots__ = ("table", "columns", "ncols", "order", "affs", "not_null", "alias_pos",
                 "checks", "min_cols", "td", "shape", "label", "without_rowid", "defaults",
                 "strict_types", "check_pos", "plan")

    def __init__(self, table, columns, order, affs, not_null, alias_pos, checks, min_cols,
                 td=None, shape=None, label=None, without_rowid=False, defaults=None):
        self.table = table
        self.columns = columns          # all column names (declaration order)
        self.order = order              # record position -> column index
        self.ncols = len(order)         # values in a full record
        self.affs = affs                # per record position
        self.not_null = not_null        # per record position
        self.alias_pos = alias_pos      # record position holding NULL for the rowid alias
        self.checks = checks            # per record position: callable or None
        self.check_pos = tuple(i for i, c in enumerate(checks) if c is not None)
        # what score() tests per record position, positions with nothing to test left out:
        # (position, NOT NULL, 1 text affinity / 2 numeric affinity / None, check)
        plan = []
        for i in range(len(order)):
            if i == alias_pos:
                continue
            aff = affs[i]
            code = None if aff is None or aff == "BLOB" else 1 if aff == "TEXT" else 2
            if not_null[i] or code is not None or checks[i] is not None:
                plan.append((i, bool(not_null[i]), code, checks[i]))
        self.plan = tuple(plan)
        self.min_cols = min_cols
        self.td = td
        self.shape = shape
        self.label = label
        self.without_rowid = without_rowid
        self.defaults = defaults or {}  # column index -> default value

    def score(self, vals) -> int:
        """-1: incompatible; else the number of check hits (specificity)."""
        k = len(vals)
        if k > self.ncols or k < self.min_cols:
            return -1
        ap = self.alias_pos
        if ap is not None and ap < k and vals[ap] is not None:
            return -1
        hits = 0
        for i, nn, aff, chk in self.plan:
            if i >= k:
                break
            v = vals[i]
            if v is None:
                if nn:
                    return -1
                continue
            if aff is not None:
                tv = type(v)
                if aff == 1:
                    if tv is not str and tv is not bytes:
                        return -1
                elif tv is str and _NUMERIC_TEXT(v) is not None:
                    # SQLite would have converted numeric-looking text in a numeric column
                    return -1
            if chk is not None:
                if not chk(v):
                    return -1
                hits += 1
        return hits


def _candidate_from_tabledef(name: str, td: TableDef, shape: TableShape | None) -> _Candidate:
    order = td.record_order()
    cols = td.column_names
    checks = [None] * len(order)
    if shape is not None:
        lower = {c.lower(): i for i, c in enumerate(cols)}
        for cname, chk in shape.checks.items():
            ci = lower.get(cname.lower())
            if ci is not None and ci in order:
                checks[order.index(ci)] = _compile_check(chk)
    alias_pos = order.index(td.rowid_alias) if td.rowid_alias is not None else None
    # rows written before ALTER TABLE ADD COLUMN are shorter: allow records down to the
    # last column that has neither a default nor NULLability problems
    min_cols = len(order)
    while min_cols > 1:
        c = td.columns[order[min_cols - 1]]
        if c.not_null and c.default is NO_DEFAULT:
            break
        min_cols -= 1
    if shape is not None and shape.min_columns is not None:
        min_cols = max(1, min(min_cols, shape.min_columns))
    return _Candidate(
        name, cols, order, [td.columns[i].affinity for i in order],
        [td.columns[i].not_null for i in order], alias_pos, checks, max(1, min_cols), td=td,
        shape=shape, label=shape.label if shape is not None else None,
        without_rowid=td.without_rowid,
        defaults={i: c.default for i, c in enumerate(td.columns) if c.default is not NO_DEFAULT})


def _candidate_from_shape(name: str, shape: TableShape) -> _Candidate:
    cols = list(shape.columns)
    n = len(cols)
    lower = {c.lower(): i for i, c in enumerate(cols)}
    affs = [None] * n
    if shape.types is not None:
        affs = [affinity(t) if t is not None else None for t in shape.types][:n]
        affs += [None] * (n - len(affs))
    nn = [c in shape.not_null for c in cols]
    checks = [None] * n
    for cname, chk in shape.checks.items():
        ci = lower.get(cname.lower())
        if ci is not None:
            checks[ci] = _compile_check(chk)
    alias = lower.get(shape.rowid_alias.lower()) if shape.rowid_alias else None
    min_cols = shape.min_columns if shape.min_columns is not None else n
    defaults = {lower[k.lower()]: v for k, v in shape.defaults.items() if k.lower() in lower}
    return _Candidate(name, cols, list(range(n)), affs, nn, alias, checks, max(1, min_cols),
                      shape=shape, label=shape.label, without_rowid=shape.without_rowid,
                      defaults=defaults)


_SCHEMA_CAND = _Candidate(
    "sqlite_schema", ["type", "name", "tbl_name", "rootpage", "sql"], [0, 1, 2, 3, 4],
    ["TEXT", "TEXT", "TEXT", "INTEGER", "TEXT"], [False] * 5, None,
    [_compile_check(_SCHEMA_TYPES), None, None, _compile_check(int), None], 5)


def _normalize_shapes(shapes) -> dict[str, list[TableShape]]:
    out: dict[str, list[TableShape]] = {}
    if not shapes:
        return out
    if isinstance(shapes, Mapping):
        for name, v in shapes.items():
            if isinstance(v, TableShape):
                v = [v]
            out.setdefault(name, []).extend(v)
    else:
        for name, v in shapes:
            out.setdefault(name, []).extend([v] if isinstance(v, TableShape) else v)
    return out


# --------------------------------------------------------------------------- the salvager

class _Table:
    """Internal per-table state."""

    def __init__(self, name, columns, cand: _Candidate | None, td: TableDef | None,
                 sql=None, rootpage=None):
        self.name = name
        self.cand = cand
        self.td = td
        self.out = TableSalvage(name=name, columns=list(columns), sql=sql, rootpage=rootpage)
        if td is not None:
            self.out.without_rowid = td.without_rowid
            if td.rowid_alias is not None:
                self.out.rowid_alias = td.columns[td.rowid_alias].name
        elif cand is not None and cand.alias_pos is not None:
            self.out.rowid_alias = cand.columns[cand.order[cand.alias_pos]]
        if cand is not None:
            self.out.without_rowid = cand.without_rowid
        self.by_rowid: dict = {}
        self.keyless: list[Row] = []
        self.fin = _make_finalizer(cand, len(columns)) if cand is not None else None
        self.fin_cache: dict[int, Callable] = {}   # id(candidate) -> finalizer for other shapes
        self.values_seen: set | None = None

    def finalizer_for(self, cand: _Candidate):
        if cand is self.cand or self.cand is None:
            return self.fin
        f = self.fin_cache.get(id(cand))
        if f is None:
            # a different shape of the same table: map its columns by name
            mine = {c.lower(): i for i, c in enumerate(self.out.columns)}
            base = _make_finalizer(cand, len(cand.columns))
            idx = [mine.get(c.lower()) for c in cand.columns]
            n = len(self.out.columns)

            def f(vals, rowid, base=base, idx=idx, n=n):
                full = base(vals, rowid)
                out = [None] * n
                for j, i in enumerate(idx):
                    if i is not None:
                        out[i] = full[j]
                return tuple(out)
            self.fin_cache[id(cand)] = f
        return f

    def add(self, row: Row) -> bool:
        if row.rowid is None:
            self.keyless.append(row)
            return True
        if row.rowid in self.by_rowid:
            return False
        self.by_rowid[row.rowid] = row
        return True


def _make_finalizer(cand: _Candidate, n: int):
    """Function (record values, rowid) -> full tuple of column values in declaration order."""
    order = cand.order
    identity = order == list(range(n))
    alias = cand.order[cand.alias_pos] if cand.alias_pos is not None else None
    defaults = [cand.defaults.get(i) for i in range(n)]
    for i, d in enumerate(defaults):
        if d is NO_DEFAULT:
            defaults[i] = None
    real_cols = [ci for p, ci in enumerate(order) if cand.affs[p] == "REAL"]
    k_full = len(order)

    if identity and alias is None and not real_cols:
        def fin(vals, rowid):
            k = len(vals)
            if k == n:
                return tuple(vals)
            if k > n:
                return tuple(vals[:n])
            return tuple(vals) + tuple(defaults[k:])
        return fin

    def slow(vals, rowid):
        k = len(vals)
        if identity:
            if k == n:
                out = vals
            elif k > n:
                out = vals[:n]
            else:
                out = list(vals) + defaults[k:]
        else:
            out = list(defaults)
            for p in range(min(k, k_full)):
                out[order[p]] = vals[p]
        if alias is not None and rowid is not None:
            out[alias] = rowid
        for ci in real_cols:
            if type(out[ci]) is int:
                out[ci] = float(out[ci])
        return tuple(out)

    if identity and not real_cols:
        # the common rowid-alias case: fill the alias into the freshly decoded list
        def fin(vals, rowid):
            if len(vals) == n and rowid is not None and type(vals) is list:
                vals[alias] = rowid
                return tuple(vals)
            return slow(vals, rowid)
        return fin
    return slow


class _Timeout(Exception):
    pass


class _Salvager:
    def __init__(self, src: PageSource, dec, deadline: float, include_freelist: bool,
                 enc: str = "utf-8", errors: str = "surrogateescape"):
        self.enc = enc
        self.errors = errors
        self.src = src
        self.get = src.page
        self.usable = src.usable
        self.page_size = src.page_size
        self.npages = src.page_count
        self.dec = dec
        self.deadline = deadline
        self.include_freelist = include_freelist
        self.claimed: dict[int, str] = {}       # pgno -> owner ('table:x', 'index:x', 'overflow', ...)
        self.missing: dict[str, list[tuple]] = {}  # table -> [(lo, hi)] rowid ranges behind bad pointers
        # owners ('schema', 'table:x', 'index:x') whose b-tree walk was complete: root
        # readable, every child pointer followed to a page of the tree, no interior cell
        # unreadable. Every live page of such a tree was reached, so a page no walk reached
        # that matches it can only be stale (freed) content.
        self.complete: set[str] = set()
        self.finished: set[str] = set()   # owners whose walk ran to its end
        self.pages_stale = 0
        self.repaired_cells = 0  # cells whose payload size was wrong but whose record was whole
        self.lost: list[LostRow] = []
        self.pages_unreadable = 0
        self.timed_out = False
        self.problems: list[str] = []
        self._tick = 0

    def check_time(self) -> None:
        self._tick += 1
        if self._tick & 15 == 0 and time.monotonic() > self.deadline:
            self.timed_out = True
            raise _Timeout

    # ---------------------------------------------------------------- cell decoding
    def leaf_records(self, page, hdr: PageHeader, pgno: int, claimed_local: list[int]):
        """Decode the cells of a table-leaf page.

        Returns (records, bad, broken): records = [(rowid, values)], bad = count of
        unreadable cells, broken = [(rowid, partial values, reason)].
        """
        usable = self.usable
        if len(page) < usable:
            usable = len(page)     # the partial last page of a truncated file
        maxlocal = self.usable - 35
        max_payload = self.npages * self.usable
        enc = self.enc
        errors = self.errors
        decode_rec = decode_record
        out = []
        bad = 0
        broken = None
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            return out, hdr.cell_count, None
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        append = out.append
        for ptr in ptrs:
            if ptr < floor or ptr >= usable:
                bad += 1
                continue
            try:
                b = page[ptr]
                if b < 0x80:
                    plen = b
                    p = ptr + 1
                else:
                    b1 = page[ptr + 1]
                    if b1 < 0x80:
                        plen = ((b & 0x7F) << 7) | b1
                        p = ptr + 2
                    else:
                        plen, p = read_varint(page, ptr)
                b = page[p]
                if b < 0x80:
                    rowid = b
                    p += 1
                else:
                    b1 = page[p + 1]
                    if b1 < 0x80:
                        rowid = ((b & 0x7F) << 7) | b1
                        p += 2
                    else:
                        b2 = page[p + 2]
                        if b2 < 0x80:
                            rowid = ((b & 0x7F) << 14) | ((b1 & 0x7F) << 7) | b2
                            p += 3
                        else:
                            rowid, p = read_varint_signed(page, p)
                if plen <= maxlocal:
                    end = p + plen
                    try:
                        if end > usable:
                            raise RecordError("payload overruns the page")
                        append((rowid, decode_rec(page, p, end, enc, errors)))
                    except RecordError:
                        # A damaged payload-size varint (a bit flip) while the record itself is
                        # intact: trust the record's own header where it fits on the page, as
                        # SQLite's .recover does. Garbage rarely forms a consistent header.
                        rend = _record_end(page, p, usable)
                        append((rowid, decode_rec(page, p, rend, enc, errors)))
                        self.repaired_cells += 1
                elif plen > max_payload:
                    bad += 1
                else:
                    local = local_payload_size(plen, self.usable, True)
                    if p + local + 4 > usable:
                        bad += 1
                        continue
                    ovf = _U32.unpack_from(page, p + local)[0]
                    data, pages, complete = read_overflow(self.get, ovf, plen - local, self.usable,
                                                          self.claimed)
                    buf = page[p:p + local] + data
                    if complete and set(pages).isdisjoint(claimed_local):
                        claimed_local.extend(pages)
                        append((rowid, decode_record(buf, 0, plen, enc, errors)))
                    else:
                        if broken is None:
                            broken = []
                        broken.append((rowid, _decode_partial(buf, self.dec), "overflow chain broken"))
            except _ERRORS:
                bad += 1
        return out, bad, broken

    def index_records(self, page, hdr: PageHeader, interior: bool, decode: bool,
                      claimed_local: list[int]):
        """Cells of an index page: (children, records, bad)."""
        usable = self.usable
        lim = min(usable, len(page))
        children = []
        out = []
        bad = 0
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            return children, out, hdr.cell_count
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        maxlocal = ((usable - 12) * 64 // 255) - 23
        for ptr in ptrs:
            if ptr < floor or ptr >= usable:
                bad += 1
                continue
            try:
                p = ptr
                if interior:
                    children.append(_U32.unpack_from(page, p)[0])
                    p += 4
                plen, p = read_varint(page, p)
                if plen <= maxlocal:
                    end = p + plen
                    if end > lim:
                        bad += 1
                        continue
                    out.append(decode_record(page, p, end, self.enc, self.errors) if decode else None)
                elif plen > self.npages * usable:
                    bad += 1
                else:
                    local = local_payload_size(plen, usable, False)
                    if p + local + 4 > lim:
                        bad += 1
                        continue
                    ovf = _U32.unpack_from(page, p + local)[0]
                    data, pages, complete = read_overflow(self.get, ovf, plen - local, usable,
                                                          self.claimed)
                    if not complete or not set(pages).isdisjoint(claimed_local):
                        bad += 1
                        continue
                    claimed_local.extend(pages)
                    out.append(decode_record(page[p:p + local] + data, 0, plen, self.enc, self.errors)
                               if decode else None)
            except _ERRORS:
                bad += 1
        return children, out, bad

    # ---------------------------------------------------------------- b-tree walks
    def walk_table(self, root: int, owner: str, cand: "_Candidate | None", table_name: str,
                   on_rows: Callable, counters: TableSalvage | None):
        """Walk a rowid-table b-tree; on_rows(pgno, records) is called per accepted leaf."""
        claimed = self.claimed
        get = self.get
        usable = self.usable
        stack = [(root, None, None)]
        first = True
        complete = True
        while stack:
            self.check_time()
            pg, lo, hi = stack.pop()
            is_root = first
            first = False
            page = get(pg) if pg not in claimed else None
            hdr = parse_page_header(page, pg, usable, strict=False) if page is not None else None
            if hdr is None or not hdr.is_table:
                if pg not in claimed:
                    self.pages_unreadable += 1
                self.missing.setdefault(table_name, []).append((lo, hi))
                complete = False
                if counters is not None:
                    counters.missing_subtrees += 1
                continue
            if hdr.page_type == PAGE_TABLE_INTERIOR:
                claimed[pg] = owner
                if counters is not None:
                    counters.pages += 1
                try:
                    ptrs = cell_pointers(page, hdr)
                except struct.error:
                    ptrs = ()
                kids = []
                prev = lo
                floor = hdr.header_offset + 12 + 2 * hdr.cell_count
                lost_from = False     # after an unreadable cell: the lower bound of its rowids
                if len(ptrs) != hdr.cell_count:
                    complete = False
                    lost_from = lo
                for ptr in ptrs:
                    if ptr < floor or ptr + 5 > usable:
                        if lost_from is False:
                            lost_from = prev
                        complete = False
                        if counters is not None:
                            counters.unreadable_cells += 1
                        continue
                    try:
                        child = _U32.unpack_from(page, ptr)[0]
                        key, _ = read_varint_signed(page, ptr + 4)
                    except _ERRORS:
                        if lost_from is False:
                            lost_from = prev
                        complete = False
                        if counters is not None:
                            counters.unreadable_cells += 1
                        continue
                    if lost_from is not False:
                        # the lost children's rows lie between the readable keys around them
                        self.missing.setdefault(table_name, []).append((lost_from, key))
                        lost_from = False
                    kids.append((child, prev, key))
                    prev = key
                if lost_from is not False:
                    self.missing.setdefault(table_name, []).append((lost_from, hi))
                kids.append((hdr.right_child, prev, hi))
                for k in reversed(kids):
                    if 1 <= k[0] <= self.npages:
                        stack.append(k)
                    else:
                        self.missing.setdefault(table_name, []).append((k[1], k[2]))
                        complete = False
                        if counters is not None:
                            counters.missing_subtrees += 1
                continue
            # leaf
            local: list[int] = []
            recs, bad, broken = self.leaf_records(page, hdr, pg, local)
            if not is_root and recs and not self._leaf_fits(recs, lo, hi, cand):
                # the pointer led to somebody else's page: leave it to the orphan scan
                self.missing.setdefault(table_name, []).append((lo, hi))
                complete = False
                if counters is not None:
                    counters.missing_subtrees += 1
                continue
            claimed[pg] = owner
            for o in local:
                claimed[o] = "overflow"
            if counters is not None:
                counters.pages += 1
                counters.unreadable_cells += bad
            if broken:
                for rowid, vals, why in broken:
                    self.lost.append(LostRow(pg, rowid, tuple(vals), "btree", why, table_name))
            if recs:
                on_rows(pg, recs)
        self.finished.add(owner)
        if complete:
            self.complete.add(owner)

    @staticmethod
    def _leaf_fits(recs, lo, hi, cand) -> bool:
        """Does a leaf reached through a child pointer belong there? Its rowids must lie in
        the pointer's key range and its records fit the table (first and last sampled)."""
        n = len(recs)
        bad = 0
        ncols_max = cand.ncols if cand is not None else None
        for rowid, vals in recs:
            if (lo is not None and rowid <= lo) or (hi is not None and rowid > hi) or \
                    (ncols_max is not None and len(vals) > ncols_max):
                bad += 1
        if bad * 2 > n:
            return False
        if cand is not None and cand.score(recs[0][1]) < 0 and cand.score(recs[-1][1]) < 0:
            return False
        return True

    def walk_index(self, root: int, owner: str, decode: bool, on_records: Callable | None,
                   counters) -> None:
        """Walk an index b-tree (or a WITHOUT ROWID table): count, validate, optionally decode."""
        claimed = self.claimed
        stack = [root]
        complete = True
        while stack:
            self.check_time()
            pg = stack.pop()
            page = self.get(pg) if pg not in claimed else None
            hdr = parse_page_header(page, pg, self.usable, strict=False) if page is not None else None
            if hdr is None or hdr.is_table:
                if pg not in claimed:
                    self.pages_unreadable += 1
                counters.missing_subtrees += 1
                complete = False
                continue
            claimed[pg] = owner
            counters.pages += 1
            interior = hdr.page_type == PAGE_INDEX_INTERIOR
            local: list[int] = []
            kids, recs, bad = self.index_records(page, hdr, interior, decode, local)
            for o in local:
                claimed[o] = "overflow"
            counters.unreadable_cells += bad
            if isinstance(counters, IndexSalvage):
                counters.entries += len(recs)
            if on_records is not None and recs:
                on_records(pg, recs)
            if interior:
                if bad or len(kids) != hdr.cell_count:
                    complete = False        # a child pointer could not be read
                kids.append(hdr.right_child)
                for k in reversed(kids):
                    if 1 <= k <= self.npages:
                        stack.append(k)
                    else:
                        counters.missing_subtrees += 1
                        complete = False
        if complete:
            self.complete.add(owner)


def _decode_partial(buf, dec) -> list:
    """Best-effort decode of a truncated record: values that fit, None for the rest."""
    out = []
    try:
        hlen, p = read_varint(buf, 0)
        hlen = min(hlen, len(buf))
        off = hlen
        n = len(buf)
        while p < hlen:
            t, p = read_varint(buf, p)
            if t >= 12:
                size = (t - 12) >> 1
                if off + size <= n:
                    out.append(dec(buf[off:off + size]) if t & 1 else bytes(buf[off:off + size]))
                else:
                    out.append(None)
                off += size
            elif t in (8, 9):
                out.append(t - 8)
            elif t == 0:
                out.append(None)
            elif t == 7:
                out.append(struct.unpack_from(">d", buf, off)[0] if off + 8 <= n else None)
                off += 8
            elif t <= 6:
                size = (0, 1, 2, 3, 4, 6, 8)[t]
                out.append(int.from_bytes(buf[off:off + size], "big", signed=True)
                           if off + size <= n else None)
                off += size
            else:
                break
    except _ERRORS:
        pass
    return out


# --------------------------------------------------------------------------- page-size guessing

def _guess_page_size(data, wal: WalIndex | None) -> tuple[int, list[str]]:
    if wal is not None and wal.summary.header_valid:
        return wal.page_size, ["page size taken from the WAL header"]
    best = None
    scores = {}
    size = len(data)
    for ps in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
        n = -(-size // ps)
        if n < 1:
            continue
        hits = 0
        step = max(1, n // 4000)
        for pg in range(1, n + 1, step):
            page = data[(pg - 1) * ps:pg * ps]
            h = parse_page_header(page, pg, ps, strict=True)
            if h is not None and h.cell_count:
                try:
                    ptrs = cell_pointers(page, h)
                except struct.error:
                    continue
                if all(h.content_start <= x < ps for x in ptrs):
                    hits += 1
        scores[ps] = hits * step
    if scores:
        top = max(scores.values())
        if top > 0:
            best = min(ps for ps, v in scores.items() if v == top)
    if best is None:
        return 4096, ["page size unknown; assumed 4096"]
    return best, [f"page size guessed as {best} from the page layout"]


def _guess_encoding(data) -> str:
    head = bytes(data[:1 << 20])
    le = head.count(b"C\x00R\x00E\x00A\x00T\x00E\x00")
    be = head.count(b"\x00C\x00R\x00E\x00A\x00T\x00E")
    u8 = head.count(b"CREATE")
    if le > u8 and le >= be:
        return "utf-16-le"
    if be > u8:
        return "utf-16-be"
    return "utf-8"


# --------------------------------------------------------------------------- main entry

def salvage(db_path, wal_path=None, *, include_freelist: bool = False, time_limit: float = 60.0,
            shapes=None) -> SalvageResult:
    """Read every row that can be read from ``db_path`` (and its WAL).

    ``wal_path``: None looks for ``<db_path>-wal`` beside the file; False ignores any WAL;
    a path uses that file. ``shapes``: mapping table name -> TableShape or a sequence of
    them (legacy layouts), used to match pages whose table is not known from the schema.
    ``include_freelist``: also return rows found on freelist pages (and on freed pages the
    freelist no longer lists: unreached pages of a table whose b-tree walk was complete) and
    in freeblocks / unallocated space of table pages, marked source='freelist' / 'freeblock'.
    Only an unopenable ``db_path`` raises (OSError).
    """
    t0 = time.monotonic()
    deadline = t0 + max(0.0, float(time_limit))
    db_path = os.fspath(db_path)
    data = _map_file(db_path)          # the one exception allowed out: cannot open the file
    problems: list[str] = []
    header = None
    header_problems: list[str] = []
    if len(data) >= 100:
        try:
            header = DbHeader.parse(bytes(data[:100]))
            header_problems = header.problems(len(data))
        except _ERRORS:
            header = None
    else:
        header_problems = [f"file has only {len(data)} bytes (no database header)"]

    wal: WalIndex | None = None
    wal_sum: WalSummary | None = None
    if wal_path is None:
        cand = db_path + "-wal"
        if os.path.exists(cand) and os.path.getsize(cand) > 0:
            wal_path = cand
    if wal_path:
        try:
            wal = read_wal(wal_path, db_path)
            wal_sum = wal.summary
        except (OSError, *_ERRORS) as e:
            problems.append(f"WAL unreadable: {e}")
            wal = None

    if header is not None and header.page_size_valid and \
            not (wal is not None and wal.summary.header_valid and wal.page_size != header.page_size
                 and header.magic != MAGIC):
        page_size = header.page_size
    else:
        page_size, notes = _guess_page_size(data, wal)
        problems.extend(notes)
    reserved = 0
    if header is not None and header.page_size_valid and header.page_size == page_size and \
            0 <= header.reserved_bytes and page_size - header.reserved_bytes >= 480:
        reserved = header.reserved_bytes
    encoding = header.encoding if header is not None else None
    if encoding is None:
        encoding = _guess_encoding(data)
        problems.append(f"text encoding unknown; guessed {encoding}")
    dec = text_decoder(encoding)
    enc, errors = text_codec(encoding)

    src = PageSource(data, page_size, reserved, wal)
    if src.wal is not None and src.is_wal_page(1):
        # the committed page 1 in the WAL carries the current header (freelist, counts)
        try:
            wal_hdr = DbHeader.parse(src.page(1)[:100])
            if wal_hdr.page_size == page_size and not [p for p in wal_hdr.problems() if "magic" not in p]:
                header = wal_hdr
                header_problems = header.problems()
        except _ERRORS:
            pass
    sv = _Salvager(src, dec, deadline, include_freelist, enc, errors)
    if wal is not None and src.wal is None and wal.offsets:
        problems.append("WAL page size differs from the database; WAL ignored")

    tables: dict[str, _Table] = {}
    indexes: dict[str, IndexSalvage] = {}
    schema: list[SchemaEntry] = []
    shape_map = _normalize_shapes(shapes)
    freelist = None
    ptrmaps: set[int] = set()
    header_trusted = header is not None and header.page_size_valid and header.page_size == page_size
    sv.claimed[pending_byte_page(page_size)] = "pending-byte"

    def setup():
        nonlocal freelist, ptrmaps
        # pointer-map pages (auto-vacuum)
        if header_trusted and header.largest_root_page:
            ptrmaps = ptrmap_pages(src.page_count, src.usable, page_size)
            for p in ptrmaps:
                sv.claimed[p] = "ptrmap"
        # freelist
        if header_trusted and header.freelist_trunk:
            freelist = walk_freelist(src.page, header.freelist_trunk, src.page_count, src.usable,
                                     header.freelist_count)
            if freelist.problems:
                problems.extend(freelist.problems)

    def schema_phase():
        _read_schema(sv, schema)
        _setup_tables(sv, schema, shape_map, tables, indexes)

    phases = [("header", setup), ("schema", schema_phase),
              ("b-tree walk", lambda: _walk_all(sv, schema, tables, indexes)),
              ("orphan scan", lambda: _orphans(sv, schema, shape_map, tables, indexes, freelist,
                                               ptrmaps, header))]
    if include_freelist:
        phases.append(("freeblock carving", lambda: _carve_freeblocks(sv, tables)))
    for phase, fn in phases:
        try:
            fn()
        except _Timeout:
            problems.append(f"time limit of {time_limit}s reached during {phase}; result is partial")
            break
        except RecursionError:
            problems.append(f"recursion limit reached during {phase}; result is partial")
        except Exception as e:   # garbage must never take the whole salvage down
            problems.append(f"{phase} stopped by {type(e).__name__}: {e}; result is partial")

    out_tables: dict[str, TableSalvage] = {}
    for name, t in tables.items():
        rows = list(t.by_rowid.values()) + t.keyless
        t.out.rows = rows
        t.out.orphan_rows = sum(1 for r in rows if r.source == "orphan")
        t.out.freelist_rows = sum(1 for r in rows if r.source == "freelist")
        t.out.freeblock_rows = sum(1 for r in rows if r.source == "freeblock")
        out_tables[name] = t.out
    res = SalvageResult(
        path=db_path, header=header, header_problems=header_problems, encoding=encoding,
        page_size=page_size, usable_size=src.usable, schema=schema, tables=out_tables,
        indexes=indexes, lost_and_found=sv.lost, wal=wal_sum, pages_total=src.page_count,
        pages_unreadable=sv.pages_unreadable,
        pages_orphan=sum(1 for v in sv.claimed.values() if v.startswith("orphan")),
        timed_out=sv.timed_out, elapsed=time.monotonic() - t0, freelist=freelist,
        problems=problems + sv.problems, pages_stale=sv.pages_stale, cells_repaired=sv.repaired_cells)
    src.close()
    return res


# --------------------------------------------------------------------------- phases

def _schema_rows_to_entries(recs, pgno, source, schema, seen_names):
    for rowid, vals in recs:
        if len(vals) < 5:
            continue
        typ, name, tbl, root, sql = vals[:5]
        if not (isinstance(typ, str) and typ in _SCHEMA_TYPES and isinstance(name, str)):
            continue
        if name in seen_names:
            continue
        if not isinstance(root, int):
            root = 0
        seen_names.add(name)
        schema.append(SchemaEntry(typ, name, tbl if isinstance(tbl, str) else name, root,
                                  sql if isinstance(sql, str) else None, source, pgno))


def _read_schema(sv: _Salvager, schema: list[SchemaEntry]) -> None:
    seen: set[str] = set()

    def on_rows(pg, recs):
        _schema_rows_to_entries(recs, pg, "btree", schema, seen)

    sv.walk_table(1, "schema", _SCHEMA_CAND, "sqlite_schema", on_rows, None)


def _setup_tables(sv, schema, shape_map, tables, indexes) -> None:
    for e in schema:
        if e.name in tables or e.name in indexes:
            continue
        if e.type == "table":
            if e.name in ("sqlite_schema", "sqlite_master"):
                continue
            td = parse_create_table(e.sql or "")
            if td is None or td.virtual:
                if td is None and e.rootpage and e.sql is None:
                    sv.problems.append(f"table {e.name!r} has no CREATE statement")
                continue
            shape = None
            for s in shape_map.get(e.name, ()):
                if [c.lower() for c in s.columns] == [td.columns[i].name.lower() for i in td.record_order()]:
                    shape = s
                    break
            cand = _candidate_from_tabledef(e.name, td, shape)
            t = _Table(e.name, td.column_names, cand, td, e.sql, e.rootpage)
            if shape is not None:
                t.out.shape = shape.label
            tables[e.name] = t
        elif e.type == "index" and e.rootpage:
            indexes[e.name] = IndexSalvage(e.name, e.tbl_name, e.rootpage)


def _add_btree_rows(t: _Table, source: str):
    fin = t.fin
    by_rowid = t.by_rowid
    ncols = len(t.out.columns)
    tnew = _tnew

    def on_rows(pg, recs):
        for rowid, vals in recs:
            if rowid not in by_rowid:
                if len(vals) > ncols:
                    t.out.overlong_records += 1
                by_rowid[rowid] = tnew(Row, (rowid, fin(vals, rowid), source, pg))
    return on_rows


def _add_wr_rows(t: _Table, source: str):
    fin = t.fin

    def on_records(pg, recs):
        for vals in recs:
            if vals is not None:
                t.keyless.append(Row(None, fin(vals, None), source, pg))
    return on_records


def _walk_all(sv: _Salvager, schema, tables, indexes) -> None:
    roots_done: set[int] = set()
    for e in schema:
        if not e.rootpage or e.rootpage in roots_done:
            continue
        if e.type == "table" and e.name in tables:
            t = tables[e.name]
            roots_done.add(e.rootpage)
            if t.out.without_rowid:
                sv.walk_index(e.rootpage, "table:" + e.name, True, _add_wr_rows(t, "btree"), t.out)
            else:
                sv.walk_table(e.rootpage, "table:" + e.name, t.cand, e.name,
                              _add_btree_rows(t, "btree"), t.out)
        elif e.type == "index" and e.name in indexes:
            roots_done.add(e.rootpage)
            sv.walk_index(e.rootpage, "index:" + e.name, False, None, indexes[e.name])


def _candidates(tables: dict[str, _Table], shape_map) -> list[_Candidate]:
    out = [_SCHEMA_CAND]
    for t in tables.values():
        if t.cand is not None and t.td is not None:
            out.append(t.cand)
    for name, shapes in shape_map.items():
        t = tables.get(name)
        for s in shapes:
            if t is not None and t.td is not None:
                if t.cand.shape is s:
                    continue
                # the schema knows this table: a legacy shape with other columns does not apply
                if [c.lower() for c in s.columns] != [c.lower() for c in t.out.columns]:
                    continue
            out.append(_candidate_from_shape(name, s))
    return out


def _orphans(sv: _Salvager, schema, shape_map, tables, indexes, freelist, ptrmaps, header) -> None:
    claimed = sv.claimed
    # pages listed by freelist trunks that looked sane (walk_freelist rejects insane
    # trunks, so a garbage trunk lists nothing and hides no live page)
    free_pages: set[int] = set()
    if freelist is not None:
        free_pages = freelist.pages
        for p in freelist.trunks:
            claimed.setdefault(p, "freelist-trunk")
    # 1. find every b-tree page no walk reached
    leaves: dict[int, tuple] = {}        # pgno -> (hdr, page, source)
    interiors: dict[int, tuple] = {}
    index_pages: dict[int, tuple] = {}
    usable = sv.usable
    get = sv.get
    for pg in range(1, sv.npages + 1):
        if pg in claimed:
            continue
        if pg in free_pages and not sv.include_freelist:
            continue
        sv.check_time()
        page = get(pg)
        if page is None:
            continue
        t = page[100 if pg == 1 else 0]
        if t not in (2, 5, 10, 13):
            continue
        hdr = parse_page_header(page, pg, usable, strict=True)
        if hdr is None:
            continue
        source = "freelist" if pg in free_pages else "orphan"
        if hdr.page_type == PAGE_TABLE_LEAF:
            if hdr.cell_count:
                leaves[pg] = (hdr, page, source)
        elif hdr.page_type == PAGE_TABLE_INTERIOR:
            interiors[pg] = (hdr, page, source)
        else:
            index_pages[pg] = (hdr, page, source)

    # 2. b-tree structure among orphans: group pages under orphan interior pages
    parent: dict[int, int] = {}
    for pg, (hdr, page, _src) in interiors.items():
        try:
            ptrs = cell_pointers(page, hdr)
            kids = [_U32.unpack_from(page, p)[0] for p in ptrs if p + 4 <= usable]
        except struct.error:
            kids = []
        kids.append(hdr.right_child)
        for k in kids:
            if (k in leaves or k in interiors) and k not in parent and k != pg:
                parent[k] = pg

    def group_of(pg):
        seen = set()
        while pg in parent and pg not in seen:
            seen.add(pg)
            pg = parent[pg]
        return pg

    # ptrmap: the parent chain up to a page a walk claimed tells the owning table
    ptr_owner: dict[int, str] = {}
    if ptrmaps and header is not None:
        for pg in leaves:
            owner = _ptrmap_owner(sv, pg, ptrmaps)
            if owner is not None and owner.startswith("table:"):
                ptr_owner[pg] = owner[6:]

    # 3. decode the orphan leaves
    decoded: dict[int, tuple] = {}
    for pg, (hdr, page, source) in leaves.items():
        sv.check_time()
        local: list[int] = []
        recs, bad, broken = sv.leaf_records(page, hdr, pg, local)
        if not recs and not broken:
            continue
        decoded[pg] = (recs, bad, broken, source, local)

    # 4. schema rows on orphan pages (page 1 or a schema interior page destroyed)
    schema_pages = []
    seen_names = {e.name for e in schema}
    schema_score = _SCHEMA_CAND.score
    for pg, (recs, bad, broken, source, local) in decoded.items():
        if source != "orphan" or not recs:
            continue
        good = 0
        misses_left = (len(recs) - 1) // 2     # more misses than this: not a majority
        for _r, v in recs:
            if len(v) == 5 and schema_score(v) >= 1 and \
                    (v[4] is None or (isinstance(v[4], str) and v[4].lstrip()[:6].upper() == "CREATE")):
                good += 1
            else:
                misses_left -= 1
                if misses_left < 0:
                    break
        if good * 2 > len(recs):
            schema_pages.append(pg)
    if schema_pages and "schema" in sv.complete:
        # sqlite_schema was read completely: these are freed schema pages (dropped objects)
        for pg in schema_pages:
            recs, _bad, _broken, _source, _local = decoded.pop(pg)
            _stale_page(sv, pg, "sqlite_schema")
            if sv.include_freelist:
                for rowid, vals in recs:
                    sv.lost.append(LostRow(pg, rowid, tuple(vals), "freelist",
                                           "stale sqlite_schema page", "sqlite_schema"))
        schema_pages = []
    if schema_pages:
        before = len(schema)
        for pg in sorted(schema_pages):
            recs = decoded.pop(pg)[0]
            claimed[pg] = "schema-orphan"
            _schema_rows_to_entries(recs, pg, "orphan", schema, seen_names)
        new = schema[before:]
        if new:
            sv.problems.append(f"{len(new)} schema entries recovered from orphan pages")
            known = set(tables) | set(indexes)
            _setup_tables(sv, new, shape_map, tables, indexes)
            # walk the new tables from their roots when those pages are still unclaimed
            walk_new = [e for e in new if e.name not in known and e.rootpage and
                        e.rootpage not in claimed]
            if walk_new:
                _walk_all(sv, walk_new, tables, indexes)
                for pg in list(decoded):
                    if pg in claimed:
                        del decoded[pg]
                for pg in list(interiors):
                    if pg in claimed:
                        del interiors[pg]

    # 5. index pages no walk reached: rows of WITHOUT ROWID tables, otherwise just counted
    wr_tables = [t for t in tables.values() if t.out.without_rowid and t.cand is not None]
    for pg, (hdr, page, source) in index_pages.items():
        if pg in claimed:
            continue
        claimed[pg] = "orphan-index"
        if not wr_tables:
            continue
        local: list[int] = []
        _kids, recs, bad = sv.index_records(page, hdr, hdr.page_type == PAGE_INDEX_INTERIOR, True, local)
        recs = [r for r in recs if r is not None]
        if not recs:
            continue
        best = None
        for t in wr_tables:
            ok = sum(1 for v in recs if t.cand.score(v) >= 0)
            if ok * 2 > len(recs) and (best is None or ok > best[0]):
                best = (ok, t)
        if best is None:
            continue
        t = best[1]
        src_name = "freelist" if source == "freelist" else "orphan"
        if "table:" + t.name in sv.complete:
            # the table's tree was read completely: a freed page of it (stale content)
            _stale_page(sv, pg, t.name)
            if not sv.include_freelist:
                continue
            src_name = "freelist"
            live = {r.values for r in t.keyless if r.source == "btree"}
        else:
            live = ()
        for o in local:
            claimed[o] = "overflow"
        for v in recs:
            if t.cand.score(v) >= 0:
                row = Row(None, t.fin(v, None), src_name, pg)
                if row.values not in live:
                    t.keyless.append(row)
            else:
                sv.lost.append(LostRow(pg, None, tuple(v), source, "record does not fit its page's table", t.name))

    # 6. match orphan table leaves to tables
    cands = [c for c in _candidates(tables, shape_map) if c is not _SCHEMA_CAND and not c.without_rowid]
    complete = {name for name in tables if "table:" + name in sv.complete}
    # tables that may have live pages of any rowid range among the orphans (a walk that ended
    # knows the rowid range of everything it lost): in the schema but never walked to the
    # end; known only by shape while the schema itself was not read completely (a table
    # missing from a completely read schema was dropped, or never existed)
    schema_complete = "schema" in sv.complete
    open_ended = set()
    for c in cands:
        if "table:" + c.table in sv.finished:
            continue
        t = tables.get(c.table)
        if (t is not None and t.td is not None) or not schema_complete:
            open_ended.add(c.table)
    group_table: dict[int, str] = {}
    # decide pages with structural evidence first, then by records
    order = sorted(decoded, key=lambda p: (p not in ptr_owner, decoded[p][3] == "freelist", p))
    for pg in order:
        sv.check_time()
        recs, bad, broken, source, local = decoded[pg]
        grp = group_of(pg)
        cand = None
        owner = ptr_owner.get(pg)
        stale_tie = stale = False
        if owner is not None and owner in tables and tables[owner].cand is not None:
            c = tables[owner].cand
            if sum(1 for _r, v in recs if c.score(v) >= 0) * 2 >= len(recs):
                cand = c
        if cand is None:
            cand, stale_tie = _pick_candidate(sv, cands, recs, group_table.get(grp), complete,
                                              open_ended)
        if cand is None and stale_tie and source == "orphan":
            # as good a match for several tables, all read completely: stale either way
            stale = True
            _stale_page(sv, pg, None)
            if not sv.include_freelist:
                continue
            source = "freelist"
        if cand is None:
            for rowid, vals in recs:
                sv.lost.append(LostRow(pg, rowid, tuple(vals), source, "no matching table"))
            if broken:
                for rowid, vals, why in broken:
                    sv.lost.append(LostRow(pg, rowid, tuple(vals), source, why))
            if not stale:
                claimed[pg] = "orphan-unmatched"
            continue
        group_table.setdefault(grp, cand.table)
        if cand.table in complete and source == "orphan":
            # every live leaf of this table was reached by its walk: this page was freed and
            # kept its old cells (a freelist the file no longer lists, e.g. a garbage trunk)
            stale = True
            _stale_page(sv, pg, cand.table)
            if not sv.include_freelist:
                continue
            source = "freelist"
        t = tables.get(cand.table)
        if t is None:
            t = _Table(cand.table, cand.columns, cand, None,
                       cand.shape.create_sql if cand.shape is not None else None, None)
            t.out.shape = cand.label
            tables[cand.table] = t
        if not stale:
            claimed[pg] = "orphan:" + cand.table
        for o in local:
            claimed[o] = "overflow"
        t.out.unreadable_cells += bad
        fin = t.finalizer_for(cand)
        src_name = "freelist" if source == "freelist" else "orphan"
        score = cand.score
        by_rowid = None if cand.without_rowid else t.by_rowid
        for rowid, vals in recs:
            if score(vals) < 0:
                sv.lost.append(LostRow(pg, rowid, tuple(vals), source,
                                       "record does not fit its page's table", cand.table))
                continue
            # as t.add(): the first row seen for a rowid wins (b-tree rows were added first)
            if by_rowid is None:
                t.keyless.append(_tnew(Row, (None, fin(vals, rowid), src_name, pg)))
            elif rowid not in by_rowid:
                by_rowid[rowid] = _tnew(Row, (rowid, fin(vals, rowid), src_name, pg))
        if broken:
            for rowid, vals, why in broken:
                sv.lost.append(LostRow(pg, rowid, tuple(vals), source, why, cand.table))


def _ptrmap_owner(sv: _Salvager, pg: int, ptrmaps: set[int]) -> str | None:
    seen = set()
    cur = pg
    for _ in range(64):
        if cur in seen:
            return None
        seen.add(cur)
        mp = ptrmap_page_for(cur, sv.usable, sv.page_size)
        if mp not in ptrmaps:
            return None
        page = sv.get(mp)
        if page is None:
            return None
        i = cur - mp - 1
        if i < 0 or (i + 1) * 5 > sv.usable:
            return None
        typ, par = struct.unpack_from(">BI", page, i * 5)
        if typ != 5 or par == 0:       # 5 = PTRMAP_BTREE: a non-root b-tree page
            return None
        owner = sv.claimed.get(par)
        if owner is not None:
            return owner
        cur = par
    return None


def _stale_page(sv: _Salvager, pg: int, table: str | None) -> None:
    """Count a page no walk reached whose records belong to a completely walked tree."""
    sv.pages_stale += 1
    sv.claimed[pg] = "stale:" + (table or "?")


_PICK_PROBE = 2      # records of a page's sample scored against every candidate first


def _pick_candidate(sv: _Salvager, cands: list[_Candidate], recs, group_hint: str | None,
                    complete: set[str] = frozenset(), open_ended: set[str] = frozenset()):
    """The candidate whose shape the page's records fit best: (candidate, stale_tie).

    A candidate must fit a majority of a sample of the records. Among those the ranking key
    is: records fitting, the orphan group's table, then a table that can have live pages
    with these rowids that its walk did not reach: the rowid range lies behind one of its
    broken pointers or unreadable interior cells, or its walk never ended (``open_ended``).
    So a page that fits a completely read table as well as one that lost pages in that
    rowid range goes to the latter: the former has all its live pages. Then full-length
    records, check hits, a schema table. A tie between tables gives None (lost_and_found
    rather than a guess); ``stale_tie`` is True when every table in the tie was read
    completely (the page is stale whichever it is).

    Cheap, with the same answer as scoring the whole sample against every candidate: the
    first few sampled records are scored against every candidate, giving each an upper
    bound of its key (records fitting at most: sample less the probe's misses; full-length
    records and check hits at most what the remaining records could give). Candidates are
    then scored in full best bound first, until a bound falls below the best key found.
    On a page whose first records decide the table, only that table's best shape is
    scored against the rest of the sample.
    """
    if not cands:
        return None, False
    sample = recs if len(recs) <= 12 else recs[:6] + recs[-6:]
    n = len(sample)
    need = n // 2 + 1                      # ok * 2 > n
    probe = sample[:_PICK_PROBE]
    rest = sample[_PICK_PROBE:]
    nrest = len(rest)
    staged = []
    for i, c in enumerate(cands):
        score = c.score
        ok = exact = hits = 0
        for _rowid, vals in probe:
            sc = score(vals)
            if sc >= 0:
                ok += 1
                hits += sc
                if len(vals) == c.ncols:
                    exact += 1
        if ok + nrest >= need:
            staged.append((-(ok + nrest), i, ok, exact, hits, c))
    staged.sort()                          # most records possibly fitting first, then candidate order
    lo = hi = None
    best_key = None
    best = []
    for neg_ub, i, ok, exact, hits, c in staged:
        ub = -neg_ub
        if best_key is not None and ub < best_key[0]:
            break                          # neither this one nor any after can win or tie
        table = c.table
        gaps = sv.missing.get(table)
        in_gap = False
        if gaps:
            if lo is None:
                lo = min(r for r, _v in recs)
                hi = max(r for r, _v in recs)
            in_gap = any((a is None or lo > a) and (b is None or hi <= b) for a, b in gaps)
        head = (ub, table == group_hint, in_gap, table in open_ended)
        td = c.td is not None
        ncols = c.ncols
        if best_key is not None and ub == best_key[0]:
            if head < best_key[:4]:
                continue
            if head == best_key[:4]:
                # as good so far: bound full-length records and check hits by what the rest
                # of the sample could give
                cp = c.check_pos
                more_exact = sum(1 for _r, v in rest if len(v) == ncols)
                more_hits = sum(1 for _r, v in rest for j in cp if j < len(v) and v[j] is not None)
                if (*head, exact + more_exact, hits + more_hits, td) < best_key:
                    continue
        score = c.score
        for _rowid, vals in rest:
            sc = score(vals)
            if sc >= 0:
                ok += 1
                hits += sc
                if len(vals) == ncols:
                    exact += 1
        if ok < need:
            continue
        key = (ok, *head[1:], exact, hits, td)
        if best_key is None or key > best_key:
            best_key = key
            best = [(i, c)]
        elif key == best_key:
            best.append((i, c))
    if not best:
        return None, False
    tied = {c.table for _i, c in best}
    if len(tied) > 1:
        return None, tied <= complete      # ambiguous between tables: lost_and_found rather than a guess
    return min(best, key=itemgetter(0))[1], False   # the first in candidate order, as before


def _carve_freeblocks(sv: _Salvager, tables: dict[str, _Table]) -> None:
    """Rows in freeblocks and unallocated space of table-leaf pages (include_freelist=True)."""
    by_owner = {}
    for name, t in tables.items():
        if t.cand is not None and not t.out.without_rowid:
            by_owner["table:" + name] = t
            by_owner["orphan:" + name] = t
            by_owner["stale:" + name] = t
    for pg, owner in list(sv.claimed.items()):
        t = by_owner.get(owner)
        if t is None:
            continue
        sv.check_time()
        page = sv.get(pg)
        if page is None:
            continue
        hdr = parse_page_header(page, pg, sv.usable, strict=False)
        if hdr is None or hdr.page_type != PAGE_TABLE_LEAF:
            continue
        lim = min(sv.usable, len(page))
        try:
            regions = [(o + 4, min(o + s, lim)) for o, s in freeblocks(page, hdr, lim)]
        except _ERRORS:
            regions = []
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        if hdr.content_start > floor:
            regions.append((floor, min(hdr.content_start, lim)))
        live = {r.values for r in t.by_rowid.values()} if regions else None
        for a, b in regions:
            try:
                carved = _carve_region(page, a, b, t.cand, sv.enc, sv.errors)
            except _ERRORS:
                carved = []
            for vals in carved:
                row = Row(None, t.fin(vals, None), "freeblock", pg)
                if row.values in live:
                    continue
                live.add(row.values)
                t.keyless.append(row)


def _carve_region(page, a: int, b: int, cand: _Candidate, enc: str, errors: str) -> list:
    """Records of ``cand``'s shape whose header starts inside [a, b) and that end by b."""
    out = []
    n = cand.ncols
    s = a
    while s < b - 1:
        found = None
        hl = page[s]
        if n + 1 <= hl <= 2 * n + 9 and s + hl <= b:
            try:
                vals = decode_record(page, s, _record_end(page, s, b), enc, errors)
            except _ERRORS:
                vals = None
            if vals is not None and len(vals) == n and cand.score(vals) >= 0 and \
                    any(v is not None for v in vals) and _plausible_text(vals):
                found = vals
        if found is not None:
            out.append(found)
            s = _record_end(page, s, b)
        else:
            s += 1
    return out


_CTRL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]").search


def _plausible_text(vals) -> bool:
    """Carving heuristic: text of a real row decodes cleanly and has no control characters."""
    for v in vals:
        if type(v) is str and _CTRL_CHARS(v) is not None:
            return False
    return True


def _record_end(page, s: int, b: int) -> int:
    hlen, p = read_varint(page, s)
    end = s + hlen
    total = hlen
    while p < end:
        t, p = read_varint(page, p)
        if t >= 12:
            total += (t - 12) >> 1
        elif t < 10:
            total += (0, 1, 2, 3, 4, 6, 8, 8, 0, 0)[t]
        else:
            raise RecordError("reserved serial type")
    if s + total > b:
        raise RecordError("record overruns region")
    return s + total
