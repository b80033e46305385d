"""Alembic environment for kanban boards: all the work is in kanban_migrate.migration."""

from alembic import context

from kanban_migrate.migration import run_env

run_env(context)
