"""What a salvage gives back: rows, lost rows, schema entries and counters, as streams.

Rows never sit in memory as a whole: a table's rows are either re-read from the file on demand
(the leaves its b-tree walk found clean, see :class:`Run`) or spooled in batches to an
anonymous temporary file (:class:`Spool`). Each stream can be iterated any number of times, in
the same order: b-tree rows first, then rows from orphan pages, then freelist / freeblock rows.
"""
from __future__ import annotations

import marshal
import os
import tempfile
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter

from .fileformat import DbHeader, FreelistInfo
from .wal import WalSummary

RANK = {"btree": 0, "orphan": 1}          # everything else ranks 2
SPOOL_BATCH = 2048                        # rows per spooled batch: memory per open stream


class Row(tuple):
    """One salvaged row: (rowid, values, source, page) with attribute access.

    ``values`` is a tuple with the table's full column count, rowid alias filled in;
    ``rowid`` is None for WITHOUT ROWID tables and carved freeblock rows; ``source`` is
    'btree', 'orphan', 'freelist' or 'freeblock'; ``page`` is where the cell was read.

    ``partial`` (default False): the record's overflow chain is broken, so only its readable
    part is here; ``partial_columns`` (default ``()``) names the columns whose bytes were cut
    (their values hold what could be read of them, see ``fileformat.decode_record_prefix``).
    A partial row is stored as a 6-tuple (…, True, column names); every other row stays a
    4-tuple, so the common case costs nothing.
    """

    __slots__ = ()
    rowid = property(itemgetter(0))
    values = property(itemgetter(1))
    source = property(itemgetter(2))
    page = property(itemgetter(3))

    @property
    def partial(self) -> bool:
        return len(self) > 4 and bool(self[4])

    @property
    def partial_columns(self) -> tuple:
        return tuple(self[5]) if len(self) > 5 else ()

    def __new__(cls, rowid, values, source, page, partial=False, partial_columns=()):
        if partial:
            return new_tuple(cls, (rowid, values, source, page, True, tuple(partial_columns)))
        return new_tuple(cls, (rowid, values, source, page))

    def __repr__(self) -> str:
        extra = f", partial=True, partial_columns={self.partial_columns!r}" if self.partial else ""
        return f"Row(rowid={self[0]!r}, values={self[1]!r}, source={self[2]!r}, page={self[3]}{extra})"


new_tuple = tuple.__new__     # a Row (or other tuple subclass) without calling its __new__: per row, so it counts


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


# --------------------------------------------------------------------------- storage

class Spool:
    """One anonymous temporary file that many :class:`Segment` s append batches to."""

    def __init__(self, workdir=None):
        self._dir = os.fspath(workdir) if workdir is not None else None
        self._fh = None
        self._end = 0

    def write(self, data: bytes) -> int:
        if self._fh is None:
            self._fh = tempfile.TemporaryFile(dir=self._dir, prefix="salvage-spool-")
        off = self._end
        os.pwrite(self._fh.fileno(), data, off)
        self._end += len(data)
        return off

    def read(self, off: int, size: int) -> bytes:
        return os.pread(self._fh.fileno(), size, off)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Segment:
    """Tuples appended in order, kept in the spool in batches of SPOOL_BATCH; iterable again
    and again. ``make`` turns a stored tuple back into the object yielded."""

    def __init__(self, spool: Spool, make=None):
        self._spool = spool
        self._batches: list[tuple[int, int]] = []
        self._buf: list = []
        self.count = 0
        self._make = make

    def append(self, item: tuple) -> None:
        buf = self._buf
        buf.append(item)
        self.count += 1
        if len(buf) >= SPOOL_BATCH:
            data = marshal.dumps(self._buf)
            self._batches.append((self._spool.write(data), len(data)))
            self._buf = []

    def __iter__(self):
        make = self._make
        for off, size in list(self._batches):
            batch = marshal.loads(self._spool.read(off, size))
            if make is None:
                yield from batch
            else:
                for item in batch:
                    yield make(item)
        for item in list(self._buf):
            yield item if make is None else make(item)

    def __len__(self) -> int:
        return self.count


def _row(item) -> Row:
    return new_tuple(Row, item)


def _lost(item) -> LostRow:
    return LostRow(*item)


class LostRows:
    """``lost_and_found``: spooled LostRow records, iterable in the order they were found."""

    def __init__(self, spool: Spool):
        self._seg = Segment(spool, _lost)

    def append(self, lost: LostRow) -> None:
        self._seg.append((lost.page, lost.rowid, tuple(lost.values), lost.source, lost.reason, lost.table))

    def add(self, page, rowid, values, source, reason, table=None) -> None:
        self._seg.append((page, rowid, tuple(values), source, reason, table))

    def __iter__(self):
        return iter(self._seg)

    def __len__(self) -> int:
        return self._seg.count

    def __bool__(self) -> bool:
        return self._seg.count > 0


@dataclass
class Run:
    """Consecutive clean leaves of a table's b-tree, in key order, every page and overflow chain
    well formed: ``leaves`` are (page, first rowid, last rowid, cells, sum of rowids), rowids
    ascending throughout. The pages are re-read to give the rows. ``verified``: SQLite itself
    read exactly these rows (so it can copy them); ``copied``: it did, into the rebuilt board,
    and iteration skips them."""

    leaves: list = field(default_factory=list)
    verified: bool = False
    copied: bool = False

    @property
    def pages(self) -> list[int]:
        return [leaf[0] for leaf in self.leaves]

    @property
    def first(self) -> int:
        return self.leaves[0][1]

    @property
    def last(self) -> int:
        return self.leaves[-1][2]

    @property
    def count(self) -> int:
        return sum(leaf[3] for leaf in self.leaves)

    @property
    def total(self) -> int:
        return sum(leaf[4] for leaf in self.leaves)


class RowStream:
    """The rows of one table: its clean runs (decoded from the file on demand), then rows
    spooled from damaged leaves, orphan pages, and freelist/freeblock carving, in that order.
    Iterable any number of times; ``len()`` and truth need no decoding."""

    def __init__(self, spool: Spool, reader=None):
        self.runs: list[Run] = []
        self._reader = reader          # run -> iterator of Row (the salvage state's run_rows)
        self.ranked = [Segment(spool, _row), Segment(spool, _row), Segment(spool, _row)]

    def add(self, rowid, values, source, page) -> None:
        self.ranked[RANK.get(source, 2)].append((rowid, values, source, page))

    def add_partial(self, rowid, values, source, page, columns) -> None:
        """A row kept with only its readable part (see :class:`Row`)."""
        self.ranked[RANK.get(source, 2)].append((rowid, values, source, page, True, tuple(columns)))

    def __iter__(self):
        for run in self.runs:
            if not run.copied:
                yield from self._reader(run)
        for seg in self.ranked:
            yield from seg

    def __len__(self) -> int:
        return sum(r.count for r in self.runs if not r.copied) + sum(s.count for s in self.ranked)

    def __bool__(self) -> bool:
        return len(self) > 0


class RowidSet:
    """A set of rowids as sorted disjoint intervals: ascending insertions (a b-tree walk) extend
    the last interval in O(1), and memory grows with the gaps between rowids, not their number."""

    __slots__ = ("lo", "hi")

    def __init__(self):
        self.lo: list[int] = []
        self.hi: list[int] = []

    def add(self, r: int) -> bool:
        """Add ``r``; False if it was already there."""
        lo, hi = self.lo, self.hi
        if not hi or r > hi[-1]:
            if hi and r == hi[-1] + 1:
                hi[-1] = r
            else:
                lo.append(r)
                hi.append(r)
            return True
        i = bisect_right(lo, r) - 1
        if i >= 0 and r <= hi[i]:
            return False
        left = i >= 0 and hi[i] == r - 1
        right = i + 1 < len(lo) and lo[i + 1] == r + 1
        if left and right:
            hi[i] = hi[i + 1]
            del lo[i + 1], hi[i + 1]
        elif left:
            hi[i] = r
        elif right:
            lo[i + 1] = r
        else:
            lo.insert(i + 1, r)
            hi.insert(i + 1, r)
        return True

    def extend_ascending(self, rowids: list[int]) -> None:
        """Add strictly ascending rowids, all above every rowid already in the set."""
        lo, hi = self.lo, self.hi
        if rowids[-1] - rowids[0] == len(rowids) - 1:
            if hi and rowids[0] == hi[-1] + 1:
                hi[-1] = rowids[-1]
            else:
                lo.append(rowids[0])
                hi.append(rowids[-1])
            return
        for r in rowids:
            if hi and r == hi[-1] + 1:
                hi[-1] = r
            else:
                lo.append(r)
                hi.append(r)

    def __contains__(self, r: int) -> bool:
        i = bisect_right(self.lo, r) - 1
        return i >= 0 and r <= self.hi[i]


# --------------------------------------------------------------------------- results

@dataclass
class TableSalvage:
    """One table's salvage. ``rows`` is a :class:`RowStream` (iterate it; ``len()`` works).

    ``sound``: the walk reached the whole tree and every row is in clean b-tree runs that
    SQLite itself read back. Verified runs of any table can be copied by SQLite from
    ``source_path`` (``salvage.sqlcopy.copy_sound_rows``); ``rows`` then yields the rest."""

    name: str
    columns: list[str]
    rows: RowStream = None
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
    source_path: str | None = None    # the file SQLite can read the verified runs from

    @property
    def sound(self) -> bool:
        rows = self.rows
        return bool(rows is not None and rows.runs and all(r.verified for r in rows.runs)
                    and not any(s.count for s in rows.ranked)
                    and not self.missing_subtrees and not self.unreadable_cells)


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
    lost_and_found: LostRows
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
    _closers: list = field(default_factory=list, repr=False)

    def rows(self, table: str):
        t = self.tables.get(table)
        return t.rows if t is not None else []

    def close(self) -> None:
        """Release the file and the spool (rows can no longer be iterated)."""
        for c in self._closers:
            c()
        self._closers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
