"""v0: the first board (PR #16081, late April).

The base of the chain, and where every legacy board is adopted: the four original tables where
missing, the ten early task columns a reduced external board lacks (#112953), the original
indexes, and the event-kind renames every upgrade applies.
"""

from kanban_migrate.upgrading import ops

revision = "v0"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.converge(revision)
    ops.rename_event_kinds()


def downgrade() -> None:
    raise NotImplementedError("v0 is the base of the chain: going below it would delete the board's tables")
