"""Undo: put a board back as a backup kept it, and throw backups away without losing the last one.

    >>> import kanban_migrate.restore as r
    >>> r.restore("kanban.db")                    # doctest: +SKIP  (the newest backup)
    RestoreResult(path='kanban.db', restored_from='kanban.db.corrupt.44e8....bak', ...)

Three kinds of copy lie beside a board, each named ``<db>.<kind>.<sha256[:16]>.bak``:
``pre-upgrade`` (taken before ``upgrade`` changes it), ``corrupt`` (the original ``recover``
moved aside, with its ``-wal``/``-shm``), and ``pre-restore`` (the board ``restore`` replaced,
so that a restore is itself undone by restoring that copy). The name is the content's hash, so a
copy that was changed after it was made is noticed and refused.

``restore`` puts a copy back byte for byte with its sidecars, after checking that no process has
the board open or locked. Copies are written beside the board first (a full disk fails before
anything moved); then the board in place is hard-linked to its ``pre-restore`` name, its
``-wal``/``-shm`` are moved beside that copy, the restored file replaces the board with one
``os.replace``, and the restored sidecars follow. At every instant the path holds a consistent
board (a main file alone is the state of its last checkpoint) and the replaced state is complete
in its ``pre-restore`` copy: a kill at any point loses nothing. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backup import KEEP, Backup, fsync_dir, inherit_access, list_backups, sha256_file
from .board import SIDECARS, sidecar
from .errors import BoardBusy, EnvironmentFailure, MissingBoard, NotABoard, Refused, UsageError

PRE_RESTORE = "pre-restore"
QUARANTINE = "corrupt"


@dataclass
class RestoreResult:
    """What ``restore`` put back (or, with ``dry_run``, would put back)."""

    path: str  # the board
    restored_from: str  # the backup
    kind: str  # pre-upgrade | corrupt | pre-restore
    kept_as: str | None = None  # the pre-restore copy of the board that was there (None: there was none)
    sidecars: list[str] = field(default_factory=list)  # "-wal"/"-shm"/"-journal" restored with it
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def state_digest(main: Path) -> str:
    """sha256 of a board's state: its main file, then its ``-wal`` (the name of a pre-restore copy;
    two states that differ only in their WAL get two copies)."""
    h = hashlib.sha256()
    for p in (main, sidecar(main, "-wal")):
        if p.is_file():
            with open(p, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
    return h.hexdigest()


def _digest_of(b: Backup) -> str:
    return state_digest(b.path) if b.kind == PRE_RESTORE else sha256_file(b.path)


def choose(board: Path, which: str | os.PathLike | None) -> Backup:
    """The backup of ``board`` that ``which`` names (its path, file name or a digest prefix);
    the newest when None."""
    backups = list_backups(board)
    if not backups:
        raise MissingBoard("no backups to restore from", "'kanban-migrate backups' lists what was kept",
                           path=str(board))
    if which is None:
        return backups[0]
    text = str(which)
    key = os.path.realpath(text) if os.path.sep in text else None
    found = [b for b in backups if (key and os.path.realpath(b.path) == key) or b.path.name == text
             or (len(text) >= 4 and b.digest.startswith(text.lower()))]
    if len(found) != 1:
        why = "matches no backup of this board" if not found else f"matches {len(found)} backups"
        raise UsageError(f"{text!r} {why}", "name one from 'kanban-migrate backups' by its path or digest",
                         path=str(board))
    return found[0]


def _copy_in(src: Path, dest: Path, like: Path) -> None:
    shutil.copyfile(src, dest)
    with open(dest, "rb+") as fh:
        os.fsync(fh.fileno())
    inherit_access(dest, like)


def restore(path: str | os.PathLike, which: str | os.PathLike | None = None, *,
            dry_run: bool = False) -> RestoreResult:
    """Put the board at ``path`` back as backup ``which`` (see :func:`choose`) kept it; see the
    module docstring. Raises a refusal (board untouched) when the backup does not match its name
    (3), the board is in use (4) or the copy cannot be written (5)."""
    shown = str(path)
    given = Path(path).expanduser()
    board = given.resolve() if given.is_symlink() else given
    if board.is_dir():
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=shown)
    from .recovering.swapjournal import pending

    if pending(board):  # a recover died mid-swap: the board and its copies are settled first
        from .recovering.swap import settle

        settle(board, shown)
    chosen = choose(board, which)
    if _digest_of(chosen)[:16] != chosen.digest:
        raise Refused(f"{chosen.path.name} no longer matches its name (it was changed after it was made)",
                      "pick another copy from 'kanban-migrate backups'", path=shown)
    extras = [s for s in SIDECARS if sidecar(chosen.path, s).is_file()]
    if board.exists():
        from .recovering.inuse import users

        why = users(board)
        if why:
            raise BoardBusy(f"the board is in use ({why})",
                            "stop the board's processes (gateways, dispatcher, workers) first", path=shown)
    result = RestoreResult(shown, str(chosen.path), chosen.kind, sidecars=extras, dry_run=dry_run)
    if board.exists():
        result.kept_as = str(board.with_name(f"{board.name}.{PRE_RESTORE}.{state_digest(board)[:16]}.bak"))
    if dry_run:
        return result
    _put_back(board, chosen, extras, result)
    return result


def _put_back(board: Path, chosen: Backup, extras: list[str], result: RestoreResult) -> None:
    like = board if board.exists() else chosen.path
    temps = {s: board.with_name(f".{board.name}.restore.{os.getpid()}{s}.tmp") for s in ("", *extras)}
    try:
        for s, tmp in temps.items():
            _copy_in(sidecar(chosen.path, s), tmp, like)
        if result.kept_as:
            _set_aside(board, Path(result.kept_as))
        os.replace(temps.pop(""), board)
        for s in SIDECARS:
            if s in temps:
                os.replace(temps.pop(s), sidecar(board, s))
        fsync_dir(board.parent)
    except OSError as exc:
        raise EnvironmentFailure(f"cannot restore: {exc.strerror}",
                                 "the board is as it was (or complete in its pre-restore copy): "
                                 "fix the disk or permissions and rerun", path=result.path) from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    if result.kept_as:
        now = time.time()
        os.utime(result.kept_as, (now, now))  # the newest backup: 'restore' again undoes this one
        from .backup import prune

        prune(board, keep=KEEP, kind=PRE_RESTORE)


def _set_aside(board: Path, aside: Path) -> None:
    """The board's present state becomes its pre-restore copy; the board stays in place until
    the restored file replaces it."""
    if not aside.exists():
        try:
            os.link(board, aside)
        except OSError:
            _copy_in(board, aside, board)
    for s in SIDECARS:
        src, dest = sidecar(board, s), sidecar(aside, s)
        if src.exists():
            os.replace(src, dest)
        elif dest.exists():
            dest.unlink()  # the same state had none: a leftover of an earlier copy


# ---- pruning ----------------------------------------------------------------------------------------
def plan_prune(items: list, keep: int, *, force: bool = False) -> list:
    """The backups ``backups --prune keep`` deletes: per board and state, all but the ``keep``
    newest, and every leftover sidecar whose backup is gone. A board's newest quarantine copy (the
    original ``recover`` kept: the only copy of the rows it could not give back) is spared unless
    ``force``. ``items`` are :class:`kanban_migrate.fleet.BackupInfo`."""
    from .fleet import BACKUP_STATES

    groups: dict[tuple[str, str], list] = {}
    doomed = []
    for b in items:
        if not b.path.endswith(".bak"):
            doomed.append(b)  # a -wal/-shm left by a killed prune: nothing can restore it
            continue
        groups.setdefault((b.board, b.state), []).append(b)
    for (_board, state), group in groups.items():
        group.sort(key=lambda b: b.mtime, reverse=True)
        spare = max(keep, 1) if state == BACKUP_STATES[QUARANTINE] and not force else keep
        doomed.extend(group[spare:])
    return doomed


def delete(items: list) -> list[Path]:
    """Delete backups and their sidecars; returns the paths deleted. The ``.bak`` goes first: a
    delete killed half-way leaves sidecars that are listed as leftovers and pruned next time, never
    a backup that looks whole without its WAL."""
    from .backup import remove_copy

    return [p for b in items for p in remove_copy(Path(b.path))]
