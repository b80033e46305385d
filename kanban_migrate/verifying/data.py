"""The ``data`` check: the kanban invariants a broken board violates (spec section 3).

Every invariant is a SQL condition (a :class:`Flag`) that holds for an offending row, evaluated by
SQLite at C speed (and without the GIL): Python never sees a healthy row. The flags of one table
share one pass over it (a :class:`Scan`):

1. *count*: ``SELECT count(*), sum(flag1), min(rowid if flag1), ... FROM t WHERE flag1 OR flag2 ...``
   On a healthy table the WHERE clause rejects every row, so the aggregate costs nothing. A big
   table is cut into rowid ranges (one :class:`Job` each) so that several connections share it.
2. *examples*: only for a flag that fired, ``SELECT key ... WHERE flag LIMIT 5`` (starting at the
   first offending rowid) and, for the value checks, the first few distinct offending values.

The referential checks (rows of a task that does not exist, :class:`Orphans`) first ask whether
there are any, with a query that copies no value; only then are the missing ids listed, the rows
counted and sampled. The jobs are spread over the connections by :class:`Work`, which keeps the
queries that allocate per row (JSON parsing) from running side by side.

Counts are exact, memory is flat (SQLite aggregates; nothing is fetched in bulk) and nothing is
written. JSON columns are checked with SQLite's ``json_valid``; on a SQLite built without JSON
support a Python stand-in of the same name is registered on the connection (:func:`prepare`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..schema import Schema, Table, quote
from .model import MAX_EXAMPLES, Finding, excerpt

HINT_UPGRADE = "run 'kanban-migrate upgrade' on it"
HINT_ORPHANS = ("the rows are unreachable from the board; restore the missing tasks from a backup "
                "or delete the rows")
HINT_CURRENT_RUN = ("the dispatcher follows current_run_id: clear it (UPDATE tasks SET current_run_id = NULL ...) "
                    "and let the task be reclaimed")
HINT_NUL = ("NUL bytes cut the text short for most readers; the rows were written by a buggy client or "
            "damaged")
_TEXT_TYPES = ("CHAR", "CLOB", "TEXT")
#: Columns that hold long text (kilobytes). Their NUL search uses printf('%s') (which stops at the
#: first NUL, found with strlen) against the whole value: four times faster than instr() on such
#: values, but it allocates per row (see :class:`Work`); instr() is faster on short values.
LONG_TEXT = frozenset({("tasks", "body")})
#: Rows per rowid range of a big table's count pass (a range is one unit of work).
CHUNK_ROWS = {"task_events": 150_000, "tasks": 15_000}
_ROWID_NAMES = ("rowid", "_rowid_", "oid")
_MIN_ROWID, _MAX_ROWID = -(1 << 63), (1 << 63) - 1


# ---- SQLite functions ------------------------------------------------------------------------------
def py_json_valid(value) -> int:
    """Python stand-in for SQLite's ``json_valid`` (RFC 8259: no NaN/Infinity, no control
    characters inside strings). Used only where SQLite lacks JSON support, and by the tests.
    It differs from SQLite's on a NUL byte (SQLite stops reading there: the JSON flags test for
    NUL bytes themselves) and on nesting deeper than Python's recursion limit (about 1000
    levels; SQLite allows 2000)."""
    if value is None:
        return 0
    try:
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif not isinstance(value, str):
            value = str(value)
        json.loads(value, parse_constant=_reject)
    except (ValueError, RecursionError):
        return 0
    return 1


def _reject(name: str):
    raise ValueError(name)


def has_json(conn: sqlite3.Connection) -> bool:
    """Does this SQLite have ``json_valid`` (built in since 3.38; an option before)?"""
    try:
        conn.execute("SELECT json_valid('1')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def prepare(conn: sqlite3.Connection, *, python_json: bool = False) -> None:
    """Make the functions the scans use available on ``conn``: SQLite's own ``json_valid`` when it
    has one, else (or with ``python_json``) :func:`py_json_valid` under that name."""
    if python_json or not has_json(conn):
        conn.create_function("json_valid", 1, py_json_valid, deterministic=True)


# ---- building blocks -------------------------------------------------------------------------------
def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_set(expr: str, values) -> str:
    """1 when ``expr`` is one of ``values``, else 0 (NULL too): a CASE, that is a few comparisons
    per row where IN looks each row up in a temporary index."""
    whens = " ".join(f"WHEN {_literal(v)} THEN 1" for v in sorted(values))
    return f"(CASE {expr} {whens} ELSE 0 END)"


def _is_text(declared: str) -> bool:
    d = declared.upper()
    return any(t in d for t in _TEXT_TYPES)


def rowid_name(t: Table) -> str | None:
    """A name that reaches the table's rowid (None: WITHOUT ROWID, or every name is a column)."""
    if t.without_rowid:
        return None
    taken = {c.lower() for c in t.columns}
    return next((n for n in _ROWID_NAMES if n not in taken), None)


def nul_expr(column: str, *, long: bool = False) -> str:
    """True when the column holds a text value with a NUL byte in it (a BLOB may hold NULs)."""
    return nul_test(quote(column), long=long)


def nul_test(x: str, *, long: bool = False) -> str:
    """True when the SQL expression ``x`` is a text value with a NUL byte in it.

    Short values: ``instr`` (which searches the whole value, not up to the first NUL). Long
    values: ``printf('%s')`` keeps the text up to the first NUL, so it differs from the value
    exactly when the value has one (compared as BLOBs: byte for byte, whatever the collation).
    ``typeof`` runs only for the rare value that matched."""
    if long:
        probe = f"CAST(printf('%s', {x}) AS BLOB) <> CAST({x} AS BLOB)"
    else:
        probe = f"instr({x}, char(0)) > 0"
    return f"({probe} AND typeof({x}) = 'text')"


@dataclass
class Flag:
    """One invariant inside a table scan: ``expr`` is true for an offending row."""

    expr: str
    severity: str
    message: str  # formatted with n (count), table, values (a few offending values)
    hint: str | None = None
    value: str | None = None  # an expression whose distinct values the message lists


@dataclass
class Job:
    """A unit of work: run it on a connection. ``cost`` orders the work (largest first);
    ``kind`` says what it may run beside (see :class:`Work`)."""

    name: str
    run: Callable[[sqlite3.Connection], None]
    cost: int = 0
    kind: str = "scan"  # "parse", "light" or "scan"


class Work:
    """The data jobs, taken by several threads (each with its own connection).

    SQLite counts every allocation under one process-wide mutex, so two queries that allocate
    per row slow each other down. ``json_valid`` allocates several times per value: two halves of
    the JSON pass over task_events take 0.31 s side by side and 0.25 s one after the other. So:

    * ``parse`` jobs (JSON passes) never run beside each other; they go first, beside the
      integrity PRAGMA (which allocates little);
    * ``light`` jobs (short values without JSON, index walks that copy nothing) slow nothing
      down: while a parse job runs, the other threads take them first;
    * ``scan`` jobs (long rows, printf on long text) slow a parse job down and are slowed by
      it by about a third: they wait for the light jobs while a parse job runs, and else go
      before them (the small light jobs end the work, so that the threads end together).
    """

    def __init__(self):
        self._cv = threading.Condition()
        self._jobs: dict[str, list[Job]] = {"parse": [], "light": [], "scan": []}
        self._parsing = False
        self._closed = False
        self._abandoned = False

    def put(self, jobs) -> None:
        with self._cv:
            if self._abandoned:
                return
            for job in jobs:
                self._jobs[job.kind].append(job)
            self._cv.notify_all()

    def abandon(self) -> None:
        """Drop the jobs not yet taken (the board changed: the findings would be dropped anyway)."""
        with self._cv:
            for jobs in self._jobs.values():
                jobs.clear()
            self._closed = self._abandoned = True
            self._cv.notify_all()

    def close(self) -> None:
        """No more jobs: a worker that finds nothing to do ends."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def take(self) -> Job | None:
        with self._cv:
            while True:
                parse, light, scan = self._jobs["parse"], self._jobs["light"], self._jobs["scan"]
                if parse and not self._parsing:
                    self._parsing = True
                    return parse.pop(0)
                # Beside a parse, light jobs; else the longer scans first and the small light
                # jobs last, so that the threads end at about the same time.
                for jobs in (light, scan) if self._parsing else (scan, light):
                    if jobs:
                        return jobs.pop(0)
                if self._closed and not parse:
                    return None
                self._cv.wait()  # only parse jobs left, and one runs

    def done(self, job: Job) -> None:
        with self._cv:
            if job.kind == "parse":
                self._parsing = False
                self._cv.notify_all()

    def drain(self, conn: sqlite3.Connection) -> None:
        """Take and run jobs on ``conn`` until there are none left."""
        while True:
            job = self.take()
            if job is None:
                return
            try:
                job.run(conn)
            finally:
                self.done(job)


class Scan:
    """One table's flags: counted over one or several rowid ranges (jobs of ``kind``, see
    :class:`Work`), then the examples."""

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
        if not isinstance(lo, int) or not isinstance(hi, int) or hi - lo < 2 * size:
            return [None]
        n = min(64, (hi - lo) // size + 1)
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
            if err is not None:
                self._error = self._error or err
            elif row and row[0]:
                for i in range(len(self.flags)):
                    self._counts[i] += row[1 + 2 * i] or 0
                    first = row[2 + 2 * i]
                    if first is not None and (self._first[i] is None or first < self._first[i]):
                        self._first[i] = first
            self._pending -= 1
            last_one = self._pending == 0
        if last_one:
            try:
                self._finish(conn)
            except Exception as exc:  # noqa: BLE001
                self.findings = [_stopped(self.table, exc)]

    # -- the examples
    def _finish(self, conn: sqlite3.Connection) -> None:
        if self._error is not None:
            self.findings = [_stopped(self.table, self._error)]
            return
        out = []
        t = quote(self.table)
        for i, (f, n, first) in enumerate(zip(self.flags, self._counts, self._first)):
            if not n:
                continue
            where, params = f.expr, ()
            if self.scope:
                where = f"({self.scope}) AND ({where})"
            if self.rowid and first is not None:
                where, params = f"{self.rowid} >= ? AND ({where})", (first,)
            try:
                examples = [r[0] for r in conn.execute(
                    f"SELECT {self.key} FROM {t} WHERE {where} LIMIT {MAX_EXAMPLES}", params)]
                values = [r[0] for r in conn.execute(
                    f"SELECT DISTINCT {f.value} FROM {t} WHERE {where} LIMIT 5", params)] if f.value else []
            except sqlite3.Error as exc:
                out.append(_stopped(self.table, exc))
                continue
            shown = ", ".join(repr(v) for v in values)
            finding = Finding("data", f.severity, f.message.format(n=n, table=self.table, values=shown),
                              table=self.table, hint=f.hint, count=n, examples=examples)
            self.by_flag[i] = finding
            out.append(finding)
        self.findings = out

    def run_all(self, conn: sqlite3.Connection) -> None:
        """Count and sample on ``conn`` now, in one pass (no ranges)."""
        self._pending = 1
        self._count(conn, None)


def _stopped(table: str, exc: Exception) -> Finding:
    from .access import cannot_run

    return Finding("data", "error", f"the scan of {table} stopped: {exc}", table=table,
                   hint="see the integrity findings; run 'kanban-migrate recover' on it", cause=cannot_run(exc))


def _key(board: Schema, table: str) -> str:
    """The expression that names a row in examples."""
    t = board.tables[table]
    if "id" in t.columns:
        return quote("id")
    if table == "task_links":
        return "parent_id || ' -> ' || child_id"
    if table == "kanban_notify_subs":
        return "task_id || '/' || platform || '/' || chat_id"
    return rowid_name(t) or "NULL"


# ---- the flags -------------------------------------------------------------------------------------
def text_columns(board: Schema, table: str) -> list[str]:
    return [c.name for c in board.tables[table].columns.values() if _is_text(c.type)]


def _nul_flag(board: Schema, table: str, skip=()) -> Flag | None:
    cols = [c for c in text_columns(board, table) if c not in skip]
    if not cols:
        return None
    # Short columns first: a row with a NUL stops the OR early, before the long ones.
    cols.sort(key=lambda c: (table, c) in LONG_TEXT)
    expr = "(" + " OR ".join(nul_expr(c, long=(table, c) in LONG_TEXT) for c in cols) + ")"
    return Flag(expr, "warning", "{n} row(s) of {table} with a NUL byte in a text column", hint=HINT_NUL)


#: Columns whose values are JSON: a NUL in them makes them invalid JSON (that finding instead).
JSON_COLUMNS = {"tasks": ("skills",), "task_events": ("payload",), "task_runs": ("metadata",)}


def _json_flag(column: str) -> Flag:
    # SQLite's parser stops at a NUL byte, so '{}' followed by a NUL and garbage passes json_valid;
    # no JSON text contains a NUL byte, so a NUL anywhere makes the value invalid.
    c = quote(column)
    return Flag(f"({c} IS NOT NULL AND (NOT json_valid({c}) OR instr({c}, char(0)) > 0))", "warning",
                "{n} row(s) of {table} whose " + column + " is not valid JSON",
                hint="the application cannot read these values; fix or clear them")


class Vocabulary:
    """Values of an open vocabulary (spec section 3: the application adds values over time) that
    this release does not list: ``info``, never damage, never a reason for ``ok: false``. One
    GROUP BY over the column, which an index on it answers; memory stays flat (the groups stream)."""

    def __init__(self, board: Schema, table: str, column: str, known, *, nullable: bool, what: str):
        self.table, self.column, self.known, self.nullable, self.what = table, column, frozenset(known), nullable, what
        self.key = _key(board, table)
        self.name = f"values {table}.{column}"
        self.findings: list[Finding] = []

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            self.findings = self._run(conn)
        except sqlite3.Error as exc:
            self.findings = [_stopped(self.table, exc)]

    def _run(self, conn: sqlite3.Connection) -> list[Finding]:
        c, t = quote(self.column), quote(self.table)
        total, shown, null = 0, [], False
        for value, n in conn.execute(f"SELECT {c}, count(*) FROM {t} GROUP BY {c}"):
            if (value in self.known) if isinstance(value, str) else (value is None and self.nullable):
                continue
            total += n
            null |= value is None
            if len(shown) < 5:
                shown.append((value, n))
        if not total:
            return []
        listed = [v for v, _ in shown if v is not None]
        where = " OR ".join(x for x in (f"{c} IN ({', '.join('?' * len(listed))})" if listed else None,
                                          f"{c} IS NULL" if null else None) if x)
        examples = [r[0] for r in conn.execute(f"SELECT {self.key} FROM {t} WHERE {where} LIMIT {MAX_EXAMPLES}",
                                               listed)]
        values = ", ".join(f"{excerpt(v)} x{n}" for v, n in shown)
        return [Finding("data", "info", f"{total} row(s) of {self.table} with a {self.what} this release does not "
                                        f"list ({values}): the application adds values over time; not damage",
                        table=self.table, count=total, examples=examples)]


#: The open vocabularies (table, column, known values, NULL allowed, what the message calls them).
def vocabularies(board: Schema) -> list[Vocabulary]:
    from .. import head

    out = []
    for table, column, known, nullable, what in (
            ("tasks", "status", head.TASK_STATUSES, False, "status"),
            ("task_runs", "status", head.RUN_STATUSES, False, "run status"),
            ("task_runs", "outcome", head.RUN_OUTCOMES, True, "run outcome"),
            ("kanban_notify_subs", "delivery_mode", head.DELIVERY_MODES, False, "delivery mode")):
        if board.has_table(table) and board.has_column(table, column):
            out.append(Vocabulary(board, table, column, known, nullable=nullable, what=what))
    return out


def table_flags(board: Schema, table: str, *, stamped: bool = True) -> list[Flag]:
    """The flags that fit ``table`` as this board has it (spec section 3), but the NUL search
    (see :func:`plan`) and the vocabularies (:func:`vocabularies`)."""
    from .. import head

    has = board.has_column
    flags: list[Flag | None] = []
    if table == "tasks":
        if has("tasks", "skills"):
            flags.append(_json_flag("skills"))
        flags.extend(run_flags(board, stamped=stamped))
    elif table == "task_events":
        if has("task_events", "kind"):
            old = head.EVENT_KIND_RENAMES
            flags.append(Flag(_in_set("kind", old), "info",
                              "{n} event(s) of {table} with a kind the upgrade renames ({values})",
                              hint=HINT_UPGRADE + " (it renames " +
                                   ", ".join(f"{a} -> {b}" for a, b in old.items()) + ")", value="kind"))
        if has("task_events", "payload"):
            flags.append(_json_flag("payload"))
    elif table == "task_runs":
        if has("task_runs", "metadata"):
            flags.append(_json_flag("metadata"))
    return [f for f in flags if f is not None]


def run_flags(board: Schema, *, stamped: bool = True) -> list[Flag]:
    """The flags of a task's current run: it exists, it is the task's own, a running task has one.
    A running task without a run is normal on a board the application took to head by itself from
    an era before runs (it never backfills them): on a board never stamped, ``info`` (``upgrade``
    creates the runs); on a stamped one, something wrote it after the upgrade: a warning."""
    has = board.has_column
    flags = []
    if has("tasks", "id") and has("tasks", "current_run_id"):
        cr = '"tasks"."current_run_id"'
        if board.has_table("task_runs") and has("task_runs", "task_id") and has("task_runs", "id"):
            owner = 'SELECT 1 FROM "task_runs" AS r WHERE r."id" = ' + cr + ' AND r."task_id" IS NOT NULL'
            flags.append(Flag(f"({cr} IS NOT NULL AND NOT EXISTS ({owner}))", "error",
                              "{n} task(s) whose current_run_id names a run that does not exist",
                              hint=HINT_CURRENT_RUN))
            flags.append(Flag(f'({cr} IS NOT NULL AND EXISTS ({owner} AND r."task_id" IS NOT "tasks"."id"))',
                              "error", "{n} task(s) whose current_run_id names another task's run",
                              hint=HINT_CURRENT_RUN))
        if has("tasks", "status"):
            if stamped:
                flags.append(Flag(f"(status = 'running' AND {cr} IS NULL)", "warning",
                                  "{n} running task(s) without a run (current_run_id is NULL)",
                                  hint="set them back to 'ready' so that they are claimed again"))
            else:
                flags.append(Flag(f"(status = 'running' AND {cr} IS NULL)", "info",
                                  "{n} running task(s) without a run (current_run_id is NULL), as boards from "
                                  "before runs keep them", hint=HINT_UPGRADE + " (it creates their runs)"))
    return flags


#: Tables of many long rows (bodies, payloads): ``quick`` reads only the status index of tasks (the
#: status vocabulary, the runs of running tasks). Their references to tasks are answerable from
#: indexes too, but walking the two biggest indexes (one entry per event) would cost a third of
#: ``quick_check`` again: the thorough default checks them.
CONTENT_TABLES = frozenset({"tasks", "task_events", "task_comments"})
#: The rows of tasks ``quick`` looks at (through idx_tasks_status): the running ones.
QUICK_TASKS = "status = 'running'"

#: Tables whose pass is a "scan" job though they hold JSON: long rows (read from overflow pages
#: into allocated buffers, printf on long text), a little JSON. Other tables with JSON: "parse";
#: without: "light" (see :class:`Work`).
LONG_ROWS = frozenset({"tasks"})
#: The tables scanned, with the relative cost of their pass.
SCANNED = {"task_events": 100, "tasks": 80, "task_comments": 10, "task_runs": 10, "kanban_notify_subs": 5,
           "task_attachments": 3, "task_links": 3}


# ---- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    #: Where the findings appear, in report order: each unit's ``.findings`` once every job ran
    #: and :func:`finish` was called.
    units: list = field(default_factory=list)
    followups: list = field(default_factory=list)


def plan(board: Schema, conn: sqlite3.Connection | None = None, *, quick: bool = False,
         stamped: bool = True) -> Plan:
    """The data checks that fit the tables and columns this board has. With ``conn``, big
    tables are cut into rowid ranges (read from it). ``quick``: the checks that the status index
    and the small tables answer (nothing of :data:`CONTENT_TABLES` beyond that). ``stamped``: the board has an
    ``alembic_version`` stamp (see :func:`run_flags`).

    The task column of a child table is not searched for NUL bytes row by row: a task id with a
    NUL names no task, unless tasks.id holds the same NUL. So the referential check (which
    lists the distinct missing ids when there are orphans) and the NUL finding of tasks tell
    whether one can exist; only then is the table's NUL count redone over every text column
    (:class:`NulRecount`)."""
    from .. import head

    p = Plan()
    tables = board.tables
    has = board.has_column
    references: dict[str, list[Orphans]] = {}
    if "tasks" in tables and has("tasks", "id"):
        children = [(t, c) for t, c in head.TASK_CHILDREN.items() if t in tables and has(t, c)]
        children += [("task_links", c) for c in ("parent_id", "child_id") if "task_links" in tables and has("task_links", c)]
        for table, column in children:
            if quick and table in CONTENT_TABLES:
                continue
            unit = Orphans(board, table, column, nul=column in text_columns(board, table))
            references.setdefault(table, []).append(unit)

    for unit in vocabularies(board):
        p.units.append(unit)
        p.jobs.append(Job(unit.name, unit.run, 5, "light"))

    scans: dict[str, tuple[Scan | None, Flag | None]] = {}
    for table, cost in SCANNED.items():
        if table not in tables:
            continue
        if quick and table in CONTENT_TABLES:
            if table == "tasks" and has("tasks", "status") and (flags := run_flags(board, stamped=stamped)):
                scan = Scan(table, _key(board, table), flags, rowid_name(tables[table]), "light", scope=QUICK_TASKS)
                p.units.append(scan)
                p.jobs.extend(scan.jobs(conn, 5))
            continue
        flags = table_flags(board, table, stamped=stamped)
        searched = tuple(u.column for u in references.get(table, ()) if u.nul)
        nul = _nul_flag(board, table, skip=JSON_COLUMNS.get(table, ()) + searched)
        if nul is not None:
            flags.append(nul)
        scan = None
        if flags:
            parses = any("json_valid" in f.expr for f in flags)
            kind = "scan" if table in LONG_ROWS else "parse" if parses else "light"
            scan = Scan(table, _key(board, table), flags, rowid_name(tables[table]), kind)
            p.units.append(scan)
            p.jobs.extend(scan.jobs(conn, cost))
        scans[table] = (scan, nul)

    tasks_scan, tasks_nul = scans.get("tasks", (None, None))
    for table, units in references.items():
        if any(u.nul for u in units) and not (quick and table in CONTENT_TABLES):
            scan, nul = scans.get(table, (None, None))
            full = _nul_flag(board, table, skip=JSON_COLUMNS.get(table, ()))
            recount = NulRecount(scan, nul, Scan(table, _key(board, table), [full], rowid_name(tables[table])),
                                 units, tasks_scan, tasks_nul)
            p.units.append(recount)
            p.followups.append(recount)
        for unit in units:
            p.units.append(unit)
            p.jobs.append(Job(unit.name, unit.run, 30 if unit.table == "task_events" else 5, "light"))
    p.jobs.sort(key=lambda j: -j.cost)
    return p


def finish(p: Plan, conn: sqlite3.Connection) -> None:
    """The follow-ups that depend on several jobs; call it once every job ran."""
    for unit in p.followups:
        unit.run(conn)


class NulRecount:
    """The NUL count of a table whose task column(s) were not searched row by row. Nothing to do
    unless a task id may hold a NUL: one of the missing ids does (see :class:`Orphans`), or an
    id in tasks does (then the same id may be in this table). Then the table's rows are counted
    again over every text column (a row with NULs in several columns counts once) and that
    finding replaces the one of the scan."""

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


# ---- the referential checks ----------------------------------------------------------------------
class Orphans:
    """Rows of ``table`` whose task does not exist (none on a healthy board: that is what is
    made cheap).

    The probe counts them without a copy of any value (a DISTINCT copies every value, and
    SQLite counts each allocation under one process-wide mutex, which the other threads need
    too): a table with many rows per task is joined from tasks (one index search per task: the
    rows that belong to a task, against all its rows); a smaller one looks its task up per row.
    Only if some are missing are the distinct missing ids listed (searched for NUL bytes too,
    ``nul_found``), counted and sampled."""

    def __init__(self, board: Schema, table: str, column: str, *, nul: bool):
        self.board, self.table, self.column, self.nul = board, table, column, nul
        self.name = f"orphans {table}" + (f".{column}" if table == "task_links" else "")
        self.findings: list[Finding] = []
        self.nul_found = False
        self._indexed: bool | None = None  # can tasks.id be looked up through an index?

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            self.findings = self._run(conn)
        except sqlite3.Error as exc:
            self.findings = [_stopped(self.table, exc)]
            self.nul_found = self.nul  # unknown: let the recount decide
        except Exception as exc:  # noqa: BLE001 - a finding, never a traceback
            self.findings = [Finding("data", "error", f"{self.name} stopped: {type(exc).__name__}: {exc}",
                                     table=self.table)]
            self.nul_found = self.nul

    def probe(self, conn: sqlite3.Connection) -> bool:
        """Are there rows whose task does not exist? (The join is exact while tasks.id is unique,
        which its primary key index ensures; ``integrity_check`` checks that index.)"""
        c, t = quote(self.column), quote(self.table)
        (rows,) = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
        (tasks,) = conn.execute("SELECT count(*) FROM tasks").fetchone()
        if rows > 2 * tasks:
            join = f"SELECT count(*) FROM tasks AS k CROSS JOIN {t} AS x ON k.id = x.{c}"
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + join))
            if "SEARCH x" in plan:  # the task column is indexed (with the collation of tasks.id)
                (matched,) = conn.execute(join).fetchone()
                return matched != rows
        (missing,) = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t} AS x WHERE {self._gone(conn, 'x.' + c)})").fetchone()
        return bool(missing)

    def _gone(self, conn: sqlite3.Connection, x: str) -> str:
        """SQL that is true when the task id ``x`` names no task: a lookup in tasks.id's index;
        without one (a forked schema), NOT IN, for which SQLite builds a temporary index once
        instead of scanning tasks for every row."""
        if self._indexed is None:
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM tasks WHERE tasks.id = ?", (None,)))
            self._indexed = "SEARCH" in plan
        if self._indexed:
            return f"NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = {x})"
        return f"({x} IS NULL OR {x} NOT IN (SELECT id FROM tasks WHERE id IS NOT NULL))"

    def _run(self, conn: sqlite3.Connection) -> list[Finding]:
        if not self.probe(conn):
            return []
        c, t, table = quote(self.column), quote(self.table), self.table
        gone = self._gone(conn, "g.tid")
        nul = nul_test("g.tid") if self.nul else "0"
        sql = f"SELECT g.tid, {nul} FROM (SELECT DISTINCT {c} AS tid FROM {t}) AS g WHERE {gone}"
        tids = []
        for tid, has_nul in conn.execute(sql):
            if len(tids) < MAX_EXAMPLES:
                tids.append(tid)
            if has_nul:
                self.nul_found = True
        if not tids:
            return []
        (count,) = conn.execute(f"SELECT count(*) FROM {t} AS x WHERE {self._gone(conn, 'x.' + c)}").fetchone()
        key = _key(self.board, table)
        marks = ", ".join("?" * len(tids))
        examples = [r[0] for r in conn.execute(
            f"SELECT {key} FROM {t} WHERE {c} IN ({marks}) LIMIT {MAX_EXAMPLES}", tids)]
        if None in tids and len(examples) < MAX_EXAMPLES:  # a NULL task id is missing too; IN does not match it
            examples += [r[0] for r in conn.execute(
                f"SELECT {key} FROM {t} WHERE {c} IS NULL LIMIT {MAX_EXAMPLES - len(examples)}")]
        what = {"parent_id": " (parent)", "child_id": " (child)"}.get(self.column, "")
        tasks = ", ".join(map(repr, tids))
        return [Finding("data", "warning",
                        f"{count} row(s) of {table} belong to a task{what} that does not exist ({tasks})",
                        table=table, hint=HINT_ORPHANS, count=count, examples=examples)]


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
            self.findings = [_stopped(self.table, exc)] if self.check == "data" else [
                Finding(self.check, "error", f"{self.name} failed: {exc}", table=self.table)]
        except Exception as exc:  # noqa: BLE001 - a finding, never a traceback
            self.findings = [Finding(self.check, "error", f"{self.name} stopped: {type(exc).__name__}: {exc}",
                                     table=self.table)]

    def job(self, cost: int) -> Job:
        return Job(self.name, self.run, cost)
