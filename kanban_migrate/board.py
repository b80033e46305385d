"""Opening board files: file checks, read-only and read-write connections, the stamp.

Standard library only: this module is on the fast path of ``upgrade`` on a board that is already
at head, which must not import SQLAlchemy or Alembic.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import BoardBusy, CorruptBoard, EnvironmentFailure, MissingBoard, NotABoard, Refused, Undecodable, Unreadable
from .recovering.swapjournal import pending

MAGIC = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 120.0  # seconds, as the board application (spec section 2)
VERSION_TABLE = "alembic_version"
SIDECARS = ("-journal", "-wal", "-shm")
_STAMP = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # what an Alembic revision id looks like


class BadStamp(Refused):
    """``alembic_version`` holds something no kanban-migrate wrote (exit 3)."""


class HotJournal(Refused):
    """A hot rollback journal beside the board: only a read-write open can roll it back (exit 3
    for a read-only look; ``upgrade`` lets SQLite roll it back, as the application's connect does)."""


def excerpt(value, limit: int = 24) -> str:
    """A short, printable excerpt of a value read from a file (never the whole of it)."""
    if isinstance(value, bytes):
        text = "x'" + value[: limit // 2].hex() + ("…'" if len(value) > limit // 2 else "'")
        return text
    text = repr(value if not isinstance(value, str) or len(value) <= limit else value[:limit])
    return text + ("…" if isinstance(value, str) and len(value) > limit else "")


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

    Raises MissingBoard (exit 2), NotABoard (exit 3: not a board file, or a ``-journal``/``-wal``/
    ``-shm`` beside it that is not a regular file) or EnvironmentFailure (exit 5: this user may not
    read it), each with a one-line reason and hint.
    """
    raw = Path(path)
    shown = str(path)
    try:
        st = raw.stat()  # follows a symlink
    except FileNotFoundError:
        raise MissingBoard("no such file", "check the path, or pass --create to make a new board", path=shown)
    except OSError as exc:
        raise _unreadable(exc, shown) from None
    if stat.S_ISDIR(st.st_mode):
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=shown)
    if not stat.S_ISREG(st.st_mode):
        raise NotABoard("is not a regular file", "pass the kanban.db file itself", path=shown)
    resolved = raw.resolve()
    if pending(resolved):  # a recover died mid-swap: finish or roll it back first
        from .recovering.swap import settle

        settle(resolved, shown)
    try:
        with open(resolved, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise _unreadable(exc, shown) from None
    check_sidecars(resolved, shown)
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


def _unreadable(exc: OSError, shown: str) -> Exception:
    """The one line for a board this process may not read (the same for every command)."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return EnvironmentFailure(
            f"cannot read: {exc.strerror}",
            "run as the board's owner or give this user read access; nothing was changed",
            path=shown,
        )
    return Unreadable(f"cannot read: {exc.strerror}", "check the path and its permissions", path=shown)


def check_sidecars(resolved: Path, shown: str) -> None:
    """Refuse a board whose ``-journal``/``-wal``/``-shm`` is not a regular file: SQLite would
    block forever opening a FIFO there, or read a device. ``stat`` never opens the file."""
    for suffix in SIDECARS:
        try:
            st = os.stat(sidecar(resolved, suffix))
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            what = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) \
                else "not a regular file"
            raise NotABoard(
                f"{resolved.name}{suffix} beside it is {what}, not SQLite's {suffix[1:]} file",
                f"remove or rename {resolved.name}{suffix}; SQLite only ever puts a regular file there",
                path=shown,
            )


def uri(path: Path, **params: str) -> str:
    """A ``file:`` URI for ``path`` with its query (``mode=ro``, ``immutable=1``): the path is
    percent-encoded, so a board called ``a?b#c%`` is opened, not a truncated name."""
    from urllib.parse import quote  # percent-encodes ? # % (urllib.request's pathname2url is this, heavier)

    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path), safe='/')}?{query}"


class _PrivateCopy(sqlite3.Connection):
    """A connection on a private copy of a board and its WAL; closing it removes the copy."""

    folder: str | None = None

    def close(self) -> None:
        super().close()
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _private_copy(board: BoardFile, busy_timeout: float) -> sqlite3.Connection:
    """Read a WAL board that has a ``-wal`` but no ``-shm`` from a copy of both in a private
    temporary folder: reading the WAL in place needs a ``-shm``, and a read-only open would create
    one beside the board and leave it there. Nobody has the board open (every connection would
    have made the ``-shm``), so the copy is its current state."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="kanban-migrate-read-")
    try:
        copy = Path(folder) / "board.db"
        shutil.copyfile(board.path, copy)
        shutil.copyfile(board.wal, sidecar(copy, "-wal"))
        conn = sqlite3.connect(uri(copy, mode="ro"), uri=True, timeout=busy_timeout,
                               isolation_level=None, factory=_PrivateCopy)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise EnvironmentFailure(f"cannot make a private copy to read its WAL ({exc.strerror})",
                                     f"free space in {tempfile.gettempdir()} or set TMPDIR; nothing was changed",
                                     path=str(board.path)) from None
        raise
    conn.folder = folder
    return conn


def open_ro(board: BoardFile, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> sqlite3.Connection:
    """A read-only connection that never writes the board or creates sidecar files.

    A WAL board with neither ``-wal`` nor ``-shm`` beside it is opened ``immutable``: nobody has it
    open, there is nothing to read from a WAL, and a plain ``mode=ro`` open would create both
    sidecars and leave them behind. One with a ``-wal`` but no ``-shm`` is read from a private
    copy (an empty ``-wal`` holds nothing: immutable again).
    """
    if board.wal_mode and not board.has_shm:
        try:
            wal_size = board.wal.stat().st_size
        except OSError:
            wal_size = 0
        if wal_size:
            conn = _private_copy(board, busy_timeout)
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            return conn
        target = uri(board.path, mode="ro", immutable="1")
    else:
        target = uri(board.path, mode="ro")
    conn = sqlite3.connect(target, uri=True, timeout=busy_timeout, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def reading(board: BoardFile, read, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, shown: str | None = None):
    """``read(conn)`` on a read-only connection to the board (:func:`open_ro`), closed after; a
    SQLite error becomes the refusal :func:`translate` words, and every refusal names ``shown``."""
    from .errors import KanbanMigrateError

    shown = shown or str(board.path)
    try:
        conn = open_ro(board, busy_timeout=busy_timeout)
        try:
            return read(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise translate(exc, shown) from None
    except KanbanMigrateError as exc:
        exc.path = exc.path or shown
        raise


def stamp_of(board: BoardFile, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> str | None:
    """The board's stamp (:func:`read_revision`) through a read-only connection opened and
    closed for it (:func:`open_ro`)."""
    conn = open_ro(board, busy_timeout=busy_timeout)
    try:
        return read_revision(conn)
    finally:
        conn.close()


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


#: The application's journal_size_limit (spec section 2): a WAL above it is one it did not trim.
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
#: The application's per-connection PRAGMAs besides busy_timeout, journal_mode and foreign_keys
#: (spec section 2); the tests' and benchmarks' stand-in writers use them too.
APP_PRAGMAS = ("synchronous=FULL", "wal_autocheckpoint=100", f"journal_size_limit={JOURNAL_SIZE_LIMIT}",
               "secure_delete=ON", "cell_size_check=ON")


def apply_settings(conn: sqlite3.Connection, *, busy_timeout: float, foreign_keys: bool = True) -> str:
    """The application's per-connection settings (spec section 2); returns the journal mode
    (:func:`apply_journal_mode`)."""
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    mode = apply_journal_mode(conn)
    conn.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    for pragma in APP_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
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
    """The revision stamped in ``alembic_version``, or None for a legacy (unstamped) board.

    Raises :class:`BadStamp` when the stamp is not one short revision id (an integer, NULL, a blob,
    a long or multi-row value, a view or a table without ``version_num``): Alembic would crash on
    it or trust it. The refusal quotes a short excerpt only.
    """
    row = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE lower(name) = ?", (VERSION_TABLE,)
    ).fetchone()
    if row is None:
        return None
    hint = ("kanban-migrate keeps one revision id in the table alembic_version: rename that object, or "
            "delete its rows to have the board adopted as legacy, then rerun; nothing was changed")
    if row[0] != "table":
        raise BadStamp(f"{VERSION_TABLE} is a {row[0]}, not kanban-migrate's stamp table", hint)
    try:
        rows = conn.execute(
            f"SELECT typeof(version_num), CASE typeof(version_num) WHEN 'blob' THEN substr(version_num, 1, 12) "
            f"ELSE substr(CAST(version_num AS TEXT), 1, 40) END, length(version_num) "
            f"FROM {VERSION_TABLE} LIMIT 3"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        raise BadStamp(f"{VERSION_TABLE} has no version_num column", hint) from None
    if not rows:
        return None
    if len(rows) > 1:
        shown = ", ".join(excerpt(r[1]) for r in rows[:2])
        raise BadStamp(f"{VERSION_TABLE} holds several rows ({shown}, ...), a board has one revision", hint)
    kind, value, length = rows[0]
    if kind != "text" or not _STAMP.fullmatch(value or "") or length > 32:
        what = {"null": "NULL", "integer": f"the integer {value}", "real": f"the number {value}",
                "blob": f"a {length}-byte blob {excerpt(value)}"}.get(kind, f"{excerpt(value)} ({length} characters)")
        raise BadStamp(f"{VERSION_TABLE} holds {what}, not a revision id", hint)
    return value


def _fsize_limited() -> bool:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return False
    return soft != resource.RLIM_INFINITY


def _disk_nearly_full(path: str) -> bool:
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 4 << 20


def translate(exc: sqlite3.Error, path: str) -> Exception:
    """Map a sqlite3 error onto a refusal with a one-line reason and hint naming the real cause:
    a lock (exit 4); a full disk, a file-size limit, permissions or a read-only folder (exit 5,
    the environment); a hot journal a read-only look cannot roll back; damage (exit 3, recover)."""
    text = str(exc)
    low = text.lower()
    code = getattr(exc, "sqlite_errorcode", None) or 0
    primary = code & 0xFF
    if primary in (5, 6) or "locked" in low or "busy" in low:  # SQLITE_BUSY, SQLITE_LOCKED
        return BoardBusy(
            f"board is locked by another process ({text})",
            "stop the board's writers or retry with a longer --busy-timeout",
            path=path,
        )
    if code == 776:  # SQLITE_READONLY_ROLLBACK
        return HotJournal(
            f"a hot journal ({Path(path).name}-journal, left by an interrupted write) must be rolled back "
            "first, which a read-only look cannot do",
            "SQLite rolls it back on the next read-write open: run 'kanban-migrate upgrade' on it or start "
            "the board application once, then rerun; nothing was changed",
            path=path,
        )
    if primary == 13 or "disk is full" in low:  # SQLITE_FULL
        return EnvironmentFailure(f"the disk is full ({text})", "free some space and rerun", path=path)
    if primary == 10 or "disk i/o" in low:  # SQLITE_IOERR
        if _fsize_limited():
            return EnvironmentFailure(f"the file-size limit was reached ({text})",
                                      "raise the limit (ulimit -f unlimited) and rerun", path=path)
        if _disk_nearly_full(path):
            return EnvironmentFailure(f"the disk is full ({text})", "free some space and rerun", path=path)
        if code in (266, 522):  # SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ: the file itself
            return CorruptBoard(f"board is damaged ({text})", "run 'kanban-migrate recover' on it", path=path)
        return EnvironmentFailure(f"the disk failed ({text})",
                                  "check the disk and the kernel log (dmesg), then rerun", path=path)
    if primary in (8, 14, 3, 23) or "readonly" in low or "read-only" in low or "unable to open" in low:
        # SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_AUTH
        return EnvironmentFailure(
            f"cannot open the board, its -wal/-shm or its folder as needed ({text})",
            "check the permissions of the file, its sidecars and its folder (SQLite writes -journal/-wal/-shm "
            "beside the board); nothing was changed",
            path=path,
        )
    if primary == 26 or "not a database" in low or "file is encrypted" in low:
        return Undecodable(
            f"not a readable SQLite database ({text})",
            "run 'kanban-migrate recover' on it if it was a board",
            path=path,
        )
    if primary == 11 or "malformed" in low or "corrupt" in low:
        return CorruptBoard(
            f"board is damaged ({text})", "run 'kanban-migrate recover' on it", path=path
        )
    return CorruptBoard(f"SQLite error: {text}", "run 'kanban-migrate verify' on it for details", path=path)
