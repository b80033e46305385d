"""The orphan scan: b-tree pages no walk reached, given back to the right table.

Its steps, each a function over the salvage state and one :class:`OrphanScan`:
find the unreached pages, group them under orphan interior pages, ask the pointer map, recover
schema entries from orphan pages, place index pages (rows of WITHOUT ROWID tables), place table
leaves (by structure where it survives, otherwise by matching records against the candidate
shapes). A page that fits a table whose walk was complete is a freed page (stale content).
Only page numbers are kept between steps: leaves are decoded when they are looked at.
"""
from __future__ import annotations

import struct
from hashlib import blake2b
from dataclasses import dataclass, field

from .fileformat import (BTREE_PAGE_TYPES, PAGE_INDEX_INTERIOR, PAGE_TABLE_INTERIOR, PAGE_TABLE_LEAF,
                         PTRMAP_BTREE, btree_header_offset, cell_pointers, parse_page_header,
                         ptrmap_entry, ptrmap_page_for, serial_type_of_text)
from .shapes import SCHEMA_CAND, SCHEMA_TYPES, candidates, pick_candidate
from .walk import Salvager, schema_rows_to_entries, setup_tables, walk_all

_U32 = struct.Struct(">I")
_PTRMAP_DEPTH = 64      # parent links followed up to a page some walk claimed


@dataclass
class OrphanScan:
    leaves: dict[int, str] = field(default_factory=dict)       # pgno -> 'orphan' | 'freelist'
    interiors: dict[int, str] = field(default_factory=dict)
    index_pages: dict[int, str] = field(default_factory=dict)
    parent: dict[int, int] = field(default_factory=dict)       # page -> orphan interior above it
    ptr_owner: dict[int, str] = field(default_factory=dict)    # leaf -> table, from the pointer map
    duplicates: int = 0                                         # leaves identical to an earlier one

    def group_of(self, pg: int) -> int:
        seen = set()
        parent = self.parent
        while pg in parent and pg not in seen:
            seen.add(pg)
            pg = parent[pg]
        return pg


def run(sv: Salvager) -> None:
    scan = find_unreached(sv)
    group_by_interiors(sv, scan)
    ptrmap_owners(sv, scan)
    recover_schema(sv, scan)
    place_index_pages(sv, scan)
    place_table_leaves(sv, scan)


def find_unreached(sv: Salvager) -> OrphanScan:
    """Every b-tree page no walk reached (freelist pages only with include_freelist)."""
    claimed = sv.claimed
    # pages listed by freelist trunks that looked sane (walk_freelist rejects insane
    # trunks, so a garbage trunk lists nothing and hides no live page)
    free_pages: set[int] = set()
    if sv.freelist is not None:
        free_pages = sv.freelist.pages
        for p in sv.freelist.trunks:
            claimed.setdefault(p, "freelist-trunk")
    scan = OrphanScan()
    seen: dict[bytes, int] = {}    # leaf content digest -> first page with it
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
        if page[btree_header_offset(pg)] not in BTREE_PAGE_TYPES:
            continue
        hdr = parse_page_header(page, pg, usable, strict=True)
        if hdr is None:
            continue
        source = "freelist" if pg in free_pages else "orphan"
        if hdr.page_type == PAGE_TABLE_LEAF:
            if hdr.cell_count:
                digest = blake2b(page, digest_size=16).digest()
                first = seen.setdefault(digest, pg)
                if first != pg:
                    # byte for byte another leaf's copy: the same rows again, nothing new
                    claimed[pg] = "duplicate:%d" % first
                    scan.duplicates += 1
                    continue
                scan.leaves[pg] = source
        elif hdr.page_type == PAGE_TABLE_INTERIOR:
            scan.interiors[pg] = source
        else:
            scan.index_pages[pg] = source
    if scan.duplicates:
        sv.problems.append(f"{scan.duplicates} orphan page(s) were exact copies of another page; "
                           "their rows were read once")
    return scan


def group_by_interiors(sv: Salvager, scan: OrphanScan) -> None:
    """B-tree structure among orphans: each page's orphan interior parent."""
    for pg in scan.interiors:
        page, hdr = sv.btree_page(pg, strict=True)
        if hdr is None:
            continue
        try:
            ptrs = cell_pointers(page, hdr)
            kids = [_U32.unpack_from(page, p)[0] for p in ptrs if p + 4 <= sv.usable]
        except struct.error:
            kids = []
        kids.append(hdr.right_child)
        for k in kids:
            if (k in scan.leaves or k in scan.interiors) and k not in scan.parent and k != pg:
                scan.parent[k] = pg


def ptrmap_owners(sv: Salvager, scan: OrphanScan) -> None:
    """Auto-vacuum files: the parent chain up to a page a walk claimed tells the owning table."""
    if not sv.ptrmaps or sv.header is None:
        return
    for pg in scan.leaves:
        owner = _ptrmap_owner(sv, pg)
        if owner is not None and owner.startswith("table:"):
            scan.ptr_owner[pg] = owner[6:]


def _ptrmap_owner(sv: Salvager, pg: int) -> str | None:
    seen = set()
    cur = pg
    for _ in range(_PTRMAP_DEPTH):
        if cur in seen:
            return None
        seen.add(cur)
        mp = ptrmap_page_for(cur, sv.usable, sv.page_size)
        if mp not in sv.ptrmaps:
            return None
        page = sv.get(mp)
        if page is None:
            return None
        entry = ptrmap_entry(page, cur - mp - 1, sv.usable)
        if entry is None:
            return None
        typ, par = entry
        if typ != PTRMAP_BTREE or par == 0:
            return None
        owner = sv.claimed.get(par)
        if owner is not None:
            return owner
        cur = par
    return None


def decode_leaf(sv: Salvager, pg: int):
    """(records, bad, broken, overflow pages) of an orphan leaf, or None if it holds nothing."""
    page, hdr = sv.btree_page(pg, strict=True)
    if hdr is None:
        return None
    local: list[int] = []
    recs, bad, broken = sv.leaf_records(page, hdr, pg, local)
    if not recs and not broken:
        return None
    return recs, bad, broken, local


def _schema_like(v) -> bool:
    return len(v) == 5 and SCHEMA_CAND.score(v) >= 1 and \
        (v[4] is None or (isinstance(v[4], str) and v[4].lstrip()[:6].upper() == "CREATE"))


def _is_schema_page(records, n: int) -> bool:
    """A majority of the ``n`` records look like sqlite_schema rows; ``records`` may stop early
    and yields None for a record it cannot read on its own (the caller then decodes the page)."""
    good = 0
    misses_left = (n - 1) // 2     # more misses than this: not a majority
    for v in records:
        if v is None:
            return None
        if _schema_like(v):
            good += 1
        else:
            misses_left -= 1
            if misses_left < 0:
                break
    return good * 2 > n


def _looks_like_schema_page(sv: Salvager, pg: int) -> bool:
    """Decide from the leaf's records one by one, stopping once the majority is decided."""
    page, hdr = sv.btree_page(pg, strict=True)
    if hdr is None or not hdr.cell_count:
        return False
    # a schema row starts with its type ('table', 'index', ...) as text: other first serial types
    # are misses without decoding the record
    types = {serial_type_of_text(t.encode(sv.enc)) for t in SCHEMA_TYPES}

    try:
        ptrs = cell_pointers(page, hdr)
    except struct.error:
        return False

    def records():
        for ptr in ptrs:
            first = sv.first_serial_type(page, ptr)
            yield () if first is not None and first not in types else sv.record_at_cell(page, ptr)
    quick = _is_schema_page(records(), hdr.cell_count)
    if quick is not None:
        return quick
    got = decode_leaf(sv, pg)              # a record in overflow, or unreadable on its own
    return got is not None and bool(got[0]) and _is_schema_page((v for _r, v in got[0]), len(got[0]))


def stale_page(sv: Salvager, pg: int, table: str | None) -> None:
    """Count a page no walk reached whose records belong to a completely walked tree."""
    sv.pages_stale += 1
    sv.claimed[pg] = "stale:" + (table or "?")


def recover_schema(sv: Salvager, scan: OrphanScan) -> None:
    """Schema rows on orphan pages (page 1 or a schema interior page destroyed): new tables,
    walked from their roots where those are still unclaimed."""
    schema_pages = []
    for pg, source in scan.leaves.items():
        if source != "orphan":
            continue
        sv.check_time()
        if _looks_like_schema_page(sv, pg):
            schema_pages.append(pg)
    if not schema_pages:
        return
    if "schema" in sv.complete:
        # sqlite_schema was read completely: these are freed schema pages (dropped objects)
        for pg in schema_pages:
            del scan.leaves[pg]
            stale_page(sv, pg, "sqlite_schema")
            if sv.include_freelist:
                for rowid, vals in decode_leaf(sv, pg)[0]:
                    sv.lost.add(pg, rowid, vals, "freelist", "stale sqlite_schema page", "sqlite_schema")
        return
    before = len(sv.schema)
    seen_names = {e.name for e in sv.schema}
    for pg in sorted(schema_pages):
        recs = decode_leaf(sv, pg)[0]
        del scan.leaves[pg]
        sv.claimed[pg] = "schema-orphan"
        schema_rows_to_entries(recs, pg, "orphan", sv.schema, seen_names)
    new = sv.schema[before:]
    if not new:
        return
    sv.problems.append(f"{len(new)} schema entries recovered from orphan pages")
    known = set(sv.tables) | set(sv.indexes)
    setup_tables(sv, new)
    walk_new = [e for e in new if e.name not in known and e.rootpage and e.rootpage not in sv.claimed]
    if walk_new:
        walk_all(sv, walk_new)
        for pages in (scan.leaves, scan.interiors):
            for pg in [p for p in pages if p in sv.claimed]:
                del pages[pg]


def place_index_pages(sv: Salvager, scan: OrphanScan) -> None:
    """Index pages no walk reached: rows of WITHOUT ROWID tables, otherwise just counted."""
    wr_tables = [t for t in sv.tables.values() if t.out.without_rowid and t.cand is not None]
    for pg, source in scan.index_pages.items():
        if pg in sv.claimed:
            continue
        sv.claimed[pg] = "orphan-index"
        if not wr_tables:
            continue
        page, hdr = sv.btree_page(pg, strict=True)
        if hdr is None:
            continue
        local: list[int] = []
        _kids, recs, _bad = sv.index_records(page, hdr, hdr.page_type == PAGE_INDEX_INTERIOR, True, local)
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
        live = ()
        if "table:" + t.name in sv.complete:
            # the table's tree was read completely: a freed page of it (stale content)
            stale_page(sv, pg, t.name)
            if not sv.include_freelist:
                continue
            src_name = "freelist"
            live = {r.values for r in t.rows.ranked[0]}
        for o in local:
            sv.claimed[o] = "overflow"
        for v in recs:
            if t.cand.score(v) >= 0:
                values = t.fin(v, None)
                if values not in live:
                    t.add(None, values, src_name, pg)
            else:
                sv.lost.add(pg, None, v, source, "record does not fit its page's table", t.name)


def _open_ended(sv: Salvager, cands) -> set[str]:
    """Tables that may have live pages of any rowid range among the orphans (a walk that ended
    knows the rowid range of everything it lost): in the schema but never walked to the end;
    known only by shape while the schema itself was not read completely (a table missing from
    a completely read schema was dropped, or never existed)."""
    schema_complete = "schema" in sv.complete
    out = set()
    for c in cands:
        if "table:" + c.table in sv.finished:
            continue
        t = sv.tables.get(c.table)
        if (t is not None and t.td is not None) or not schema_complete:
            out.add(c.table)
    return out


def _group_fit(cand, recs):
    """The candidate already chosen for another page under the same orphan interior, if the
    schema knows its table and it fits every sampled record: ``pick_candidate`` would choose it
    again (no other table can fit more records, and the group's table ranks first among those
    fitting as many), so the page is not scored against every candidate."""
    if cand is None or cand.td is None:
        return None
    sample = recs if len(recs) <= 12 else recs[:6] + recs[-6:]
    score = cand.score
    for _rowid, vals in sample:
        if score(vals) < 0:
            return None
    return cand


@dataclass
class LeafPlacement:
    """What :func:`place_table_leaves` carries from page to page: the candidates, the tables read
    completely or open-ended, and the table and candidate each orphan group chose first (its
    later pages are scored against that one first)."""

    cands: list
    complete: set[str]
    open_ended: set[str]
    group_table: dict[int, str] = field(default_factory=dict)
    group_cand: dict[int, object] = field(default_factory=dict)


def place_table_leaves(sv: Salvager, scan: OrphanScan) -> None:
    """Give each orphan table leaf to a table: the pointer map's owner if it fits, else the
    best-fitting candidate; pages with structural evidence first, freelist pages last."""
    cands = [c for c in candidates(sv.tables, sv.shape_map) if c is not SCHEMA_CAND and not c.without_rowid]
    state = LeafPlacement(cands, {name for name in sv.tables if "table:" + name in sv.complete},
                          _open_ended(sv, cands))
    order = sorted(scan.leaves, key=lambda p: (p not in scan.ptr_owner, scan.leaves[p] == "freelist", p))
    for pg in order:
        sv.check_time()
        got = decode_leaf(sv, pg)
        if got is None:
            continue
        recs, bad, broken, local = got
        source = scan.leaves[pg]
        grp = scan.group_of(pg)
        cand, stale_tie = _choose(sv, scan, state, pg, grp, recs)
        stale = False
        if cand is not None:
            state.group_table.setdefault(grp, cand.table)
            state.group_cand.setdefault(grp, cand)
        if source == "orphan" and (cand is None and stale_tie or cand is not None and cand.table in state.complete):
            # as good a match for several tables, all read completely, or a page of a table whose
            # every live leaf its walk reached: a freed page that kept its old cells (a freelist
            # the file no longer lists, e.g. a garbage trunk), stale either way
            stale = True
            stale_page(sv, pg, cand.table if cand is not None else None)
            if not sv.include_freelist:
                continue
            source = "freelist"
        if cand is None:
            for rowid, vals in recs:
                sv.lost.add(pg, rowid, vals, source, "no matching table")
            for rowid, vals, why, _cut in broken:
                sv.lost.add(pg, rowid, vals, source, why)
            if not stale:
                sv.claimed[pg] = "orphan-unmatched"
            continue
        if not stale:
            sv.claimed[pg] = "orphan:" + cand.table
        for o in local:
            sv.claimed[o] = "overflow"
        _place_rows(sv, cand, pg, recs, bad, broken, source, stale)


def _choose(sv: Salvager, scan: OrphanScan, state: LeafPlacement, pg: int, grp: int, recs):
    """(candidate or None, stale_tie) for an orphan leaf: the pointer map's owner where it fits
    half the records, else the group's candidate where it fits, else the best of all."""
    owner = scan.ptr_owner.get(pg)
    if owner is not None and owner in sv.tables and sv.tables[owner].cand is not None:
        c = sv.tables[owner].cand
        if sum(1 for _r, v in recs if c.score(v) >= 0) * 2 >= len(recs):
            return c, False
    cand = _group_fit(state.group_cand.get(grp), recs)
    if cand is not None:
        return cand, False
    return pick_candidate(sv.missing, state.cands, recs, state.group_table.get(grp), state.complete,
                          state.open_ended)


def _place_rows(sv: Salvager, cand, pg: int, recs, bad: int, broken, source: str, stale: bool) -> None:
    """An orphan leaf's records into its table (made from the candidate where the schema has none);
    a record that does not fit, or whose rowid is taken, goes to lost_and_found."""
    t = sv.tables.get(cand.table)
    if t is None:
        t = sv.new_table(cand.table, cand.columns, cand, None,
                         cand.shape.create_sql if cand.shape is not None else None, None)
        t.out.shape = cand.label
    t.out.unreadable_cells += bad
    fin = t.finalizer_for(cand)
    src_name = "freelist" if source == "freelist" else "orphan"
    score = cand.score
    add_rowid = None if cand.without_rowid else t.rowids.add
    placed = []
    for rowid, vals in recs:
        if score(vals) < 0:
            sv.lost.add(pg, rowid, vals, source, "record does not fit its page's table", cand.table)
            continue
        # the first row seen for a rowid wins (b-tree rows were added first)
        if add_rowid is None:
            placed.append((None, fin(vals, rowid), src_name, pg))
        elif add_rowid(rowid):
            placed.append((rowid, fin(vals, rowid), src_name, pg))
    t.extend(placed, src_name)
    for rowid, vals, why, cut in broken:
        if cut is not None and not stale and score(vals) >= 0 and \
                t.add_partial(rowid, vals, cut, pg, src_name, cand):
            continue
        sv.lost.add(pg, rowid, vals, source, why, cand.table)
