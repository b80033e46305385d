"""The upgrade API: ``upgrade``, ``upgrade_many``, ``upgrade_all``, ``status``, ``is_current``.

Its own piece because it is the order of the steps (check -> stamp -> refuse -> lock -> backup ->
chain) and the truth about what was committed; the chain itself is :mod:`.chain`.

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

from .. import board as _board
from ..errors import (
    ExitCode,
    KanbanMigrateError,
    MissingBoard,
    NewerRevision,
    NotABoard,
    Refused,
)
from ..revisions import HEAD, REVISIONS, known, pending_after
from ..schema import HEAD_INDEXES, HEAD_NAMES
from .result import StatusResult, UpgradeResult
from .write import QuickCheck, apply, preflight, roll_back_hot_journal

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
    a stamp is trusted only when the schema bears it out. Read from :mod:`..headfacts`, so
    ``status`` and ``boards`` need no SQLAlchemy."""
    from ..headfacts import layout_at

    want = layout_at(revision)
    missing = []
    for table, columns in want["tables"]:
        if not snap.has_table(table):
            missing.append(f"table {table}")
            continue
        missing += [f"{table}.{c}" for c in columns if not snap.has_column(table, c)]
    have_indexes = {name.lower() for name in snap.indexes}
    return missing + [f"index {ix}" for ix in want["indexes"] if ix.lower() not in have_indexes]


def mismatch_note(revision: str, missing: list[str]) -> str:
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    return (f"stamped {revision} but the schema lacks {shown}; the stamp is not trusted: every revision "
            f"is re-applied, each adds only what is missing")


def _read_stamp(bf: _board.BoardFile, busy_timeout: float, shown: str) -> tuple[str | None, bool]:
    """The stamp, and whether it is head with head's schema really there (the cheap check)."""
    def read(conn):
        revision = _board.read_revision(conn)
        return revision, revision == HEAD and not missing_at_head(conn)

    return _board.reading(bf, read, busy_timeout=busy_timeout, shown=shown)


def is_current(path: str | os.PathLike, *, busy_timeout: float = _board.DEFAULT_BUSY_TIMEOUT) -> bool:
    """True when the board at ``path`` is stamped at head and has head's schema (stdlib only: the
    installer fast path)."""
    return _read_stamp(_board.check_file(path), busy_timeout, str(path))[1]


def _inspect(bf: _board.BoardFile, busy_timeout: float, shown: str):
    """The stamp, the fingerprint, the schema and the names of every schema object, read-only."""
    from ..fingerprint import fingerprint
    from ..schema import snapshot

    def read(conn):
        revision = _board.read_revision(conn)
        snap = snapshot(conn)
        return revision, fingerprint(snap), snap, conn.execute("SELECT type, name FROM sqlite_master").fetchall()

    return _board.reading(bf, read, busy_timeout=busy_timeout, shown=shown)


def _name_conflicts(objects: list[tuple[str, str]], shown: str) -> None:
    """Refuse up front (exit 3, nothing written) a view, trigger-free index or table that holds a
    name the upgrade needs for something else: a view called ``task_runs``, a table called like a
    head index, anything called like the rebuild's scratch tables."""
    from .. import head

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
    if not known(revision):
        raise NewerRevision(
            f"stamped at revision {revision!r}, which this kanban-migrate does not know (a newer release wrote it)",
            "upgrade kanban-migrate itself: pip install -U kanban-migrate",
            path=shown,
        )


def _create(path: Path, busy_timeout: float) -> None:
    """A new board at head: head's DDL in one transaction, stamped at head."""
    from .. import head

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
        conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (HEAD,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _offline_sql(bf: _board.BoardFile, revision: str | None) -> str:
    from alembic import command

    from .chain import make_config

    buf = io.StringIO()
    cfg = make_config(path=bf.path, output=buf)
    command.upgrade(cfg, f"{revision}:head" if revision else "head", sql=True)
    return buf.getvalue()


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
    The read-only look comes first, in the order the refusals are promised (stamp, shape, names);
    the writing phase is :func:`.write.apply`.
    """
    started = time.perf_counter()
    shown = str(path)
    try:
        bf = _board.check_file(path, allow_empty=create)
    except MissingBoard:
        if not create:
            raise
        return _created(Path(path), None, busy_timeout, shown, started)
    writing = not (dry_run or sql)
    revision, current = _stamp(bf, busy_timeout, shown, writing, backup)
    if current:
        return UpgradeResult(shown, "current", None, HEAD, HEAD, seconds=time.perf_counter() - started)
    _check_known(revision, shown)
    if writing and bf.size:
        preflight(bf, shown, backup)
    # --dry-run/--check predict: they run the same quick_check, so a board upgrade would refuse is refused
    check = QuickCheck(bf, busy_timeout, trace) if not sql and bf.size else None
    revision, fp, snap, objects = _look(bf, check, busy_timeout, shown)
    if fp is None or fp.shape == "empty":
        if not create:
            raise NotABoard("an empty database with no tables, not a board yet",
                            "pass --create to initialise it as a new board at head", path=shown)
        return _created(bf.path, "empty", busy_timeout, shown, started)
    if not fp.is_kanban:
        raise NotABoard(f"not a kanban board ({'; '.join(fp.evidence)})",
                        "check the path: kanban-migrate only changes Hermes kanban boards", path=shown)
    try:
        _check_known(revision, shown)
        _name_conflicts(objects, shown)
    except KanbanMigrateError:
        if check is not None:
            check.wait()  # no quick_check left running behind a refusal
        raise
    missing = missing_at(snap, revision) if revision is not None else []
    result = _pending(bf, shown, fp, revision, missing, sql)
    if writing:
        apply(bf, result, check, missing=missing, backup=backup, busy_timeout=busy_timeout, trace=trace,
              on_revision=on_revision)
    elif check is not None:
        check.result()
    result.seconds = time.perf_counter() - started
    return result


def _created(path: Path, shape: str | None, busy_timeout: float, shown: str, started: float) -> UpgradeResult:
    _create(path, busy_timeout)
    return UpgradeResult(shown, "created", shape, None, HEAD, [HEAD], [], None, time.perf_counter() - started)


def _stamp(bf: _board.BoardFile, busy_timeout: float, shown: str, writing: bool,
           backup: bool) -> tuple[str | None, bool]:
    """The stamp (see :func:`_read_stamp`); a hot journal is rolled back first when writing."""
    if not bf.size:
        return None, False
    try:
        return _read_stamp(bf, busy_timeout, shown)
    except _board.HotJournal:
        if not writing:
            raise
        preflight(bf, shown, backup)
        roll_back_hot_journal(bf, busy_timeout, shown)
        return _read_stamp(bf, busy_timeout, shown)


def _look(bf: _board.BoardFile, check, busy_timeout: float, shown: str):
    """:func:`_inspect` while the quick_check runs beside it; the check is waited for when the
    file turns out not to be a board (nothing will be upgraded)."""
    fp = None
    try:
        looked = _inspect(bf, busy_timeout, shown) if bf.size else (None, None, None, [])
        fp = looked[1]
        return looked
    finally:
        if check is not None and (fp is None or not fp.is_kanban):
            check.wait()


def _pending(bf: _board.BoardFile, shown: str, fp, revision: str | None, missing: list[str],
             sql: bool) -> UpgradeResult:
    """The result before anything is written: the revisions pending (all of them when the stamp is
    not borne out by the schema), and the SQL they would run when asked for."""
    pending = list(REVISIONS) if missing else pending_after(revision)
    result = UpgradeResult(shown, "pending", str(fp), revision, revision, [], pending,
                           evidence=list(fp.evidence), code=int(ExitCode.PENDING))
    if missing:
        result.note = mismatch_note(revision, missing)
    if sql:
        result.sql = _offline_sql(bf, None if missing else revision)
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
    from functools import partial

    from ..parallel import each

    return each(partial(_one, kw=kw), paths, jobs=jobs, on_done=on_done)


def upgrade_all(home: str | os.PathLike | None = None, *, jobs: int | None = None,
                include_all: bool = True, **kw) -> list[UpgradeResult]:
    """Upgrade every board of a Hermes home (spec section 1); returns one result per board."""
    from ..home import discover

    return upgrade_many([str(b.path) for b in discover(home, include_all=include_all)], jobs=jobs, **kw)
