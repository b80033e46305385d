"""Which historical shape (spec sections 4 and 6) a board resembles. Standard library only.

Adoption of a legacy board is reported, never guessed silently: the fingerprint names the shape,
the variants found on top of it, and the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import INTERNAL_TABLES, KANBAN_TABLES, Schema
LEGACY_COLUMNS = {"tasks": {"spawn_failures", "last_spawn_error"}}
EARLY_TASK_COLUMNS = ("body", "assignee", "priority", "created_by", "started_at", "completed_at",
                      "workspace_kind", "workspace_path", "claim_lock", "claim_expires")
V1_TASK_COLUMNS = ("idempotency_key", "worker_pid", "max_runtime_seconds", "last_heartbeat_at",
                   "current_run_id", "workflow_template_id", "current_step_key", "skills")


@dataclass(frozen=True)
class Fingerprint:
    shape: str  # v0, v0-v1, v1, v2a, v2b, v3-half, v3..v7, empty, not-kanban
    variants: tuple[str, ...] = ()
    evidence: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_kanban(self) -> bool:
        return self.shape not in ("empty", "not-kanban")

    def __str__(self) -> str:
        return " ".join([self.shape, *(f"+{v}" for v in self.variants)])


# One piece: a decision table over the shapes of spec section 4, in the order the application
# grew them; each branch names its evidence.
def fingerprint(s: Schema) -> Fingerprint:
    user_tables = [t for t in s.tables if t not in INTERNAL_TABLES]
    if not user_tables:
        return Fingerprint("empty", (), ("no tables",))
    tasks = s.tables.get("tasks")
    if tasks is None or not {"id", "title", "status"} <= set(tasks.columns):
        why = "no tasks table" if tasks is None else "tasks lacks id, title or status"
        return Fingerprint("not-kanban", (), (why, "tables: " + ", ".join(sorted(user_tables))))
    tc = set(tasks.columns)
    notify = set(s.columns("kanban_notify_subs"))
    runs = set(s.columns("task_runs"))
    evidence: list[str] = []

    def has(*cols: str, where: set[str] = tc) -> bool:
        return any(c in where for c in cols)

    if has("worker_started_at", "worker_contract") or "worker_started_at" in runs:
        shape = "v7"
        evidence.append("worker fingerprint columns")
    elif has("completion_contract"):
        shape = "v6"
        evidence.append("tasks.completion_contract")
    elif has("provider_override", "reasoning_effort") or has("delivery_mode", where=notify):
        shape = "v5"
        evidence.append("overrides / delivery_mode")
    elif s.has_table("task_attachments"):
        shape = "v4"
        evidence.append("task_attachments table")
    elif has("session_id", "goal_mode", "branch_name", "block_kind"):
        shape = "v3"
        evidence.append("session/goal columns")
    elif (s.has_table("task_runs") or s.has_table("kanban_notify_subs")) and not has(*V1_TASK_COLUMNS):
        shape = "v3-half"
        evidence.append("tables of a newer release beside v0 task columns (an aborted upgrade)")
    elif has("max_retries") or has("notifier_profile", where=notify) or (
        has("consecutive_failures") and has("spawn_failures")
    ):
        shape = "v2b"
        evidence.append("max_retries / notifier_profile / both counter pairs")
    elif has("consecutive_failures", "last_failure_error"):
        shape = "v2a"
        evidence.append("counters renamed in place")
    elif has(*V1_TASK_COLUMNS) or s.has_table("task_runs"):
        events = s.columns("task_events")
        upgraded = bool(events) and events[-1] == "run_id"
        shape = "v0-v1" if upgraded else "v1"
        evidence.append("v1 columns appended to a v0 board" if upgraded else "v1 columns")
    else:
        shape = "v0"
        evidence.append("original columns only")

    variants: list[str] = []
    if not all(c in tc for c in EARLY_TASK_COLUMNS):
        variants.append("reduced")
        evidence.append("tasks lacks early columns (#112953)")
    if has(*LEGACY_COLUMNS["tasks"]):
        variants.append("legacy-counters")
    from .headfacts import expected as head_schema  # head's schema, without SQLAlchemy when kept

    expected = head_schema()
    head_tables = expected.tables
    fork = [
        f"{t}.{c}"
        for t in KANBAN_TABLES
        if t in s.tables and t in head_tables
        for c in s.tables[t].columns
        if c not in head_tables[t].columns and c not in LEGACY_COLUMNS.get(t, ())
    ]
    if fork:
        variants.append("fork-columns")
        evidence.append("columns head does not know: " + ", ".join(fork))
    extra_tables = [t for t in user_tables if t not in head_tables and not t.startswith("_kanban_migrate")]
    if extra_tables:
        variants.append("recipe-tables" if any(t.startswith("recipe_") for t in extra_tables) else "extra-tables")
        evidence.append("tables head does not know: " + ", ".join(sorted(extra_tables)))
    drift = []
    for t in KANBAN_TABLES:
        have, want = s.tables.get(t), expected.tables.get(t)
        if have is None or want is None:
            continue
        alias = want.rowid_alias
        if alias and alias in have.columns and have.columns[alias].type != "INTEGER":
            drift.append(f"{t}.{alias} is {have.columns[alias].type or 'untyped'}")
        elif want.autoincrement and not have.autoincrement:
            drift.append(f"{t} lacks AUTOINCREMENT")
        if t == "kanban_notify_subs" and "last_event_id" in have.columns and have.columns["last_event_id"].type != "INTEGER":
            drift.append("kanban_notify_subs.last_event_id is not INTEGER")
    if drift:
        variants.append("drifted")
        evidence.append("drifted: " + "; ".join(drift))
    return Fingerprint(shape, tuple(variants), tuple(evidence))
