"""``verify``: inspect a board without changing it and report findings.

    >>> from kanban_migrate.verifying import verify
    >>> report = verify("kanban.db")                     # doctest: +SKIP
    >>> report.ok, [(f.check, f.severity, f.message) for f in report.findings]  # doctest: +SKIP

Five checks, each finding naming its check: ``file`` (header, size, WAL, backups, journal mode),
``integrity`` (``PRAGMA integrity_check``, or ``quick_check`` with ``quick=True``, and
``foreign_key_check``), ``schema`` (the board against head, semantically), ``revision``
(``alembic_version``) and ``data`` (the kanban invariants, SQL aggregates: see :mod:`.data`).

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
fingerprints the board and compares it with head (the import of SQLAlchemy that needs), then
takes data jobs; the integrity thread takes them too once its PRAGMA is done
(:class:`.data.Work` decides which job goes where). On more than two cores, more threads join.
"""

from __future__ import annotations

import os
import sqlite3
import threading

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
    paths = [str(p) for p in paths]
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(paths) <= 1:
        reports = []
        for p in paths:
            reports.append(_verify_one(p, kw))
            if on_done:
                on_done(reports[-1])
        return reports
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: list = [None] * len(paths)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = {pool.submit(_verify_one, p, kw): i for i, p in enumerate(paths)}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            if on_done:
                on_done(out[futures[fut]])
    return out


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


def data_threads() -> int:
    """Threads that take data jobs besides the integrity thread (which takes them once its PRAGMA
    is done) and the main thread (once the schema is checked): one per core beyond two. On two
    cores more threads only share the same CPU time (measured: no faster, more CPU time)."""
    return max(0, (os.cpu_count() or 2) - 2)


def _run(facts: checks.FileFacts, report: VerifyReport, watcher: access.Watcher, *, quick: bool,
         data: bool) -> None:
    """The checks, on connections from ``watcher.connect()``."""
    connect = watcher.connect
    from ..schema import snapshot
    from . import data as data_checks

    try:
        conn = connect()
    except sqlite3.Error as exc:
        report.findings.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
        return
    threads: list[threading.Thread] = []
    work = watcher.work = data_checks.Work()
    integrity: list[Finding] = []
    units: list = []
    fk_units: list = []
    try:
        try:
            board = snapshot(conn)
        except sqlite3.Error as exc:
            report.findings.append(checks.sqlite_error("integrity", exc, "cannot read the schema"))
            return

        # The integrity PRAGMA is the longest single task: it starts first, on its own connection.
        helper = threading.Thread(target=_integrity_worker,
                                  args=(connect, quick, integrity, work),
                                  name="verify-integrity", daemon=True)
        helper.start()
        threads.append(helper)
        report.findings.extend(checks.header_problems(facts))  # imports the salvage reader meanwhile

        from ..fingerprint import fingerprint

        fp = fingerprint(board)  # imports head (SQLAlchemy) while the PRAGMA runs
        report.shape = str(fp) if fp.is_kanban else fp.shape
        try:
            has_table, stamp = checks.read_stamp(conn, board)
        except sqlite3.Error as exc:
            has_table, stamp = True, None
            report.findings.append(checks.sqlite_error("revision", exc, "cannot read alembic_version"))
        report.revision = stamp
        jobs: list[data_checks.Job] = []
        p = None
        if fp.is_kanban and data:
            p = data_checks.plan(board, conn, quick=quick, stamped=stamp is not None)
            jobs, units = list(p.jobs), p.units
        for table, t in board.tables.items():
            if t.foreign_keys:
                unit = data_checks.Call(f"foreign keys {table}", lambda c, tb=table: checks.check_foreign_keys(c, tb),
                                 check="integrity", table=table)
                fk_units.append(unit)
                jobs.append(unit.job(1))
        work.put(jobs)
        work.close()
        for i in range(data_threads() if len(jobs) > 1 else 0):
            th = threading.Thread(target=_data_worker, args=(connect, work),
                                  name=f"verify-data-{i}", daemon=True)
            th.start()
            threads.append(th)

        schema_findings = checks.check_schema(board, fp)
        at_head = not any(f.severity == "error" for f in schema_findings)
        revision_findings = checks.check_revision(has_table, stamp, fp, schema_at_head=at_head)
        _work(conn, work)
        for th in threads:
            th.join()
        if p is not None:
            data_checks.finish(p, conn)
    finally:
        work.close()  # stopped early: let the workers end (they finish the jobs already queued)
        for th in threads:
            th.join()
        conn.close()
    report.findings.extend(integrity)
    for unit in fk_units:
        report.findings.extend(unit.findings)
    report.findings.extend(schema_findings)
    report.findings.extend(revision_findings)
    for unit in units:
        report.findings.extend(unit.findings)


def _integrity_worker(connect, quick, out, work) -> None:
    conn = None
    try:
        conn = connect()
        out.extend(checks.check_integrity(conn, quick=quick))
    except sqlite3.Error as exc:
        out.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
    except Exception as exc:  # noqa: BLE001
        out.append(Finding("integrity", "error", f"integrity check stopped: {type(exc).__name__}: {exc}",
                           cause=access.cannot_run(exc) or NotChecked(
                               ExitCode.INTERNAL, f"the integrity check stopped: {type(exc).__name__}: {exc}",
                               HINT_BUG)))
    try:
        if conn is not None:
            _work(conn, work)
    finally:
        if conn is not None:
            conn.close()


def _data_worker(connect, work) -> None:
    try:
        conn = connect()
    except sqlite3.Error:
        return  # the other workers take the jobs
    try:
        _work(conn, work)
    finally:
        conn.close()


def _work(conn: sqlite3.Connection, work) -> None:
    """Take data jobs until there are none; each job keeps its findings in its unit."""
    from . import data

    data.prepare(conn)
    work.drain(conn)
