"""Options shared by several commands, defined once; their values go through the same rules as
the fast path's (:mod:`kanban_migrate.cli.rules`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..board import DEFAULT_BUSY_TIMEOUT
from . import rules

#: The help text of each shared option, by parameter name (also lent to the verify and recover
#: commands where theirs has none).
HELP = {
    "busy_timeout": "How long to wait for another process's lock before giving up (exit 4).",
    "jobs": "Boards handled in parallel processes (default: the number of cores).",
    "home": "Without DB: the Hermes home to look in (default: $HERMES_KANBAN_HOME, $HERMES_HOME or ~/.hermes).",
    "include_all": "Without DB: also archived and old per-profile boards of the home.",
    "as_json": "Machine-readable: an object when exactly one DB is named, else a list (README, 'JSON').",
    "nl": "Like --json, one object per line (for jq and grep).",
    "quiet": "Print nothing on success; failures still get one line each.",
}

busy_timeout = click.option(
    "--busy-timeout", type=float, default=DEFAULT_BUSY_TIMEOUT, show_default=True, metavar="SECONDS",
    callback=lambda _ctx, _p, value: rules.check_busy_timeout(value), help=HELP["busy_timeout"],
)
jobs = click.option(
    "-j", "--jobs", type=int, default=None, metavar="N",
    callback=lambda _ctx, _p, value: rules.check_jobs(value), help=HELP["jobs"],
)
home = click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR", help=HELP["home"],
)
include_all = click.option("--all", "include_all", is_flag=True, help=HELP["include_all"])
as_json = click.option("--json", "as_json", is_flag=True, help=HELP["as_json"])
nl = click.option("--nl", is_flag=True, help=HELP["nl"])
quiet = click.option("-q", "--quiet", is_flag=True, help=HELP["quiet"])


def lend_help(command: click.Command) -> click.Command:
    """Give options of a command defined elsewhere the shared help text where they have none."""
    for p in command.params:
        if isinstance(p, click.Option) and not p.help and p.name in HELP:
            p.help = HELP[p.name]
    return command


def boards(f):
    """``[DB]...``, ``--all`` and ``--home``: the board-selection rule."""
    f = home(f)
    f = include_all(f)
    return click.argument("dbs", nargs=-1, metavar="[DB]...")(f)


def json_output(f):
    return as_json(nl(f))


def targets(dbs, home_dir, all_boards):
    """``(targets, one)`` by the board-selection rule (:func:`rules.board_targets`), after a
    warning when no DB is named and ``$HERMES_KANBAN_DB`` names a file that is not there."""
    if not dbs:
        warn_pinned(home_dir)
    return rules.board_targets(dbs, home_dir, all_boards)


def warn_pinned(home_dir) -> None:
    from ..home import pinned_problem

    warning = pinned_problem(home_dir)
    if warning:
        click.echo(f"kanban-migrate: warning: {warning}", err=True)


def echo_json(items: list[dict], *, one: bool, nl: bool = False) -> None:
    text = rules.json_text(items, one=one, nl=nl)
    if text:
        click.echo(text)
