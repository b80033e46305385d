"""How ``verify`` reads a board: read-only, nothing created beside it, no writer held up for
long, and never a false alarm because the application wrote while the board was being checked.

A check reads the board for seconds (``integrity_check`` of a 550 MB board: about 3 s). What it
reads must be one committed state of the board, and the application must be able to write
meanwhile. How the board is read (a :class:`View`) depends on its journal mode and its sidecars:

``live``
    A WAL board with its ``-wal`` and ``-shm``: a read-only connection. A WAL read transaction
    sees one committed state and never blocks a writer.
``watched``
    A WAL board that nobody has open (no ``-wal``, or a ``-wal`` without commits and no ``-shm``),
    and every DELETE-mode board: read ``immutable``. A plain read-only open would create ``-wal``
    and ``-shm`` beside a WAL board, and on a DELETE board it holds a read lock for as long as a
    statement runs, so the application's writers wait through the whole integrity check.
    ``immutable`` takes no lock and trusts the file not to change; whether it did is asked
    afterwards: the file's size, times and inode, the sidecars that appeared, and on a DELETE
    board the change counter that every commit moves (``PRAGMA data_version`` of a watching
    connection, read under a read lock before and after). If anything changed, the findings are
    dropped and the board is read again as it is then (at most :data:`ATTEMPTS` times).
``snapshot``
    A DELETE board that changed during a ``watched`` read: copied into a private folder under
    ``TMPDIR`` without a lock, and the copy is read. If a commit came during the copy (the change
    counter moved), the copy is mended under one read lock: the board and the copy are read side
    by side from the page cache and the pieces that differ are rewritten (about 0.3 s for 550 MB),
    which bounds a writer's wait. A copy taken under the lock would write the whole board under it,
    and the kernel may hold such writes back for seconds. SQLite's backup API in small steps is no
    alternative: it restarts from the first page whenever another connection commits, so beside a
    busy writer it never ends.
``in place``
    A DELETE board with no room for a snapshot in ``TMPDIR``: a read-only connection on the board
    (each statement holds a read lock while it runs; writers wait up to the integrity check's
    duration). An ``info`` finding says so.
``rolled back``
    A DELETE board with a hot rollback journal (a writer died in mid-commit), which a read-only
    connection cannot roll back: the board and its journal are copied, SQLite rolls the copy back,
    and the copy is read, as the application will see the board after its next open.
``private``
    A WAL board whose ``-wal`` holds commits but has no ``-shm`` (SQLite would create one to read
    it): the board and its ``-wal`` are copied to a private folder and the copy is read. Without
    room for the copy, the board is not checked (exit 5).

A check that cannot run is never reported as damage: :func:`cannot_run` turns the SQLite errors
that say so (locked, out of memory or disk, cannot open, an I/O error, a hot journal that only a
writer can roll back) into :class:`~.model.NotChecked`, and everything made under ``TMPDIR`` is
removed whatever happens.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..board import uri
from ..errors import ExitCode
from .model import Finding, NotChecked

#: How often a board that changed during its check is read again before "it kept changing".
ATTEMPTS = 3
#: The piece in which a snapshot is compared with the board under a read lock.
CHUNK = 256 << 10
#: How often a ``watched`` check asks whether the board changed (see :class:`Watcher`).
POLL_SECONDS = 0.25
#: Room left free in TMPDIR beyond the copy.
ROOM_MARGIN = 1 << 20

#: What keeps a snapshot from being written (no room, a size limit, a folder that cannot be written).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS})

HINT_BUSY = "stop the board's writers or retry with a longer --busy-timeout"
HINT_HOT = ("open the board with the application once (SQLite rolls the interrupted write back), "
            "then run verify again")


# ---- errors that mean "could not check" -----------------------------------------------------------
_BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _FULL, _CANTOPEN, _PERM, _AUTH = 5, 6, 7, 8, 10, 13, 14, 3, 23
_READONLY_RECOVERY, _READONLY_ROLLBACK = _READONLY | (1 << 8), _READONLY | (3 << 8)


def cannot_run(exc: BaseException) -> NotChecked | None:
    """The :class:`NotChecked` an error stands for, or None when it is a finding about the board
    (damage: "malformed", "not a database", ...). Decided by SQLite's error code and the OS errno,
    never by message text."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return None
        primary = code & 0xFF
        if primary in (_BUSY, _LOCKED):
            return NotChecked(ExitCode.BUSY, f"the board is locked by another process ({exc})", HINT_BUSY)
        if code == _READONLY_ROLLBACK:
            return NotChecked(ExitCode.BUSY, "an interrupted write left a hot rollback journal, which a "
                                             "read-only check cannot roll back", HINT_HOT)
        if code == _READONLY_RECOVERY:
            return NotChecked(ExitCode.BUSY, "the board's WAL needs recovery, which a read-only check cannot do",
                              HINT_HOT)
        if primary in (_NOMEM, _FULL, _CANTOPEN, _IOERR, _PERM, _AUTH, _READONLY):  # READONLY: a -shm it cannot use
            return NotChecked(ExitCode.ENVIRONMENT, f"the machine refused a read ({exc})",
                              "check the permissions, free memory and the disk, then run verify again")
        return None
    if isinstance(exc, OSError):
        return environment(exc, "reading the board")
    return None


def environment(exc: OSError, doing: str) -> NotChecked:
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = "free some space there (or point TMPDIR at a folder with room), then run verify again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "check the permissions, then run verify again"
    else:
        hint = "run verify again once the cause is fixed"
    return NotChecked(ExitCode.ENVIRONMENT, f"{doing} failed: {what}", hint)


# ---- the file's state -----------------------------------------------------------------------------
def _stat(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_state(board: Path, *suffixes: str) -> tuple:
    """What changes when anything writes the board or opens it in WAL mode: the size, times and
    inode of the board and of its sidecars (or their absence)."""
    return tuple(_stat(board.with_name(board.name + s) if s else board) for s in ("",) + suffixes)




# ---- views ------------------------------------------------------------------------------------------
@dataclass
class View:
    """One way of reading a board for one check: connect to ``uri``; afterwards, ``unchanged()``
    says whether what was read is the board's state (else the findings are dropped)."""

    mode: str
    uri: str
    notes: list[Finding] = field(default_factory=list)
    board: Path | None = None
    suffixes: tuple[str, ...] = ()
    before: tuple | None = None
    watch: sqlite3.Connection | None = None
    version: int | None = None
    tmpdir: Path | None = None
    stale: bool = False  # known to be changed already
    header_from: Path | None = None  # the file whose header and size the file checks judge (a private copy)

    def unchanged(self) -> bool:
        if self.stale:
            return False
        if self.before is not None and file_state(self.board, *self.suffixes) != self.before:
            return False
        if self.watch is not None:
            try:
                return _data_version(self.watch) == self.version
            except sqlite3.Error:
                return False
        return True

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Watcher:
    """During a ``watched`` check, asks every :data:`POLL_SECONDS` whether the board changed, and
    if it did, interrupts every connection of the check at once: its findings would be dropped
    anyway, and the board is read again sooner. ``connect()`` makes the check's connections."""

    def __init__(self, view: View, busy_timeout: float):
        self.view, self.busy_timeout = view, busy_timeout
        self.changed = False
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.work = None  # the check's job queue (:class:`.work.Work`), abandoned on a change

    def connect(self) -> sqlite3.Connection:
        from .checks import connect

        conn = connect(self.view.uri, self.busy_timeout)
        with self._lock:
            self._conns.append(conn)
            if self.changed:
                conn.interrupt()
        return conn

    def __enter__(self) -> Watcher:
        if self.view.mode == "watched":
            self._thread = threading.Thread(target=self._poll, name="verify-watch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            if self.changed or not self.view.unchanged():
                # Again on every tick: an interrupt stops only the statements running at that moment.
                with self._lock:
                    self.changed = True
                    if self.work is not None:
                        self.work.abandon()
                    for conn in self._conns:
                        try:
                            conn.interrupt()
                        except sqlite3.ProgrammingError:  # already closed
                            pass


def _data_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _watch(board: Path, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection on a DELETE board; it holds a lock only inside its own statements
    and transactions. Raises :class:`NotChecked` when the board is locked or needs a rollback."""
    conn = sqlite3.connect(uri(board, mode="ro"), uri=True, timeout=busy_timeout, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def open_view(facts, *, busy_timeout: float, changed_before: bool = False) -> View:
    """The :class:`View` for this board (``facts`` from :func:`.checks.inspect_file`).
    ``changed_before``: the board changed during an earlier attempt (a DELETE board is then
    read from a snapshot straight away). Raises :class:`NotChecked`."""
    board = facts.path
    if facts.wal_mode:
        if not facts.has_wal or (not facts.has_shm and facts.wal_pending is False):
            return View("watched", uri(board, mode="ro", immutable="1"), board=board,
                        suffixes=("-wal", "-shm"), before=file_state(board, "-wal", "-shm"))
        if facts.has_shm:
            return View("live", uri(board, mode="ro"))
        return _private_copy(facts)
    before = file_state(board)
    watch = _watch(board, busy_timeout)
    try:
        version = _data_version(watch)
    except sqlite3.Error as exc:
        watch.close()
        blocked = cannot_run(exc)
        if blocked is not None and getattr(exc, "sqlite_errorcode", None) == _READONLY_ROLLBACK:
            return _rolled_back(facts, blocked)
        if blocked is not None:
            raise blocked from None
        # SQLite cannot read even the header page: neither can a writer. The check says why.
        return View("in place", uri(board, mode="ro"))
    if not changed_before:
        return View("watched", uri(board, mode="ro", immutable="1"), board=board, before=before,
                    watch=watch, version=version)
    try:
        return _snapshot(facts, watch)
    except BaseException:
        watch.close()
        raise


def _private_dir(facts, need: int) -> Path:
    """A folder under TMPDIR only this user can read; OSError when it cannot be made or lacks
    ``need`` bytes of room (nothing is left behind)."""
    tmpdir = Path(tempfile.mkdtemp(prefix="kanban-verify-"))
    try:
        st = os.statvfs(tmpdir)
        if st.f_bavail * st.f_frsize < need + ROOM_MARGIN:
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {need / 1048576:.1f} MiB needed in "
                                        f"{tmpdir.parent}, {st.f_bavail * st.f_frsize / 1048576:.1f} MiB free")
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return tmpdir


def _create(dest: Path, board: Path) -> int:
    from ..backup import inherit_access

    fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        inherit_access(dest, board)
    except BaseException:
        os.close(fd)
        raise
    return fd


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` from ``src`` to the same offset of ``dst``: in the
    kernel where it can (no trip through Python's memory), else by reads and writes."""
    end = offset + count
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            n = os.pwrite(dst, os.pread(src, min(end - offset, 1 << 20), offset), offset)
        if n == 0:  # the source is shorter than it was
            return
        offset += n


def _copy_files(board: Path, dest: Path, suffixes) -> None:
    """Copy the board's files with these suffixes to ``dest`` (same suffixes), without a lock."""
    for suffix in suffixes:
        src = os.open(board.with_name(board.name + suffix), os.O_RDONLY)
        try:
            dst = _create(dest.with_name(dest.name + suffix), board)
            try:
                copy_range(src, dst, 0, os.fstat(src).st_size)
            finally:
                os.close(dst)
        finally:
            os.close(src)


def _rolled_back(facts, blocked: NotChecked) -> View:
    """A DELETE board with a hot rollback journal (a writer died in mid-commit): read-only SQLite
    cannot roll it back, the application's next open will. The board and its journal are copied,
    SQLite rolls the copy back, and the copy is read: the board as the application will see it.
    Without room for the copy, ``blocked`` says why the board is not checked."""
    board = facts.path
    before = file_state(board, "-journal")
    try:
        tmpdir = _private_dir(facts, sum(s[1] for s in before if s))
    except OSError:
        raise blocked from None
    dest = tmpdir / board.name
    try:
        _copy_files(board, dest, ("", "-journal"))
        conn = sqlite3.connect(dest, isolation_level=None)  # read-write, on the copy only
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read rolls it back
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise blocked from None
    except BaseException:  # interrupted: nothing is left behind
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return View("rolled back", uri(dest, mode="ro", immutable="1"), tmpdir=tmpdir, header_from=dest,
                stale=file_state(board, "-journal") != before,
                notes=[Finding("file", "info", "an interrupted write left a hot rollback journal: checked as the "
                                               "board will be once SQLite rolls it back (the application's next "
                                               "open does)")])


def _private_copy(facts) -> View:
    """Copy the board and its ``-wal`` (no ``-shm`` beside them) and read the copy. The copy
    counts only if neither file changed and no ``-shm`` appeared meanwhile."""
    board = facts.path
    before = file_state(board, "-wal", "-shm")
    size = sum(s[1] for s in before if s)
    try:
        tmpdir = _private_dir(facts, size)
    except OSError as exc:
        raise environment(exc, "copying the board to TMPDIR (its -wal has no -shm, which a reader would create)") from None
    dest = tmpdir / board.name
    try:
        _copy_files(board, dest, ("", "-wal"))
    except OSError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise environment(exc, "copying the board to TMPDIR (its -wal has no -shm, which a reader would create)") from None
    except BaseException:  # interrupted: nothing is left behind
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    view = View("private", uri(dest, mode="ro"), tmpdir=tmpdir,
                notes=[Finding("file", "info", "read from a private copy (the -wal has no -shm beside it)")])
    view.stale = file_state(board, "-wal", "-shm") != before
    return view


def _snapshot(facts, watch: sqlite3.Connection) -> View:
    """A consistent copy of a DELETE board (see the module docstring); without room for it,
    the board is read in place."""
    board = facts.path
    try:
        tmpdir = _private_dir(facts, facts.size)
    except OSError as exc:  # no room, or TMPDIR cannot be written: the board can still be read in place
        return _in_place(board, watch, exc)
    dest = tmpdir / board.name
    try:
        src = os.open(board, os.O_RDONLY)
        try:
            dst = _create(dest, board)
            try:
                if not _copy_unlocked(watch, board, src, dst):
                    _mend_locked(watch, src, dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)  # after the watch's lock is released: closing a file drops this process's locks on it
    except sqlite3.Error as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        watch.close()
        blocked = cannot_run(exc) or NotChecked(ExitCode.BUSY, f"cannot take a read lock on the board ({exc})",
                                                HINT_BUSY)
        raise blocked from None
    except OSError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if exc.errno not in NO_ROOM:
            watch.close()
            raise environment(exc, "taking a snapshot of the board in TMPDIR") from None
        return _in_place(board, watch, exc)
    except BaseException:  # interrupted: nothing is left behind
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    watch.close()
    return View("snapshot", uri(dest, mode="ro", immutable="1"), tmpdir=tmpdir,
                notes=[Finding("file", "info", "read from a snapshot (a consistent copy; the board's writers "
                                               "waited at most for one read of it)")])


def _copy_unlocked(watch: sqlite3.Connection, board: Path, src: int, dst: int) -> bool:
    """Copy the whole file without a lock (writing the copy may take long: nobody waits for it).
    True when no commit came meanwhile: the change counter, read under a read lock before and
    after, did not move, nor did the file's size or times (a rolled-back write that spilled into
    the file moves those)."""
    version, before = _data_version(watch), file_state(board)
    size = os.fstat(src).st_size
    copy_range(src, dst, 0, size)
    os.ftruncate(dst, size)
    return _data_version(watch) == version and file_state(board) == before


def _mend_locked(watch: sqlite3.Connection, src: int, dst: int) -> None:
    """Under one read lock, make the copy equal to the board: read both in :data:`CHUNK` pieces
    and rewrite the pieces that differ. Only reads from the page cache happen under the lock (a
    plain copy would write hundreds of megabytes, and the kernel may throttle those writes for
    seconds while the application waits)."""
    a, b = bytearray(CHUNK), bytearray(CHUNK)
    watch.execute("BEGIN")
    try:
        _data_version(watch)  # the read lock, held until COMMIT
        size = os.fstat(src).st_size
        os.ftruncate(dst, size)
        for offset in range(0, size, CHUNK):
            n = os.preadv(src, [a], offset)
            if os.preadv(dst, [b], offset) != n or a != b:
                os.pwrite(dst, memoryview(a)[:n], offset)
    finally:
        watch.execute("COMMIT")


def _in_place(board: Path, watch: sqlite3.Connection, why: OSError) -> View:
    watch.close()
    return View("in place", uri(board, mode="ro"),
                notes=[Finding("file", "info", f"checked in place, not from a snapshot ({why.strerror or why}): "
                                               "the board's writers waited while each check ran",
                               hint="give TMPDIR room for a copy of the board to spare them that")])
