"""Exit codes and the refusals that map onto them.

Every refusal carries one line saying why and one hint saying what to do next. The CLI prints
them as ``kanban-migrate: <path>: <why> (<hint>)`` and exits with the code; nothing here
imports more than the standard library, so the fast paths stay fast.
"""

from __future__ import annotations

import enum
import errno


class ExitCode(enum.IntEnum):
    """Stable, documented exit codes (README, "Exit codes")."""

    OK = 0  #: done, or nothing to do / healthy
    PENDING = 1  #: work pending (``--check``), problems found (verify), rows lost (recover)
    USAGE = 2  #: bad usage, including a path that does not exist
    REFUSED = 3  #: the input was refused and left untouched (not a board, corrupt, newer, ...)
    BUSY = 4  #: the board is locked or in use by another process
    ENVIRONMENT = 5  #: the environment failed (disk full, file-size limit, read-only folder, permissions): nothing was changed; fix it and rerun
    INTERNAL = 70  #: a bug in kanban-migrate (EX_SOFTWARE); please report it


class KanbanMigrateError(Exception):
    """A refusal: the board was left exactly as it was."""

    code: ExitCode = ExitCode.REFUSED

    def __init__(self, message: str, hint: str | None = None, *, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path

    def line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.line()


class MissingBoard(KanbanMigrateError):
    code = ExitCode.USAGE


class UsageError(KanbanMigrateError):
    code = ExitCode.USAGE


class Refused(KanbanMigrateError):
    code = ExitCode.REFUSED


class NotABoard(Refused):
    """Not SQLite, not a kanban board, empty, a directory..."""


class Unreadable(NotABoard):
    """The file cannot be read or opened now (permissions, an OS error): no verdict on its content."""


class Undecodable(NotABoard):
    """The header says SQLite but SQLite cannot read the file: damage, not a foreign file."""


class CorruptBoard(Refused):
    pass


class NewerRevision(Refused):
    pass


class BoardBusy(KanbanMigrateError):
    code = ExitCode.BUSY


class EnvironmentFailure(KanbanMigrateError):
    """The machine, not the board, stopped the run (ENOSPC, EFBIG, EROFS, EACCES, ...).

    Raised only after everything the run made was removed and the board is as it was.
    """

    code = ExitCode.ENVIRONMENT


#: What an ``OSError`` says about the machine rather than the board (the causes of exit 5), worded
#: once for every command.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EFBIG: "the file-size limit was reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "a file name would be too long",
    errno.EMLINK: "too many links",
    errno.EIO: "an input/output error",
}


def os_cause(exc: BaseException) -> str | None:
    """The environment cause of an ``OSError`` (:data:`ENVIRONMENT_ERRNOS`), or None."""
    return ENVIRONMENT_ERRNOS.get(exc.errno) if isinstance(exc, OSError) else None
