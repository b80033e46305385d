"""The writing phase of ``upgrade``: every check that must pass before the board is written, the
write lock, the backup, the chain run to head, and the truth about what was committed.

Its own piece because it is where a board can be damaged: everything above it (the API in
:mod:`.api`) only reads. The order is the promise: nothing is written (no backup, no sidecar)
until the quick_check, the preflight and the write lock have passed, and a failure after the first
commit says which revisions were committed, read back from the file (:func:`truth`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .. import board as _board
from ..errors import CorruptBoard, EnvironmentFailure, KanbanMigrateError, Refused, os_cause
from ..revisions import HEAD, REVISIONS, pending_after
from .result import UpgradeResult


class QuickCheck:
    """``PRAGMA quick_check`` in a thread: sqlite3 releases the GIL while the check runs, so it
    overlaps with importing SQLAlchemy and Alembic and fingerprinting the board."""

    def __init__(self, bf: _board.BoardFile, busy_timeout: float, trace=None):
        import threading

        self.bf, self.busy_timeout, self.trace = bf, busy_timeout, trace
        self.rows: list[str] | None = None
        self.error: sqlite3.Error | None = None
        self._thread = threading.Thread(target=self._run, name="kanban-migrate-quick-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = _board.open_ro(self.bf, busy_timeout=self.busy_timeout)
            try:
                if self.trace is not None:
                    conn.set_trace_callback(self.trace)
                self.rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            self.error = exc

    def wait(self) -> None:
        """Wait for the check to end (no quick_check is left running behind a refusal)."""
        self._thread.join()

    def result(self) -> None:
        """Wait for the check; raise the refusal for a damaged board."""
        self.wait()
        if self.error is not None:
            raise _board.translate(self.error, str(self.bf.path)) from None
        refuse_unless_ok(self.rows or [], str(self.bf.path))


def refuse_unless_ok(rows: list[str], shown: str) -> None:
    """Refuse a damaged board before anything is written (points to ``recover``)."""
    if rows != ["ok"]:
        first = rows[0].splitlines()[0] if rows else "no result"
        raise CorruptBoard(
            f"board fails PRAGMA quick_check ({first})",
            "nothing was changed; run 'kanban-migrate recover' on it",
            path=shown,
        )


def preflight(bf: _board.BoardFile, shown: str, backup: bool) -> None:
    """Refuse, before anything is opened for writing or backed up, a board this run cannot write:
    a read-only file or folder (SQLite writes ``-journal``/``-wal``/``-shm`` beside the board; a
    failed read-write open would leave them, or checkpoint a WAL into the file), or a name too
    long for SQLite's sidecars or for a backup beside it."""
    from ..backup import name_room

    folder = bf.path.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(bf.path.name))
    if size + len("-journal") > limit:
        raise Refused(f"its name is {size} bytes, too long for SQLite to put its -journal/-wal beside it "
                      f"(the folder allows {limit})", "rename the board to a shorter name, then rerun; "
                      "nothing was changed", path=shown)
    if backup and name_room(bf.path) < 0:
        raise Refused(f"its name is {size} bytes, too long for a pre-upgrade backup beside it "
                      f"(the folder allows {limit} per name)",
                      "rename the board to a shorter name, or pass --no-backup; nothing was changed", path=shown)
    kw = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    blocked = [p for p in (bf.path, bf.wal, bf.shm, _board.sidecar(bf.path, "-journal"))
               if os.path.lexists(p) and not os.access(p, os.R_OK | os.W_OK, **kw)]
    if blocked:
        mode = oct(os.stat(blocked[0]).st_mode & 0o777)[2:]
        raise EnvironmentFailure(f"cannot write {blocked[0].name} (mode {mode}, not writable by this user)",
                                 "give this user write access (or run as the board's owner), then rerun; "
                                 "nothing was changed", path=shown)
    try:
        st = os.statvfs(folder)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    need = (bf.size if backup else 0) + ROOM
    if free is not None and free < need:
        raise EnvironmentFailure(f"the disk is full ({free / 1e6:.1f} MB free; the upgrade needs about "
                                 f"{need / 1e6:.1f} MB{' with its backup' if backup else ''})",
                                 "free some space and rerun; nothing was changed", path=shown)
    if not os.access(folder, os.W_OK | os.X_OK, **kw):
        raise EnvironmentFailure("its folder is read-only for this user (SQLite writes -journal/-wal/-shm "
                                 "beside the board)", "give this user write access to the folder, then rerun; "
                                 "nothing was changed", path=shown)


ROOM = 1 << 20  # free bytes the upgrade wants beyond the backup: its WAL (100 pages) and -shm, with room


def take_write_lock(bf: _board.BoardFile, busy_timeout: float, shown: str) -> None:
    """Wait (up to the busy timeout) for the write lock once, before backing up: a board that
    another process keeps locked is refused (exit 4) before any backup is made. A rollback-journal
    board is probed with ``BEGIN EXCLUSIVE``, which also waits for readers: its commits will need
    that."""
    try:
        conn = sqlite3.connect(str(bf.path), timeout=busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            conn.execute("BEGIN IMMEDIATE" if bf.wal_mode else "BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None


def roll_back_hot_journal(bf: _board.BoardFile, busy_timeout: float, shown: str) -> None:
    """Let SQLite roll back the hot journal an interrupted writer left (as the application's own
    connect would): the board returns to its last committed state, the one to back up and upgrade.
    A plain read-write connection that reads the schema is enough; it changes nothing else."""
    try:
        conn = sqlite3.connect(str(bf.path), timeout=busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None


def take_backup(bf: _board.BoardFile, busy_timeout: float, shown: str) -> tuple[Path, bool]:
    from ..backup import make_backup

    try:
        return _board.reading(bf, lambda conn: make_backup(conn, bf.path), busy_timeout=busy_timeout, shown=shown)
    except OSError as exc:
        raise environment(exc, shown, "making the pre-upgrade backup") from None


def environment(exc: OSError, shown: str, doing: str) -> KanbanMigrateError:
    why = os_cause(exc) or exc.strerror or str(exc)
    return EnvironmentFailure(f"{why} while {doing} ({exc.strerror})", "fix that and rerun; nothing was changed",
                              path=shown)




class StampMoved(Exception):
    """Another process moved the stamp while this one ran (two upgrades at once)."""


RACE_SIGNS = ("expected to match one row", "unique constraint failed: alembic_version")


def committed_stamp(bf: _board.BoardFile, busy_timeout: float) -> tuple[bool, str | None]:
    """``(read, stamp)``: the stamp now in the file, re-read after a failure (the truth about
    what was committed; ``read`` is False when even that read failed)."""
    try:
        return True, _board.stamp_of(bf, busy_timeout=min(busy_timeout, 10.0))
    except (sqlite3.Error, KanbanMigrateError):
        return False, None


def migrate(bf: _board.BoardFile, busy_timeout: float, applied: list[str], shown: str, trace=None,
             on_revision=None, restart_from: str | None = None) -> None:
    """Run the chain to head. ``restart_from``: the stamp the schema does not bear out; it is
    removed (in its own transaction, only if still there) and every revision runs again.

    Two upgrades of one board at once: each revision runs in ``BEGIN IMMEDIATE`` and checks
    that the stamp it moves is the one it started from; the one that finds it moved rolls that
    revision back, re-reads the stamp and carries on from there (nothing left: at head)."""
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from .chain import make_config, make_engine
    from .rebuild import UpgradeRefused

    def on_apply(ctx, step, heads, run_args):
        got = [r[0] for r in ctx.connection.exec_driver_sql("SELECT version_num FROM alembic_version")]
        if got != [step.up_revision_id]:
            raise StampMoved(f"stamp is {got} after applying {step.up_revision_id}")
        applied.append(step.up_revision_id)
        if on_revision is not None:
            on_revision(step.up_revision_id)

    engine = make_engine(bf.path, busy_timeout=busy_timeout, trace=trace)
    try:
        if restart_from is not None:
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM alembic_version WHERE version_num = ?", (restart_from,))
        for _attempt in range(len(REVISIONS) + 2):
            try:
                with engine.connect() as conn:
                    command.upgrade(make_config(connection=conn, on_apply=on_apply), "head")
                return
            except (StampMoved, CommandError, DBAPIError) as exc:
                text = str(exc).lower()
                if not (isinstance(exc, StampMoved) or any(sign in text for sign in RACE_SIGNS)):
                    raise
                continue  # another upgrade moved the stamp: start again from where it is now
        raise _board.translate(sqlite3.OperationalError("database is locked (another upgrade keeps moving "
                                                        "the stamp)"), shown)
    except UpgradeRefused as exc:
        raise Refused(f"upgrade stopped: {exc}", "report this board's shape with 'kanban-migrate status'",
                      path=shown) from None
    except CommandError as exc:
        raise Refused(f"upgrade stopped: {_board.excerpt(str(exc), 120)}",
                      "report this board's shape with 'kanban-migrate status'", path=shown) from None
    except DBAPIError as exc:
        raise _board.translate(exc.orig, shown) from None
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None
    except OSError as exc:
        raise environment(exc, shown, "upgrading") from None
    finally:
        engine.dispose()


def truth(exc: KanbanMigrateError, before: str | None, read: bool, after: str | None,
           applied: list[str], restarted: bool = False) -> None:
    """Make a refusal's hint say exactly what was committed: the stamp re-read from the file,
    never the revisions merely attempted (the last one may have failed at its commit). With
    ``restarted``, the untrusted stamp ``before`` was removed first and the chain ran from the base
    (so the stamp can end where it began with revisions committed)."""
    if not read:
        exc.hint = (exc.hint or "") + "; the stamp could not be re-read: run 'kanban-migrate status' to see " \
                                      "which revisions were committed"
        return
    if restarted:
        done = applied[: applied.index(after) + 1] if after in applied else []
    elif after != before and after in REVISIONS:
        start = REVISIONS.index(before) + 1 if before in REVISIONS else 0
        done = list(REVISIONS[start: REVISIONS.index(after) + 1])
    else:
        done = []
    hint = (exc.hint or "").replace("; nothing was changed", "").replace("nothing was changed; ", "")
    if done:
        exc.hint = (f"{hint}; revisions {' '.join(done)} were applied and committed, the board is consistent at "
                    f"{after}; rerun to finish")
    elif restarted and after is None:
        exc.hint = f"{hint}; the untrusted stamp {before} was removed, no revision was committed; rerun to finish"
    else:
        exc.hint = f"{hint}; nothing was changed"


def apply(bf: _board.BoardFile, result: UpgradeResult, check: QuickCheck, *, missing: list[str], backup: bool,
          busy_timeout: float, trace=None, on_revision=None) -> UpgradeResult:
    """Write: wait for the quick_check, take the write lock, back up, run the chain to head;
    ``result`` (pending, from the read-only look) is completed. ``missing``: what the stamp's
    revision lacks (the stamp is then not trusted and every revision runs again)."""
    import alembic.command  # noqa: F401  (while the quick_check runs)

    from . import chain  # noqa: F401

    shown, revision = result.path, result.revision_before
    check.result()
    take_write_lock(bf, busy_timeout, shown)
    made = None
    if backup:
        backup_path, new = take_backup(bf, busy_timeout, shown)
        result.backup = str(backup_path)
        made = backup_path if new else None
    applied: list[str] = []
    try:
        migrate(bf, busy_timeout, applied, shown, trace, on_revision, restart_from=revision if missing else None)
    except KanbanMigrateError as exc:
        read, after = committed_stamp(bf, busy_timeout)
        if read and after == revision and not missing and made is not None:
            made.unlink(missing_ok=True)  # nothing was committed: the refusal leaves no backup behind
        truth(exc, revision, read, after, applied, restarted=bool(missing))
        raise
    if backup:
        from ..backup import prune

        prune(bf.path, kind="pre-upgrade")
    result.applied = applied
    result.pending = []  # done: nothing is pending any more
    if not applied:  # another process took the board to head meanwhile
        result.status, result.revision_after, result.code = "current", HEAD, 0
        result.note = "already at head: another process upgraded it while this one waited"
        return result
    result.revision_after = HEAD  # migrate returns only once the chain has reached head
    if applied[-1] != HEAD:
        result.note = f"another process applied {' '.join(pending_after(applied[-1]))} meanwhile"
    result.status, result.code = "upgraded", 0
    return result
