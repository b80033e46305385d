"""Step 5 of recover: the result must be whole before anything is delivered, and what is said of it.

The final bytes are checked (:func:`check_final`: the header against the file's size, no pending
WAL, ``integrity_check``) after one last checkpoint (:func:`final_checkpoint`); ``verify``'s
verdict on the board recover leaves, or found healthy, is the report's (:func:`verify_rebuilt`,
:func:`verify_healthy`), and so are the rows counted in it (:func:`count_board`). A file whose
header ``verify`` would call insane is never called healthy (:func:`header_problems`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..board import MAGIC, sidecar, uri
from ..errors import Refused
from ..salvage.dump import FREELIST_MARKS, LOST_AND_FOUND
from ..salvage.sqlschema import quote_ident
from .report import RecoverReport, TableReport, Verdict


def read_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(100)


def header_problems(path: Path) -> list[str]:
    """What ``verify``'s file check would say about the header of the file at ``path`` (the same
    :meth:`DbHeader.problems`), so that recover never calls healthy what verify calls damaged."""
    from ..salvage import DbHeader

    header = read_header(path)
    if len(header) < 100 or not header.startswith(MAGIC):
        return ["no SQLite header"]
    return DbHeader.parse(header).problems(os.stat(path).st_size)


def check_final(path: Path, *, integrity: bool = True) -> str | None:
    """Why the bytes at ``path`` are not one complete, sound database file, or None: the header's
    page count times its page size must be the file's size, no WAL may be pending, and
    ``integrity_check`` must say ok (``integrity=False`` where ``verify --full`` runs it next)."""
    header = read_header(path)
    if len(header) < 100 or not header.startswith(MAGIC):
        return "no SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size = os.stat(path).st_size
    if header[24:28] == header[92:96]:  # the in-header page count is valid (SQLite >= 3.7.0 wrote it)
        if pages * page_size != size:
            return f"the header says {pages} pages of {page_size} bytes, the file has {size} bytes"
    elif size % page_size:
        return f"the file's size ({size} bytes) is not a whole number of {page_size}-byte pages"
    wal = sidecar(path, "-wal")
    if wal.exists() and wal.stat().st_size:
        return "a WAL is still pending"
    if not integrity:
        return None
    conn = sqlite3.connect(uri(path, mode="ro", immutable="1"), uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return f"integrity_check failed: {exc}"
    finally:
        conn.close()
    return None if rows == ["ok"] else f"integrity_check: {rows[0]}"


def final_checkpoint(db: Path, *, new_board: bool) -> None:
    """Checkpoint everything into the main file and say so, or raise: a checkpoint that did not
    complete (busy, or a write that failed) must never pass for a finished board. A rebuilt board
    (``new_board``) then gets the journal mode the application gives a new board
    (:func:`kanban_migrate.board.journal_mode_for`); a checkpointed copy keeps the board's own."""
    from ..board import journal_mode_for

    conn = sqlite3.connect(str(db), timeout=1.0, isolation_level=None)  # only this run opens it
    try:
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if row is None or row[0] != 0 or row[1] != row[2]:
                raise Refused(f"the rebuilt board's final checkpoint did not complete ({row})",
                              "nothing was swapped; rerun", path=str(db))
        target = (journal_mode_for("delete") or "delete") if new_board else mode
        if target != mode:
            got = str(conn.execute(f"PRAGMA journal_mode={target}").fetchone()[0]).lower()
            if got != target:
                raise Refused(f"the rebuilt board could not be put in {target} mode (it is {got})",
                              "nothing was swapped; rerun", path=str(db))
    finally:
        conn.close()


def table_counts(db: Path) -> dict[str, int]:
    """Rows per table of the database at ``db`` (its own tables, not SQLite's or the stamp)."""
    from ..schema import INTERNAL_TABLES

    conn = sqlite3.connect(uri(db, mode="ro"), uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite!_%' ESCAPE '!'")]
        return {n: conn.execute(f"SELECT COUNT(*) FROM {quote_ident(n)}").fetchone()[0]
                for n in names if n not in INTERNAL_TABLES and n not in (LOST_AND_FOUND, FREELIST_MARKS)}
    finally:
        conn.close()


def count_board(db: Path, report: RecoverReport) -> None:
    """Rows in the recovered board, per table; without a salvage SQLite read every row of the
    file, so the rows in the file are the same."""
    for name, n in table_counts(db).items():
        t = report.tables.get(name)
        if t is None:
            if report.mode == "salvage" and not n:
                continue  # a table the revision chain made, still empty
            t = report.tables[name] = TableReport(name)
        t.in_board = n
        if report.mode != "salvage":
            t.in_file = n


def follow_marks(db: Path) -> None:
    from ..salvage.dump import FreelistMarks

    conn = sqlite3.connect(str(db), isolation_level=None)
    try:
        with conn:
            FreelistMarks.follow(conn)
    finally:
        conn.close()


def missing_tasks(staging: Path) -> list[str]:
    from .. import head

    conn = sqlite3.connect(uri(staging, mode="ro"), uri=True)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        parts = [f"SELECT {col} AS task_id FROM {t}" for t, col in head.TASK_CHILDREN.items() if t in have]
        if not parts:
            return []
        sql = (f"SELECT DISTINCT task_id FROM ({' UNION ALL '.join(parts)}) "
               "WHERE task_id IS NOT NULL AND task_id NOT IN (SELECT id FROM tasks) ORDER BY task_id")
        return [r[0] for r in conn.execute(sql)]
    finally:
        conn.close()


def verify_rebuilt(db: Path, shown: str, report: RecoverReport) -> None:
    """No integrity or schema error, or nothing is swapped. What ``verify`` says of the board
    (every check, as ``kanban-migrate verify`` runs them) is the report's verdict."""
    from ..verifying import verify

    checked = verify(db)
    report.verify = Verdict.of(checked)
    if checked.not_checked is not None:  # a check that could not run is no pass
        raise Refused(f"the rebuilt board could not be verified ({checked.not_checked.reason}); nothing was swapped",
                      checked.not_checked.hint, path=shown)
    bad = [f for f in checked.findings if f.severity == "error" and f.check in ("integrity", "schema")]
    if report.mode != "salvage":
        bad = [f for f in bad if f.check == "integrity"]  # a WAL-only/REINDEX board keeps its schema
    if bad:
        raise Refused(f"the rebuilt board fails verification ({bad[0].message}); nothing was swapped",
                      "please report this; the board was left as it was", path=shown)


def verify_healthy(board: Path, report: RecoverReport, busy_timeout: float) -> None:
    """The board was found healthy and left as it is: ``verify``'s verdict on it, read after the
    run's lock is gone, so that recover says what ``kanban-migrate verify`` says of the same file
    (a legacy board not at head, data findings)."""
    from ..verifying import verify

    report.verify = Verdict.of(verify(board, busy_timeout=busy_timeout))
