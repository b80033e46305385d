"""Each revision and its alembic_version update commit together or not at all."""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from support import pragma_rows, rows, stamps, tables
from kanban_migrate import head, schema
from kanban_migrate.upgrading import missing_at, ops, upgrade


def dump(path):
    return {t: rows(path, t) for t in tables(path)}


def test_failure_in_the_middle_of_a_revision_leaves_nothing_of_it(kanban_board, monkeypatch):
    path = kanban_board("drifted", tasks=120, name="kanban.db")
    real = ops.backfill_running_runs

    def explode():
        real()  # v4 has rebuilt the drifted tables and inserted runs by now...
        raise RuntimeError("injected failure")  # ...and then fails

    monkeypatch.setattr(ops, "backfill_running_runs", explode)
    with pytest.raises(RuntimeError, match="injected"):
        upgrade(path, backup=False)
    # v0..v3 committed; nothing of v4 remains.
    assert stamps(path) == ["v3"]
    c = sqlite3.connect(path)
    s = schema.snapshot(c)
    c.close()
    assert not s.has_table("task_attachments")
    assert s.tables["task_events"].columns["id"].type == "TEXT"  # not rebuilt
    assert not any(t.startswith("_kanban_migrate") for t in s.tables)
    assert pragma_rows(path, "integrity_check") == [("ok",)]
    monkeypatch.undo()
    result = upgrade(path, backup=False)
    assert result.applied == ["v4", "v5", "v6", "v7"]
    assert schema.at_head(schema.snapshot(sqlite3.connect(path)), head.expected())


def test_sigkill_at_random_moments_never_damages_the_board(tmp_path, kanban_board_template):
    """SIGKILL a large upgrade at random moments: integrity_check passes after every kill, and a
    last run reaches head with exactly the data of an undisturbed upgrade."""
    source = kanban_board_template("drifted", 6000, 5)
    reference = tmp_path / "reference.db"
    shutil.copyfile(source, reference)
    t0 = time.monotonic()
    upgrade(reference, backup=False)
    full = time.monotonic() - t0
    victim = tmp_path / "victim.db"
    shutil.copyfile(source, victim)
    rng = random.Random(20261125)
    seen_stamps = set()
    interrupted = 0
    upper = 0.35 + full  # the child also starts an interpreter, so most kills land inside the chain
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-m", "kanban_migrate", "upgrade", "--no-backup", str(victim)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, upper))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert pragma_rows(victim, "integrity_check") == [("ok",)]
        c = sqlite3.connect(victim)
        has = c.execute("SELECT 1 FROM sqlite_master WHERE name='alembic_version'").fetchone()
        seen = c.execute("SELECT version_num FROM alembic_version").fetchone() if has else None
        stamp_now = seen[0] if seen else None
        if stamp_now is not None:  # each revision commits whole: the schema bears out every stamp
            assert missing_at(schema.snapshot(c), stamp_now) == [], stamp_now
        seen_stamps.add(stamp_now)
        c.close()
        if stamp_now == head.HEAD:  # this kill came too late (a loaded machine): start over, kill sooner
            shutil.copyfile(source, victim)
            upper = max(0.1, upper / 2)
        else:
            interrupted += 1
    result = upgrade(victim, backup=False)
    assert result.revision_after == head.HEAD
    got, want = dump(victim), dump(reference)
    for t in want:  # backfilled runs carry the time of their upgrade only where a task had none
        assert got[t] == want[t], t
    print("stamps seen after kills:", sorted(map(str, seen_stamps)), "full upgrade", round(full, 2), "s")
    assert seen_stamps <= {None, *head.REVISIONS}
    assert interrupted, "every kill came after the upgrade had finished: nothing was interrupted"
