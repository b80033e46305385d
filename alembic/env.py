"""Alembic environment for kanban boards: all the work is in kanban_migrate.upgrading.chain."""

from alembic import context

from kanban_migrate.upgrading.chain import run_env

run_env(context)
