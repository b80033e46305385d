"""The revision chain, oldest first, and what is pending after a stamp: the one definition.

Standard library only, because the no-op fast path (a board already at head) must answer without
importing SQLAlchemy or Alembic; :mod:`kanban_migrate.head` (the schema) and everything else
import these names from here. Revision ids are the shape names of spec section 4;
``tests/test_alembic_chain.py`` checks that ``alembic/versions`` holds exactly this chain.
"""

from __future__ import annotations

REVISIONS: tuple[str, ...] = ("v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7")
HEAD = REVISIONS[-1]


def known(revision: str | None) -> bool:
    """Unstamped, or a revision of this release (not one a newer release wrote)."""
    return revision is None or revision in REVISIONS


def pending_after(revision: str | None) -> list[str]:
    """The revisions an upgrade from ``revision`` (``None``: unstamped) applies, in order."""
    if revision is None:
        return list(REVISIONS)
    return list(REVISIONS[REVISIONS.index(revision) + 1:])
