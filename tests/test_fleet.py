"""Fleet-level commands on a whole Hermes home: ``boards``, ``upgrade --all``, ``backups``.

The home holds 50 boards of mixed shapes in every place spec section 1 names (the default board,
named boards, archived boards, old per-profile boards), two boards already at head, stray
quarantine backups, and two damaged boards:

* ``kanban/boards/proj-07``: the root page of ``tasks`` (an interior b-tree page) overwritten with
  garbage after ``PRAGMA quick_check`` said ok. Reading the schema still works, so the quick
  listing says ``needs-upgrade``; ``boards --check`` and ``upgrade`` see the damage.
* ``kanban/boards/_archived/old-03-...``: page 1 past the 100-byte header overwritten, so even
  reading the schema fails ("malformed"): ``damaged`` in every listing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corruption as C
from support import dir_state, sha256
from kanban_migrate import fixtures as fx
from kanban_migrate import fleet
from kanban_migrate.cli import render
from kanban_migrate.backup import list_backups

SHAPES = list(fx.shapes())
TASKS = 20
CORRUPT_INTERIOR = "kanban/boards/proj-07/kanban.db"
CORRUPT_SCHEMA = "kanban/boards/_archived/old-03-1777000300/kanban.db"
AT_HEAD = ("kanban/boards/proj-11/kanban.db", "profiles/ops/kanban.db")
PROFILES = ("coder", "reviewer", "research", "ops", "writer", "triage", "infra", "design",
            "data", "mobile", "web", "qa", "docs", "sre")
PROFILE_SHAPES = ("v0", "v0-v1", "v1", "v2a", "v3-half")


def env_without_hermes() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env_without_hermes())


def corrupt_interior_page(path: Path) -> None:
    """The root page of ``tasks`` (an interior page) garbled after quick_check said ok."""
    conn = sqlite3.connect(path)  # read-write, so that closing it leaves no -wal/-shm behind
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    root = C.root_of(path, "tasks")
    assert C.btree_pages(path, root)[root] == 0x05, "the tasks root should be an interior table page"
    C.garble_root(path, "tasks", random.Random(root))


def write_board_json(d: Path, slug: str, archived: bool = False) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "board.json").write_text(json.dumps({"slug": slug, "name": slug.title(), "description": "",
                                              "icon": "", "color": "", "created_at": 1777000000,
                                              "archived": archived}))


@pytest.fixture(scope="module")
def head_board(kanban_board_template, tmp_path_factory) -> Path:
    """A small board already upgraded (stamped at head), without its backup."""
    from kanban_migrate.upgrading import upgrade

    d = tmp_path_factory.mktemp("head-board")
    path = d / "kanban.db"
    shutil.copyfile(kanban_board_template("v1", TASKS, 3), path)
    upgrade(path, backup=False)
    return path


@pytest.fixture(scope="module")
def pristine_home(kanban_board_template, head_board, tmp_path_factory):
    """``(home, expected)``: the 50-board home described in the module docstring; ``expected`` maps
    each board's path (relative to the home) to ``(kind, name, health, health with --check)``."""
    home = tmp_path_factory.mktemp("fleet") / "hermes"
    expected: dict[str, tuple[str, str, str, str]] = {}
    n = 0

    def put(rel: str, kind: str, name: str, shape: str) -> Path:
        nonlocal n
        n += 1
        dest = home / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in AT_HEAD:
            shutil.copyfile(head_board, dest)
            expected[rel] = (kind, name, "unchecked", "ok")  # integrity is checked only with --check
        else:
            shutil.copyfile(kanban_board_template(shape, TASKS, 1 + n % 3), dest)
            expected[rel] = (kind, name, "needs-upgrade", "needs-upgrade")
        return dest

    put("kanban.db", "default", "default", "v0")
    write_board_json(home / "kanban/boards/default", "default")
    for i in range(25):
        slug = f"proj-{i:02d}"
        write_board_json(home / "kanban/boards" / slug, slug)
        put(f"kanban/boards/{slug}/kanban.db", "named", slug, SHAPES[i % len(SHAPES)])
    (home / "kanban/current").write_text("proj-00\n")
    for i in range(10):
        folder = f"old-{i:02d}-{1777000000 + 100 * i}"
        write_board_json(home / "kanban/boards/_archived" / folder, folder.rsplit("-", 1)[0], archived=True)
        put(f"kanban/boards/_archived/{folder}/kanban.db", "archived", folder, SHAPES[(i * 4 + 1) % len(SHAPES)])
    for i, p in enumerate(PROFILES):
        put(f"profiles/{p}/kanban.db", "profile", p, PROFILE_SHAPES[i % len(PROFILE_SHAPES)])
    assert n == 50

    corrupt_interior_page(home / CORRUPT_INTERIOR)
    expected[CORRUPT_INTERIOR] = expected[CORRUPT_INTERIOR][:2] + ("needs-upgrade", "damaged")
    C.damage_schema_page(home / CORRUPT_SCHEMA, random.Random(1))
    expected[CORRUPT_SCHEMA] = expected[CORRUPT_SCHEMA][:2] + ("damaged", "damaged")
    for rel in (CORRUPT_INTERIOR, CORRUPT_SCHEMA):
        conn = sqlite3.connect(f"file:{home / rel}?mode=ro&immutable=1", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        finally:
            conn.close()
        assert rows != [("ok",)], rel

    # Stray quarantine backups as the application leaves them: beside a board, and in a profile
    # folder whose board is gone.
    q1 = home / "kanban/boards/proj-02/kanban.db.corrupt.00000000000000aa.bak"
    shutil.copyfile(kanban_board_template("v0", TASKS, 1), q1)
    (home / "profiles/ghost").mkdir(parents=True)
    q2 = home / "profiles/ghost/kanban.db.corrupt.00000000000000bb.bak"
    shutil.copyfile(kanban_board_template("v2a", TASKS, 1), q2)
    for p in (home / "kanban/boards/proj-05/kanban.db.init.lock", home / "kanban/boards/proj-05/kanban.db.dispatch.lock"):
        p.write_text("")
    for d in ("workspaces", "logs", "attachments"):
        (home / "kanban/boards/proj-00" / d).mkdir()
    return home, expected


@pytest.fixture
def home(pristine_home, tmp_path) -> tuple[Path, dict]:
    src, expected = pristine_home
    dest = tmp_path / "hermes"
    shutil.copytree(src, dest)
    return dest, expected


def listed(home: Path, *extra) -> list[dict]:
    proc = run_cli("boards", "--json", "--home", home, *extra)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


# ---- boards ---------------------------------------------------------------------------------------
def test_boards_lists_every_board_with_kind_and_health(home):
    home, expected = home
    before = dir_state(home)
    items = listed(home)
    assert dir_state(home) == before  # read-only: no -wal/-shm, nothing changed
    boards = {str(Path(b["path"]).relative_to(home)): b for b in items if b["kind"] != "backup"}
    assert set(boards) == set(expected)
    for rel, (kind, name, health, _checked) in expected.items():
        b = boards[rel]
        assert (b["kind"], b["name"], b["health"]) == (kind, name, health), rel
        assert b["size"] == (home / rel).stat().st_size
    # The order the application finds them in: default, named, archived, per-profile.
    kinds = [b["kind"] for b in items if b["kind"] != "backup"]
    assert kinds == sorted(kinds, key=["default", "named", "archived", "profile"].index)
    for rel in AT_HEAD:
        assert boards[rel]["revision"] == "v7" and boards[rel]["shape"].startswith("v7")
    legacy = [b for rel, b in boards.items() if b["health"] == "needs-upgrade"]
    assert legacy and all(b["revision"] is None and b["shape"] for b in legacy)
    assert boards["profiles/coder/kanban.db"]["shape"] == "v0"
    damaged = boards[CORRUPT_SCHEMA]
    assert damaged["shape"] is None and "malformed" in damaged["detail"] and "recover" in damaged["detail"]

    backups = [b for b in items if b["kind"] == "backup"]
    assert {(str(Path(b["path"]).relative_to(home)), b["name"], b["state"]) for b in backups} == {
        ("kanban/boards/proj-02/kanban.db.corrupt.00000000000000aa.bak", "proj-02", "quarantine"),
        ("profiles/ghost/kanban.db.corrupt.00000000000000bb.bak", "ghost", "quarantine"),
    }
    assert all(b["shape"] and b["health"] == "needs-upgrade" for b in backups)


def test_boards_check_adds_quick_check(home):
    home, expected = home
    before = dir_state(home)
    items = listed(home, "--check")
    assert dir_state(home) == before
    got = {str(Path(b["path"]).relative_to(home)): b["health"] for b in items if b["kind"] != "backup"}
    assert got == {rel: e[3] for rel, e in expected.items()}
    detail = next(b["detail"] for b in items if b["path"].endswith(CORRUPT_INTERIOR))
    assert "quick_check" in detail and "recover" in detail


def test_boards_plain_text_when_piped(home):
    home, expected = home
    proc = run_cli("boards", "--home", home)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "shape", "revision", "size", "health", "path"]
    assert "\x1b[" not in proc.stdout  # no colours when piped
    assert len(lines) == 1 + len(expected) + 2 + 1  # header, boards, two backups, summary
    assert lines[-1] == ("50 board(s): 1 damaged, 47 needs-upgrade, 2 unchecked; 2 backup(s); "
                         "--check runs PRAGMA quick_check on each")
    row = next(line for line in lines if line.endswith(f"{home}/{CORRUPT_SCHEMA}"))
    assert row.split()[:2] == ["archived", "old-03-1777000300"] and " damaged " in row


def test_boards_table_on_a_terminal(home):
    home, _ = home
    items = fleet.boards(home)
    out = render.table(render.BOARD_HEADER, render.board_rows(items), width=120, styles=render.board_styles())
    assert "\x1b[33mneeds-upgrade" in out and "proj-07" in out


def test_boards_api_pinned_file_and_odd_files(tmp_path, kanban_board_template, head_board, monkeypatch):
    home = tmp_path / "hermes"
    named = home / "kanban/boards"
    for slug, content in (("text", b"this is not a database\n" * 40), ("empty", b"")):
        (named / slug).mkdir(parents=True)
        (named / slug / "kanban.db").write_bytes(content)
    (named / "other").mkdir()
    c = sqlite3.connect(named / "other/kanban.db")
    c.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    c.commit()
    c.close()
    (named / "future").mkdir()
    shutil.copyfile(head_board, named / "future/kanban.db")
    c = sqlite3.connect(named / "future/kanban.db")
    c.execute("UPDATE alembic_version SET version_num='v99'")
    c.commit()
    c.close()
    pinned = tmp_path / "worker" / "pinned.db"
    pinned.parent.mkdir()
    shutil.copyfile(kanban_board_template("v2b", TASKS, 1), pinned)

    monkeypatch.setenv("HERMES_KANBAN_HOME", str(home))
    monkeypatch.setenv("HERMES_KANBAN_DB", str(pinned))
    got = {(b.kind, b.name): (b.health, b.shape) for b in fleet.boards()}
    assert got == {
        ("pinned", "pinned"): ("needs-upgrade", "v2b +legacy-counters"),
        ("named", "empty"): ("not-a-board", None),
        ("named", "future"): ("newer", "v7 +legacy-counters"),  # a v1 board taken to head
        ("named", "other"): ("not-a-board", "not-kanban"),
        ("named", "text"): ("not-a-board", None),
    }
    assert fleet.boards()[0].kind == "pinned"
    # An explicit home ignores the pinned file, as the application's discovery does.
    assert "pinned" not in {b.kind for b in fleet.boards(home)}
    assert fleet.boards(tmp_path / "nowhere") == []


def test_boards_is_fast_on_a_home_of_many_boards(home):
    """No quick_check and no full check: the 50 boards list in well under a second in-process."""
    home, expected = home
    fleet.boards(home)  # warm the one-time imports (SQLAlchemy, for the head schema)
    t0 = time.perf_counter()
    items = fleet.boards(home)
    elapsed = time.perf_counter() - t0
    assert len(items) == len(expected) + 2
    assert elapsed < 2.0, f"{elapsed:.2f} s for {len(items)} files"


# ---- upgrade --all on the fleet ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def upgraded(pristine_home, tmp_path_factory):
    """The home after ``upgrade --all`` (run once), with both runs' outputs."""
    src, expected = pristine_home
    home = tmp_path_factory.mktemp("fleet-upgraded") / "hermes"
    shutil.copytree(src, home)
    corrupt = {rel: sha256(home / rel) for rel in (CORRUPT_INTERIOR, CORRUPT_SCHEMA)}
    first = run_cli("upgrade", "--all", "--home", home)
    second = run_cli("upgrade", "--all", "--quiet", "--home", home)
    return home, expected, corrupt, first, second


def failure_lines(stderr: str, home: Path) -> dict[str, str]:
    lines = stderr.splitlines()
    out = {}
    for line in lines:
        assert line.startswith(f"kanban-migrate: {home}/"), line
        rel = line.removeprefix(f"kanban-migrate: {home}/").split(": ", 1)[0]
        out[rel] = line
    assert len(out) == len(lines)
    return out


def test_upgrade_all_upgrades_the_healthy_and_refuses_the_damaged(upgraded):
    home, expected, corrupt, first, _ = upgraded
    assert first.returncode == 3, first.stderr
    failures = failure_lines(first.stderr, home)
    assert set(failures) == {CORRUPT_INTERIOR, CORRUPT_SCHEMA}
    for line in failures.values():
        assert "recover" in line
        assert "damaged" in line or "quick_check" in line
    # One summary table: a header, one row per board, one count line.
    out = first.stdout.splitlines()
    assert [line.split() for line in out].count(["shape", "revision", "result", "board"]) == 1
    assert sum(1 for line in out if "board(s):" in line) == 1
    assert out[-1] == "50 board(s): 2 current, 2 refused, 46 upgraded"
    assert len(out) == 1 + 50 + 1
    for rel in expected:
        assert sum(1 for line in out if line.endswith(f" {home}/{rel}")) == 1, rel
    # The damaged boards are untouched, with no backup and no sidecar.
    for rel, digest in corrupt.items():
        assert sha256(home / rel) == digest
        assert sorted(p.name for p in (home / rel).parent.glob("kanban.db*")) == ["kanban.db"]
    # Every other board is at head now.
    items = {str(Path(b["path"]).relative_to(home)): b for b in listed(home) if b["kind"] != "backup"}
    for rel, b in items.items():
        want = "unchecked" if rel not in corrupt else expected[rel][2]
        assert b["health"] == want, rel
    checked = {str(Path(b["path"]).relative_to(home)): b["health"] for b in listed(home, "--check")}
    assert checked[CORRUPT_INTERIOR] == checked[CORRUPT_SCHEMA] == "damaged"


def test_second_quiet_run_prints_only_the_two_failures(upgraded):
    home, _, corrupt, _, second = upgraded
    assert second.returncode == 3
    assert second.stdout == ""
    assert set(failure_lines(second.stderr, home)) == set(corrupt)
    for rel, digest in corrupt.items():
        assert sha256(home / rel) == digest


# ---- backups --------------------------------------------------------------------------------------
@pytest.fixture
def backed_up(upgraded, tmp_path):
    """A copy of the upgraded home with more backups: older pre-upgrade copies of three boards,
    three quarantine copies of one board (the oldest with its -wal/-shm)."""
    src = upgraded[0]
    home = tmp_path / "hermes"
    shutil.copytree(src, home)
    now = time.time()
    for slug in ("proj-00", "proj-01", "proj-02"):
        board = home / "kanban/boards" / slug / "kanban.db"
        (newest,) = [b for b in list_backups(board) if b.kind == "pre-upgrade"]
        for k in (1, 2):
            older = board.with_name(f"kanban.db.pre-upgrade.{k:016x}.bak")
            shutil.copyfile(newest.path, older)
            os.utime(older, (now - 86400 * k, now - 86400 * k))
    board = home / "kanban/boards/proj-04/kanban.db"
    for k in (1, 2, 3):
        q = board.with_name(f"kanban.db.corrupt.{k:016x}.bak")
        shutil.copyfile(board, q)
        os.utime(q, (now - 3600 * k, now - 3600 * k))
    oldest = board.with_name(f"kanban.db.corrupt.{3:016x}.bak")
    for suffix in ("-wal", "-shm"):
        Path(str(oldest) + suffix).write_bytes(b"")
    return home


def all_backup_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*.bak")}


def test_backups_lists_every_backup_of_the_home(backed_up):
    home = backed_up
    proc = run_cli("backups", "--json", "--home", home)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert {str(Path(b["path"]).relative_to(home)) for b in items} == all_backup_files(home)
    assert len(items) == 46 + 2 * 3 + 3 + 2  # one per upgraded board, the extra ones, the strays
    by_path = {str(Path(b["path"]).relative_to(home)): b for b in items}
    q = by_path["kanban/boards/proj-04/kanban.db.corrupt.0000000000000001.bak"]
    assert (q["kind"], q["name"], q["state"], q["age"]) == ("named", "proj-04", "quarantine", "1 h ago")
    p = by_path["kanban/boards/proj-00/kanban.db.pre-upgrade.0000000000000002.bak"]
    assert (p["state"], p["age"], p["pruned"]) == ("pre-upgrade", "2 d ago", False)
    assert by_path["profiles/ghost/kanban.db.corrupt.00000000000000bb.bak"]["kind"] == "stray"
    assert {b["kind"] for b in items} == {"default", "named", "archived", "profile", "stray"}
    for b in items:
        assert b["size"] == Path(b["path"]).stat().st_size

    text = run_cli("backups", "--home", home)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["board", "kind", "board", "state"]
    assert len(lines) == 1 + len(items) + 1 and lines[-1].startswith(f"{len(items)} backup(s), ")

    one = run_cli("backups", "--json", home / "kanban/boards/proj-00/kanban.db")
    assert one.returncode == 0, one.stderr
    got = json.loads(one.stdout)
    assert len(got) == 3 and [b["age_seconds"] for b in got] == sorted(b["age_seconds"] for b in got)


def test_backups_prune_keeps_the_newest_per_board_and_kind(backed_up):
    home = backed_up
    boards_before = {str(p.relative_to(home)): sha256(p) for p in home.rglob("kanban.db")}
    newest = {}
    for b in json.loads(run_cli("backups", "--json", "--home", home).stdout):
        key = (b["board"], b["state"])
        if key not in newest or b["mtime"] > newest[key]["mtime"]:
            newest[key] = b
    proc = run_cli("backups", "--prune", "1", "--json", "--home", home)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)
    assert sum(b["pruned"] for b in items) == 2 * 3 + 2
    left = all_backup_files(home)
    assert left == {str(Path(b["path"]).relative_to(home)) for b in newest.values()}
    assert len(left) == len(newest) == 46 + 1 + 2
    proj4 = home / "kanban/boards/proj-04"
    assert sorted(p.name for p in proj4.iterdir() if p.name.startswith("kanban.db.corrupt")) == [
        "kanban.db.corrupt.0000000000000001.bak"]  # the oldest went with its -wal/-shm
    # The boards themselves are untouched.
    assert {str(p.relative_to(home)): sha256(p) for p in home.rglob("kanban.db")} == boards_before
    again = run_cli("backups", "--prune", "1", "--home", home)
    assert again.returncode == 0 and again.stdout.splitlines()[-1].endswith(
        "pruned 0 (kept the newest 1 per board and kind)")


def test_backups_of_a_missing_board_is_a_usage_error(tmp_path):
    missing = tmp_path / "nope" / "kanban.db"
    proc = run_cli("backups", missing)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"kanban-migrate: {missing}: no such file (check the path; without "
                                        "DB, 'backups' lists every board's backups)"]
    assert not missing.parent.exists()
