"""Undo: ``restore`` puts a kept copy back byte for byte and is itself undoable; ``backups --prune``
never throws away a board's last quarantine copy unless forced; nothing is half-done after a
refusal, a full disk or a kill."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corruption as C
from support import STRACE, dir_state, kill_at, rows, sha256
from kanban_migrate.restore import state_digest

TASKS = 40


def cli(*args, preexec_fn=None, prefix=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES", "KANBAN_MIGRATE"))}
    return subprocess.run([*prefix, sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, preexec_fn=preexec_fn)


@pytest.fixture
def recovered(tmp_path, kanban_board_template):
    """A board as ``recover`` leaves it: the rebuilt board in place (at head, mode 0600) and the
    original kept as ``kanban.db.corrupt.<sha16>.bak`` with its -wal and -shm."""
    from kanban_migrate.upgrading import upgrade

    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v0", TASKS, 5), board)
    digest = sha256(board)[:16]
    aside = board.with_name(f"kanban.db.corrupt.{digest}.bak")
    shutil.copyfile(board, aside)
    Path(f"{aside}-wal").write_bytes(os.urandom(3000))
    Path(f"{aside}-shm").write_bytes(os.urandom(700))
    upgrade(board, backup=False)
    board.chmod(0o600)
    return board, aside


def files(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_restore_puts_the_original_back_byte_for_byte_and_is_undoable(recovered):
    board, aside = recovered
    kept = {s: sha256(Path(f"{aside}{s}")) for s in ("", "-wal", "-shm")}
    current = sha256(board)
    proc = cli("restore", "--json", board)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["restored_from"] == str(aside) and result["sidecars"] == ["-wal", "-shm"]
    for s, digest in kept.items():
        assert sha256(Path(f"{board}{s}")) == digest, s  # the board and its sidecars, byte for byte
        assert sha256(Path(f"{aside}{s}")) == digest, s  # the kept copy stays too
    assert (board.stat().st_mode & 0o777) == 0o600  # the board's mode, not the backup's
    pre = Path(result["kept_as"])
    assert pre.name == f"kanban.db.pre-restore.{current[:16]}.bak" and sha256(pre) == current
    assert not list(board.parent.glob(".*tmp"))
    # restore again, without naming a copy: the newest is the pre-restore one, so this undoes it
    again = cli("restore", board)
    assert again.returncode == 0, again.stderr
    assert sha256(board) == current
    assert not Path(f"{board}-wal").exists() and not Path(f"{board}-shm").exists()
    listed = json.loads(cli("backups", "--json", board).stdout)
    assert {b["state"] for b in listed} == {"quarantine", "pre-restore"}


def test_restore_a_pre_upgrade_backup_gives_the_rows_back(tmp_path, kanban_board_template):
    from kanban_migrate.upgrading import upgrade

    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v2b", TASKS, 1), board)
    before = rows(board, "tasks")
    result = upgrade(board)
    assert rows(board, "tasks") != before  # the upgrade added columns
    proc = cli("restore", board, Path(result.backup).name)
    assert proc.returncode == 0, proc.stderr
    assert rows(board, "tasks") == before and sha256(board) == sha256(Path(result.backup))


def test_restore_of_a_missing_board_puts_it_back_with_nothing_kept(recovered):
    board, aside = recovered
    board.unlink()
    proc = cli("restore", "--json", board)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kept_as"] is None and sha256(board) == sha256(aside)


def test_restore_refuses_a_board_in_use(recovered):
    board, _ = recovered
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]);"
                               "c.execute('select count(*) from tasks').fetchall(); print('open', flush=True);"
                               "time.sleep(60)", str(board)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        before = dir_state(board.parent)
        proc = cli("restore", board)
        assert proc.returncode == 4
        assert proc.stderr.count("\n") == 1 and "in use" in proc.stderr and "stop the board's processes" in proc.stderr
        assert dir_state(board.parent) == before
    finally:
        holder.kill()
        holder.wait()


def test_restore_refuses_a_copy_changed_since_it_was_made(recovered):
    board, aside = recovered
    C.poke(aside, 5000, b"tampered")
    before = dir_state(board.parent)
    proc = cli("restore", board, aside)
    assert proc.returncode == 3 and "no longer matches its name" in proc.stderr
    assert dir_state(board.parent) == before


def test_restore_on_a_full_disk_changes_nothing(recovered):
    """A file-size limit below the copy's size: EFBIG while writing the copy beside the board ->
    exit 5, every file as it was, no temporary left."""
    board, aside = recovered
    before = dir_state(board.parent)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = cli("restore", board, preexec_fn=limit)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.count("\n") == 1 and "cannot restore" in proc.stderr
    assert dir_state(board.parent) == before


@pytest.mark.skipif(not STRACE, reason="needs strace to kill at a chosen rename")
@pytest.mark.parametrize("when", [1, 2, 3])  # the board, its -wal, its -shm
def test_a_kill_during_restore_loses_no_state(recovered, when):
    """SIGKILL at the N-th rename: both states, the board's and the copy's, are still on disk whole
    (the board's in place or in its pre-restore copy), and a second restore finishes the job."""
    board, aside = recovered
    current = state_digest(board)
    wanted = sha256(aside)
    proc = cli("restore", board, aside, prefix=tuple(kill_at("rename", when)))
    assert proc.returncode != 0 or sha256(board) == wanted
    on_disk = {state_digest(p) for p in board.parent.iterdir()
               if p.is_file() and not p.name.endswith(("-wal", "-shm", ".tmp"))}
    assert current in on_disk and state_digest(aside) in on_disk
    for p in board.parent.glob(".*.tmp"):
        p.unlink()  # a killed run's leftover copy: the next run writes its own
    finish = cli("restore", board, aside)
    assert finish.returncode == 0, finish.stderr
    assert sha256(board) == wanted


# ---- pruning ----------------------------------------------------------------------------------------
@pytest.fixture
def many(recovered):
    """Three quarantine copies (the oldest with -wal/-shm) and two pre-upgrade backups."""
    board, aside = recovered
    now = time.time()
    made = []
    for k, kind in ((1, "corrupt"), (2, "corrupt"), (1, "pre-upgrade"), (2, "pre-upgrade")):
        p = board.with_name(f"kanban.db.{kind}.{k:016x}.bak")
        shutil.copyfile(aside, p)
        os.utime(p, (now - 3600 * k, now - 3600 * k))
        made.append(p)
    os.utime(aside, (now - 10, now - 10))
    return board, aside


def test_prune_0_spares_the_last_quarantine_copy_and_dry_run_deletes_nothing(many):
    board, aside = many
    before = dir_state(board.parent)
    dry = cli("backups", "--prune", "0", "--dry-run", board)
    assert dry.returncode == 0 and dir_state(board.parent) == before
    assert "would prune 4" in dry.stdout and "--force deletes it too" in dry.stdout
    proc = cli("backups", "--prune", "0", "--json", board)
    assert proc.returncode == 0
    left = sorted(p.name for p in board.parent.iterdir() if ".bak" in p.name)
    assert left == sorted([aside.name, f"{aside.name}-wal", f"{aside.name}-shm"])  # the newest quarantine copy, whole
    assert sha256(board) == before["kanban.db"]
    forced = cli("backups", "--prune", "0", "--force", board)
    assert forced.returncode == 0
    assert not [p for p in board.parent.iterdir() if ".bak" in p.name]


def test_prune_keeps_the_newest_n_of_each_kind(many):
    board, aside = many
    proc = cli("backups", "--prune", "1", board)
    assert proc.returncode == 0, proc.stderr
    left = sorted(p.name for p in board.parent.iterdir() if p.name.endswith(".bak"))
    assert left == sorted([aside.name, f"kanban.db.pre-upgrade.{1:016x}.bak"])


def test_restore_undoes_a_real_recover(tmp_path, kanban_board_template):
    """recover in place, then restore: the damaged original is back byte for byte, and what
    recover made is kept (restoring that copy brings the recovered board back)."""
    import random

    from corruption import overwrite_leaf

    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v0", 200, 3), board)
    overwrite_leaf(board, "task_events", random.Random(4))
    original = sha256(board)
    rec = cli("recover", board)
    assert rec.returncode in (0, 1), rec.stderr
    recovered = state_digest(board)
    proc = cli("restore", "--json", board)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert ".corrupt." in result["restored_from"] and sha256(board) == original
    again = cli("restore", board, result["kept_as"])
    assert again.returncode == 0, again.stderr
    assert state_digest(board) == recovered
