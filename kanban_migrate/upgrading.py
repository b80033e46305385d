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


def pending_after(revision: str | None) -> list[str]:
    if revision is None:
        return list(REVISIONS)
    return list(REVISIONS[REVISIONS.index(revision) + 1:])


def _read_stamp(bf: _board.BoardFile, busy_timeout: float) -> str | None:
    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            return _board.read_revision(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, str(bf.path)) from None


def is_current(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> bool:
    """True when the board at ``path`` is stamped at head (stdlib only: the installer fast path)."""
    return _read_stamp(_board.check_file(path), busy_timeout) == HEAD


def _inspect(bf: _board.BoardFile, busy_timeout: float):
    """The stamp, the fingerprint and the schema of a board, read-only."""
    from .fingerprint import fingerprint
    from .schema import snapshot

    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            revision = _board.read_revision(conn)
            fp = fingerprint(snapshot(conn))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, str(bf.path)) from None
    return revision, fp


def status(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> StatusResult:
    """Revision, head, pending revisions and shape of one board (read-only)."""
    bf = _board.check_file(path)
    revision, fp = _inspect(bf, busy_timeout)
    _check_known(revision, str(path))
    return StatusResult(str(path), revision, HEAD, pending_after(revision), str(fp), list(fp.evidence))


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


def _take_write_lock(path: Path, busy_timeout: float) -> None:
    """Wait (up to the busy timeout) for the write lock once, before backing up: a board that
    another process keeps locked is refused (exit 4) before any backup is made."""
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _board.translate(exc, str(path)) from None


def _backup(bf: _board.BoardFile, busy_timeout: float) -> Path:
    from .backup import backup_board

    conn = _board.open_ro(bf, busy_timeout=busy_timeout)
    try:
        return backup_board(conn, bf.path)
    except sqlite3.Error as exc:
        raise _board.translate(exc, str(bf.path)) from None
    finally:
        conn.close()


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


def _migrate(bf: _board.BoardFile, busy_timeout: float, applied: list[str], trace=None, on_revision=None) -> None:
    from alembic import command
    from sqlalchemy.exc import DBAPIError

    from .migration import make_config, make_engine
    from .ops import UpgradeRefused

    def on_apply(ctx, step, heads, run_args):
        applied.append(step.up_revision_id)
        if on_revision is not None:
            on_revision(step.up_revision_id)

    engine = make_engine(bf.path, busy_timeout=busy_timeout, trace=trace)
    try:
        with engine.connect() as conn:
            command.upgrade(make_config(connection=conn, on_apply=on_apply), "head")
    except UpgradeRefused as exc:
        at = applied[-1] if applied else "its previous revision"
        raise Refused(f"upgrade stopped: {exc}; the board is consistent at {at}",
                      "report this board's shape with 'kanban-migrate status'", path=str(bf.path)) from None
    except DBAPIError as exc:
        raise _board.translate(exc.orig, str(bf.path)) from None
    except sqlite3.Error as exc:
        raise _board.translate(exc, str(bf.path)) from None
    finally:
        engine.dispose()


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
    revision = _read_stamp(bf, busy_timeout) if bf.size else None
    if revision == HEAD:
        return UpgradeResult(shown, "current", None, HEAD, HEAD, seconds=time.perf_counter() - started)
    _check_known(revision, shown)
    # --dry-run/--check predict: they run the same pre-checks, so a board upgrade would refuse is refused
    check = _QuickCheck(bf, busy_timeout, trace) if not sql and bf.size else None
    fp = None
    try:
        revision, fp = _inspect(bf, busy_timeout) if bf.size else (None, None)
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
    pending = pending_after(revision)
    result = UpgradeResult(shown, "pending", str(fp), revision, revision, [], pending,
                           evidence=list(fp.evidence), code=int(ExitCode.PENDING))
    if sql:
        result.sql = _offline_sql(bf, revision)
    if dry_run or sql:
        if check is not None:
            check.result()
        result.seconds = time.perf_counter() - started
        return result
    import alembic.command  # noqa: F401  (while the quick_check runs)

    from . import migration  # noqa: F401

    check.result()
    _take_write_lock(bf.path, busy_timeout)
    if backup:
        result.backup = str(_backup(bf, busy_timeout))
    applied: list[str] = []
    try:
        _migrate(bf, busy_timeout, applied, trace, on_revision)
    except KanbanMigrateError as exc:
        if applied and exc.hint:
            exc.hint += f"; revisions {' '.join(applied)} were applied and committed"
        raise
    result.applied = applied
    result.pending = pending_after(applied[-1]) if applied else pending
    result.revision_after = applied[-1] if applied else revision
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
        return UpgradeResult(path, "error", message=f"internal error: {exc!r}",
                             hint="a bug in kanban-migrate: please report it", code=int(ExitCode.INTERNAL))


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
