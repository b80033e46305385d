"""The head schema (spec section 3, shape v7), defined once as SQLAlchemy metadata.

Revisions, ``verify`` and ``recover`` all take the schema from here. Every column and index
carries ``info["since"]``: the revision (= historical shape) that introduced it, so a revision can
ask for "the columns I add" and a table rebuild for "the table as it stands at revision R".
Values the board application writes (status sets, event-kind renames) live here too.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Column, Index, Integer, MetaData, Table, Text, text
from sqlalchemy.types import UserDefinedType
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from .revisions import HEAD, REVISIONS  # noqa: F401  (head.HEAD, head.REVISIONS for callers)

metadata = MetaData()
DIALECT = sqlite.dialect()


def _rank(rev: str) -> int:
    return REVISIONS.index(rev)


def _c(name: str, type_, since: str = "v0", *, nn: bool = False, default: str | None = None,
       pk: bool = False, fill: str | None = None) -> Column:
    info = {"since": since}
    if fill is not None:
        info["fill"] = fill  # value for rows that lack a NOT NULL column with no default
    return Column(
        name,
        type_,
        primary_key=pk,
        nullable=not nn,
        server_default=text(default) if default is not None else None,
        autoincrement=False,
        info=info,
    )


_NOW = "CAST(strftime('%s','now') AS INTEGER)"


def _text_nn(name: str, since: str = "v0") -> Column:
    """A NOT NULL text column without a default: rows that lack it get ''."""
    return _c(name, Text, since, nn=True, fill="''")


def _time_nn(name: str, since: str = "v0") -> Column:
    """A NOT NULL epoch-seconds column without a default: rows that lack it get the time now."""
    return _c(name, Integer, since, nn=True, fill=_NOW)


def _id() -> Column:
    """``id INTEGER PRIMARY KEY AUTOINCREMENT`` (the table passes sqlite_autoincrement)."""
    return Column("id", Integer, primary_key=True, autoincrement=True, info={"since": "v0"})


def _numbered(name: str, since: str, *columns: Column) -> Table:
    """A table whose rows are numbered by ``id INTEGER PRIMARY KEY AUTOINCREMENT``, as the
    application declares its comments, events, runs and attachments (an id is never reused)."""
    return Table(name, metadata, _id(), *columns, sqlite_autoincrement=True, info={"since": since})


tasks = Table(
    "tasks", metadata,
    _c("id", Text, pk=True),
    _text_nn("title"),
    _c("body", Text),
    _c("assignee", Text),
    _c("status", Text, nn=True, fill="'todo'"),
    _c("priority", Integer, default="0"),
    _c("created_by", Text),
    _time_nn("created_at"),
    _c("started_at", Integer),
    _c("completed_at", Integer),
    _c("workspace_kind", Text, nn=True, default="'scratch'"),
    _c("workspace_path", Text),
    _c("branch_name", Text, "v3"),
    _c("project_id", Text, "v3"),
    _c("claim_lock", Text),
    _c("claim_expires", Integer),
    _c("tenant", Text),
    _c("result", Text),
    _c("idempotency_key", Text, "v1"),
    _c("consecutive_failures", Integer, "v2", nn=True, default="0"),
    _c("worker_pid", Integer, "v1"),
    _c("worker_started_at", Integer, "v7"),
    _c("last_failure_error", Text, "v2"),
    _c("max_runtime_seconds", Integer, "v1"),
    _c("last_heartbeat_at", Integer, "v1"),
    _c("current_run_id", Integer, "v1"),
    _c("workflow_template_id", Text, "v1"),
    _c("current_step_key", Text, "v1"),
    _c("skills", Text, "v1"),
    _c("model_override", Text, "v3"),
    _c("provider_override", Text, "v5"),
    _c("reasoning_effort", Text, "v5"),
    _c("max_retries", Integer, "v2"),
    _c("goal_mode", Integer, "v3", nn=True, default="0"),
    _c("goal_max_turns", Integer, "v3"),
    _c("session_id", Text, "v3"),
    _c("block_kind", Text, "v3"),
    _c("block_recurrences", Integer, "v3", nn=True, default="0"),
    _c("completion_contract", Text, "v6"),
    _c("worker_contract", Text, "v7"),
    info={"since": "v0"},
)
# tasks.id is "TEXT PRIMARY KEY" without NOT NULL on real boards.
tasks.c.id.nullable = True

task_links = Table(
    "task_links", metadata,
    _c("parent_id", Text, nn=True, pk=True),
    _c("child_id", Text, nn=True, pk=True),
    info={"since": "v0"},
)

task_comments = _numbered(
    "task_comments", "v0",
    _text_nn("task_id"),
    _text_nn("author"),
    _text_nn("body"),
    _time_nn("created_at"),
)

task_events = _numbered(
    "task_events", "v0",
    _text_nn("task_id"),
    _c("run_id", Integer, "v1"),
    _text_nn("kind"),
    _c("payload", Text),
    _time_nn("created_at"),
)

task_runs = _numbered(
    "task_runs", "v1",
    _text_nn("task_id", "v1"),
    _c("profile", Text, "v1"),
    _c("step_key", Text, "v1"),
    _c("status", Text, "v1", nn=True, fill="'running'"),
    _c("claim_lock", Text, "v1"),
    _c("claim_expires", Integer, "v1"),
    _c("worker_pid", Integer, "v1"),
    _c("worker_started_at", Integer, "v7"),
    _c("max_runtime_seconds", Integer, "v1"),
    _c("last_heartbeat_at", Integer, "v1"),
    _time_nn("started_at", "v1"),
    _c("ended_at", Integer, "v1"),
    _c("outcome", Text, "v1"),
    _c("summary", Text, "v1"),
    _c("metadata", Text, "v1"),
    _c("error", Text, "v1"),
)

task_attachments = _numbered(
    "task_attachments", "v4",
    _text_nn("task_id", "v4"),
    _text_nn("filename", "v4"),
    _text_nn("stored_path", "v4"),
    _c("content_type", Text, "v4"),
    _c("size", Integer, "v4", nn=True, default="0"),
    _c("uploaded_by", Text, "v4"),
    _time_nn("created_at", "v4"),
)

kanban_notify_subs = Table(
    "kanban_notify_subs", metadata,
    _c("task_id", Text, "v1", nn=True, pk=True),
    _c("platform", Text, "v1", nn=True, pk=True),
    _c("chat_id", Text, "v1", nn=True, pk=True),
    _c("thread_id", Text, "v1", nn=True, pk=True, default="''"),
    _c("user_id", Text, "v1"),
    _c("user_id_alt", Text, "v5"),
    _c("chat_type", Text, "v5"),
    _c("notifier_profile", Text, "v2"),
    _c("delivery_mode", Text, "v5", nn=True, default="'notify'"),
    _c("delivery_metadata", Text, "v5"),
    _time_nn("created_at", "v1"),
    _c("last_event_id", Integer, "v1", nn=True, default="0"),
    _c("last_ping_event_id", Integer, "v5", nn=True, default="0"),
    info={"since": "v1"},
)
for _col in task_events.c.id, task_comments.c.id, task_runs.c.id, task_attachments.c.id:
    _col.nullable = True  # "id INTEGER PRIMARY KEY AUTOINCREMENT", as on real boards


def _ix(name: str, table: Table, *cols: str, since: str = "v0") -> Index:
    return Index(name, *(table.c[c] for c in cols), info={"since": since})


_ix("idx_tasks_assignee_status", tasks, "assignee", "status")
_ix("idx_tasks_status", tasks, "status")
_ix("idx_tasks_tenant", tasks, "tenant")
_ix("idx_tasks_idempotency", tasks, "idempotency_key", since="v1")
_ix("idx_tasks_session_id", tasks, "session_id", since="v3")
_ix("idx_links_child", task_links, "child_id")
_ix("idx_links_parent", task_links, "parent_id")
_ix("idx_comments_task", task_comments, "task_id", "created_at")
_ix("idx_events_task", task_events, "task_id", "created_at")
_ix("idx_events_run", task_events, "run_id", "id", since="v1")
_ix("idx_runs_task", task_runs, "task_id", "started_at", since="v1")
_ix("idx_runs_status", task_runs, "status", since="v1")
_ix("idx_attachments_task", task_attachments, "task_id", "created_at", since="v4")
_ix("idx_notify_task", kanban_notify_subs, "task_id", since="v1")

#: The order in which the application's add-if-missing pass adds columns (spec section 4); this is
#: also the physical order upgraded boards end up with. Tables not listed add in head order.
ALTER_ORDER: dict[str, tuple[str, ...]] = {
    "tasks": (
        "body", "assignee", "priority", "created_by", "started_at", "completed_at",
        "workspace_kind", "workspace_path", "claim_lock", "claim_expires", "tenant", "result",
        "branch_name", "project_id", "idempotency_key", "consecutive_failures", "worker_pid",
        "last_failure_error", "max_runtime_seconds", "last_heartbeat_at", "current_run_id",
        "workflow_template_id", "current_step_key", "skills", "max_retries", "model_override",
        "provider_override", "reasoning_effort", "goal_mode", "goal_max_turns",
        "completion_contract", "worker_contract", "session_id", "block_kind",
        "block_recurrences", "worker_started_at",
    ),
    "kanban_notify_subs": (
        "last_ping_event_id", "notifier_profile", "delivery_mode", "chat_type", "user_id_alt",
        "delivery_metadata",
    ),
}

# ---- values the application writes (spec section 3) -------------------------------------------
# Open vocabularies: the values the real application has been measured writing, not a constraint it
# enforces (there is no CHECK, and it adds values over time; some code paths copy a run's outcome
# into its status). A value outside a list is not evidence of damage: use these to describe or to
# attribute, never to reject a row or to call a board unhealthy.
TASK_STATUSES = frozenset(
    {"triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done", "archived"}
)
WORKSPACE_KINDS = frozenset({"scratch", "worktree", "dir"})
RUN_STATUSES = frozenset(
    {"running", "done", "blocked", "crashed", "timed_out", "failed", "released", "reclaimed",
     "completed", "spawn_failed", "gave_up", "scheduled", "review", "ready"}
)
#: ``task_runs.outcome``; NULL while the run is still going.
RUN_OUTCOMES = frozenset(
    {"completed", "blocked", "crashed", "timed_out", "spawn_failed", "gave_up", "reclaimed",
     "scheduled", "review_requested", "changes_requested"}
)
DELIVERY_MODES = frozenset({"notify", "notify+wake", "wake"})
#: Event kinds renamed by every upgrade (spec section 5).
EVENT_KIND_RENAMES: dict[str, str] = {
    "ready": "promoted",
    "priority": "reprioritized",
    "spawn_auto_blocked": "gave_up",
}
#: JSON columns (verify parses them).
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": ("skills",),
    "task_events": ("payload",),
    "task_runs": ("metadata",),
}
#: Tables whose rows belong to a task, with the column that names it.
TASK_CHILDREN: dict[str, str] = {
    "task_events": "task_id",
    "task_comments": "task_id",
    "task_runs": "task_id",
    "task_attachments": "task_id",
    "kanban_notify_subs": "task_id",
}


# ---- derived views ----------------------------------------------------------------------------
def since(item) -> str:
    return item.info["since"]


def at(rev: str, item) -> bool:
    """Does ``item`` (a Column, Index or Table) exist at revision ``rev``?"""
    return _rank(since(item)) <= _rank(rev)


def columns_added_by(table: str, rev: str) -> list[Column]:
    """The head columns of ``table`` that revision ``rev`` introduces, in the add-if-missing order."""
    cols = [c for c in metadata.tables[table].columns if since(c) == rev]
    order = ALTER_ORDER.get(table)
    if order:
        cols.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
    return cols


def indexes_added_by(rev: str) -> list[Index]:
    out = []
    for table in metadata.tables.values():
        out.extend(ix for ix in sorted(table.indexes, key=lambda i: i.name) if since(ix) == rev)
    return out


def tables_added_by(rev: str) -> list[Table]:
    return [t for t in metadata.tables.values() if since(t) == rev]


def column_ddl(col: Column) -> str:
    """The column's definition as in ``ALTER TABLE ... ADD COLUMN <this>``."""
    from sqlalchemy.schema import CreateColumn

    return str(CreateColumn(col).compile(dialect=DIALECT)).strip()


class RawType(UserDefinedType):
    """A column type spelled exactly as a board declares it (for columns head does not know)."""

    cache_ok = True

    def __init__(self, declared: str):
        self.declared = declared

    def get_col_spec(self, **kw) -> str:
        return self.declared


def raw_column(name: str, declared: str, *, notnull: bool = False, default: str | None = None) -> Column:
    """A column head does not know (fork columns, leftovers), to keep it through a table rebuild."""
    return Column(name, RawType(declared), nullable=not notnull,
                  server_default=text(default) if default is not None else None)


def create_table_sql(table: Table, *, name: str | None = None, upto: str = HEAD,
                     keep: set[str] | frozenset[str] = frozenset(), extra: list[Column] = ()) -> str:
    """``CREATE TABLE`` for ``table`` with the columns it has at revision ``upto``.

    ``keep`` adds later head columns that a board already has; ``extra`` appends columns head
    does not know (see :func:`raw_column`). ``name`` renames the table (table rebuilds).
    """
    md = MetaData()
    cols = [_fresh(c) for c in table.columns if at(upto, c) or c.name in keep]
    t = Table(name or table.name, md, *cols, *extra, **table.dialect_kwargs)
    return str(CreateTable(t).compile(dialect=DIALECT)).strip()


def _fresh(col: Column) -> Column:
    """A new Column like head's ``col`` (a Column belongs to one Table), from the public attributes
    :func:`_c` sets."""
    return Column(col.name, col.type, primary_key=col.primary_key, nullable=col.nullable,
                  server_default=col.server_default.arg if col.server_default is not None else None,
                  autoincrement=col.autoincrement, info=dict(col.info))


def create_index_sql(index: Index, *, if_not_exists: bool = False) -> str:
    return str(CreateIndex(index, if_not_exists=if_not_exists).compile(dialect=DIALECT)).strip()


@lru_cache(maxsize=None)
def head_ddl() -> tuple[str, ...]:
    """The statements that create a fresh board at head (tables, then indexes)."""
    stmts = [create_table_sql(t) for t in metadata.sorted_tables]
    for t in metadata.sorted_tables:
        stmts.extend(create_index_sql(ix) for ix in sorted(t.indexes, key=lambda i: i.name))
    return tuple(stmts)


@lru_cache(maxsize=None)
def expected():
    """The head schema as a :class:`kanban_migrate.schema.Schema` snapshot (built in memory)."""
    import sqlite3

    from .schema import snapshot

    conn = sqlite3.connect(":memory:")
    try:
        for stmt in head_ddl():
            conn.execute(stmt)
        return snapshot(conn)
    finally:
        conn.close()
