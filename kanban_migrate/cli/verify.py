"""``verify``: the command lives in :mod:`kanban_migrate.verifying.cli`; registered here.

What this module adds is the board-selection rule every command shares: with no DB and no board
in the home, ``verify`` (like ``upgrade --all --quiet`` on a fresh install) succeeds with nothing
to do instead of calling it a usage error. When the command itself selects its boards with
:func:`kanban_migrate.cli.rules.board_targets` this wrapper can go.
"""

from __future__ import annotations

import sys

import click

from ..verifying.cli import verify_command as _command
from . import rules
from .options import lend_help


def _no_boards(params: dict) -> bool:
    if params.get("dbs"):
        return False
    targets, _one = rules.board_targets((), params.get("home"), bool(params.get("include_all")))
    return not targets


def _callback(**params):
    if _no_boards(params):
        if params.get("as_json"):
            click.echo("[]")
        elif not params.get("quiet"):
            click.echo(rules.no_boards_line(params.get("home")))
        sys.exit(0)
    return _command.callback(**params)


command = lend_help(click.Command(_command.name, params=_command.params, callback=_callback, help=_command.help,
                        short_help=_command.short_help, context_settings=_command.context_settings,
                        epilog=_command.epilog))
