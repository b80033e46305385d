"""Running the revision chain: the engine, Alembic's configuration and ``env.py``'s body.

One transaction per revision, opened with ``BEGIN IMMEDIATE`` by us: Python 3.11's sqlite3 driver
runs DDL outside any transaction and Alembic marks SQLite ``transactional_ddl = False``, so a
revision could otherwise be half-applied. With ``transactional_ddl=True`` and
``transaction_per_migration=True`` each revision and its ``alembic_version`` update commit together
or not at all (SQLAlchemy's documented pysqlite recipe).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from . import head
from .board import DEFAULT_BUSY_TIMEOUT, apply_settings
from .ops import SHADOW
from .resources import alembic_dir


def make_engine(path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
                trace: Callable[[str], None] | None = None) -> Engine:
    """An engine on one board file with the application's settings; every transaction is
    ``BEGIN IMMEDIATE`` (it waits up to ``busy_timeout`` for the write lock). Foreign keys are off
    on this connection so that table rebuilds follow SQLite's procedure; each rebuild runs
    ``PRAGMA foreign_key_check`` before its revision commits."""

    def creator():
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        apply_settings(conn, busy_timeout=busy_timeout, foreign_keys=False)
        if trace is not None:
            conn.set_trace_callback(trace)
        return conn

    engine = create_engine("sqlite://", creator=creator, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        _set_aside(conn.connection.driver_connection, conn.info)

    @event.listens_for(engine, "commit")
    def _put_back_before_commit(conn):
        _put_back(conn.connection.driver_connection, conn.info)

    @event.listens_for(engine, "rollback")
    def _nothing_to_put_back(conn):
        conn.info.pop(_ASIDE, None)  # the rollback restores them

    return engine


_ASIDE = "kanban_migrate_set_aside"


def _set_aside(dbapi: sqlite3.Connection, info: dict) -> None:
    """Drop the board's triggers and views at the start of every transaction of the upgrade; they
    are created again, verbatim, just before it commits (:func:`_put_back`).

    The application never makes triggers or views, so a board with them was changed on purpose:
    they are kept, but a trigger must not fire on the upgrade's own data changes (one deleting
    tasks on an insert into task_events would empty the board), and a view on a table the upgrade
    rebuilds would make the rebuild fail. SQLite's documented 12-step table rebuild does the same
    (note the triggers and views, drop them, recreate them before the commit)."""
    rows = dbapi.execute(
        "SELECT type, name, sql FROM main.sqlite_master WHERE type IN ('trigger', 'view') AND sql IS NOT NULL "
        "ORDER BY rowid"
    ).fetchall()
    if not rows:
        return
    from .schema import quote

    for kind in ("trigger", "view"):  # a view's INSTEAD OF triggers go before it
        for typ, name, _sql in rows:
            if typ == kind:
                dbapi.execute(f"DROP {kind.upper()} IF EXISTS main.{quote(name)}")
    info[_ASIDE] = rows


def _put_back(dbapi: sqlite3.Connection, info: dict) -> None:
    """Create the views, then the triggers, set aside at the start of the transaction."""
    rows = info.pop(_ASIDE, None)
    if not rows:
        return
    for kind in ("view", "trigger"):
        for typ, _name, sql in rows:
            if typ == kind:
                dbapi.execute(sql)


def make_config(*, path: str | Path | None = None, connection=None, output=None,
                on_apply: Callable | None = None) -> Config:
    """An Alembic Config for the chain shipped with this package (no alembic.ini needed)."""
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(alembic_dir()))
    if path is not None:
        cfg.attributes["db_path"] = str(path)
    if connection is not None:
        cfg.attributes["connection"] = connection
    if on_apply is not None:
        cfg.attributes["on_apply"] = on_apply
    return cfg


def _board_path(context) -> str:
    cfg = context.config
    path = context.get_x_argument(as_dictionary=True).get("db") or cfg.attributes.get("db_path")
    if not path:
        url = cfg.get_main_option("sqlalchemy.url")
        if url and url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
    if not path:
        raise SystemExit("kanban-migrate: name the board: alembic -x db=PATH upgrade head")
    return path


def _include_object(obj, name, type_, reflected, compare_to):
    # Autogenerate compares head only: the version table, fork tables and columns are not ours.
    if type_ == "table":
        return name in head.metadata.tables
    if type_ == "column" and reflected and compare_to is None:
        return False
    if type_ == "index" and reflected and compare_to is None:
        return False
    return True


def _common(cfg) -> dict:
    kw = dict(
        target_metadata=head.metadata,
        transactional_ddl=True,
        transaction_per_migration=True,
        include_object=_include_object,
        compare_server_default=True,
    )
    if cfg.attributes.get("on_apply"):
        kw["on_version_apply"] = cfg.attributes["on_apply"]
    return kw


def shadow_of(path: str | None) -> sqlite3.Connection:
    """An in-memory database with the schema of the board at ``path`` (read-only), for --sql."""
    shadow = sqlite3.connect(":memory:", isolation_level=None)
    if path and Path(path).exists() and Path(path).stat().st_size:
        from .board import check_file, open_ro

        src = open_ro(check_file(path))
        try:
            rows = src.execute(
                "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index', rowid"
            ).fetchall()
            version = src.execute(
                "SELECT name FROM sqlite_master WHERE name='alembic_version'"
            ).fetchone()
            versions = src.execute("SELECT version_num FROM alembic_version").fetchall() if version else []
        finally:
            src.close()
        for _type, sql in rows:
            shadow.execute(sql)
        for (v,) in versions:
            shadow.execute("INSERT INTO alembic_version VALUES (?)", (v,))
    return shadow


def run_env(context) -> None:
    """The body of ``alembic/env.py``."""
    cfg = context.config
    if context.is_offline_mode():
        path = cfg.attributes.get("db_path") or context.get_x_argument(as_dictionary=True).get("db")
        from .ops import put_back_offline

        shadow = shadow_of(path)
        kw = _common(cfg)
        kw["on_version_apply"] = [put_back_offline, *([kw["on_version_apply"]] if "on_version_apply" in kw else [])]
        context.configure(dialect_name="sqlite", literal_binds=True, **kw, **{SHADOW: shadow})
        with context.begin_transaction():
            context.run_migrations()
        shadow.close()
        return
    connection = cfg.attributes.get("connection")
    if connection is not None and not isinstance(connection, Engine):
        context.configure(connection=connection, **_common(cfg))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = connection if connection is not None else make_engine(_board_path(context))
    with engine.connect() as connection:
        context.configure(connection=connection, **_common(cfg))
        with context.begin_transaction():
            context.run_migrations()
    if connection is None:
        engine.dispose()
