"""The pytest plugin as another project sees it: registered by the installed entry point
(``pytest11``), its fixtures used from an outside test suite run in a fresh pytest process."""

from __future__ import annotations

from pathlib import Path

from kanban_migrate.fixtures import shapes

pytest_plugins = ["pytester"]

OUTSIDE_TESTS = '''
import sqlite3


def count(path, table="tasks"):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_the_plugin_comes_from_the_entry_point(request):
    plugin = request.config.pluginmanager.get_plugin("kanban_migrate")
    assert plugin is not None and plugin.__name__ == "kanban_migrate.pytest_plugin"


def test_kanban_board_gives_distinct_files_in_tmp_path(kanban_board, tmp_path):
    a = kanban_board(shape="v0", tasks=50, seed=1)
    b = kanban_board(shape="v0", tasks=50, seed=1)
    assert a != b and a.is_file() and b.is_file()
    assert a.parent == tmp_path and b.parent == tmp_path
    assert a.read_bytes() == b.read_bytes()  # deterministic for a shape, size and seed
    assert count(a) == 50
    conn = sqlite3.connect(a)
    ids = [r[0] for r in conn.execute("SELECT id FROM tasks")]
    cols = [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    conn.execute("DELETE FROM tasks")
    conn.commit()
    conn.close()
    assert all(len(i) == 6 and i.startswith("t_") for i in ids)  # v0 ids: t_ + 4 hex digits
    assert "branch_name" not in cols and len(cols) == 16  # the v0 tasks table
    assert count(b) == 50  # each call is its own copy


def test_journal_modes_as_the_application_left_them(kanban_board):
    def mode(path):
        conn = sqlite3.connect(path)
        try:
            return conn.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            conn.close()

    from kanban_migrate.board import wal_reset_vulnerable

    fresh = "delete" if wal_reset_vulnerable(sqlite3.sqlite_version_info) else "wal"
    assert mode(kanban_board(shape="v7", tasks=5)) == fresh  # made after the WAL-reset gate
    assert mode(kanban_board(shape="v1-upgraded", tasks=5)) == "wal"  # April's WAL board, never downgraded
    assert mode(kanban_board(shape="v0", tasks=5)) == "wal"
    assert mode(kanban_board(shape="v7", tasks=5, journal_mode="wal")) == "wal"
    assert mode(kanban_board(shape="v0", tasks=5, journal_mode="delete")) == "delete"


def test_named_board(kanban_board, tmp_path):
    path = kanban_board(shape="v3-half", tasks=5, seed=2, name="kanban.db")
    assert path == tmp_path / "kanban.db" and count(path) == 5


def test_template_is_built_once_and_copies_are_the_same_bytes(kanban_board_template, kanban_board, tmp_path):
    template = kanban_board_template(shape="v1", tasks=20, seed=2)
    assert kanban_board_template("v1", 20, 2) == template  # built once, shared
    assert not template.is_relative_to(tmp_path)
    nested = kanban_board(shape="v1", tasks=20, seed=2, name="home/kanban/boards/work/kanban.db")
    assert nested == tmp_path / "home/kanban/boards/work/kanban.db"
    assert nested.read_bytes() == template.read_bytes() and count(template) == 20
    with open("templates.txt", "a") as fh:
        fh.write(str(template) + "\\n")


def test_every_shape(legacy_board, legacy_board_shape, tmp_path):
    assert legacy_board == tmp_path / "kanban.db"
    assert count(legacy_board) == 200
    with open(legacy_board, "rb") as fh:
        assert fh.read(16) == b"SQLite format 3\\x00"
    with open("shapes-seen.txt", "a") as fh:
        fh.write(legacy_board_shape + "\\n")
'''


def run_outside(pytester, *args):
    pytester.makepyfile(test_outside=OUTSIDE_TESTS)
    # A fresh process: the plugin must come from the installed entry point, and nothing of this
    # project's own pytest configuration (addopts --test-alembic, conftest.py) reaches it.
    return pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider", *args)


def test_outside_project_uses_the_fixtures(pytester):
    result = run_outside(pytester)
    names = list(shapes())
    result.assert_outcomes(passed=5 + len(names))
    result.stdout.fnmatch_lines([f"*test_outside.py::test_every_shape[[]{n}[]] PASSED*" for n in names],
                                consecutive=False)
    result.stdout.fnmatch_lines(["*test_kanban_board_gives_distinct_files_in_tmp_path PASSED*"])
    assert (pytester.path / "shapes-seen.txt").read_text().split() == names
    assert "--test-alembic" not in result.stdout.str()
    templates = [Path(t) for t in (pytester.path / "templates.txt").read_text().split()]
    assert templates and not any(t.parent.exists() for t in templates)  # removed when pytest ended


def test_a_test_that_changes_a_shared_template_fails_the_session(pytester):
    pytester.makepyfile(test_outside="""
import sqlite3


def test_reads_a_copy(kanban_board):
    conn = sqlite3.connect(kanban_board(shape="v0", tasks=5))
    conn.execute("DELETE FROM tasks")
    conn.commit()
    conn.close()


def test_writes_to_the_template(kanban_board_template):
    conn = sqlite3.connect(kanban_board_template(shape="v7", tasks=5, journal_mode="delete"))
    conn.execute("DELETE FROM tasks")
    conn.commit()
    conn.close()


def test_reads_a_wal_template_without_immutable(kanban_board_template):
    conn = sqlite3.connect(f"file:{kanban_board_template(shape='v0', tasks=5, seed=2)}?mode=ro", uri=True)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (5,)
    conn.close()


def test_reads_a_template_as_immutable(kanban_board_template):
    conn = sqlite3.connect(f"file:{kanban_board_template(shape='v0', tasks=5, seed=3)}?immutable=1", uri=True)
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (5,)
    conn.close()
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*a test changed shared kanban_board_template boards: "
                                 "v7-5-1-delete.db, v0-5-2-app.db (open a copy*"])
    assert "v0-5-1" not in result.stdout.str() and "v0-5-3" not in result.stdout.str()


def test_plugin_can_be_disabled(pytester):
    result = run_outside(pytester, "-p", "no:kanban_migrate")
    result.stdout.fnmatch_lines(["*fixture 'kanban_board' not found*", "*fixture 'legacy_board' not found*"],
                                consecutive=False)
    result.assert_outcomes(errors=5, failed=1)  # test_every_shape is no longer parametrized


def test_a_pytest_run_inside_a_session_keeps_the_session_s_templates(pytester, kanban_board_template):
    outer = kanban_board_template(shape="v0", tasks=5, seed=4)
    pytester.makepyfile(test_inner='''
def test_inner(kanban_board):
    assert kanban_board(shape="v0", tasks=5, seed=4).is_file()
''')
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert outer.is_file()
