"""``upgrade`` answered with the standard library alone, before click, SQLAlchemy or Alembic load.

An installer runs ``kanban-migrate upgrade --all --quiet`` on every install; when every board is
already at head (or there is none), that must cost tens of milliseconds. This path reads the same
options as the full one and applies the same rules (:mod:`kanban_migrate.cli.rules`) to them, and
prints with the same renderer; whenever it is unsure (an option it does not know, a value that
does not parse, a board that is not at head or cannot be read) it returns None and the full path
answers, so the two can only differ in speed.
"""

from __future__ import annotations


from ..errors import KanbanMigrateError
from . import rules

FLAGS = {"--quiet": "quiet", "-q": "quiet", "--all": "include_all", "--no-backup": "no_backup",
         "--check": "check", "--json": "json", "--nl": "nl"}
VALUED = {"--home": "home", "--busy-timeout": "busy_timeout", "--jobs": "jobs", "-j": "jobs"}


def parse(argv: list[str]) -> dict | None:
    """The options of ``upgrade`` the fast path knows, or None (anything else: the full path)."""
    if not argv or argv[0] != "upgrade":
        return None
    opts: dict = {"dbs": []}
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            opts["dbs"].extend(args)
            break
        name, eq, value = arg.partition("=")
        if arg in FLAGS:
            opts[FLAGS[arg]] = True
        elif name in VALUED:
            value = value if eq else next(args, None)
            if value is None:
                return None
            opts[VALUED[name]] = value
        elif arg.startswith("-") and arg != "-":
            return None
        else:
            opts["dbs"].append(arg)
    return opts


def answer(argv: list[str]) -> int | None:
    """The exit code when every board is at head (or there are none); None: take the full path."""
    opts = parse(argv)
    if opts is None:
        return None
    from .. import board
    from . import render
    from ..upgrading.result import UpgradeResult
    from ..upgrading import HEAD, is_current

    from ..home import pinned_problem

    if not opts["dbs"] and pinned_problem(opts.get("home")):
        return None  # the full path warns about it
    try:
        rules.check_jobs(opts.get("jobs"))
        busy = rules.check_busy_timeout(opts.get("busy_timeout", board.DEFAULT_BUSY_TIMEOUT))
        targets, one = rules.board_targets(opts["dbs"], opts.get("home"), bool(opts.get("include_all")))
    except (ValueError, KanbanMigrateError):
        return None  # the full path words the usage error
    for t in targets:
        try:
            if not is_current(t.path, busy_timeout=busy):
                return None
        except Exception:  # the full path explains what is wrong with the board
            return None
    results = [UpgradeResult(t.path, "current", None, HEAD, HEAD) for t in targets]
    render.print_upgrade(results, one=one, quiet=bool(opts.get("quiet")), as_json=bool(opts.get("json")),
                  nl=bool(opts.get("nl")), home=opts.get("home"))
    return 0
