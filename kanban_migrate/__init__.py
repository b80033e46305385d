"""kanban-migrate: schema migration, health check and repair for the Hermes kanban board.

The Python API (the CLI is a thin layer over it)::

    import kanban_migrate
    kanban_migrate.upgrade("~/.hermes/kanban.db")      # -> UpgradeResult
    kanban_migrate.upgrade_all()                       # every board of the Hermes home
    kanban_migrate.verify("~/.hermes/kanban.db")       # -> VerifyReport
    kanban_migrate.recover("~/.hermes/kanban.db")      # -> RecoverReport
    kanban_migrate.restore("~/.hermes/kanban.db")      # undo: the newest backup back -> RestoreResult
    kanban_migrate.ensure_head("~/.hermes/kanban.db")  # on every connect: 'current', 'stamped', ...

Attributes are imported lazily so that ``import kanban_migrate`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: The public names, by the module that defines each (imported on first use).
_PUBLIC = {
    "kanban_migrate.upgrading": ("upgrade", "upgrade_all", "upgrade_many", "status", "is_current"),
    "kanban_migrate.upgrading.result": ("UpgradeResult", "StatusResult"),
    "kanban_migrate.ensure": ("ensure_head",),
    "kanban_migrate.verifying": ("verify", "verify_many", "VerifyReport"),
    "kanban_migrate.recovering": ("recover",),
    "kanban_migrate.restore": ("restore",),
    "kanban_migrate.home": ("discover",),
    "kanban_migrate.errors": ("ExitCode", "KanbanMigrateError"),
}
_LAZY = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kanban_migrate' has no attribute {name!r}")
