"""Is another process using a board? (``recover`` in place must not race the application.)

Two probes, POSIX only: the processes that have the board or its sidecars open (``/proc/*/fd``
on Linux), and SQLite's own locks: a conflicting lock on the database file's lock bytes (a
transaction in progress) or on the ``-shm`` dead-man-switch byte (every WAL connection holds a
shared lock there while it is open). Our process must not have the board open through SQLite
while probing (POSIX locks are per process).
"""

from __future__ import annotations

import os
from pathlib import Path

PENDING_BYTE = 0x40000000
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510
SHM_DMS = 128  # WALINDEX_LOCK_OFFSET (120) + SQLITE_SHM_NLOCK (8)


def open_by(path: Path) -> list[int]:
    """Pids (other than ours) with ``path`` or its -wal/-shm/-journal open; [] where /proc is absent."""
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
