"""``boards``, ``backups`` and ``restore``: what a home holds, what was kept, and putting it back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from ..errors import MissingBoard, NotABoard, Unreadable
from ..units import human_size
from . import options, render


@click.command("boards")
@options.home
@options.json_output
@click.option("--check", is_flag=True, help="Also run PRAGMA quick_check on each board (slower); "
              "without it a board at head reads 'unchecked'.")
def boards_command(home, as_json, nl, check):
    """Every board of the Hermes home, with its shape, revision and health.

    Lists the pinned file ($HERMES_KANBAN_DB, without --home), the default, named, archived
    and per-profile boards, and the quarantine, pre-upgrade and pre-restore backups beside them.
    Health: ok (with --check), unchecked, needs-upgrade, newer, not-a-board, damaged (run
    'kanban-migrate recover'), unreadable, quarantined. Read-only; always exits 0. JSON: always
    a list (one object per file).
    """
    from ..fleet import boards
    from ..home import hermes_root

    options.warn_pinned(home)
    items = boards(home, check=check)
    if as_json or nl:
        options.echo_json([b.to_dict() for b in items], one=False, nl=nl)
        return
    if not items:
        click.echo(f"no boards under {hermes_root(home)}")
        return
    render.print_table(f"boards of {hermes_root(home)}", render.BOARD_HEADER, render.board_rows(items),
                       styles=render.board_styles())
    counts: dict[str, int] = {}
    for b in items:
        if b.kind != "backup":
            counts[b.health] = counts.get(b.health, 0) + 1
    nb = sum(counts.values())
    health = ", ".join(f"{n} {h}" for h, n in sorted(counts.items()))
    line = (f"{nb} board(s): {health}" if nb else "no boards") + f"; {len(items) - nb} backup(s)"
    if counts.get("unchecked"):
        line += "; --check runs PRAGMA quick_check on each"
    click.echo(line)


def _board_of(db: str) -> None:
    """A board named to ``backups``/``restore`` may be damaged, empty or gone (its backups are what
    matter then); it must not be a folder or a special file."""
    try:
        st = os.stat(db)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror}", "check the path and its permissions", path=db) from None
    if stat.S_ISDIR(st.st_mode):
        raise NotABoard("is a directory, not a board file", "pass the kanban.db file inside it", path=db)
    if not stat.S_ISREG(st.st_mode):
        raise NotABoard("is not a regular file", "pass the kanban.db file itself", path=db)


@click.command("backups")
@click.argument("db", required=False, metavar="[DB]")
@options.home
@options.json_output
@click.option("--prune", "keep", type=click.IntRange(0), default=None, metavar="N",
              help="Delete all but the newest N backups per board and kind (pre-upgrade, quarantine, pre-restore).")
@click.option("--dry-run", is_flag=True, help="With --prune: show what would be deleted; delete nothing.")
@click.option("--force", is_flag=True, help="With --prune: also delete a board's last quarantine copy "
              "(the original 'recover' kept), which is otherwise always spared.")
def backups_command(db, home, as_json, nl, keep, dry_run, force):
    """Pre-upgrade, quarantine and pre-restore backups of DB, or of every board of the home.

    With no DB: every board of the Hermes home, archived and per-profile boards included, and
    backups whose board is gone. Any of them can be put back with 'kanban-migrate restore DB
    BACKUP'. The boards themselves are never touched. JSON: always a list (one object per backup).
    """
    from ..fleet import backups_of, home_backups
    from ..home import hermes_root
    from ..restore import delete, plan_prune

    if db is not None:
        if home is not None:
            raise click.UsageError("--home chooses boards only when no DB is named")
        if not os.path.lexists(db):
            raise MissingBoard("no such file", "check the path; without DB, 'backups' lists every "
                               "board's backups", path=db)
        _board_of(db)
        items = backups_of(db, kind="board", name=Path(db).parent.name)
    else:
        items = home_backups(home)
    if (dry_run or force) and keep is None:
        raise click.UsageError("--dry-run and --force go with --prune N")
    doomed = plan_prune(items, keep, force=force) if keep is not None else []
    if doomed and not dry_run:
        delete(doomed)
    gone = {b.path for b in doomed}
    for b in items:
        b.pruned = b.path in gone
    if as_json or nl:
        rows = [dict(b.to_dict(), dry_run=dry_run) if keep is not None else b.to_dict() for b in items]
        options.echo_json(rows, one=False, nl=nl)
        return
    if not items:
        click.echo("no backups" + (f" of {db}" if db else f" under {hermes_root(home)}"))
        return
    title = f"backups of {db}" if db is not None else f"backups of the boards of {hermes_root(home)}"
    render.print_table(title, render.BACKUP_HEADER, render.backup_rows(items, dry_run=dry_run))
    kept = [b for b in items if not b.pruned]
    line = f"{len(kept)} backup(s), {human_size(sum(b.size for b in kept))}"
    if keep is not None:
        verb = "would prune" if dry_run else "pruned"
        line += f"; {verb} {len(doomed)} (kept the newest {keep} per board and kind"
        spared = keep == 0 and not force and any(b.state == "quarantine" for b in kept)
        line += ", and each board's last quarantine copy: --force deletes it too)" if spared else ")"
    click.echo(line)
    if db is not None and kept:
        click.echo(f"put one back with: kanban-migrate restore {db} BACKUP")


@click.command("restore")
@click.argument("db", metavar="DB")
@click.argument("backup", required=False, metavar="[BACKUP]")
@click.option("--dry-run", is_flag=True, help="Say what would be put back and where the board would be kept; change nothing.")
@options.json_output
def restore_command(db, backup, dry_run, as_json, nl):
    """Put DB back as BACKUP kept it (default: its newest backup), byte for byte.

    BACKUP is a path or digest from 'kanban-migrate backups DB': a pre-upgrade backup, the
    original 'recover' kept (with its -wal/-shm), or a pre-restore copy. Refused while any process
    has the board open or locked (exit 4). The board that was there is kept as
    DB.pre-restore.<sha256[:16]>.bak, so 'kanban-migrate restore DB' again undoes the restore.
    """
    from ..restore import restore

    _board_of(db)
    result = restore(db, backup, dry_run=dry_run)
    if as_json or nl:
        options.echo_json([result.to_dict()], one=True, nl=nl)
        return
    with_sidecars = f" (with its {' and '.join(result.sidecars)})" if result.sidecars else ""
    verb = "would restore" if dry_run else "restored"
    click.echo(f"{db}: {verb} {result.restored_from}{with_sidecars}")
    if result.kept_as:
        click.echo(f"  the board that was there {'would be' if dry_run else 'is'} kept as {result.kept_as}")
        if not dry_run:
            click.echo(f"  undo: kanban-migrate restore {db} {result.kept_as}")
