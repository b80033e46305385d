"""Alias of :mod:`kanban_migrate.upgrading.chain`, kept only while ``commands.py`` (moved into
``cli/`` by issue 11) imports it by its old name; delete it with it."""

from .upgrading.chain import make_config, make_engine  # noqa: F401
