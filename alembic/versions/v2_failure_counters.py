"""v2: failure counters, max_retries, notifier_profile (PR #20410 and the add-then-copy fix).

A board whose counters v2a renamed in place already has consecutive_failures and
last_failure_error and is left alone; where they are added and the old pair exists, their values
are copied from it (the old pair stays, with its data).
"""

from kanban_migrate.upgrading import ops

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    added = ops.converge(revision)["tasks"]
    if "consecutive_failures" in added and ops.has_column("tasks", "spawn_failures"):
        ops.run("UPDATE tasks SET consecutive_failures = COALESCE(spawn_failures, 0)")
    if "last_failure_error" in added and ops.has_column("tasks", "last_spawn_error"):
        ops.run("UPDATE tasks SET last_failure_error = last_spawn_error")


def downgrade() -> None:
    ops.unconverge(revision)
