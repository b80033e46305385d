"""Write-ahead-log files and the page source that overlays them on the main file.

Reference: https://www.sqlite.org/fileformat2.html#walformat
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field

__all__ = ["WAL_MAGIC_LE", "WAL_MAGIC_BE", "WalHeader", "WalSummary", "WalIndex",
           "wal_checksum", "read_wal", "wal_summary", "PageSource"]

WAL_MAGIC_LE = 0x377F0682   # checksums computed on little-endian 32-bit words
WAL_MAGIC_BE = 0x377F0683   # checksums computed on big-endian 32-bit words
WAL_HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24
_WALHDR = struct.Struct(">IIIIIIII")
_FRAMEHDR = struct.Struct(">IIIIII")
_M32 = 0xFFFFFFFF


def wal_checksum(data, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's cumulative WAL checksum over ``data`` (length a multiple of 8)."""
    n = len(data) >> 2
    words = struct.unpack((">%dI" if big_endian else "<%dI") % n, data)
    it = iter(words)
    for a in it:
        s0 = (s0 + a + s1) & _M32
        s1 = (s1 + next(it) + s0) & _M32
    return s0, s1


@dataclass
class WalHeader:
    magic: int
    version: int
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    checksum1: int
    checksum2: int
    checksum_ok: bool

    @property
    def big_endian(self) -> bool:
        return self.magic == WAL_MAGIC_BE

    @property
    def valid(self) -> bool:
        ps = self.page_size
        return (self.magic in (WAL_MAGIC_LE, WAL_MAGIC_BE) and self.checksum_ok
                and 512 <= ps <= 65536 and ps & (ps - 1) == 0)

    @classmethod
    def parse(cls, data: bytes) -> "WalHeader | None":
        if len(data) < WAL_HEADER_SIZE:
            return None
        f = _WALHDR.unpack_from(data, 0)
        magic = f[0]
        ok = False
        if magic in (WAL_MAGIC_LE, WAL_MAGIC_BE):
            ok = wal_checksum(data[:24], 0, 0, magic == WAL_MAGIC_BE) == (f[6], f[7])
        ps = f[2]
        if ps == 1:
            ps = 65536
        return cls(magic, f[1], ps, f[3], f[4], f[5], f[6], f[7], ok)


@dataclass
class WalSummary:
    """What a WAL file holds. ``frames`` counts every frame physically present."""

    path: str
    size: int = 0
    header_valid: bool = False
    page_size: int = 0
    checkpoint_seq: int = 0
    salt1: int = 0
    salt2: int = 0
    big_endian_checksums: bool = False
    frames: int = 0                    # frames physically in the file
    valid_frames: int = 0              # leading frames with the right salt and checksum
    committed_frames: int = 0          # valid frames up to and including the last commit frame
    pages: int = 0                     # distinct pages in committed frames
    db_size_pages: int = 0             # database size (pages) after the last commit
    tail_uncommitted_frames: int = 0   # frames after the last valid commit frame
    has_uncheckpointed_commits: bool = False
    uncheckpointed_known: bool = False  # True when decided by comparing with the main file
    problems: list[str] = field(default_factory=list)


class WalIndex:
    """The newest committed version of each page in a WAL file."""

    def __init__(self, path: str, summary: WalSummary, offsets: dict[int, int], data):
        self.path = path
        self.summary = summary
        self.offsets = offsets          # pgno -> offset of the page image in the WAL
        self._data = data

    @property
    def page_size(self) -> int:
        return self.summary.page_size

    @property
    def db_size_pages(self) -> int:
        return self.summary.db_size_pages

    def page(self, pgno: int) -> bytes | None:
        off = self.offsets.get(pgno)
        if off is None:
            return None
        return self._data[off:off + self.summary.page_size]


class FileBytes:
    """A file read by slices (``os.pread``) instead of mapped: reading every page of a large
    file then costs no resident memory, so the salvage stays flat in the board's size.
    ``len()`` is the size when opened; slices past the end are short, as with ``bytes``."""

    _fd = -1

    def __init__(self, path: str):
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            if step != 1:
                raise ValueError("FileBytes slices have step 1")
            return os.pread(self._fd, stop - start, start) if stop > start else b""
        if key < 0:
            key += self._size
        if not 0 <= key < self._size:
            raise IndexError("FileBytes index out of range")
        return os.pread(self._fd, 1, key)[0]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        self.close()


def open_db_file(path: str):
    """The main database file for reading page by page (see FileBytes)."""
    return FileBytes(path)


def _map_file(path: str):
    """Read-only mapping of a file (bytes for empty or unmappable files)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b""
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            f.seek(0)
            return f.read()


def _scan(path: str, data):
    size = len(data)
    s = WalSummary(path=str(path), size=size)
    offsets: dict[int, int] = {}
    hdr = WalHeader.parse(data[:WAL_HEADER_SIZE]) if size >= WAL_HEADER_SIZE else None
    if hdr is None:
        if size:
            s.problems.append(f"WAL file of {size} bytes is shorter than its header")
        return s, offsets
    s.page_size = hdr.page_size
    s.checkpoint_seq = hdr.checkpoint_seq
    s.salt1, s.salt2 = hdr.salt1, hdr.salt2
    s.big_endian_checksums = hdr.big_endian
    if not hdr.valid:
        if hdr.magic not in (WAL_MAGIC_LE, WAL_MAGIC_BE):
            s.problems.append(f"bad WAL magic 0x{hdr.magic:08x}")
        elif not hdr.checksum_ok:
            s.problems.append("WAL header checksum mismatch")
        else:
            s.problems.append(f"bad WAL page size {hdr.page_size}")
        return s, offsets
    s.header_valid = True
    ps = hdr.page_size
    fsz = FRAME_HEADER_SIZE + ps
    s.frames = (size - WAL_HEADER_SIZE) // fsz
    big = hdr.big_endian
    c0, c1 = hdr.checksum1, hdr.checksum2
    pending: dict[int, int] = {}
    pos = WAL_HEADER_SIZE
    last_commit_index = 0
    for i in range(s.frames):
        pgno, commit, salt1, salt2, k0, k1 = _FRAMEHDR.unpack_from(data, pos)
        if salt1 != hdr.salt1 or salt2 != hdr.salt2:
            break
        n0, n1 = wal_checksum(data[pos:pos + 8], c0, c1, big)
        n0, n1 = wal_checksum(data[pos + FRAME_HEADER_SIZE:pos + fsz], n0, n1, big)
        if (n0, n1) != (k0, k1) or pgno == 0:
            break
        c0, c1 = n0, n1
        s.valid_frames = i + 1
        pending[pgno] = pos + FRAME_HEADER_SIZE
        if commit:
            offsets.update(pending)
            pending.clear()
            s.db_size_pages = commit
            last_commit_index = i + 1
        pos += fsz
    if s.valid_frames < s.frames:
        s.problems.append(f"{s.frames - s.valid_frames} frame(s) after frame {s.valid_frames} "
                          "have a stale salt or a bad checksum")
    s.committed_frames = last_commit_index
    s.tail_uncommitted_frames = s.frames - last_commit_index
    # pages beyond the committed database size are truncated away by the commit
    if s.db_size_pages:
        for pg in [p for p in offsets if p > s.db_size_pages]:
            del offsets[pg]
    s.pages = len(offsets)
    s.has_uncheckpointed_commits = s.committed_frames > 0
    return s, offsets


def _compare_with_db(summary: WalSummary, offsets: dict[int, int], wal_data, db_path) -> None:
    """Decide has_uncheckpointed_commits by comparing committed frames with the main file."""
    ps = summary.page_size
    try:
        with open(db_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if summary.db_size_pages and summary.db_size_pages * ps != size and size % ps == 0 \
                    and summary.db_size_pages > size // ps:
                summary.has_uncheckpointed_commits = True
                summary.uncheckpointed_known = True
                return
            for pgno, off in offsets.items():
                f.seek((pgno - 1) * ps)
                if f.read(ps) != wal_data[off:off + ps]:
                    summary.has_uncheckpointed_commits = True
                    summary.uncheckpointed_known = True
                    return
        summary.has_uncheckpointed_commits = False
        summary.uncheckpointed_known = True
    except OSError:
        pass


def wal_summary(path, db_path=None) -> WalSummary:
    """Cheap WAL check for health reports: header and frame walk, no page decoding.

    With ``db_path`` the committed page images are compared with the main file, so
    ``has_uncheckpointed_commits`` is exact; without it, it means "holds committed frames".
    """
    data = _map_file(os.fspath(path))
    try:
        s, offsets = _scan(os.fspath(path), data)
        if db_path is not None and offsets:
            _compare_with_db(s, offsets, data, os.fspath(db_path))
        return s
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def read_wal(path, db_path=None) -> WalIndex:
    """Index a WAL file: the newest committed image of each page."""
    data = _map_file(os.fspath(path))
    s, offsets = _scan(os.fspath(path), data)
    if db_path is not None and offsets:
        _compare_with_db(s, offsets, data, os.fspath(db_path))
    return WalIndex(os.fspath(path), s, offsets, data)


class PageSource:
    """Pages of the main file overlaid with committed WAL pages. Reads are bounded.

    ``page(pgno)`` returns the page image (``bytes`` of page_size; only the partial last
    page of a truncated file is shorter) or None for a page outside the database.
    """

    def __init__(self, data, page_size: int, reserved: int = 0, wal: WalIndex | None = None):
        self.data = data
        self.page_size = page_size
        self.reserved = reserved
        self.usable = page_size - reserved
        self.wal = wal if (wal is not None and wal.page_size == page_size and wal.offsets) else None
        n = -(-len(data) // page_size)
        if self.wal is not None and self.wal.db_size_pages:
            n = self.wal.db_size_pages
        self.page_count = n
        self._file_pages = len(data) // page_size
        self._overlay = self.wal.offsets if self.wal is not None else {}
        self._wal_data = self.wal._data if self.wal is not None else None

    @classmethod
    def open(cls, db_path, page_size: int, reserved: int = 0, wal: WalIndex | None = None) -> "PageSource":
        return cls(open_db_file(os.fspath(db_path)), page_size, reserved, wal)

    def page(self, pgno: int) -> bytes | None:
        if pgno < 1 or pgno > self.page_count:
            return None
        if self._overlay:
            off = self._overlay.get(pgno)
            if off is not None:
                return self._wal_data[off:off + self.page_size]
        ps = self.page_size
        start = (pgno - 1) * ps
        if pgno <= self._file_pages:
            return self.data[start:start + ps]
        # the partial last page of a truncated file: shorter than page_size, never padded
        # (padding would invent zero bytes inside cells that were cut off)
        return self.data[start:start + ps]

    def is_wal_page(self, pgno: int) -> bool:
        return pgno in self._overlay

    def close(self) -> None:
        for d in (self.data, self._wal_data):
            if isinstance(d, FileBytes):
                d.close()
            elif isinstance(d, mmap.mmap):
                try:
                    d.close()
                except BufferError:
                    pass
