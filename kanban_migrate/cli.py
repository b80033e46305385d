"""The ``kanban-migrate`` command: a thin layer over the Python API.

Exit codes (stable, documented in the README): 0 done / nothing to do / healthy; 1 work pending
(``--check``), problems found (verify) or rows lost (recover); 2 usage, including a missing path;
3 input refused and left untouched; 4 board locked or in use by another process; 5 the
environment failed (disk full, file-size limit, permissions); 70 internal error (a bug: please
report it).

``main`` first tries the installer's fast path: ``upgrade`` on boards that are all stamped at
head, with head's tables, columns and indexes really there, is answered with the standard library
alone, before click, SQLAlchemy or Alembic are imported.
"""

from __future__ import annotations

import json
import os
import sys

from .errors import ExitCode, KanbanMigrateError

INTERNAL_ERROR = int(ExitCode.INTERNAL)
_FAST_FLAGS = {"--quiet", "-q", "--all", "--no-backup", "--check", "--json"}
_FAST_VALUED = {"--home", "--busy-timeout", "--jobs", "-j"}


def _fast_upgrade(argv: list[str]) -> int | None:
    """Answer ``upgrade`` when every board is at head; None means "take the full path"."""
    if not argv or argv[0] != "upgrade":
        return None
    opts: dict[str, str | bool] = {}
    paths: list[str] = []
    it = iter(argv[1:])
    for arg in it:
        if arg in _FAST_FLAGS:
            opts[arg] = True
        elif arg in _FAST_VALUED:
            value = next(it, None)
            if value is None:
                return None
            opts[arg] = value
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
    from . import board
    from .results import UpgradeResult, table
    from .upgrading import HEAD, missing_at_head

    try:
        busy = float(opts.get("--busy-timeout", board.DEFAULT_BUSY_TIMEOUT))
    except ValueError:
        return None
    explicit = bool(paths)
    if not paths:
        from .home import discover, pinned_problem

        if pinned_problem(opts.get("--home")):
            return None  # the full path says so

        paths = [str(b.path) for b in discover(opts.get("--home"), include_all=bool(opts.get("--all")))]
        if not paths:
            return None
    results = []
    for p in paths:
        try:
            bf = board.check_file(p)
            conn = board.open_ro(bf, busy_timeout=busy)
            try:
                if board.read_revision(conn) != HEAD or missing_at_head(conn):
                    return None  # not at head, or a stamp the schema does not bear out
            finally:
                conn.close()
        except Exception:
            return None
        results.append(UpgradeResult(p, "current", None, HEAD, HEAD))
    if opts.get("--json"):
        out = [r.to_dict() for r in results]
        many = len(out) > 1 or opts.get("--all") or not explicit  # as the full path prints them
        print(json.dumps(out if many else out[0], indent=2))
    elif not (opts.get("--quiet") or opts.get("-q")):
        print(table(results) if len(results) > 1 or opts.get("--all") or not explicit else results[0].line())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fast = _fast_upgrade(argv)
    if fast is not None:
        return fast
    from .commands import cli

    try:
        return cli.main(args=argv, prog_name="kanban-migrate", standalone_mode=False) or 0
    except KanbanMigrateError as exc:
        print(f"kanban-migrate: {exc.line()}", file=sys.stderr)
        return int(exc.code)
    except SystemExit as exc:  # click's --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("kanban-migrate: interrupted; each revision is atomic, the board is consistent", file=sys.stderr)
        return 130
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Abort):
            print("kanban-migrate: aborted", file=sys.stderr)
            return 1
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if os.environ.get("KANBAN_MIGRATE_DEBUG"):
            raise
        print(f"kanban-migrate: internal error: {exc!r} (set KANBAN_MIGRATE_DEBUG=1 for the traceback, "
              "and please report it)", file=sys.stderr)
        return INTERNAL_ERROR
