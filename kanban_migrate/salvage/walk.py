"""The state of one salvage and the b-tree walks over it.

:class:`Salvager` is the one state object every phase works on (as the named states of
SQLite's ``sqlite3recover.c`` share one recover object): the page source, which page belongs to
what, the tables and their row streams, what was lost. A table's walk (:class:`TableWalk`) reads
its leaves structurally (cell bounds, rowids, overflow chains) and keeps runs of clean leaves as
page lists to be decoded on demand or copied by SQLite; only leaves that are not clean are decoded
now. Reading the cells of a page is :mod:`.btree`'s; a table's rows, :mod:`.table`'s.
"""
from __future__ import annotations

import struct
import time
from collections.abc import Callable

from .btree import ERRORS, BtreeReader
from .fileformat import PAGE_INDEX_INTERIOR, PAGE_TABLE_INTERIOR, cell_pointers, parse_page_header, read_varint_signed
from .model import IndexSalvage, LostRows, Row, Run, SchemaEntry, Spool, TableSalvage, new_tuple
from .shapes import SCHEMA_CAND, SCHEMA_TYPES, Candidate, candidate_from_tabledef
from .sqlschema import parse_create_table
from .table import Table

__all__ = ["Salvager", "TableWalk", "Timeout", "read_schema", "schema_rows_to_entries",
           "setup_tables", "walk_all"]

_U32 = struct.Struct(">I")
RUN_PAGES = 256      # leaves per run at most (a run SQLite reads differently is retried leaf by leaf)


def _strictly_ascending(rowids: list[int]) -> bool:
    if rowids[-1] - rowids[0] == len(rowids) - 1:       # the common case: consecutive rowids
        return rowids == list(range(rowids[0], rowids[-1] + 1))
    return rowids == sorted(set(rowids))


class Timeout(Exception):
    """The time limit was reached: the phase in progress stops, the result is partial."""


class Salvager(BtreeReader):
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
        t = Table(name, columns, cand, td, self.spool, sql, rootpage, reader=lambda run: self.run_rows(t, run))
        self.tables[name] = t
        return t

    # ---------------------------------------------------------------- rows of clean runs
    def run_rows(self, t: Table, run: Run):
        """Decode a clean run's leaves again (the walk kept only their page numbers)."""
        fin = t.fin
        tnew = new_tuple
        for pg in run.pages:
            page, hdr = self.btree_page(pg)
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
            page, hdr = self.btree_page(pg)
            if hdr is None:
                continue
            recs, bad, _broken = self.leaf_records(page, hdr, pg, [], check_claims=False)
            t.out.unreadable_cells += bad
            for rowid, vals in recs:
                if len(vals) > ncols:
                    t.out.overlong_records += 1
                t.add(rowid, fin(vals, rowid), "btree", pg)

    # ---------------------------------------------------------------- b-tree walks
    def walk_table(self, root: int, owner: str, cand: Candidate | None, table_name: str,
                   counters: TableSalvage | None, table: Table | None = None,
                   on_rows: Callable | None = None) -> None:
        """Walk a rowid-table b-tree. With ``table``: clean leaves become runs, other leaves
        are decoded into its stream; else ``on_rows(pgno, records)`` per leaf (the schema)."""
        TableWalk(self, owner, cand, table_name, counters, table, on_rows).run(root)

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



class TableWalk:
    """One walk of a rowid table's b-tree over the salvage state: the stack of (page, key range)
    still to read, the run of clean leaves being built, and whether every page was reached. Its
    steps: :meth:`interior` pushes children, :meth:`clean_leaf` extends a run, :meth:`decoded_leaf`
    decodes a leaf that is not clean and :meth:`add_records` gives its rows to the table."""

    def __init__(self, sv: Salvager, owner: str, cand: Candidate | None, table_name: str,
                 counters: TableSalvage | None, table: Table | None, on_rows: Callable | None):
        self.sv = sv
        self.owner = owner
        self.cand = cand
        self.table_name = table_name
        self.counters = counters
        self.table = table
        self.on_rows = on_rows
        self.stack: list = []
        self.complete = True
        self.current_run: Run | None = None     # the run of clean leaves being extended
        self.missing = sv.missing.setdefault(table_name, [])

    def run(self, root: int) -> None:
        sv = self.sv
        claimed = sv.claimed
        get = sv.get
        usable = sv.usable
        stack = self.stack
        stack.append((root, None, None))
        is_root = True
        while stack:
            sv.check_time()
            entry = stack.pop()
            if entry is None:          # rows were lost here: the run of clean leaves ends
                self.current_run = None
                continue
            pg, lo, hi = entry
            page = get(pg) if pg not in claimed else None
            hdr = parse_page_header(page, pg, usable, strict=False) if page is not None else None
            if hdr is None or not hdr.is_table:
                if pg not in claimed:
                    sv.pages_unreadable += 1
                self.lose(lo, hi)
            elif hdr.page_type == PAGE_TABLE_INTERIOR:
                self.claim(pg, ())
                if self.interior(page, hdr, lo, hi):
                    self.complete = False
            else:
                local: list[int] = []
                if self.table is None or not self.clean_leaf(pg, page, hdr, lo, hi, is_root, local):
                    self.decoded_leaf(pg, page, hdr, lo, hi, is_root)
            is_root = False
        sv.finished.add(self.owner)
        if self.complete:
            sv.complete.add(self.owner)

    def lose(self, lo, hi) -> None:
        """The rows with keys in (lo, hi] are behind a page the walk could not read."""
        self.missing.append((lo, hi))
        self.complete = False
        self.current_run = None
        if self.counters is not None:
            self.counters.missing_subtrees += 1

    def claim(self, pg: int, overflow) -> None:
        claimed = self.sv.claimed
        claimed[pg] = self.owner
        for o in overflow:
            claimed[o] = "overflow"
        if self.counters is not None:
            self.counters.pages += 1

    def clean_leaf(self, pg, page, hdr, lo, hi, is_root: bool, local: list[int]) -> bool:
        """A leaf read structurally: True when it was dealt with (a clean leaf joins a run, or it
        was not this table's), False when it must be decoded."""
        rowids, clean = self.sv.leaf_rowids(page, hdr, local)
        if clean and rowids:
            if not is_root and not self.rowids_fit(rowids, lo, hi, page, hdr):
                self.lose(lo, hi)   # the pointer led to somebody else's page: the orphan scan's
                return True
            rowset = self.table.rowids
            if not ((not rowset.hi or rowids[0] > rowset.hi[-1]) and _strictly_ascending(rowids)):
                clean = False
        if not clean:
            self.current_run = None
            return False
        self.claim(pg, local)
        if rowids:                 # no cells: nothing to decode
            self.table.rowids.extend_ascending(rowids)
            run = self.current_run
            if run is None or len(run.leaves) >= RUN_PAGES or rowids[0] <= run.last:
                run = self.current_run = Run()
                self.table.rows.runs.append(run)
            run.leaves.append((pg, rowids[0], rowids[-1], len(rowids), sum(rowids)))
        return True

    def decoded_leaf(self, pg, page, hdr, lo, hi, is_root: bool) -> None:
        """A leaf decoded now: its records go to the table (or ``on_rows``), with those whose
        overflow chain is broken where the table can place them, else to lost_and_found."""
        sv = self.sv
        local: list[int] = []
        recs, bad, broken = sv.leaf_records(page, hdr, pg, local)
        if not is_root and recs and not self.leaf_fits(recs, lo, hi):
            self.lose(lo, hi)
            return
        self.claim(pg, local)
        if self.counters is not None:
            self.counters.unreadable_cells += bad
        partial = []
        for rowid, vals, why, cut in broken:
            if self.table is not None and cut is not None:
                partial.append((rowid, vals, cut))
            else:
                sv.lost.add(pg, rowid, vals, "btree", why, self.table_name)
        if not recs and not partial:
            return
        if partial and not recs and not is_root and \
                not self.leaf_fits([(r, v) for r, v, _c in partial], lo, hi):
            for rowid, vals, _cut in partial:   # only cut records here: not shown to be this table's
                sv.lost.add(pg, rowid, vals, "btree", "overflow chain broken", self.table_name)
            return
        if self.table is None:
            self.on_rows(pg, recs)
        else:
            self.add_records(pg, recs, partial)

    def add_records(self, pg: int, recs: list, partial: list) -> None:
        """The decoded rows of a leaf into the table, the first row of each rowid kept; rows whose
        overflow chain is broken stay in their table, in key order with the rest."""
        table = self.table
        fin = table.fin
        ncols = len(table.out.columns)
        rowset = table.rowids
        if partial:
            recs = sorted(recs + partial, key=lambda r: r[0])
        for rec in recs:
            if len(rec) == 3:
                rowid, vals, cut = rec
                if not table.add_partial(rowid, vals, cut, pg):
                    self.sv.lost.add(pg, rowid, vals, "btree", "overflow chain broken", self.table_name)
                continue
            rowid, vals = rec
            if rowset.add(rowid):
                if len(vals) > ncols:
                    table.out.overlong_records += 1
                table.add(rowid, fin(vals, rowid), "btree", pg)

    def interior(self, page, hdr, lo, hi) -> bool:
        """Push a table-interior page's children (in key order) with None where rows are lost;
        True if any were."""
        usable = self.sv.usable
        counters = self.counters
        missing = self.missing
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            ptrs = ()
        kids = []
        prev = lo
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        lost_from = lo if len(ptrs) != hdr.cell_count else False   # the lower bound of lost rowids
        for ptr in ptrs:
            try:
                if ptr < floor or ptr + _U32.size + 1 > usable:   # child page number, then its key
                    raise IndexError(ptr)
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
        return self.push(kids)

    def push(self, kids: list) -> bool:
        """Children onto the stack, first child on top; True if rows are lost among them."""
        lost = None in kids
        npages = self.sv.npages
        for k in reversed(kids):
            if k is None or 1 <= k[0] <= npages:
                self.stack.append(k)
            else:
                self.missing.append((k[1], k[2]))
                self.stack.append(None)
                lost = True
                if self.counters is not None:
                    self.counters.missing_subtrees += 1
        return lost

    def rowids_fit(self, rowids, lo, hi, page, hdr) -> bool:
        """A clean leaf reached through a child pointer belongs there: rowids in the pointer's
        key range, and its first or last record fits the table."""
        n = len(rowids)
        if (lo is None or min(rowids) > lo) and (hi is None or max(rowids) <= hi):
            bad = 0
        else:
            bad = sum(1 for r in rowids if (lo is not None and r <= lo) or (hi is not None and r > hi))
        if bad * 2 > n:
            return False
        cand = self.cand
        if cand is not None:
            first = self.sv.record_at(page, hdr, 0)
            if first is None or cand.score(first) >= 0:
                return True
            last = self.sv.record_at(page, hdr, -1)
            if last is not None and cand.score(last) < 0:
                return False
        return True

    def leaf_fits(self, recs, lo, hi) -> bool:
        """Does a leaf reached through a child pointer belong there? Its rowids must lie in
        the pointer's key range and its records fit the table (first and last sampled)."""
        cand = self.cand
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
