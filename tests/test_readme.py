"""The README's examples run as written, and say what they print.

Every fenced block in ``sh``, ``console`` or ``python`` is an example (other blocks are text):

- ``sh``: each line runs with bash in a sandbox (its own HOME with a Hermes home of two boards, and
  a ``kanban.db`` and ``old.db`` in the working folder); it must exit 0 or 1 (1 is never an error:
  work pending, problems found, rows lost), print no traceback, and every stderr line must be a
  ``kanban-migrate:`` line.
- ``console``: ``$ command`` lines run in one sandbox in order; the lines after each are its
  expected output, compared as doctest does with ``...`` matching anything.
- ``python``: the blocks run in order in one interpreter (a snippet may use names an earlier one
  defined); an expression line whose comment is a Python literal (``# ['v0', 'v1', ...]``) must
  evaluate to something whose repr matches that comment.

A block that cannot run here is tagged on the line above it with
``<!-- readme-test: skip (why) -->``; it is reported as skipped with that reason, never dropped
silently.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import ROOT, sha256

README = ROOT / "README.md"
RUNNABLE = {"sh", "console", "python"}
MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<why>[^)]*)\)\s*-->")
LITERAL_COMMENT = re.compile(r"^(?P<expr>[^#]+?)\s+#\s*(?P<want>[\[\('\"{\d].*|True|False|None)\s*$")


@dataclass
class Block:
    lang: str
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None  # the marker's reason


def blocks(text: str) -> list[Block]:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        before = lines[start - 1] if start else ""
        marker = MARKER.search(before)
        out.append(Block(lang, start + 1, "\n".join(lines[start + 1: j]), marker.group("why") if marker else None))
        i = j + 1
    return out


EXAMPLES = [b for b in blocks(README.read_text()) if b.lang in RUNNABLE]


def test_the_readme_has_examples_of_every_kind():
    assert {b.lang for b in EXAMPLES} == RUNNABLE
    assert all(b.skip.strip() for b in EXAMPLES if b.skip is not None)  # a reason, always


@pytest.fixture(scope="module")
def boards(tmp_path_factory, kanban_board_template):
    from kanban_migrate.upgrading import upgrade

    d = tmp_path_factory.mktemp("readme-boards")
    head = d / "head.db"
    shutil.copyfile(kanban_board_template("v1", 40, 4), head)
    upgrade(head, backup=False)
    return {"head": head, "v0": kanban_board_template("v0", 40, 1), "v2b": kanban_board_template("v2b", 40, 1)}


@pytest.fixture
def sandbox(tmp_path, boards):
    """``(cwd, env)``: HOME with a Hermes home (the default board at head with the original a
    recover kept beside it, a named legacy board), and a working folder with kanban.db (a v2b
    board) and old.db (a v0 board)."""
    home = tmp_path / "home"
    hermes = home / ".hermes"
    (hermes / "kanban/boards/work").mkdir(parents=True)
    shutil.copyfile(boards["head"], hermes / "kanban.db")
    kept = hermes / f"kanban.db.corrupt.{sha256(boards['v0'])[:16]}.bak"  # as if recover had swapped it
    shutil.copyfile(boards["v0"], kept)
    shutil.copyfile(boards["v0"], hermes / "kanban/boards/work/kanban.db")
    cwd = tmp_path / "work"
    cwd.mkdir()
    shutil.copyfile(boards["v2b"], cwd / "kanban.db")
    shutil.copyfile(boards["v0"], cwd / "old.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERMES", "KANBAN_MIGRATE"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               COLUMNS="100", TMPDIR=str(tmp_path))
    return cwd, env


def shell(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _id(b: Block) -> str:
    return f"{b.lang}-line{b.line}"


@pytest.mark.parametrize("block", [b for b in EXAMPLES if b.lang == "sh"], ids=_id)
def test_sh_block(block: Block, sandbox):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    cwd, env = sandbox
    for line in block.text.splitlines():
        command = line.split(" #", 1)[0].strip()
        if not command or command.startswith("#"):
            continue
        proc = shell(command, cwd, env)
        assert proc.returncode in (0, 1), (command, proc.stdout[-2000:], proc.stderr)
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
        stray = [x for x in proc.stderr.splitlines() if x.strip() and not x.startswith("kanban-migrate: ")]
        assert not stray, (command, proc.stderr)


@pytest.mark.parametrize("block", [b for b in EXAMPLES if b.lang == "console"], ids=_id)
def test_console_block(block: Block, sandbox):
    if block.skip:
        pytest.skip(f"README line {block.line}: {block.skip}")
    cwd, env = sandbox
    checker = doctest.OutputChecker()
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"README line {block.line}: output before any '$ ' command"
            steps[-1][1].append(line)
    for command, want in steps:
        proc = shell(command, cwd, env)
        assert proc.returncode in (0, 1), (command, proc.stderr)
        expected = "\n".join(want) + "\n" if want else ""
        assert checker.check_output(expected, proc.stdout, doctest.ELLIPSIS), (
            f"README line {block.line}: {command}\n--- expected\n{expected}--- got\n{proc.stdout}")


def python_program(examples: list[Block]) -> str:
    """The python blocks as one program; a literal comment becomes an assertion on the repr."""
    parts = []
    for b in examples:
        body = []
        for line in b.text.splitlines():
            m = LITERAL_COMMENT.match(line)
            if m and not line.startswith((" ", "\t")) and "=" not in m.group("expr").replace("==", ""):
                body.append(f"_check({m.group('expr').strip()!r}, {m.group('expr').strip()}, {m.group('want')!r}, {b.line})")
            else:
                body.append(line)
        parts.append(f"# README line {b.line}\n" + "\n".join(body))
    prelude = textwrap.dedent("""\
        import doctest
        def _check(text, value, want, line):
            if not doctest.OutputChecker().check_output(want + "\\n", repr(value) + "\\n", doctest.ELLIPSIS):
                raise AssertionError(f"README line {line}: {text} is {value!r}, the README says {want}")
        """)
    return prelude + "\n\n".join(parts) + "\n"


def test_python_blocks(sandbox):
    runnable = [b for b in EXAMPLES if b.lang == "python" and not b.skip]
    assert runnable
    cwd, env = sandbox
    program = cwd.parent / "readme_examples.py"
    program.write_text(python_program(runnable))
    proc = subprocess.run([sys.executable, str(program)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_literal_comments_are_checked():
    """The convention bites: a wrong literal comment fails the program."""
    b = Block("python", 1, "1 + 1   # 3", None)
    proc = subprocess.run([sys.executable, "-c", python_program([b])], capture_output=True, text=True)
    assert proc.returncode != 0 and "the README says 3" in proc.stderr


def test_the_layout_section_names_only_what_exists():
    """"How the code is laid out" matches the tree: every file and folder it names exists."""
    text = README.read_text()
    section = text[text.index("## How the code is laid out"):]
    tree = next(b for b in blocks(section) if b.lang == "")
    parents: list[tuple[int, str]] = []
    named = []
    for line in tree.text.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or not re.match(r"^[\w.]+/?$", m.group(2)) or "." not in m.group(2) and not m.group(2).endswith("/"):
            continue
        depth, name = len(m.group(1)), m.group(2)
        parents = [(d, p) for d, p in parents if d < depth]
        path = "".join(p for _d, p in parents) + name
        named.append(path)
        if name.endswith("/"):
            parents.append((depth, name))
    assert "kanban_migrate/cli/fastpath.py" in named
    missing = [p for p in named if not (ROOT / p).exists()]
    assert not missing, missing
