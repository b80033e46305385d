"""What the ``data`` check checks: the kanban invariants of spec section 3, one named rule each,
with the SQL it runs. How the rules are run (one pass per table, rowid ranges, threads) is
:mod:`.scan` and :mod:`.work`; nothing here knows about either.

The rules, and where each one is made:

=====================  ==============================================================  ============
rule                   an offending row                                                made by
=====================  ==============================================================  ============
current run exists     ``tasks.current_run_id`` names no run                           :func:`run_flags`
current run is own     ``tasks.current_run_id`` names another task's run               :func:`run_flags`
running has a run      a ``running`` task whose ``current_run_id`` is NULL              :func:`run_flags`
JSON parses            ``tasks.skills``, ``task_events.payload``, ``task_runs.metadata``  :func:`json_flag`
                       that is not valid JSON (or holds a NUL byte)
no NUL in text         a text value with a NUL byte in it                              :func:`nul_flag`
old event kind         ``task_events.kind`` that every upgrade renames (spec section 5)  :func:`event_kind_flag`
task exists            a row of a task's child table whose task does not exist           :class:`Orphans`
open vocabularies      a status, run status/outcome, delivery mode this release does     :class:`Vocabulary`
                       not list: ``info``, never damage
=====================  ==============================================================  ============

A row-level rule is a :class:`Flag`: a SQL condition true for an offending row, so that SQLite
evaluates it at C speed and Python never sees a healthy row. The two others answer a whole
table at once (a GROUP BY, a join) and make their findings themselves.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from ..schema import Schema, Table, quote
from .model import HINT_UPGRADE, MAX_EXAMPLES, Finding, excerpt

HINT_ORPHANS = ("the rows are unreachable from the board; restore the missing tasks from a backup "
                "or delete the rows")
HINT_CURRENT_RUN = ("the dispatcher follows current_run_id: clear it (UPDATE tasks SET current_run_id = NULL ...) "
                    "and let the task be reclaimed")
HINT_NUL = ("NUL bytes cut the text short for most readers; the rows were written by a buggy client or "
            "damaged")
HINT_JSON = "the application cannot read these values; fix or clear them"
HINT_STOPPED = "see the integrity findings; run 'kanban-migrate recover' on it"
#: Distinct offending values a message lists (the examples are ids, :data:`.model.MAX_EXAMPLES`).
MAX_VALUES = 5
#: A declared type with one of these in it has TEXT affinity (SQLite's rule, section 3.1 of its
#: datatype documentation): the columns searched for NUL bytes.
TEXT_AFFINITY = ("CHAR", "CLOB", "TEXT")
#: Columns that hold long text (kilobytes). Their NUL search uses printf('%s') (which stops at the
#: first NUL, found with strlen) against the whole value: four times faster than instr() on such
#: values, but it allocates per row (see :class:`.work.Work`); instr() is faster on short values.
LONG_TEXT = frozenset({("tasks", "body")})
ROWID_NAMES = ("rowid", "_rowid_", "oid")


# ---- the JSON rule's parser ------------------------------------------------------------------------
def py_json_valid(value) -> int:
    """Python stand-in for SQLite's ``json_valid`` (RFC 8259: no NaN/Infinity, no control
    characters inside strings). Used only where SQLite lacks JSON support, and by the tests.
    It differs from SQLite's on a NUL byte (SQLite stops reading there: :func:`json_flag` tests
    for NUL bytes itself) and on nesting deeper than Python's recursion limit (about 1000 levels;
    SQLite allows 2000)."""
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
    """Make the functions the rules use available on ``conn``: SQLite's own ``json_valid`` when it
    has one, else (or with ``python_json``) :func:`py_json_valid` under that name."""
    if python_json or not has_json(conn):
        conn.create_function("json_valid", 1, py_json_valid, deterministic=True)


# ---- naming rows and columns -----------------------------------------------------------------------
def rowid_name(t: Table) -> str | None:
    """A name that reaches the table's rowid (None: WITHOUT ROWID, or every name is a column)."""
    if t.without_rowid:
        return None
    taken = {c.lower() for c in t.columns}
    return next((n for n in ROWID_NAMES if n not in taken), None)


def row_key(board: Schema, table: str) -> str:
    """The expression that names a row in a finding's examples."""
    t = board.tables[table]
    if "id" in t.columns:
        return quote("id")
    if table == "task_links":
        return "parent_id || ' -> ' || child_id"
    if table == "kanban_notify_subs":
        return "task_id || '/' || platform || '/' || chat_id"
    return rowid_name(t) or "NULL"


def text_columns(board: Schema, table: str) -> list[str]:
    """The columns of ``table`` with TEXT affinity."""
    return [c.name for c in board.tables[table].columns.values()
            if any(t in c.type.upper() for t in TEXT_AFFINITY)]


def stopped(table: str | None, exc: Exception) -> Finding:
    """The finding of a rule that could not finish (a damaged page, or the board could not be
    read: then ``cause`` says so and the report says "not checked")."""
    from .access import cannot_run

    return Finding("data", "error", f"the scan of {table} stopped: {exc}", table=table, hint=HINT_STOPPED,
                   cause=cannot_run(exc))


# ---- row-level rules -------------------------------------------------------------------------------
@dataclass
class Flag:
    """A row-level rule: ``expr`` is true for an offending row of the table it is made for."""

    expr: str
    severity: str
    message: str  # formatted with n (count), table, values (a few offending values)
    hint: str | None = None
    value: str | None = None  # an expression whose distinct values the message lists


def in_set(expr: str, values) -> str:
    """1 when ``expr`` is one of ``values``, else 0 (NULL too): a CASE, that is a few comparisons
    per row where IN looks each row up in a temporary index."""
    whens = " ".join(f"WHEN {_literal(v)} THEN 1" for v in sorted(values))
    return f"(CASE {expr} {whens} ELSE 0 END)"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def nul_test(x: str, *, long: bool = False) -> str:
    """True when the SQL expression ``x`` is a text value with a NUL byte in it (a BLOB may hold
    NULs: ``typeof`` runs only for the rare value that matched).

    Short values: ``instr`` (which searches the whole value, not up to the first NUL). Long
    values: ``printf('%s')`` keeps the text up to the first NUL, so it differs from the value
    exactly when the value has one (compared as BLOBs: byte for byte, whatever the collation)."""
    if long:
        probe = f"CAST(printf('%s', {x}) AS BLOB) <> CAST({x} AS BLOB)"
    else:
        probe = f"instr({x}, char(0)) > 0"
    return f"({probe} AND typeof({x}) = 'text')"


def nul_flag(board: Schema, table: str, skip=()) -> Flag | None:
    """No NUL in text: a row with a NUL byte in any text column but ``skip`` (counted once)."""
    cols = [c for c in text_columns(board, table) if c not in skip]
    if not cols:
        return None
    cols.sort(key=lambda c: (table, c) in LONG_TEXT)  # short columns first: a hit stops the OR early
    expr = "(" + " OR ".join(nul_test(quote(c), long=(table, c) in LONG_TEXT) for c in cols) + ")"
    return Flag(expr, "warning", "{n} row(s) of {table} with a NUL byte in a text column", hint=HINT_NUL)


def json_flag(column: str) -> Flag:
    """JSON parses: a value of a JSON column (``head.JSON_COLUMNS``) that is not valid JSON.
    SQLite's parser stops at a NUL byte, so '{}' followed by a NUL and garbage passes json_valid;
    no JSON text contains a NUL byte, so a NUL anywhere makes the value invalid."""
    c = quote(column)
    return Flag(f"({c} IS NOT NULL AND (NOT json_valid({c}) OR instr({c}, char(0)) > 0))", "warning",
                "{n} row(s) of {table} whose " + column + " is not valid JSON", hint=HINT_JSON)


def event_kind_flag() -> Flag:
    """Old event kind: ``task_events.kind`` that every upgrade renames (``info``: the application
    of the board's era wrote it)."""
    from ..headfacts import EVENT_KIND_RENAMES as old

    renames = ", ".join(f"{a} -> {b}" for a, b in old.items())
    return Flag(in_set("kind", old), "info", "{n} event(s) of {table} with a kind the upgrade renames ({values})",
                hint=f"{HINT_UPGRADE} (it renames {renames})", value="kind")


def run_flags(board: Schema, *, stamped: bool = True) -> list[Flag]:
    """The rules of a task's current run: it exists, it is the task's own, a running task has one.
    A running task without a run is normal on a board the application took to head by itself from
    an era before runs (it never backfills them): on a board never stamped, ``info`` (``upgrade``
    creates the runs); on a stamped one, something wrote it after the upgrade: a warning."""
    has = board.has_column
    flags = []
    if not (has("tasks", "id") and has("tasks", "current_run_id")):
        return flags
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
        running = f"(status = 'running' AND {cr} IS NULL)"
        if stamped:
            flags.append(Flag(running, "warning", "{n} running task(s) without a run (current_run_id is NULL)",
                              hint="set them back to 'ready' so that they are claimed again"))
        else:
            flags.append(Flag(running, "info", "{n} running task(s) without a run (current_run_id is NULL), as "
                                               "boards from before runs keep them",
                              hint=HINT_UPGRADE + " (it creates their runs)"))
    return flags


def table_flags(board: Schema, table: str, *, stamped: bool = True) -> list[Flag]:
    """The row-level rules that fit ``table`` as this board has it, but the NUL search (whose
    columns :func:`.scan.plan` chooses) and the vocabularies (:func:`vocabularies`)."""
    from ..headfacts import JSON_COLUMNS

    flags = [json_flag(c) for c in JSON_COLUMNS.get(table, ()) if board.has_column(table, c)]
    if table == "tasks":
        flags.extend(run_flags(board, stamped=stamped))
    elif table == "task_events" and board.has_column("task_events", "kind"):
        flags.insert(0, event_kind_flag())
    return flags


# ---- open vocabularies -----------------------------------------------------------------------------
class Vocabulary:
    """Values of an open vocabulary (spec section 3: the application adds values over time) that
    this release does not list: ``info``, never damage, never a reason for ``ok: false``. One
    GROUP BY over the column, which an index on it answers; memory stays flat (the groups stream)."""

    def __init__(self, board: Schema, table: str, column: str, known, *, nullable: bool, what: str):
        self.table, self.column, self.known, self.nullable, self.what = table, column, frozenset(known), nullable, what
        self.key = row_key(board, table)
        self.name = f"values {table}.{column}"
        self.findings: list[Finding] = []

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            self.findings = self.check(conn)
        except sqlite3.Error as exc:
            self.findings = [stopped(self.table, exc)]

    def check(self, conn: sqlite3.Connection) -> list[Finding]:
        c, t = quote(self.column), quote(self.table)
        total, shown, null = 0, [], False
        for value, n in conn.execute(f"SELECT {c}, count(*) FROM {t} GROUP BY {c}"):
            if (value in self.known) if isinstance(value, str) else (value is None and self.nullable):
                continue
            total += n
            null |= value is None
            if len(shown) < MAX_VALUES:
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


def vocabularies(board: Schema) -> list[Vocabulary]:
    """The open vocabularies this board has columns for (known values from :mod:`kanban_migrate.head`)."""
    from .. import headfacts as head

    out = []
    for table, column, known, nullable, what in (
            ("tasks", "status", head.TASK_STATUSES, False, "status"),
            ("task_runs", "status", head.RUN_STATUSES, False, "run status"),
            ("task_runs", "outcome", head.RUN_OUTCOMES, True, "run outcome"),
            ("kanban_notify_subs", "delivery_mode", head.DELIVERY_MODES, False, "delivery mode")):
        if board.has_table(table) and board.has_column(table, column):
            out.append(Vocabulary(board, table, column, known, nullable=nullable, what=what))
    return out


# ---- every row's task exists -----------------------------------------------------------------------
def task_references(board: Schema) -> list[tuple[str, str]]:
    """``(table, column)`` of every column this board has that names a task (``head.TASK_CHILDREN``
    and both ends of a link); empty without ``tasks.id``."""
    from ..headfacts import TASK_CHILDREN

    if not (board.has_table("tasks") and board.has_column("tasks", "id")):
        return []
    refs = [(t, c) for t, c in TASK_CHILDREN.items() if board.has_table(t) and board.has_column(t, c)]
    return refs + [("task_links", c) for c in ("parent_id", "child_id")
                   if board.has_table("task_links") and board.has_column("task_links", c)]


#: A child table with more than this many rows per task is probed by a join from tasks (one
#: index search per task) rather than by a lookup per row (one index search per row).
JOIN_ROWS_PER_TASK = 2


class Orphans:
    """Task exists: rows of ``table`` whose task (``column``) does not exist. None on a healthy
    board, and that is what is made cheap.

    :meth:`probe` counts them without a copy of any value (a DISTINCT copies every value, and
    SQLite counts each allocation under one process-wide mutex, which the other threads need too).
    Only if some are missing are the distinct missing ids listed (searched for NUL bytes too when
    ``nul``: ``nul_found``), the rows counted and sampled."""

    def __init__(self, board: Schema, table: str, column: str, *, nul: bool):
        self.board, self.table, self.column, self.nul = board, table, column, nul
        self.name = f"orphans {table}" + (f".{column}" if table == "task_links" else "")
        self.findings: list[Finding] = []
        self.nul_found = False
        self._indexed: bool | None = None  # can tasks.id be looked up through an index?

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            self.findings = self.check(conn)
        except sqlite3.Error as exc:
            self.findings = [stopped(self.table, exc)]
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
        if rows > JOIN_ROWS_PER_TASK * tasks:
            join = f"SELECT count(*) FROM tasks AS k CROSS JOIN {t} AS x ON k.id = x.{c}"
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + join))
            if "SEARCH x" in plan:  # the task column is indexed (with the collation of tasks.id)
                (matched,) = conn.execute(join).fetchone()
                return matched != rows
        (missing,) = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t} AS x WHERE {self.gone(conn, 'x.' + c)})").fetchone()
        return bool(missing)

    def gone(self, conn: sqlite3.Connection, x: str) -> str:
        """SQL that is true when the task id ``x`` names no task: a lookup in tasks.id's index;
        without one (a forked schema), NOT IN, for which SQLite builds a temporary index once
        instead of scanning tasks for every row."""
        if self._indexed is None:
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM tasks WHERE tasks.id = ?", (None,)))
            self._indexed = "SEARCH" in plan
        if self._indexed:
            return f"NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = {x})"
        return f"({x} IS NULL OR {x} NOT IN (SELECT id FROM tasks WHERE id IS NOT NULL))"

    def check(self, conn: sqlite3.Connection) -> list[Finding]:
        if not self.probe(conn):
            return []
        tids = self.missing_ids(conn)
        if not tids:
            return []
        c, t, table = quote(self.column), quote(self.table), self.table
        (count,) = conn.execute(f"SELECT count(*) FROM {t} AS x WHERE {self.gone(conn, 'x.' + c)}").fetchone()
        key = row_key(self.board, table)
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

    def missing_ids(self, conn: sqlite3.Connection) -> list:
        """The first few distinct task ids that name no task; sets ``nul_found`` when any has a NUL."""
        nul = nul_test("g.tid") if self.nul else "0"
        sql = (f"SELECT g.tid, {nul} FROM (SELECT DISTINCT {quote(self.column)} AS tid FROM {quote(self.table)}) AS g "
               f"WHERE {self.gone(conn, 'g.tid')}")
        tids = []
        for tid, has_nul in conn.execute(sql):
            if len(tids) < MAX_EXAMPLES:
                tids.append(tid)
            if has_nul:
                self.nul_found = True
        return tids
