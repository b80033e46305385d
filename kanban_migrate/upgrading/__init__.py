"""``upgrade``: take a board of any historical shape to head.

    >>> import kanban_migrate
    >>> result = kanban_migrate.upgrade("kanban.db")          # doctest: +SKIP
    >>> result.status, result.revision_after, result.backup   # doctest: +SKIP
    ('upgraded', 'v7', 'kanban.db.pre-upgrade.3f1c0a9e5b7d2c11.bak')

The pieces, in the order an upgrade runs through them:

- :mod:`.api`: check the file, read the stamp, refuse what must not be touched, lock, back up,
  then run the chain; what was committed is read back from the file. Standard library until the
  chain runs (the no-op fast path imports only this and :mod:`.result`).
- :mod:`.chain`: the Alembic glue (engine, configuration, ``env.py``'s body, triggers and views
  set aside per transaction).
- :mod:`.ops`: the convergent operations the revisions in ``alembic/versions`` are written in.
- :mod:`.rebuild`: a table rebuild, planned as statements, then applied.
- :mod:`.result`: the plain result objects and their text forms.
"""

from .api import (
    HEAD,
    HEAD_INDEXES,
    HEAD_NAMES,
    REVISIONS,
    is_current,
    mismatch_note,
    missing_at,
    missing_at_head,
    pending_after,
    status,
    upgrade,
    upgrade_all,
    upgrade_many,
)
from .result import StatusResult, UpgradeResult

__all__ = [
    "HEAD", "HEAD_INDEXES", "HEAD_NAMES", "REVISIONS", "StatusResult", "UpgradeResult", "is_current",
    "mismatch_note", "missing_at", "missing_at_head", "pending_after", "status", "upgrade",
    "upgrade_all", "upgrade_many",
]
