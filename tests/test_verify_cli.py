"""``kanban-migrate verify`` through the command line's ``main``: output forms and exit codes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from kanban_migrate.cli import main
from kanban_migrate.cli.render import print_verify
from kanban_migrate.verifying import verify
import corruption as C
from test_verify_support import digest, listing, make_board, plant

NO_HOME = {"HERMES_KANBAN_DB": None, "HERMES_KANBAN_HOME": None, "HERMES_HOME": None}


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run(capsys, monkeypatch):
    """``run(*args, env=None)``: ``kanban-migrate verify ARGS`` in this process."""
    def verify_cli(*args, env=None):
        for key, value in (env or {}).items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = main(["verify", *map(str, args)])
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return verify_cli


def test_healthy_board_exits_0(tmp_path, run):
    path = make_board(tmp_path)
    res = run(path)
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and str(path) in res.output


def test_problems_exit_1_and_are_grouped_by_severity_with_hints(tmp_path, run):
    path = make_board(tmp_path, "fork", at_head=False)
    res = run(path)
    assert res.exit_code == 1
    out = res.output
    assert out.index("errors:") < out.index("warnings:") < out.index("info:")
    assert "-> run 'kanban-migrate upgrade' on it" in out


def test_json_is_one_object_per_board_or_a_list(tmp_path, run):
    a = make_board(tmp_path, name="a.db")
    b = make_board(tmp_path, "v0", at_head=False, name="b.db")
    one = run("--json", a)
    assert one.exit_code == 0
    obj = json.loads(one.output)
    assert obj["path"] == str(a) and obj["ok"] is True and obj["revision"] == "v7"
    both = run("--json", a, b)
    assert both.exit_code == 1
    lst = json.loads(both.output)
    assert [x["ok"] for x in lst] == [True, False]
    assert {f["check"] for f in lst[1]["findings"]} >= {"schema", "revision"}


def test_missing_path_is_usage_exit_2(tmp_path, run):
    res = run(tmp_path / "nope.db")
    assert res.exit_code == 2 and "no such file" in res.output


def test_not_sqlite_is_exit_1_not_a_crash(tmp_path, run):
    path = tmp_path / "kanban.db"
    path.write_text("definitely not sqlite\n" * 20)
    res = run("--json", path)
    assert res.exit_code == 1
    assert res.stderr == ""  # a finding, no traceback
    (f,) = json.loads(res.output)["findings"]
    assert (f["check"], f["severity"]) == ("file", "error")


def test_thorough_by_default_quick_on_request(tmp_path, run):
    path = make_board(tmp_path)
    C.mismatch_index(path, "idx_tasks_status", "tasks", "title")
    quick = json.loads(run("--json", "--quick", path).output)
    default = json.loads(run("--json", path).output)
    full = json.loads(run("--json", "--full", path).output)
    assert not [f for f in quick["findings"] if f["check"] == "integrity"]  # quick_check skips index contents
    assert [f for f in default["findings"] if f["check"] == "integrity" and "REINDEX" in f["hint"]]
    assert full == default
    assert run("--quick", "--full", path).exit_code == 2


def test_without_db_verifies_the_boards_of_the_home(tmp_path, run):
    home = tmp_path / "hermes"
    (home / "kanban" / "boards" / "work").mkdir(parents=True)
    (home / "kanban" / "boards" / "_archived" / "old-1").mkdir(parents=True)
    make_board(home)
    make_board(home / "kanban" / "boards" / "work")
    make_board(home / "kanban" / "boards" / "_archived" / "old-1", "v0", at_head=False)
    env = NO_HOME
    res = run("--json", "--home", home, env=env)
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 2
    res = run("--json", "--all", "--home", home, env=env)
    assert res.exit_code == 1
    assert [r["ok"] for r in json.loads(res.output)] == [True, True, False]
    res = run("--json", env={**env, "HERMES_KANBAN_HOME": str(home)})
    assert res.exit_code == 0 and len(json.loads(res.output)) == 2


def test_no_boards_found_is_success(tmp_path, run):
    res = run("--home", tmp_path, env=NO_HOME)
    assert (res.exit_code, res.stderr) == (0, "")
    assert res.stdout == f"no boards under {tmp_path}: nothing to do\n"
    res = run("--json", "--all", "--home", tmp_path)
    assert (res.exit_code, json.loads(res.stdout), res.stderr) == (0, [], "")
    res = run("--quiet", "--all", "--home", tmp_path / "nowhere")
    assert (res.exit_code, res.stdout, res.stderr) == (0, "", "")


def test_home_with_a_db_is_usage(tmp_path, run):
    path = make_board(tmp_path)
    assert run("--home", tmp_path, path).exit_code == 2


def test_rich_table_on_a_terminal(tmp_path, run):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    path = make_board(tmp_path)
    plant(path, "UPDATE tasks SET status = '[bold]weird' WHERE rowid = 1")
    out = Tty()
    print_verify([verify(path)], stream=out)
    text = out.getvalue()
    assert "warning" in text and "[bold]weird" in text and "hint" in text


@pytest.mark.parametrize("timeout", ["-1", "abc"])
def test_bad_busy_timeout_is_usage(tmp_path, timeout, run):
    path = make_board(tmp_path)
    assert run("--busy-timeout", timeout, path).exit_code == 2


def test_verify_all_in_parallel_processes_agrees_with_one_by_one(tmp_path, kanban_board_template):
    """verify --all --jobs N covers archived and per-profile boards, in parallel processes, with
    the same reports in the same order as --jobs 1, and exits with the worst code."""
    import json as _json
    import os as _os
    import shutil as _shutil
    import subprocess as _subprocess
    import sys as _sys

    from kanban_migrate.upgrading import upgrade as _upgrade

    home = tmp_path / "hermes"
    for sub in ("kanban/boards/work", "kanban/boards/_archived/old-1", "profiles/coder"):
        (home / sub).mkdir(parents=True)
    targets = [home / "kanban.db", home / "kanban/boards/work/kanban.db",
               home / "kanban/boards/_archived/old-1/kanban.db", home / "profiles/coder/kanban.db"]
    for i, t in enumerate(targets):
        _shutil.copyfile(kanban_board_template("v2b", 20, i + 1), t)
        if i % 2 == 0:
            _upgrade(t, backup=False)
    env = {k: v for k, v in _os.environ.items() if not k.startswith("HERMES")}

    def run(jobs):
        proc = _subprocess.run([_sys.executable, "-m", "kanban_migrate", "verify", "--all", "--json", "--home",
                                str(home), "--jobs", str(jobs)], capture_output=True, text=True, env=env, timeout=300)
        return proc.returncode, _json.loads(proc.stdout)

    code1, one = run(1)
    code2, par = run(2)
    assert code1 == code2 == 1  # two legacy boards: a revision warning each
    assert [r["path"] for r in one] == [r["path"] for r in par] and len(par) == 4
    assert [(r["ok"], r["revision"]) for r in one] == [(r["ok"], r["revision"]) for r in par]
    assert [r["ok"] for r in par] == [True, False, True, False]


def test_every_board_is_tried_and_the_worst_exit_code_wins(tmp_path, run):
    a = make_board(tmp_path, name="a.db")
    legacy = make_board(tmp_path, "v0", at_head=False, name="legacy.db")
    missing = tmp_path / "missing.db"
    res = run(a, missing, legacy)
    assert res.exit_code == 2
    assert f"{a}: OK" in res.stdout and f"{legacy}: PROBLEMS" in res.stdout
    (line,) = res.stderr.strip().splitlines()
    assert line == f"kanban-migrate: {missing}: no such file (check the path)"
    res = run("--json", missing, a)
    assert res.exit_code == 2
    first, second = json.loads(res.stdout)
    assert (first["path"], first["ok"], first["not_checked"]["code"]) == (str(missing), None, 2)
    assert (second["ok"], second["not_checked"]) == (True, None)
    res = run(a, legacy)
    assert res.exit_code == 1 and res.stderr == ""


def test_a_bug_on_one_board_stops_only_that_board_and_exits_70(tmp_path, run, monkeypatch):
    import kanban_migrate.verifying as verifying

    a = make_board(tmp_path, name="a.db")
    buggy = make_board(tmp_path, name="buggy.db")
    real = verifying.verify

    def verify(path, **kw):
        if str(path) == str(buggy):
            raise RuntimeError("planted bug")
        return real(path, **kw)

    monkeypatch.setattr(verifying, "verify", verify)
    res = run(buggy, a, tmp_path / "missing.db")
    assert res.exit_code == 70  # the worst: a bug (70) over a missing path (2) over healthy (0)
    assert f"{a}: OK" in res.stdout and str(buggy) not in res.stdout
    bug, missing = res.stderr.splitlines()
    assert bug.startswith(f"kanban-migrate: {buggy}: verify stopped: RuntimeError('planted bug')")
    assert missing.startswith(f"kanban-migrate: {tmp_path / 'missing.db'}: no such file")


def test_quiet_names_only_boards_with_problems_and_nl_prints_one_object_per_line(tmp_path, run):
    a = make_board(tmp_path, name="a.db")
    legacy = make_board(tmp_path, "v0", at_head=False, name="legacy.db")
    res = run("--quiet", a)
    assert (res.exit_code, res.stdout, res.stderr) == (0, "", "")
    res = run("-q", a, legacy)
    assert res.exit_code == 1 and res.stderr == ""
    (line,) = res.stdout.splitlines()
    assert line.startswith(f"{legacy}: PROBLEMS (")
    res = run("--nl", a, legacy)
    objs = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(o["path"], o["ok"]) for o in objs] == [(str(a), True), (str(legacy), False)]


def test_json_paths_are_absolute(tmp_path, run, monkeypatch):
    make_board(tmp_path, name="a.db")
    monkeypatch.chdir(tmp_path)
    res = run("--json", "a.db")
    assert json.loads(res.stdout)["path"] == str(tmp_path / "a.db")


def test_json_is_an_object_only_when_exactly_one_db_is_named(tmp_path, run):
    home = tmp_path / "hermes"
    home.mkdir()
    make_board(home)
    assert isinstance(json.loads(run("--json", home / "kanban.db").output), dict)
    for args in (["--home", home], ["--all", "--home", home], [home / "kanban.db", home / "kanban.db"]):
        out = json.loads(run("--json", *args, env=NO_HOME).stdout)
        assert isinstance(out, list) and len(out) in (1, 2), args
    missing = run("--json", tmp_path / "nope.db")
    assert missing.exit_code == 2 and json.loads(missing.stdout)["not_checked"]["reason"] == "no such file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as nobody")
def test_an_unreadable_board_is_one_line_exit_5(tmp_path):
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if not shutil.which("setpriv"):
        pytest.skip("setpriv not available")
    shared = Path(tempfile.mkdtemp(prefix="verify-unreadable-"))
    try:
        shared.chmod(0o755)
        path = make_board(shared)
        path.chmod(0o000)
        before = digest(path)
        root = Path(__file__).resolve().parents[1]
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                               "-c", "import sys; sys.path.insert(0, sys.argv[1]); from kanban_migrate.cli import main;"
                               "sys.argv = ['kanban-migrate', 'verify', sys.argv[2]]; sys.exit(main())",
                               str(root), str(path)], capture_output=True, text=True, timeout=120, cwd=shared)
        if "Permission denied" in proc.stderr and "kanban-migrate:" not in proc.stderr:
            pytest.skip(f"nobody cannot run this interpreter: {proc.stderr[-200:]}")
        assert proc.returncode == 5, proc.stderr
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"kanban-migrate: {path}: ") and "Permission denied" in line
        assert proc.stdout == ""
        path.chmod(0o644)
        assert digest(path) == before and listing(shared) == ["kanban.db"]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_the_verify_library_never_imports_click(tmp_path):
    import subprocess
    import sys

    path = make_board(tmp_path)
    code = ("import sys; from kanban_migrate.verifying import verify_many;"
            "r, = verify_many([sys.argv[1]], jobs=1); assert r.ok, r.findings;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')))")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr
