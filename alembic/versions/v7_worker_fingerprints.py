"""v7 (head): worker fingerprints on tasks and runs (#112270), tasks.worker_contract."""

from kanban_migrate.upgrading import ops

revision = "v7"
down_revision = "v6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.converge(revision)


def downgrade() -> None:
    ops.unconverge(revision)
