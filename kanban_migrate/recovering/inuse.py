"""Is another process using a board? (``recover`` in place must not race the application.)

In place, ``recover`` first asks whether it can know at all (:func:`unprovable`: a second hard
link, a board of another user whose processes it cannot see), then takes the board's lock
(:class:`BoardLock`: SQLite's own lock bytes, held from the check through the swap, so the
application waits instead of writing into a board about to be replaced), then probes.

Two probes, POSIX only: the processes that have the board or its sidecars open (``/proc/*/fd``
on Linux), and SQLite's own locks: a conflicting lock on the database file's lock bytes (a
transaction in progress) or on the ``-shm`` dead-man-switch byte (every WAL connection holds a
shared lock there while it is open). Our process must not have the board open through SQLite
while probing (POSIX locks are per process).
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

PENDING_BYTE = 0x40000000
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510
SHM_DMS = 128  # WALINDEX_LOCK_OFFSET (120) + SQLITE_SHM_NLOCK (8)


def _uid_of(entry: Path) -> int | None:
    try:
        return entry.stat().st_uid
    except OSError:
        return None


def open_by(path: Path, *, hidden: list[int] | None = None) -> list[int]:
    """Pids (other than ours) with ``path`` or its -wal/-shm/-journal open; [] where /proc is absent.
    Pids whose open files cannot be listed (another user's, without root) go to ``hidden``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    targets = {os.path.realpath(path) + s for s in ("", "-wal", "-shm", "-journal")}
    me = os.getpid()
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except PermissionError:
            if hidden is not None:
                hidden.append(int(entry.name))
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(pids)


def _conflict(path: Path, start: int, length: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
        except OSError:
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, length, start)
        return False
    finally:
        os.close(fd)


def locked(path: Path) -> bool:
    """A lock held by another process on the board's lock bytes or its -shm."""
    if _conflict(path, PENDING_BYTE, 2) or _conflict(path, SHARED_FIRST, SHARED_SIZE):
        return True
    return shm_held(path)


def shm_held(path: Path) -> bool:
    """Another process holds the ``-shm`` dead-man-switch byte: a WAL connection is open."""
    shm = Path(str(path) + "-shm")
    return shm.exists() and shm.stat().st_size > SHM_DMS and _conflict(shm, SHM_DMS, 1)


def users(path: Path) -> str | None:
    """Why the board counts as in use, or None."""
    pids = open_by(path)
    if pids:
        return f"open in process {', '.join(map(str, pids[:5]))}"
    if locked(path):
        return "another process holds a lock on it"
    return None


def unprovable(path: Path) -> str | None:
    """Why this process cannot prove the board idle, or None.

    A second hard link: the application may use the board under a name no probe looks at (an
    idle DELETE-mode connection holds no lock). Another user's board, when this process cannot
    list that user's open files (not root): the application may be that user's process.
    """
    st = os.stat(path)
    if st.st_nlink > 1:
        return f"the board has {st.st_nlink} hard links, so a process may use it under another name"
    if os.geteuid() != 0:
        hidden: list[int] = []
        open_by(path, hidden=hidden)
        theirs = [pid for pid in hidden if _uid_of(Path("/proc") / str(pid)) == st.st_uid]
        if st.st_uid != os.geteuid() or theirs:
            return (f"the board belongs to user {st.st_uid}, whose processes this user cannot inspect")
    return None


LOCK_START = PENDING_BYTE  # PENDING, RESERVED and the SHARED range: SQLite's EXCLUSIVE lock
LOCK_LENGTH = 2 + SHARED_SIZE


class BoardLock:
    """SQLite's EXCLUSIVE lock on a board, taken with an open-file-description lock.

    The application then cannot begin a read or write transaction (it waits, up to its busy
    timeout) until the lock goes. An OFD lock belongs to its own open file, so opening and closing
    the board elsewhere in this process (copies, hashes) does not drop it, as it would drop a
    classic POSIX lock; it conflicts with SQLite's classic locks of every process.
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        """True when taken; False when another process held a SQLite lock on the board for
        longer than ``wait`` seconds (polled as SQLite's own busy handler polls)."""
        import time

        fd = os.open(self.path, os.O_RDWR)
        deadline = time.monotonic() + max(0.0, wait)
        delay = 0.001
        while not (taken := _try_lock(fd)):
            left = deadline - time.monotonic()
            if left <= 0 or taken is None:
                os.close(fd)
                return False
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.1)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the open file description releases its lock
            self.fd = None


def _try_lock(fd: int) -> bool | None:
    """True: taken; False: another process holds a conflicting lock; None: the lock cannot be
    taken at all here (waiting would not help)."""
    import fcntl

    try:
        if hasattr(fcntl, "F_OFD_SETLK"):
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_WRLCK, LOCK_START, LOCK_LENGTH))
        else:  # not Linux: a classic lock, dropped early should this process close another fd of the board
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, LOCK_LENGTH, LOCK_START)
    except OSError as exc:
        return False if exc.errno in (errno.EACCES, errno.EAGAIN) else None
    return True


def _flock(kind: int, start: int, length: int) -> bytes:
    # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid (0 for OFD)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)
