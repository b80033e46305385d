"""v5: provider and reasoning overrides (#69876, #76417); notification delivery modes (#85487).

Subscriptions made before delivery_mode had an implicit wake: when the column is added, every row
not on the tui platform becomes 'notify+wake'.
"""

from kanban_migrate.upgrading import ops

revision = "v5"
down_revision = "v4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    added = ops.converge(revision)["kanban_notify_subs"]
    if "delivery_mode" in added:
        ops.run("UPDATE kanban_notify_subs SET delivery_mode = 'notify+wake' WHERE platform IS NOT 'tui'")


def downgrade() -> None:
    ops.unconverge(revision)
