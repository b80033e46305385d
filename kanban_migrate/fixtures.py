"""Build boards of every historical shape with realistic, deterministic data.

The shapes are declared in ``fixtures/shapes.toml`` as the board application's own history (its
CREATE scripts and column passes, release by release); this module replays that history on an
empty file and fills the result with data. Standard library only.

    >>> from kanban_migrate import fixtures
    >>> info = fixtures.create("/tmp/board.db", shape="v0", tasks=50, seed=7)  # doctest: +SKIP
    >>> info.rows["tasks"]  # doctest: +SKIP
    50
"""

from __future__ import annotations

import json
import random
import sqlite3
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .resources import fixtures_dir
from .schema import quote

BASE_TIME = 1_777_000_000  # late April 2026, when the first boards were made


@dataclass(frozen=True)
class Era:
    name: str
    create: tuple[str, ...]
    rename: dict[str, list[list[str]]]
    add: dict[str, tuple[str, ...]]
    after: tuple[str, ...]
    aborts: bool
    id_hex: int
    journal_gate: bool = False  # the release follows the WAL-reset journal-mode rule (#70055)


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    steps: tuple[str, ...]
    pre: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


@dataclass
class FixtureInfo:
    path: Path
    shape: str
    seed: int
    rows: dict[str, int] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)  # errors of releases that aborted (v3)
    journal_mode: str = ""


@lru_cache(maxsize=None)
def _load() -> dict:
    with open(fixtures_dir() / "shapes.toml", "rb") as fh:
        return tomllib.load(fh)


@lru_cache(maxsize=None)
def eras() -> dict[str, Era]:
    raw = _load()["era"]
    out: dict[str, Era] = {}

    def build(name: str) -> Era:
        if name in out:
            return out[name]
        spec = raw[name]

        def inherited(key: str, empty):
            value = spec.get(key, empty)
            return getattr(build(value), key) if isinstance(value, str) else value  # "v1": as era v1

        create = list(inherited("create", ()))
        for old, new in spec.get("create_replace", []):
            if not any(old in stmt for stmt in create):
                raise ValueError(f"shapes.toml: era {name}: create_replace {old!r} matches nothing")
            create = [stmt.replace(old, new) for stmt in create]
        add = {t: tuple(build(v).add[t] if isinstance(v, str) else v)
               for t, v in dict(inherited("add", {})).items()}
        out[name] = Era(
            name=name,
            create=tuple(create),
            rename=spec.get("rename", {}),
            add=add,
            after=tuple(inherited("after", ())),
            aborts=bool(spec.get("aborts", False)),
            id_hex=int(spec.get("id_hex", 8)),
            journal_gate=bool(spec.get("journal_gate", False)),
        )
        return out[name]

    for name in raw:
        build(name)
    return out


def journal_mode_after(steps, sqlite_version: tuple[int, ...] | None = None) -> str:
    """The journal mode a new file has after the releases ``steps`` opened it in turn: releases
    before the WAL-reset gate put every board in WAL; later ones follow the application's rule
    (:func:`kanban_migrate.board.journal_mode_for`) under the SQLite ``sqlite_version``."""
    from .board import journal_mode_for

    mode = "delete"  # a new file
    all_eras = eras()
    for step in steps:
        if all_eras[step].journal_gate:
            mode = journal_mode_for(mode, sqlite_version) or mode
        else:
            mode = "wal"
    return mode


@lru_cache(maxsize=None)
def shapes() -> dict[str, Shape]:
    return {
        name: Shape(
            name=name,
            description=spec.get("description", ""),
            steps=tuple(spec.get("steps", [])),
            pre=tuple(spec.get("pre", [])),
            extra=tuple(spec.get("extra", [])),
        )
        for name, spec in _load()["shape"].items()
    }


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({quote(table)})")]


def open_with(conn: sqlite3.Connection, era: Era) -> str | None:
    """Open the board the way release ``era`` did. Returns the error a release that aborts hit."""
    for stmt in era.create:
        try:
            conn.execute(stmt)
        except sqlite3.OperationalError as exc:
            if era.aborts:
                return str(exc)
            raise
    for table, pairs in era.rename.items():
        for old, new in pairs:
            if new not in _columns(conn, table):
                conn.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    for table, defs in era.add.items():
        have = set(_columns(conn, table))
        if not have:
            continue
        for d in defs:
            ddl, _, backfill = (part.strip() for part in d.partition("|"))
            col = ddl.split()[0]
            if col in have:
                continue
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {ddl}")
            have.add(col)
            if backfill:
                try:
                    conn.execute(f"UPDATE {table} SET {col} = {backfill}")
                except sqlite3.OperationalError:
                    pass  # the column it copies from does not exist on this board
    for stmt in era.after:
        conn.execute(stmt)
    return None


def build_schema(conn: sqlite3.Connection, shape: Shape) -> list[str]:
    aborted = []
    all_eras = eras()
    for stmt in shape.pre:
        conn.execute(stmt)
    for step in shape.steps:
        err = open_with(conn, all_eras[step])
        if err:
            aborted.append(f"{step}: {err}")
    for stmt in shape.extra:
        conn.execute(stmt)
    return aborted


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
    have = _columns(conn, table)
    cols = [c for c in have if c in rows[0]]
    sql = f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    conn.executemany(sql, ([r.get(c) for c in cols] for r in rows))
    return len(rows)


def _extra_value(rng: random.Random, col: str, declared: str, i: int):
    if "INT" in declared.upper():
        return rng.randrange(0, 1000)
    return f"{col}-{i:05d}"


def populate(conn: sqlite3.Connection, *, tasks: int = 200, seed: int = 1, id_hex: int = 8) -> dict[str, int]:
    """Fill every kanban table present on the board with consistent, deterministic data."""
    rng = random.Random(seed)
    hist = random.Random(seed + 0x5EED)  # a second stream: run history without shifting the rest
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    info = {t: {r[1]: (r[2] or "") for r in conn.execute(f"PRAGMA table_info({quote(t)})")} for t in tables}
    tcols = info.get("tasks", {})
    statuses = ALL_STATUSES if "goal_mode" in tcols else V0_STATUSES
    counts: dict[str, int] = {}

    if id_hex == 4 and tasks <= 0x10000:
        ids = [f"t_{n:04x}" for n in rng.sample(range(0x10000), tasks)]
    else:
        ids = [f"t_{n:08x}" for n in rng.sample(range(0x100000000), tasks)]
    text_ids = {t: info[t].get("id", "").upper() == "TEXT" for t in ("task_events", "task_comments", "task_runs") if t in info}

    task_rows, run_rows = [], []
    run_id = 0
    for i, tid in enumerate(ids):
        created = BASE_TIME + i * 37 + rng.randrange(30)
        status = rng.choice(statuses)
        long_body = rng.random() < 0.1
        body = (LOREM * rng.randrange(40, 160)) if long_body else (LOREM if rng.random() < 0.7 else None)
        started = created + rng.randrange(60, 3600) if status in ("running", "done", "blocked", "review") else None
        row = {
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
            "idempotency_key": f"idem-{seed}-{i}" if rng.random() < 0.3 else None,
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
        for col, declared in tcols.items():
            if col not in row:
                row[col] = _extra_value(rng, col, declared, i)
        # Runs: every done task has a finished run; half of the running tasks have their current
        # run, the other half have none (the upgrade creates it).
        if "task_runs" in info and status in ("done", "running") and "current_run_id" in tcols:
            if hist.random() < 0.3:  # an earlier attempt that ended otherwise
                run_id += 1
                ended_status, outcome = hist.choice(RUN_ENDINGS)
                t0 = created + hist.randrange(1, 50)
                run_rows.append({
                    "id": f"run_{run_id:06x}" if text_ids.get("task_runs") else run_id, "task_id": tid,
                    "profile": row["assignee"], "step_key": None, "status": ended_status,
                    "claim_lock": None, "claim_expires": None, "worker_pid": hist.randrange(1000, 60000),
                    "worker_started_at": hist.choice(FINGERPRINTS), "max_runtime_seconds": row["max_runtime_seconds"],
                    "last_heartbeat_at": t0 + 30, "started_at": t0, "ended_at": t0 + hist.randrange(31, 600),
                    "outcome": outcome, "summary": None,
                    "metadata": json.dumps({"exit_code": hist.choice([1, 75, 137])}),
                    "error": hist.choice([None, "worker exited 137", "spawn: ENOENT hermes-worker"]),
                })
                for col, declared in info["task_runs"].items():
                    if col not in run_rows[-1]:
                        run_rows[-1][col] = _extra_value(hist, col, declared, run_id)
            if status == "done" or rng.random() < 0.5:
                run_id += 1
                rid = f"run_{run_id:06x}" if text_ids.get("task_runs") else run_id
                run_rows.append({
                    "id": rid, "task_id": tid, "profile": row["assignee"], "step_key": row["current_step_key"],
                    "status": "running" if status == "running" else ("completed" if hist.random() < 0.3 else "done"),
                    "claim_lock": row["claim_lock"], "claim_expires": row["claim_expires"],
                    "worker_pid": row["worker_pid"], "worker_started_at": row["worker_started_at"],
                    "max_runtime_seconds": row["max_runtime_seconds"],
                    "last_heartbeat_at": row["last_heartbeat_at"], "started_at": started or created,
                    "ended_at": row["completed_at"], "outcome": "completed" if status == "done" else None,
                    "summary": "done: tests green" if status == "done" else None,
                    "metadata": json.dumps({"turns": rng.randrange(1, 40), "model": "hermes-4"}),
                    "error": None,
                })
                for col, declared in info["task_runs"].items():
                    if col not in run_rows[-1]:
                        run_rows[-1][col] = _extra_value(rng, col, declared, run_id)
                row["current_run_id"] = rid if status == "running" else None
        task_rows.append(row)
    counts["tasks"] = _insert(conn, "tasks", task_rows)
    if run_rows:
        counts["task_runs"] = _insert(conn, "task_runs", run_rows)
    runs_by_task = {r["task_id"]: r["id"] for r in run_rows}

    if "task_events" in info:
        ecols = info["task_events"]
        events = []
        for i, tid in enumerate(ids):
            t0 = BASE_TIME + i * 37
            for k in range(6):
                n = len(events) + 1
                kind = rng.choice(OLD_KINDS) if rng.random() < 0.15 else rng.choice(NEW_KINDS)
                ev = {
                    "id": f"ev_{n:07x}" if text_ids.get("task_events") else n,
                    "task_id": tid,
                    "run_id": runs_by_task.get(tid) if k >= 3 else None,
                    "kind": kind,
                    "payload": json.dumps({"by": rng.choice(PROFILES), "n": k, "note": "ünïcødé ✓"}) if rng.random() < 0.8 else None,
                    "created_at": t0 + k * 11,
                }
                for col, declared in ecols.items():
                    if col not in ev:
                        ev[col] = _extra_value(rng, col, declared, n)
                events.append(ev)
        counts["task_events"] = _insert(conn, "task_events", events)

    if "task_comments" in info:
        comments = []
        for i, tid in enumerate(ids):
            for _ in range(rng.choice([0, 1, 1, 2])):
                n = len(comments) + 1
                comments.append({
                    "id": f"c_{n:06x}" if text_ids.get("task_comments") else n,
                    "task_id": tid, "author": rng.choice(PROFILES + ["user"]),
                    "body": rng.choice(["LGTM 👍", "Blocked on the API key.", "Voir le ticket précédent.", LOREM * 3]),
                    "created_at": BASE_TIME + i * 37 + 500,
                })
        counts["task_comments"] = _insert(conn, "task_comments", comments)

    if "task_links" in info and len(ids) > 1:
        pairs = set()
        for _ in range(len(ids) // 3):
            a, b = rng.sample(ids, 2)
            pairs.add((a, b))
        counts["task_links"] = _insert(conn, "task_links", [{"parent_id": a, "child_id": b} for a, b in sorted(pairs)])

    if "task_attachments" in info:
        atts = []
        for i, tid in enumerate(ids):
            if rng.random() < 0.1:
                name = rng.choice(["screenshot.png", "trace.log", "résumé.pdf"])
                atts.append({"task_id": tid, "filename": name, "stored_path": f"attachments/{tid}/{name}",
                             "content_type": "application/octet-stream", "size": rng.randrange(10, 1 << 20),
                             "uploaded_by": "user", "created_at": BASE_TIME + i * 37 + 40})
        counts["task_attachments"] = _insert(conn, "task_attachments", atts)

    if "kanban_notify_subs" in info:
        ncols = info["kanban_notify_subs"]
        text_cursor = ncols.get("last_event_id", "").upper() == "TEXT"
        subs = []
        for i, tid in enumerate(ids):
            if rng.random() < 0.2:
                platform = rng.choice(PLATFORMS)
                sub = {"task_id": tid, "platform": platform, "chat_id": f"chat{rng.randrange(1000)}",
                       "thread_id": rng.choice(["", "", "thr-7"]), "user_id": f"u{rng.randrange(100)}",
                       "created_at": BASE_TIME + i * 37 + 60,
                       "last_event_id": str(i * 6) if text_cursor else i * 6}
                for col, declared in ncols.items():
                    if col not in sub:
                        if col == "delivery_mode":
                            sub[col] = rng.choice(["notify", "notify+wake", "wake"])
                        elif col in ("last_ping_event_id",):
                            sub[col] = 0
                        elif col == "notifier_profile":
                            sub[col] = rng.choice([None, "default"])
                        else:
                            sub[col] = _extra_value(rng, col, declared, i)
                subs.append(sub)
        counts["kanban_notify_subs"] = _insert(conn, "kanban_notify_subs", subs)

    if "recipe_instances" in info:
        inst, links = [], []
        for n, tid in enumerate(ids[: max(1, len(ids) // 20)], start=1):
            inst.append({"id": n, "recipe_key": "ship-release", "name": f"release-{n}", "root_task_id": tid,
                         "created_at": BASE_TIME + n})
            links.append({"instance_id": n, "task_id": tid, "step_key": "root"})
        counts["recipe_instances"] = _insert(conn, "recipe_instances", inst)
        counts["recipe_instance_tasks"] = _insert(conn, "recipe_instance_tasks", links)
    return counts
