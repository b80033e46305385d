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

from .board import SIDECARS

KEEP = 5
#: Quarantine copies (``*.corrupt.*.bak``) kept per board, as the application keeps at most 10.
QUARANTINE_KEEP = 10
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _tmp_prefix(board: Path) -> str:
    return f".{board.name}.pre-upgrade."


def remove_stale_tmp(board: Path) -> list[Path]:
    """Remove half-made backups (``.<board>.pre-upgrade.<pid>.tmp`` and its SQLite sidecars) whose
    process is gone: a backup killed half-way is a full copy of the board's rows. Names are parsed
    exactly (never a glob: a board name may hold ``[``, ``*`` or ``?``)."""
    prefix = _tmp_prefix(board)
    removed = []
    try:
        entries = list(os.scandir(board.parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        pid, dot, tail = rest.partition(".")
        if not (dot and pid.isdigit() and tail in ("tmp", "tmp-journal", "tmp-wal", "tmp-shm")):
            continue
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass
    return removed


def name_room(board: Path) -> int:
    """Bytes to spare under the folder's file-name limit for the longest name a backup of
    ``board`` needs (its temporary copy's ``-journal`` and the final ``.bak``); negative when
    the board's name is too long to be backed up beside it."""
    try:
        limit = os.pathconf(board.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = len(os.fsencode(f"{board.name}.pre-upgrade.{'0' * 16}.bak"))
    longest = max(longest, len(os.fsencode(f"{_tmp_prefix(board)}{4194304}.tmp-journal")))
    return limit - longest


def make_backup(source: sqlite3.Connection, board: Path) -> tuple[Path, bool]:
    """Copy the board through SQLite's online backup API (a consistent snapshot, WAL included)
    to ``<board>.pre-upgrade.<sha16>.bak`` with the board's access (mode, and owner as root);
    returns its path and whether this call made it (False: that state was backed up before).

    The copy is made under a temporary name from the first byte with the board's mode; one left
    by a killed run is removed by the next (:func:`remove_stale_tmp`)."""
    remove_stale_tmp(board)
    tmp = board.with_name(f"{_tmp_prefix(board)}{os.getpid()}.tmp")
    made = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        inherit_access(tmp, board)
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
            made = True
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            leftover = tmp.with_name(tmp.name + suffix)
            if leftover.exists():
                leftover.unlink()
    return final, made




def parse_name(path: Path) -> tuple[Path, str, str, str] | None:
    """``(board, kind, digest, sidecar suffix or "")`` for a backup's file name
    ``<board>.<kind>.<digest>.bak`` (or its ``-wal``/``-shm``/``-journal``), else None: the one
    parse of a backup name (``list_backups`` here, the home's stray backups in ``fleet``). The
    last kind marker in the name wins, so a board whose own name holds one is still told apart."""
    name = path.name
    suffix = next((s for s in SIDECARS if name.endswith(".bak" + s)), "")
    stem = name[: len(name) - len(suffix)]
    if not stem.endswith(".bak"):
        return None
    stem = stem[: -len(".bak")]
    found = max(((stem.rfind(f".{kind}."), kind) for kind in KINDS), default=(-1, ""))
    at, kind = found
    if at <= 0:
        return None
    digest = stem[at + len(kind) + 2:]
    if not digest:
        return None
    return path.with_name(stem[:at]), kind, digest, suffix


def _parse(board: Path, name: str) -> tuple[str, str, str] | None:
    """``(kind, digest, sidecar suffix or "")`` for a backup file name of ``board``, else None."""
    parsed = parse_name(board.with_name(name))
    if parsed is None or parsed[0].name != board.name:
        return None
    return parsed[1:]


def list_backups(board: Path, *, leftovers: bool = False) -> list[Backup]:
    """The backups beside ``board``, newest first, by exact name (``<board>.<kind>.<digest>.bak``).

    With ``leftovers``, also the ``-wal``/``-shm``/``-journal`` of a backup whose ``.bak`` is gone
    (a prune killed half-way), each as its own entry."""
    found: dict[tuple[str, str], dict[str, Path]] = {}
    try:
        entries = list(os.scandir(board.parent))
    except OSError:
        return []
    for entry in entries:
        parsed = _parse(board, entry.name)
        if parsed is None:
            continue
        kind, digest, suffix = parsed
        found.setdefault((kind, digest), {})[suffix] = Path(entry.path)
    out = []
    for (kind, digest), files in found.items():
        paths = [files[""]] if "" in files else (list(files.values()) if leftovers else [])
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            out.append(Backup(p, kind, digest, st.st_size, st.st_mtime))
    out.sort(key=lambda b: b.mtime, reverse=True)
    return out


def prune(board: Path, *, keep: int = KEEP, kind: str | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest backups (of ``kind``, or of each kind); returns the
    deleted paths. A backup's ``-wal``/``-shm`` go with it (after it, so an interrupted prune
    never leaves a backup without its WAL), and the leftover sidecars of a backup already gone
    are deleted too."""
    removed = []
    everything = list_backups(board, leftovers=True)
    for k in (kind,) if kind else KINDS:
        mine = [b for b in everything if b.kind == k]
        whole = [b for b in mine if b.path.name.endswith(".bak")]
        doomed = whole[keep:] + [b for b in mine if not b.path.name.endswith(".bak")]
        for b in doomed:
            removed.extend(remove_copy(b.path))
    return removed


def remove_copy(path: Path) -> list[Path]:
    """Delete a kept copy and its sidecars; returns what was deleted. The ``.bak`` goes first: a
    delete killed half-way leaves sidecars that are listed as leftovers and pruned next time, never
    a copy that looks whole without its WAL."""
    removed = []
    for p in (path, *(path.with_name(path.name + s) for s in SIDECARS)):
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    return removed
