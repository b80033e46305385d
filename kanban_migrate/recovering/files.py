"""The files a recover run makes: created exclusively, given the board's access, copied without
filling holes, and removed again (only they) when the run does not finish.

Standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from ..backup import fsync_dir, inherit_access

CHUNK = 1 << 20

_ENV = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "a file-size limit was reached",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "a file name would be too long",
    errno.EMLINK: "too many links",
    errno.EIO: "an input/output error",
}


def environment_cause(exc: BaseException) -> str | None:
    """What in the machine (not the board) stopped the run, or None: disk full, file-size limit,
    read-only or forbidden folder, a name too long; SQLite's own words for the same failures."""
    if isinstance(exc, OSError) and exc.errno in _ENV:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{_ENV[exc.errno]}{where}"
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "disk is full" in text:
            return "no space left on the device (SQLite: database or disk is full)"
        if "disk i/o error" in text:
            return "a write failed (SQLite: disk I/O error; a full disk or a file-size limit)"
        if "readonly" in text or "unable to open database file" in text:
            return f"a work file could not be written (SQLite: {exc})"
    return None


class Made:
    """Every path the run created, so that a run that does not finish removes exactly those."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def add(self, path: Path) -> Path:
        self.paths.append(Path(path))
        return Path(path)

    def forget(self, path: Path) -> None:
        self.paths = [p for p in self.paths if p != Path(path)]

    def remove_all(self) -> None:
        """Remove what was made, newest first; a folder is removed only when this run made it."""
        for p in reversed(self.paths):
            remove(p)
        dirs = {p.parent for p in self.paths}
        self.paths.clear()
        for d in dirs:
            fsync_dir(d)


WORK_PREFIX = ".kanban-recover-"


def present(path: Path) -> bool:
    """A file is there (a name too long for the file system names no file: False, not an error)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise
    return True


def identity(board: Path) -> list:
    """(inode, size, mtime) of the board, its -wal and -journal (None where absent): whether
    anyone wrote to the board between two looks."""
    out = []
    for suffix in ("", "-wal", "-journal"):
        path = Path(f"{board}{suffix}")
        if present(path):
            st = os.stat(path)
            out.append([st.st_ino, st.st_size, st.st_mtime_ns])
        else:
            out.append(None)
    return out


def remove(path: Path) -> None:
    """Remove a file, a work folder (with its contents: only this tool writes there) or an
    empty folder the run created for it; never a non-empty folder of anyone else."""
    try:
        if path.is_dir() and not path.is_symlink():
            if path.name.startswith(WORK_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.rmdir()
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def make_dirs(folder: Path, made: Made) -> None:
    """Create ``folder`` and any missing parents, each recorded as made by this run."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        made.add(d)


def work_name(base: Path) -> Path:
    """A name for a new work folder inside ``base``: never an existing folder, so removing it
    never removes anything the run did not make."""
    return Path(base).absolute() / f"{WORK_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"


def make_work(work: Path, board: Path, made: Made) -> Path:
    """Create the work folder ``work`` (and its missing parents) with the board's access."""
    make_dirs(work.parent, made)
    work.mkdir()
    made.add(work)
    inherit_access(work, board)
    return work


def temp_path(folder: Path, tag: str) -> Path:
    """A fresh, short name in ``folder`` (independent of the board's name, so its length and
    characters never matter)."""
    return folder / f".kanban-migrate-{os.getpid()}-{os.urandom(4).hex()}.{tag}"


def copy_sparse(src: Path, dest: Path, *, digests: list | None = None) -> None:
    """Copy ``src`` to the new file ``dest`` (created exclusively), holes as holes, then fsync.

    Data ranges are found with SEEK_DATA/SEEK_HOLE, so a sparse file is never written out dense;
    the length is the length ``src`` has when the copy starts. With ``digests`` (a list of
    hashlib objects), the bytes as read (holes as zeros) are fed to each.
    """
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            size = os.fstat(fd_in).st_size
            pos = 0
            while pos < size:
                start, end = _next_data(fd_in, pos, size)
                if digests is not None and start > pos:
                    _feed_zeros(digests, start - pos)
                if start >= size:
                    break
                _copy_range(fd_in, fd_out, start, end, digests)
                pos = end
            os.ftruncate(fd_out, size)
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _next_data(fd: int, pos: int, size: int) -> tuple[int, int]:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return size, size
        return pos, size  # no hole support here: all data
    try:
        end = os.lseek(fd, start, os.SEEK_HOLE)
    except OSError:
        end = size
    return min(start, size), min(end, size)


def _feed_zeros(digests: list, n: int) -> None:
    zeros = bytes(min(n, CHUNK))
    while n > 0:
        k = min(n, len(zeros))
        for d in digests:
            d.update(zeros[:k])
        n -= k


def _copy_range(fd_in: int, fd_out: int, start: int, end: int, digests) -> None:
    pos = start
    while pos < end:
        block = os.pread(fd_in, min(CHUNK, end - pos), pos)
        if not block:  # the file shrank while being copied: the guard around the copy notices
            return
        if digests is not None:
            for d in digests:
                d.update(block)
        view = memoryview(block)
        while view:
            written = os.pwrite(fd_out, view, pos)
            view = view[written:]
            pos += written


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_new(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` only if nothing has that name (no file is ever replaced):
    a hard link fails with EEXIST where ``final`` exists. Where hard links are not supported, an
    exclusive create reserves the name first."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(tmp, final)
    else:
        tmp.unlink()
    fsync_dir(final.parent)
