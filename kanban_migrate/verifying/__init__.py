"""``verify``: inspect a board without changing it and report findings.

    >>> from kanban_migrate.verifying import verify
    >>> report = verify("kanban.db")                     # doctest: +SKIP
    >>> report.ok, [(f.check, f.severity, f.message) for f in report.findings]  # doctest: +SKIP

Five checks, each finding naming its check: ``file`` (header, size, WAL, backups, journal mode),
``integrity`` (``PRAGMA quick_check``, or ``integrity_check`` with ``full=True``, and
``foreign_key_check``), ``schema`` (the board against head, semantically), ``revision``
(``alembic_version``) and ``data`` (the kanban invariants, SQL aggregates: see :mod:`.data`).

The board is opened read-only and never written: no checkpoint, no ``-wal``/``-shm`` left behind
(see :func:`checks.open_uri`). A damaged or foreign file is a board with findings, never an
exception; only a path that does not exist raises :class:`~kanban_migrate.errors.MissingBoard`.

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
from ..errors import MissingBoard
from . import checks
from .model import CHECKS, SEVERITIES, Finding, VerifyReport

__all__ = ["verify", "verify_many", "VerifyReport", "Finding", "SEVERITIES", "CHECKS"]


def verify(path: str | os.PathLike, *, full: bool = False, data: bool = True,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> VerifyReport:
    """Verify the board at ``path``; see the module docstring. ``full`` runs
    ``PRAGMA integrity_check`` instead of ``quick_check`` (index contents are compared too);
    ``data=False`` leaves out the data checks (``recover`` only needs integrity and schema)."""
    shown = str(path)
    report = VerifyReport(shown)
    try:
        facts, found = checks.inspect_file(path, defer_header=True)
    except FileNotFoundError:
        raise MissingBoard("no such file", "check the path", path=shown) from None
    except OSError as exc:
        report.findings.append(Finding("file", "error", f"cannot read: {exc.strerror or exc}",
                                       hint="check the path and its permissions"))
        return report
    report.findings.extend(found)
    if facts.openable:
        try:
            _inspect(facts, report, full=full, data=data, busy_timeout=busy_timeout)
        except Exception as exc:  # noqa: BLE001 - a report, never a traceback
            report.findings.append(Finding("integrity", "error", f"verify stopped: {type(exc).__name__}: {exc}",
                                           hint="report this as a bug of kanban-migrate, with the board if possible"))
    if not facts.header_checked:
        report.findings.extend(checks.header_problems(facts))
    report.sort()
    return report


def verify_many(paths, **kw) -> list[VerifyReport]:
    return [verify(p, **kw) for p in paths]


def _inspect(facts: checks.FileFacts, report: VerifyReport, *, full: bool, data: bool, busy_timeout: float) -> None:
    tmpdir = None
    path = facts.path
    if checks.needs_private_copy(facts):
        import shutil
        import tempfile

        # Reading the WAL needs a -shm; rather than create one beside the board, read a copy.
        tmpdir = tempfile.mkdtemp(prefix="kanban-verify-")
        path = type(facts.path)(tmpdir) / facts.path.name
        shutil.copyfile(facts.path, path)
        shutil.copyfile(facts.wal, str(path) + "-wal")
        report.findings.append(Finding("file", "info", "read from a private copy (the -wal has no -shm beside it)"))
    try:
        _run(facts, report, checks.open_uri(facts, path), full=full, data=data, busy_timeout=busy_timeout)
    finally:
        if tmpdir:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)


def data_threads() -> int:
    """Threads that take data jobs besides the integrity thread (which takes them once its PRAGMA
    is done) and the main thread (once the schema is checked): one per core beyond two. On two
    cores more threads only share the same CPU time (measured: no faster, more CPU time)."""
    return max(0, (os.cpu_count() or 2) - 2)


def _run(facts: checks.FileFacts, report: VerifyReport, uri: str, *, full: bool, data: bool,
         busy_timeout: float) -> None:
    from ..schema import snapshot
    from . import data as data_checks

    try:
        conn = checks.connect(uri, busy_timeout)
    except sqlite3.Error as exc:
        report.findings.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
        return
    threads: list[threading.Thread] = []
    work = data_checks.Work()
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
                                  args=(uri, busy_timeout, full, integrity, work),
                                  name="verify-integrity", daemon=True)
        helper.start()
        threads.append(helper)
        report.findings.extend(checks.header_problems(facts))  # imports the salvage reader meanwhile

        from ..fingerprint import fingerprint

        fp = fingerprint(board)  # imports head (SQLAlchemy) while the PRAGMA runs
        report.shape = str(fp) if fp.is_kanban else fp.shape
        jobs: list[data_checks.Job] = []
        p = None
        if fp.is_kanban and data:
            p = data_checks.plan(board, conn)
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
            th = threading.Thread(target=_data_worker, args=(uri, busy_timeout, work),
                                  name=f"verify-data-{i}", daemon=True)
            th.start()
            threads.append(th)

        try:
            has_table, stamp = checks.read_stamp(conn, board)
        except sqlite3.Error as exc:
            has_table, stamp = True, None
            report.findings.append(checks.sqlite_error("revision", exc, "cannot read alembic_version"))
        report.revision = stamp
        schema_findings = checks.check_schema(board, fp)
        revision_findings = checks.check_revision(has_table, stamp, fp)
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


def _integrity_worker(uri, busy_timeout, full, out, work) -> None:
    conn = None
    try:
        conn = checks.connect(uri, busy_timeout)
        out.extend(checks.check_integrity(conn, full=full))
    except sqlite3.Error as exc:
        out.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
    except Exception as exc:  # noqa: BLE001
        out.append(Finding("integrity", "error", f"integrity check stopped: {type(exc).__name__}: {exc}"))
    try:
        if conn is not None:
            _work(conn, work)
    finally:
        if conn is not None:
            conn.close()


def _data_worker(uri, busy_timeout, work) -> None:
    try:
        conn = checks.connect(uri, busy_timeout)
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
