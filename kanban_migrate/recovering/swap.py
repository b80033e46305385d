"""Step 6 of recover in place: the rebuilt board goes in with one rename, and a crash at any
moment leaves a board that SQLite reads whole, with every committed row.

**One rename is the swap.** The rebuilt board is written, in the board's own folder, as a WAL
file (the *image*) holding every one of its pages and one commit. Renaming the image onto the
board's ``-wal`` is the swap: before it, the board and its ``-wal`` are exactly as they were;
after it, every SQLite that opens the board reads the rebuilt board out of the ``-wal`` (every
page is there, so the main file's old bytes are never read) until a checkpoint writes the pages
into the main file. There is no moment without a board at the path, or with a board whose
``-wal`` was moved away; the board keeps its inode, owner, mode and any hard link. The original
main file, ``-wal`` and ``-journal`` are kept before that as ``<db>.corrupt.<sha256[:16]>.bak``
(with ``-wal``/``-journal``): hard links to the forensic copies where the work folder is on the
board's file system, copies otherwise.

**A journal, settled by every later command.** ``.kanban-migrate-<crc of the board's name>.swap``
beside the board lists everything the run makes (work folder, image, quarantine files) before it
makes them, and whether the image is ready. If the run dies, the next command of this tool that
checks the board file (:func:`kanban_migrate.board.check_file` calls :func:`settle`: recover,
upgrade, status, boards) finishes it (the image was renamed: remove the work files, checkpoint)
or rolls it back (it was not: remove what the run made; the board was never touched). A journal
of a run still alive means "busy".

Standard library only: ``settle`` is reached from every command's file check.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

from ..backup import fsync_dir, inherit_access, list_backups
from ..board import sidecar
from ..errors import BoardBusy, Refused
from .files import WORK_PREFIX, Made, copy_sparse, fsync_file, identity, place_new, present, remove, temp_path
from .swapjournal import journal_path, next_journal_path

QUARANTINE_KEEP = 10  # as the application: at most 10 quarantine copies per board
ASIDE_SUFFIXES = ("-wal", "-journal", "")  # the main file last: it names the set


def aside_path(board: Path, digest: str) -> Path:
    return board.with_name(f"{board.name}.corrupt.{digest[:16]}.bak")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # field 22, starttime


def _alive(pid: int, start: str | None) -> bool:
    if Path("/proc").is_dir():
        return start is not None and _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Journal:
    """The swap journal of one run; every write is a new file renamed over the old one."""

    def __init__(self, board: Path, made: Made, planned: list[Path], keep: list[Path]):
        self.board = board
        self.path = journal_path(board)
        self.made = made
        self.data = {"board": str(board), "pid": os.getpid(), "start": _start_time(os.getpid()),
                     "phase": "work", "planned": [str(p) for p in planned], "keep": [str(p) for p in keep],
                     "made": [], "aside": [], "image_wal": None, "identity": None}
        self.written = False

    def write(self, **changes) -> None:
        self.data.update(changes)
        self.data["made"] = [str(p) for p in self.made.paths]
        tmp = next_journal_path(self.board)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self.written = True

    def close(self) -> None:
        next_journal_path(self.board).unlink(missing_ok=True)
        if self.written:
            self.path.unlink(missing_ok=True)
            fsync_dir(self.path.parent)
            self.written = False


def _ours(path: Path, board: Path) -> bool:
    """A path a recover run of ``board`` can have made: a journal lists nothing else, and a
    journal planted by someone else must not make this tool remove anyone's file. (A folder a run
    made for --workdir/--output is only ever removed when empty.)"""
    name = path.name
    if name.startswith((WORK_PREFIX, ".kanban-migrate-")):
        return True
    if path.parent == board.parent and re.fullmatch(
            re.escape(board.name) + r"\.corrupt\.[0-9a-f]{16}\.bak(-wal|-journal)?", name):
        return True
    return path.is_dir() and not path.is_symlink()


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def settle(board: Path, shown: str | None = None) -> str | None:
    """Finish or roll back the swap of a recover run that died; None when there is none.

    The journal (renamed into place whole) decides; a next version that was never renamed only
    adds paths the run had planned. Raises BoardBusy while the run is still alive.
    """
    path, nxt = journal_path(board), next_journal_path(board)
    data, newer = _read(path), _read(nxt)
    if data is None and newer is None:
        if nxt.exists() and time.time() - nxt.stat().st_mtime > 60:
            nxt.unlink(missing_ok=True)  # a first version cut short: nothing was made after it
        return None
    for d in (data, newer):
        if d is None:
            continue
        if d.get("board") != str(board) or d.get("pid") == os.getpid():
            return None
        if _alive(int(d.get("pid", 0)), d.get("start")):
            raise BoardBusy(f"a recover of this board is in progress (process {d.get('pid')})",
                            "wait for it to finish", path=shown or str(board))
    data = data or {"phase": "work"}
    image_wal = data.get("image_wal")
    committed = data.get("phase") == "ready" and image_wal is not None and not Path(image_wal).exists()
    listed = set()
    for d in (data, newer):
        if d is not None:
            listed.update(d.get("made", []) + d.get("planned", []))
    keep = set(data.get("keep", []))
    aside = {p for d in (data, newer) if d is not None for p in d.get("aside", [])}
    if committed:
        gone = [p for p in listed if p not in keep and p != image_wal and p not in aside]
        outcome = "finished"
    else:
        seen = data.get("identity") or (newer or {}).get("identity")
        changed = seen is not None and identity(board) != seen
        gone = [p for p in listed if p not in keep and not (changed and p in aside)]
        outcome = "rolled back"
    for p in sorted(gone, key=len, reverse=True):
        if _ours(Path(p), board):
            remove(Path(p))
    if committed:
        checkpoint(board, wal=bool(data.get("wal", True)))
        if data.get("aside"):
            _after_swap(board, Path(data["aside"][-1]))
    path.unlink(missing_ok=True)
    nxt.unlink(missing_ok=True)
    fsync_dir(board.parent)
    return outcome


IMAGE_SIDECARS = ("-wal", "-shm", "-journal")


def image_names(board: Path) -> list[Path]:
    """The image's main file and every file SQLite may make beside it."""
    main = temp_path(board.parent, "image")
    return [main] + [sidecar(main, s) for s in IMAGE_SIDECARS]


def build_image(rebuilt: Path, board: Path, image: Path, made: Made) -> Path:
    """The rebuilt board as a WAL file beside the board (every page, one commit); returns it.

    SQLite writes it: an empty database in WAL mode receives the rebuilt board through the
    backup API (one transaction). The image is checked through SQLite before the swap
    (``integrity_check`` and the page count, reading the very bytes that will be renamed). Then
    the image's main file is unlinked before its connection closes: SQLite does not checkpoint a
    database that has moved, so the WAL stays as written.
    """
    from ..board import _uri

    wal, shm = sidecar(image, "-wal"), sidecar(image, "-shm")
    src = sqlite3.connect(_uri(rebuilt, mode="ro", immutable="1"), uri=True, isolation_level=None)
    try:
        page_size = src.execute("PRAGMA page_size").fetchone()[0]
        pages = src.execute("PRAGMA page_count").fetchone()[0]
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        for p in [image] + [sidecar(image, s) for s in IMAGE_SIDECARS]:
            made.add(p)
        z = sqlite3.connect(str(image), isolation_level=None)
        try:
            z.execute(f"PRAGMA page_size={int(page_size)}")
            if str(z.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower() != "wal":
                raise OSError("the image could not be put in WAL mode")
            z.execute("PRAGMA wal_autocheckpoint=0")
            z.execute("PRAGMA synchronous=FULL")
            src.backup(z)
            problems = [r[0] for r in z.execute("PRAGMA integrity_check")]
            have = z.execute("PRAGMA page_count").fetchone()[0]
            if problems != ["ok"] or have != pages:
                raise Refused(f"the swap image does not read back whole ({problems[0]}, {have}/{pages} pages); "
                              "nothing was swapped", "please report this", path=str(board))
            os.unlink(image)
        finally:
            z.close()
    finally:
        src.close()
    remove(shm)
    remove(sidecar(image, "-journal"))
    fsync_file(wal)
    inherit_access(wal, board)
    return wal


def make_aside(board: Path, copy: Path, digest: str, made: Made, planned: dict[str, Path]) -> tuple[Path, list[Path]]:
    """The original's quarantine copy ``<db>.corrupt.<sha256[:16]>.bak`` (with its ``-wal`` /
    ``-journal``) from the forensic copy: hard links where possible (same file system), copies
    otherwise. Content-addressed: when it exists, the same bytes are kept already. Returns the
    path and the files this call created."""
    final = aside_path(board, digest)
    if final.exists():
        return final, []
    created = []
    for suffix in ASIDE_SUFFIXES:
        src = sidecar(copy, suffix)
        if not src.exists():
            continue
        tmp = planned[suffix]
        made.add(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or no hard links there
            copy_sparse(src, tmp)
            inherit_access(tmp, board)
        fsync_file(tmp)
        dest = sidecar(final, suffix)
        place_new(tmp, dest)
        made.forget(tmp)
        made.add(dest)
        created.append(dest)
    return final, created


def commit(board: Path, image_wal: Path) -> None:
    """The swap: the image becomes the board's -wal. The board's old -shm (a stale index of the
    old WAL) and -journal (the original's, kept aside) go after it; the lock keeps others out."""
    os.rename(image_wal, sidecar(board, "-wal"))
    fsync_dir(board.parent)
    for suffix in ("-shm", "-journal"):
        sidecar(board, suffix).unlink(missing_ok=True)
    fsync_dir(board.parent)


def checkpoint(board: Path, *, wal: bool) -> bool:
    """Write the rebuilt pages into the main file (the application would at its next checkpoint)
    and give the board the journal mode the rebuilt board had (the swap needs WAL for a moment;
    a board the application's rule keeps in DELETE goes back to it). False where the application
    got there first and holds the board: it is then in WAL until its next checkpoint."""
    try:
        conn = sqlite3.connect(str(board), timeout=2.0, isolation_level=None)
        try:
            row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if row is None or row[0] != 0:
                return False
            if not wal:
                return str(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower() == "delete"
            return True
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _after_swap(board: Path, aside: Path) -> None:
    """The quarantine copy just kept is the newest, and pruning never removes it."""
    now = time.time()
    try:
        os.utime(aside, (now, now))
    except OSError:
        pass
    prune_quarantine(board, keep=aside)


def prune_quarantine(board: Path, *, keep: Path) -> list[Path]:
    """Keep ``keep`` and the QUARANTINE_KEEP - 1 newest other quarantine copies of ``board``;
    remove the rest with their -wal/-shm/-journal."""
    others = [b for b in list_backups(board) if b.kind == "corrupt" and b.path != keep]
    removed = []
    for b in others[QUARANTINE_KEEP - 1:]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            p = sidecar(b.path, suffix)
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed


def finish(board: Path, aside: Path | None) -> None:
    if aside is not None:
        _after_swap(board, aside)
