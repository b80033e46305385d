"""The state of one salvage and the b-tree walks over it.

One module (over 600 lines) because the walks and the state they update are one piece: every
walk reads and claims pages through the same object.

:class:`Salvager` is the one state object every phase works on (as the named states of
SQLite's ``sqlite3recover.c`` share one recover object): the page source, which page belongs to
what, the tables and their row streams, what was lost. A table's walk reads its leaves
structurally (cell bounds, rowids, overflow chains) and keeps runs of clean leaves as page lists
to be decoded on demand or copied by SQLite; only leaves that are not clean are decoded now.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable

from .fileformat import (OVERFLOW_POINTER_SIZE, PAGE_INDEX_INTERIOR, PAGE_TABLE_INTERIOR,
                         PageHeader, RecordError, cell_pointers, decode_record, decode_record_partial, decode_record_prefix,
                         local_payload_size, max_local, parse_page_header, read_overflow, read_varint,
                         read_varint_signed, record_end)
from .model import (RANK, IndexSalvage, LostRows, Row, RowidSet, RowStream, Run, SchemaEntry, Spool,
                    TableSalvage, _tnew)
from .shapes import SCHEMA_CAND, SCHEMA_TYPES, Candidate, candidate_from_tabledef
from .sqlschema import NO_DEFAULT, TableDef, parse_create_table

_U32 = struct.Struct(">I")
RUN_PAGES = 256      # leaves per run at most (a run SQLite reads differently is retried leaf by leaf)
ERRORS = (IndexError, ValueError, struct.error, RecordError, TypeError, OverflowError)


def _strictly_ascending(rowids: list[int]) -> bool:
    if rowids[-1] - rowids[0] == len(rowids) - 1:       # the common case: consecutive rowids
        return rowids == list(range(rowids[0], rowids[-1] + 1))
    return rowids == sorted(set(rowids))


class Timeout(Exception):
    """The time limit was reached: the phase in progress stops, the result is partial."""


class Table:
    """Per-table state: its candidate shape, finalizer, rowids seen and row stream."""

    def __init__(self, name, columns, cand: Candidate | None, td: TableDef | None, spool: Spool,
                 sql=None, rootpage=None):
        self.name = name
        self.cand = cand
        self.td = td
        self.rows = RowStream(spool)
        self.out = TableSalvage(name=name, columns=list(columns), sql=sql, rootpage=rootpage, rows=self.rows)
        if td is not None:
            self.out.without_rowid = td.without_rowid
            if td.rowid_alias is not None:
                self.out.rowid_alias = td.columns[td.rowid_alias].name
        elif cand is not None and cand.alias_pos is not None:
            self.out.rowid_alias = cand.columns[cand.order[cand.alias_pos]]
        if cand is not None:
            self.out.without_rowid = cand.without_rowid
        self.rowids = RowidSet()
        self.fin = make_finalizer(cand, len(columns)) if cand is not None else None
        self.fin_cache: dict[int, Callable] = {}   # id(candidate) -> finalizer for other shapes

    def finalizer_for(self, cand: Candidate):
        if cand is self.cand or self.cand is None:
            return self.fin
        f = self.fin_cache.get(id(cand))
        if f is None:
            # a different shape of the same table: map its columns by name
            mine = {c.lower(): i for i, c in enumerate(self.out.columns)}
            base = make_finalizer(cand, len(cand.columns))
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

    def extend(self, rows: list[tuple], source: str) -> None:
        """Add rows (rowid, values, source, page) of one source, all known to be new."""
        append = self.rows.ranked[RANK.get(source, 2)].append
        for row in rows:
            append(row)
        if source == "orphan":
            self.out.orphan_rows += len(rows)
        elif source == "freelist":
            self.out.freelist_rows += len(rows)
        elif source == "freeblock":
            self.out.freeblock_rows += len(rows)

    def add_partial(self, rowid, vals, cut, page: int, source: str = "btree", cand=None) -> bool:
        """Keep a record whose overflow chain is broken but whose header was readable: ``vals``
        as decoded by ``decode_record_prefix`` (cut values hold their readable prefix or NULL),
        ``cut`` their record positions. Returns False (the caller keeps it for lost_and_found)
        when the table has no shape to place the values by, or the rowid is already taken."""
        cand = cand if cand is not None else self.cand
        if cand is None or rowid is None and not cand.without_rowid:
            return False
        ncols = len(cand.columns)
        if len(vals) > ncols and any(p >= ncols for p in cut):
            return False        # the cut is in values the table has no column for: not this table's
        if not cand.without_rowid and not self.rowids.add(rowid):
            return False
        order = cand.order
        names = []
        for p in cut:
            if p < len(order) and order[p] < len(cand.columns):
                names.append(cand.columns[order[p]])
        values = self.finalizer_for(cand)(list(vals), None if cand.without_rowid else rowid)
        self.rows.add_partial(None if cand.without_rowid else rowid, values, source, page, names)
        if source == "orphan":
            self.out.orphan_rows += 1
        elif source == "freelist":
            self.out.freelist_rows += 1
        return True

    def add(self, rowid, values, source: str, page: int) -> None:
        """Add a row already known to be new (rowid deduplication is the caller's)."""
        self.rows.add(rowid, values, source, page)
        if source == "orphan":
            self.out.orphan_rows += 1
        elif source == "freelist":
            self.out.freelist_rows += 1
        elif source == "freeblock":
            self.out.freeblock_rows += 1


def make_finalizer(cand: Candidate, n: int):
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


class Salvager:
    """The state of one salvage (see the module docstring)."""

    def __init__(self, src, dec, deadline: float, include_freelist: bool,
                 enc: str = "utf-8", errors: str = "surrogateescape", spool: Spool | None = None):
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
        self.spool = spool if spool is not None else Spool()
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
        self.lost = LostRows(self.spool)
        self.pages_unreadable = 0
        self.timed_out = False
        self.problems: list[str] = []
        self._tick = 0
        # filled by the phases
        self.header = None
        self.header_trusted = False
        self.freelist = None
        self.ptrmaps: set[int] = set()
        self.schema: list = []
        self.shape_map: dict = {}
        self.tables: dict[str, Table] = {}
        self.indexes: dict[str, IndexSalvage] = {}

    def check_time(self) -> None:
        self._tick += 1
        if self._tick & 15 == 0 and time.monotonic() > self.deadline:
            self.timed_out = True
            raise Timeout

    def new_table(self, name, columns, cand, td, sql=None, rootpage=None) -> Table:
        t = Table(name, columns, cand, td, self.spool, sql, rootpage)
        t.rows._reader = lambda run, t=t: self.run_rows(t, run)
        self.tables[name] = t
        return t

    # ---------------------------------------------------------------- cell decoding
    # One piece: the hot loop of the salvage (every cell of every leaf). The cell header's varints
    # are decoded inline, as in :meth:`leaf_rowids`, because a call per cell costs more than the decoding.
    def leaf_records(self, page, hdr: PageHeader, pgno: int, claimed_local: list[int], check_claims=True):
        """Decode the cells of a table-leaf page.

        Returns (records, bad, broken): records = [(rowid, values)], bad = count of
        unreadable cells, broken = [(rowid, partial values, reason, cut)] for cells whose
        overflow chain is broken: ``cut`` lists the record positions of the values cut short
        when the record header was readable (see ``decode_record_prefix``), else None (the
        values are then a best-effort guess for lost_and_found). ``check_claims``:
        an overflow chain running into a page something else owns is broken (False when
        re-reading a leaf whose chains the walk already claimed).
        """
        usable = self.usable
        if len(page) < usable:
            usable = len(page)     # the partial last page of a truncated file
        maxlocal = max_local(self.usable, True)
        max_payload = self.npages * self.usable
        enc = self.enc
        errors = self.errors
        decode_rec = decode_record
        claims = self.claimed if check_claims else None
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
                        rend = record_end(page, p, usable)
                        append((rowid, decode_rec(page, p, rend, enc, errors)))
                        self.repaired_cells += 1
                elif plen > max_payload:
                    bad += 1
                else:
                    local = local_payload_size(plen, self.usable, True)
                    if p + local + OVERFLOW_POINTER_SIZE > usable:
                        bad += 1
                        continue
                    ovf = _U32.unpack_from(page, p + local)[0]
                    data, pages, complete = read_overflow(self.get, ovf, plen - local, self.usable, claims)
                    buf = page[p:p + local] + data
                    if complete and set(pages).isdisjoint(claimed_local):
                        claimed_local.extend(pages)
                        append((rowid, decode_record(buf, 0, plen, enc, errors)))
                    else:
                        if broken is None:
                            broken = []
                        prefix = decode_record_prefix(buf, plen, enc, errors)
                        if prefix is None:
                            broken.append((rowid, decode_record_partial(buf, self.dec),
                                           "overflow chain broken", None))
                        else:
                            broken.append((rowid, prefix[0], "overflow chain broken", prefix[1]))
            except ERRORS:
                bad += 1
        return out, bad, broken

    # One piece for the same reason as :meth:`leaf_records`, whose cell-header decoding it repeats.
    def leaf_rowids(self, page, hdr: PageHeader, claimed_local: list[int]):
        """Read a table leaf structurally, without decoding records: (rowids, clean).

        Clean: every cell pointer in bounds, every payload on the page or in a complete
        overflow chain of pages nothing else owns. ``claimed_local`` gets the chains' pages.
        """
        usable = self.usable
        if len(page) < usable:
            return None, False
        maxlocal = max_local(usable, True)
        max_payload = self.npages * usable
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            return None, False
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        rowids = []
        append = rowids.append
        try:
            for ptr in ptrs:
                if ptr < floor or ptr >= usable:
                    return None, False
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
                    if p + plen > usable or plen == 0:
                        return None, False
                elif plen > max_payload:
                    return None, False
                else:
                    local = local_payload_size(plen, usable, True)
                    if p + local + OVERFLOW_POINTER_SIZE > usable:
                        return None, False
                    ovf = _U32.unpack_from(page, p + local)[0]
                    _data, pages, complete = read_overflow(self.get, ovf, plen - local, usable, self.claimed)
                    if not complete or not set(pages).isdisjoint(claimed_local):
                        return None, False
                    claimed_local.extend(pages)
                append(rowid)
        except ERRORS:
            return None, False
        return rowids, True

    def record_at(self, page, hdr: PageHeader, i: int):
        """The i-th record of a table leaf (for telling whose leaf it is); None where unreadable
        or stored in overflow."""
        try:
            return self.record_at_cell(page, cell_pointers(page, hdr)[i])
        except ERRORS:
            return None

    def record_at_cell(self, page, ptr: int):
        """The record of the table-leaf cell at ``ptr``; None where unreadable or in overflow."""
        try:
            plen, p = read_varint(page, ptr)
            _rowid, p = read_varint(page, p)
            if plen > max_local(self.usable, True):
                return None
            return decode_record(page, p, p + plen, self.enc, self.errors)
        except ERRORS:
            return None

    @staticmethod
    def first_serial_type(page, ptr: int) -> int | None:
        """The serial type of the first value of the record of the table-leaf cell at ``ptr``,
        read from its header alone (a cheap look before decoding); None where unreadable."""
        try:
            _plen, p = read_varint(page, ptr)
            _rowid, p = read_varint(page, p)
            _hlen, p = read_varint(page, p)
            return read_varint(page, p)[0]
        except ERRORS:
            return None

    def count_cells(self, page, hdr: PageHeader) -> tuple[int, int]:
        """(cells whose pointer is in bounds, cells whose pointer is not)."""
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            return 0, hdr.cell_count
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        lim = min(self.usable, len(page))
        bad = sum(1 for p in ptrs if p < floor or p >= lim)
        return len(ptrs) - bad, bad

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
        maxlocal = max_local(usable, False)
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
                    if p + local + OVERFLOW_POINTER_SIZE > lim:
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
            except ERRORS:
                bad += 1
        return children, out, bad

    # ---------------------------------------------------------------- rows of clean runs
    def run_rows(self, t: Table, run: Run):
        """Decode a clean run's leaves again (the walk kept only their page numbers)."""
        fin = t.fin
        tnew = _tnew
        usable = self.usable
        for pg in run.pages:
            page = self.get(pg)
            hdr = parse_page_header(page, pg, usable, strict=False) if page is not None else None
            if hdr is None:
                continue
            recs, _bad, _broken = self.leaf_records(page, hdr, pg, [], check_claims=False)
            for rowid, vals in recs:
                yield tnew(Row, (rowid, fin(vals, rowid), "btree", pg))

    def decode_run(self, t: Table, run: Run) -> None:
        """A run SQLite could not read as we did: decode it now into the table's spool (the
        caller takes it off the table's runs)."""
        fin = t.fin
        ncols = len(t.out.columns)
        for pg in run.pages:
            page = self.get(pg)
            hdr = parse_page_header(page, pg, self.usable, strict=False) if page is not None else None
            if hdr is None:
                continue
            recs, bad, _broken = self.leaf_records(page, hdr, pg, [], check_claims=False)
            t.out.unreadable_cells += bad
            for rowid, vals in recs:
                if len(vals) > ncols:
                    t.out.overlong_records += 1
                t.add(rowid, fin(vals, rowid), "btree", pg)

    # ---------------------------------------------------------------- b-tree walks
    # One piece: one traversal with an explicit stack, whose state (the current run of clean
    # leaves, completeness, the first page) every step reads and updates.
    def walk_table(self, root: int, owner: str, cand: Candidate | None, table_name: str,
                   counters: TableSalvage | None, table: Table | None = None,
                   on_rows: Callable | None = None):
        """Walk a rowid-table b-tree. With ``table``: clean leaves become runs, other leaves
        are decoded into its stream; else ``on_rows(pgno, records)`` per leaf (the schema)."""
        claimed = self.claimed
        get = self.get
        usable = self.usable
        stack = [(root, None, None)]
        first = True
        complete = True
        run: Run | None = None
        runs = table.rows.runs if table is not None else None
        rowset = table.rowids if table is not None else None
        missing = self.missing.setdefault(table_name, [])

        def lose(lo, hi):
            nonlocal complete, run
            missing.append((lo, hi))
            complete = False
            run = None
            if counters is not None:
                counters.missing_subtrees += 1

        while stack:
            self.check_time()
            entry = stack.pop()
            if entry is None:          # rows were lost here: the run of clean leaves ends
                run = None
                continue
            pg, lo, hi = entry
            is_root = first
            first = False
            page = get(pg) if pg not in claimed else None
            hdr = parse_page_header(page, pg, usable, strict=False) if page is not None else None
            if hdr is None or not hdr.is_table:
                if pg not in claimed:
                    self.pages_unreadable += 1
                lose(lo, hi)
                continue
            if hdr.page_type == PAGE_TABLE_INTERIOR:
                claimed[pg] = owner
                if counters is not None:
                    counters.pages += 1
                if self._interior(page, hdr, lo, hi, stack, missing, counters):
                    complete = False
                continue
            # leaf
            local: list[int] = []
            if table is not None:
                rowids, clean = self.leaf_rowids(page, hdr, local)
                if clean and rowids:
                    if not is_root and not self._rowids_fit(rowids, lo, hi, cand, page, hdr):
                        lose(lo, hi)   # the pointer led to somebody else's page: the orphan scan's
                        continue
                    if not ((not rowset.hi or rowids[0] > rowset.hi[-1]) and _strictly_ascending(rowids)):
                        clean = False
                if clean and rowids:
                    claimed[pg] = owner
                    for o in local:
                        claimed[o] = "overflow"
                    if counters is not None:
                        counters.pages += 1
                    rowset.extend_ascending(rowids)
                    if run is None or len(run.leaves) >= RUN_PAGES or rowids[0] <= run.last:
                        run = Run()
                        runs.append(run)
                    run.leaves.append((pg, rowids[0], rowids[-1], len(rowids), sum(rowids)))
                    continue
                if clean:              # no cells: nothing to decode
                    claimed[pg] = owner
                    if counters is not None:
                        counters.pages += 1
                    continue
                run = None
                local = []
            recs, bad, broken = self.leaf_records(page, hdr, pg, local)
            if not is_root and recs and not self._leaf_fits(recs, lo, hi, cand):
                lose(lo, hi)
                continue
            claimed[pg] = owner
            for o in local:
                claimed[o] = "overflow"
            if counters is not None:
                counters.pages += 1
                counters.unreadable_cells += bad
            partial = []
            if broken:
                for rowid, vals, why, cut in broken:
                    if table is not None and cut is not None:
                        partial.append((rowid, vals, cut))
                    else:
                        self.lost.add(pg, rowid, vals, "btree", why, table_name)
            if not recs and not partial:
                continue
            if partial and not recs and not is_root and \
                    not self._leaf_fits([(r, v) for r, v, _c in partial], lo, hi, cand):
                for rowid, vals, _cut in partial:   # only cut records here: not shown to be this table's
                    self.lost.add(pg, rowid, vals, "btree", "overflow chain broken", table_name)
                continue
            if table is None:
                on_rows(pg, recs)
                continue
            fin = table.fin
            ncols = len(table.out.columns)
            if partial:
                # rows whose overflow chain is broken stay in their table, in key order with the rest
                recs = sorted(recs + partial, key=lambda r: r[0])
            for rec in recs:
                if len(rec) == 3:
                    rowid, vals, cut = rec
                    if not table.add_partial(rowid, vals, cut, pg):
                        self.lost.add(pg, rowid, vals, "btree", "overflow chain broken", table_name)
                    continue
                rowid, vals = rec
                if rowset.add(rowid):
                    if len(vals) > ncols:
                        table.out.overlong_records += 1
                    table.add(rowid, fin(vals, rowid), "btree", pg)
        self.finished.add(owner)
        if complete:
            self.complete.add(owner)

    def _interior(self, page, hdr, lo, hi, stack, missing, counters) -> bool:
        """Push a table-interior page's children (in key order) with None where rows are lost;
        True if any were."""
        usable = self.usable
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            ptrs = ()
        kids = []
        prev = lo
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        lost_from = False     # after an unreadable cell: the lower bound of its rowids
        if len(ptrs) != hdr.cell_count:
            lost_from = lo
        for ptr in ptrs:
            if ptr < floor or ptr + _U32.size + 1 > usable:   # child page number, then its key
                if lost_from is False:
                    lost_from = prev
                if counters is not None:
                    counters.unreadable_cells += 1
                continue
            try:
                child = _U32.unpack_from(page, ptr)[0]
                key, _ = read_varint_signed(page, ptr + 4)
            except ERRORS:
                if lost_from is False:
                    lost_from = prev
                if counters is not None:
                    counters.unreadable_cells += 1
                continue
            if lost_from is not False:
                # the lost children's rows lie between the readable keys around them
                missing.append((lost_from, key))
                kids.append(None)
                lost_from = False
            kids.append((child, prev, key))
            prev = key
        if lost_from is not False:
            missing.append((lost_from, hi))
            kids.append(None)
        kids.append((hdr.right_child, prev, hi))
        lost = None in kids
        for k in reversed(kids):
            if k is None or 1 <= k[0] <= self.npages:
                stack.append(k)
            else:
                missing.append((k[1], k[2]))
                stack.append(None)
                lost = True
                if counters is not None:
                    counters.missing_subtrees += 1
        return lost

    def _rowids_fit(self, rowids, lo, hi, cand, page, hdr) -> bool:
        """A clean leaf reached through a child pointer belongs there: rowids in the pointer's
        key range, and its first or last record fits the table."""
        n = len(rowids)
        if (lo is None or min(rowids) > lo) and (hi is None or max(rowids) <= hi):
            bad = 0
        else:
            bad = sum(1 for r in rowids if (lo is not None and r <= lo) or (hi is not None and r > hi))
        if bad * 2 > n:
            return False
        if cand is not None:
            first = self.record_at(page, hdr, 0)
            if first is None or cand.score(first) >= 0:
                return True
            last = self.record_at(page, hdr, -1)
            if last is not None and cand.score(last) < 0:
                return False
        return True

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
            if not interior and not decode:
                # an index leaf only counted: its cells need no parsing, only sane pointers
                n, bad = self.count_cells(page, hdr)
                counters.unreadable_cells += bad
                if isinstance(counters, IndexSalvage):
                    counters.entries += n
                continue
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


# --------------------------------------------------------------------------- schema and tables

def schema_rows_to_entries(recs, pgno, source, schema, seen_names) -> None:
    for _rowid, vals in recs:
        if len(vals) < 5:
            continue
        typ, name, tbl, root, sql = vals[:5]
        if not (isinstance(typ, str) and typ in SCHEMA_TYPES and isinstance(name, str)):
            continue
        if name in seen_names:
            continue
        if not isinstance(root, int):
            root = 0
        seen_names.add(name)
        schema.append(SchemaEntry(typ, name, tbl if isinstance(tbl, str) else name, root,
                                  sql if isinstance(sql, str) else None, source, pgno))


def read_schema(sv: Salvager) -> None:
    """Walk sqlite_schema from page 1."""
    seen: set[str] = set()

    def on_rows(pg, recs):
        schema_rows_to_entries(recs, pg, "btree", sv.schema, seen)

    sv.walk_table(1, "schema", SCHEMA_CAND, "sqlite_schema", None, on_rows=on_rows)


def setup_tables(sv: Salvager, entries) -> None:
    """A table (with its candidate shape) for each schema entry of a table, an index counter
    for each index."""
    for e in entries:
        if e.name in sv.tables or e.name in sv.indexes:
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
            for s in sv.shape_map.get(e.name, ()):
                if [c.lower() for c in s.columns] == [td.columns[i].name.lower() for i in td.record_order()]:
                    shape = s
                    break
            cand = candidate_from_tabledef(e.name, td, shape)
            t = sv.new_table(e.name, td.column_names, cand, td, e.sql, e.rootpage)
            if shape is not None:
                t.out.shape = shape.label
        elif e.type == "index" and e.rootpage:
            sv.indexes[e.name] = IndexSalvage(e.name, e.tbl_name, e.rootpage)


def walk_all(sv: Salvager, entries, after: Callable | None = None) -> None:
    """Walk the b-tree of every table and index in ``entries``, each root once; ``after(table)``
    once each rowid table's walk has ended."""
    roots_done: set[int] = set()
    for e in entries:
        if not e.rootpage or e.rootpage in roots_done:
            continue
        if e.type == "table" and e.name in sv.tables:
            t = sv.tables[e.name]
            roots_done.add(e.rootpage)
            if t.out.without_rowid:
                fin = t.fin

                def on_records(pg, recs, t=t, fin=fin):
                    for vals in recs:
                        if vals is not None:
                            t.add(None, fin(vals, None), "btree", pg)
                sv.walk_index(e.rootpage, "table:" + e.name, True, on_records, t.out)
            else:
                sv.walk_table(e.rootpage, "table:" + e.name, t.cand, e.name, t.out, table=t)
                if after is not None:
                    after(t)
        elif e.type == "index" and e.name in sv.indexes:
            roots_done.add(e.rootpage)
            sv.walk_index(e.rootpage, "index:" + e.name, False, None, sv.indexes[e.name])
