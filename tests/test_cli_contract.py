"""The command line's contract, one table for every command: args -> exit code, stdout shape,
stderr line. Each case runs ``kanban_migrate.cli.main`` in-process on a fresh copy of a small
workspace (boards of every condition, an empty home and a home with boards); a few promises that
need a child process (the traceback switch, the fast path's imports) follow the table.

stdout shapes: ``""`` nothing; ``"object"``/``"list"`` JSON of that type; ``"nl:N"`` N JSON objects,
one per line; anything else a regular expression searched in stdout (multi-line). stderr: ``""``
nothing, else a regular expression the single stderr line must match in full.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import dir_state, sha256
from corruption import garble_index, zero_root
from kanban_migrate.cli import main
from kanban_migrate.errors import ExitCode

TASKS = 30


@dataclass(frozen=True)
class Case:
    id: str
    args: str  # split on spaces after {name} substitution; paths have none
    code: int
    out: str = ""
    err: str = ""


NO_BOARDS = r"^no boards under \S+: nothing to do$"
REFUSED_LINE = r"kanban-migrate: {ws}/{name}: {why}"

CASES = [
    # ---- the installer line with no boards (empty HOME, no Hermes variables) -------------------
    Case("installer-quiet", "upgrade --all --quiet", 0),
    Case("installer-check", "upgrade --all --check", 0, NO_BOARDS),
    Case("installer-check-quiet", "upgrade --all --check --quiet", 0),
    Case("no-boards-upgrade", "upgrade", 0, NO_BOARDS),
    Case("no-boards-status", "status", 0, NO_BOARDS),
    Case("no-boards-status-all", "status --all --json", 0, r"^\[\]$"),
    Case("no-boards-verify", "verify --all", 0, NO_BOARDS),
    Case("no-boards-verify-json", "verify --all --json", 0, r"^\[\]$"),
    Case("no-boards-json", "upgrade --all --json", 0, r"^\[\]$"),
    Case("no-boards-nl", "upgrade --all --nl", 0, ""),
    Case("missing-home", "upgrade --all --quiet --home {ws}/nowhere", 0),
    Case("empty-home", "upgrade --all --check --home {ws}/empty-home", 0, NO_BOARDS),
    Case("no-boards-boards", "boards --home {ws}/empty-home", 0, r"^no boards under "),
    Case("no-boards-backups", "backups --home {ws}/empty-home", 0, r"^no backups under "),
    # ---- the JSON rule: an object when exactly one DB is named, a list otherwise -----------------
    Case("json-one-db", "upgrade --json {head}", 0, "object"),
    Case("json-two-dbs", "upgrade --json {head} {head2}", 0, "list"),
    Case("json-home", "upgrade --json --home {home}", 0, "list"),
    Case("nl-home", "upgrade --nl --home {home}", 0, "nl:2"),
    Case("status-json-one", "status --json {legacy}", 0, "object"),
    Case("status-json-home", "status --json --home {home}", 0, "list"),
    Case("verify-json-one", "verify --json {head}", 0, "object"),
    Case("boards-json", "boards --json --home {home}", 0, "list"),
    # ---- upgrade ----------------------------------------------------------------------------------
    Case("upgrade-legacy", "upgrade {legacy}", 0, r"unstamped \[v0\] -> v7, applied v0 .* v7 .*backup "),
    Case("upgrade-head", "upgrade {head}", 0, r"at head \(v7\), nothing to do"),
    Case("check-legacy", "upgrade --check {legacy}", 1, r"would apply v0 v1 v2 v3 v4 v5 v6 v7"),
    Case("dry-run-legacy", "upgrade --dry-run {legacy}", 0, r"would apply v0 .*\n  detected: v0"),
    # a board whose damage only PRAGMA quick_check sees: upgrade refuses it, so --check/--dry-run say so
    Case("check-damaged", "upgrade --check {index_damaged}", 3, "",
         r"kanban-migrate: \S+/index-damaged.db: would refuse: board fails PRAGMA quick_check .*recover.*"),
    Case("dry-run-damaged", "upgrade --dry-run {index_damaged}", 3, "",
         r"kanban-migrate: \S+: would refuse: board fails PRAGMA quick_check .*"),
    Case("check-schema-damaged", "upgrade --check {damaged}", 3, "",
         r"kanban-migrate: \S+/damaged.db: would refuse: board is damaged .*recover.*"),
    Case("dry-run-table", "upgrade --dry-run {legacy} {index_damaged} {head}", 3,
         r"would refuse \(exit 3\): board fails PRAGMA quick_check.*\n(.|\n)*3 board\(s\): 1 current, 1 pending, 1 would refuse",
         r"kanban-migrate: \S+/index-damaged.db: would refuse: .*"),
    Case("upgrade-damaged", "upgrade {damaged}", 3, "", r"kanban-migrate: \S+: board (is damaged|fails PRAGMA quick_check) .*recover.*"),
    Case("upgrade-missing", "upgrade {ws}/missing.db", 2, "",
         r"kanban-migrate: \S+/missing.db: no such file \(check the path, or pass --create to make a new board\)"),
    Case("upgrade-missing-json", "upgrade --json {ws}/missing.db", 2, "object", r"kanban-migrate: \S+: no such file .*"),
    Case("upgrade-create", "upgrade --create {ws}/new.db", 0, r"new.db: created at head"),
    Case("upgrade-sql", "upgrade --sql {legacy}", 0, r"^-- \S+legacy.db\n(.|\n)*CREATE TABLE"),
    Case("fast-jobs-0", "upgrade --jobs 0 {head}", 2, "", r"kanban-migrate: --jobs must be at least 1 \(got 0\) .*"),
    Case("fast-home-and-db", "upgrade --home {ws}/nowhere {head}", 2, "",
         r"kanban-migrate: --home and --all choose boards only when no DB is named .*"),
    Case("fast-all-and-db", "upgrade --all {head}", 2, "", r"kanban-migrate: --home and --all choose boards .*"),
    Case("sql-and-dry-run", "upgrade --sql --dry-run {head}", 2, "",
         r"kanban-migrate: --dry-run and --sql cannot be combined .*"),
    Case("busy-negative", "upgrade --busy-timeout -1 {head}", 2, "", r"kanban-migrate: --busy-timeout must be .*"),
    Case("jobs-not-a-number", "upgrade --jobs x {head}", 2, "", r"kanban-migrate: .*'x'.*\(see 'kanban-migrate upgrade --help'\)"),
    Case("unknown-option", "upgrade --bogus {head}", 2, "", r"kanban-migrate: No such option '--bogus'.* \(see 'kanban-migrate upgrade --help'\)"),
    Case("several-boards", "upgrade {legacy} {head} {damaged}", 3,
         r"3 board\(s\): 1 current, 1 refused, 1 upgraded", r"kanban-migrate: \S+/damaged.db: board (is damaged|fails) .*"),
    # ---- status and history -------------------------------------------------------------------------
    Case("status-legacy", "status {legacy}", 0, r"revision none \(legacy board\), head v7, pending v0 .* v7, shape v0"),
    Case("status-missing", "status {ws}/missing.db", 2, "", r"kanban-migrate: \S+/missing.db: no such file \(check the path\)"),
    Case("status-empty", "status {ws}/empty.db", 3, "",
         r"kanban-migrate: \S+/empty.db: empty file .*\('kanban-migrate upgrade --create' makes it a new board at head\)"),
    Case("status-missing-json", "status --json {ws}/missing.db", 2, "object", r"kanban-migrate: \S+: no such file .*"),
    Case("history", "history", 0, r"^v0  (.|\n)*^v7  [^\n]*\(head\)$"),
    # ---- verify and recover (registered from their packages) -------------------------------------
    Case("verify-head", "verify {head}", 0, r"OK"),
    Case("verify-missing", "verify {ws}/missing.db", 2, "", r"kanban-migrate: \S+/missing.db: no such file.*"),
    Case("recover-missing", "recover {ws}/missing.db", 2, "", r"kanban-migrate: \S+/missing.db: no such file.*"),
    Case("recover-healthy", "recover {head} --output {ws}/rescued.db", 0,
         r"healthy(.|\n)*verify: OK(.|\n)*copy of the board: \S+/rescued.db(.|\n)*undo: nothing to undo"),
    Case("recover-legacy-healthy", "recover {legacy}", 0,
         r"the file is healthy: nothing to recover(.|\n)*verify: PROBLEMS(.|\n)*kanban-migrate upgrade"),
    Case("recover-json", "recover --json {head} --output {ws}/rescued.db", 0, "object"),
    Case("recover-json-missing", "recover --json {ws}/missing.db", 2, "object", r"kanban-migrate: \S+/missing.db: no such file.*"),
    Case("recover-busy-timeout", "recover {head} --busy-timeout -1", 2, "",
         r"kanban-migrate: --busy-timeout must be 0 or more seconds .*"),
    # ---- boards, backups, restore ---------------------------------------------------------------------
    Case("boards-unchecked", "boards --home {home}", 0, r"unchecked(.|\n)*2 board\(s\): 2 unchecked"),
    Case("boards-check", "boards --check --home {home}", 0, r"2 board\(s\): 2 ok"),
    Case("backups-board", "backups {quarantined}", 0, r"quarantine(.|\n)*put one back with: kanban-migrate restore"),
    Case("backups-missing", "backups {ws}/missing.db", 2, "", r"kanban-migrate: \S+/missing.db: no such file .*"),
    Case("backups-folder", "backups {ws}", 3, "", r"kanban-migrate: \S+: is a directory, not a board file .*"),
    Case("prune-dry-run", "backups --prune 0 --dry-run {quarantined}", 0,
         r"kept(.|\n)*would prune 0 \(kept the newest 0 per board and kind, and each board's last quarantine copy"),
    Case("dry-run-without-prune", "backups --dry-run {quarantined}", 2, "", r"kanban-migrate: --dry-run and --force go with --prune N .*"),
    Case("restore-newest", "restore {quarantined}", 0, r"restored \S+\.corrupt\.[0-9a-f]{16}\.bak \(with its -wal and -shm\)"),
    Case("restore-dry-run", "restore --dry-run {quarantined}", 0, r"would restore (.|\n)*would be kept as \S+\.pre-restore\."),
    Case("restore-json", "restore --json {quarantined}", 0, "object"),
    Case("restore-no-backup", "restore {head}", 2, "", r"kanban-migrate: \S+: no backups to restore from .*"),
    Case("restore-bad-name", "restore {quarantined} ffff0000", 2, "", r"kanban-migrate: \S+: 'ffff0000' matches no backup .*"),
    # ---- fixtures and demo ------------------------------------------------------------------------------
    Case("fixtures-list", "fixtures list", 0, r"^v0 +v0 board, late April"),
    Case("fixtures-create", "fixtures create --shape v1 --tasks 5 {ws}/f.db", 0, r"f.db: v1 board with 5 tasks"),
    Case("fixtures-missing-folder", "fixtures create --shape v1 --tasks 5 {ws}/no/such/f.db", 2, "",
         r"kanban-migrate: \S+/f.db: no such folder: \S+ \(create the folder first, or pick another path\)"),
    Case("fixtures-unknown-shape", "fixtures create --shape nope {ws}/f.db", 2, "",
         r"kanban-migrate: unknown shape 'nope' \(see 'kanban-migrate fixtures list'\)"),
    Case("fixtures-exists", "fixtures create --shape v1 {head}", 2, "", r"kanban-migrate: \S+: already exists .*"),
    Case("demo-unknown-shape", "demo --shape nope", 2, "", r"kanban-migrate: unknown shape 'nope' .*"),
    Case("demo", "demo --dir {ws}/demo --tasks 20", 0, r"demo board: (.|\n)*second run: .*nothing to do\nverify: healthy"),
    # ---- the top level -------------------------------------------------------------------------------
    Case("no-command", "", 0, r"^Usage: kanban-migrate \[OPTIONS\] COMMAND"),
    Case("help", "--help", 0, r"Exit codes:(.|\n)* 5  the environment failed(.|\n)* 70  internal error"),
    Case("version", "--version", 0, r"kanban-migrate, version \d"),
    Case("unknown-command", "frobnicate", 2, "", r"kanban-migrate: No such command 'frobnicate'. .*"),
]


# ---- the workspace ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pristine(tmp_path_factory, kanban_board_template) -> Path:
    from kanban_migrate.upgrading import upgrade

    ws = tmp_path_factory.mktemp("contract")
    shutil.copyfile(kanban_board_template("v0", TASKS, 1), ws / "legacy.db")
    for name in ("head.db", "head2.db"):
        shutil.copyfile(kanban_board_template("v1", TASKS, 2), ws / name)
        upgrade(ws / name, backup=False)
    shutil.copyfile(kanban_board_template("v0", 200, 3), ws / "damaged.db")
    zero_root(ws / "damaged.db", "task_events", random.Random(1))
    shutil.copyfile(kanban_board_template("v0", 200, 3), ws / "index-damaged.db")
    garble_index(ws / "index-damaged.db", "idx_events_task", random.Random(1))
    (ws / "empty.db").write_bytes(b"")
    (ws / "empty-home").mkdir()
    home = ws / "home"
    (home / "kanban/boards/work").mkdir(parents=True)
    shutil.copyfile(ws / "head.db", home / "kanban.db")
    shutil.copyfile(ws / "head.db", home / "kanban/boards/work/kanban.db")
    q = ws / "q" / "kanban.db"  # a board 'recover' swapped: its original kept with -wal/-shm
    q.parent.mkdir()
    shutil.copyfile(ws / "head.db", q)
    original = ws / "damaged.db"
    digest = sha256(original)[:16]
    aside = q.with_name(f"kanban.db.corrupt.{digest}.bak")
    shutil.copyfile(original, aside)
    Path(f"{aside}-wal").write_bytes(b"wal bytes kept as they were")
    Path(f"{aside}-shm").write_bytes(b"shm bytes")
    (ws / "tmp").mkdir()
    return ws


@pytest.fixture
def ws(pristine, tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(pristine, ws, symlinks=True)
    monkeypatch.setenv("HOME", str(ws / "nobody"))  # no ~/.hermes
    for var in ("HERMES_HOME", "HERMES_KANBAN_HOME", "HERMES_KANBAN_DB", "KANBAN_MIGRATE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(ws / "tmp"))
    return ws


PLACES = {"head": "head.db", "head2": "head2.db", "legacy": "legacy.db", "damaged": "damaged.db",
          "index_damaged": "index-damaged.db",
          "home": "home", "quarantined": "q/kanban.db"}


def argv(case: Case, ws: Path) -> list[str]:
    text = case.args.format(ws=ws, **{k: ws / v for k, v in PLACES.items()})
    return text.split()


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def check_stdout(shape: str, out: str) -> None:
    if shape == "":
        assert out == ""
    elif shape in ("object", "list"):
        assert isinstance(json.loads(out), dict if shape == "object" else list)
    elif shape.startswith("nl:"):
        lines = out.splitlines()
        assert len(lines) == int(shape[3:]) and all(isinstance(json.loads(x), dict) for x in lines)
    else:
        assert re.search(shape, out, re.M), out


def check_stderr(pattern: str, err: str) -> None:
    if pattern == "":
        assert err == ""
    else:
        assert err.endswith("\n") and err.count("\n") == 1, f"one line expected:\n{err}"
        assert re.fullmatch(pattern, err.rstrip("\n")), err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_contract(case: Case, ws, capsys):
    code, out, err = run(argv(case, ws), capsys)
    assert code == case.code, (out, err)
    check_stdout(case.out, out)
    check_stderr(case.err, err)
    assert "Traceback" not in err
    assert not list((ws / "tmp").iterdir()), "a temporary folder was left behind"


def test_every_command_is_in_the_table():
    from kanban_migrate.cli.app import cli

    named = {c.args.split()[0] for c in CASES if c.args}
    assert set(cli.commands) <= named


def test_every_option_has_help():
    import click

    from kanban_migrate.cli.app import cli

    def walk(cmd, path):
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert p.help, f"{path} {p.opts} has no help text"
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(cli, "kanban-migrate")


def test_hints_name_only_options_of_their_command(ws, capsys):
    """Every stderr line of the table: the options its hint names (outside a quoted other
    command) are options of the command that printed it."""
    from kanban_migrate.cli.app import cli

    for case in CASES:
        words = case.args.split() or [""]
        command = cli.commands.get(words[0])
        if command is None or not case.err:
            continue
        if words[0] == "fixtures":
            command = command.commands[words[1]]
        _code, _out, err = run(argv(case, ws), capsys)
        hint = re.search(r"\(([^()]*)\)$", err.strip())
        named = set(re.findall(r"--[a-z][a-z-]*", re.sub(r"'[^']*'", "", hint.group(1)))) if hint else set()
        have = {o for p in command.params for o in getattr(p, "opts", [])}
        assert named <= have, (case.id, err)


# ---- beyond the table -----------------------------------------------------------------------------------
def test_results_after_upgrade_and_paths_in_json(ws, capsys, monkeypatch):
    monkeypatch.chdir(ws)
    code, out, _ = run(["upgrade", "--json", "legacy.db"], capsys)
    r = json.loads(out)
    assert code == 0 and r["status"] == "upgraded" and r["pending"] == [] and r["code"] == 0
    assert r["path"] == str(ws / "legacy.db")  # absolute although given relative
    assert os.path.isabs(r["backup"])
    code, out, _ = run(["upgrade", "--dry-run", "--json", str(ws / "head.db"), "index-damaged.db"], capsys)
    items = json.loads(out)
    assert code == 3 == max(x["code"] for x in items)
    assert all(os.path.isabs(x["path"]) for x in items)


def test_recover_json_paths_are_absolute(ws, capsys, monkeypatch):
    monkeypatch.chdir(ws)
    code, out, _ = run(["recover", "--json", "head.db", "--output", "rescued.db"], capsys)
    r = json.loads(out)
    assert code == 0 and r["path"] == str(ws / "head.db") and r["output"] == str(ws / "rescued.db")


def test_dry_run_json_code_matches_the_exit(ws, capsys):
    code, out, _ = run(["upgrade", "--dry-run", "--json", str(ws / "legacy.db")], capsys)
    assert code == 0 and json.loads(out)["code"] == 0 and json.loads(out)["status"] == "pending"
    code, out, _ = run(["upgrade", "--check", "--json", str(ws / "legacy.db")], capsys)
    assert code == 1 and json.loads(out)["code"] == 1


def test_check_and_dry_run_write_nothing_even_when_refusing(ws, capsys):
    before = dir_state(ws)
    for mode in ("--check", "--dry-run"):
        code, _out, _err = run(["upgrade", mode, str(ws / "index-damaged.db"), str(ws / "legacy.db")], capsys)
        assert code == 3
    assert dir_state(ws) == before


def test_a_bug_inside_a_multi_board_upgrade_exits_70(ws, capsys, monkeypatch):
    import kanban_migrate.upgrading.api as upgrading

    def broken(path, **kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(upgrading, "upgrade", broken)
    code, out, err = run(["upgrade", "--jobs", "1", str(ws / "legacy.db"), str(ws / "head.db")], capsys)
    assert code == ExitCode.INTERNAL
    assert "internal error: " in err and "RuntimeError('a bug')" in err and "please report it" in err
    assert "Traceback" not in err


def _child(args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES", "KANBAN_MIGRATE"))}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "kanban_migrate", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def test_debug_shows_the_traceback_and_keeps_70(tmp_path):
    """An internal error in a child process: one line, exit 70; with KANBAN_MIGRATE_DEBUG=1 the
    traceback too, and still 70 (a board file the fixtures writer cannot parse is not enough to
    cause one, so the bug is planted through PYTHONPATH: a sitecustomize that breaks status)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import kanban_migrate.upgrading as u\n"
        "def status(*a, **k):\n    raise ZeroDivisionError('planted')\n"
        "u.status = status\n")
    board = tmp_path / "kanban.db"
    board.write_bytes(b"")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    plain = _child(["status", board], env)
    assert plain.returncode == 70 and plain.stderr.count("\n") == 1 and "ZeroDivisionError" in plain.stderr
    debug = _child(["status", board], dict(env, KANBAN_MIGRATE_DEBUG="1"))
    assert debug.returncode == 70 and "Traceback (most recent call last)" in debug.stderr


def test_fast_and_full_paths_print_the_same(ws, capsys):
    """The fast path answers boards at head; the full path (click) must print the same bytes."""
    from kanban_migrate.cli.app import cli

    for args in (["upgrade", str(ws / "head.db")], ["upgrade", "--json", str(ws / "head.db")],
                 ["upgrade", "--home", str(ws / "home")], ["upgrade", "--nl", "--home", str(ws / "home")],
                 ["upgrade", "--check", "--quiet", "--home", str(ws / "home")],
                 ["upgrade", "--all", "--home", str(ws / "empty-home")]):
        fast = run(args, capsys)
        try:
            cli.main(args=args[:], prog_name="kanban-migrate", standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        same = re.compile(r'"seconds": [0-9.e-]+')
        assert (code, same.sub("", out), err) == (fast[0], same.sub("", fast[1]), fast[2]), args


def test_the_fast_path_imports_nothing_heavy_and_validates(tmp_path, kanban_board_template):
    from kanban_migrate.upgrading import upgrade

    board = tmp_path / "kanban.db"
    shutil.copyfile(kanban_board_template("v5", TASKS, 1), board)
    upgrade(board, backup=False)
    code = ("import sys; from kanban_migrate.cli import main; rc = main(sys.argv[1:]);"
            "heavy = [m for m in ('sqlalchemy', 'alembic', 'click', 'rich') if m in sys.modules];"
            "print(rc, heavy)")
    for args, want in ((["upgrade", "--all", "--quiet", "--home", str(tmp_path / "none")], "0 []"),
                       (["upgrade", "--quiet", "--jobs", "2", str(board)], "0 []"),
                       (["upgrade", "--jobs", "0", str(board)], "2 ['click']")):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert proc.stdout.splitlines()[-1] == want, (args, proc.stdout, proc.stderr)


@pytest.mark.parametrize("width", [40, 60, 90, 200])
def test_paths_are_never_cut_on_a_terminal(width):
    """However narrow the terminal, every character of every path is printed: folded pieces end
    in FOLD and join back to the path, and no piece of a path is wider than the terminal."""
    from kanban_migrate.cli import render

    paths = ["/home/someone/.hermes/kanban/boards/big/kanban.db",
             "/home/someone/.hermes/kanban/boards/big/kanban.db.pre-upgrade.3f1c0a9e5b7d2c11.bak",
             "/x/kanban.db"]
    rows = [["named", "big", "v2b +legacy-counters", "-", "1.2 MiB", "needs-upgrade", p] for p in paths]
    piped = render.table(render.BOARD_HEADER, rows)
    text = render.table(render.BOARD_HEADER, rows, width=width)
    assert all(p in piped for p in paths)  # piped: whole rows, nothing folded
    joined = re.sub(render.FOLD + r"\n +", "", text)
    for p in paths:
        assert p in joined, (width, text)
    too_wide = max(len(line) for line in piped.splitlines()) > width
    assert (text != piped) == too_wide
    for line in text.splitlines():
        if line.startswith(" "):
            assert len(line) <= width, line
