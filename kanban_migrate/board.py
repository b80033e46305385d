"""Opening board files: file checks, read-only and read-write connections, the stamp.

Standard library only: this module is on the fast path of ``upgrade`` on a board that is already
at head, which must not import SQLAlchemy or Alembic.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import BoardBusy, CorruptBoard, MissingBoard, NotABoard

MAGIC = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 120.0  # seconds, as the board application (spec section 2)
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class BoardFile:
    """What the file system says about a board, before SQLite opens it."""

    path: Path  # the resolved path (a symlink is followed: we work on its target)
    size: int
    header: bytes  # the first 100 bytes (fewer for a short file)
    wal: Path
    shm: Path

    @property
    def wal_mode(self) -> bool:
        """Header bytes 18/19 (file format write/read version) are 2 for WAL."""
        return len(self.header) >= 20 and self.header[18] == 2 and self.header[19] == 2

    @property
    def has_wal(self) -> bool:
        return self.wal.exists()

    @property
    def has_shm(self) -> bool:
        return self.shm.exists()


def sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def check_file(path: str | os.PathLike, *, allow_empty: bool = False) -> BoardFile:
    """Check that ``path`` can be a board before anything opens it.

    Raises MissingBoard (exit 2) or NotABoard (exit 3) with a one-line reason and hint.
    """
    raw = Path(path)
    shown = str(path)
    try:
        st = raw.stat()  # follows a symlink
    except FileNotFoundError:
        raise MissingBoard("no such file", "check the path, or pass --create to make a new board", path=shown)
    except OSError as exc:
        raise NotABoard(f"cannot read: {exc.strerror}", "check the path and its permissions", path=shown)
    if stat.S_ISDIR(st.st_mode):
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=shown)
    if not stat.S_ISREG(st.st_mode):
        raise NotABoard("is not a regular file", "pass the kanban.db file itself", path=shown)
    resolved = raw.resolve()
    try:
        with open(resolved, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise NotABoard(f"cannot read: {exc.strerror}", "check the file's permissions", path=shown)
    if st.st_size == 0:
        if not allow_empty:
            raise NotABoard(
                "empty file (0 bytes), not a board yet",
                "pass --create to initialise it as a new board at head",
                path=shown,
            )
    elif not header.startswith(MAGIC):
        raise NotABoard(
            "not a SQLite database (the file header is not 'SQLite format 3')",
            "if this was a board, its header was overwritten: run 'kanban-migrate recover' on it",
            path=shown,
        )
    elif st.st_size < 512 or len(header) < 100:
        raise NotABoard(
            f"truncated SQLite file ({st.st_size} bytes, smaller than one page)",
            "run 'kanban-migrate recover' on it if it was a board",
            path=shown,
        )
    return BoardFile(resolved, st.st_size, header, sidecar(resolved, "-wal"), sidecar(resolved, "-shm"))


def _uri(path: Path, **params: str) -> str:
    from urllib.parse import quote

    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path))}?{query}"


def open_ro(board: BoardFile, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> sqlite3.Connection:
    """A read-only connection that never writes the board or creates sidecar files.

    A WAL board with neither ``-wal`` nor ``-shm`` beside it is opened ``immutable``: nobody has it
    open, there is nothing to read from a WAL, and a plain ``mode=ro`` open would create both
    sidecars and leave them behind.
    """
    if board.wal_mode and not board.has_wal and not board.has_shm:
        uri = _uri(board.path, mode="ro", immutable="1")
    else:
        uri = _uri(board.path, mode="ro")
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


#: SQLite releases with the WAL-reset bug (https://sqlite.org/wal.html#walresetbug): 3.7.0 up to
#: 3.51.2, except the fixed backports 3.50.7+ and 3.44.6+ of their branches (the application's
#: ``hermes_cli/sqlite_runtime.py``). Half-open ranges of (major, minor, patch).
WAL_RESET_BUG = ((3, 7, 0), (3, 51, 3))
WAL_RESET_FIXED_BACKPORTS = (((3, 44, 6), (3, 45, 0)), ((3, 50, 7), (3, 51, 0)))
#: Errors of filesystems without WAL support (NFS, SMB, some FUSE, ZFS under load): fall back to DELETE.
WAL_UNSUPPORTED = ("locking protocol", "not authorized", "disk i/o error")


def wal_reset_vulnerable(sqlite_version: tuple[int, ...]) -> bool:
    v = (tuple(int(p) for p in sqlite_version) + (0, 0, 0))[:3]
    low, high = WAL_RESET_BUG
    return low <= v < high and not any(a <= v < b for a, b in WAL_RESET_FIXED_BACKPORTS)


def journal_mode_for(current_mode: str | None, sqlite_version: tuple[int, ...] | None = None) -> str | None:
    """The journal mode the application puts a board in, given the mode it is in now; None when
    the mode must be left as it is (spec section 2, the application's ``apply_wal_with_fallback``).

    A WAL board stays WAL and ``journal_mode=WAL`` is never re-issued on it (re-issuing it on every
    connect recreated the WAL under live writers: one cause of the May corruption reports); a mode
    that could not be read is left alone too. Under a SQLite with the WAL-reset bug a board that is
    not WAL is kept in, or put in, DELETE; otherwise WAL is enabled (:func:`apply_journal_mode`
    falls back to DELETE where the filesystem refuses WAL). ``sqlite_version`` defaults to the
    running library's.
    """
    mode = (current_mode or "").strip().lower()
    if not mode or mode == "wal":
        return None
    if sqlite_version is None:
        sqlite_version = sqlite3.sqlite_version_info
    target = "delete" if wal_reset_vulnerable(sqlite_version) else "wal"
    return None if mode == target else target


def apply_journal_mode(conn: sqlite3.Connection, *, sqlite_version: tuple[int, ...] | None = None) -> str:
    """Read the journal mode first and apply :func:`journal_mode_for`; returns the mode in effect.

    A new file (``upgrade --create``, recover's rebuilt board) is a board in DELETE to the rule,
    as the application's connect treats the empty board it creates."""
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    target = journal_mode_for(mode, sqlite_version)
    if target is None:
        return mode
    try:
        return str(conn.execute(f"PRAGMA journal_mode={target}").fetchone()[0]).lower()
    except sqlite3.OperationalError as exc:
        if target != "wal" or not any(m in str(exc).lower() for m in WAL_UNSUPPORTED):
            raise
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            raise  # never downgrade a board that is WAL on disk
        return str(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()


def apply_settings(conn: sqlite3.Connection, *, busy_timeout: float, foreign_keys: bool = True) -> str:
    """The application's per-connection settings (spec section 2); returns the journal mode
    (:func:`apply_journal_mode`)."""
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    mode = apply_journal_mode(conn)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA wal_autocheckpoint=100")
    conn.execute("PRAGMA journal_size_limit=8388608")
    conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA cell_size_check=ON")
    return mode


def open_rw(path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, foreign_keys: bool = True) -> sqlite3.Connection:
    """A read-write connection with the application's settings, in autocommit mode:
    every write is wrapped in an explicit ``BEGIN IMMEDIATE`` by its caller."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        apply_settings(conn, busy_timeout=busy_timeout, foreign_keys=foreign_keys)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def read_revision(conn: sqlite3.Connection) -> str | None:
    """The revision stamped in ``alembic_version``, or None for a legacy (unstamped) board."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (VERSION_TABLE,)
    ).fetchone()
    if row is None:
        return None
    rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    if not rows:
        return None
    return ",".join(sorted(r[0] for r in rows))


def translate(exc: sqlite3.Error, path: str) -> Exception:
    """Map a sqlite3 error onto a refusal with a one-line reason and hint."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return BoardBusy(
            f"board is locked by another process ({text})",
            "stop the board's writers or retry with a longer --busy-timeout",
            path=path,
        )
    if "not a database" in low or "file is encrypted" in low:
        return NotABoard(
            f"not a readable SQLite database ({text})",
            "run 'kanban-migrate recover' on it if it was a board",
            path=path,
        )
    if "malformed" in low or "corrupt" in low or "disk i/o" in low:
        return CorruptBoard(
            f"board is damaged ({text})", "run 'kanban-migrate recover' on it", path=path
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low:
        return NotABoard(f"cannot open the board for writing ({text})", "check the file's and directory's permissions", path=path)
    return CorruptBoard(f"SQLite error: {text}", "run 'kanban-migrate verify' on it for details", path=path)
