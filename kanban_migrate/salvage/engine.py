"""Salvage the rows of a (possibly damaged) SQLite database without needing SQLite.

``salvage()`` runs named phases over one state object (:class:`walk.Salvager`):

- **probe**: page size, reserved bytes, text encoding (from the header, else guessed), the WAL;
- **header**: pointer-map pages and the freelist;
- **schema**: sqlite_schema walked from page 1, a table (with its candidate shape) per entry;
- **b-tree walk**: each table's b-tree, read structurally; clean leaves are kept as runs;
- **sqlite check**: SQLite itself reads each clean run back, in a thread beside the walk (it
  can copy those runs later);
- **orphan scan**: pages no walk reached, given back to their tables (``orphans``);
- **carving**: deleted rows in freeblocks (``include_freelist`` only, ``carve``);
- **assembly**: the result, whose row streams decode or read spooled rows on demand.

A page no walk reached that belongs to a table whose walk was complete is a freed page (stale
content): its rows are counted in ``pages_stale`` and returned only with ``include_freelist``.
Nothing is silently dropped: what cannot be placed goes to ``lost_and_found``.
"""
from __future__ import annotations

import os
import struct
import time

from . import orphans
from .carve import carve_freeblocks
from .fileformat import (DB_HEADER_SIZE, MAGIC, DbHeader, cell_pointers, parse_page_header, pending_byte_page,
                         ptrmap_pages, text_codec, text_decoder, walk_freelist)
from .model import (IndexSalvage, LostRow, Row, SalvageResult, SchemaEntry, Spool, TableSalvage)
from .shapes import ColumnCheck, TableShape, normalize_shapes
from .sqlcopy import ReadBack
from .btree import ERRORS
from .walk import Salvager, Timeout, read_schema, setup_tables, walk_all
from .wal import PageSource, WalIndex, WalSummary, open_db_file, read_wal

__all__ = ["salvage", "SalvageResult", "TableSalvage", "IndexSalvage", "Row", "LostRow",
           "SchemaEntry", "TableShape", "ColumnCheck"]

PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_GUESS_SAMPLE_PAGES = 4000          # pages sampled per candidate page size
_ENCODING_SAMPLE = 1 << 20          # bytes searched for CREATE in each encoding
_MIN_USABLE = 480                   # the smallest usable size SQLite accepts


# --------------------------------------------------------------------------- probe

def _guess_page_size(data, wal: WalIndex | None) -> tuple[int, list[str]]:
    if wal is not None and wal.summary.header_valid:
        return wal.page_size, ["page size taken from the WAL header"]
    best = None
    scores = {}
    size = len(data)
    for ps in PAGE_SIZES:
        n = -(-size // ps)
        if n < 1:
            continue
        hits = 0
        step = max(1, n // _GUESS_SAMPLE_PAGES)
        for pg in range(1, n + 1, step):
            page = data[(pg - 1) * ps:pg * ps]
            h = parse_page_header(page, pg, ps, strict=True)
            if h is not None and h.cell_count:
                try:
                    ptrs = cell_pointers(page, h)
                except struct.error:
                    continue
                if ptrs and h.content_start <= min(ptrs) and max(ptrs) < ps:
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
    head = bytes(data[:_ENCODING_SAMPLE])
    le = head.count(b"C\x00R\x00E\x00A\x00T\x00E\x00")
    be = head.count(b"\x00C\x00R\x00E\x00A\x00T\x00E")
    u8 = head.count(b"CREATE")
    if le > u8 and le >= be:
        return "utf-16-le"
    if be > u8:
        return "utf-16-be"
    return "utf-8"


class _Probe:
    """What the probe phase found: the file, its header, the WAL, page geometry, encoding."""

    def __init__(self, db_path: str, wal_path):
        self.problems: list[str] = []
        self.data = open_db_file(db_path)       # the one exception allowed out: cannot open the file
        data = self.data
        self.header = None
        self.header_problems: list[str] = []
        if len(data) >= DB_HEADER_SIZE:
            try:
                self.header = DbHeader.parse(bytes(data[:DB_HEADER_SIZE]))
                self.header_problems = self.header.problems(len(data))
            except ERRORS:
                self.header = None
        else:
            self.header_problems = [f"file has only {len(data)} bytes (no database header)"]
        header = self.header
        self.wal: WalIndex | None = None
        self.wal_sum: WalSummary | None = None
        if wal_path is None:
            cand = db_path + "-wal"
            if os.path.exists(cand) and os.path.getsize(cand) > 0:
                wal_path = cand
        if wal_path:
            try:
                self.wal = read_wal(wal_path, db_path)
                self.wal_sum = self.wal.summary
            except (OSError, *ERRORS) as e:
                self.problems.append(f"WAL unreadable: {e}")
                self.wal = None
        wal = self.wal
        if header is not None and header.page_size_valid and \
                not (wal is not None and wal.summary.header_valid and wal.page_size != header.page_size
                     and header.magic != MAGIC):
            self.page_size = header.page_size
        else:
            self.page_size, notes = _guess_page_size(data, wal)
            self.problems.extend(notes)
        ps = self.page_size
        self.reserved = 0
        if header is not None and header.page_size_valid and header.page_size == ps and \
                0 <= header.reserved_bytes and ps - header.reserved_bytes >= _MIN_USABLE:
            self.reserved = header.reserved_bytes
        encoding = header.encoding if header is not None else None
        if encoding is None:
            encoding = _guess_encoding(data)
            self.problems.append(f"text encoding unknown; guessed {encoding}")
        self.encoding = encoding
        self.src = PageSource(data, ps, self.reserved, wal)
        if self.src.wal is not None and self.src.is_wal_page(1):
            # the committed page 1 in the WAL carries the current header (freelist, counts)
            try:
                wal_hdr = DbHeader.parse(self.src.page(1)[:DB_HEADER_SIZE])
                if wal_hdr.page_size == ps and not [p for p in wal_hdr.problems() if "magic" not in p]:
                    self.header = wal_hdr
                    self.header_problems = wal_hdr.problems()
            except ERRORS:
                pass
        if wal is not None and self.src.wal is None and wal.offsets:
            self.problems.append("WAL page size differs from the database; WAL ignored")


# --------------------------------------------------------------------------- phases

def phase_header(sv: Salvager) -> None:
    """Pointer-map pages (auto-vacuum) and the freelist, where the header can be trusted."""
    header = sv.header
    if not sv.header_trusted:
        return
    if header.largest_root_page:
        sv.ptrmaps = ptrmap_pages(sv.npages, sv.usable, sv.page_size)
        for p in sv.ptrmaps:
            sv.claimed[p] = "ptrmap"
    if header.freelist_trunk:
        sv.freelist = walk_freelist(sv.get, header.freelist_trunk, sv.npages, sv.usable,
                                    header.freelist_count)
        sv.problems.extend(sv.freelist.problems)


def phase_schema(sv: Salvager) -> None:
    read_schema(sv)
    setup_tables(sv, sv.schema)


def phase_walk(sv: Salvager, read_back: ReadBack) -> None:
    """Every table's b-tree; SQLite reads back each table's clean runs as its walk ends."""
    walk_all(sv, sv.schema, after=read_back.submit)


def open_state(db_path: str, wal_path=None, *, include_freelist: bool = False, time_limit: float = 60.0,
               shapes=None, workdir=None) -> tuple[Salvager, _Probe]:
    """The probe phase: the state object every later phase works on (each phase can be run on
    its own from here, as the tests do)."""
    deadline = time.monotonic() + max(0.0, float(time_limit))
    probe = _Probe(db_path, wal_path)
    dec = text_decoder(probe.encoding)
    enc, errors = text_codec(probe.encoding)
    sv = Salvager(probe.src, dec, deadline, include_freelist, enc, errors, Spool(workdir))
    sv.header = probe.header
    sv.header_trusted = probe.header is not None and probe.header.page_size_valid and \
        probe.header.page_size == probe.page_size
    sv.shape_map = normalize_shapes(shapes)
    sv.claimed[pending_byte_page(probe.page_size)] = "pending-byte"
    return sv, probe


def salvage(db_path, wal_path=None, *, include_freelist: bool = False, time_limit: float = 60.0,
            shapes=None, workdir=None, progress=None) -> SalvageResult:
    """Read every row that can be read from ``db_path`` (and its WAL).

    ``wal_path``: None looks for ``<db_path>-wal`` beside the file; False ignores any WAL;
    a path uses that file. ``shapes``: mapping table name -> TableShape or a sequence of
    them (legacy layouts), used to match pages whose table is not known from the schema.
    ``include_freelist``: also return rows found on freelist pages (and on freed pages the
    freelist no longer lists: unreached pages of a table whose b-tree walk was complete) and
    in freeblocks / unallocated space of table pages, marked source='freelist' / 'freeblock'.
    ``workdir``: where rows are spooled (an anonymous temporary file; default: the system's).
    ``progress(done, total, phase)``: called as each phase ends (a progress bar's fraction).
    Rows are streamed: the result reads the file again as they are iterated, until
    ``result.close()``. Only an unopenable ``db_path`` raises (OSError).
    """
    t0 = time.monotonic()
    db_path = os.fspath(db_path)
    sv, probe = open_state(db_path, wal_path, include_freelist=include_freelist, time_limit=time_limit,
                           shapes=shapes, workdir=workdir)
    problems = list(probe.problems)

    read_back = ReadBack(sv, db_path)
    phases = [("header", phase_header), ("schema", phase_schema),
              ("b-tree walk", lambda s: phase_walk(s, read_back)),
              ("sqlite check", lambda s: read_back.finish()), ("orphan scan", orphans.run)]
    if include_freelist:
        phases.append(("freeblock carving", carve_freeblocks))
    try:
        for done, (phase, fn) in enumerate(phases, 1):
            try:
                fn(sv)
            except Timeout:
                problems.append(f"time limit of {time_limit}s reached during {phase}; result is partial")
                break
            except RecursionError:
                problems.append(f"recursion limit reached during {phase}; result is partial")
            except Exception as e:   # garbage must never take the whole salvage down
                problems.append(f"{phase} stopped by {type(e).__name__}: {e}; result is partial")
            if progress is not None:
                progress(done, len(phases), phase)
    finally:
        read_back.close()
    return _assemble(sv, probe, db_path, problems, t0)


def _assemble(sv: Salvager, probe: _Probe, db_path: str, problems: list[str], t0: float) -> SalvageResult:
    src = probe.src
    res = SalvageResult(
        path=db_path, header=sv.header, header_problems=probe.header_problems, encoding=probe.encoding,
        page_size=probe.page_size, usable_size=src.usable, schema=sv.schema,
        tables={name: t.out for name, t in sv.tables.items()}, indexes=sv.indexes,
        lost_and_found=sv.lost, wal=probe.wal_sum, pages_total=src.page_count,
        pages_unreadable=sv.pages_unreadable,
        pages_orphan=sum(1 for v in sv.claimed.values() if v.startswith("orphan")),
        timed_out=sv.timed_out, elapsed=time.monotonic() - t0, freelist=sv.freelist,
        problems=problems + sv.problems, pages_stale=sv.pages_stale, cells_repaired=sv.repaired_cells)
    res._closers.extend((src.close, sv.spool.close))
    return res
