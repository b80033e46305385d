"""kanban_migrate.headfacts: what verify takes from head without importing SQLAlchemy is exactly
head's, a kept copy is read only while it matches head's sources, and nothing is kept where
Python would keep no bytecode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kanban_migrate import head, headfacts

ROOT = Path(__file__).resolve().parents[1]


def test_the_facts_are_heads_own():
    assert headfacts.expected() == head.expected()
    assert headfacts.facts()["ddl"] == tuple(head.head_ddl())
    for name in headfacts.VALUES:
        value = getattr(headfacts, name)
        assert value == getattr(head, name) and type(value) is type(getattr(head, name)), name


def run_verify(board: Path, prefix: Path, *, dont_write: bool = False) -> subprocess.CompletedProcess:
    """``verify --quick BOARD`` in a child that keeps bytecode under ``prefix``; it prints the
    heavy packages it imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = ("import sys; from kanban_migrate.verifying import verify; r = verify(sys.argv[1], quick=True);"
            "assert r.ok, r.findings; print(r.shape);"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'alembic', 'click', 'rich'}))")
    return subprocess.run([sys.executable, "-c", code, str(board)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


def kept(prefix: Path) -> list[Path]:
    return sorted(prefix.rglob("head.facts-*.marshal"))


def test_verify_reads_the_kept_facts_and_leaves_sqlalchemy_unloaded(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=20)
    prefix = tmp_path / "pycache"
    first = run_verify(board, prefix)
    assert first.returncode == 0, first.stderr
    (copy,) = kept(prefix)
    assert copy.name == headfacts.cache_path().name
    second = run_verify(board, prefix)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [first.stdout.splitlines()[0], "[]"]  # same shape, no SQLAlchemy


def test_a_damaged_kept_copy_is_derived_again(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=20)
    prefix = tmp_path / "pycache"
    assert run_verify(board, prefix).returncode == 0
    (copy,) = kept(prefix)
    copy.write_bytes(b"\x00not marshal")
    again = run_verify(board, prefix)
    assert again.returncode == 0, again.stderr
    assert "sqlalchemy" in again.stdout  # derived from head again
    assert kept(prefix) == [copy] and copy.read_bytes() != b"\x00not marshal"


def test_nothing_is_kept_without_bytecode(kanban_board, tmp_path):
    board = kanban_board(shape="v7", tasks=20)
    prefix = tmp_path / "pycache"
    assert run_verify(board, prefix, dont_write=True).returncode == 0
    assert kept(prefix) == []


def test_an_edit_of_head_changes_where_the_facts_are_kept(tmp_path, monkeypatch):
    for name in headfacts.SOURCES:
        shutil.copyfile(Path(headfacts.__file__).with_name(name), tmp_path / name)
    monkeypatch.setattr(headfacts, "_HERE", tmp_path)
    before = headfacts.cache_path()
    with open(tmp_path / "head.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert headfacts.cache_path() != before
