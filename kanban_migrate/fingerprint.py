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


def fingerprint(s: Schema) -> Fingerprint:
    user_tables = [t for t in s.tables if t not in INTERNAL_TABLES]
    if not user_tables:
        return Fingerprint("empty", (), ("no tables",))
    tasks = s.tables.get("tasks")
    if tasks is None or not {"id", "title", "status"} <= set(tasks.columns):
        why = "no tasks table" if tasks is None else "tasks lacks id, title or status"
        return Fingerprint("not-kanban", (), (why, "tables: " + ", ".join(sorted(user_tables))))
    shape, why = _shape(s, set(tasks.columns))
    variants, evidence = _variants(s, set(tasks.columns), user_tables)
    return Fingerprint(shape, tuple(variants), (why, *evidence))


# One piece: a decision table over the shapes of spec section 4, newest first (a board has the
# marks of every release up to its own); each branch names its evidence.
def _shape(s: Schema, tc: set[str]) -> tuple[str, str]:
    """The release shape the tasks columns ``tc`` and the tables of ``s`` show, and why."""
    notify = set(s.columns("kanban_notify_subs"))
    runs = set(s.columns("task_runs"))

    def has(*cols: str, where: set[str] = tc) -> bool:
        return any(c in where for c in cols)

    if has("worker_started_at", "worker_contract") or "worker_started_at" in runs:
        return "v7", "worker fingerprint columns"
    if has("completion_contract"):
        return "v6", "tasks.completion_contract"
    if has("provider_override", "reasoning_effort") or has("delivery_mode", where=notify):
        return "v5", "overrides / delivery_mode"
    if s.has_table("task_attachments"):
        return "v4", "task_attachments table"
    if has("session_id", "goal_mode", "branch_name", "block_kind"):
        return "v3", "session/goal columns"
    if (s.has_table("task_runs") or s.has_table("kanban_notify_subs")) and not has(*V1_TASK_COLUMNS):
        return "v3-half", "tables of a newer release beside v0 task columns (an aborted upgrade)"
    if has("max_retries") or has("notifier_profile", where=notify) or (
        has("consecutive_failures") and has("spawn_failures")
    ):
        return "v2b", "max_retries / notifier_profile / both counter pairs"
    if has("consecutive_failures", "last_failure_error"):
        return "v2a", "counters renamed in place"
    if has(*V1_TASK_COLUMNS) or s.has_table("task_runs"):
        events = s.columns("task_events")
        if events and events[-1] == "run_id":
            return "v0-v1", "v1 columns appended to a v0 board"
        return "v1", "v1 columns"
    return "v0", "original columns only"


def _variants(s: Schema, tc: set[str], user_tables: list[str]) -> tuple[list[str], list[str]]:
    """What the board has on top of its shape (variants), with the evidence for each."""
    from .headfacts import expected as head_schema  # head's schema, without SQLAlchemy when kept

    variants: list[str] = []
    evidence: list[str] = []
    if not all(c in tc for c in EARLY_TASK_COLUMNS):
        variants.append("reduced")
        evidence.append("tasks lacks early columns (#112953)")
    if tc & LEGACY_COLUMNS["tasks"]:
        variants.append("legacy-counters")
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
    drift = _drift(s, expected)
    if drift:
        variants.append("drifted")
        evidence.append("drifted: " + "; ".join(drift))
    return variants, evidence


def _drift(s: Schema, expected: Schema) -> list[str]:
    """Column types and AUTOINCREMENT that differ from head's on tables the board has."""
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
    return drift
