"""The CLI over the API: output modes, exit codes, the offline SQL, plain Alembic, the fast path."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path


from support import ROOT, rows, sha256, stamps, tables
from kanban_migrate import head, schema
from kanban_migrate.backup import list_backups
from kanban_migrate.upgrading import upgrade


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


def test_dry_run_and_check_write_nothing(kanban_board):
    path = kanban_board("v0", tasks=120, name="kanban.db")
    digest = sha256(path)
    dry = run_cli("upgrade", "--dry-run", path)
    assert dry.returncode == 0 and "would apply v0 v1 v2 v3 v4 v5 v6 v7" in dry.stdout
    assert "detected: v0" in dry.stdout
    check = run_cli("upgrade", "--check", path)
    assert check.returncode == 1
    assert sha256(path) == digest and not list(path.parent.glob("*.bak"))


def test_json_output(kanban_board):
    path = kanban_board("v2b", tasks=120, name="kanban.db")
    proc = run_cli("upgrade", "--json", path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "upgraded" and out["revision_after"] == "v7"
    assert out["shape"].startswith("v2b") and out["applied"] == list(head.REVISIONS)
    assert Path(out["backup"]).exists()
    again = json.loads(run_cli("upgrade", "--json", path).stdout)
    assert again["status"] == "current"


def test_offline_sql_replays_to_the_same_board(kanban_board, tmp_path):
    """--sql prints what the online upgrade does: replayed with plain sqlite3, it gives the same
    schema and the same rows (but for the run timestamps a backfill takes from the clock)."""
    path = kanban_board("drifted", tasks=120, name="kanban.db")
    replay = tmp_path / "replayed.db"
    shutil.copyfile(path, replay)
    proc = run_cli("upgrade", "--sql", path)
    assert proc.returncode == 0, proc.stderr
    sql = proc.stdout
    assert "CREATE TABLE _kanban_migrate_new_task_events" in sql
    assert "UPDATE tasks SET consecutive_failures" not in sql  # v2b already has them
    c = sqlite3.connect(replay, isolation_level=None)
    c.executescript(sql)
    c.close()
    upgrade(path, backup=False)
    s_online = schema.snapshot(sqlite3.connect(path))
    s_offline = schema.snapshot(sqlite3.connect(replay))
    assert schema.compare(s_offline, head.expected()) == schema.compare(s_online, head.expected())
    for t in tables(path):
        assert rows(replay, t) == rows(path, t), t


def test_plain_alembic_from_the_repository(kanban_board):
    path = kanban_board("v3-half", tasks=120, name="kanban.db")
    alembic = Path(sys.executable).with_name("alembic")
    proc = subprocess.run([str(alembic), "-x", f"db={path}", "upgrade", "head"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    c = sqlite3.connect(path)
    assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [("v7",)]
    assert schema.at_head(schema.snapshot(c), head.expected())
    c.close()


def test_noop_fast_path_imports_neither_sqlalchemy_nor_click(kanban_board):
    path = kanban_board("v5", tasks=120, name="kanban.db")
    upgrade(path, backup=False)
    code = (
        "import sys; from kanban_migrate.cli import main; rc = main(['upgrade', '--quiet', sys.argv[1]]);"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'click', 'rich') if m in sys.modules];"
        "print(rc, heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_backups_are_content_addressed_and_capped(kanban_board, tmp_path):
    path = kanban_board("v1", tasks=120, name="kanban.db")
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(path, pristine)
    first = upgrade(path)
    assert first.backup and Path(first.backup).name.startswith("kanban.db.pre-upgrade.")
    # The same board state again -> the same backup, not a second one.
    shutil.copyfile(pristine, path)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    second = upgrade(path)
    assert second.backup == first.backup
    assert len(list_backups(path)) == 1
    # The backup is a faithful copy of the board before the upgrade.
    assert rows(Path(first.backup), "tasks") == rows(pristine, "tasks")
    # Different states -> different backups, never more than 5.
    for i in range(7):
        shutil.copyfile(pristine, path)
        c = sqlite3.connect(path)
        c.execute("UPDATE tasks SET title = title || ? WHERE rowid = 1", (f" v{i}",))
        c.commit()
        c.close()
        upgrade(path)
    assert len([b for b in list_backups(path) if b.kind == "pre-upgrade"]) == 5
    # Nothing to do -> no backup; --no-backup -> none either.
    before = len(list_backups(path))
    upgrade(path)
    assert len(list_backups(path)) == before


def test_no_backup_flag(kanban_board):
    path = kanban_board("v0", tasks=120, name="kanban.db")
    before = rows(path, "tasks")
    proc = run_cli("upgrade", "--no-backup", path)
    assert proc.returncode == 0 and not list(path.parent.glob("*.bak"))
    assert stamps(path) == [head.HEAD] and len(rows(path, "tasks")) == len(before)


def test_home_discovery_and_quiet(tmp_path, kanban_board_template):
    home = tmp_path / "hermes"
    (home / "kanban" / "boards" / "work").mkdir(parents=True)
    (home / "kanban" / "boards" / "_archived" / "old-1700000000").mkdir(parents=True)
    (home / "profiles" / "coder").mkdir(parents=True)
    shutil.copyfile(kanban_board_template("v0", 30, 1), home / "kanban.db")
    shutil.copyfile(kanban_board_template("v2b", 30, 1), home / "kanban" / "boards" / "work" / "kanban.db")
    shutil.copyfile(kanban_board_template("v1", 30, 1), home / "kanban" / "boards" / "_archived" / "old-1700000000" / "kanban.db")
    shutil.copyfile(kanban_board_template("v0", 30, 2), home / "profiles" / "coder" / "kanban.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}
    proc = run_cli("upgrade", "--quiet", "--home", home, env=env)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    status = json.loads(run_cli("status", "--all", "--json", "--home", home, env=env).stdout)
    pending = {Path(s["path"]).parent.name: s["pending"] for s in status}
    assert pending["hermes"] == [] and pending["work"] == []
    assert pending["old-1700000000"] and pending["coder"]
    proc = run_cli("upgrade", "--all", "--home", home, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "4 board(s)" in proc.stdout
    status = json.loads(run_cli("status", "--all", "--json", "--home", home, env=env).stdout)
    assert len(status) == 4 and all(s["pending"] == [] and s["revision"] == head.HEAD for s in status)
    # All at head now: the stdlib fast path answers, quietly.
    proc = run_cli("upgrade", "--all", "--quiet", "--home", home, env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    # HERMES_HOME of a profile resolves to the shared root.
    env2 = dict(env, HERMES_HOME=str(home / "profiles" / "coder"))
    out = json.loads(run_cli("upgrade", "--json", env=env2).stdout)
    assert {Path(r["path"]).parent.name for r in out} == {"hermes", "work"}


def test_fixtures_commands(tmp_path):
    listed = run_cli("fixtures", "list").stdout
    for shape in ("v0", "v0-v1", "v1", "v2a", "v2b", "v3-half", "v4", "v5", "v6", "v7", "fork",
                  "recipes", "drifted", "reduced"):
        assert f"\n{shape} " in "\n" + listed or listed.startswith(shape + " ")
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert run_cli("fixtures", "create", "--shape", "v3-half", "--tasks", "40", "--seed", "9", a).returncode == 0
    assert run_cli("fixtures", "create", "--shape", "v3-half", "--tasks", "40", "--seed", "9", b).returncode == 0
    for t in tables(a):
        assert rows(a, t) == rows(b, t)
    again = run_cli("fixtures", "create", "--shape", "v0", a)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run_cli("fixtures", "create", "--shape", "v99", tmp_path / "c.db")
    assert bad.returncode == 2 and "unknown shape" in bad.stderr


def test_fixture_data_is_realistic(kanban_board):
    path = kanban_board("v2b", tasks=300, seed=3)
    tasks = rows(path, "tasks")
    assert any(len(t["body"] or "") > 4096 for t in tasks)  # overflow pages
    assert any(not t["title"].isascii() for t in tasks)
    assert any(t["status"] == "running" and t["current_run_id"] is None for t in tasks)
    kinds = {e["kind"] for e in rows(path, "task_events")}
    assert {"ready", "priority", "spawn_auto_blocked"} <= kinds
    platforms = {s["platform"] for s in rows(path, "kanban_notify_subs")}
    assert "tui" in platforms and platforms - {"tui"}
    v7 = kanban_board("v7", tasks=300, seed=3)
    fingerprints = {t["worker_started_at"] for t in rows(v7, "tasks")}
    assert {"1700000000|1790000510", "|179000051092", "unverified"} & fingerprints


def test_history_and_status(kanban_board):
    hist = run_cli("history").stdout.splitlines()
    assert [line.split()[0] for line in hist] == list(head.REVISIONS)
    assert hist[-1].endswith("(head)")
    path = kanban_board("v6", tasks=120, name="kanban.db")
    out = json.loads(run_cli("status", "--json", path).stdout)
    assert out["revision"] is None and out["pending"] == list(head.REVISIONS) and out["shape"] == "v6"


def test_demo_command(tmp_path):
    proc = run_cli("demo", "--dir", tmp_path / "demo", "--tasks", "50")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-> v7, applied v0 v1 v2 v3 v4 v5 v6 v7" in proc.stdout
    assert "second run" in proc.stdout and "nothing to do" in proc.stdout


def test_fast_path_prints_what_the_full_path_prints(tmp_path, kanban_board_template):
    """At head the stdlib fast path answers; its output has the same form as the full path's."""
    home = tmp_path / "hermes"
    home.mkdir()
    shutil.copyfile(kanban_board_template("v0", 20, 1), home / "kanban.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}
    full = json.loads(run_cli("upgrade", "--json", "--home", home, env=env).stdout)
    fast = json.loads(run_cli("upgrade", "--json", "--home", home, env=env).stdout)
    assert isinstance(full, list) and isinstance(fast, list)
    assert [r["path"] for r in full] == [r["path"] for r in fast]
    assert (full[0]["status"], fast[0]["status"]) == ("upgraded", "current")
    one = json.loads(run_cli("upgrade", "--json", home / "kanban.db", env=env).stdout)
    assert isinstance(one, dict) and one["status"] == "current"
    text = run_cli("upgrade", "--home", home, env=env).stdout
    assert "1 board(s): 1 current" in text
