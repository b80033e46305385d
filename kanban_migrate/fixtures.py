"""Build boards of every historical shape with realistic, deterministic data.

The shapes are the board application's own history (:mod:`kanban_migrate.history`: its CREATE
scripts and column passes, release by release); this module replays that history on an empty file
and fills the result with data. Standard library only.

    >>> from kanban_migrate import fixtures
    >>> info = fixtures.create("/tmp/board.db", shape="v0", tasks=50, seed=7)  # doctest: +SKIP
    >>> info.rows["tasks"]  # doctest: +SKIP
    50
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .history import build_schema, column_names, eras, journal_mode_after, shapes  # noqa: F401  (fixtures.shapes() for callers)

from .schema import quote

BASE_TIME = 1_777_000_000  # late April 2026, when the first boards were made


@dataclass
class FixtureInfo:
    path: Path
    shape: str
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)  # errors of releases that aborted (v3)
    journal_mode: str = ""


def create(path: str | Path, shape: str = "v0", *, tasks: int = 200, seed: int = 1,
           journal_mode: str | None = None, sqlite_version: tuple[int, ...] | None = None) -> FixtureInfo:
    """Create a board of ``shape`` at ``path`` (which must not exist) with ``tasks`` tasks.

    The journal mode is the one the application of each release left the file in
    (:func:`journal_mode_after`, under ``sqlite_version``, default the running SQLite's), unless
    ``journal_mode`` names one.
    """
    path = Path(path)
    known = shapes()
    if shape not in known:
        raise KeyError(f"unknown shape {shape!r}; known: {', '.join(known)}")
    if path.exists():
        raise FileExistsError(f"{path} exists")
    mode = journal_mode or journal_mode_after(known[shape].steps, sqlite_version)
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        mode = str(conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]).lower()
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        aborted = build_schema(conn, known[shape])
        eras_used = [eras()[s] for s in known[shape].steps]
        id_hex = eras_used[0].id_hex if eras_used else 8
        rows = populate(conn, tasks=tasks, seed=seed, id_hex=id_hex)
        conn.execute("COMMIT")
        if mode == "wal":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return FixtureInfo(path, shape, seed, rows, aborted, mode)


# ---- data -------------------------------------------------------------------------------------
TITLES = [
    "Fix flaky dispatcher test", "Réécrire le parseur de dates", "Ship the Ω release notes",
    "调查内存泄漏", "Migrate board to WAL 🚀", "Überprüfe die Zugriffsrechte", "Add retry w/ backoff",
    "Профилировать медленный запрос", "Triage inbox ✉️", "Write ADR: naïve timestamps",
    "Bump deps (café edition ☕)", "日本語のドキュメントを更新", "Refactor claim lock — part 2",
    "Investigate 'database is locked'", "Ελέγξτε τα αρχεία καταγραφής",
]
PROFILES = ["default", "coder", "reviewer", "research", "ops"]
PLATFORMS = ["tui", "telegram", "discord", "slack", "tui", "matrix"]
NEW_KINDS = ["created", "assigned", "claimed", "commented", "promoted", "reprioritized", "completed",
             "blocked", "unblocked", "edited", "gave_up", "review_requested", "archived"]
OLD_KINDS = ["ready", "priority", "spawn_auto_blocked"]
V0_STATUSES = ["todo", "ready", "running", "blocked", "done", "archived"]
ALL_STATUSES = ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done", "archived"]
FINGERPRINTS = ["1700000000|1790000510", "|179000051092", "unverified"]
#: (status, outcome) of finished runs as the application writes them (spec section 3; some paths
#: copy the outcome into the status); a test keeps them within head's lists.
RUN_ENDINGS = [("crashed", "crashed"), ("timed_out", "timed_out"), ("failed", "spawn_failed"),
               ("spawn_failed", "spawn_failed"), ("gave_up", "gave_up"), ("reclaimed", "reclaimed"),
               ("released", "reclaimed"), ("blocked", "blocked"), ("review", "review_requested"),
               ("ready", "changes_requested"), ("scheduled", "scheduled"), ("completed", "completed")]
LOREM = ("The dispatcher claims the task, spawns a worker and records a heartbeat every few "
         "seconds; when the worker dies the claim expires and the task is reclaimed. ")


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict]) -> int:
    if not rows:
        return 0
    have = column_names(conn, table)
    cols = [c for c in have if c in rows[0]]
    sql = f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn.executemany(sql, ([r.get(c) for c in cols] for r in rows))
    return len(rows)


def _extra_value(rng: random.Random, col: str, declared: str, i: int):
    if "INT" in declared.upper():
        return rng.randrange(0, 1000)
    return f"{col}-{i:05d}"


@dataclass
class _Gen:
    """What the table generators share: the random streams, the board's columns, the task ids."""

    rng: random.Random
    hist: random.Random  # a second stream: run history without shifting the rest
    info: dict[str, dict[str, str]]  # table -> {column: declared type}
    ids: list[str]
    seed: int

    def text_id(self, table: str) -> bool:
        return self.info.get(table, {}).get("id", "").upper() == "TEXT"

    def fill(self, row: dict, table: str, rng: random.Random, n: int) -> dict:
        """Values for the columns of ``table`` that ``row`` does not set (fork and later columns)."""
        for col, declared in self.info[table].items():
            if col not in row:
                row[col] = _extra_value(rng, col, declared, n)
        return row


def populate(conn: sqlite3.Connection, *, tasks: int = 200, seed: int = 1, id_hex: int = 8) -> dict[str, int]:
    """Fill every kanban table present on the board with consistent, deterministic data: one
    generator per table, called in a fixed order (each draws from the shared random stream)."""
    rng = random.Random(seed)
    hist = random.Random(seed + 0x5EED)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    info = {t: {r[1]: (r[2] or "") for r in conn.execute(f"PRAGMA table_info({quote(t)})")} for t in tables}
    if id_hex == 4 and tasks <= 0x10000:
        ids = [f"t_{n:04x}" for n in rng.sample(range(0x10000), tasks)]
    else:
        ids = [f"t_{n:08x}" for n in rng.sample(range(0x100000000), tasks)]
    g = _Gen(rng, hist, info, ids, seed)
    counts: dict[str, int] = {}
    task_rows, run_rows = _tasks_and_runs(g)
    counts["tasks"] = _insert(conn, "tasks", task_rows)
    if run_rows:
        counts["task_runs"] = _insert(conn, "task_runs", run_rows)
    runs_by_task = {r["task_id"]: r["id"] for r in run_rows}
    if "task_events" in info:
        counts["task_events"] = _insert(conn, "task_events", _events(g, runs_by_task))
    if "task_comments" in info:
        counts["task_comments"] = _insert(conn, "task_comments", _comments(g))
    if "task_links" in info and len(ids) > 1:
        counts["task_links"] = _insert(conn, "task_links", _links(g))
    if "task_attachments" in info:
        counts["task_attachments"] = _insert(conn, "task_attachments", _attachments(g))
    if "kanban_notify_subs" in info:
        counts["kanban_notify_subs"] = _insert(conn, "kanban_notify_subs", _notify_subs(g))
    if "recipe_instances" in info:
        inst, links = _recipes(g)
        counts["recipe_instances"] = _insert(conn, "recipe_instances", inst)
        counts["recipe_instance_tasks"] = _insert(conn, "recipe_instance_tasks", links)
    return counts


def _tasks_and_runs(g: _Gen) -> tuple[list[dict], list[dict]]:
    """Tasks, and their runs: every done task has a finished run; half of the running tasks have
    their current run, the other half have none (the upgrade creates it)."""
    rng, tcols = g.rng, g.info.get("tasks", {})
    statuses = ALL_STATUSES if "goal_mode" in tcols else V0_STATUSES
    with_runs = "task_runs" in g.info and "current_run_id" in tcols
    task_rows: list[dict] = []
    run_rows: list[dict] = []
    for i, tid in enumerate(g.ids):
        created = BASE_TIME + i * 37 + rng.randrange(30)
        status = rng.choice(statuses)
        row = _task_row(g, i, tid, created, status)
        for col, declared in tcols.items():
            if col not in row:
                row[col] = _extra_value(rng, col, declared, i)
        if with_runs and status in ("done", "running"):
            _runs_of(g, row, created, run_rows)
        task_rows.append(row)
    return task_rows, run_rows


def _task_row(g: _Gen, i: int, tid: str, created: int, status: str) -> dict:
    rng = g.rng
    long_body = rng.random() < 0.1
    body = (LOREM * rng.randrange(40, 160)) if long_body else (LOREM if rng.random() < 0.7 else None)
    started = created + rng.randrange(60, 3600) if status in ("running", "done", "blocked", "review") else None
    return {
        "id": tid,
        "title": f"{rng.choice(TITLES)} #{i}",
        "body": body,
        "assignee": rng.choice(PROFILES) if rng.random() < 0.8 else None,
        "status": status,
        "priority": rng.randrange(-1, 4),
        "created_by": rng.choice(["user", "dispatcher", "cli", None]),
        "created_at": created,
        "started_at": started,
        "completed_at": started + rng.randrange(60, 7200) if status == "done" and started else None,
        "workspace_kind": rng.choice(["scratch", "scratch", "worktree", "dir"]),
        "workspace_path": f"/home/user/work/{tid}" if rng.random() < 0.5 else None,
        "claim_lock": f"host-{rng.randrange(9)}:{rng.randrange(1 << 20)}" if status == "running" else None,
        "claim_expires": created + 900 if status == "running" else None,
        "tenant": rng.choice([None, None, "acme", "personal"]),
        "result": "merged in #%d" % rng.randrange(1, 9999) if status == "done" else None,
        "idempotency_key": f"idem-{g.seed}-{i}" if rng.random() < 0.3 else None,
        "spawn_failures": rng.choice([0, 0, 0, 1, 2]),
        "last_spawn_error": rng.choice([None, None, "spawn: ENOENT hermes-worker"]),
        "consecutive_failures": rng.choice([0, 0, 1]),
        "last_failure_error": rng.choice([None, None, "worker exited 137"]),
        "worker_pid": rng.randrange(1000, 60000) if status == "running" else None,
        "worker_started_at": rng.choice(FINGERPRINTS + [created + 5]) if status == "running" else None,
        "max_runtime_seconds": rng.choice([None, 1800, 3600]),
        "last_heartbeat_at": created + 120 if status == "running" else None,
        "current_run_id": None,
        "workflow_template_id": rng.choice([None, "tpl_review", "tpl_ship"]),
        "current_step_key": rng.choice([None, "plan", "code", "review"]),
        "skills": json.dumps(rng.sample(["git", "python", "sql", "web", "shell"], rng.randrange(0, 3))),
        "model_override": rng.choice([None, None, "hermes-4-70b"]),
        "provider_override": rng.choice([None, None, "nous"]),
        "reasoning_effort": rng.choice([None, "low", "high"]),
        "max_retries": rng.choice([None, 2, 3]),
        "goal_mode": rng.choice([0, 0, 1]),
        "goal_max_turns": rng.choice([None, 20]),
        "session_id": f"sess_{rng.randrange(1 << 32):08x}" if rng.random() < 0.4 else None,
        "block_kind": rng.choice(["dependency", "needs_input", "capability", "transient"]) if status == "blocked" else None,
        "block_recurrences": rng.randrange(0, 3) if status == "blocked" else 0,
        "branch_name": f"kanban/{tid}" if rng.random() < 0.3 else None,
        "project_id": rng.choice([None, "proj_hermes", "proj_docs"]),
        "completion_contract": json.dumps({"tests": "pass"}) if rng.random() < 0.1 else None,
        "worker_contract": json.dumps({"timeout": 600}) if rng.random() < 0.1 else None,
    }


def _runs_of(g: _Gen, row: dict, created: int, run_rows: list[dict]) -> None:
    """The runs of one done or running task, appended to ``run_rows`` (numbered after the last):
    sometimes an earlier attempt that ended otherwise, then the task's own run."""
    rng, hist, status = g.rng, g.hist, row["status"]
    text_ids = g.text_id("task_runs")
    if hist.random() < 0.3:
        run_id = len(run_rows) + 1
        ended_status, outcome = hist.choice(RUN_ENDINGS)
        t0 = created + hist.randrange(1, 50)
        run_rows.append(g.fill({
            "id": f"run_{run_id:06x}" if text_ids else run_id, "task_id": row["id"],
            "profile": row["assignee"], "step_key": None, "status": ended_status,
            "claim_lock": None, "claim_expires": None, "worker_pid": hist.randrange(1000, 60000),
            "worker_started_at": hist.choice(FINGERPRINTS), "max_runtime_seconds": row["max_runtime_seconds"],
            "last_heartbeat_at": t0 + 30, "started_at": t0, "ended_at": t0 + hist.randrange(31, 600),
            "outcome": outcome, "summary": None,
            "metadata": json.dumps({"exit_code": hist.choice([1, 75, 137])}),
            "error": hist.choice([None, "worker exited 137", "spawn: ENOENT hermes-worker"]),
        }, "task_runs", hist, run_id))
    if status == "done" or rng.random() < 0.5:
        run_id = len(run_rows) + 1
        rid = f"run_{run_id:06x}" if text_ids else run_id
        run_rows.append(g.fill({
            "id": rid, "task_id": row["id"], "profile": row["assignee"], "step_key": row["current_step_key"],
            "status": "running" if status == "running" else ("completed" if hist.random() < 0.3 else "done"),
            "claim_lock": row["claim_lock"], "claim_expires": row["claim_expires"],
            "worker_pid": row["worker_pid"], "worker_started_at": row["worker_started_at"],
            "max_runtime_seconds": row["max_runtime_seconds"],
            "last_heartbeat_at": row["last_heartbeat_at"], "started_at": row["started_at"] or created,
            "ended_at": row["completed_at"], "outcome": "completed" if status == "done" else None,
            "summary": "done: tests green" if status == "done" else None,
            "metadata": json.dumps({"turns": rng.randrange(1, 40), "model": "hermes-4"}),
            "error": None,
        }, "task_runs", rng, run_id))
        row["current_run_id"] = rid if status == "running" else None


def _events(g: _Gen, runs_by_task: dict) -> list[dict]:
    rng, events = g.rng, []
    for i, tid in enumerate(g.ids):
        t0 = BASE_TIME + i * 37
        for k in range(6):
            n = len(events) + 1
            kind = rng.choice(OLD_KINDS) if rng.random() < 0.15 else rng.choice(NEW_KINDS)
            events.append(g.fill({
                "id": f"ev_{n:07x}" if g.text_id("task_events") else n,
                "task_id": tid,
                "run_id": runs_by_task.get(tid) if k >= 3 else None,
                "kind": kind,
                "payload": json.dumps({"by": rng.choice(PROFILES), "n": k, "note": "ünïcødé ✓"}) if rng.random() < 0.8 else None,
                "created_at": t0 + k * 11,
            }, "task_events", rng, n))
    return events


def _comments(g: _Gen) -> list[dict]:
    rng, comments = g.rng, []
    for i, tid in enumerate(g.ids):
        for _ in range(rng.choice([0, 1, 1, 2])):
            n = len(comments) + 1
            comments.append({
                "id": f"c_{n:06x}" if g.text_id("task_comments") else n,
                "task_id": tid, "author": rng.choice(PROFILES + ["user"]),
                "body": rng.choice(["LGTM 👍", "Blocked on the API key.", "Voir le ticket précédent.", LOREM * 3]),
                "created_at": BASE_TIME + i * 37 + 500,
            })
    return comments


def _links(g: _Gen) -> list[dict]:
    pairs = set()
    for _ in range(len(g.ids) // 3):
        a, b = g.rng.sample(g.ids, 2)
        pairs.add((a, b))
    return [{"parent_id": a, "child_id": b} for a, b in sorted(pairs)]


def _attachments(g: _Gen) -> list[dict]:
    rng, atts = g.rng, []
    for i, tid in enumerate(g.ids):
        if rng.random() < 0.1:
            name = rng.choice(["screenshot.png", "trace.log", "résumé.pdf"])
            atts.append({"task_id": tid, "filename": name, "stored_path": f"attachments/{tid}/{name}",
                         "content_type": "application/octet-stream", "size": rng.randrange(10, 1 << 20),
                         "uploaded_by": "user", "created_at": BASE_TIME + i * 37 + 40})
    return atts


def _notify_subs(g: _Gen) -> list[dict]:
    rng, ncols = g.rng, g.info["kanban_notify_subs"]
    text_cursor = ncols.get("last_event_id", "").upper() == "TEXT"
    known = {"delivery_mode": lambda: rng.choice(["notify", "notify+wake", "wake"]),
             "last_ping_event_id": lambda: 0, "notifier_profile": lambda: rng.choice([None, "default"])}
    subs = []
    for i, tid in enumerate(g.ids):
        if rng.random() < 0.2:
            platform = rng.choice(PLATFORMS)
            sub = {"task_id": tid, "platform": platform, "chat_id": f"chat{rng.randrange(1000)}",
                   "thread_id": rng.choice(["", "", "thr-7"]), "user_id": f"u{rng.randrange(100)}",
                   "created_at": BASE_TIME + i * 37 + 60,
                   "last_event_id": str(i * 6) if text_cursor else i * 6}
            for col, declared in ncols.items():
                if col not in sub:
                    sub[col] = known[col]() if col in known else _extra_value(rng, col, declared, i)
            subs.append(sub)
    return subs


def _recipes(g: _Gen) -> tuple[list[dict], list[dict]]:
    inst, links = [], []
    for n, tid in enumerate(g.ids[: max(1, len(g.ids) // 20)], start=1):
        inst.append({"id": n, "recipe_key": "ship-release", "name": f"release-{n}", "root_task_id": tid,
                     "created_at": BASE_TIME + n})
        links.append({"instance_id": n, "task_id": tid, "step_key": "root"})
    return inst, links
