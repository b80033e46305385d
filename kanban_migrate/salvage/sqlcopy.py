"""Let SQLite read what it can: clean runs of a table's b-tree are read and copied by SQLite.

The walk keeps runs of consecutive clean leaves (``model.Run``: first rowid, cell count). SQLite
reads one run with ``WHERE rowid >= first ORDER BY rowid LIMIT count``: it seeks down the
interior pages our walk read, scans exactly those leaves and stops before the next page, so a
damaged page beside the run is never touched. :class:`ReadBack` checks that SQLite reads
each run as the walk did (count, first and last rowid, rowid sum, every record whole, every
text valid UTF-8); :func:`copy_sound_rows` then copies verified runs into another database with
``INSERT … SELECT``, and the table's row stream skips what was copied. Files SQLite cannot open,
WAL overlays and non-UTF-8 files keep the pure-Python path.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
import time
from urllib.parse import quote as _urlquote

from .model import Run, SalvageResult, TableSalvage
from .walk import Salvager

ATTACHED = "salvage_src"
#: The damaged file's schema is read by SQLite but never trusted: with trusted_schema off, no
#: function that is not innocuous can run from a view, trigger or generated column it declares.
UNTRUSTED_SCHEMA = "PRAGMA trusted_schema=OFF"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_uri(path: str) -> str:
    """A read-only, immutable URI: SQLite never replays a journal or WAL beside the copy."""
    return "file:" + _urlquote(path) + "?mode=ro&immutable=1"


class ReadBack:
    """Phase helper: SQLite reads back each table's clean runs in a worker thread as soon as the
    table's walk ends, while the walk goes on with the next table (SQLite releases the GIL while
    it reads, so its C work overlaps the Python walk). :meth:`finish` applies the results in the
    calling thread: runs SQLite read as the walk did are marked verified, the leaves it could
    not read are decoded by Python. Without a usable SQLite view of the file (a WAL overlay, a
    non-UTF-8 file, a file SQLite cannot open) every run is decoded by Python."""

    def __init__(self, sv: Salvager, path: str):
        self.sv = sv
        self.path = path
        self.submitted: list = []
        self.results: dict[str, tuple] = {}
        self.queue: queue.Queue = queue.Queue()
        self.thread = None
        if sv.src.wal is None and sv.enc == "utf-8":
            self.thread = threading.Thread(target=self._work, name="salvage-read-back", daemon=True)
            self.thread.start()

    def submit(self, t) -> None:
        if t.rows.runs:
            self.submitted.append(t)
            if self.thread is not None:
                self.queue.put(t)

    def _work(self) -> None:
        conn = None
        try:
            conn = sqlite3.connect(source_uri(self.path), uri=True, isolation_level=None)
            conn.execute(UNTRUSTED_SCHEMA)
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.Error:
            if conn is not None:
                conn.close()
            conn = None
        deadline = self.sv.deadline
        try:
            while (t := self.queue.get()) is not None:
                if conn is None or t.td is None or t.td.without_rowid or not _same_table(conn, t):
                    continue
                sql = _read_back_sql(t)
                kept: list[Run] = []
                failed: list[Run] = []
                runs = list(t.rows.runs)
                for i, run in enumerate(runs):
                    if time.monotonic() > deadline:
                        kept.extend(runs[i:])        # left unverified: decoded when iterated
                        break
                    _settle(conn, sql, run, kept, failed)
                self.results[t.name] = (kept, failed)
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def finish(self) -> None:
        self.close()
        sv = self.sv
        for t in self.submitted:
            got = self.results.get(t.name)
            if got is None:
                for run in t.rows.runs:
                    sv.check_time()
                    sv.decode_run(t, run)
                t.rows.runs[:] = []
                continue
            kept, failed = got
            for run in failed:
                sv.check_time()
                sv.decode_run(t, run)
            t.rows.runs[:] = kept
            t.out.source_path = self.path


def _settle(conn, sql: str, run: Run, kept: list[Run], failed: list[Run]) -> None:
    """Verify ``run``; if SQLite reads it differently, verify it leaf by leaf: the leaves it
    cannot read go to ``failed``, the others are kept as verified runs, merged again where no
    failed leaf lies between them."""
    if _reads_back(conn, sql, run):
        run.verified = True
        kept.append(run)
        return
    adjacent = False            # the last kept run ends right before this leaf
    for leaf in run.leaves:
        part = Run([leaf])
        if _reads_back(conn, sql, part):
            if adjacent:
                kept[-1].leaves.append(leaf)
            else:
                part.verified = True
                kept.append(part)
            adjacent = True
        else:
            failed.append(part)
            adjacent = False


def _read_back_sql(t) -> str:
    """One aggregate row per run: count, first and last rowid, rowid sum; every column that can
    hold text concatenated (one string per column, which the driver decodes, refusing invalid
    UTF-8; the ',' between values keeps a broken sequence at a value's edge broken); and the
    length of the last column in the record (reading it makes SQLite check the whole header)."""
    td = t.td
    inner = ["rowid AS r"]
    outer = ["count(*)", "min(r)", "max(r)", "sum(r)"]
    for i, c in enumerate(td.columns):
        if i != td.rowid_alias and c.affinity not in ("INTEGER", "REAL"):
            inner.append(f"{_q(c.name)} AS c{i}")
            outer.append(f"group_concat(c{i}, ',')")
    last = [ci for ci in td.record_order() if ci != td.rowid_alias]
    if last:
        inner.append(f"length({_q(td.columns[last[-1]].name)}) AS probe")
        outer.append("max(probe)")
    return (f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM main.{_q(t.name)} "
            f"WHERE rowid >= ? ORDER BY rowid LIMIT ?)")


def _same_table(conn, t) -> bool:
    """SQLite's schema has this table at the root our walk read, with the same columns."""
    try:
        row = conn.execute("SELECT rootpage FROM sqlite_schema WHERE type='table' AND name=?",
                           (t.name,)).fetchone()
        cols = [r[1] for r in conn.execute(f"PRAGMA main.table_info({_q(t.name)})")]
    except sqlite3.Error:
        return False
    return row is not None and row[0] == t.out.rootpage and cols == t.out.columns


def _reads_back(conn, sql: str, run: Run) -> bool:
    """SQLite reads the run's rows as the walk did: the same count, first and last rowid and
    rowid sum, every record whole, every text valid UTF-8 (text with invalid UTF-8 is left to
    the Python decoder, which keeps it losslessly for the dump and replaces it on load)."""
    try:
        n, first, last, total, *_ = conn.execute(sql, (run.first, run.count)).fetchone()
    except (sqlite3.Error, OverflowError):
        return False
    return n == run.count and first == run.first and last == run.last and total == run.total


def attach_source(conn: sqlite3.Connection, result: SalvageResult) -> bool:
    """Attach the salvaged file read-only to ``conn`` as ``salvage_src`` (once)."""
    paths = {t.source_path for t in result.tables.values() if t.source_path}
    if len(paths) != 1:
        return False
    names = [r[1] for r in conn.execute("PRAGMA database_list")]
    if ATTACHED in names:
        return True
    try:
        conn.execute(UNTRUSTED_SCHEMA)
        conn.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (source_uri(paths.pop()),))
        return True
    except sqlite3.Error:
        return False


def copy_sound_rows(result: SalvageResult, table: str, conn: sqlite3.Connection, columns: list[str],
                    use_rowid: bool = False, into: str | None = None) -> int:
    """Copy the table's verified runs into ``into`` (default: the table of the same name) of
    ``conn``, with SQLite doing the reading and writing, each run under a savepoint; returns the
    rows copied. A run whose rows the destination refuses (a constraint) is left to the row
    stream, which from now on yields only the rows not copied."""
    t: TableSalvage | None = result.tables.get(table)
    if t is None or not t.source_path or not columns or not attach_source(conn, result):
        return 0
    dest = ", ".join((["rowid"] if use_rowid else []) + [_q(c) for c in columns])
    src = ", ".join((["rowid"] if use_rowid else []) + [_q(c) for c in columns])
    sql = (f"INSERT INTO main.{_q(into or table)} ({dest}) SELECT {src} FROM {ATTACHED}.{_q(table)} "
           f"WHERE rowid >= ? ORDER BY rowid LIMIT ?")
    copied = 0
    for run in t.rows.runs:
        if not run.verified or run.copied:
            continue
        conn.execute("SAVEPOINT salvage_copy")
        try:
            cur = conn.execute(sql, (run.first, run.count))
            if cur.rowcount != run.count:
                raise sqlite3.IntegrityError("run read back short")
        except sqlite3.Error:
            conn.execute("ROLLBACK TO salvage_copy")
            conn.execute("RELEASE salvage_copy")
            continue
        conn.execute("RELEASE salvage_copy")
        run.copied = True
        copied += run.count
    return copied
