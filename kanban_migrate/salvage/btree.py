"""Reading b-tree pages: the cells of table and index pages, their overflow chains, one record.

Its own module because it is what a walk reads, apart from where the walk goes: :class:`BtreeReader`
knows the page source and the text encoding, and only notes which overflow pages a cell used;
which page belongs to whom is the walk's (:mod:`.walk`).
"""
from __future__ import annotations

import struct

from .fileformat import (OVERFLOW_POINTER_SIZE, PageHeader, RecordError, cell_pointers, decode_record,
                         decode_record_partial, decode_record_prefix, local_payload_size, max_local,
                         parse_page_header, read_overflow, read_varint, record_end, table_cell_header)

_U32 = struct.Struct(">I")
# what garbage in a page raises while it is read: caught per cell (the cell is unreadable)
ERRORS = (IndexError, ValueError, struct.error, RecordError, TypeError, OverflowError)


class BtreeReader:
    """The page reading of one salvage. The state object that inherits it (:class:`.walk.Salvager`)
    sets ``get`` (page number -> bytes or None), ``usable``, ``npages``, ``enc``/``errors`` (text
    decoding), ``dec`` (bytes -> str, for partial records), ``claimed`` (page -> owner) and
    ``repaired_cells``."""

    def btree_page(self, pg: int, strict: bool = False):
        """(page, header) of a b-tree page, or (None, None) where the page is missing or is not one."""
        page = self.get(pg)
        hdr = parse_page_header(page, pg, self.usable, strict=strict) if page is not None else None
        return (page, hdr) if hdr is not None else (None, None)

    # One piece: the hot loop of the salvage (every cell of every leaf it decodes), so the
    # in-page case stays inline; cells with overflow chains are handed to :meth:`overflow_cell`.
    # The cell header is read by the one table_cell_header: inlining it again measured ~1% of
    # this loop (bench: 11,163 leaves of the 105 MB board), not worth a second copy.
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
        usable = min(self.usable, len(page))     # the partial last page of a truncated file
        maxlocal = max_local(self.usable, True)
        max_payload = self.npages * self.usable
        enc = self.enc
        errors = self.errors
        claims = self.claimed if check_claims else None
        out: list = []
        broken: list = []
        bad = 0
        try:
            ptrs = cell_pointers(page, hdr)
        except struct.error:
            return out, hdr.cell_count, broken
        floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
        append = out.append
        header = table_cell_header
        decode = decode_record
        for ptr in ptrs:
            if ptr < floor or ptr >= usable:
                bad += 1
                continue
            try:
                plen, rowid, p = header(page, ptr)
                if plen <= maxlocal:
                    end = p + plen
                    try:
                        if end > usable:
                            raise RecordError("payload overruns the page")
                        append((rowid, decode(page, p, end, enc, errors)))
                    except RecordError:
                        # A damaged payload-size varint (a bit flip) while the record itself is
                        # intact: trust the record's own header where it fits on the page, as
                        # SQLite's .recover does. Garbage rarely forms a consistent header.
                        append((rowid, decode(page, p, record_end(page, p, usable), enc, errors)))
                        self.repaired_cells += 1
                elif plen > max_payload or not self.overflow_cell(page, p, plen, rowid, usable, claims,
                                                                  claimed_local, out, broken):
                    bad += 1
            except ERRORS:
                bad += 1
        return out, bad, broken

    def overflow_cell(self, page, p: int, plen: int, rowid, usable: int, claims, claimed_local: list[int],
                      out: list, broken: list) -> bool:
        """A table-leaf cell whose payload goes on in an overflow chain: its record into ``out``, or
        what is readable of it into ``broken`` when the chain is broken; False if the cell's
        overflow pointer is not on the page."""
        local = local_payload_size(plen, self.usable, True)
        if p + local + OVERFLOW_POINTER_SIZE > usable:
            return False
        ovf = _U32.unpack_from(page, p + local)[0]
        data, pages, complete = read_overflow(self.get, ovf, plen - local, self.usable, claims)
        buf = page[p:p + local] + data
        if complete and set(pages).isdisjoint(claimed_local):
            claimed_local.extend(pages)
            out.append((rowid, decode_record(buf, 0, plen, self.enc, self.errors)))
            return True
        prefix = decode_record_prefix(buf, plen, self.enc, self.errors)
        if prefix is None:
            broken.append((rowid, decode_record_partial(buf, self.dec), "overflow chain broken", None))
        else:
            broken.append((rowid, prefix[0], "overflow chain broken", prefix[1]))
        return True

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
        rowids: list[int] = []
        append = rowids.append
        try:
            for ptr in ptrs:
                if ptr < floor or ptr >= usable:
                    return None, False
                plen, rowid, p = table_cell_header(page, ptr)
                if plen <= maxlocal:
                    if p + plen > usable or plen == 0:
                        return None, False
                elif plen > max_payload or self.overflow_payload(page, p, plen, True, usable, claimed_local) is None:
                    return None, False
                append(rowid)
        except ERRORS:
            return None, False
        return rowids, True

    def overflow_payload(self, page, p: int, plen: int, table_leaf: bool, limit: int,
                         claimed_local: list[int]) -> bytes | None:
        """The whole payload of a cell that goes on in an overflow chain, when the chain is complete
        and of pages nothing else owns (they go into ``claimed_local``); else None."""
        local = local_payload_size(plen, self.usable, table_leaf)
        if p + local + OVERFLOW_POINTER_SIZE > limit:
            return None
        ovf = _U32.unpack_from(page, p + local)[0]
        data, pages, complete = read_overflow(self.get, ovf, plen - local, self.usable, self.claimed)
        if not complete or not set(pages).isdisjoint(claimed_local):
            return None
        claimed_local.extend(pages)
        return page[p:p + local] + data

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
            plen, _rowid, p = table_cell_header(page, ptr)
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
            _plen, _rowid, p = table_cell_header(page, ptr)
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
        children: list[int] = []
        out: list = []
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
                    payload = self.overflow_payload(page, p, plen, False, lim, claimed_local)
                    if payload is None:
                        bad += 1
                        continue
                    out.append(decode_record(payload, 0, plen, self.enc, self.errors) if decode else None)
            except ERRORS:
                bad += 1
        return children, out, bad
