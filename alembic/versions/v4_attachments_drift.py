"""v4: attachments; drifted tables rebuilt; a run for every running task (from ~30 May).

Side tables whose ids are not INTEGER PRIMARY KEY AUTOINCREMENT (TEXT ids, or none of
AUTOINCREMENT on boards seeded by external tools) and a notification table whose cursor is not an
INTEGER are rebuilt (#35096, #112953) as they stand at v4: later revisions then add their columns
and data changes to them like to any other board (a drifted kanban_notify_subs gets the
delivery_mode backfill of v5). Runs are backfilled after the rebuild, when task_runs is sound.
"""

from kanban_migrate.upgrading import ops

revision = "v4"
down_revision = "v3"
branch_labels = None
depends_on = None

REBUILDABLE = ["tasks", "task_links", "task_comments", "task_events", "task_runs", "kanban_notify_subs"]


def upgrade() -> None:
    ops.converge(revision)
    ops.rebuild_drifted(REBUILDABLE, revision)
    ops.backfill_running_runs()


def downgrade() -> None:
    ops.unconverge(revision)
