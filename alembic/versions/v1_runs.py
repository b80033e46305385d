"""v1: runs, notification subscriptions, idempotency (PR #17805, 30 April).

The spawn-failure counters of that release (spawn_failures, last_spawn_error) are not added: head
never had them, v2 adds their successors and copies from them where a board has them.
"""

from kanban_migrate.upgrading import ops

revision = "v1"
down_revision = "v0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.converge(revision)


def downgrade() -> None:
    ops.unconverge(revision)
