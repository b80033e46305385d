"""Plain ``alembic -x db=PATH upgrade head`` with the safety of ``kanban-migrate upgrade``.

The README advertises running the chain with Alembic's own command line. Alembic knows nothing of
kanban boards, so ``env.py`` calls :func:`before` first when Alembic's CLI (not this package) is
driving: the path must exist (a board is made only with ``-x create=1``), an ``upgrade`` runs the
same pre-checks as ``kanban-migrate upgrade`` (file checks, known stamp, a kanban board,
``PRAGMA quick_check``) and takes the same pre-upgrade backup (``-x backup=0`` skips it), and a
``downgrade`` below the base is refused before anything runs. A refusal is one line on stderr,
``kanban-migrate: <path>: <why> (<what to do>)``, and the documented exit code; :func:`run` turns
what a revision raises into the same. Standard library only until the chain runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .errors import ExitCode, KanbanMigrateError, MissingBoard, Refused

log = logging.getLogger("kanban_migrate.alembic")
TRUE = {"1", "true", "yes", "on"}


def driven_by_alembic_cli(cfg) -> bool:
    """True when Alembic's own command line runs ``env.py`` (the library passes a connection or a
    path in ``cfg.attributes``; then it has done its checks already)."""
    return not ({"connection", "db_path"} & set(cfg.attributes))


def _command(cfg) -> str:
    opts = getattr(cfg, "cmd_opts", None)
    cmd = getattr(opts, "cmd", None)
    return cmd[0].__name__ if cmd else "upgrade"


def _refuse(exc: KanbanMigrateError) -> None:
    print(f"kanban-migrate: {exc.line()}", file=sys.stderr)
    raise SystemExit(int(exc.code))


def before(context, path: str) -> None:
    """The checks and the backup that must come before Alembic touches the board at ``path``."""
    x = context.get_x_argument(as_dictionary=True)
    command = _command(context.config)
    try:
        if not Path(path).exists():
            if x.get("create", "").lower() not in TRUE or command != "upgrade":
                raise MissingBoard("no such file", "check the path, or pass -x create=1 to 'alembic upgrade' "
                                   "to make a new board", path=path)
            log.info("creating a new board at %s", path)
            return
        if command == "upgrade":
            _before_upgrade(path, backup=x.get("backup", "1").lower() in TRUE)
        elif command == "downgrade" and context.get_revision_argument() in ("base", None):
            raise Refused("v0 is the base of the chain: going below it would delete the board's tables",
                          "downgrade to v0 at the lowest", path=path)
        else:
            from .upgrading import status

            status(path)  # a board, with a stamp this release knows
    except KanbanMigrateError as exc:
        _refuse(exc)


def _before_upgrade(path: str, *, backup: bool) -> None:
    from . import board
    from .upgrading import upgrade
    from .upgrading.write import take_backup

    predicted = upgrade(path, dry_run=True)  # the pre-checks of 'kanban-migrate upgrade'; writes nothing
    if predicted.status != "pending":
        return
    log.info("%s: detected %s; pending %s", path, predicted.shape, " ".join(predicted.pending))
    if backup:
        made, _new = take_backup(board.check_file(path), board.DEFAULT_BUSY_TIMEOUT, path)
        log.info("backup: %s", made)


def board_path(context) -> str:
    """The board Alembic's command line names: ``-x db=PATH`` (or a ``sqlite:///`` URL in the ini)."""
    path = context.get_x_argument(as_dictionary=True).get("db")
    url = context.config.get_main_option("sqlalchemy.url") or ""
    if not path and url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    if not path:
        print("kanban-migrate: name the board: alembic -x db=PATH upgrade head", file=sys.stderr)
        raise SystemExit(int(ExitCode.USAGE))
    return path


def run(chain, path: str) -> None:
    """``chain()`` (the revisions), with what a revision raises said in one line."""
    from .upgrading.rebuild import UpgradeRefused

    try:
        chain()
    except (UpgradeRefused, NotImplementedError) as exc:
        print(f"kanban-migrate: {path}: {exc} (each revision is atomic: the board is at the last one "
              "that committed; 'kanban-migrate status' says which)", file=sys.stderr)
        raise SystemExit(int(ExitCode.REFUSED)) from None
    except KanbanMigrateError as exc:
        _refuse(exc)
