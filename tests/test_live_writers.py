"""upgrade beside a live application: writer processes that insert tasks and events in their own
BEGIN IMMEDIATE transactions (120 s busy timeout, as the board application) throughout a large
upgrade. Every write they committed is there afterwards, exactly once; the board is at head and
passes integrity_check."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from support import execute, pragma_rows
from kanban_migrate import head, schema
from kanban_migrate.upgrading import upgrade

WRITER = r"""
import json, sqlite3, sys, time
path, tag, out = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlite3.connect(path, timeout=120, isolation_level=None)
conn.execute("PRAGMA busy_timeout=120000")
conn.execute("PRAGMA synchronous=FULL")
done = []
n = 0
deadline = time.time() + 60
with open(out, "w") as log:
    while time.time() < deadline:
        n += 1
        tid = f"t_{tag}{n:05d}"
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # the application retries on "locked"
                if "locked" not in str(exc):
                    raise
        conn.execute("INSERT INTO tasks (id, title, status, created_at) VALUES (?, ?, 'running', ?)",
                     (tid, f"live {tag} {n}", int(time.time())))
        for k in range(3):
            conn.execute("INSERT INTO task_events (task_id, kind, payload, created_at) VALUES (?, 'created', ?, ?)",
                         (tid, json.dumps({"k": k}), int(time.time())))
        conn.execute("COMMIT")
        log.write(tid + "\n")
        log.flush()
        if open(sys.argv[4]).read().strip() == "stop":
            break
        time.sleep(0.002)
"""


def test_upgrade_interleaves_with_live_writers(tmp_path, kanban_board_template):
    import shutil

    path = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v0", 8000, 11), path)
    stop = tmp_path / "stop"
    stop.write_text("")
    writers = []
    for tag in "abc":
        log = tmp_path / f"writer-{tag}.log"
        writers.append((subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(log), str(stop)]), log))
    time.sleep(0.5)  # the writers are running
    result = upgrade(path)
    assert result.revision_after == head.HEAD
    time.sleep(0.5)  # ... and keep writing to the upgraded board
    stop.write_text("stop")
    for proc, _ in writers:
        assert proc.wait(timeout=120) == 0
    committed = [line for _, log in writers for line in log.read_text().split()]
    assert len(committed) > 30
    conn = sqlite3.connect(path)
    ids = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE title LIKE 'live %'")]
    assert sorted(ids) == sorted(committed)  # every committed write, none twice
    counts = dict(conn.execute(
        "SELECT task_id, COUNT(*) FROM task_events WHERE task_id IN (SELECT id FROM tasks WHERE title LIKE 'live %') "
        "GROUP BY task_id"))
    assert set(counts.values()) == {3} and len(counts) == len(committed)
    assert schema.at_head(schema.snapshot(conn), head.expected())
    conn.close()
    assert pragma_rows(path, "integrity_check") == [("ok",)]


def verify_beside_a_writer(path: Path, **options):
    """verify(path) in a thread while a writer with a 1 s busy timeout commits until it ends
    ("database is locked" after 1 s would fail the test): (its report, commits made meanwhile)."""
    import threading

    from kanban_migrate.verifying import verify

    conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=1000")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("report", verify(path, **options)))
    t.start()
    during = 0
    while t.is_alive():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_00000000', 'created', 1)")
        conn.execute("COMMIT")
        during += 1
    t.join()
    conn.close()
    return result["report"], during


def test_verify_never_holds_up_a_writer(kanban_board):
    """verify reads in read transactions only: on a WAL board a writer with a short busy timeout
    commits throughout a verify of a large board, and its commits are no damage."""
    path = kanban_board("v7", tasks=8000, seed=12, journal_mode="wal", name="kanban.db")
    upgrade(path, backup=False)
    assert pragma_rows(path, "journal_mode") == [("wal",)]
    report, during = verify_beside_a_writer(path, full=True)
    assert during >= 5
    assert not report.errors and report.not_checked is None, [f.message for f in report.errors]


def test_verify_of_a_delete_board_never_holds_up_a_writer(tmp_path, kanban_board):
    """A DELETE-mode board (the application's mode on SQLite 3.7.0-3.51.2): verify reads it without
    a lock, or from a snapshot mended under one short lock, never holding the lock through a whole
    check. A writer with a 1 s busy timeout commits throughout, and the writer's commits during
    the check are no damage."""
    path = kanban_board("v7", tasks=8000, seed=12, journal_mode="wal", name="kanban.db")
    upgrade(path, backup=False)
    execute(path, "PRAGMA journal_mode=DELETE")
    assert pragma_rows(path, "journal_mode") == [("delete",)]
    report, during = verify_beside_a_writer(path)
    assert during >= 5
    assert not report.errors and report.not_checked is None, [f.message for f in report.errors]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kanban.db"]
