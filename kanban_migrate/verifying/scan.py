"""How the ``data`` check runs its rules (:mod:`.invariants`): which rules a board gets, one pass
per table, and the jobs :class:`.work.Work` shares among threads.

The row-level rules (:class:`.invariants.Flag`) of one table share one pass over it (a
:class:`Scan`):

1. *count*: ``SELECT count(*), sum(flag1), min(rowid if flag1), ... FROM t WHERE flag1 OR flag2 ...``
   On a healthy table the WHERE clause rejects every row, so the aggregate costs nothing. A big
   table is cut into rowid ranges (one job each) so that several connections share it.
2. *examples*: only for a flag that fired, ``SELECT key ... WHERE flag LIMIT 5`` (starting at the
   first offending rowid) and, for the value rules, the first few distinct offending values.

Counts are exact, memory is flat (SQLite aggregates; nothing is fetched in bulk) and nothing is
written. The tuning constants below say what they trade; the rules' results never depend on them
(tests run with tiny ranges and compare).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..schema import Schema, quote
from .invariants import (MAX_VALUES, Flag, Orphans, nul_flag, nul_test, row_key, rowid_name, run_flags, stopped,
                         table_flags, task_references, text_columns, vocabularies)
from .model import MAX_EXAMPLES, Finding
from .work import Job

#: Rows per rowid range of a big table's count pass (a range is one job): small enough that the
#: threads share the biggest table evenly, large enough that a range's own cost (a statement and a
#: b-tree descent) is lost in it. Tables not listed are one job each (they are small).
CHUNK_ROWS = {"task_events": 150_000, "tasks": 15_000}
#: At most this many ranges per table, however big: more would add per-job cost, not balance.
MAX_RANGES = 64
#: A table whose rowids span fewer than this many chunks is one job: cutting it would not share it.
MIN_CHUNKS = 2
_MIN_ROWID, _MAX_ROWID = -(1 << 63), (1 << 63) - 1

#: The tables scanned, with the relative cost of their pass (the order jobs are taken in:
#: largest first). Measured on a board with six events per task.
SCANNED = {"task_events": 100, "tasks": 80, "task_comments": 10, "task_runs": 10, "kanban_notify_subs": 5,
           "task_attachments": 3, "task_links": 3}
#: The cost of one vocabulary's GROUP BY (an index walk) and of the quick pass over running tasks.
SMALL_COST = 5
#: The cost of one table's "task exists" probe: the events' is the one big index walk.
ORPHANS_COST = {"task_events": 30}
#: The cost of one table's ``foreign_key_check`` (only on boards with foreign keys: forks).
FOREIGN_KEYS_COST = 1

#: Tables of many long rows (bodies, payloads): ``quick`` reads only the status index of tasks (the
#: status vocabulary, the runs of running tasks). Their references to tasks are answerable from
#: indexes too, but walking the two biggest indexes (one entry per event) would cost a third of
#: ``quick_check`` again: the thorough default checks them.
CONTENT_TABLES = frozenset({"tasks", "task_events", "task_comments"})
#: The rows of tasks ``quick`` looks at (through idx_tasks_status): the running ones.
QUICK_TASKS = "status = 'running'"
#: Tables whose pass is a "scan" job though they hold JSON: long rows (read from overflow pages
#: into allocated buffers, printf on long text), a little JSON. Other tables with JSON: "parse";
#: without: "light" (see :class:`.work.Work`).
LONG_ROWS = frozenset({"tasks"})


class Scan:
    """One table's flags: counted over one or several rowid ranges (jobs of ``kind``, see
    :class:`.work.Work`), then the examples."""

    def __init__(self, table: str, key: str, flags: list[Flag], rowid: str | None, kind: str = "scan",
                 scope: str | None = None):
        self.table, self.key, self.flags, self.rowid, self.kind = table, key, flags, rowid, kind
        self.scope = scope  # a condition an index answers: only these rows are looked at
        self.findings: list[Finding] = []
        self.by_flag: dict[int, Finding] = {}  # flag index -> its finding
        self._lock = threading.Lock()
        self._pending = 0
        self._counts = [0] * len(flags)
        self._first: list[int | None] = [None] * len(flags)
        self._error: Exception | None = None

    # -- the count pass
    def count_sql(self, ranged: bool) -> str:
        cols = ["count(*)"]
        for f in self.flags:
            cols.append(f"sum(CASE WHEN {f.expr} THEN 1 ELSE 0 END)")
            cols.append(f"min(CASE WHEN {f.expr} THEN {self.rowid} END)" if self.rowid else "NULL")
        where = " OR ".join(f.expr for f in self.flags)
        if self.scope:
            where = f"({self.scope}) AND ({where})"
        if ranged:
            where = f"{self.rowid} BETWEEN ? AND ? AND ({where})"
        return f"SELECT {', '.join(cols)} FROM {quote(self.table)} WHERE {where}"

    def jobs(self, conn: sqlite3.Connection | None, cost: int) -> list[Job]:
        """The count jobs: one per rowid range when the table is big (its rowid span is read
        from ``conn``), else one."""
        bounds = self._ranges(conn)
        self._pending = len(bounds)
        share = max(1, cost // len(bounds))
        return [Job(f"scan {self.table}" + ("" if r is None else f" rowid {r[0]}..{r[1]}"),
                    lambda c, r=r: self._count(c, r), share, self.kind) for r in bounds]

    def _ranges(self, conn) -> list:
        """Closed rowid ranges that cover every possible rowid, about CHUNK_ROWS rowids each."""
        size = CHUNK_ROWS.get(self.table)
        if conn is None or size is None or self.rowid is None or self.scope:
            return [None]
        try:
            t = quote(self.table)  # two subqueries: each is one b-tree descent (together they scan)
            lo, hi = conn.execute(f"SELECT (SELECT min({self.rowid}) FROM {t}), (SELECT max({self.rowid}) FROM {t})").fetchone()
        except sqlite3.Error:
            return [None]
        if not isinstance(lo, int) or not isinstance(hi, int) or hi - lo < MIN_CHUNKS * size:
            return [None]
        n = min(MAX_RANGES, (hi - lo) // size + 1)
        step = (hi - lo) // n + 1
        starts = [lo + i * step for i in range(n)]
        ends = [s - 1 for s in starts[1:]] + [_MAX_ROWID]
        starts[0] = _MIN_ROWID
        return list(zip(starts, ends))

    def _count(self, conn: sqlite3.Connection, bounds) -> None:
        row, err = None, None
        try:
            if bounds is None:
                row = conn.execute(self.count_sql(False)).fetchone()
            else:
                row = conn.execute(self.count_sql(True), bounds).fetchone()
        except Exception as exc:  # noqa: BLE001 - a finding, and the other ranges still count
            err = exc
        with self._lock:
            self._add(row, err)
            self._pending -= 1
            last_one = self._pending == 0
        if last_one:
            try:
                self._finish(conn)
            except Exception as exc:  # noqa: BLE001
                self.findings = [stopped(self.table, exc)]

    def _add(self, row, err) -> None:
        if err is not None:
            self._error = self._error or err
        elif row and row[0]:
            for i in range(len(self.flags)):
                self._counts[i] += row[1 + 2 * i] or 0
                first = row[2 + 2 * i]
                if first is not None and (self._first[i] is None or first < self._first[i]):
                    self._first[i] = first

    # -- the examples
    def _finish(self, conn: sqlite3.Connection) -> None:
        if self._error is not None:
            self.findings = [stopped(self.table, self._error)]
            return
        out = []
        for i, (f, n, first) in enumerate(zip(self.flags, self._counts, self._first)):
            if not n:
                continue
            try:
                examples, values = self.examples(conn, f, first)
            except sqlite3.Error as exc:
                out.append(stopped(self.table, exc))
                continue
            shown = ", ".join(repr(v) for v in values)
            finding = Finding("data", f.severity, f.message.format(n=n, table=self.table, values=shown),
                              table=self.table, hint=f.hint, count=n, examples=examples)
            self.by_flag[i] = finding
            out.append(finding)
        self.findings = out

    def examples(self, conn: sqlite3.Connection, f: Flag, first: int | None) -> tuple[list, list]:
        """The keys of the first offending rows (from the first offending rowid on) and the first
        few distinct offending values of a value rule."""
        t = quote(self.table)
        where, params = f.expr, ()
        if self.scope:
            where = f"({self.scope}) AND ({where})"
        if self.rowid and first is not None:
            where, params = f"{self.rowid} >= ? AND ({where})", (first,)
        examples = [r[0] for r in conn.execute(f"SELECT {self.key} FROM {t} WHERE {where} LIMIT {MAX_EXAMPLES}",
                                               params)]
        values = [r[0] for r in conn.execute(
            f"SELECT DISTINCT {f.value} FROM {t} WHERE {where} LIMIT {MAX_VALUES}", params)] if f.value else []
        return examples, values

    def run_all(self, conn: sqlite3.Connection) -> None:
        """Count and sample on ``conn`` now, in one pass (no ranges)."""
        self._pending = 1
        self._count(conn, None)


class Call:
    """A unit of one job: ``fn(conn)`` returns its findings; an exception becomes a finding."""

    def __init__(self, name: str, fn: Callable[[sqlite3.Connection], list[Finding]], check: str = "data",
                 table: str | None = None):
        self.name, self.fn, self.check, self.table = name, fn, check, table
        self.findings: list[Finding] = []

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            self.findings = self.fn(conn)
        except sqlite3.Error as exc:
            self.findings = [stopped(self.table, exc)] if self.check == "data" else [
                Finding(self.check, "error", f"{self.name} failed: {exc}", table=self.table)]
        except Exception as exc:  # noqa: BLE001 - a finding, never a traceback
            self.findings = [Finding(self.check, "error", f"{self.name} stopped: {type(exc).__name__}: {exc}",
                                     table=self.table)]

    def job(self, cost: int) -> Job:
        return Job(self.name, self.run, cost)


class NulRecount:
    """The NUL count of a table whose task column(s) were not searched row by row (see
    :func:`plan`). Nothing to do unless a task id may hold a NUL: one of the missing ids does
    (see :class:`.invariants.Orphans`), or an id in tasks does (then the same id may be in this
    table). Then the table's rows are counted again over every text column (a row with NULs in
    several columns counts once) and that finding replaces the one of the scan."""

    def __init__(self, scan: Scan | None, fast: Flag | None, full: Scan, sources: list[Orphans],
                 tasks_scan: Scan | None = None, tasks_nul: Flag | None = None):
        self.scan, self.fast, self.full, self.sources = scan, fast, full, sources
        self.tasks_scan, self.tasks_nul = tasks_scan, tasks_nul
        self.findings: list[Finding] = []

    def needed(self, conn: sqlite3.Connection) -> bool:
        if any(u.nul_found for u in self.sources):
            return True
        if self.tasks_scan is None or self.tasks_nul is None:
            return False
        if self.tasks_scan.flags.index(self.tasks_nul) not in self.tasks_scan.by_flag:
            return False  # no NUL anywhere in tasks
        return conn.execute(f"SELECT EXISTS (SELECT 1 FROM tasks WHERE {nul_test('id')})").fetchone()[0] == 1

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            if not self.needed(conn):
                return
        except sqlite3.Error:
            pass  # unknown: count
        self.full.run_all(conn)
        if self.scan is not None and self.fast is not None:
            old = self.scan.by_flag.get(self.scan.flags.index(self.fast))
            if old is not None:
                self.scan.findings.remove(old)
        self.findings = self.full.findings


# ---- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    #: Where the findings appear, in report order: each unit's ``.findings`` once every job ran
    #: and :func:`finish` was called.
    units: list = field(default_factory=list)
    followups: list = field(default_factory=list)

    def add(self, unit, jobs: list[Job]) -> None:
        self.units.append(unit)
        self.jobs.extend(jobs)


def plan(board: Schema, conn: sqlite3.Connection | None = None, *, quick: bool = False,
         stamped: bool = True) -> Plan:
    """The data checks that fit the tables and columns this board has. With ``conn``, big
    tables are cut into rowid ranges (read from it). ``quick``: the checks that the status index
    and the small tables answer (nothing of :data:`CONTENT_TABLES` beyond that). ``stamped``: the
    board has an ``alembic_version`` stamp (see :func:`.invariants.run_flags`).

    The task column of a child table is not searched for NUL bytes row by row: a task id with a
    NUL names no task, unless tasks.id holds the same NUL. So the referential check (which
    lists the distinct missing ids when there are orphans) and the NUL finding of tasks tell
    whether one can exist; only then is the table's NUL count redone over every text column
    (:class:`NulRecount`)."""
    p = Plan()
    references: dict[str, list[Orphans]] = {}
    for table, column in task_references(board):
        if not (quick and table in CONTENT_TABLES):
            references.setdefault(table, []).append(
                Orphans(board, table, column, nul=column in text_columns(board, table)))
    for unit in vocabularies(board):
        p.add(unit, [Job(unit.name, unit.run, SMALL_COST, "light")])
    scans = _plan_scans(p, board, conn, references, quick=quick, stamped=stamped)
    tasks_scan, tasks_nul = scans.get("tasks", (None, None))
    for table, units in references.items():
        if any(u.nul for u in units) and not (quick and table in CONTENT_TABLES):
            scan, nul = scans.get(table, (None, None))
            recount = NulRecount(scan, nul, _scan(board, table, [_full_nul(board, table)]), units,
                                 tasks_scan, tasks_nul)
            p.units.append(recount)
            p.followups.append(recount)
        for unit in units:
            p.add(unit, [Job(unit.name, unit.run, ORPHANS_COST.get(unit.table, SMALL_COST), "light")])
    p.jobs.sort(key=lambda j: -j.cost)
    return p


def _plan_scans(p: Plan, board: Schema, conn, references: dict[str, list[Orphans]], *, quick: bool,
                stamped: bool) -> dict[str, tuple[Scan | None, Flag | None]]:
    """One :class:`Scan` per table of :data:`SCANNED` that has rules; ``{table: (scan, its NUL flag)}``."""
    from ..headfacts import JSON_COLUMNS

    scans: dict[str, tuple[Scan | None, Flag | None]] = {}
    for table, cost in SCANNED.items():
        if table not in board.tables:
            continue
        if quick and table in CONTENT_TABLES:
            if table == "tasks" and board.has_column("tasks", "status") and (flags := run_flags(board, stamped=stamped)):
                scan = _scan(board, table, flags, "light", scope=QUICK_TASKS)
                p.add(scan, scan.jobs(conn, SMALL_COST))
            continue
        flags = table_flags(board, table, stamped=stamped)
        searched = tuple(u.column for u in references.get(table, ()) if u.nul)
        nul = nul_flag(board, table, skip=JSON_COLUMNS.get(table, ()) + searched)
        if nul is not None:
            flags.append(nul)
        scan = None
        if flags:
            parses = any("json_valid" in f.expr for f in flags)
            scan = _scan(board, table, flags, "scan" if table in LONG_ROWS else "parse" if parses else "light")
            p.add(scan, scan.jobs(conn, cost))
        scans[table] = (scan, nul)
    return scans


def _scan(board: Schema, table: str, flags: list[Flag], kind: str = "scan", scope: str | None = None) -> Scan:
    return Scan(table, row_key(board, table), flags, rowid_name(board.tables[table]), kind, scope=scope)


def _full_nul(board: Schema, table: str) -> Flag:
    from ..headfacts import JSON_COLUMNS

    return nul_flag(board, table, skip=JSON_COLUMNS.get(table, ()))


def finish(p: Plan, conn: sqlite3.Connection) -> None:
    """The follow-ups that depend on several jobs; call it once every job ran."""
    for unit in p.followups:
        unit.run(conn)


def foreign_keys(board: Schema, check) -> list[Call]:
    """One ``integrity`` unit per table that declares foreign keys: ``check(conn, table)``."""
    return [Call(f"foreign keys {table}", lambda c, tb=table: check(c, tb), check="integrity", table=table)
            for table, t in board.tables.items() if t.foreign_keys]
