"""``recover``: the command lives in :mod:`kanban_migrate.recovering.cli`; registered here."""

from __future__ import annotations

from ..recovering.cli import recover_command as command

__all__ = ["command"]
