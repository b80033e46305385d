"""Step 1 of recover: a copy of the board that every later step works on.

Two ways, chosen by whether the board can change meanwhile:

* **byte for byte** (the forensic copy): the board, its ``-wal`` and any ``-journal``, holes kept
  as holes, with a SHA-256 manifest. In place the board's lock is held, so nothing changes under
  the copy; with ``--output`` the sizes and modification times of the three files are compared
  before and after, and a copy that raced a writer is made again.
* **a consistent snapshot** through SQLite's backup API, in one read transaction, for a board the
  application has open (``--output`` beside a live app): a copy of a live board made byte for
  byte can be torn, and a torn copy of a healthy board looks damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..backup import inherit_access
from ..board import DEFAULT_BUSY_TIMEOUT, sidecar
from ..errors import BoardBusy
from .files import copy_sparse, identity, present, remove

SIDECARS = ("", "-wal", "-journal")
COPY = "board.db"
ATTEMPTS = 5


@dataclass
class Snapshot:
    copy: Path  # the copy of the main file (its -wal / -journal beside it, when copied)
    digest: str  # names the quarantine copy (content_digest)
    consistent: bool  # made in one read transaction (no -wal or -journal beside it)
    manifest: dict


def forensic_copy(board: Path, work: Path, *, shown: str) -> Snapshot:
    """Copy the board and its sidecars byte for byte into ``work`` with a manifest; again while a
    writer changed them during the copy."""
    for _ in range(ATTEMPTS):
        before = identity(board)
        snap = _copy_once(board, work)
        if identity(board) == before:
            return snap
        for suffix in SIDECARS:
            remove(sidecar(snap.copy, suffix))
        time.sleep(0.05)
    raise BoardBusy("the board kept changing while it was copied",
                    "stop the board's processes, or rerun when it is quiet", path=shown)


def _copy_once(board: Path, work: Path) -> Snapshot:
    manifest = {"source": str(board), "copied_at": time.time(), "files": {}}
    copy = work / COPY
    sums = []
    for suffix in SIDECARS:
        src = sidecar(board, suffix)
        if not present(src):
            continue
        dest = sidecar(copy, suffix)
        one = hashlib.sha256()
        _tee_copy(src, dest, board, [one])
        sums.append(one.hexdigest())
        manifest["files"][src.name] = {"copy": dest.name, "sha256": sums[-1], "size": dest.stat().st_size}
    _write_manifest(work, manifest, board)
    return Snapshot(copy, content_digest(sums), False, manifest)


def content_digest(sums: list[str]) -> str:
    """The digest naming a set of copied files: the main file's SHA-256 alone (as the application
    names its quarantine copies), or the SHA-256 of the files' SHA-256s where sidecars came too."""
    return sums[0] if len(sums) == 1 else hashlib.sha256("".join(sums).encode()).hexdigest()


def _tee_copy(src: Path, dest: Path, board: Path, digests: list) -> None:
    copy_sparse(src, dest, digests=digests)
    inherit_access(dest, board)


def _write_manifest(work: Path, manifest: dict, board: Path) -> None:
    path = work / "manifest.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2)
    inherit_access(path, board)


def consistent_snapshot(board: Path, work: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                        shown: str | None = None) -> Snapshot | None:
    """The board as one read transaction sees it, through SQLite's backup API (the WAL's
    committed frames included), or None where SQLite cannot read the board (a damaged header,
    a WAL it refuses): then the byte copy is the way. The read transaction waits up to
    ``busy_timeout`` for a writer's lock (the backup API itself would retry for ever), then the
    board is busy: a byte copy of a file a writer holds would be torn."""
    from ..board import check_file, open_ro, translate

    copy = work / COPY
    try:
        bf = check_file(board)
        src = open_ro(bf, busy_timeout=busy_timeout)
    except Exception:  # noqa: BLE001 - not readable by SQLite: the byte copy decides
        return None
    try:
        src.execute("BEGIN")
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the read lock, held to the end
    except sqlite3.Error as exc:
        src.close()
        if isinstance(translate(exc, str(board)), BoardBusy):
            raise BoardBusy(f"another process held a lock on the board for longer than --busy-timeout "
                            f"{busy_timeout:g} s", "rerun when it is quiet, or with a longer --busy-timeout",
                            path=shown or str(board)) from None
        return None
    try:
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        dest = sqlite3.connect(str(copy), isolation_level=None)
        try:
            src.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
    except sqlite3.DatabaseError:
        remove(copy)
        remove(sidecar(copy, "-journal"))
        return None
    finally:
        src.close()
    inherit_access(copy, board)
    h = hashlib.sha256()
    with open(copy, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    manifest = {"source": str(board), "copied_at": time.time(), "method": "sqlite backup API (one read transaction)",
                "files": {board.name: {"copy": copy.name, "sha256": h.hexdigest(), "size": copy.stat().st_size}}}
    _write_manifest(work, manifest, board)
    return Snapshot(copy, h.hexdigest(), True, manifest)
