"""Alembic environment for kanban boards: the work is in kanban_migrate.upgrading.chain.

Run by Alembic's own command line (``alembic -x db=PATH upgrade head``), it first logs as
Alembic's template does (the ini's logging sections) and applies ``kanban-migrate upgrade``'s
checks and backup (kanban_migrate.alembic_guard); run by the library, it only runs the chain.
"""

from logging.config import fileConfig

from alembic import context

from kanban_migrate import alembic_guard
from kanban_migrate.upgrading.chain import run_env

config = context.config
if alembic_guard.driven_by_alembic_cli(config):
    if config.config_file_name:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    path = alembic_guard.board_path(context)
    if not context.is_offline_mode():
        alembic_guard.before(context, path)
    alembic_guard.run(lambda: run_env(context), path)
else:
    run_env(context)
