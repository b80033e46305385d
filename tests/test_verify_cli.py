"""``kanban-migrate verify`` through click's CliRunner: output forms and exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kanban_migrate.verifying.cli import render, verify_command
from kanban_migrate.verifying import verify
from test_verify_support import make_board, plant


def run(*args, env=None):
    return CliRunner().invoke(verify_command, list(map(str, args)), env=env)


def test_healthy_board_exits_0(tmp_path):
    path = make_board(tmp_path)
    res = run(path)
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and str(path) in res.output


def test_problems_exit_1_and_are_grouped_by_severity_with_hints(tmp_path):
    path = make_board(tmp_path, "fork", at_head=False)
    res = run(path)
    assert res.exit_code == 1
    out = res.output
    assert out.index("errors:") < out.index("warnings:") < out.index("info:")
    assert "-> run 'kanban-migrate upgrade' on it" in out


def test_json_is_one_object_per_board_or_a_list(tmp_path):
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


def test_missing_path_is_usage_exit_2(tmp_path):
    res = run(tmp_path / "nope.db")
    assert res.exit_code == 2 and "no such file" in res.output


def test_not_sqlite_is_exit_1_not_a_crash(tmp_path):
    path = tmp_path / "kanban.db"
    path.write_text("definitely not sqlite\n" * 20)
    res = run("--json", path)
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)  # no traceback
    (f,) = json.loads(res.output)["findings"]
    assert (f["check"], f["severity"]) == ("file", "error")


def test_full_runs_integrity_check(tmp_path):
    import sqlite3

    path = make_board(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX idx_tasks_status ON tasks(title)' "
                 "WHERE name = 'idx_tasks_status'")
    conn.commit()
    conn.close()
    quick = json.loads(run("--json", path).output)
    full = json.loads(run("--json", "--full", path).output)
    assert not [f for f in quick["findings"] if f["check"] == "integrity"]  # quick_check skips index contents
    assert [f for f in full["findings"] if f["check"] == "integrity" and "REINDEX" in f["hint"]]


def test_without_db_verifies_the_boards_of_the_home(tmp_path):
    home = tmp_path / "hermes"
    (home / "kanban" / "boards" / "work").mkdir(parents=True)
    (home / "kanban" / "boards" / "_archived" / "old-1").mkdir(parents=True)
    make_board(home)
    make_board(home / "kanban" / "boards" / "work")
    make_board(home / "kanban" / "boards" / "_archived" / "old-1", "v0", at_head=False)
    env = {"HERMES_KANBAN_DB": None, "HERMES_KANBAN_HOME": None, "HERMES_HOME": None}
    res = run("--json", "--home", home, env=env)
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 2
    res = run("--json", "--all", "--home", home, env=env)
    assert res.exit_code == 1
    assert [r["ok"] for r in json.loads(res.output)] == [True, True, False]
    res = run("--json", env={**env, "HERMES_KANBAN_HOME": str(home)})
    assert res.exit_code == 0 and len(json.loads(res.output)) == 2


def test_no_boards_found_is_usage(tmp_path):
    env = {"HERMES_KANBAN_DB": None, "HERMES_KANBAN_HOME": None, "HERMES_HOME": None}
    res = run("--home", tmp_path, env=env)
    assert res.exit_code == 2 and "no boards found" in res.output


def test_home_with_a_db_is_usage(tmp_path):
    path = make_board(tmp_path)
    assert run("--home", tmp_path, path).exit_code == 2


def test_rich_table_on_a_terminal(tmp_path):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    path = make_board(tmp_path)
    plant(path, "UPDATE tasks SET status = '[bold]weird' WHERE rowid = 1")
    out = Tty()
    render([verify(path)], stream=out)
    text = out.getvalue()
    assert "warning" in text and "[bold]weird" in text and "hint" in text


@pytest.mark.parametrize("timeout", ["-1", "abc"])
def test_bad_busy_timeout_is_usage(tmp_path, timeout):
    path = make_board(tmp_path)
    assert run("--busy-timeout", timeout, path).exit_code == 2
