"""``upgrade``, ``status`` and ``history``: the revision chain, from the command line."""

from __future__ import annotations

import sys

import click

from ..errors import KanbanMigrateError
from . import options, render, rules


@click.command()
@options.boards
@click.option("--create", is_flag=True, help="Make a new board at head where DB is missing or empty.")
@click.option("--dry-run", is_flag=True, help="Show the detected shape and the revisions that would run; write nothing.")
@click.option("--sql", is_flag=True, help="Print the SQL that would run (Alembic offline mode); write nothing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when any board needs work (for installers).")
@options.json_output
@options.quiet
@click.option("--no-backup", is_flag=True, help="Skip the content-addressed pre-upgrade backup.")
@options.jobs
@options.busy_timeout
def upgrade(dbs, include_all, home, create, dry_run, sql, check, as_json, nl, quiet, no_backup, jobs, busy_timeout):
    """Take boards of any historical shape to head.

    With no DB: the boards of the Hermes home ($HERMES_KANBAN_DB, the default board, named boards;
    with --all also archived and per-profile boards); none is not an error. Each revision is
    atomic; a backup is taken first when there is work to do. --check and --dry-run run the same
    pre-checks as an upgrade and say "would refuse" for a board it would refuse.
    """
    rules.check_upgrade_modes(check=check, dry_run=dry_run, sql=sql)
    targets, one = options.targets(dbs, home, include_all)
    mode = "check" if check else "dry-run" if dry_run else "sql" if sql else None
    kw = dict(create=create, dry_run=bool(mode), sql=sql, backup=not no_backup, busy_timeout=busy_timeout)
    results = _run(targets, kw, jobs, show=not (as_json or nl or quiet or sql) and sys.stderr.isatty() and not mode)
    for r in results:
        if r.status == "pending" and mode != "check":  # --dry-run and --sql report; only --check counts it
            r.code = 0
    if sql:
        _print_sql(results)
    else:
        render.print_upgrade(results, one=one, quiet=quiet, as_json=as_json, nl=nl, home=home, mode=mode)
    sys.exit(max((r.code for r in results), default=0))


def _run(targets, kw: dict, jobs, *, show: bool):
    from ..upgrading import pending_after, upgrade_many

    paths = [t.path for t in targets]
    if not show or not targets:
        return upgrade_many(paths, jobs=jobs, **kw)
    from ..progress import progress_bar

    if len(targets) == 1:
        with progress_bar(f"upgrading {targets[0].label}", len(pending_after(None))) as advance:
            return upgrade_many(paths, jobs=1, on_revision=advance, **kw)
    labels = {t.path: t.label for t in targets}
    with progress_bar("upgrading boards", len(targets)) as advance:
        return upgrade_many(paths, jobs=jobs, on_done=lambda r: advance(labels.get(r.path, r.path)), **kw)


def _print_sql(results) -> None:
    for r in results:
        if r.sql is not None:
            click.echo(f"-- {r.path}\n{r.sql}")
        elif r.status == "current":
            click.echo(f"-- {r.path}: at head, nothing to do")
        else:
            click.echo(render.refusal_line(r), err=True)


@click.command()
@options.boards
@options.json_output
@options.busy_timeout
def status(dbs, include_all, home, as_json, nl, busy_timeout):
    """Revision, head, pending revisions and detected shape of boards (read-only).

    With no DB: the boards of the Hermes home; none is not an error.
    """
    from ..upgrading import status as status_of

    targets, one = options.targets(dbs, home, include_all)
    items, worst = [], 0
    for t in targets:
        try:
            s = status_of(t.path, busy_timeout=busy_timeout)
        except KanbanMigrateError as exc:
            rules.fit_hint(exc, {"--busy-timeout"})
            click.echo(f"kanban-migrate: {exc.line()}", err=True)
            items.append(rules.error_dict(t.path, exc))
            worst = max(worst, int(exc.code))
            continue
        items.append(s.to_dict())
        if not (as_json or nl):
            click.echo(render.status_line(s))
    if as_json or nl:
        options.echo_json(items, one=one, nl=nl)
    elif not targets:
        click.echo(rules.no_boards_line(home))
    sys.exit(worst)


@click.command()
def history():
    """The revision chain, oldest first; the head is marked."""
    from alembic.script import ScriptDirectory

    from ..upgrading.chain import make_config

    script = ScriptDirectory.from_config(make_config())
    for rev in reversed(list(script.walk_revisions())):
        click.echo(render.history_line(rev.revision, rev.doc or "", rev.is_head))
