"""``recover``: give back every row that survives on a malformed board.

    >>> import kanban_migrate
    >>> report = kanban_migrate.recover("kanban.db")              # doctest: +SKIP
    >>> report.mode, report.code, report.tables["tasks"].recovered  # doctest: +SKIP
    ('salvage', 0, 1200)

The procedure (README, "recover"), one module per step: refuse to race the application and hold
the board's lock (:mod:`.inuse`); copy the board, its ``-wal`` and any ``-journal`` byte for byte
into a work folder with a SHA-256 manifest, or read a live board as one consistent snapshot
(:mod:`.snapshot`); on a copy, checkpoint and triage with SQLite's integrity check
(:mod:`.triage`) — healthy after the checkpoint ("WAL only"), index damage only (``REINDEX``), or
table damage: salvage every readable row with the pure-Python reader (:mod:`kanban_migrate.salvage`)
and load it into a fresh database with no SQL taken from the damaged file (:mod:`.load`); take it
to head with the revision chain, check the final bytes, verify; then write ``--output`` as a new
file, or swap it in with one rename under a journal that any later command finishes or rolls back
(:mod:`.swap`), keeping the original as ``<db>.corrupt.<sha256[:16]>.bak``. :mod:`.run` strings
the steps together; :mod:`.report` is what comes back.

This package's import is light (the swap journal is checked from every command's file check):
``recover`` and the report classes load on first use. :mod:`.final` checks the result and asks
``verify`` for the verdict the report gives.
"""

from __future__ import annotations

_LAZY = {"recover": ".run", "RecoverReport": ".report", "TableReport": ".report",
         "forensic_copy": ".snapshot", "check_final": ".final"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["recover", "RecoverReport", "TableReport"]
