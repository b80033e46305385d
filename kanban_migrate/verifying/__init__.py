"""``verify``: inspect a board without changing it and report findings.

    >>> from kanban_migrate.verifying import verify
    >>> report = verify("kanban.db")                     # doctest: +SKIP
    >>> report.ok, [(f.check, f.severity, f.message) for f in report.findings]  # doctest: +SKIP

Five checks, each finding naming its check: ``file`` (header, size, WAL, backups, journal mode),
``integrity`` (``PRAGMA quick_check``, or ``integrity_check`` with ``full=True``, and
``foreign_key_check``), ``schema`` (the board against head, semantically), ``revision``
(``alembic_version``) and ``data`` (the kanban invariants, one streamed pass per table).

The board is opened read-only and never written: no checkpoint, no ``-wal``/``-shm`` left behind
(see :func:`checks.open_uri`). A damaged or foreign file is a board with findings, never an
exception; only a path that does not exist raises :class:`~kanban_migrate.errors.MissingBoard`.

Two connections work at once: one runs the integrity pragma while the other reads the schema and
starts on the data checks; whichever is free takes the next data check.
"""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import tempfile
import threading

from ..board import DEFAULT_BUSY_TIMEOUT
from ..errors import MissingBoard
from . import checks
from .model import CHECKS, SEVERITIES, Finding, VerifyReport

__all__ = ["verify", "verify_many", "VerifyReport", "Finding", "SEVERITIES", "CHECKS"]


def verify(path: str | os.PathLike, *, full: bool = False,
           busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> VerifyReport:
    """Verify the board at ``path``; see the module docstring. ``full`` runs
    ``PRAGMA integrity_check`` instead of ``quick_check`` (index contents are compared too)."""
    shown = str(path)
    report = VerifyReport(shown)
    try:
        facts, found = checks.inspect_file(path)
    except FileNotFoundError:
        raise MissingBoard("no such file", "check the path", path=shown) from None
    except OSError as exc:
        report.findings.append(Finding("file", "error", f"cannot read: {exc.strerror or exc}",
                                       hint="check the path and its permissions"))
        return report
    report.findings.extend(found)
    if facts.openable:
        try:
            _inspect(facts, report, full=full, busy_timeout=busy_timeout)
        except Exception as exc:  # noqa: BLE001 - a report, never a traceback
            report.findings.append(Finding("integrity", "error", f"verify stopped: {type(exc).__name__}: {exc}",
                                           hint="report this as a bug of kanban-migrate, with the board if possible"))
    report.sort()
    return report


def verify_many(paths, **kw) -> list[VerifyReport]:
    return [verify(p, **kw) for p in paths]


def _inspect(facts: checks.FileFacts, report: VerifyReport, *, full: bool, busy_timeout: float) -> None:
    tmpdir = None
    path = facts.path
    if checks.needs_private_copy(facts):
        # Reading the WAL needs a -shm; rather than create one beside the board, read a copy.
        tmpdir = tempfile.mkdtemp(prefix="kanban-verify-")
        path = type(facts.path)(tmpdir) / facts.path.name
        shutil.copyfile(facts.path, path)
        shutil.copyfile(facts.wal, str(path) + "-wal")
        report.findings.append(Finding("file", "info", "read from a private copy (the -wal has no -shm beside it)"))
    try:
        _run(facts, report, checks.open_uri(facts, path), full=full, busy_timeout=busy_timeout)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _run(facts: checks.FileFacts, report: VerifyReport, uri: str, *, full: bool, busy_timeout: float) -> None:
    from ..schema import snapshot
    from . import data

    try:
        conn = checks.connect(uri, busy_timeout)
    except sqlite3.Error as exc:
        report.findings.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
        return
    try:
        checks.use_mmap(conn, facts.size)
        try:
            board = snapshot(conn)
        except sqlite3.Error as exc:
            report.findings.append(checks.sqlite_error("integrity", exc, "cannot read the schema"))
            return

        work: queue.Queue = queue.Queue()
        results: dict[int, list[Finding]] = {}
        integrity: list[Finding] = []
        helper = threading.Thread(target=_integrity_worker,
                                  args=(uri, busy_timeout, facts.size, full, integrity, work, results),
                                  name="verify-integrity", daemon=True)
        helper.start()

        from ..fingerprint import fingerprint

        fp = fingerprint(board)
        report.shape = str(fp) if fp.is_kanban else fp.shape
        try:
            has_table, stamp = checks.read_stamp(conn, board)
        except sqlite3.Error as exc:
            has_table, stamp = True, None
            report.findings.append(checks.sqlite_error("revision", exc, "cannot read alembic_version"))
        report.revision = stamp

        jobs: list[data.Job] = []
        for table, t in board.tables.items():
            if t.foreign_keys:
                jobs.append(data.Job(f"foreign keys {table}", lambda c, tb=table: checks.check_foreign_keys(c, tb), 1))
        if fp.is_kanban:
            jobs = data.plan(board).jobs + jobs
        for i, job in enumerate(jobs):
            work.put((i, job))
        work.put(None)
        work.put(None)

        schema_findings = checks.check_schema(board, fp)
        revision_findings = checks.check_revision(has_table, stamp, fp)
        _work(conn, work, results)
        helper.join()
    finally:
        conn.close()
    report.findings.extend(integrity)
    for i in sorted(results):
        if jobs[i].name.startswith("foreign keys"):
            report.findings.extend(results[i])
    report.findings.extend(schema_findings)
    report.findings.extend(revision_findings)
    for i in sorted(results):
        if not jobs[i].name.startswith("foreign keys"):
            report.findings.extend(results[i])


def _integrity_worker(uri, busy_timeout, size, full, out, work, results) -> None:
    conn = None
    try:
        conn = checks.connect(uri, busy_timeout)
        checks.use_mmap(conn, size)
        out.extend(checks.check_integrity(conn, full=full))
    except sqlite3.Error as exc:
        out.append(checks.sqlite_error("integrity", exc, "cannot open the board"))
    except Exception as exc:  # noqa: BLE001
        out.append(Finding("integrity", "error", f"integrity check stopped: {type(exc).__name__}: {exc}"))
    try:
        if conn is not None:
            _work(conn, work, results)
    finally:
        if conn is not None:
            conn.close()


def _work(conn: sqlite3.Connection, work: queue.Queue, results: dict) -> None:
    """Take data jobs until the end marker; each job's findings go to ``results[index]``."""
    from . import data

    data.prepare(conn)
    while True:
        item = work.get()
        if item is None:
            return
        i, job = item
        try:
            results[i] = job.run(conn)
        except sqlite3.Error as exc:
            results[i] = [checks.sqlite_error("data", exc, f"{job.name} failed")]
        except Exception as exc:  # noqa: BLE001
            results[i] = [Finding("data", "error", f"{job.name} stopped: {type(exc).__name__}: {exc}")]

