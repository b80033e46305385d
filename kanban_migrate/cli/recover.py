"""``kanban-migrate recover``: parse, call :func:`kanban_migrate.recovering.recover`, render.

The report's words are the library's (:meth:`RecoverReport.lines`, :meth:`RecoverReport.to_dict`);
this module adds the progress bar (standard error, on a terminal only, never with ``--json``) and
the exit code the report carries.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from . import options


@contextmanager
def _progress(show: bool, name: str):
    """A callback ``(done, total, label)`` for :func:`recover`'s ``progress``, drawing a bar with a
    fraction on a terminal (None otherwise). The bar starts at the first call, when the total is
    known; it grows once, when triage asks for a salvage."""
    if not show:
        yield None
        return
    from ..progress import progress_bar

    with ExitStack() as stack:
        advance = None

        def step(done: int, total: int, label: str) -> None:
            nonlocal advance
            if advance is None:
                advance = stack.enter_context(progress_bar(f"recovering {name}", total))
            advance(label, completed=done, total=total)

        yield step


@click.command("recover")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the recovered board here and leave the source files exactly as they are.")
@click.option("--dump", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the salvage as a SQL script (schema and rows) to read or edit.")
@click.option("--include-freelist", is_flag=True,
              help="Also bring back deleted rows, listed as such in the recovered board and in --dump.")
@click.option("--time-limit", type=float, default=600.0, show_default=True, metavar="SECONDS",
              help="Upper bound on the salvage's reading time.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the work goes: a new hidden folder is made inside it, and only that is removed "
                   "(default: beside the board, or beside --output).")
@click.option("--keep-workdir", is_flag=True, help="Keep the forensic copy and its manifest afterwards.")
@click.option("--assume-idle", is_flag=True,
              help="In place: recover even where no probe can prove the board idle (a second hard link, "
                   "another user's board). Only when you know nothing uses it.")
@options.as_json
@options.busy_timeout
def recover_command(db, output, dump, include_freelist, time_limit, workdir, keep_workdir, assume_idle, as_json,
                    busy_timeout):
    """Salvage every surviving row of a malformed board, rebuild it at head, swap it in.

    The original board (and its -wal/-journal) is kept as DB.corrupt.<sha256[:16]>.bak. Exit 0: every
    readable row recovered; 1: rebuilt, but rows were lost; 2: --output/--dump names an existing file;
    3: nothing could be recovered; 4: the board is in use, or cannot be proven idle (use --output);
    5: the machine failed (disk full, file-size limit, read-only folder): nothing was changed.
    """
    from ..errors import KanbanMigrateError
    from ..recovering import recover
    from .rules import error_dict, fit_hint, json_text

    try:
        with _progress(not as_json and sys.stderr.isatty(), Path(db).name) as progress:
            report = recover(db, output=output, dump=dump, include_freelist=include_freelist, time_limit=time_limit,
                             workdir=workdir, keep_workdir=keep_workdir, busy_timeout=busy_timeout,
                             assume_idle=assume_idle, progress=progress)
    except KanbanMigrateError as exc:
        if as_json:  # a board the command could not handle is an object too, besides its line
            fit_hint(exc, {o for p in recover_command.params for o in getattr(p, "opts", [])})
            click.echo(json_text([error_dict(str(db), exc)], one=True))
        raise
    if as_json:
        click.echo(json_text([report.to_dict()], one=True))  # the JSON rule: one DB, one object; paths absolute
    else:
        click.echo("\n".join(report.lines()))
    sys.exit(report.code)


command = options.lend_help(recover_command)

__all__ = ["command", "recover_command"]
