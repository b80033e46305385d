"""The boards and backups of a whole Hermes home (spec section 1), at a glance.

    >>> from kanban_migrate.fleet import boards
    >>> boards("/nonexistent")
    []

``boards(home)`` lists everything a home can hold: the pinned file (``$HERMES_KANBAN_DB``, only
without an explicit home), the default board, named boards, archived boards, old per-profile
boards, and the quarantine (``*.corrupt.*.bak``) and pre-upgrade (``*.pre-upgrade.*.bak``) backups
beside them. Each entry carries a *health* word from a quick read-only look: the 100-byte header,
the schema (``sqlite_master`` and the PRAGMAs on it) and the stamp; no ``quick_check`` unless asked
(``check=True``), so a home of hundreds of boards lists in well under a second per hundred boards.

Health words:

=================  ===================================================================
``ok``             a kanban board stamped at head that passed ``PRAGMA quick_check`` (``check``)
``unchecked``      a kanban board stamped at head, integrity not checked (without ``check``:
                   damage in table pages does not show in the schema)
``needs-upgrade``  a kanban board that is legacy (unstamped) or stamped at an older revision
``newer``          stamped at a revision this release does not know (a newer one wrote it)
``not-a-board``    not SQLite, an empty file, or a SQLite database that is not a kanban board
``damaged``        opening or reading the schema says "malformed" (or, with ``check``,
                   ``PRAGMA quick_check`` is not ok): run ``kanban-migrate recover``
``unreadable``     cannot be read now (permissions, a lock held past the busy timeout, a hot
                   journal a read-only look cannot roll back)
``bad-stamp``      ``alembic_version`` holds something no kanban-migrate wrote (a number,
                   NULL, a blob, junk text, a view): ``upgrade`` refuses it
``quarantined``    the original ``recover`` kept (``*.corrupt.*.bak``): damaged, even when the
                   quick look finds nothing (it would say ``ok``/``unchecked``)
=================  ===================================================================

A board stamped at a revision its schema does not bear out (a stamp that lies) is
``needs-upgrade``: ``upgrade`` re-applies every revision.

Nothing here writes: boards are opened with :func:`kanban_migrate.board.open_ro`, which creates
no ``-wal``/``-shm``. The commands ``boards`` and ``backups`` are in :mod:`kanban_migrate.cli.boards`;
pruning and restoring are in :mod:`kanban_migrate.restore`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import board as _board
from .errors import (BoardBusy, CorruptBoard, EnvironmentFailure, KanbanMigrateError, MissingBoard, Undecodable,
                     Unreadable)
from .home import BoardRef, discover, hermes_root, stray_backups
from .revisions import HEAD, known, pending_after
from .units import human_age
from .upgrading import mismatch_note, missing_at

HEALTH_WORDS = ("ok", "unchecked", "needs-upgrade", "newer", "not-a-board", "damaged", "unreadable", "bad-stamp",
                "quarantined")
BACKUP_STATES = {"pre-upgrade": "pre-upgrade", "corrupt": "quarantine", "pre-restore": "pre-restore"}
LIST_BUSY_TIMEOUT = 5.0  # seconds: a listing waits a little for a lock, not the application's 120 s


@dataclass
class BoardInfo:
    """One file of a home, as ``boards`` reports it."""

    kind: str  # pinned | default | named | archived | profile | backup
    name: str  # slug, archived folder, profile, "default"/"pinned"; for a backup: its board's name
    path: str
    size: int
    shape: str | None  # the fingerprint ("v2b +legacy-counters"), None when unreadable
    revision: str | None  # alembic_version, None for a legacy board
    health: str  # one of HEALTH_WORDS
    detail: str | None = None  # why, when health is not ok (one line)
    board: str | None = None  # for a backup: the board file it belongs to
    state: str | None = None  # for a backup: pre-upgrade | quarantine

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BackupInfo:
    """One backup file, as ``backups`` reports it."""

    kind: str  # the kind of the board it belongs to (default, named, ..., or "stray")
    name: str
    board: str
    state: str  # pre-upgrade | quarantine
    path: str
    size: int
    mtime: float
    digest: str
    pruned: bool = False

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.mtime)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["age_seconds"] = round(self.age_seconds, 1)
        d["age"] = human_age(self.age_seconds)
        return d


# ---- the quick look at one file ---------------------------------------------------------------
def _health_of_error(exc: KanbanMigrateError) -> str:
    """The health word of a refusal, decided by its class."""
    if isinstance(exc, _board.BadStamp):
        return "bad-stamp"
    if isinstance(exc, (BoardBusy, EnvironmentFailure, _board.HotJournal, Unreadable)):
        return "unreadable"
    if isinstance(exc, (CorruptBoard, Undecodable)):
        return "damaged"
    return "not-a-board"


def inspect_file(path: str | os.PathLike, *, check: bool = False,
            busy_timeout: float = LIST_BUSY_TIMEOUT) -> tuple[int, str | None, str | None, str, str | None]:
    """``(size, shape, revision, health, detail)`` of one file, read-only.

    Reads the header, the schema and the stamp; with ``check`` also runs ``PRAGMA quick_check``.
    Never raises for a bad file: what is wrong is the health word and the detail.
    """
    shown = str(path)
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    try:
        bf = _board.check_file(path)
    except MissingBoard as exc:  # vanished between the listing and the look
        return size, None, None, "unreadable", exc.message
    except KanbanMigrateError as exc:
        return size, None, None, _health_of_error(exc), exc.line().removeprefix(f"{shown}: ")
    revision = shape = None
    fp = None
    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            from .fingerprint import fingerprint
            from .schema import snapshot

            snap = snapshot(conn)
            fp = fingerprint(snap)
            shape = str(fp)
            try:
                revision = _board.read_revision(conn)
            except _board.BadStamp:
                if fp.is_kanban:
                    raise
            quick = None
            if check and fp.is_kanban:
                try:
                    rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
                except sqlite3.DatabaseError as exc:
                    rows = [str(exc)]
                if rows != ["ok"]:
                    quick = rows[0].splitlines()[0] if rows else "no result"
        finally:
            conn.close()
    except sqlite3.Error as exc:
        err = _board.translate(exc, shown)
        return size, shape, revision, _health_of_error(err), err.line().removeprefix(f"{shown}: ")
    except KanbanMigrateError as exc:
        return size, shape, revision, _health_of_error(exc), exc.line()
    if not fp.is_kanban:
        why = "an empty database with no tables" if fp.shape == "empty" else \
            f"not a kanban board ({'; '.join(fp.evidence)})"
        return size, shape, revision, "not-a-board", why
    if quick is not None:
        return size, shape, revision, "damaged", \
            f"fails PRAGMA quick_check ({quick}) (run 'kanban-migrate recover' on it)"
    if not known(revision):
        return size, shape, revision, "newer", \
            f"stamped at {revision!r}, unknown to this release (pip install -U kanban-migrate)"
    missing = missing_at(snap, revision) if revision is not None else []
    if missing:
        return size, shape, revision, "needs-upgrade", mismatch_note(revision, missing)
    if revision == HEAD:
        if check:
            return size, shape, revision, "ok", None
        return size, shape, revision, "unchecked", "at head; integrity not checked (pass --check)"
    return size, shape, revision, "needs-upgrade", f"pending {' '.join(pending_after(revision))}"


# ---- boards -------------------------------------------------------------------------------------
def _backup_state(path: Path) -> tuple[Path, str] | None:
    """``(board, state)`` for a backup's file name (:func:`kanban_migrate.backup.parse_name`)."""
    from .backup import parse_name

    parsed = parse_name(path)
    return (parsed[0], BACKUP_STATES[parsed[1]]) if parsed else None


def _owner_name(board: Path, root: Path) -> str:
    """The board name a stray backup belongs to, from where it lies in the home."""
    parent = board.parent
    if parent == root:
        return "default"
    return parent.name


def _home_backups(refs: list[BoardRef], home) -> list[Path]:
    """Backups beside every board of the home and anywhere else the home keeps boards; each once."""
    from .backup import list_backups

    found: list[Path] = []
    for ref in refs:
        found.extend(sorted(b.path for b in list_backups(ref.path)))
    found.extend(stray_backups(home))
    out, seen = [], set()
    for p in found:
        key = os.path.realpath(p)
        if key not in seen and p.is_file():
            seen.add(key)
            out.append(p)
    return out


def boards(home: str | os.PathLike | None = None, *, check: bool = False,
           busy_timeout: float = LIST_BUSY_TIMEOUT) -> list[BoardInfo]:
    """Every board and backup file of a Hermes home with its health (see the module docstring).

    Boards come first, in the order the application finds them (pinned, default, named, archived,
    per-profile), then the backups. ``check`` adds ``PRAGMA quick_check`` per board (slow on big
    boards); without it a board whose damage lies only in table pages reads as healthy.
    """
    refs = discover(home, include_all=True)
    root = hermes_root(home)
    by_path = {os.path.realpath(r.path): r for r in refs}
    out: list[BoardInfo] = []
    for ref in refs:
        size, shape, revision, health, detail = inspect_file(ref.path, check=check, busy_timeout=busy_timeout)
        out.append(BoardInfo(ref.kind, ref.name, str(ref.path), size, shape, revision, health, detail))
    for path in _home_backups(refs, home):
        owner, state = _backup_state(path) or (path, "unknown")
        ref = by_path.get(os.path.realpath(owner))
        name = ref.name if ref else _owner_name(owner, root)
        size, shape, revision, health, detail = inspect_file(path, check=check, busy_timeout=busy_timeout)
        if state == BACKUP_STATES["corrupt"] and health in ("ok", "unchecked"):
            health, detail = "quarantined", "the original 'recover' kept; it was damaged whatever this look says"
        out.append(BoardInfo("backup", name, str(path), size, shape, revision, health, detail,
                             board=str(owner), state=state))
    return out


# ---- backups ------------------------------------------------------------------------------------
def backups_of(board: str | os.PathLike, *, kind: str | None = None, name: str | None = None) -> list[BackupInfo]:
    """The backups of one board, newest first."""
    from .backup import list_backups

    board = Path(board)
    return [BackupInfo(kind or "board", name or board.parent.name, str(board),
                       BACKUP_STATES[b.kind] + ("" if b.path.name.endswith(".bak") else " leftover"), str(b.path),
                       b.size, b.mtime, b.digest) for b in list_backups(board, leftovers=True)]


def home_backups(home: str | os.PathLike | None = None) -> list[BackupInfo]:
    """Every backup of every board of a home (archived and per-profile boards too), and the
    stray ones whose board is gone (kind ``stray``); grouped by board, newest first."""
    refs = discover(home, include_all=True)
    root = hermes_root(home)
    out: list[BackupInfo] = []
    seen_boards: set[str] = set()
    for ref in refs:
        seen_boards.add(os.path.realpath(ref.path))
        out.extend(backups_of(ref.path, kind=ref.kind, name=ref.name))
    for path in stray_backups(home):
        parsed = _backup_state(path)
        if parsed is None:
            continue
        owner = parsed[0]
        key = os.path.realpath(owner)
        if key in seen_boards:
            continue
        seen_boards.add(key)
        out.extend(backups_of(owner, kind="stray", name=_owner_name(owner, root)))
    return out
