"""The ``file``, ``integrity``, ``schema`` and ``revision`` checks, one small function each.

Each check takes what it inspects (file facts, a read-only connection, a schema snapshot) and
returns a list of :class:`Finding`; none of them writes anything, and none raises on a damaged
board: SQLite errors become findings. The ``data`` check is :mod:`.invariants` (what) and :mod:`.scan` (how).
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..board import JOURNAL_SIZE_LIMIT, MAGIC, VERSION_TABLE, sidecar
from ..schema import INTERNAL_TABLES, Difference, Schema, quote
from ..backup import QUARANTINE_KEEP
from .model import HINT_UPGRADE, Examples, Finding, excerpt

# ---- hints (what to run next) ------------------------------------------------------------------
HINT_RECOVER = "run 'kanban-migrate recover' on it (the board's rows are copied into a new, sound file)"
HINT_CHECKPOINT = ("checkpoint it while the board is idle: "
                   "sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)'")
HINT_NEWER = "this board was stamped by a newer kanban-migrate: upgrade kanban-migrate itself"

#: A WAL larger than the application's journal_size_limit (spec section 2) is "large".
WAL_LARGE_BYTES = JOURNAL_SIZE_LIMIT
#: Uncheckpointed frames older than this are "stale" (the dispatcher checkpoints every 300 s).
WAL_STALE_SECONDS = 3600
#: The frame walk reads every frame in Python; beyond this size only the header is read.
WAL_WALK_LIMIT = 64 * 1024 * 1024


# ================================================================================================
# file
# ================================================================================================
@dataclass
class FileFacts:
    """What the file system and the raw bytes say about a board, before SQLite opens it."""

    shown: str
    path: Path  # resolved
    size: int = 0
    header: bytes = b""
    page_size: int = 0
    wal_mode: bool = False
    wal: Path | None = None
    shm: Path | None = None
    journal: Path | None = None
    has_wal: bool = False
    has_shm: bool = False
    wal_pending: bool | None = None  # committed frames not yet in the main file (None: unknown)
    wal_frames: int = 0
    openable: bool = True  # False: SQLite must not even be tried
    header_checked: bool = False  # header_problems() ran
    size_finding: Finding | None = None  # the size does not agree with the header (see size_problem_persists)
    settled: bool = False  # size and header were read from a private copy that nothing writes
    notes: list[str] = field(default_factory=list)


def parse_header(data: bytes):
    """The 100-byte database header as :class:`salvage.fileformat.DbHeader`."""
    from ..salvage.fileformat import DbHeader

    return DbHeader.parse(data)


def inspect_file(path: str | os.PathLike, *, defer_header: bool = False) -> tuple[FileFacts, list[Finding]]:
    """Stat, header, size, sidecars and backups. Raises FileNotFoundError for a missing path and
    OSError for one that cannot be read.

    With ``defer_header``, the header's sanity checks beyond what opening needs (magic, length,
    journal mode) are left to :func:`header_problems`, which the caller runs later (it imports
    the salvage package's file-format reader: the caller starts SQLite's work first)."""
    shown = str(path)
    raw = Path(path)
    st = raw.stat()  # FileNotFoundError propagates: a usage error, not a finding
    facts = FileFacts(shown, raw.resolve())
    out: list[Finding] = []
    if stat.S_ISDIR(st.st_mode):
        facts.openable = False
        return facts, [Finding("file", "error", "is a directory, not a board file", hint="pass the kanban.db file inside it")]
    if not stat.S_ISREG(st.st_mode):
        facts.openable = False
        return facts, [Finding("file", "error", "is not a regular file", hint="pass the kanban.db file itself")]
    facts.size = st.st_size
    p = facts.path
    facts.wal, facts.shm, facts.journal = sidecar(p, "-wal"), sidecar(p, "-shm"), sidecar(p, "-journal")
    facts.has_wal, facts.has_shm = facts.wal.exists(), facts.shm.exists()
    with open(p, "rb") as fh:  # OSError propagates: the board could not be checked, not a finding
        facts.header = fh.read(100)
    out.extend(check_backups(p))
    if facts.size == 0:
        facts.openable = False
        out.append(Finding("file", "warning", "empty file (0 bytes): a placeholder, not a board yet",
                           hint="run 'kanban-migrate upgrade --create' on it to make a new board at head"))
        return facts, out
    out.extend(check_header(facts, problems=not defer_header))
    if not facts.openable:
        return facts, out
    out.extend(check_wal(facts))
    out.extend(check_journal(facts))
    return facts, out


def check_header(facts: FileFacts, *, problems: bool = True) -> list[Finding]:
    """Magic string, page size, reserved bytes, format numbers, file size against the page count
    (the last four only with ``problems``; else see :func:`header_problems`)."""
    data = facts.header
    if not data.startswith(MAGIC):
        facts.openable = False
        what = "too short to be" if len(data) < len(MAGIC) else "not"
        return [Finding("file", "error", f"{what} a SQLite database (the header is not 'SQLite format 3')",
                        hint="if this was a board, its header was overwritten: " + HINT_RECOVER,
                        examples=[data[:16].hex()])]
    if len(data) < 100:
        facts.openable = False
        return [Finding("file", "error", f"truncated SQLite file ({facts.size} bytes, shorter than its header)",
                        hint=HINT_RECOVER)]
    facts.wal_mode = data[18] == 2 and data[19] == 2  # file format write/read versions: 2 is WAL
    return header_problems(facts) if problems else []


def header_problems(facts: FileFacts) -> list[Finding]:
    """The header's sanity checks (see :meth:`DbHeader.problems`), for a header with the magic."""
    data = facts.header
    facts.header_checked = True
    if len(data) < 100 or not data.startswith(MAGIC):
        return []
    hdr = parse_header(data)
    facts.page_size = hdr.page_size if hdr.page_size_valid else 0
    problems = hdr.problems(facts.size)
    if not problems:
        return []
    size_related = [p for p in problems if "file size" in p or "page count" in p]
    other = [p for p in problems if p not in size_related]

    out = []
    if other:
        out.append(Finding("file", "error", "the database header is not sane: " + "; ".join(other),
                           hint=HINT_RECOVER, count=len(other), examples=other[:5]))
    if size_related:
        facts.size_finding = Finding("file", "error", "the file size does not agree with the header: " +
                                     "; ".join(size_related),
                                     hint="the file was truncated or extended outside SQLite: " + HINT_RECOVER,
                                     examples=size_related[:5])
        out.append(facts.size_finding)
    return out


#: A size that disagrees with the header is read again this often, this far apart, before it is
#: reported: a checkpoint or commit in progress extends the file and rewrites page 1 one after the
#: other, so a writer at work shows the two apart for a moment; damage shows it every time.
SIZE_REREADS, SIZE_REREAD_SECONDS = 3, 0.1


def size_problem_persists(facts: FileFacts) -> bool:
    """Is :attr:`FileFacts.size_finding` what the file shows on every re-read? Call it only with no
    connection open on the board: closing the file it opens drops this process's locks on it."""
    if facts.settled:
        return True
    found = facts.size_finding.examples if facts.size_finding else []
    for _ in range(SIZE_REREADS):
        time.sleep(SIZE_REREAD_SECONDS)
        try:
            size = facts.path.stat().st_size
            with open(facts.path, "rb") as fh:
                data = fh.read(100)
        except OSError:
            return True
        problems = parse_header(data).problems(size) if len(data) == 100 else found
        if [p for p in problems if "file size" in p or "page count" in p][:5] != found:
            return False
    return True


def check_wal(facts: FileFacts) -> list[Finding]:
    """The ``-wal`` file: size, whether its committed frames are checkpointed, age."""
    if not facts.has_wal:
        return []
    from ..salvage.wal import WAL_HEADER_SIZE, WalHeader, wal_summary

    wal = facts.wal
    try:
        st = wal.stat()
    except OSError:
        return []
    size, age = st.st_size, max(0.0, time.time() - st.st_mtime)
    hint = HINT_CHECKPOINT.format(path=facts.shown)
    mb = f"{size / 1048576:.1f} MiB" if size >= 1048576 else f"{size} bytes"
    if size == 0:
        facts.wal_pending = False
        return [Finding("file", "info", "empty -wal file (everything is checkpointed)")]
    if size > WAL_WALK_LIMIT:
        with open(wal, "rb") as fh:
            hdr = WalHeader.parse(fh.read(WAL_HEADER_SIZE))
        frames = (size - WAL_HEADER_SIZE) // (24 + hdr.page_size) if hdr and hdr.valid else 0
        facts.wal_pending = None
        facts.wal_frames = frames
        return [Finding("file", "warning", f"the -wal file is large ({mb}, about {frames} frames)",
                        hint=hint, count=frames)]
    s = wal_summary(wal, facts.path)
    facts.wal_frames = s.committed_frames
    if not s.header_valid:
        facts.wal_pending = False
        return [Finding("file", "warning", "the -wal file is not a valid WAL (SQLite ignores it): " + "; ".join(s.problems),
                        hint="if a writer crashed, its last transactions are lost; remove the -wal file once no process has the board open")]
    pending = s.has_uncheckpointed_commits if s.uncheckpointed_known else s.committed_frames > 0
    facts.wal_pending = pending
    if not pending:
        if size > WAL_LARGE_BYTES:
            return [Finding("file", "warning", f"the -wal file is large ({mb}) though fully checkpointed",
                            hint=hint)]
        return [Finding("file", "info", f"-wal file of {mb}, fully checkpointed")]
    what = f"the -wal file ({mb}) holds {s.committed_frames} committed frames not yet checkpointed"
    if size > WAL_LARGE_BYTES:
        return [Finding("file", "warning", what + " and is large", hint=hint, count=s.committed_frames)]
    if not facts.has_shm:
        return [Finding("file", "warning", what + "; no -shm beside it: left by a writer that stopped without a checkpoint",
                        hint=hint, count=s.committed_frames)]
    if age > WAL_STALE_SECONDS:
        return [Finding("file", "warning", what + f"; unchanged for {age / 3600:.1f} h (stale)",
                        hint=hint, count=s.committed_frames)]
    return [Finding("file", "info", what + " (a writer is active or a checkpoint is due)", count=s.committed_frames)]


def check_journal(facts: FileFacts) -> list[Finding]:
    """The journal mode (header bytes 18/19) and a leftover rollback journal."""
    out = []
    if not facts.wal_mode:
        out.append(Finding("file", "info", "journal mode is a rollback journal (DELETE), not WAL: "
                                           "legitimate on filesystems without WAL support"))
    try:
        jsize = facts.journal.stat().st_size if facts.journal and facts.journal.exists() else 0
    except OSError:
        jsize = 0
    if jsize:
        out.append(Finding("file", "info", f"a rollback journal ({jsize} bytes) lies beside the board: a write "
                                           "in progress, or an interrupted one that SQLite rolls back when the "
                                           "board is next opened for writing"))
    return out


def check_backups(board: Path) -> list[Finding]:
    """Quarantine (``.corrupt.*.bak``) and pre-upgrade backups beside the board."""
    from ..backup import list_backups

    try:
        backups = list_backups(board)
    except OSError:
        return []
    out = []
    for kind, label in (("corrupt", "quarantine"), ("pre-upgrade", "pre-upgrade")):
        mine = [b for b in backups if b.kind == kind]
        if not mine:
            continue
        total = sum(b.size for b in mine)
        msg = f"{len(mine)} {label} backup(s) beside the board ({total / 1048576:.1f} MiB)"
        examples = [b.path.name for b in mine[:5]]
        if kind == "corrupt" and len(mine) > QUARANTINE_KEEP:
            out.append(Finding("file", "warning", msg + f"; more than the {QUARANTINE_KEEP} the application keeps",
                               hint="keep the newest few and delete the rest (see issue #32593)",
                               count=len(mine), examples=examples))
        else:
            out.append(Finding("file", "info", msg, count=len(mine), examples=examples))
    return out


# ================================================================================================
# opening
# ================================================================================================
def connect(uri: str, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection, without a memory map (whatever SQLite's compiled-in default): on
    a damaged file whose cell pointers point at the end of a page, SQLite 3.40 reads past the
    mapped pages and the process dies of SIGSEGV (SQLite Forensic Corpus 14-03, under
    ``integrity_check``); read() into the page cache makes the same file an error. The map saved
    nothing measurable on a 550 MB board."""
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA mmap_size=0")
    return conn


_NOTADB, _CORRUPT = 26, 11


def sqlite_error(check: str, exc: BaseException, doing: str, table: str | None = None) -> Finding:
    """A SQLite error as a finding, with the hint that fits it. An error that says the check
    could not run (locked, the machine refused a read) carries it as ``cause``."""
    from .access import cannot_run

    blocked = cannot_run(exc)
    if blocked is not None:
        return Finding(check, "error", f"{doing}: {blocked.reason}", table=table, hint=blocked.hint, cause=blocked)
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _NOTADB:
        return Finding(check, "error", f"{doing}: not a readable SQLite database ({exc})", table=table,
                       hint=HINT_RECOVER)
    return Finding(check, "error", f"{doing}: {exc}", table=table, hint=HINT_RECOVER)


# ================================================================================================
# integrity
# ================================================================================================
INDEX_ONLY = re.compile(
    r"^(?:row \d+ missing from index|wrong # of entries in index|non-unique entry in index) (\S+)"
)
_TABLE_NAMED = re.compile(r"\b(?:NULL|TEXT|NUMERIC|INTEGER|REAL|BLOB) value in ([^.\s]+)\.\S+|CHECK constraint failed in (\S+)")


def result_lines(rows) -> list[str]:
    """The lines of an integrity/quick check result, in either form: many rows of one line, or
    one row of many lines (newer SQLite). ``ok`` and the ``*** in database main ***`` banners go."""
    lines = []
    for row in rows:
        text = row[0] if isinstance(row, (tuple, list)) else row
        for line in str(text).splitlines():
            line = line.strip()
            if line and line != "ok" and not (line.startswith("***") and line.endswith("***")):
                lines.append(line)
    return lines


def classify(lines: list[str], index_tables: dict[str, str]) -> list[Finding]:
    """Index-only damage (REINDEX is enough) told apart from table damage (recover is needed)."""
    if not lines:
        return []
    damaged_indexes: dict[str, Examples] = {}
    other: list[str] = []
    for line in lines:
        m = INDEX_ONLY.match(line)
        if m:
            damaged_indexes.setdefault(m.group(1), Examples()).add(line)
        else:
            other.append(line)
    if other:
        named = {t for m in map(_TABLE_NAMED.search, other) if m for t in m.groups() if t}
        table = next(iter(named)) if len(named) == 1 else None
        return [Finding("integrity", "error", f"the database is damaged ({len(lines)} problem(s)): {other[0]}",
                        table=table, hint=HINT_RECOVER, count=len(lines), examples=lines[:5])]
    out = []
    for name, ex in damaged_indexes.items():
        out.append(Finding("integrity", "error",
                           f"index {name} disagrees with its table ({ex.count} problem(s)); the table itself is sound",
                           table=index_tables.get(name), hint=f"rebuild the index: sqlite3 BOARD 'REINDEX {name}' "
                           "(with the board's writers stopped); no recover needed",
                           count=ex.count, examples=ex.examples))
    return out


def check_integrity(conn: sqlite3.Connection, *, quick: bool = False) -> list[Finding]:
    pragma = "quick_check" if quick else "integrity_check"
    try:
        lines = result_lines(conn.execute(f"PRAGMA {pragma}"))
    except sqlite3.Error as exc:
        return [sqlite_error("integrity", exc, f"PRAGMA {pragma} failed")]
    if not lines:
        return []
    try:
        index_tables = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'"))
    except sqlite3.Error:
        index_tables = {}
    return classify(lines, index_tables)


def check_foreign_keys(conn: sqlite3.Connection, table: str) -> list[Finding]:
    """``PRAGMA foreign_key_check`` for one table that declares foreign keys (streamed)."""
    ex = Examples()
    parents: set[str] = set()
    try:
        for _tbl, rowid, parent, _fkid in conn.execute(f"PRAGMA foreign_key_check({quote(table)})"):
            ex.add(rowid)
            if len(parents) < 5:
                parents.add(parent)
    except sqlite3.Error as exc:
        from .access import cannot_run

        return [Finding("integrity", "warning", f"foreign keys of {table} cannot be checked: {exc}", table=table,
                        hint="the table refers to a table or key that does not exist", cause=cannot_run(exc))]
    if not ex:
        return []
    return [Finding("integrity", "warning",
                    f"{ex.count} row(s) of {table} refer to missing rows of {', '.join(sorted(parents))}",
                    table=table, hint="restore the missing rows from a backup or delete the dangling ones",
                    count=ex.count, examples=ex.examples)]


# ================================================================================================
# schema
# ================================================================================================
_KIND_TEXT = {
    "missing-table": ("error", "table {t} is missing"),
    "missing-column": ("error", "{t}: {n} head column(s) missing: {names}"),
    "column-differs": ("error", "{t}: {n} column(s) differ from head: {details}"),
    "not-autoincrement": ("error", "{t}: the id column lacks AUTOINCREMENT"),
    "missing-index": ("error", "{t}: {n} head index(es) missing: {names}"),
    "index-differs": ("error", "{t}: {n} index(es) differ from head: {details}"),
    "extra-table": ("info", "table {t} is not part of head (kept as it is)"),
    "extra-column": ("info", "{t}: {n} column(s) head does not know (kept as they are): {names}"),
    "extra-index": ("info", "{t}: {n} index(es) head does not know: {names}"),
}


def check_schema(board: Schema, fp) -> list[Finding]:
    """The board against head, semantically (see :func:`kanban_migrate.schema.compare`)."""
    from ..headfacts import expected
    from ..schema import compare

    if fp.shape == "empty":
        return [Finding("schema", "warning", "the database has no tables: not a board yet",
                        hint="run 'kanban-migrate upgrade --create' on it to make a new board at head")]
    if not fp.is_kanban:
        return [Finding("schema", "error", "not a kanban board: " + "; ".join(fp.evidence),
                        hint="check the path: this SQLite file belongs to something else")]
    groups: dict[tuple[str, str | None], list[Difference]] = {}
    for d in compare(board, expected()):
        if d.kind == "extra-table" and (d.table or "").startswith("_kanban_migrate"):
            continue
        groups.setdefault((d.kind, d.table), []).append(d)
    out = []
    for (kind, table), diffs in groups.items():
        severity, template = _KIND_TEXT.get(kind, ("error", "{t}: {details}"))
        names = [d.name or d.table for d in diffs]
        msg = template.format(t=table, n=len(diffs), names=", ".join(map(str, names)),
                              details="; ".join(d.detail for d in diffs))
        out.append(Finding("schema", severity, msg, table=table,
                           hint=HINT_UPGRADE if severity == "error" else None,
                           count=len(diffs), examples=names[:5]))
    return out


# ================================================================================================
# revision
# ================================================================================================
def read_stamp(conn: sqlite3.Connection, board: Schema) -> tuple[bool, str | None]:
    """(has the version table, the stamp or None)."""
    if VERSION_TABLE not in board.tables:
        return False, None
    rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    return True, (",".join(sorted(str(r[0]) for r in rows)) if rows else None)


def check_revision(has_table: bool, stamp: str | None, fp, *, schema_at_head: bool = False) -> list[Finding]:
    """The stamp against head. A board whose schema is at head is healthy whatever its stamp
    says (the application never stamps; ``upgrade`` stamps without changing anything)."""
    from ..revisions import HEAD, REVISIONS

    if fp is not None and not fp.is_kanban:
        return []
    if stamp == HEAD:
        return []
    if stamp is not None and stamp not in REVISIONS:
        return [Finding("revision", "error", f"unknown revision {excerpt(stamp)}: newer than this release "
                                             f"(head {HEAD}) or not a revision at all",
                        table=VERSION_TABLE, hint=HINT_NEWER)]
    if schema_at_head:
        what = "not yet stamped" if stamp is None else f"stamped {stamp} though the schema is at head"
        return [Finding("revision", "info", f"{what}; `upgrade` stamps it without changing anything",
                        table=VERSION_TABLE)]
    if stamp is None:
        what = "no alembic_version table" if not has_table else "alembic_version is empty"
        return [Finding("revision", "warning", f"a legacy board, never stamped ({what})", table=VERSION_TABLE,
                        hint=HINT_UPGRADE)]
    return [Finding("revision", "warning", f"at revision {stamp}, head is {HEAD}", table=VERSION_TABLE,
                    hint=HINT_UPGRADE)]


def user_tables(board: Schema) -> list[str]:
    return [t for t in board.tables if t not in INTERNAL_TABLES]
