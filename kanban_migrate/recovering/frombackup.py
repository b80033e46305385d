"""Rows a recovered board lacks that a kept copy of it still holds: find them, bring them back.

    >>> from kanban_migrate.recovering.frombackup import holdings, bring_back
    >>> [(h.name, h.rows) for h in holdings("kanban.db")]          # doctest: +SKIP
    [('kanban.db.pre-upgrade.0147a5d18e9e127a.bak', {'tasks': 8, 'task_comments': 7})]
    >>> bring_back("kanban.db", "kanban.db.pre-upgrade.0147a5d18e9e127a.bak").code  # doctest: +SKIP
    0

The copies are the ones ``backups`` lists (:func:`kanban_migrate.backup.list_backups`: pre-upgrade,
quarantine and pre-restore copies). Rows are matched by primary key per kanban table (head's keys;
an older copy's rows on the key columns it has), with SQL over an attached copy, never a Python loop
over rows. A copy is only ever read: one without sidecars is attached ``immutable`` (no lock, no
``-shm``), one with a ``-wal`` or ``-journal`` through a private copy of all its files (a WAL is then
read and a hot journal rolled back there, as :func:`kanban_migrate.board.open_ro` does for boards).
A table whose ids were text (a "drifted" table, spec section 5) is not compared: the upgrade
renumbers those ids, so a row cannot be told from the board's own.

:func:`bring_back` copies the kept copy's files into a work folder, takes that copy to head with
``upgrade`` (ids renumbered only as the upgrade does), and then, in one transaction on the board,
inserts only the rows whose keys the board lacks: tasks, then rows of tasks the board now has (a row
whose task is in neither is left out and counted). The board is checked first (at head, sound, idle:
the in-use probes of :mod:`.inuse`, before this process opens it), then its write lock is taken
(``BEGIN IMMEDIATE``: the application waits), the probes for processes are repeated, and the same
content-addressed backup upgrade takes (``<db>.pre-upgrade.<sha16>.bak``) is made before anything
changes: ``kanban-migrate restore DB`` undoes the run. Every row brought back is listed in the table
:data:`MARKS` (``table_``, ``key``, ``backup``, ``restored_at``). A brought-back task's
``current_run_id`` (and an event's ``run_id``) that names no run of the same task is set to NULL.
Whether the copy is this board's and holds anything the board lacks is decided read-only first, so
a refusal or a run with nothing to do never opens the board for writing (closing it could
checkpoint a WAL into it). The run is listed in the swap journal (:mod:`.swap`): a killed run's
work folder is removed by the next command that checks the board.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from ..backup import Backup, inherit_access, list_backups
from ..board import DEFAULT_BUSY_TIMEOUT, SIDECARS, check_file, open_ro, sidecar, uri
from ..errors import (BoardBusy, CorruptBoard, EnvironmentFailure, ExitCode, KanbanMigrateError, MissingBoard,
                      Refused, UsageError)
from ..schema import KANBAN_TABLES, quote
from . import swap
from .files import Made, copy_sparse, environment_cause, make_work, work_name

#: The table of a board that lists every row ``recover --from-backup`` brought back.
MARKS = "kanban_migrate_restored_rows"
#: ``table_`` and ``key`` as ``recover --include-freelist`` lists deleted rows: the table, and the row's
#: primary key there (its value; a JSON array for a key of several columns); then the kept copy's
#: file name and the time (epoch seconds) the row was brought back.
MARKS_DDL = (f"CREATE TABLE IF NOT EXISTS main.{MARKS} (table_ TEXT NOT NULL, key NOT NULL, "
             "backup TEXT NOT NULL, restored_at INTEGER NOT NULL)")
SAMPLE = 10  # keys shown per table
USE_HINT = "stop the board's processes (gateways, dispatcher, workers) first"


# ---- keys -----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def keys_of(table: str) -> tuple[str, ...]:
    """Head's primary key of a kanban table (:mod:`kanban_migrate.head` defines it)."""
    from .. import head

    return tuple(c.name for c in head.metadata.tables[table].primary_key.columns)


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?, ?)", (table, schema))]


def _renumbered(conn: sqlite3.Connection, schema: str, table: str) -> bool:
    """The table's key is head's integer ``id`` but the copy's ``id`` is not an INTEGER PRIMARY
    KEY: the upgrade gives such rows new ids (spec section 5)."""
    if keys_of(table) != ("id",) or table == "tasks":
        return False
    row = conn.execute("SELECT upper(type), pk FROM pragma_table_info(?, ?) WHERE name = 'id'",
                       (table, schema)).fetchone()
    return row is not None and (row[0] != "INTEGER" or row[1] != 1)


def _absent(table: str, keys) -> str:
    """SQL true for a row ``x`` of the copy whose key the board (``main``) lacks."""
    known = " AND ".join(f"x.{quote(k)} IS NOT NULL" for k in keys)
    same = " AND ".join(f"y.{quote(k)} = x.{quote(k)}" for k in keys)
    return f"{known} AND NOT EXISTS (SELECT 1 FROM main.{quote(table)} AS y WHERE {same})"


def _key_expr(keys) -> str:
    """A row's key as one value: the value itself, or a JSON array for a composite key."""
    if len(keys) == 1:
        return f"x.{quote(keys[0])}"
    return "json_array(" + ", ".join(f"x.{quote(k)}" for k in keys) + ")"


def _comparable(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[str]] | None:
    """``(key columns, shared columns)`` of ``table`` in the copy ``b`` and the board, or None
    when the copy has no such table or none of its key columns."""
    have = _columns(conn, "b", table)
    keys = [k for k in keys_of(table) if k in have]
    if not keys:
        return None
    board = set(_columns(conn, "main", table))
    return keys, [c for c in have if c in board]


# ---- reading a kept copy --------------------------------------------------------------------------
def _readable(path: Path, folder: str) -> str:
    """A URI to attach the kept copy at ``path`` by, never writing beside it: the file itself,
    immutable, when it has no sidecar; else a copy of it and its sidecars in ``folder``."""
    check_file(path)  # a FIFO sidecar is refused, never opened
    extras = [s for s in SIDECARS if s != "-shm" and sidecar(path, s).exists()]
    if not extras:
        return uri(path, mode="ro", immutable="1")
    copy = Path(folder) / "copy.db"
    for s in ("", *extras):
        copy_sparse(sidecar(path, s), sidecar(copy, s))
    conn = sqlite3.connect(str(copy))  # ours: SQLite reads the WAL or rolls the journal back here
    try:
        conn.execute("PRAGMA journal_mode=DELETE").fetchone()  # one self-contained file to attach
    finally:
        conn.close()
    return uri(copy, mode="ro")


@dataclass
class Holding:
    """A kept copy of a board and the rows of it the board lacks."""

    path: str
    name: str
    kind: str  # pre-upgrade | corrupt | pre-restore (kanban_migrate.backup.KINDS)
    mtime: float
    rows: dict[str, int] = field(default_factory=dict)  # per table: rows whose key the board lacks
    samples: dict[str, list] = field(default_factory=dict)  # per table: up to SAMPLE of their keys
    lost_tasks: list[str] = field(default_factory=list)  # of the task ids asked about, those it holds
    unreadable: str | None = None  # why it could not be read (damaged, a hot journal...), if so
    damaged: str | None = None  # what quick_check says of a copy holding rows (--from-backup refuses it)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict:
        return asdict(self)


def _compare(conn: sqlite3.Connection, held: Holding, lost_tasks: list[str]) -> None:
    """Fill ``held`` from the copy attached as ``b`` against the board (``main``)."""
    for table in KANBAN_TABLES:
        found = _comparable(conn, table)
        if found is None:
            continue
        if _renumbered(conn, "b", table):
            held.notes.append(f"{table}: its ids are text, which the upgrade renumbers; not compared")
            continue
        keys = found[0]
        where = _absent(table, keys)
        (n,) = conn.execute(f"SELECT count(*) FROM b.{quote(table)} AS x WHERE {where}").fetchone()
        if n:
            held.rows[table] = n
            order = ", ".join(f"x.{quote(k)}" for k in keys)
            held.samples[table] = [r[0] for r in conn.execute(
                f"SELECT {_key_expr(keys)} FROM b.{quote(table)} AS x WHERE {where} ORDER BY {order} LIMIT {SAMPLE}")]
    if held.rows:  # only a sound copy can give its rows back (quick_check, only where it matters)
        try:
            checked = [r[0] for r in conn.execute("PRAGMA b.quick_check(1)")]
        except sqlite3.DatabaseError as exc:
            checked = [str(exc)]
        said = [x for x in (checked[0].splitlines() if checked else []) if not x.startswith("*** in database")]
        held.damaged = None if checked == ["ok"] else (said[0] if said else "no result")
    if lost_tasks and "tasks" in held.rows:
        for at in range(0, len(lost_tasks), 500):
            part = lost_tasks[at:at + 500]
            marks = ", ".join("?" * len(part))
            held.lost_tasks += [r[0] for r in conn.execute(
                f"SELECT id FROM b.tasks WHERE id IN ({marks}) ORDER BY id", part)]


def holdings(board: str | os.PathLike, *, backups_of: str | os.PathLike | None = None,
             lost_tasks: list[str] = (), skip: tuple[str, ...] = (),
             busy_timeout: float = 5.0) -> list[Holding]:
    """Every kept copy of ``backups_of`` (default: ``board``), newest first, with the rows of it
    the board at ``board`` lacks; ``lost_tasks``: task ids to look for (the report's lost tasks);
    ``skip``: copies not to read. A copy that cannot be read says why (``unreadable``)."""
    shown = str(board)
    bf = check_file(board)
    out = []
    conn = open_ro(bf, busy_timeout=busy_timeout)
    try:
        for b in list_backups(Path(os.path.realpath(backups_of or board))):
            if str(b.path) in skip:
                continue
            held = Holding(str(b.path), b.path.name, b.kind, b.mtime)
            out.append(held)
            with tempfile.TemporaryDirectory(prefix="kanban-migrate-read-") as folder:
                try:
                    conn.execute("ATTACH DATABASE ? AS b", (_readable(b.path, folder),))
                    try:
                        _compare(conn, held, list(lost_tasks))
                    finally:
                        conn.execute("DETACH DATABASE b")
                except (sqlite3.Error, KanbanMigrateError, OSError) as exc:
                    held.rows, held.samples, held.lost_tasks = {}, {}, []
                    held.unreadable = exc.message if isinstance(exc, KanbanMigrateError) else str(exc)
    except sqlite3.Error as exc:
        from ..board import translate

        raise translate(exc, shown) from None
    finally:
        conn.close()
    return out


def annotate(report, board: Path) -> None:
    """Fill ``report.lost_rows_in_backups`` (a recover run that lost rows): the kept copies of
    ``board`` that hold rows the recovered board lacks. The original this run just kept is not
    read (its readable rows are the ones recovered). Never fails the run: a failure is a note."""
    if not list_backups(board):
        return
    recovered = Path(report.output) if report.output else board
    skip = (report.original,) if report.original else ()
    try:
        found = holdings(recovered, backups_of=board, lost_tasks=report.missing_tasks, skip=skip)
    except (KanbanMigrateError, sqlite3.Error, OSError) as exc:
        report.notes.append(f"the kept copies could not be compared with the recovered board: {exc}")
        return
    report.lost_rows_in_backups = [h.to_dict() for h in found if h.total or h.unreadable]


# ---- bringing rows back ---------------------------------------------------------------------------
@dataclass
class BroughtBack:
    """What ``recover DB --from-backup BACKUP`` did."""

    path: str  # the board
    backup: str  # the kept copy the rows came from
    kind: str
    backup_mtime: float
    pre_change_backup: str | None = None  # the board as it was before (restore puts it back)
    rows: dict[str, int] = field(default_factory=dict)  # per table: rows brought back
    left_out: dict[str, int] = field(default_factory=dict)  # per table: rows the board lacks, not brought back
    reasons: list[str] = field(default_factory=list)  # why, per table
    cleared: list[str] = field(default_factory=list)  # references set to NULL in rows brought back
    not_compared: list[str] = field(default_factory=list)  # tables whose text ids the upgrade renumbers
    marks: str = MARKS
    seconds: float = 0.0
    code: int = 0

    @property
    def status(self) -> str:
        """One word for scripts, as ``recover --json`` has one: rows-left-out, brought-back or
        nothing-to-do."""
        return "rows-left-out" if self.code else "brought-back" if self.rows else "nothing-to-do"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"], d["status"] = self.code == 0, self.status
        return d

    def lines(self) -> list[str]:
        name = Path(self.backup).name
        total = sum(self.rows.values())
        if not total and not self.left_out:
            return [f"{self.path}: nothing to bring back: the board has every row of {name}"]
        out = [f"{self.path}: brought back {total} row(s) from {name}"]
        out += [f"  {t:22} {n:9}" for t, n in self.rows.items()]
        out += [f"  {r}" for r in self.reasons]
        out += [f"  {c}" for c in self.cleared]
        if total:
            out.append(f"  every row brought back is listed in the table {self.marks}")
        if self.pre_change_backup:
            out.append(f"  the board before: {self.pre_change_backup} "
                       f"(undo: kanban-migrate restore {self.path} {Path(self.pre_change_backup).name})")
        return out


def _choose(board: Path, which: str | os.PathLike, shown: str) -> Backup:
    """The kept copy of ``board`` that ``which`` names: a path, a file name or a digest prefix
    (as ``restore`` takes them). A file that is not one of the board's copies is refused."""
    from ..restore import choose

    text = str(which)
    given = Path(text).expanduser()
    if os.path.sep in text or given.exists():
        if not given.exists():
            raise MissingBoard("no such file", "name a copy 'kanban-migrate backups' lists", path=text)
        key = os.path.realpath(given)
        for b in list_backups(board):
            if os.path.realpath(b.path) == key:
                return b
        raise Refused(f"is not a kept copy of {shown} (not among its backups)",
                      f"name one that 'kanban-migrate backups {shown}' lists; the board was not changed", path=text)
    try:
        return choose(board, text)
    except UsageError as exc:
        exc.path = shown
        raise
    except MissingBoard:
        raise MissingBoard("the board has no kept copies", f"'kanban-migrate backups {shown}' lists them",
                           path=shown) from None


def _look_at_board(bf, shown: str, busy_timeout: float) -> None:
    """The board must be a sound board at head: rows are brought back only into what ``recover``
    or ``upgrade`` made (read-only look, before anything else)."""
    from ..board import reading
    from ..upgrading import missing_at_head

    def read(conn):
        missing = missing_at_head(conn)
        if missing:
            raise Refused(f"is not a board at head (it lacks {', '.join(missing[:3])})",
                          "run 'kanban-migrate upgrade' on it first; the board was not changed")
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise CorruptBoard(f"fails PRAGMA quick_check ({rows[0].splitlines()[0] if rows else 'no result'})",
                               "run 'kanban-migrate recover' on it first; the board was not changed")

    reading(bf, read, busy_timeout=busy_timeout, shown=shown)


def _probe_idle(board: Path, shown: str, assume_idle: bool) -> None:
    """``recover``'s in-use probes (:mod:`.inuse`), run before this process opens the board: they
    open its files, and closing a file drops every POSIX lock this process holds on it."""
    from .inuse import unprovable, users

    why = None if assume_idle else unprovable(board)
    if why:
        raise BoardBusy(f"cannot prove the board idle: {why}", "pass --assume-idle if nothing uses it", path=shown)
    why = users(board)
    if why:
        raise BoardBusy(f"the board is in use ({why})", USE_HINT, path=shown)


def _as_copy(exc: KanbanMigrateError, chosen: Backup, shown: str) -> KanbanMigrateError:
    """A refusal about the work copy, said about the kept copy it came from."""
    hint = exc.hint if isinstance(exc, EnvironmentFailure) else \
        f"name another copy from 'kanban-migrate backups {shown}'; the board was not changed"
    return type(exc)(exc.message, hint, path=str(chosen.path))


def _copy_to_head(chosen: Backup, board: Path, work: Path, shown: str) -> tuple[Path, set[str]]:
    """The kept copy's files copied into ``work`` and taken to head there by ``upgrade``; with the
    tables whose text ids the upgrade renumbered (never compared)."""
    from ..board import translate
    from ..upgrading import upgrade

    try:
        check_file(chosen.path)
    except KanbanMigrateError as exc:
        raise _as_copy(exc, chosen, shown) from None
    copy = work / "backup.db"
    for s in ("", "-wal", "-journal"):
        if sidecar(chosen.path, s).exists():
            copy_sparse(sidecar(chosen.path, s), sidecar(copy, s))
            inherit_access(sidecar(copy, s), board)
    try:
        conn = sqlite3.connect(str(copy))  # ours: a hot journal is rolled back here
        try:
            renumbered = {t for t in KANBAN_TABLES if _renumbered(conn, "main", t)}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _as_copy(translate(exc, str(chosen.path)), chosen, shown) from None
    try:
        if upgrade(copy, backup=False).status == "current":
            _sound(copy)  # upgrade checks what it changes; a copy already at head is checked here
    except KanbanMigrateError as exc:
        raise _as_copy(exc, chosen, shown) from None
    return copy, renumbered


def _sound(copy: Path) -> None:
    conn = sqlite3.connect(uri(copy, mode="ro"), uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    finally:
        conn.close()
    if rows != ["ok"]:
        raise CorruptBoard(f"the kept copy is damaged (PRAGMA quick_check: {rows[0].splitlines()[0] if rows else '?'}); "
                           "its readable rows are recovered by 'kanban-migrate recover', not brought back")


def _same_board(conn: sqlite3.Connection, name: str, shown: str) -> None:
    """A copy that shares fewer than half the tasks of the smaller of the two is another board's:
    its rows are never merged into this one."""
    (theirs,) = conn.execute("SELECT count(*) FROM b.tasks").fetchone()
    (ours,) = conn.execute("SELECT count(*) FROM main.tasks").fetchone()
    (shared,) = conn.execute("SELECT count(*) FROM b.tasks AS x JOIN main.tasks AS y ON y.id = x.id").fetchone()
    if theirs and ours and 2 * shared < min(theirs, ours):
        raise Refused(f"{name} shares {shared} of its {theirs} tasks with the board ({ours}): "
                      "a copy of another board", f"name a copy that 'kanban-migrate backups {shown}' lists; "
                      "the board was not changed", path=shown)


def _parents(table: str) -> str:
    """SQL true for a row ``x`` whose task (both tasks, for a link) the board has."""
    from .. import head

    cols = [head.TASK_CHILDREN[table]] if table in head.TASK_CHILDREN else \
        ["parent_id", "child_id"] if table == "task_links" else []
    return " AND ".join(f"EXISTS (SELECT 1 FROM main.tasks AS k WHERE k.id = x.{quote(c)})" for c in cols)


def _plan(conn: sqlite3.Connection, renumbered: set[str]) -> list[tuple]:
    """Per table with rows the board lacks: ``(table, keys, shared columns, WHERE, missing count)``."""
    plan = []
    for table in KANBAN_TABLES:
        found = _comparable(conn, table)
        if found is None or table in renumbered:
            continue
        keys, cols = found
        where = _absent(table, keys)
        (missing,) = conn.execute(f"SELECT count(*) FROM b.{quote(table)} AS x WHERE {where}").fetchone()
        if missing:
            parents = _parents(table)
            plan.append((table, keys, cols, where + (f" AND {parents}" if parents else ""), missing))
    return plan


def _insert(conn: sqlite3.Connection, plan: list[tuple], result: BroughtBack, now: int) -> None:
    """The rows, tasks first (so that their rows find them), each listed in :data:`MARKS`."""
    name = Path(result.backup).name
    conn.execute(MARKS_DDL)
    for table, keys, cols, where, missing in plan:
        t = quote(table)
        conn.execute(f"INSERT INTO main.{MARKS} (table_, key, backup, restored_at) "
                     f"SELECT ?, {_key_expr(keys)}, ?, ? FROM b.{t} AS x WHERE {where}", (table, name, now))
        names = ", ".join(quote(c) for c in cols)
        picked = ", ".join(f"x.{quote(c)}" for c in cols)
        brought = conn.execute(f"INSERT INTO main.{t} ({names}) SELECT {picked} FROM b.{t} AS x WHERE {where}").rowcount
        if brought:
            result.rows[table] = brought
        if missing > brought:
            result.left_out[table] = missing - brought
            result.reasons.append(f"{table}: {missing - brought} row(s) not brought back: their task is in "
                                  f"neither the board nor {name}")


def _clear_references(conn: sqlite3.Connection, result: BroughtBack, now: int) -> None:
    """Rows brought back keep the board's invariants (spec section 3): a task's current_run_id and
    an event's run_id name a run of the same task, or nothing."""
    mine = f"SELECT key FROM main.{MARKS} WHERE table_ = ? AND backup = ? AND restored_at = ?"
    args = (Path(result.backup).name, now)
    n = conn.execute(
        f"UPDATE main.tasks SET current_run_id = NULL WHERE id IN ({mine}) AND current_run_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM main.task_runs AS r WHERE r.id = tasks.current_run_id AND r.task_id = tasks.id)",
        ("tasks", *args)).rowcount
    if n:
        result.cleared.append(f"{n} task(s) brought back named a run that is not theirs here: current_run_id set to NULL")
    n = conn.execute(
        f"UPDATE main.task_events SET run_id = NULL WHERE id IN ({mine}) "
        "AND run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.task_runs AS r "
        "WHERE r.id = task_events.run_id AND r.task_id = task_events.task_id)", ("task_events", *args)).rowcount
    if n:
        result.cleared.append(f"{n} event(s) brought back named a run that is not their task's here: run_id set to NULL")


def _preview(bf, copy: Path, renumbered: set[str], name: str, shown: str, busy_timeout: float) -> bool:
    """Read-only, before the board is opened for writing (which, closed again, could checkpoint a
    WAL into it): is the copy this board's, and does it hold any row the board lacks?"""
    from ..board import reading

    def read(conn):
        conn.execute("ATTACH DATABASE ? AS b", (uri(copy, mode="ro"),))
        try:
            _same_board(conn, name, shown)
            return bool(_plan(conn, renumbered))
        finally:
            conn.execute("DETACH DATABASE b")

    return reading(bf, read, busy_timeout=busy_timeout, shown=shown)


def _apply(bf, copy: Path, result: BroughtBack, renumbered: set[str], busy_timeout: float, shown: str) -> None:
    """One transaction on the board, under its write lock: probe for other processes, check the copy
    is this board's, back the board up, insert, keep the invariants, commit. Nothing to bring back:
    nothing is written and no backup is made."""
    from ..backup import remove_copy
    from ..upgrading.write import take_backup
    from .inuse import open_by

    board, backup_made, committed = bf.path, None, False
    conn = sqlite3.connect(uri(board, mode="rw"), uri=True, isolation_level=None, timeout=busy_timeout)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("ATTACH DATABASE ? AS b", (uri(copy, mode="ro"),))
        conn.execute("BEGIN IMMEDIATE")  # the write lock, held to the commit: the application waits
        pids = open_by(board)
        if pids:
            raise BoardBusy(f"the board is in use (open in process {', '.join(map(str, pids[:5]))})",
                            USE_HINT, path=shown)
        plan = _plan(conn, renumbered)
        if plan:
            path, made = take_backup(bf, busy_timeout, shown)
            backup_made = path if made else None
            result.pre_change_backup = str(path)
            now = int(time.time())
            _insert(conn, plan, result, now)
            _clear_references(conn, result, now)
        if result.rows:
            conn.execute("COMMIT")
            committed = True
        else:
            conn.execute("ROLLBACK")
    finally:
        if not committed:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if backup_made is not None:
                remove_copy(backup_made)
            result.pre_change_backup = None
        conn.close()


def bring_back(path: str | os.PathLike, which: str | os.PathLike, *, workdir: str | os.PathLike | None = None,
               assume_idle: bool = False, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> BroughtBack:
    """Bring back into the board at ``path`` the rows it lacks that the kept copy ``which`` (a path,
    a file name or a digest prefix, as ``backups`` shows them) holds; see the module docstring.
    ``code`` is 0 (brought back, or nothing to bring) or 1 (some rows the board lacks were left
    out: ``reasons`` says why); refusals (2, 3, 4, 5) leave the board as it was."""
    from ..upgrading.write import preflight
    from .run import FIX_HINT, _check_input

    started = time.perf_counter()
    shown = str(path)
    _check_input(Path(path), shown)
    bf = check_file(path)
    board = bf.path
    chosen = _choose(board, which, shown)
    result = BroughtBack(shown, str(chosen.path), chosen.kind, chosen.mtime)
    _look_at_board(bf, shown, busy_timeout)
    _probe_idle(board, shown, assume_idle)
    preflight(bf, shown, True)
    made = Made()
    work = work_name(Path(workdir) if workdir is not None else board.parent)
    journal = swap.Journal(board, made, [work], [])  # a killed run's work folder is removed by the next command
    try:
        journal.write()
        make_work(work, board, made)
        copy, renumbered = _copy_to_head(chosen, board, work, shown)
        for table in sorted(renumbered):
            result.not_compared.append(table)
            result.reasons.append(f"{table}: not compared (the copy's ids are text, which the upgrade renumbers)")
        if _preview(bf, copy, renumbered, chosen.path.name, shown, busy_timeout):
            _apply(bf, copy, result, renumbered, busy_timeout, shown)
    except KanbanMigrateError:
        raise
    except sqlite3.Error as exc:
        from ..board import translate

        cause = environment_cause(exc)
        if cause:
            raise EnvironmentFailure(f"{cause}; nothing was changed", FIX_HINT, path=shown) from None
        raise translate(exc, shown) from None
    except OSError as exc:
        cause = environment_cause(exc)
        if cause is None:
            raise
        raise EnvironmentFailure(f"{cause}; nothing was changed", FIX_HINT, path=shown) from None
    finally:
        made.remove_all()
        journal.close()
    result.code = int(ExitCode.PENDING if result.left_out or result.not_compared else ExitCode.OK)
    result.seconds = time.perf_counter() - started
    return result
