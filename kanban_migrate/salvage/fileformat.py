"""Low-level pieces of the SQLite file format, read without SQLite.

One module (over 600 lines) because it is the one source of format facts the other salvage
modules import.

Everything here works on ``bytes`` (or anything ``struct.unpack_from`` accepts) and is
bounds-checked by construction: a short or malformed buffer raises ``IndexError``,
``ValueError`` or ``struct.error`` (all caught by the engine), never loops and never
reads outside the buffer it was given.

Reference: https://www.sqlite.org/fileformat2.html
"""
from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

__all__ = [
    "MAGIC", "DbHeader", "read_varint", "read_varint_signed", "serial_type_size",
    "decode_record", "text_decoder", "text_codec", "PageHeader", "parse_page_header",
    "cell_pointers", "local_payload_size", "read_overflow", "walk_freelist", "FreelistInfo",
    "ptrmap_pages", "is_ptrmap_page", "ptrmap_page_for", "ptrmap_entries",
    "record_serial_types", "pending_byte_page", "RecordError",
    "PAGE_TABLE_LEAF", "PAGE_TABLE_INTERIOR", "PAGE_INDEX_LEAF", "PAGE_INDEX_INTERIOR",
    "freeblocks", "BTREE_PAGE_TYPES", "PTRMAP_BTREE", "max_local", "record_end",
    "decode_record_partial", "decode_record_prefix", "OVERFLOW_POINTER_SIZE", "DB_HEADER_SIZE", "btree_header_offset",
    "ptrmap_entry", "serial_type_of_text", "table_cell_header",
]

MAGIC = b"SQLite format 3\x00"
DB_HEADER_SIZE = 100             # page 1 starts with the database header, then its b-tree header

PAGE_INDEX_INTERIOR = 2
PAGE_TABLE_INTERIOR = 5
PAGE_INDEX_LEAF = 10
PAGE_TABLE_LEAF = 13
BTREE_PAGE_TYPES = (PAGE_INDEX_INTERIOR, PAGE_TABLE_INTERIOR, PAGE_INDEX_LEAF, PAGE_TABLE_LEAF)
PTRMAP_BTREE = 5                 # pointer-map entry type of a non-root b-tree page
OVERFLOW_POINTER_SIZE = 4        # the first-overflow-page number after a cell's local payload

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")
_F64U = _F64.unpack_from
_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_I64 = struct.Struct(">q").unpack_from
_HDR = struct.Struct(">16sHBBBBBBIIIIIIIIIiIi20sII")
assert _HDR.size == 100

_ENCODINGS = {1: "utf-8", 2: "utf-16-le", 3: "utf-16-be"}


class RecordError(ValueError):
    """A record (or cell) is not well formed."""


# --------------------------------------------------------------------------- header

@dataclass
class DbHeader:
    """The 100-byte database header (all fields as stored, page_size decoded)."""

    magic: bytes
    page_size: int                 # 65536 when stored as 1; raw value otherwise (may be insane)
    write_version: int
    read_version: int
    reserved_bytes: int            # unused bytes at the end of each page
    max_payload_fraction: int      # must be 64
    min_payload_fraction: int      # must be 32
    leaf_payload_fraction: int     # must be 32
    change_counter: int
    page_count: int                # "in-header database size" (valid only if version_valid_for == change_counter)
    freelist_trunk: int
    freelist_count: int
    schema_cookie: int
    schema_format: int
    default_cache_size: int
    largest_root_page: int         # non-zero: auto-vacuum / incremental-vacuum (pointer-map pages exist)
    text_encoding: int             # 1 UTF-8, 2 UTF-16le, 3 UTF-16be
    user_version: int
    incremental_vacuum: int
    application_id: int
    reserved_zero: bytes
    version_valid_for: int
    sqlite_version_number: int

    @classmethod
    def parse(cls, data: bytes) -> "DbHeader":
        """Parse the first 100 bytes of a database file (raises ValueError if shorter)."""
        if len(data) < 100:
            raise ValueError(f"database header needs 100 bytes, got {len(data)}")
        f = _HDR.unpack_from(data, 0)
        page_size = 65536 if f[1] == 1 else f[1]
        return cls(f[0], page_size, *f[2:])

    # -- derived values
    @property
    def usable_size(self) -> int:
        return self.page_size - self.reserved_bytes

    @property
    def encoding(self) -> str | None:
        """Python codec name of the text encoding, None if the field is invalid."""
        return _ENCODINGS.get(self.text_encoding)

    @property
    def auto_vacuum(self) -> bool:
        return self.largest_root_page != 0

    @property
    def page_count_valid(self) -> bool:
        return self.page_count > 0 and self.version_valid_for == self.change_counter

    @property
    def page_size_valid(self) -> bool:
        ps = self.page_size
        return 512 <= ps <= 65536 and ps & (ps - 1) == 0

    def problems(self, file_size: int | None = None) -> list[str]:
        """Everything about this header that SQLite would find insane (empty list: sane)."""
        out: list[str] = []
        if self.magic != MAGIC:
            out.append(f"bad magic {self.magic!r}")
        if not self.page_size_valid:
            out.append(f"page size {self.page_size} is not a power of two in 512..65536")
        if self.write_version not in (1, 2):
            out.append(f"file format write version {self.write_version} not 1 or 2")
        if self.read_version not in (1, 2):
            out.append(f"file format read version {self.read_version} not 1 or 2")
        if self.page_size_valid and self.usable_size < 480:
            out.append(f"usable page size {self.usable_size} < 480 (reserved {self.reserved_bytes})")
        if self.max_payload_fraction != 64:
            out.append(f"max embedded payload fraction {self.max_payload_fraction} != 64")
        if self.min_payload_fraction != 32:
            out.append(f"min embedded payload fraction {self.min_payload_fraction} != 32")
        if self.leaf_payload_fraction != 32:
            out.append(f"leaf payload fraction {self.leaf_payload_fraction} != 32")
        if self.text_encoding not in _ENCODINGS:
            out.append(f"text encoding {self.text_encoding} not 1, 2 or 3")
        if self.schema_format not in (1, 2, 3, 4):
            out.append(f"schema format {self.schema_format} not 1..4")
        if self.reserved_zero != b"\x00" * 20:
            out.append("reserved-for-expansion bytes 72..91 are not zero")
        if self.incremental_vacuum and not self.largest_root_page:
            out.append("incremental vacuum set without auto-vacuum")
        if self.freelist_trunk == 0 and self.freelist_count:
            out.append(f"freelist count {self.freelist_count} without a trunk page")
        if file_size is not None and self.page_size_valid:
            pages_in_file = -(-file_size // self.page_size)
            if file_size % self.page_size:
                out.append(f"file size {file_size} is not a multiple of the page size {self.page_size}")
            if self.page_count_valid and self.page_count != pages_in_file:
                out.append(f"header page count {self.page_count} != {pages_in_file} pages in the file")
            if self.freelist_trunk > pages_in_file:
                out.append(f"freelist trunk {self.freelist_trunk} beyond the end of the file")
            if self.freelist_count > pages_in_file:
                out.append(f"freelist count {self.freelist_count} exceeds the {pages_in_file} pages in the file")
        return out


# --------------------------------------------------------------------------- varints

def read_varint(buf, pos: int) -> tuple[int, int]:
    """Return (unsigned value, position after it). Raises IndexError on a short buffer."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    v = b & 0x7F
    for i in range(1, 8):
        b = buf[pos + i]
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, pos + i + 1
    return (v << 8) | buf[pos + 8], pos + 9


def read_varint_signed(buf, pos: int) -> tuple[int, int]:
    """Varint interpreted as a signed 64-bit integer (rowids)."""
    v, pos = read_varint(buf, pos)
    if v >= 0x8000000000000000:
        v -= 0x10000000000000000
    return v, pos


def table_cell_header(page, ptr: int) -> tuple[int, int, int]:
    """(payload size, rowid, where the payload starts) of the table-leaf cell at ``ptr``.

    Read once per cell of every leaf the salvage reads, so the common short varints (a payload
    size under 16 KiB, a rowid under 2**21) are decoded here without a call."""
    b = page[ptr]
    if b < 0x80:
        plen, p = b, ptr + 1
    elif page[ptr + 1] < 0x80:
        plen, p = ((b & 0x7F) << 7) | page[ptr + 1], ptr + 2
    else:
        plen, p = read_varint(page, ptr)
    b = page[p]
    if b < 0x80:
        return plen, b, p + 1
    b1 = page[p + 1]
    if b1 < 0x80:
        return plen, ((b & 0x7F) << 7) | b1, p + 2
    if page[p + 2] < 0x80:
        return plen, ((b & 0x7F) << 14) | ((b1 & 0x7F) << 7) | page[p + 2], p + 3
    rowid, p = read_varint_signed(page, p)
    return plen, rowid, p


_FIXED_SIZES = (0, 1, 2, 3, 4, 6, 8, 8, 0, 0, -1, -1)


def serial_type_size(t: int) -> int:
    """Content size of a serial type; -1 for the reserved types 10 and 11."""
    if t >= 12:
        return (t - 12) >> 1
    return _FIXED_SIZES[t]


def serial_type_of_text(encoded: bytes) -> int:
    """The serial type a record header gives a text value of these encoded bytes."""
    return 13 + 2 * len(encoded)


# --------------------------------------------------------------------------- records

def text_codec(encoding: str | None) -> tuple[str, str]:
    """(codec, errors) to pass to decode_record for a database text encoding."""
    if encoding in (None, "utf-8"):
        return "utf-8", "surrogateescape"
    return encoding, "surrogatepass"


def text_decoder(encoding: str | None):
    """A function bytes -> str for the database text encoding.

    Invalid UTF-8 is kept losslessly with ``surrogateescape`` (dump.py writes such text
    back as the exact original bytes); invalid UTF-16 with ``surrogatepass``/replacement.
    """
    if encoding in (None, "utf-8"):
        def dec(b: bytes) -> str:
            return b.decode("utf-8", "surrogateescape")
        return dec
    codec = encoding

    def dec16(b: bytes) -> str:
        try:
            return b.decode(codec, "surrogatepass")
        except UnicodeDecodeError:
            return b.decode(codec, "replace")
    return dec16


# serial type -> (unpack_from, size) of the fixed-size numbers struct reads directly
_NUMBERS = {2: (_I16, 2), 4: (_I32, 4), 6: (_I64, 8), 7: (_F64U, 8)}


# One piece: the innermost loop of the salvage (every value of every record it reads); the serial
# types' varints are read inline because a call per value costs more than the decoding.
def decode_record(buf: bytes, start: int, end: int, enc: str = "utf-8",
                  errors: str = "surrogateescape") -> list:
    """Decode the record stored in ``buf[start:end]`` (``buf`` is ``bytes``).

    Returns the column values (None, int, float, str, bytes). Text is decoded with
    ``enc``/``errors`` (the default keeps invalid UTF-8 losslessly). Raises RecordError
    (a ValueError) when the record is inconsistent: header longer than the payload,
    reserved serial types, or value sizes that do not add up *exactly* to the payload
    size; IndexError/struct.error/UnicodeDecodeError on garbage.
    """
    if end > len(buf):
        raise RecordError("payload extends past the end of the data")
    b0 = buf[start]
    if b0 < 0x80:
        hend = start + b0
        p = start + 1
    else:
        hlen, p = read_varint(buf, start)
        if hlen > 0xFFFF:
            raise RecordError("record header too long")
        hend = start + hlen
    if hend > end or hend < p:
        raise RecordError("record header overruns payload")
    off = hend
    out = []
    append = out.append
    while p < hend:
        t = buf[p]
        if t < 0x80:
            p += 1
        else:
            b1 = buf[p + 1]
            if b1 < 0x80:
                t = ((t & 0x7F) << 7) | b1
                p += 2
            else:
                t, p = read_varint(buf, p)
        if t >= 12:
            if t & 1:
                e = off + ((t - 13) >> 1)
                append(buf[off:e].decode(enc, errors))
            else:
                e = off + ((t - 12) >> 1)
                append(buf[off:e])
            off = e
        elif t == 0:
            append(None)
        elif t == 1:
            v = buf[off]
            append(v - 256 if v > 127 else v)
            off += 1
        elif t == 8 or t == 9:
            append(t - 8)
        elif t == 3 or t == 5:
            e = off + (3 if t == 3 else 6)
            if e > end:
                raise RecordError("int overruns payload")
            append(int.from_bytes(buf[off:e], "big", signed=True))
            off = e
        else:
            number = _NUMBERS.get(t)
            if number is None:
                raise RecordError(f"reserved serial type {t}")
            append(number[0](buf, off)[0])
            off += number[1]
    if p != hend:
        raise RecordError("serial type overruns header")
    if off != end:
        raise RecordError("record content size does not match payload size")
    return out


def record_serial_types(buf, start: int, end: int) -> list[int] | None:
    """The serial types of a record header, or None if the header is not consistent."""
    try:
        hlen, p = read_varint(buf, start)
        hend = start + hlen
        if hend > end or hend < p:
            return None
        out = []
        total = hlen
        while p < hend:
            t, p = read_varint(buf, p)
            if t in (10, 11):
                return None
            out.append(t)
            total += serial_type_size(t)
        if p != hend or total != end - start:
            return None
        return out
    except IndexError:
        return None


def record_end(buf, start: int, limit: int) -> int:
    """Where the record starting at ``start`` ends, by its own header; RecordError when the
    header has a reserved serial type or the record would run past ``limit``."""
    hlen, p = read_varint(buf, start)
    end = start + hlen
    total = hlen
    while p < end:
        t, p = read_varint(buf, p)
        size = serial_type_size(t)
        if size < 0:
            raise RecordError("reserved serial type")
        total += size
    if start + total > limit:
        raise RecordError("record overruns region")
    return start + total


def decode_record_partial(buf, dec) -> list:
    """Best-effort decode of a truncated record (a broken overflow chain): the values that fit,
    None for the rest. Never raises."""
    out = []
    try:
        hlen, p = read_varint(buf, 0)
        hlen = min(hlen, len(buf))
        off = hlen
        n = len(buf)
        while p < hlen:
            t, p = read_varint(buf, p)
            size = serial_type_size(t)
            if size < 0:
                break
            fits = off + size <= n
            if t >= 12:
                out.append((dec(buf[off:off + size]) if t & 1 else bytes(buf[off:off + size])) if fits else None)
            elif t in (8, 9):
                out.append(t - 8)
            elif t == 0:
                out.append(None)
            elif t == 7:
                out.append(_F64U(buf, off)[0] if fits else None)
            else:
                out.append(int.from_bytes(buf[off:off + size], "big", signed=True) if fits else None)
            off += size
    except (IndexError, ValueError, struct.error):
        pass
    return out


def decode_record_prefix(buf, size: int, enc: str = "utf-8", errors: str = "surrogateescape"):
    """Decode the readable prefix ``buf`` of a record of ``size`` bytes whose overflow chain
    is broken. Returns (values, cut) or None when the record header itself is not readable
    (cut short, a reserved serial type, or value sizes that do not add up to ``size``).

    ``cut`` lists the positions of the values whose bytes are not all in ``buf``. Values
    wholly in ``buf`` are decoded exactly as :func:`decode_record` would. A cut value keeps
    what is readable of it: text the decodable prefix (a multibyte sequence cut at the end
    becomes one U+FFFD), a blob its prefix bytes; a cut number, or a value of which no byte
    is readable, is NULL (None).
    """
    n = len(buf)
    try:
        hlen, p = read_varint(buf, 0)
        if hlen > n or hlen < p or hlen > size:
            return None
        types = []
        total = hlen
        while p < hlen:
            t, p = read_varint(buf, p)
            sz = serial_type_size(t)
            if sz < 0:
                return None
            types.append((t, sz))
            total += sz
        if p != hlen or total != size:
            return None
        out = []
        cut = []
        off = hlen
        for i, (t, sz) in enumerate(types):
            end = off + sz
            if end <= n:
                if t == 0:
                    out.append(None)
                elif t in (8, 9):
                    out.append(t - 8)
                elif t == 7:
                    out.append(_F64U(buf, off)[0])
                elif t >= 12:
                    out.append(bytes(buf[off:end]).decode(enc, errors) if t & 1 else bytes(buf[off:end]))
                else:
                    out.append(int.from_bytes(buf[off:end], "big", signed=True))
            else:
                cut.append(i)
                if t >= 12 and off < n:
                    part = bytes(buf[off:n])
                    if t & 1:
                        d = codecs.getincrementaldecoder(enc)(errors)
                        text = d.decode(part, final=False)
                        if d.getstate()[0]:
                            text += "\ufffd"
                        out.append(text)
                    else:
                        out.append(part)
                else:
                    out.append(None)
            off = end
        return out, cut
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- b-tree pages

@dataclass(slots=True)
class PageHeader:
    page_type: int          # 2, 5, 10 or 13
    first_freeblock: int
    cell_count: int
    content_start: int      # 65536 when stored as 0
    fragmented_bytes: int
    right_child: int        # interior pages only, else 0
    header_offset: int      # 100 on page 1, else 0
    header_size: int        # 8 (leaf) or 12 (interior)

    @property
    def is_table(self) -> bool:
        return self.page_type in (PAGE_TABLE_LEAF, PAGE_TABLE_INTERIOR)


_BTHDR = struct.Struct(">BHHHB")


def btree_header_offset(pgno: int) -> int:
    """Where a page's b-tree header starts: after the database header on page 1."""
    return DB_HEADER_SIZE if pgno == 1 else 0


def parse_page_header(page, pgno: int, usable: int, strict: bool = True) -> PageHeader | None:
    """Parse a b-tree page header; None if the page is not a plausible b-tree page.

    ``strict`` additionally requires the cell-content area and freeblock pointer to be
    consistent, which is how orphan pages are told apart from overflow or garbage pages.
    """
    off = btree_header_offset(pgno)
    if len(page) < off + 8:
        return None
    t, fb, n, cs, frag = _BTHDR.unpack_from(page, off)
    if t == PAGE_TABLE_LEAF or t == PAGE_INDEX_LEAF:
        hs = 8
        rc = 0
    elif t == PAGE_TABLE_INTERIOR or t == PAGE_INDEX_INTERIOR:
        hs = 12
        if len(page) < off + 12:
            return None
        rc = _U32.unpack_from(page, off + 8)[0]
    else:
        return None
    if cs == 0:
        cs = 65536
    ptr_end = off + hs + 2 * n
    if ptr_end > usable:
        return None
    if strict:
        if n and (cs < ptr_end or cs > usable):
            return None
        if fb and (fb < ptr_end or fb + 4 > usable):
            return None
        if hs == 12 and rc == 0:
            return None
    return PageHeader(t, fb, n, cs, frag, rc, off, hs)


_PTR_STRUCTS: dict[int, struct.Struct] = {}


def cell_pointers(page, hdr: PageHeader) -> tuple[int, ...]:
    n = hdr.cell_count
    s = _PTR_STRUCTS.get(n)
    if s is None:
        s = _PTR_STRUCTS[n] = struct.Struct(">%dH" % n)
    return s.unpack_from(page, hdr.header_offset + hdr.header_size)


def max_local(usable: int, table_leaf: bool) -> int:
    """The largest payload kept whole on a b-tree page (larger ones spill to overflow pages)."""
    return usable - 35 if table_leaf else ((usable - 12) * 64 // 255) - 23


def local_payload_size(payload: int, usable: int, table_leaf: bool) -> int:
    """Bytes of a payload stored on the b-tree page itself (the rest goes to overflow)."""
    x = max_local(usable, table_leaf)
    if payload <= x:
        return payload
    m = ((usable - 12) * 32 // 255) - 23
    k = m + (payload - m) % (usable - 4)
    return k if k <= x else m


def read_overflow(get_page, first: int, need: int, usable: int, claimed=None) -> tuple[bytes, list[int], bool]:
    """Follow an overflow chain for ``need`` bytes.

    ``get_page(pgno)`` returns page bytes or None. ``claimed`` (a set or dict) holds pages
    already known to be something else; reaching one ends the chain as broken.
    Returns (data, pages, complete). ``complete`` is False when the chain is short,
    cyclic, leaves the file, runs into a claimed page, or does not end with a zero
    next-pointer exactly when the payload is complete (as SQLite's integrity_check demands).
    When the chain is broken, ``data`` is the trusted prefix only: the content of the page
    whose next-pointer broke the chain is left out (a page overwritten with garbage is
    exactly such a page; its bytes would only append garbage to the readable part).
    """
    chunks = []
    pages: list[int] = []
    seen = set()
    per = usable - 4
    got = 0
    pg = first
    while got < need:
        if pg == 0 or pg in seen or (claimed is not None and pg in claimed):
            return b"".join(chunks[:-1]), pages, False
        data = get_page(pg)
        if data is None or len(data) < usable:
            return b"".join(chunks[:-1]), pages, False
        seen.add(pg)
        pages.append(pg)
        take = need - got
        if take > per:
            take = per
        chunks.append(data[4:4 + take])
        got += take
        pg = _U32.unpack_from(data, 0)[0]
    if pg != 0:
        # the last page does not end the chain: not the overflow page it should be
        return b"".join(chunks[:-1]), pages, False
    return b"".join(chunks), pages, True


def freeblocks(page, hdr: PageHeader, usable: int) -> list[tuple[int, int]]:
    """(offset, size) of the freeblocks of a page, following the chain with guards."""
    out = []
    fb = hdr.first_freeblock
    floor = hdr.header_offset + hdr.header_size + 2 * hdr.cell_count
    seen = set()
    while fb:
        if fb in seen or fb < floor or fb + 4 > usable:
            break
        seen.add(fb)
        nxt, size = struct.unpack_from(">HH", page, fb)
        if size < 4 or fb + size > usable:
            break
        out.append((fb, size))
        if nxt and nxt <= fb:   # the chain is sorted by offset in valid files
            break
        fb = nxt
    return out


# --------------------------------------------------------------------------- freelist, ptrmap

@dataclass
class FreelistInfo:
    trunks: list[int] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def pages(self) -> set[int]:
        return set(self.trunks) | set(self.leaves)


def walk_freelist(get_page, first_trunk: int, page_count: int, usable: int,
                  expected: int | None = None) -> FreelistInfo:
    """Walk the freelist trunk chain with cycle and bound guards."""
    info = FreelistInfo()
    seen: set[int] = set()
    t = first_trunk
    max_leaves = (usable // 4) - 2
    limit = expected if expected is not None else page_count
    while t:
        if t in seen:
            info.problems.append(f"freelist trunk cycle at page {t}")
            break
        if t > page_count or t < 2:
            info.problems.append(f"freelist trunk page {t} out of range")
            break
        data = get_page(t)
        if data is None:
            info.problems.append(f"freelist trunk page {t} unreadable")
            break
        seen.add(t)
        info.trunks.append(t)
        nxt, n = struct.unpack_from(">II", data, 0)
        if n > max_leaves:
            info.problems.append(f"freelist trunk {t} claims {n} leaves (max {max_leaves})")
            n = 0
        leaves = struct.unpack_from(">%dI" % n, data, 8) if n else ()
        for lf in leaves:
            if 2 <= lf <= page_count and lf not in seen:
                seen.add(lf)
                info.leaves.append(lf)
            else:
                info.problems.append(f"freelist leaf {lf} on trunk {t} invalid")
        if len(seen) > limit + 1 and expected is not None:
            info.problems.append("freelist longer than the header says")
            break
        t = nxt
    if expected is not None and len(seen) != expected and not info.problems:
        info.problems.append(f"freelist has {len(seen)} pages, header says {expected}")
    return info


def pending_byte_page(page_size: int) -> int:
    """The page holding the lock byte range (never used for data)."""
    return 0x40000000 // page_size + 1


def ptrmap_page_for(pgno: int, usable: int, page_size: int) -> int:
    """The pointer-map page that holds the entry for ``pgno`` (as SQLite's ptrmapPageno)."""
    if pgno < 2:
        return 0
    per = usable // 5 + 1
    ret = ((pgno - 2) // per) * per + 2
    if ret == pending_byte_page(page_size):
        ret += 1
    return ret


def ptrmap_pages(page_count: int, usable: int, page_size: int) -> set[int]:
    """Pointer-map pages of an auto-vacuum database with ``page_count`` pages."""
    per = usable // 5 + 1
    pend = pending_byte_page(page_size)
    out = set()
    k = 0
    while True:
        pg = 2 + k * per
        if pg == pend:
            pg += 1
        if pg > page_count:
            break
        out.add(pg)
        k += 1
    return out


def is_ptrmap_page(pgno: int, usable: int, page_size: int) -> bool:
    return pgno >= 2 and ptrmap_page_for(pgno, usable, page_size) == pgno


_PTRMAP_ENTRY = struct.Struct(">BI")


def ptrmap_entry(page, index: int, usable: int) -> tuple[int, int] | None:
    """(type, parent) of the index-th entry of a pointer-map page; None past its end."""
    if index < 0 or (index + 1) * _PTRMAP_ENTRY.size > usable:
        return None
    return _PTRMAP_ENTRY.unpack_from(page, index * _PTRMAP_ENTRY.size)


def ptrmap_entries(page, usable: int, first_covered: int):
    """Yield (pgno, type, parent) from one pointer-map page covering pages from first_covered."""
    per = usable // 5
    for i in range(per):
        t, parent = struct.unpack_from(">BI", page, i * 5)
        if t == 0:
            continue
        yield first_covered + i, t, parent
