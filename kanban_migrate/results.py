"""Alias of :mod:`kanban_migrate.upgrading.result`, kept only while ``cli.py``/``commands.py``
(moved into ``cli/`` by issue 11) import it by its old name; delete it with them."""

from .upgrading.result import StatusResult, UpgradeResult, table  # noqa: F401
