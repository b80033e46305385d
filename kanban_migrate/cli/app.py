"""The ``kanban-migrate`` click group: every command is registered here, and only here."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import ExitCode, KanbanMigrateError
from . import rules

#: What each exit code means, as the top-level help says it (the README's table says it at length).
EXIT_CODES = {
    ExitCode.OK: "done, nothing to do (no boards included) or healthy",
    ExitCode.PENDING: "work pending (upgrade --check), problems found (verify), rows lost (recover)",
    ExitCode.USAGE: "usage error, including a path that does not exist",
    ExitCode.REFUSED: "input refused and left untouched (not a board, damaged, newer)",
    ExitCode.BUSY: "the board is locked or in use by another process",
    ExitCode.ENVIRONMENT: "the environment failed (disk full, file-size limit, read-only, "
                          "permissions): nothing was changed; fix it and rerun",
    ExitCode.INTERNAL: "internal error, a bug: please report it (KANBAN_MIGRATE_DEBUG=1 shows the traceback)",
}


class Group(click.Group):
    """Refusals raised by a command get a hint that names only options that command has."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KanbanMigrateError as exc:
            cmd = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            names = {o for p in (cmd.params if cmd else []) for o in getattr(p, "opts", [])}
            raise rules.fit_hint(exc, names)


def _help() -> str:
    codes = "\n".join(f"  {int(code):>3}  {text}" for code, text in EXIT_CODES.items())
    return ("Upgrade, check, repair and restore Hermes kanban boards (kanban.db).\n\n"
            "With no DB, commands work on the boards of the Hermes home; none is not an error.\n\n"
            f"\b\nExit codes:\n{codes}")


@click.group(cls=Group, help=_help(), context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kanban-migrate")
def cli() -> None:
    pass


def _register() -> None:
    from . import boards, fixtures, recover, upgrade, verify

    for command in (upgrade.upgrade, upgrade.status, verify.command, recover.command, boards.boards_command,
                    boards.backups_command, boards.restore_command, upgrade.history, fixtures.fixtures,
                    fixtures.demo):
        cli.add_command(command)


_register()
