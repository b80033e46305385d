"""The README's "Embedding" example, run as written: ensure_head on connect, recover instead of
quarantine."""

from __future__ import annotations

import random
import re
import sqlite3

import corruption as C
from support import ROOT, pragma_rows, rows
from kanban_migrate import head
from kanban_migrate.upgrading import upgrade


def readme_connect():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Embedding: the application's connect"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md (Embedding)", "exec"), namespace)
    return namespace["connect"]


def test_a_legacy_board_is_brought_to_head_on_connect(kanban_board):
    path = kanban_board("v1", tasks=120, name="kanban.db")
    tasks = len(rows(path, "tasks"))
    conn = readme_connect()(str(path))
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head.HEAD,)]
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == tasks
    finally:
        conn.close()


def test_a_malformed_board_is_recovered_not_replaced_by_an_empty_one(kanban_board, caplog):
    path = kanban_board("v2b", tasks=300, name="kanban.db")
    upgrade(path)  # a board at head, stamped: ensure_head answers "current" without reading it all
    tasks = {t["id"] for t in rows(path, "tasks")}
    C.overwrite_leaf(path, "tasks", random.Random(11))
    conn = readme_connect()(str(path))
    try:
        kept = {r[0] for r in conn.execute("SELECT id FROM tasks")}
        assert kept and kept <= tasks  # rows came back, nothing invented
        assert len(kept) >= len(tasks) * 0.8  # one damaged leaf, not an empty board
    finally:
        conn.close()
    originals = list(path.parent.glob("kanban.db.corrupt.*.bak"))
    assert len(originals) == 1  # the original is kept beside it, as the application's quarantine did
    assert pragma_rows(path, "quick_check") == [("ok",)]
    assert [r["version_num"] for r in rows(path, "alembic_version")] == [head.HEAD]
    assert "recovering every readable row" in caplog.text


def test_an_unstamped_damaged_board_is_recovered_too(kanban_board):
    path = kanban_board("v0", tasks=300, name="kanban.db")
    C.overwrite_leaf(path, "task_events", random.Random(2))
    conn = readme_connect()(str(path))
    try:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 300
    finally:
        conn.close()
    assert list(path.parent.glob("kanban.db.corrupt.*.bak"))
    assert isinstance(conn, sqlite3.Connection)
