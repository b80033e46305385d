"""``verify``: inspect a board without changing it and report findings.

    >>> from kanban_migrate.verifying import verify
    >>> report = verify("kanban.db")                     # doctest: +SKIP
    >>> report.ok, [(f.check, f.severity, f.message) for f in report.findings]  # doctest: +SKIP

Five checks, each finding naming its check: ``file`` (header, size, WAL, backups, journal mode),
``integrity`` (``PRAGMA integrity_check``, or ``quick_check`` with ``quick=True``, and
``foreign_key_check``), ``schema`` (the board against head, semantically), ``revision``
(``alembic_version``) and ``data`` (the kanban invariants of spec section 3: what is checked is
:mod:`.invariants`, how it runs :mod:`.scan` and :mod:`.work`).

The default is thorough, as the application's own first-open guard: ``integrity_check`` (which
finds index-only damage) and every data check. ``quick=True`` is for very large boards and cron:
``quick_check`` and the data checks that the status index and the small tables answer.

The board is opened read-only and never written: no checkpoint, no ``-wal``/``-shm`` left behind,
and the application may write meanwhile without a false alarm (:mod:`.access` says how). A
damaged or foreign file is a board with findings, never an exception; a board that could not be
checked (locked, the machine refused a read) is a report whose ``not_checked`` says why, never a
finding of damage. Only a path that does not exist raises
:class:`~kanban_migrate.errors.MissingBoard`.

Two connections work at once (SQLite releases the GIL while a query runs). A thread starts the
integrity PRAGMA first, on its own connection; meanwhile the main thread checks the header,
fingerprints the board and compares it with head (:mod:`kanban_migrate.headfacts`), then
takes data jobs; the integrity thread takes them too once its PRAGMA is done
(:class:`.work.Work` decides which job goes where). On more than two cores, more threads join.
"""

from __future__ import annotations

import os
import sqlite3

from ..board import DEFAULT_BUSY_TIMEOUT
from ..errors import ExitCode, KanbanMigrateError, MissingBoard
from . import access, checks
from .model import CHECKS, HINT_BUG, SEVERITIES, Finding, NotChecked, VerifyReport

__all__ = ["verify", "verify_many", "VerifyReport", "Finding", "NotChecked", "SEVERITIES", "CHECKS"]


def verify(path: str | os.PathLike, *, quick: bool = False, full: bool | None = None, data: bool = True,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> VerifyReport:
    """Verify the board at ``path``; see the module docstring. ``quick`` runs ``quick_check``
    and the cheap data checks only; ``full`` is the default's old name (``full=False`` is
    ``quick=True``); ``data=False`` leaves out the data checks (``recover`` only needs integrity
    and schema)."""
    if full is not None:
        quick = not full
    shown = str(path)
    changed = False
    for _attempt in range(access.ATTEMPTS):
        report = VerifyReport(shown)
        try:
            if _attempt_once(path, report, quick=quick, data=data, busy_timeout=busy_timeout, changed=changed):
                if changed:
                    report.findings.append(Finding("file", "info", "the board changed while it was checked (a "
                                                                   "writer was at work): checked again"))
                    report.sort()
                return report
        except NotChecked as nc:
            return _not_checked(report, nc)
        changed = True
    return _not_checked(report, NotChecked(ExitCode.BUSY, f"the board changed during each of {access.ATTEMPTS} "
                                                          "checks", access.HINT_BUSY))


def _not_checked(report: VerifyReport, nc: NotChecked) -> VerifyReport:
    """Keep what the file checks found; everything else is unknown."""
    report.not_checked = nc
    report.findings = [f for f in report.findings if f.check == "file" and f.cause is None]
    report.sort()
    return report


def _attempt_once(path, report: VerifyReport, *, quick: bool, data: bool, busy_timeout: float,
                  changed: bool) -> bool:
    """One reading of the board into ``report``; False when the board changed meanwhile (the
    report is then incomplete and is dropped). Raises :class:`NotChecked`."""
    try:
        facts, found = checks.inspect_file(path, defer_header=True)
    except (FileNotFoundError, NotADirectoryError):
        raise MissingBoard("no such file", "check the path", path=report.path) from None
    except OSError as exc:
        raise access.environment(exc, "reading the board") from None
    report.findings.extend(found)
    if facts.openable:
        try:
            view = access.open_view(facts, busy_timeout=busy_timeout, changed_before=changed)
        except OSError as exc:
            raise access.environment(exc, "reading the board") from None
        with view:
            report.findings.extend(view.notes)
            if view.header_from is not None:  # the file checks judge what is read (a rolled-back copy)
                with open(view.header_from, "rb") as fh:
                    facts.header, facts.size, facts.settled = fh.read(100), view.header_from.stat().st_size, True
            try:
                with access.Watcher(view, busy_timeout) as watcher:
                    _run(facts, report, watcher, quick=quick, data=data)
            except Exception as exc:  # noqa: BLE001 - a report, never a traceback
                if not view.unchanged():
                    return False
                raise access.cannot_run(exc) or NotChecked(
                    ExitCode.INTERNAL, f"verify stopped: {type(exc).__name__}: {exc}",
                    HINT_BUG) from None
            if not view.unchanged():
                return False
        blocked = next((f.cause for f in report.findings if f.cause is not None), None)
        if blocked is not None:
            raise blocked
    if not facts.header_checked:
        report.findings.extend(checks.header_problems(facts))
    if facts.size_finding is not None and not checks.size_problem_persists(facts):
        report.findings.remove(facts.size_finding)  # a writer was extending the file: no damage
    report.sort()
    return True


def verify_many(paths, *, jobs: int | None = None, on_done=None, **kw) -> list[VerifyReport]:
    """A report per path, in order; in parallel processes when ``jobs`` > 1 (default: the core
    count). Every board is tried: one that cannot be checked (a missing path included) is a report
    whose ``not_checked`` says why. ``on_done(report)`` is called as each board finishes."""
    from functools import partial

    from ..parallel import each

    return each(partial(_verify_one, kw=kw), [str(p) for p in paths], jobs=jobs, on_done=on_done)


def _verify_one(path: str, kw: dict) -> VerifyReport:
    """:func:`verify`, with a refusal (a missing path) or a bug turned into a report that says why
    the board was not checked: one board never stops the others."""
    try:
        return verify(path, **kw)
    except KanbanMigrateError as exc:
        return VerifyReport(path, not_checked=NotChecked(exc.code, exc.message, exc.hint))
    except Exception as exc:  # noqa: BLE001 - a bug, reported for this board only
        if os.environ.get("KANBAN_MIGRATE_DEBUG"):
            raise
        return VerifyReport(path, not_checked=NotChecked(ExitCode.INTERNAL, f"verify stopped: {exc!r}", HINT_BUG))


def _run(facts: checks.FileFacts, report: VerifyReport, watcher: access.Watcher, *, quick: bool,
         data: bool) -> None:
    """The checks, on connections from ``watcher.connect()``: the integrity PRAGMA, the longest
    single task, on a thread of its own from the start; meanwhile, on this thread, the header,
    the fingerprint, the stamp and the plan of the jobs; then the schema and revision checks while
    the jobs run, and this thread takes jobs too (module docstring)."""
    from ..schema import snapshot
    from .work import Crew, Work

    try:
        conn = watcher.connect()
    except sqlite3.Error as exc:
        report.findings.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
        return
    crew = Crew(watcher.connect, Work(), _prepare)
    watcher.work = crew.work
    integrity: list[Finding] = []
    try:
        try:
            board = snapshot(conn)
        except sqlite3.Error as exc:
            report.findings.append(checks.sqlite_error("integrity", exc, "cannot read the schema"))
            return
        crew.start("verify-integrity", _integrity(watcher.connect, quick, integrity))
        report.findings.extend(checks.header_problems(facts))  # imports the salvage reader meanwhile
        fp, has_table, stamp = _identify(conn, board, report)
        plan, fk_units = _queue(crew, conn, board, quick=quick, data=data and fp.is_kanban, stamped=stamp is not None)
        schema = checks.check_schema(board, fp)
        at_head = not any(f.severity == "error" for f in schema)
        revision = checks.check_revision(has_table, stamp, fp, schema_at_head=at_head)
        crew.drain(conn)
        crew.join()
        if plan is not None:
            from .scan import finish

            finish(plan, conn)
    finally:
        crew.join()
        conn.close()
    report.findings.extend(integrity)
    report.findings.extend(f for unit in fk_units for f in unit.findings)
    report.findings.extend(schema + revision)
    report.findings.extend(f for unit in (plan.units if plan is not None else ()) for f in unit.findings)


def _prepare(conn: sqlite3.Connection) -> None:
    """:func:`.invariants.prepare`, imported once the integrity PRAGMA runs (not before it)."""
    from .invariants import prepare

    prepare(conn)


def _integrity(connect, quick: bool, out: list[Finding]):
    """The integrity thread's opener (:meth:`.work.Crew.start`): its connection, on which it runs
    the integrity PRAGMA into ``out`` before it takes data jobs."""
    def opener() -> sqlite3.Connection | None:
        conn = None
        try:
            conn = connect()
            out.extend(checks.check_integrity(conn, quick=quick))
        except sqlite3.Error as exc:
            out.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
        except Exception as exc:  # noqa: BLE001 - a report, never a traceback
            why = f"{type(exc).__name__}: {exc}"
            out.append(Finding("integrity", "error", f"integrity check stopped: {why}",
                               cause=access.cannot_run(exc) or NotChecked(
                                   ExitCode.INTERNAL, f"the integrity check stopped: {why}", HINT_BUG)))
        return conn
    return opener


def _identify(conn: sqlite3.Connection, board, report: VerifyReport):
    """``(fingerprint, has alembic_version, stamp)``; the report's shape and revision are set."""
    from ..fingerprint import fingerprint

    fp = fingerprint(board)
    report.shape = str(fp) if fp.is_kanban else fp.shape
    try:
        has_table, stamp = checks.read_stamp(conn, board)
    except sqlite3.Error as exc:
        has_table, stamp = True, None
        report.findings.append(checks.sqlite_error("revision", exc, "cannot read alembic_version"))
    report.revision = stamp
    return fp, has_table, stamp


def _queue(crew, conn: sqlite3.Connection, board, *, quick: bool, data: bool, stamped: bool):
    """Every job on ``crew.work`` (the data checks when ``data``, the foreign-key checks), and the
    extra data threads started; ``(data plan or None, foreign-key units)``."""
    from . import scan
    from .work import data_threads

    plan = scan.plan(board, conn, quick=quick, stamped=stamped) if data else None
    fk_units = scan.foreign_keys(board, checks.check_foreign_keys)
    jobs = [*(plan.jobs if plan is not None else ()), *(u.job(scan.FOREIGN_KEYS_COST) for u in fk_units)]
    crew.work.put(jobs)
    crew.work.close()
    for i in range(data_threads() if len(jobs) > 1 else 0):
        crew.start(f"verify-data-{i}")
    return plan, fk_units
