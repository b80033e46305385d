"""Bad input across every command (upgrade, verify, recover): one table drives the matrix.

Each cell: the documented exit code; on a refusal, exactly one line on stderr (reason and hint)
and no traceback; the input byte-for-byte unchanged (recover runs with --output, so the source
must stay as it was even when it recovers). Paths with spaces and non-ASCII characters and
symlinks to boards work (the link stays a link)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import corruption as C
from support import dir_state, execute
from kanban_migrate.upgrading import upgrade


def empty_file(d, cache):
    return _write(d, b"")


def _write(d: Path, data: bytes) -> Path:
    p = d / "kanban.db"
    p.write_bytes(data)
    return p


def not_a_database(d, cache):
    return _write(d, b"not a database, just words\n" * 100)


def random_bytes(d, cache):
    return _write(d, random.Random(1).randbytes(32 * 1024))


def text_file(d, cache):
    return _write(d, "# notes\nthe board lives elsewhere\n".encode() * 40)


def _board(d: Path, cache, shape: str, tasks: int = 80, *statements: str, name: str = "kanban.db") -> Path:
    """A copy of a built board at ``d/name`` with ``statements`` run on it."""
    p = d / name
    p.parent.mkdir(exist_ok=True)
    shutil.copyfile(cache(shape, tasks, 1), p)
    execute(p, *statements)
    return p


def header_overwritten(d, cache):
    p = _board(d, cache, "v2b")
    C.overwrite_header(p, random.Random(1))
    return p


def magic_only(d, cache):
    return _write(d, b"SQLite format 3\x00" + b"\x00" * 20)


def other_application(d, cache):
    p = d / "kanban.db"
    execute(p, "CREATE TABLE moz_bookmarks (id INTEGER PRIMARY KEY, title TEXT)",
            "INSERT INTO moz_bookmarks (title) VALUES ('x')")
    return p


def directory(d, cache):
    p = d / "kanban.db"
    p.mkdir()
    return p


def missing(d, cache):
    return d / "no-such-folder" / "kanban.db"


def newer_revision(d, cache):
    p = _board(d, cache, "v7")
    upgrade(p, backup=False)
    execute(p, "UPDATE alembic_version SET version_num = 'v42'")
    return p


def corrupt(d, cache):
    p = _board(d, cache, "v2b", 300)
    C.overwrite_leaf(p, "task_events", random.Random(1))
    return p


def truncated_half(d, cache):
    p = _board(d, cache, "v2b", 300)
    C.truncate_half(p, random.Random(1))
    return p


def spaces_non_ascii(d, cache):
    return _board(d, cache, "v1", name="mes tâches ✓/tableau kanban ü.db")


def symlink(d, cache):
    target = _board(d, cache, "v1", name="real/kanban.db")
    link = d / "kanban.db"
    link.symlink_to(target)
    return link


def fifo_journal(d, cache):
    p = _board(d, cache, "v1")
    os.mkfifo(str(p) + "-journal")
    return p


def junk_stamp(d, cache):
    return _board(d, cache, "v7", 80, "CREATE TABLE alembic_version (version_num)",
                  "INSERT INTO alembic_version VALUES (x'00ff')")


def view_named_task_runs(d, cache):
    return _board(d, cache, "v0", 80, "CREATE VIEW task_runs AS SELECT 1 AS id")


def uri_characters(d, cache):
    return _board(d, cache, "v1", name="a?b#c%41.db")


# input: (build, {command: expected exit code or a set of them}); a row without a command is
# covered for that command elsewhere (the upgrade-only rows: tests/test_safety_upgrade.py has more)
MATRIX = {
    "not-a-database": (not_a_database, {"upgrade": 3, "verify": 1, "recover": 3}),
    "random-bytes": (random_bytes, {"upgrade": 3, "verify": 1, "recover": 3}),
    "text-file": (text_file, {"upgrade": 3, "verify": 1, "recover": 3}),
    "header-overwritten": (header_overwritten, {"upgrade": 3, "verify": 1, "recover": {0, 1}}),
    "magic-only-36-bytes": (magic_only, {"upgrade": 3, "verify": 1, "recover": 3}),
    "other-application": (other_application, {"upgrade": 3, "verify": 1, "recover": 0}),
    "directory": (directory, {"upgrade": 3, "verify": 1, "recover": 3}),
    "missing": (missing, {"upgrade": 2, "verify": 2, "recover": 2}),
    "zero-bytes": (empty_file, {"upgrade": 3, "verify": 1, "recover": 3}),
    "newer-revision": (newer_revision, {"upgrade": 3, "verify": 1, "recover": 0}),
    "corrupt": (corrupt, {"upgrade": 3, "verify": 1, "recover": {0, 1}}),
    "truncated-half": (truncated_half, {"upgrade": 3, "verify": 1, "recover": {0, 1}}),
    "spaces-non-ascii": (spaces_non_ascii, {"upgrade": 0, "verify": 1, "recover": 0}),
    "symlink": (symlink, {"upgrade": 0, "verify": 1, "recover": 0}),
    "fifo-journal": (fifo_journal, {"upgrade": 3}),
    "junk-stamp": (junk_stamp, {"upgrade": 3}),
    "view-named-task_runs": (view_named_task_runs, {"upgrade": 3}),
    "uri-characters": (uri_characters, {"upgrade": 0}),
}
# these succeed: the board changes
WRITES = {("upgrade", "spaces-non-ascii"), ("upgrade", "symlink"), ("upgrade", "uri-characters")}
# what upgrade's one line says (its reason), per input
UPGRADE_SAYS = {
    "not-a-database": "not a SQLite database", "random-bytes": "not a SQLite database",
    "text-file": "not a SQLite database", "header-overwritten": "not a SQLite database",
    "magic-only-36-bytes": "truncated", "other-application": "not a kanban board",
    "directory": "is a directory", "missing": "no such file", "newer-revision": "does not know",
    "corrupt": "recover", "truncated-half": "recover", "zero-bytes": "--create",
    "fifo-journal": "FIFO", "junk-stamp": "not a revision id", "view-named-task_runs": "takes the name",
}


@pytest.mark.parametrize("command", ["upgrade", "verify", "recover"])
@pytest.mark.parametrize("case", list(MATRIX))
def test_bad_input(case, command, tmp_path, kanban_board_template):
    build, expected = MATRIX[case]
    if command not in expected:
        pytest.skip(f"{case}: an upgrade-only row")
    inputs = tmp_path / "in"
    inputs.mkdir()
    path = build(inputs, kanban_board_template)
    before = dir_state(inputs)
    was_link = path.is_symlink()
    args = [command, str(path)]
    if command == "recover":
        args += ["--output", str(tmp_path / "out" / "recovered.db")]
    proc = subprocess.run([sys.executable, "-m", "kanban_migrate", *args], capture_output=True, text=True,
                          timeout=60 if "fifo" in case else 300, env={k: v for k, v in os.environ.items() if not k.startswith("HERMES")})
    want = expected[command]
    want = want if isinstance(want, set) else {want}
    assert proc.returncode in want, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    if proc.returncode in (2, 3, 4):
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kanban-migrate: "), proc.stderr
        assert "(" in lines[0], "a refusal says what to do"
        if command == "upgrade":
            assert UPGRADE_SAYS[case] in lines[0]
    if (command, case) in WRITES:
        assert path.is_symlink() == was_link  # a link stays a link; the target was upgraded
        assert upgrade(path).status == "current"
        stray = [p.name for p in inputs.rglob("*") if p.is_file() and p.resolve() != path.resolve()
                 and ".pre-upgrade." not in p.name]
        assert not stray, stray  # nothing beside the board but its backup
    else:
        assert dir_state(inputs) == before
    if case == "missing":
        assert not path.exists() and not path.parent.exists()
