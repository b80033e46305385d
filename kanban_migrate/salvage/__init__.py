"""Salvage engine: read the rows of a damaged SQLite database without SQLite.

Public API::

    from kanban_migrate.salvage import salvage, TableShape, write_dump
    result = salvage("kanban.db", shapes={"tasks": TableShape.from_sql(HEAD_TASKS_SQL)})
    with open("salvage.sql", "w", encoding="utf-8") as fp:
        write_dump(result, fp)

The names load on first use: ``verify`` reads a board's header with :mod:`.fileformat` and
needs none of the engine.
"""

from __future__ import annotations

_LAZY = {"write_dump": ".dump", "salvage": ".engine", "IndexSalvage": ".model", "LostRow": ".model",
         "Row": ".model", "SalvageResult": ".model", "SchemaEntry": ".model", "TableSalvage": ".model",
         "TableShape": ".shapes", "attach_source": ".sqlcopy", "copy_sound_rows": ".sqlcopy",
         "DbHeader": ".fileformat", "PageSource": ".wal", "WalSummary": ".wal", "read_wal": ".wal",
         "wal_summary": ".wal"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["salvage", "SalvageResult", "TableSalvage", "IndexSalvage", "Row", "LostRow",
           "SchemaEntry", "TableShape", "write_dump", "DbHeader", "WalSummary", "wal_summary",
           "read_wal", "PageSource", "copy_sound_rows", "attach_source"]
