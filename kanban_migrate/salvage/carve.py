"""Carving: deleted rows left in freeblocks and unallocated space of table leaves
(``include_freelist=True`` only). A carved record must fit the page's table exactly, decode
cleanly and not repeat a live row."""
from __future__ import annotations

import re

from .fileformat import PAGE_TABLE_LEAF, decode_record, freeblocks, parse_page_header, record_end
from .shapes import Candidate
from .btree import ERRORS
from .walk import Salvager


def carve_freeblocks(sv: Salvager) -> None:
    """Rows in freeblocks and unallocated space of every table-leaf page a table owns."""
    by_owner = {}
    for name, t in sv.tables.items():
        if t.cand is not None and not t.out.without_rowid:
            by_owner["table:" + name] = t
            by_owner["orphan:" + name] = t
            by_owner["stale:" + name] = t
    live_of: dict[str, set] = {}
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
        except ERRORS:
            regions = []
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        if hdr.content_start > floor:
            regions.append((floor, min(hdr.content_start, lim)))
        if not regions:
            continue
        live = live_of.get(t.name)
        if live is None:
            # hashes of the live rows' values: a carved record equal to a live row is not new
            live = live_of[t.name] = {hash(r.values) for r in t.rows if r.rowid is not None}
        for a, b in regions:
            try:
                carved = carve_region(page, a, b, t.cand, sv.enc, sv.errors)
            except ERRORS:
                carved = []
            for vals in carved:
                values = t.fin(vals, None)
                h = hash(values)
                if h in live:
                    continue
                live.add(h)
                t.add(None, values, "freeblock", pg)


def carve_region(page, a: int, b: int, cand: Candidate, enc: str, errors: str) -> list:
    """Records of ``cand``'s shape whose header starts inside [a, b) and that end by b."""
    out = []
    n = cand.ncols
    s = a
    while s < b - 1:
        found = None
        hl = page[s]
        if n + 1 <= hl <= 2 * n + 9 and s + hl <= b:
            try:
                vals = decode_record(page, s, record_end(page, s, b), enc, errors)
            except ERRORS:
                vals = None
            if vals is not None and len(vals) == n and cand.score(vals) >= 0 and \
                    any(v is not None for v in vals) and _plausible_text(vals):
                found = vals
        if found is not None:
            out.append(found)
            s = record_end(page, s, b)
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
