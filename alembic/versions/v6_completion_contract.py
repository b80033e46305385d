"""v6: tasks.completion_contract (September, the code split)."""

from kanban_migrate.upgrading import ops

revision = "v6"
down_revision = "v5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.converge(revision)


def downgrade() -> None:
    ops.unconverge(revision)
