"""Content-addressed backups beside a board: ``<db>.pre-upgrade.<sha256[:16]>.bak``.

One board state is backed up once (the name is the hash of the copy), and only the newest few are
kept, so backups never pile up (the application once made 7,861 quarantine copies for one user,
#32593). Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

KEEP = 5
KINDS = ("pre-upgrade", "corrupt", "pre-restore")  # pre-restore: kanban_migrate.restore


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # pre-upgrade | corrupt
    digest: str
    size: int
    mtime: float

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.mtime)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "digest": self.digest, "size": self.size,
                "mtime": self.mtime}


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def inherit_access(made: Path, board: Path) -> None:
    """Give a file or folder made from ``board`` the board's access, never wider.

    A copy of a board holds the board's rows, so it must not be readable by anyone who cannot read
    the board: a file gets the board's permission bits (a folder gets them plus the matching search
    bits); when this process may (root), it also gets the board's owner and group, so the
    application that owns the board can still open what is put at the board's path.
    """
    st = board.stat()
    mode = stat.S_IMODE(st.st_mode) & 0o666
    if made.is_dir():
        mode |= (mode & 0o444) >> 2  # search bit wherever read is allowed
    os.chmod(made, mode)
    if os.geteuid() == 0:
        mine = made.stat()
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
            os.chown(made, st.st_uid, st.st_gid)


def backup_board(source: sqlite3.Connection, board: Path, *, keep: int = KEEP) -> Path:
    """Copy the board through SQLite's online backup API (a consistent snapshot, WAL included)
    to ``<board>.pre-upgrade.<sha16>.bak``; returns its path. Prunes to the ``keep`` newest."""
    tmp = board.with_name(f".{board.name}.pre-upgrade.{os.getpid()}.tmp")
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            source.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
        finally:
            dest.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)[:16]
        final = board.with_name(f"{board.name}.pre-upgrade.{digest}.bak")
        if final.exists():
            tmp.unlink()
            os.utime(final)  # the same state again: it is the newest backup now
        else:
            os.replace(tmp, final)
            fsync_dir(board.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    prune(board, keep=keep, kind="pre-upgrade")
    return final


def list_backups(board: Path) -> list[Backup]:
    out = []
    for kind in KINDS:
        for p in board.parent.glob(f"{board.name}.{kind}.*.bak"):
            digest = p.name[len(board.name) + len(kind) + 2: -len(".bak")]
            try:
                st = p.stat()
            except OSError:
                continue
            out.append(Backup(p, kind, digest, st.st_size, st.st_mtime))
    out.sort(key=lambda b: b.mtime, reverse=True)
    return out


def prune(board: Path, *, keep: int = KEEP, kind: str | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest backups (of ``kind``, or of each kind); returns the
    deleted paths. A quarantine backup's ``-wal``/``-shm`` go with it."""
    removed = []
    for k in (kind,) if kind else KINDS:
        backups = [b for b in list_backups(board) if b.kind == k]
        for b in backups[keep:]:
            for p in (b.path, b.path.with_name(b.path.name + "-wal"), b.path.with_name(b.path.name + "-shm")):
                if p.exists():
                    p.unlink()
                    removed.append(p)
    return removed
