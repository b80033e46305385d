"""The command line's rules, standard library only (the fast path uses them before click loads).

- **Which boards**: the DB paths named; else the boards of the Hermes home (``--all`` adds archived
  and per-profile boards). ``--home``/``--all`` choose boards only when no DB is named: giving both
  is a usage error, whichever path (fast or full) answers. No boards is not an error: the list is
  empty and the command succeeds (an installer runs ``upgrade --all --quiet`` before any board exists).
- **JSON**: one object when exactly one DB path is named; a list otherwise (home discovery,
  ``--all``, several paths), even of one or no element. ``--nl`` prints the same objects one per
  line. Every path in JSON output is absolute (``os.path.abspath``: symlinks are kept as named).
- **Option values** shared by the fast and the full path: ``--jobs`` at least 1, ``--busy-timeout``
  at least 0, and ``upgrade``'s modes (``--check``, ``--dry-run``, ``--sql``) one at a time.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ..errors import UsageError

#: Keys whose values are file paths, in every JSON object this command line prints.
PATH_KEYS = ("path", "backup", "board", "original", "output", "dump", "workdir", "kept_as", "restored_from")
UPGRADE_MODES = ("--check", "--dry-run", "--sql")


@dataclass(frozen=True)
class Target:
    """One board a command works on: its path as given or found, and the label progress shows."""

    path: str
    label: str  # the board's slug ("default", "work", the profile) or, when named, the path itself


def board_targets(dbs, home=None, include_all: bool = False) -> tuple[list[Target], bool]:
    """``(targets, one)``: the boards a command works on, and whether exactly one DB was named
    (the JSON rule). An empty list is a success for every command: there is nothing to do."""
    dbs = [str(d) for d in dbs or ()]
    if dbs:
        if home is not None or include_all:
            raise UsageError("--home and --all choose boards only when no DB is named",
                             "name DB paths, or use --home/--all without them")
        return [Target(d, d) for d in dbs], len(dbs) == 1
    from ..home import discover

    return [Target(str(b.path), b.name) for b in discover(home, include_all=include_all)], False


def no_boards_line(home=None) -> str:
    from ..home import hermes_root

    return f"no boards under {hermes_root(home)}: nothing to do"


def check_jobs(value) -> int | None:
    if value is None:
        return None
    jobs = int(value)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (got {jobs})", "pass --jobs 1 or more")
    return jobs


def check_busy_timeout(value) -> float:
    seconds = float(value)
    if not seconds >= 0:  # also refuses nan
        raise UsageError(f"--busy-timeout must be 0 or more seconds (got {value})", "pass --busy-timeout SECONDS")
    return seconds


def check_upgrade_modes(**chosen: bool) -> None:
    """``--check``, ``--dry-run`` and ``--sql`` each say what to print instead of upgrading; two at
    once would leave one unanswered."""
    on = [f"--{name.replace('_', '-')}" for name, flag in chosen.items() if flag]
    if len(on) > 1:
        raise UsageError(f"{' and '.join(on)} cannot be combined", "choose one of " + ", ".join(UPGRADE_MODES))


def absolute(obj):
    """``obj`` (a dict, list or value from ``to_dict``) with every path value made absolute."""
    if isinstance(obj, list):
        return [absolute(x) for x in obj]
    if isinstance(obj, dict):
        return {k: (os.path.abspath(v) if k in PATH_KEYS and isinstance(v, str) and v else absolute(v))
                for k, v in obj.items()}
    return obj


def json_text(items: list[dict], *, one: bool, nl: bool = False) -> str:
    """The JSON rule (module docstring): ``items`` printed as one object, a list, or one per line."""
    items = absolute(items)
    if nl:
        return "\n".join(json.dumps(x, ensure_ascii=False) for x in items)
    if one and len(items) == 1:
        return json.dumps(items[0], indent=2, ensure_ascii=False)
    return json.dumps(items, indent=2, ensure_ascii=False)


def status_word(exc: KanbanMigrateError) -> str:
    """The ``status`` of a board a command could not handle, in JSON (as ``upgrade`` reports it)."""
    from ..errors import BoardBusy, EnvironmentFailure, MissingBoard

    for cls, word in ((MissingBoard, "missing"), (BoardBusy, "busy"), (EnvironmentFailure, "environment")):
        if isinstance(exc, cls):
            return word
    return "refused"


def error_dict(path: str, exc: KanbanMigrateError) -> dict:
    return {"path": path, "status": status_word(exc), "code": int(exc.code), "message": exc.message,
            "hint": exc.hint}


def fit_hint(exc: KanbanMigrateError, options: set[str]) -> KanbanMigrateError:
    """Reword a refusal whose hint names an option the running command lacks (the library words
    "no such file" and "empty file" for ``upgrade``, which has ``--create``): a hint never sends
    anyone to an option that is not there. The new wording is chosen by the class and the file."""
    from ..errors import MissingBoard, NotABoard

    if not exc.path or set(re.findall(r"--[a-z][a-z-]*", exc.hint or "")) <= options:
        return exc
    if isinstance(exc, MissingBoard):
        exc.hint = "check the path"
    elif isinstance(exc, NotABoard) and os.path.isfile(exc.path) and os.path.getsize(exc.path) == 0:
        exc.hint = "'kanban-migrate upgrade --create' makes it a new board at head"
    return exc
