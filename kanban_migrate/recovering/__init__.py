"""``recover``: give back every row that survives on a malformed board.

    >>> import kanban_migrate
    >>> report = kanban_migrate.recover("kanban.db")              # doctest: +SKIP
    >>> report.mode, report.code, report.tables["tasks"].recovered  # doctest: +SKIP
    ('salvage', 0, 1200)

The procedure (README, "recover"): refuse to race the application; copy the board, its ``-wal``
and any ``-journal`` byte for byte into a work directory with a SHA-256 manifest; on a copy,
checkpoint the WAL and triage with SQLite's own integrity check — healthy after the checkpoint
("WAL only"), index damage only (``REINDEX``), or table damage: salvage every readable row with
the pure-Python reader (:mod:`kanban_migrate.salvage`), load the rows into a fresh database with
the board's own table definitions, take it to head with the revision chain (so the chain's data
changes apply), verify it, and swap it in, keeping the original as
``<db>.corrupt.<sha256[:16]>.bak``. With ``output`` the source files are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from ..backup import fsync_dir, sha256_file
from ..board import DEFAULT_BUSY_TIMEOUT, MAGIC, sidecar
from ..errors import BoardBusy, ExitCode, MissingBoard, NotABoard, Refused, UsageError
from ..schema import quote

QUARANTINE_KEEP = 10  # as the application: at most 10 quarantine copies per board
INTERNAL = {"sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4", "alembic_version"}
LOST = "lost_and_found"


@dataclass
class TableReport:
    name: str
    recovered: int = 0  # rows in the rebuilt board
    unreadable: int = 0  # cells seen in damaged areas but not readable
    from_orphan_pages: int = 0  # rows placed from pages no b-tree walk reached
    from_freelist: int = 0
    rejected: int = 0  # rows the table's constraints refused: kept in lost_and_found
    missing_subtrees: int = 0  # child pages the b-tree walk could not follow


@dataclass
class RecoverReport:
    path: str
    mode: str = ""  # healthy | wal-only | reindex | salvage
    output: str | None = None  # where the recovered board is
    original: str | None = None  # where the original board was moved (in place)
    workdir: str | None = None
    wal_commits: bool = False  # the WAL held commits not yet checkpointed
    wal_frames: int = 0
    tables: dict[str, TableReport] = field(default_factory=dict)
    lost_and_found: int = 0
    missing_tasks: list[str] = field(default_factory=list)  # task rows gone, their events/runs not
    pages_unreadable: int = 0
    timed_out: bool = False
    dump: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    code: int = 0

    @property
    def rows_lost(self) -> bool:
        """Rows are (or may be) lost: unreadable cells, rejected or unplaced rows, tasks whose
        events survive, a walk that lost a subtree no orphan page made up for, a timeout. A zeroed
        page that held no readable cell is not a loss by itself."""
        return bool(self.timed_out or self.missing_tasks or self.lost_and_found
                    or any(t.unreadable or t.rejected or (t.missing_subtrees and not t.from_orphan_pages)
                           for t in self.tables.values()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tables"] = {k: asdict(v) for k, v in self.tables.items()}
        return d

    def lines(self) -> list[str]:
        what = {"healthy": "the board is healthy: nothing to recover",
                "wal-only": "only the WAL needed checkpointing",
                "reindex": "only indexes were damaged: rebuilt them",
                "salvage": "tables were damaged: salvaged every readable row and rebuilt the board at head"}
        out = [f"{self.path}: {what.get(self.mode, self.mode)}"]
        if self.wal_commits:
            out.append(f"  the WAL held uncheckpointed commits ({self.wal_frames} frames); they are included")
        if self.tables:
            out.append(f"  {'table':22} {'recovered':>9} {'unreadable':>10} {'orphan pages':>12} {'rejected':>8}")
            for t in self.tables.values():
                out.append(f"  {t.name:22} {t.recovered:9} {t.unreadable:10} {t.from_orphan_pages:12} {t.rejected:8}")
        if self.lost_and_found:
            out.append(f"  {self.lost_and_found} row(s) matched no table: kept in table {LOST}")
        if self.missing_tasks:
            ids = ", ".join(self.missing_tasks[:10]) + (" ..." if len(self.missing_tasks) > 10 else "")
            out.append(f"  {len(self.missing_tasks)} task(s) lost while their events or runs survive: {ids}")
        if self.pages_unreadable:
            out.append(f"  {self.pages_unreadable} page(s) could not be read")
        if self.timed_out:
            out.append("  the salvage ran out of time: raise --time-limit to read further")
        out.extend(f"  {n}" for n in self.notes)
        if self.output:
            out.append(f"  recovered board: {self.output}")
        if self.original:
            out.append(f"  original kept as: {self.original}")
        if self.dump:
            out.append(f"  SQL dump: {self.dump}")
        return out


def _check_input(path: Path, shown: str) -> None:
    if not path.exists():
        raise MissingBoard("no such file", "check the path", path=shown)
    if path.is_dir():
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=shown)
    if not path.is_file():
        raise NotABoard("is not a regular file", "pass the kanban.db file itself", path=shown)
    if path.stat().st_size == 0:
        raise Refused("empty file (0 bytes): there is nothing to recover",
                      "a new board can be made with 'kanban-migrate upgrade --create'", path=shown)


def forensic_copy(board: Path, workdir: Path) -> dict:
    """Copy the board, its -wal and any -journal byte for byte, with a SHA-256 manifest."""
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = {"source": str(board), "copied_at": time.time(), "files": {}}
    for suffix in ("", "-wal", "-journal"):
        src = sidecar(board, suffix)
        if src.is_file():
            dest = workdir / ("board.db" + suffix)
            shutil.copyfile(src, dest)
            manifest["files"][src.name] = {"copy": dest.name, "sha256": sha256_file(dest), "size": dest.stat().st_size}
    (workdir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def _integrity_lines(path: Path) -> tuple[list[str] | None, str | None, tuple | None]:
    """Checkpoint the copy at ``path`` and run integrity_check: (problem lines, error, checkpoint)."""
    from ..verifying.checks import result_lines

    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
        try:
            ckpt = None
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                ckpt = tuple(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            lines = result_lines(conn.execute("PRAGMA integrity_check"))
            return lines, None, ckpt
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return None, str(exc), None


def _index_only(lines: list[str]) -> bool:
    from ..verifying.checks import _INDEX_ONLY

    return bool(lines) and all(_INDEX_ONLY.match(line) for line in lines)


def _load(result, staging: Path, report: RecoverReport) -> None:
    """A fresh database with the board's own tables, the salvaged rows, then their other indexes."""
    from .. import head
    from ..salvage import copy_sound_rows

    conn = sqlite3.connect(str(staging), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        lost_rows: list[tuple] = []
        created: dict[str, list[str]] = {}
        for name, t in result.tables.items():
            if name in INTERNAL or name == LOST or name.startswith("sqlite_"):
                continue
            sql = t.sql
            try:
                conn.execute(sql if sql else _synth(name, t.columns))
            except sqlite3.Error:
                if name in head.metadata.tables:
                    conn.execute(head.create_table_sql(head.metadata.tables[name]))
                else:
                    conn.execute(_synth(name, t.columns))
            have = [r[1] for r in conn.execute(f"PRAGMA table_info({quote(name)})")]
            created[name] = have
            tr = report.tables.setdefault(name, TableReport(name))
            tr.unreadable, tr.from_orphan_pages = t.unreadable_cells, t.orphan_rows
            tr.missing_subtrees = t.missing_subtrees
            tr.from_freelist = t.freelist_rows + t.freeblock_rows
            cols = [c for c in t.columns if c in have]
            idx = [t.columns.index(c) for c in cols]
            use_rowid = t.rowid_alias is None and not t.without_rowid
            copy_sound_rows(result, name, conn, cols, use_rowid)  # SQLite copies the runs it read back
            rows = t.rows  # the rest, b-tree rows first, then orphan rows, then the others
            if not cols or not rows:
                tr.recovered = conn.execute(f"SELECT COUNT(*) FROM {quote(name)}").fetchone()[0]
                continue
            names = (["rowid"] if use_rowid else []) + cols
            sql_ins = f"INSERT INTO {quote(name)} ({', '.join(quote(c) for c in names)}) VALUES ({', '.join('?' * len(names))})"
            batch = 2000
            it = iter(rows)
            while chunk := list(islice(it, batch)):
                values = [([r.rowid] if use_rowid else []) + [_clean(r.values[i]) for i in idx] for r in chunk]
                conn.execute("SAVEPOINT batch")
                try:
                    conn.executemany(sql_ins, values)
                    conn.execute("RELEASE batch")
                    continue
                except sqlite3.IntegrityError:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                for row, vals in zip(chunk, values):  # one by one: keep what fits, keep the rest aside
                    try:
                        conn.execute(sql_ins, vals)
                    except sqlite3.IntegrityError as exc:
                        tr.rejected += 1
                        lost_rows.append((row.page, row.rowid, row.source, f"rejected by {name}: {exc}", name, row.values))
            tr.recovered = conn.execute(f"SELECT COUNT(*) FROM {quote(name)}").fetchone()[0]
        for lost in result.lost_and_found:
            lost_rows.append((lost.page, lost.rowid, lost.source, lost.reason, lost.table, tuple(lost.values)))
        if lost_rows:
            width = max(len(r[5]) for r in lost_rows)
            cols = ", ".join(f"c{i}" for i in range(width))
            conn.execute(f"CREATE TABLE {LOST} (page INTEGER, rowid_ INTEGER, source TEXT, reason TEXT, "
                         f"table_ TEXT, ncol INTEGER{', ' + cols if width else ''})")
            for page, rowid, source, reason, table, values in lost_rows:
                padded = list(values) + [None] * (width - len(values))
                conn.execute(f"INSERT INTO {LOST} VALUES ({', '.join('?' * (6 + width))})",
                             (page, rowid, source, reason, table, len(values), *padded))
            report.lost_and_found = len(lost_rows)
        if "tasks" not in created:
            conn.execute(head.create_table_sql(head.tasks))
            report.notes.append("no row of the tasks table survived; an empty one was made")
        # the board's own indexes that head does not define (head's are made by the chain)
        for entry in result.schema:
            if entry.type == "index" and entry.sql and entry.name not in {i.name for t in head.metadata.tables.values() for i in t.indexes}:
                try:
                    conn.execute(entry.sql)
                except sqlite3.Error as exc:
                    report.notes.append(f"index {entry.name} not recreated: {exc}")
        seq = result.tables.get("sqlite_sequence")
        if seq is not None and "name" in seq.columns and "seq" in seq.columns:
            ni, si = seq.columns.index("name"), seq.columns.index("seq")
            for row in seq.rows:
                name, value = row.values[ni], row.values[si]
                if name in created and isinstance(value, int):
                    conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (value, name))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _clean(value):
    """Text read from damaged pages may not be valid UTF-8 (the reader keeps the bytes as
    surrogate escapes): store it with U+FFFD for the bad bytes, so every tool can read it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {quote(table)}").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _synth(name: str, columns: list[str]) -> str:
    return f"CREATE TABLE {quote(name)} ({', '.join(quote(c) for c in columns) or 'c0'})"


def _missing_tasks(staging: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{staging}?mode=ro", uri=True)
    try:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        parts = [f"SELECT task_id FROM {t}" for t in ("task_events", "task_runs", "task_comments",
                                                      "task_attachments", "kanban_notify_subs") if t in have]
        if not parts:
            return []
        sql = (f"SELECT DISTINCT task_id FROM ({' UNION ALL '.join(parts)}) "
               "WHERE task_id IS NOT NULL AND task_id NOT IN (SELECT id FROM tasks) ORDER BY task_id")
        return [r[0] for r in conn.execute(sql)]
    finally:
        conn.close()


def _swap(board: Path, rebuilt: Path, report: RecoverReport) -> None:
    """Move the original (and its -wal/-shm) aside, content-addressed, and the rebuilt board in."""
    from ..backup import prune

    digest = sha256_file(board)[:16]
    aside = board.with_name(f"{board.name}.corrupt.{digest}.bak")
    for suffix in ("-wal", "-shm"):
        src = sidecar(board, suffix)
        if src.exists():
            os.replace(src, sidecar(aside, suffix))
    if aside.exists():
        board.unlink()  # the same bytes are already kept
    else:
        os.replace(board, aside)
    os.replace(rebuilt, board)
    fsync_dir(board.parent)
    report.original = str(aside)
    report.output = str(board)
    prune(board, keep=QUARANTINE_KEEP, kind="corrupt")


def recover(
    path: str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    dump: str | os.PathLike | None = None,
    include_freelist: bool = False,
    time_limit: float = 600.0,
    workdir: str | os.PathLike | None = None,
    keep_workdir: bool = False,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> RecoverReport:
    """Recover the board at ``path``; see the module docstring. Returns a report whose ``code`` is
    0 (everything readable recovered) or 1 (rebuilt, but rows were lost); raises a refusal (exit 2,
    3 or 4) where nothing could be recovered or the board is in use."""
    from ..salvage import salvage, write_dump
    from .inuse import users
    from .shapes import known_shapes

    started = time.perf_counter()
    shown = str(path)
    board = Path(os.path.realpath(path))
    _check_input(Path(path), shown)
    report = RecoverReport(shown)
    out = Path(output) if output is not None else None
    if out is not None and out.exists():
        raise UsageError("the output path exists", "pass a new path to --output", path=str(out))
    if out is None:
        why = users(board)
        if why:
            raise BoardBusy(f"the board is in use ({why})",
                            "stop the board's processes (gateways, dispatcher, workers) first, or pass --output",
                            path=shown)
    work = Path(workdir) if workdir else board.with_name(f".{board.name}.recover-{os.getpid()}")
    report.workdir = str(work)
    forensic_copy(board, work)
    copy = work / "board.db"
    wal = sidecar(copy, "-wal")
    with open(copy, "rb") as fh:
        has_magic = fh.read(16) == MAGIC
    if wal.exists():
        from ..salvage import wal_summary

        try:
            summary = wal_summary(wal)
            report.wal_frames = summary.committed_frames
            report.wal_commits = summary.has_uncheckpointed_commits
        except Exception as exc:  # noqa: BLE001 - a damaged WAL is just not used
            report.notes.append(f"the WAL could not be read: {exc}")
    # --- triage on a checkpointed copy of the copy
    trial = work / "checkpointed.db"
    shutil.copyfile(copy, trial)
    if wal.exists():
        shutil.copyfile(wal, sidecar(trial, "-wal"))
    journal = sidecar(copy, "-journal")
    if journal.exists():
        shutil.copyfile(journal, sidecar(trial, "-journal"))
    lines, error, ckpt = _integrity_lines(trial) if has_magic else (None, "no SQLite header", None)
    if ckpt is not None and ckpt[0] == 1:
        report.notes.append("the WAL checkpoint was blocked; the salvage reads the WAL itself")
        lines, error = None, "checkpoint blocked"
    result_db: Path | None = None
    if lines == [] and error is None:
        report.mode = "wal-only" if report.wal_commits else "healthy"
        if report.mode == "healthy" and out is None:
            report.seconds = time.perf_counter() - started
            _cleanup(work, keep_workdir, report)
            return report
        result_db = trial
    elif lines and _index_only(lines):
        conn = sqlite3.connect(str(trial), isolation_level=None)
        try:
            conn.execute("REINDEX")
        finally:
            conn.close()
        again, error, _ = _integrity_lines(trial)
        if again == [] and error is None:
            report.mode = "reindex"
            result_db = trial
    if result_db is None:
        report.mode = "salvage"
        result = salvage(copy, wal if wal.exists() else False, include_freelist=include_freelist,
                         time_limit=time_limit, shapes=known_shapes(), workdir=work)
        report.pages_unreadable, report.timed_out = result.pages_unreadable, result.timed_out
        if dump is not None:
            Path(dump).parent.mkdir(parents=True, exist_ok=True)
            with open(dump, "w", encoding="utf-8") as fp:
                write_dump(result, fp)
            report.dump = str(dump)
        if not any(t.rows for n, t in result.tables.items() if n not in INTERNAL) and not result.lost_and_found:
            _cleanup(work, keep_workdir, report)
            raise Refused("nothing could be recovered: no readable row of any table",
                          "the file holds no SQLite pages kanban-migrate can read; the input was left as it was",
                          path=shown)
        staging = work / "rebuilt.db"
        _load(result, staging, report)
        from ..upgrading import upgrade

        runs_before = _count(staging, "task_runs")
        upgrade(staging, backup=False)
        added = _count(staging, "task_runs") - runs_before
        if added > 0:
            report.notes.append(f"{added} run(s) created for running tasks that had none (the revision chain's data change)")
        report.missing_tasks = _missing_tasks(staging)
        result_db = staging
    _verify_rebuilt(result_db, shown, report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(result_db), str(out))
        report.output = str(out)
    else:
        for suffix in ("-wal", "-shm"):
            sidecar(result_db, suffix).unlink(missing_ok=True)
        _swap(board, result_db, report)
    report.code = int(ExitCode.PENDING) if report.rows_lost else int(ExitCode.OK)
    report.seconds = time.perf_counter() - started
    _cleanup(work, keep_workdir, report)
    return report


def _verify_rebuilt(db: Path, shown: str, report: RecoverReport) -> None:
    """No integrity or schema error, or nothing is swapped."""
    from ..verifying import verify

    checked = verify(db, full=True, data=False)
    bad = [f for f in checked.findings if f.severity == "error" and f.check in ("integrity", "schema")]
    if report.mode != "salvage":
        bad = [f for f in bad if f.check == "integrity"]  # a WAL-only/REINDEX board keeps its schema
    if bad:
        raise Refused(f"the rebuilt board fails verification ({bad[0].message}); nothing was swapped",
                      f"the work files are kept in {report.workdir}; please report this", path=shown)


def _cleanup(work: Path, keep: bool, report: RecoverReport) -> None:
    if keep:
        return
    shutil.rmtree(work, ignore_errors=True)
    report.workdir = None
