"""``upgrade``: take a board of any historical shape to head.

    >>> import kanban_migrate
    >>> result = kanban_migrate.upgrade("kanban.db")          # doctest: +SKIP
    >>> result.status, result.revision_after, result.backup   # doctest: +SKIP
    ('upgraded', 'v7', 'kanban.db.pre-upgrade.3f1c0a9e5b7d2c11.bak')

Refusals raise :class:`kanban_migrate.errors.KanbanMigrateError` subclasses (each with a one-line
``message`` and ``hint`` and an exit ``code``) and leave the board byte-for-byte unchanged.
A board already at head is recognised from ``alembic_version`` alone.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from pathlib import Path

from . import board as _board
from .errors import (
    CorruptBoard,
    EnvironmentFailure,
    ExitCode,
    KanbanMigrateError,
    MissingBoard,
    NewerRevision,
    NotABoard,
    Refused,
)
from .results import StatusResult, UpgradeResult

HEAD = "v7"  # kept equal to the newest revision in alembic/versions (tests check it)
REVISIONS = ("v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7")
#: Every table, column and index of head, for the fast path's check that a board stamped at head
#: really has them (standard library only; tests check it equals kanban_migrate.head).
HEAD_NAMES: dict[str, tuple[str, ...]] = {
    "tasks": (
        "id", "title", "body", "assignee", "status", "priority", "created_by", "created_at", "started_at",
        "completed_at", "workspace_kind", "workspace_path", "branch_name", "project_id", "claim_lock",
        "claim_expires", "tenant", "result", "idempotency_key", "consecutive_failures", "worker_pid",
        "worker_started_at", "last_failure_error", "max_runtime_seconds", "last_heartbeat_at", "current_run_id",
        "workflow_template_id", "current_step_key", "skills", "model_override", "provider_override",
        "reasoning_effort", "max_retries", "goal_mode", "goal_max_turns", "session_id", "block_kind",
        "block_recurrences", "completion_contract", "worker_contract",
    ),
    "task_links": ("parent_id", "child_id"),
    "task_comments": ("id", "task_id", "author", "body", "created_at"),
    "task_events": ("id", "task_id", "run_id", "kind", "payload", "created_at"),
    "task_runs": (
        "id", "task_id", "profile", "step_key", "status", "claim_lock", "claim_expires", "worker_pid",
        "worker_started_at", "max_runtime_seconds", "last_heartbeat_at", "started_at", "ended_at", "outcome",
        "summary", "metadata", "error",
    ),
    "task_attachments": (
        "id", "task_id", "filename", "stored_path", "content_type", "size", "uploaded_by", "created_at",
    ),
    "kanban_notify_subs": (
        "task_id", "platform", "chat_id", "thread_id", "user_id", "user_id_alt", "chat_type",
        "notifier_profile", "delivery_mode", "delivery_metadata", "created_at", "last_event_id",
        "last_ping_event_id",
    ),
}
HEAD_INDEXES: tuple[str, ...] = (
    "idx_attachments_task", "idx_comments_task", "idx_events_run", "idx_events_task", "idx_links_child",
    "idx_links_parent", "idx_notify_task", "idx_runs_status", "idx_runs_task", "idx_tasks_assignee_status",
    "idx_tasks_idempotency", "idx_tasks_session_id", "idx_tasks_status", "idx_tasks_tenant",
)


def missing_at_head(conn: sqlite3.Connection) -> list[str]:
    """What a board stamped at head lacks of head's tables, columns and indexes (one query,
    standard library only: cheap enough for the fast path)."""
    tables = ", ".join(f"'{t}'" for t in HEAD_NAMES)
    indexes = ", ".join(f"'{i}'" for i in HEAD_INDEXES)
    have = set(conn.execute(
        f"SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
        f"WHERE m.type = 'table' AND m.name IN ({tables}) "
        f"UNION ALL SELECT name, NULL FROM sqlite_master WHERE type = 'index' AND name IN ({indexes})"
    ).fetchall())
    missing = [f"{t}.{c}" for t, cols in HEAD_NAMES.items() for c in cols if (t, c) not in have]
    missing += [f"index {i}" for i in HEAD_INDEXES if (i, None) not in have]
    return missing


def missing_at(snap, revision: str) -> list[str]:
    """What the schema ``snap`` lacks of the tables, columns and indexes head has at ``revision``:
    a stamp is trusted only when the schema bears it out."""
    from . import head

    missing = []
    for table in head.metadata.sorted_tables:
        if not head.at(revision, table):
            continue
        if not snap.has_table(table.name):
            missing.append(f"table {table.name}")
            continue
        missing += [f"{table.name}.{c.name}" for c in table.columns
                    if head.at(revision, c) and not snap.has_column(table.name, c.name)]
    have_indexes = {name.lower() for name in snap.indexes}
    for table in head.metadata.sorted_tables:
        missing += [f"index {ix.name}" for ix in sorted(table.indexes, key=lambda i: i.name)
                    if head.at(revision, ix) and ix.name.lower() not in have_indexes]
    return missing


def mismatch_note(revision: str, missing: list[str]) -> str:
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    return (f"stamped {revision} but the schema lacks {shown}; the stamp is not trusted: every revision "
            f"is re-applied, each adds only what is missing")


def pending_after(revision: str | None) -> list[str]:
    if revision is None:
        return list(REVISIONS)
    return list(REVISIONS[REVISIONS.index(revision) + 1:])


def _read_stamp(bf: _board.BoardFile, busy_timeout: float, shown: str) -> tuple[str | None, bool]:
    """The stamp, and whether it is head with head's schema really there (the cheap check)."""
    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            revision = _board.read_revision(conn)
            return revision, revision == HEAD and not missing_at_head(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None
    except KanbanMigrateError as exc:
        exc.path = exc.path or shown
        raise


def is_current(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> bool:
    """True when the board at ``path`` is stamped at head and has head's schema (stdlib only: the
    installer fast path)."""
    return _read_stamp(_board.check_file(path), busy_timeout, str(path))[1]


def _inspect(bf: _board.BoardFile, busy_timeout: float, shown: str):
    """The stamp, the fingerprint, the schema and the names of every schema object, read-only."""
    from .fingerprint import fingerprint
    from .schema import snapshot

    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            revision = _board.read_revision(conn)
            snap = snapshot(conn)
            fp = fingerprint(snap)
            objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None
    except KanbanMigrateError as exc:
        exc.path = exc.path or shown
        raise
    return revision, fp, snap, objects


def _name_conflicts(objects: list[tuple[str, str]], shown: str) -> None:
    """Refuse up front (exit 3, nothing written) a view, trigger-free index or table that holds a
    name the upgrade needs for something else: a view called ``task_runs``, a table called like a
    head index, anything called like the rebuild's scratch tables."""
    from . import head

    tables = {t.lower() for t in head.metadata.tables}
    indexes = {ix.name.lower() for t in head.metadata.tables.values() for ix in t.indexes}
    for kind, name in objects:
        low = (name or "").lower()
        if kind == "trigger":
            continue
        clash = None
        if low in tables and kind != "table":
            clash = f"table {low}"
        elif low in indexes and kind != "index":
            clash = f"index {low}"
        elif low.startswith("_kanban_migrate_"):
            clash = "its scratch tables"
        if clash:
            raise Refused(f"the {kind} {_board.excerpt(name, 40)} takes the name kanban-migrate needs for {clash}",
                          "rename or drop it, then rerun: the application never makes one; nothing was changed", path=shown)


def status(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> StatusResult:
    """Revision, head, pending revisions and shape of one board (read-only). A stamp the schema
    does not bear out is reported (``note``) with every revision pending."""
    shown = str(path)
    bf = _board.check_file(path)
    revision, fp, snap, _objects = _inspect(bf, busy_timeout, shown)
    _check_known(revision, shown)
    pending = pending_after(revision)
    note = None
    if revision is not None and fp.is_kanban:
        missing = missing_at(snap, revision)
        if missing:
            note, pending = mismatch_note(revision, missing), list(REVISIONS)
    return StatusResult(shown, revision, HEAD, pending, str(fp), list(fp.evidence), note=note)


def _check_known(revision: str | None, shown: str) -> None:
    if revision is not None and revision not in REVISIONS:
        raise NewerRevision(
            f"stamped at revision {revision!r}, which this kanban-migrate does not know (a newer release wrote it)",
            "upgrade kanban-migrate itself: pip install -U kanban-migrate",
            path=shown,
        )


class _QuickCheck:
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

    def result(self) -> None:
        """Wait for the check; raise the refusal for a damaged board."""
        self._thread.join()
        if self.error is not None:
            raise _board.translate(self.error, str(self.bf.path)) from None
        _refuse_unless_ok(self.rows or [], str(self.bf.path))


def _refuse_unless_ok(rows: list[str], shown: str) -> None:
    """Refuse a damaged board before anything is written (points to ``recover``)."""
    if rows != ["ok"]:
        first = rows[0].splitlines()[0] if rows else "no result"
        raise CorruptBoard(
            f"board fails PRAGMA quick_check ({first})",
            "nothing was changed; run 'kanban-migrate recover' on it",
            path=shown,
        )


def _preflight(bf: _board.BoardFile, shown: str, backup: bool) -> None:
    """Refuse, before anything is opened for writing or backed up, a board this run cannot write:
    a read-only file or folder (SQLite writes ``-journal``/``-wal``/``-shm`` beside the board; a
    failed read-write open would leave them, or checkpoint a WAL into the file), or a name too
    long for SQLite's sidecars or for a backup beside it."""
    from .backup import name_room

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
    need = (bf.size if backup else 0) + _ROOM
    if free is not None and free < need:
        raise EnvironmentFailure(f"the disk is full ({free / 1e6:.1f} MB free; the upgrade needs about "
                                 f"{need / 1e6:.1f} MB{' with its backup' if backup else ''})",
                                 "free some space and rerun; nothing was changed", path=shown)
    if not os.access(folder, os.W_OK | os.X_OK, **kw):
        raise EnvironmentFailure("its folder is read-only for this user (SQLite writes -journal/-wal/-shm "
                                 "beside the board)", "give this user write access to the folder, then rerun; "
                                 "nothing was changed", path=shown)


_ROOM = 1 << 20  # free bytes the upgrade wants beyond the backup: its WAL (100 pages) and -shm, with room


def _take_write_lock(bf: _board.BoardFile, busy_timeout: float, shown: str) -> None:
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


def _roll_back_hot_journal(bf: _board.BoardFile, busy_timeout: float, shown: str) -> None:
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


def _backup(bf: _board.BoardFile, busy_timeout: float, shown: str) -> tuple[Path, bool]:
    from .backup import make_backup

    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            return make_backup(conn, bf.path)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, shown) from None
    except OSError as exc:
        raise _environment(exc, shown, "making the pre-upgrade backup") from None


def _environment(exc: OSError, shown: str, doing: str) -> KanbanMigrateError:
    import errno

    why = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file-size limit was reached",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied", errno.ENAMETOOLONG: "a file name is too long",
           errno.EDQUOT: "the disk quota is exhausted"}.get(exc.errno, exc.strerror or str(exc))
    return EnvironmentFailure(f"{why} while {doing} ({exc.strerror})", "fix that and rerun; nothing was changed",
                              path=shown)


def _create(path: Path, busy_timeout: float) -> None:
    """A new board at head: head's DDL in one transaction, stamped at head."""
    from . import head

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _board.open_rw(path, busy_timeout=busy_timeout)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for stmt in head.head_ddl():
            conn.execute(stmt)
        conn.execute(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head.HEAD,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _offline_sql(bf: _board.BoardFile, revision: str | None) -> str:
    from alembic import command

    from .migration import make_config

    buf = io.StringIO()
    cfg = make_config(path=bf.path, output=buf)
    command.upgrade(cfg, f"{revision}:head" if revision else "head", sql=True)
    return buf.getvalue()


class _StampMoved(Exception):
    """Another process moved the stamp while this one ran (two upgrades at once)."""


_RACE_SIGNS = ("expected to match one row", "unique constraint failed: alembic_version")


def _committed_stamp(bf: _board.BoardFile, busy_timeout: float) -> tuple[bool, str | None]:
    """``(read, stamp)``: the stamp now in the file, re-read after a failure (the truth about
    what was committed; ``read`` is False when even that read failed)."""
    try:
        conn = _board.open_ro(bf, busy_timeout=min(busy_timeout, 10.0))
        try:
            return True, _board.read_revision(conn)
        finally:
            conn.close()
    except (sqlite3.Error, KanbanMigrateError):
        return False, None


def _migrate(bf: _board.BoardFile, busy_timeout: float, applied: list[str], shown: str, trace=None,
             on_revision=None, restart_from: str | None = None) -> None:
    """Run the chain to head. ``restart_from``: the stamp the schema does not bear out; it is
    removed (in its own transaction, only if still there) and every revision runs again.

    Two upgrades of one board at once: each revision runs in ``BEGIN IMMEDIATE`` and checks
    that the stamp it moves is the one it started from; the one that finds it moved rolls that
    revision back, re-reads the stamp and carries on from there (nothing left: at head)."""
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from .migration import make_config, make_engine
    from .ops import UpgradeRefused

    def on_apply(ctx, step, heads, run_args):
        got = [r[0] for r in ctx.connection.exec_driver_sql("SELECT version_num FROM alembic_version")]
        if got != [step.up_revision_id]:
            raise _StampMoved(f"stamp is {got} after applying {step.up_revision_id}")
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
            except (_StampMoved, CommandError, DBAPIError) as exc:
                text = str(exc).lower()
                if not (isinstance(exc, _StampMoved) or any(sign in text for sign in _RACE_SIGNS)):
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
        raise _environment(exc, shown, "upgrading") from None
    finally:
        engine.dispose()


def _truth(exc: KanbanMigrateError, before: str | None, read: bool, after: str | None,
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


def upgrade(
    path: str | os.PathLike,
    *,
    create: bool = False,
    dry_run: bool = False,
    sql: bool = False,
    backup: bool = True,
    busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT,
    trace=None,
    on_revision=None,
) -> UpgradeResult:
    """Take the board at ``path`` to head; see the module docstring.

    ``dry_run`` reports the detected shape and the revisions that would run and writes nothing;
    ``sql`` returns the SQL instead (Alembic's offline mode against a read-only shadow of the
    board's schema); ``create`` makes a new board at head where ``path`` is missing or empty.
    ``on_revision(revision)`` is called as each revision commits (progress).

    Every refusal before the first revision commits leaves the folder as it was (no backup, no
    sidecar); a failure after says which revisions were committed, read back from the file.
    """
    started = time.perf_counter()
    shown = str(path)
    try:
        bf = _board.check_file(path, allow_empty=create)
    except MissingBoard:
        if not create:
            raise
        _create(Path(path), busy_timeout)
        return UpgradeResult(shown, "created", None, None, HEAD, [HEAD], [], None,
                             time.perf_counter() - started)
    writing = not (dry_run or sql)
    try:
        revision, current = _read_stamp(bf, busy_timeout, shown) if bf.size else (None, False)
    except _board.HotJournal:
        if not writing:
            raise
        _preflight(bf, shown, backup)
        _roll_back_hot_journal(bf, busy_timeout, shown)
        revision, current = _read_stamp(bf, busy_timeout, shown)
    if current:
        return UpgradeResult(shown, "current", None, HEAD, HEAD, seconds=time.perf_counter() - started)
    _check_known(revision, shown)
    if writing and bf.size:
        _preflight(bf, shown, backup)
    # --dry-run/--check predict: they run the same quick_check, so a board upgrade would refuse is refused
    check = _QuickCheck(bf, busy_timeout, trace) if not sql and bf.size else None
    fp = snap = None
    objects: list = []
    try:
        revision, fp, snap, objects = _inspect(bf, busy_timeout, shown) if bf.size else (None, None, None, [])
    finally:
        if check is not None and (fp is None or not fp.is_kanban):
            check._thread.join()
    if fp is None or fp.shape == "empty":
        if not create:
            raise NotABoard("an empty database with no tables, not a board yet",
                            "pass --create to initialise it as a new board at head", path=shown)
        _create(bf.path, busy_timeout)
        return UpgradeResult(shown, "created", "empty", None, HEAD, [HEAD], [], None,
                             time.perf_counter() - started)
    if not fp.is_kanban:
        raise NotABoard(f"not a kanban board ({'; '.join(fp.evidence)})",
                        "check the path: kanban-migrate only changes Hermes kanban boards", path=shown)
    try:
        _check_known(revision, shown)
        _name_conflicts(objects, shown)
    except KanbanMigrateError:
        if check is not None:
            check._thread.join()  # no quick_check left running behind a refusal
        raise
    missing = missing_at(snap, revision) if revision is not None else []
    pending = list(REVISIONS) if missing else pending_after(revision)
    result = UpgradeResult(shown, "pending", str(fp), revision, revision, [], pending,
                           evidence=list(fp.evidence), code=int(ExitCode.PENDING))
    if missing:
        result.note = mismatch_note(revision, missing)
    if sql:
        result.sql = _offline_sql(bf, None if missing else revision)
    if dry_run or sql:
        if check is not None:
            check.result()
        result.seconds = time.perf_counter() - started
        return result
    import alembic.command  # noqa: F401  (while the quick_check runs)

    from . import migration  # noqa: F401

    check.result()
    _take_write_lock(bf, busy_timeout, shown)
    made = None
    if backup:
        backup_path, new = _backup(bf, busy_timeout, shown)
        result.backup = str(backup_path)
        made = backup_path if new else None
    applied: list[str] = []
    try:
        _migrate(bf, busy_timeout, applied, shown, trace, on_revision, restart_from=revision if missing else None)
    except KanbanMigrateError as exc:
        read, after = _committed_stamp(bf, busy_timeout)
        if read and after == revision and not missing and made is not None:
            made.unlink(missing_ok=True)  # nothing was committed: the refusal leaves no backup behind
        _truth(exc, revision, read, after, applied, restarted=bool(missing))
        raise
    if backup:
        from .backup import prune

        prune(bf.path, kind="pre-upgrade")
    result.applied = applied
    result.pending = []  # done: nothing is pending any more
    if not applied:  # another process took the board to head meanwhile
        result.status, result.revision_after, result.code = "current", HEAD, 0
        result.note = "already at head: another process upgraded it while this one waited"
        result.seconds = time.perf_counter() - started
        return result
    result.revision_after = HEAD  # _migrate returns only once the chain has reached head
    if applied[-1] != HEAD:
        result.note = f"another process applied {' '.join(pending_after(applied[-1]))} meanwhile"
    result.status = "upgraded"
    result.code = 0
    result.seconds = time.perf_counter() - started
    return result


def _one(path: str, kw: dict) -> UpgradeResult:
    try:
        return upgrade(path, **kw)
    except KanbanMigrateError as exc:
        status = {ExitCode.BUSY: "busy", ExitCode.USAGE: "missing"}.get(exc.code, "refused")
        return UpgradeResult(path, status, message=exc.message, hint=exc.hint, code=int(exc.code))
    except Exception as exc:  # a bug must not stop the other boards of the fleet
        if os.environ.get("KANBAN_MIGRATE_DEBUG"):
            raise
        return UpgradeResult(path, "error", message=f"internal error: {_board.excerpt(repr(exc), 200)}",
                             hint="a bug in kanban-migrate: set KANBAN_MIGRATE_DEBUG=1 for the traceback and "
                                  "please report it", code=int(ExitCode.INTERNAL))


def upgrade_many(paths: list[str], *, jobs: int | None = None, on_done=None, **kw) -> list[UpgradeResult]:
    """Upgrade several boards, in parallel processes when ``jobs`` > 1; one board's failure never
    stops the others. Results come back in the order of ``paths``; ``on_done(result)`` is called
    as each board finishes (progress)."""
    jobs = jobs or os.cpu_count() or 1
    results: list[UpgradeResult | None] = [None] * len(paths)
    if jobs <= 1 or len(paths) <= 1:
        for i, p in enumerate(paths):
            results[i] = _one(p, kw)
            if on_done:
                on_done(results[i])
        return results  # type: ignore[return-value]
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = {pool.submit(_one, p, kw): i for i, p in enumerate(paths)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_done:
                on_done(results[futures[fut]])
    return results  # type: ignore[return-value]


def upgrade_all(home: str | os.PathLike | None = None, *, jobs: int | None = None,
                include_all: bool = True, **kw) -> list[UpgradeResult]:
    """Upgrade every board of a Hermes home (spec section 1); returns one result per board."""
    from .home import discover

    return upgrade_many([str(b.path) for b in discover(home, include_all=include_all)], jobs=jobs, **kw)
