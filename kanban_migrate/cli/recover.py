"""``recover``: the command lives in :mod:`kanban_migrate.recovering.cli`; registered here."""

from __future__ import annotations

from ..recovering.cli import recover_command
from .options import lend_help

command = lend_help(recover_command)

__all__ = ["command"]
