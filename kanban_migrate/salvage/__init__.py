"""Salvage engine: read the rows of a damaged SQLite database without SQLite.

Public API::

    from kanban_migrate.salvage import salvage, TableShape, write_dump
    result = salvage("kanban.db", shapes={"tasks": TableShape.from_sql(HEAD_TASKS_SQL)})
    with open("salvage.sql", "w", encoding="utf-8") as fp:
        write_dump(result, fp)
"""
from .dump import write_dump
from .engine import salvage
from .model import IndexSalvage, LostRow, Row, SalvageResult, SchemaEntry, TableSalvage
from .shapes import TableShape
from .sqlcopy import attach_source, copy_sound_rows
from .fileformat import DbHeader
from .wal import PageSource, WalSummary, read_wal, wal_summary

__all__ = ["salvage", "SalvageResult", "TableSalvage", "IndexSalvage", "Row", "LostRow",
           "SchemaEntry", "TableShape", "write_dump", "DbHeader", "WalSummary", "wal_summary",
           "read_wal", "PageSource", "copy_sound_rows", "attach_source"]
