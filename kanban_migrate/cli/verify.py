"""``verify``: is a board healthy (file, integrity, schema, revision, data), from the command line.

Every board named (or found in the Hermes home) is tried, a missing one included, and the exit
code is the worst (README, "Exit codes"): 0 healthy; 1 errors or warnings found; 2 usage, or a
path that does not exist; 4 a board could not be checked because it is locked or kept changing; 5
the machine refused a read; 70 a bug. A board that could not be checked gets one line on standard
error and, in JSON, a report with ``"ok": null`` and ``"not_checked"``. No boards is success.
"""

from __future__ import annotations

import sys

import click

from ..errors import UsageError
from . import options, render, rules


@click.command("verify")
@options.boards
@click.option("--quick", is_flag=True,
              help="PRAGMA quick_check and the data checks that indexes and small tables answer (large boards, cron).")
@click.option("--full", is_flag=True, help="The default, said explicitly: PRAGMA integrity_check and every data check.")
@options.json_output
@options.quiet
@options.jobs
@options.busy_timeout
def command(dbs, include_all, home, quick, full, as_json, nl, quiet, jobs, busy_timeout):
    """Inspect boards without changing them and report findings.

    Checks: file (header, size, WAL, backups), integrity (integrity_check, or quick_check with
    --quick; foreign keys), schema (against head), revision (alembic_version) and data (the
    kanban invariants). With no DB: the boards of the Hermes home; none is not an error.
    With --quiet only boards with problems are named, one line each.

    Every board is tried and the worst exit code wins. Exit 0: healthy; 1: errors or warnings;
    2: usage or a missing path; 4: locked, not checked; 5: the machine refused a read, not
    checked; 70: a bug.
    """
    if quick and full:
        raise UsageError("--quick and --full cannot be combined", "--full is the default; pass one of them")
    targets, one = options.targets(dbs, home, include_all)
    reports = _verify(targets, quick=quick, busy_timeout=busy_timeout, jobs=jobs,
                      show=not (as_json or nl or quiet) and len(targets) > 1 and sys.stderr.isatty())
    for r in reports:
        if r.not_checked is not None:
            click.echo(f"kanban-migrate: {r.path}: {r.not_checked.line()}", err=True)
    if as_json or nl:
        options.echo_json([r.to_dict() for r in reports], one=one, nl=nl)
    elif quiet:
        for r in reports:
            if r.ok is False:
                click.echo(render.verify_summary(r))
    elif not targets:
        click.echo(rules.no_boards_line(home))
    else:
        render.print_verify([r for r in reports if r.not_checked is None])
    sys.exit(max((r.exit_code for r in reports), default=0))


def _verify(targets: list[rules.Target], *, show: bool, **kw):
    from ..verifying import verify_many

    paths = [t.path for t in targets]
    if not show:
        return verify_many(paths, **kw)
    from ..progress import progress_bar

    labels = {t.path: t.label for t in targets}
    with progress_bar("verifying boards", len(targets)) as advance:
        return verify_many(paths, on_done=lambda r: advance(labels.get(r.path, r.path)), **kw)
