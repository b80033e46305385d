"""The boards and backups of a whole Hermes home (spec section 1), at a glance.

    >>> from kanban_migrate.fleet import boards
    >>> boards("/nonexistent")
    []

``boards(home)`` lists everything a home can hold: the pinned file (``$HERMES_KANBAN_DB``, only
without an explicit home), the default board, named boards, archived boards, old per-profile
boards, and the quarantine (``*.corrupt.*.bak``) and pre-upgrade (``*.pre-upgrade.*.bak``) backups
beside them. Each entry carries a *health* word from a quick read-only look: the 100-byte header,
the schema (``sqlite_master`` and the PRAGMAs on it) and the stamp; no ``quick_check`` unless asked
(``check=True``), so a home of hundreds of boards lists in well under a second per hundred boards.

Health words:

=================  ===================================================================
``ok``             a kanban board stamped at head
``needs-upgrade``  a kanban board that is legacy (unstamped) or stamped at an older revision
``newer``          stamped at a revision this release does not know (a newer one wrote it)
``not-a-board``    not SQLite, an empty file, or a SQLite database that is not a kanban board
``damaged``        opening or reading the schema says "malformed" (or, with ``check``,
                   ``PRAGMA quick_check`` is not ok): run ``kanban-migrate recover``
``unreadable``     cannot be read now (permissions, a lock held past the busy timeout, a hot
                   journal a read-only look cannot roll back)
``bad-stamp``      ``alembic_version`` holds something no kanban-migrate wrote (a number,
                   NULL, a blob, junk text, a view): ``upgrade`` refuses it
=================  ===================================================================

A board stamped at a revision its schema does not bear out (a stamp that lies) is
``needs-upgrade``: ``upgrade`` re-applies every revision.

Nothing here writes: boards are opened with :func:`kanban_migrate.board.open_ro`, which creates
no ``-wal``/``-shm``. The click commands ``boards`` and ``backups`` are built on first access
(``kanban_migrate.fleet.boards_command``), so importing this module does not import click.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import board as _board
from .errors import BoardBusy, CorruptBoard, EnvironmentFailure, KanbanMigrateError, MissingBoard
from .home import BoardRef, discover, hermes_root, pinned_problem, stray_backups
from .upgrading import HEAD, REVISIONS, mismatch_note, missing_at

HEALTH_WORDS = ("ok", "needs-upgrade", "newer", "not-a-board", "damaged", "unreadable", "bad-stamp")
BACKUP_STATES = {"pre-upgrade": "pre-upgrade", "corrupt": "quarantine"}
LIST_BUSY_TIMEOUT = 5.0  # seconds: a listing waits a little for a lock, not the application's 120 s


@dataclass
class BoardInfo:
    """One file of a home, as ``boards`` reports it."""

    kind: str  # pinned | default | named | archived | profile | backup
    name: str  # slug, archived folder, profile, "default"/"pinned"; for a backup: its board's name
    path: str
    size: int
    shape: str | None  # the fingerprint ("v2b +legacy-counters"), None when unreadable
    revision: str | None  # alembic_version, None for a legacy board
    health: str  # one of HEALTH_WORDS
    detail: str | None = None  # why, when health is not ok (one line)
    board: str | None = None  # for a backup: the board file it belongs to
    state: str | None = None  # for a backup: pre-upgrade | quarantine

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BackupInfo:
    """One backup file, as ``backups`` reports it."""

    kind: str  # the kind of the board it belongs to (default, named, ..., or "stray")
    name: str
    board: str
    state: str  # pre-upgrade | quarantine
    path: str
    size: int
    mtime: float
    digest: str
    pruned: bool = False

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.mtime)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["age_seconds"] = round(self.age_seconds, 1)
        d["age"] = human_age(self.age_seconds)
        return d


# ---- the quick look at one file ---------------------------------------------------------------
def _health_of_error(exc: KanbanMigrateError) -> str:
    if isinstance(exc, _board.BadStamp):
        return "bad-stamp"
    if isinstance(exc, (BoardBusy, EnvironmentFailure)) or "hot journal" in exc.message:
        return "unreadable"
    if isinstance(exc, CorruptBoard):
        return "damaged"
    low = exc.message.lower()
    if "not a readable sqlite database" in low:  # the header says SQLite but SQLite refuses it
        return "damaged"
    if "cannot read" in low or "cannot open" in low:
        return "unreadable"
    return "not-a-board"


def inspect_file(path: str | os.PathLike, *, check: bool = False,
            busy_timeout: float = LIST_BUSY_TIMEOUT) -> tuple[int, str | None, str | None, str, str | None]:
    """``(size, shape, revision, health, detail)`` of one file, read-only.

    Reads the header, the schema and the stamp; with ``check`` also runs ``PRAGMA quick_check``.
    Never raises for a bad file: what is wrong is the health word and the detail.
    """
    shown = str(path)
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    try:
        bf = _board.check_file(path)
    except MissingBoard as exc:  # vanished between the listing and the look
        return size, None, None, "unreadable", exc.message
    except KanbanMigrateError as exc:
        return size, None, None, _health_of_error(exc), exc.line().removeprefix(f"{shown}: ")
    revision = shape = None
    fp = None
    try:
        conn = _board.open_ro(bf, busy_timeout=busy_timeout)
        try:
            from .fingerprint import fingerprint
            from .schema import snapshot

            snap = snapshot(conn)
            fp = fingerprint(snap)
            shape = str(fp)
            try:
                revision = _board.read_revision(conn)
            except _board.BadStamp:
                if fp.is_kanban:
                    raise
            quick = None
            if check and fp.is_kanban:
                try:
                    rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
                except sqlite3.DatabaseError as exc:
                    rows = [str(exc)]
                if rows != ["ok"]:
                    quick = rows[0].splitlines()[0] if rows else "no result"
        finally:
            conn.close()
    except sqlite3.Error as exc:
        err = _board.translate(exc, shown)
        return size, shape, revision, _health_of_error(err), err.line().removeprefix(f"{shown}: ")
    except KanbanMigrateError as exc:
        return size, shape, revision, _health_of_error(exc), exc.line()
    if not fp.is_kanban:
        why = "an empty database with no tables" if fp.shape == "empty" else \
            f"not a kanban board ({'; '.join(fp.evidence)})"
        return size, shape, revision, "not-a-board", why
    if quick is not None:
        return size, shape, revision, "damaged", \
            f"fails PRAGMA quick_check ({quick}) (run 'kanban-migrate recover' on it)"
    if revision is not None and revision not in REVISIONS:
        return size, shape, revision, "newer", \
            f"stamped at {revision!r}, unknown to this release (pip install -U kanban-migrate)"
    missing = missing_at(snap, revision) if revision is not None else []
    if missing:
        return size, shape, revision, "needs-upgrade", mismatch_note(revision, missing)
    if revision == HEAD:
        return size, shape, revision, "ok", None
    pending = REVISIONS[REVISIONS.index(revision) + 1:] if revision else REVISIONS
    return size, shape, revision, "needs-upgrade", f"pending {' '.join(pending)}"


# ---- boards -------------------------------------------------------------------------------------
def _backup_state(path: Path) -> tuple[Path, str, str] | None:
    """``(board, state, digest)`` for a ``<board>.<kind>.<sha16>.bak`` name, else None."""
    name = path.name
    if not name.endswith(".bak"):
        return None
    for kind, state in BACKUP_STATES.items():
        marker = f".{kind}."
        at = name.rfind(marker)
        if at > 0:
            digest = name[at + len(marker): -len(".bak")]
            return path.with_name(name[:at]), state, digest
    return None


def _owner_name(board: Path, root: Path) -> str:
    """The board name a stray backup belongs to, from where it lies in the home."""
    parent = board.parent
    if parent == root:
        return "default"
    return parent.name


def _home_backups(refs: list[BoardRef], home) -> list[Path]:
    """Backups beside every board of the home and anywhere else the home keeps boards; each once."""
    from .backup import list_backups

    found: list[Path] = []
    for ref in refs:
        found.extend(sorted(b.path for b in list_backups(ref.path)))
    found.extend(stray_backups(home))
    out, seen = [], set()
    for p in found:
        key = os.path.realpath(p)
        if key not in seen and p.is_file():
            seen.add(key)
            out.append(p)
    return out


def boards(home: str | os.PathLike | None = None, *, check: bool = False,
           busy_timeout: float = LIST_BUSY_TIMEOUT) -> list[BoardInfo]:
    """Every board and backup file of a Hermes home with its health (see the module docstring).

    Boards come first, in the order the application finds them (pinned, default, named, archived,
    per-profile), then the backups. ``check`` adds ``PRAGMA quick_check`` per board (slow on big
    boards); without it a board whose damage lies only in table pages reads as healthy.
    """
    refs = discover(home, include_all=True)
    root = hermes_root(home)
    by_path = {os.path.realpath(r.path): r for r in refs}
    out: list[BoardInfo] = []
    for ref in refs:
        size, shape, revision, health, detail = inspect_file(ref.path, check=check, busy_timeout=busy_timeout)
        out.append(BoardInfo(ref.kind, ref.name, str(ref.path), size, shape, revision, health, detail))
    for path in _home_backups(refs, home):
        owner, state, _digest = _backup_state(path) or (path, "unknown", "")
        ref = by_path.get(os.path.realpath(owner))
        name = ref.name if ref else _owner_name(owner, root)
        size, shape, revision, health, detail = inspect_file(path, check=check, busy_timeout=busy_timeout)
        out.append(BoardInfo("backup", name, str(path), size, shape, revision, health, detail,
                             board=str(owner), state=state))
    return out


# ---- backups ------------------------------------------------------------------------------------
def backups_of(board: str | os.PathLike, *, kind: str | None = None, name: str | None = None) -> list[BackupInfo]:
    """The backups of one board, newest first."""
    from .backup import list_backups

    board = Path(board)
    return [BackupInfo(kind or "board", name or board.parent.name, str(board),
                       BACKUP_STATES[b.kind] + ("" if b.path.name.endswith(".bak") else " leftover"), str(b.path),
                       b.size, b.mtime, b.digest) for b in list_backups(board, leftovers=True)]


def home_backups(home: str | os.PathLike | None = None) -> list[BackupInfo]:
    """Every backup of every board of a home (archived and per-profile boards too), and the
    stray ones whose board is gone (kind ``stray``); grouped by board, newest first."""
    refs = discover(home, include_all=True)
    root = hermes_root(home)
    out: list[BackupInfo] = []
    seen_boards: set[str] = set()
    for ref in refs:
        seen_boards.add(os.path.realpath(ref.path))
        out.extend(backups_of(ref.path, kind=ref.kind, name=ref.name))
    for path in stray_backups(home):
        parsed = _backup_state(path)
        if parsed is None:
            continue
        owner = parsed[0]
        key = os.path.realpath(owner)
        if key in seen_boards:
            continue
        seen_boards.add(key)
        out.extend(backups_of(owner, kind="stray", name=_owner_name(owner, root)))
    return out


def prune_backups(items: list[BackupInfo], keep: int) -> list[Path]:
    """Keep the ``keep`` newest backups per board and state; marks the others ``pruned`` and
    deletes them (a quarantine backup's ``-wal``/``-shm`` go with it). Returns the deleted paths."""
    from .backup import prune

    removed: list[Path] = []
    for board in dict.fromkeys(b.board for b in items):
        removed.extend(prune(Path(board), keep=keep))
    gone = {str(p) for p in removed}
    for b in items:
        b.pruned = b.path in gone
    return removed


# ---- text forms ---------------------------------------------------------------------------------
def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def human_age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def plain_table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned plain text (the last column is not padded)."""
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths)), r[-1]]).rstrip() for r in all_rows
    )


def render(title: str, header: list[str], rows: list[list[str]], *, tty: bool | None = None, file=None) -> None:
    """A rich table on a terminal, plain aligned text when piped."""
    file = file or sys.stdout
    if tty is None:
        tty = file.isatty()
    if not tty:
        print(plain_table(header, rows), file=file)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for h in header:
        if h == "path":
            table.add_column(h, overflow="fold", min_width=12)
        elif h in ("size", "health", "age", "revision"):
            table.add_column(h, no_wrap=True)
        else:
            table.add_column(h, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(file=file, force_terminal=tty).print(table)


HEALTH_STYLE = {"ok": "green", "needs-upgrade": "yellow", "newer": "magenta", "not-a-board": "dim",
                "damaged": "bold red", "unreadable": "red"}


def _shown(path: str, root: Path | None) -> str:
    """``path`` relative to the home root when it lies under it (for the terminal table)."""
    if root is None:
        return path
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def board_rows(items: list[BoardInfo], *, styled: bool = False, root: Path | None = None) -> list[list[str]]:
    """Table rows (kind, name, shape, revision, size, health, path); ``styled``: rich markup,
    paths relative to ``root``."""
    rows = []
    for b in items:
        if styled:
            from rich.markup import escape

            health = f"[{HEALTH_STYLE.get(b.health, '')}]{escape(b.health)}[/]"
            rows.append([escape(b.kind), escape(b.name), escape(b.shape or "-"), escape(b.revision or "-"),
                         human_size(b.size), health, escape(_shown(b.path, root))])
        else:
            rows.append([b.kind, b.name, b.shape or "-", b.revision or "-", human_size(b.size), b.health, b.path])
    return rows


def backup_rows(items: list[BackupInfo], *, root: Path | None = None) -> list[list[str]]:
    """Table rows (board kind, board, state, size, age, kept/pruned, path)."""
    return [[b.kind, b.name, b.state, human_size(b.size), human_age(b.age_seconds),
             "pruned" if b.pruned else "kept", _shown(b.path, root)] for b in items]


# ---- the commands (built on first access: importing this module does not import click) -------
_COMMANDS: dict = {}


def _build_commands() -> dict:
    if _COMMANDS:
        return _COMMANDS
    import json

    import click

    home_option = click.option(
        "--home", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="The Hermes home (default: $HERMES_KANBAN_HOME, $HERMES_HOME or ~/.hermes).",
    )

    @click.command("boards")
    @home_option
    @click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per file.")
    @click.option("--check", is_flag=True, help="Also run PRAGMA quick_check on each board (slower).")
    def boards_command(home, as_json, check):
        """Every board of the Hermes home, with its shape, revision and health.

        Lists the pinned file ($HERMES_KANBAN_DB, without --home), the default, named, archived
        and per-profile boards, and the quarantine and pre-upgrade backups beside them. Health:
        ok, needs-upgrade, newer, not-a-board, damaged (run 'kanban-migrate recover'),
        unreadable, bad-stamp (alembic_version holds junk). Read-only; always exits 0.
        """
        warning = pinned_problem(home)
        if warning:
            click.echo(f"kanban-migrate: warning: {warning}", err=True)
        items = boards(home, check=check)
        if as_json:
            click.echo(json.dumps([b.to_dict() for b in items], indent=2, ensure_ascii=False))
            return
        if not items:
            click.echo(f"no boards under {hermes_root(home)}", err=True)
            return
        tty = sys.stdout.isatty()
        header = ["kind", "name", "shape", "revision", "size", "health", "path"]
        root = hermes_root(home)
        render(f"boards of {root}", header, board_rows(items, styled=tty, root=root), tty=tty)
        counts: dict[str, int] = {}
        for b in items:
            if b.kind != "backup":
                counts[b.health] = counts.get(b.health, 0) + 1
        nb = sum(counts.values())
        click.echo(f"{nb} board(s): " + ", ".join(f"{n} {h}" for h, n in sorted(counts.items()))
                   + f"; {len(items) - nb} backup(s)")

    @click.command("backups")
    @click.argument("db", required=False, metavar="[DB]")
    @home_option
    @click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per backup.")
    @click.option("--prune", "keep", type=click.IntRange(0), default=None, metavar="N",
                  help="Delete all but the newest N backups per board and kind (pre-upgrade, quarantine).")
    def backups_command(db, home, as_json, keep):
        """Pre-upgrade and quarantine backups of DB, or of every board of the home.

        With no DB: every board of the Hermes home, archived and per-profile boards included, and
        backups whose board is gone. The boards themselves are never touched.
        """
        if db is not None:
            if not os.path.lexists(db):
                raise MissingBoard("no such file", "check the path; without DB, 'backups' lists every "
                                   "board's backups", path=db)
            try:
                _board.check_file(db, allow_empty=True)
            except NotABoard as exc:
                if "director" in exc.message or "regular file" in exc.message:
                    raise
                # a damaged board still has backups worth listing
            items = backups_of(db, kind="board", name=Path(db).parent.name)
        else:
            warning = pinned_problem(home)
            if warning:
                click.echo(f"kanban-migrate: warning: {warning}", err=True)
            items = home_backups(home)
        if keep is not None:
            prune_backups(items, keep)
        if as_json:
            click.echo(json.dumps([b.to_dict() for b in items], indent=2, ensure_ascii=False))
            return
        if not items:
            click.echo("no backups" + (f" of {db}" if db else f" under {hermes_root(home)}"), err=True)
            return
        tty = sys.stdout.isatty()
        root = None if db is not None or not tty else hermes_root(home)
        rows = backup_rows(items, root=root)
        if tty:
            from rich.markup import escape

            rows = [[escape(c) for c in r] for r in rows]
        title = f"backups of {db}" if db is not None else f"backups of the boards of {hermes_root(home)}"
        render(title, ["board kind", "board", "state", "size", "age", "", "path"], rows, tty=tty)
        kept = [b for b in items if not b.pruned]
        line = f"{len(kept)} backup(s), {human_size(sum(b.size for b in kept))}"
        if keep is not None:
            line += f"; pruned {len(items) - len(kept)} (kept the newest {keep} per board and kind)"
        click.echo(line)

    _COMMANDS.update(boards_command=boards_command, backups_command=backups_command)
    return _COMMANDS


def __getattr__(name: str):
    if name in ("boards_command", "backups_command"):
        return _build_commands()[name]
    raise AttributeError(f"module 'kanban_migrate.fleet' has no attribute {name!r}")
