"""The ``kanban-migrate`` command line: it parses, calls the library and renders; nothing else.

``main`` answers ``upgrade`` from the standard-library fast path when every board is at head
(:mod:`.fastpath`), and otherwise runs the click commands (:mod:`.app`). Whatever a command raises
becomes one line on standard error and an exit code, decided here by the exception's class, never
by its text:

====================================  ====  ==============================================
:class:`~kanban_migrate.errors.KanbanMigrateError`  its ``code``  (2 usage, 3 refused, 4 busy, 5 environment)
``click.UsageError`` and friends        2     a mistake on the command line
``OSError`` of the environment          5     disk full, file-size limit, read-only, permissions
``KeyboardInterrupt``                   130   interrupted
anything else                           70    a bug (``KANBAN_MIGRATE_DEBUG=1`` adds the traceback)
====================================  ====  ==============================================

The library never imports click; this package is the only place that does.
"""

from __future__ import annotations

import errno
import os
import sys

from ..errors import ExitCode, KanbanMigrateError

#: errno values that mean the machine, not the board or the command, stopped the run (exit 5).
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv) or ["--help"]  # no command: say what there is
    from .fastpath import answer

    try:
        fast = answer(argv)
    except BaseException as exc:  # the fast path prints with the same rules; a failure is mapped alike
        return exit_code_for(exc)
    if fast is not None:
        return fast
    try:
        from .app import cli

        return cli.main(args=argv, prog_name="kanban-migrate", standalone_mode=False) or 0
    except BaseException as exc:
        return exit_code_for(exc)


def _say(line: str) -> None:
    print(f"kanban-migrate: {line}", file=sys.stderr)


def exit_code_for(exc: BaseException) -> int:
    """Print the one line ``exc`` deserves and return its exit code (module docstring)."""
    if isinstance(exc, SystemExit):  # sys.exit(code) from a command, or --help/--version
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else int(ExitCode.INTERNAL))
    if isinstance(exc, KanbanMigrateError):
        _say(exc.line())
        return int(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        _say("interrupted; every write is transactional, the board is consistent")
        return 130
    if "click" in sys.modules:
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            _say("aborted")
            return 130
        if isinstance(exc, click.UsageError):
            where = exc.ctx.command_path if exc.ctx is not None else "kanban-migrate"
            _say(f"{exc.format_message()} (see '{where} --help')")
            return int(ExitCode.USAGE)
        if isinstance(exc, click.ClickException):
            _say(exc.format_message())
            return exc.exit_code
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"{where}{exc.strerror} (fix the environment, e.g. free space or permissions, and rerun)")
        return int(ExitCode.ENVIRONMENT)
    if not isinstance(exc, Exception):
        raise exc
    _say(f"internal error: {exc!r} (set KANBAN_MIGRATE_DEBUG=1 for the traceback, and please report it)")
    if os.environ.get("KANBAN_MIGRATE_DEBUG"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return int(ExitCode.INTERNAL)
