"""v3: branches, projects, goals, sessions, typed blocks (release v0.14.0, ~19 May).

The release itself created idx_tasks_session_id before the session_id column and broke every
older board (#28464); here the index comes after the columns, as the fix did.
"""

from kanban_migrate.upgrading import ops

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.converge(revision)


def downgrade() -> None:
    ops.unconverge(revision)
