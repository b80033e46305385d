"""pytest plugin (entry point ``pytest11``): legacy kanban boards for any project's tests.

    def test_my_app_opens_old_boards(kanban_board):
        path = kanban_board(shape="v0", tasks=200, seed=1)   # a fresh board in tmp_path
        ...

    def test_every_shape(legacy_board):                     # parametrized over every shape
        assert legacy_board.exists()

    def test_a_home_of_boards(kanban_board_template, tmp_path):
        source = kanban_board_template(shape="v1", tasks=50, seed=2)   # shared: copy, never write
        (tmp_path / ".hermes").mkdir()
        shutil.copyfile(source, tmp_path / ".hermes" / "kanban.db")

The shapes are the ones ``kanban-migrate fixtures list`` prints. Each board is built once per
session (per worker under pytest-xdist: workers share nothing) for a given shape, size, seed and
journal mode — deterministic, so every build of the same key is the same bytes — and copied, so
each test gets its own file. ``kanban_board_template`` hands out the built file itself, for tests
that lay boards out their own way (a Hermes home, a folder of boards) or only read them; it is
shared by every test of the session, so writing to it would leak into other tests, and the
session ends with an error naming it if it changed (``board_template``, importable from this
module, is the same thing for helpers that are not fixtures). Each board is in the journal mode the
application of its releases left it in (under the running SQLite: a board made by a release of
July or later is DELETE where SQLite has the WAL-reset bug); ``journal_mode="wal"`` or
``"delete"`` asks for one.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import pytest


def _shapes() -> list[str]:
    from kanban_migrate.fixtures import shapes

    return list(shapes())


def _state(path: Path) -> dict[str, str | None]:
    """The board's and its sidecars' sha256 (None: no such file)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            with open(f"{path}{suffix}", "rb") as fh:
                out[suffix] = hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            out[suffix] = None
    return out


class _Templates:
    """The boards built so far in this process, by (shape, tasks, seed, journal_mode), in a
    folder of their own made on first use and removed when pytest ends."""

    def __init__(self):
        self.base: Path | None = None
        self.built: dict[tuple, tuple[Path, dict[str, str | None]]] = {}

    def __call__(self, shape: str = "v0", tasks: int = 200, seed: int = 1,
                 journal_mode: str | None = None) -> Path:
        key = (shape, tasks, seed, journal_mode)
        if key not in self.built:
            from kanban_migrate.fixtures import create

            if self.base is None:
                self.base = Path(tempfile.mkdtemp(prefix="kanban-boards-"))
            path = self.base / f"{shape}-{tasks}-{seed}-{journal_mode or 'app'}.db"
            create(path, shape, tasks=tasks, seed=seed, journal_mode=journal_mode)
            self.built[key] = path, _state(path)
        return self.built[key][0]

    def changed(self) -> list[str]:
        """Templates whose bytes, or whose sidecars, differ from what was built (SQLite makes
        ``-wal``/``-shm`` when it opens a WAL board without ``immutable=1``, even read-only)."""
        return [path.name for path, state in self.built.values() if _state(path) != state]

    def remove(self) -> None:
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
        self.base, self.built = None, {}


board_template = _Templates()
"""``board_template(shape="v0", tasks=200, seed=1, journal_mode=None)``: what the
``kanban_board_template`` fixture returns, for test helpers that are not fixtures."""


_sessions = 0  # pytest runs in this process (a pytester run nests one inside another)


def pytest_configure(config):
    global _sessions
    _sessions += 1


def pytest_unconfigure(config):
    global _sessions
    _sessions -= 1
    if _sessions == 0:
        board_template.remove()


@pytest.fixture(scope="session")
def kanban_board_template():
    """Session-scoped: ``kanban_board_template(shape="v0", tasks=200, seed=1, journal_mode=None)``
    returns the path of the board built for that key, shared by every test of the session. Copy
    it or read it; never open it for writing (``kanban_board`` gives a board of your own)."""
    yield board_template
    changed = board_template.changed()
    if changed:
        pytest.fail(f"a test changed shared kanban_board_template boards: {', '.join(changed)} "
                    "(open a copy: kanban_board, or copy the template first)", pytrace=False)


@pytest.fixture(scope="session")
def _kanban_board_cache(kanban_board_template):
    """``kanban_board_template`` under its name from before it was public."""
    return kanban_board_template


@pytest.fixture
def kanban_board(tmp_path, kanban_board_template):
    """Factory: ``kanban_board(shape="v0", tasks=200, seed=1, name=None, journal_mode=None)``
    returns the path of a fresh board of that shape in ``tmp_path`` (``name`` may hold
    subfolders, which are made)."""
    count = 0

    def make(shape: str = "v0", tasks: int = 200, seed: int = 1, name: str | None = None,
             journal_mode: str | None = None) -> Path:
        nonlocal count
        count += 1
        dest = tmp_path / (name or f"kanban-{shape}-{count}.db")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kanban_board_template(shape, tasks, seed, journal_mode), dest)
        return dest

    return make


def pytest_generate_tests(metafunc):
    if "legacy_board" in metafunc.fixturenames:
        metafunc.parametrize("legacy_board_shape", _shapes(), ids=_shapes())


@pytest.fixture
def legacy_board_shape(request):
    return request.param


@pytest.fixture
def legacy_board(kanban_board, legacy_board_shape) -> Path:
    """A board of each historical shape in turn (200 tasks, seed 1)."""
    return kanban_board(shape=legacy_board_shape, tasks=200, seed=1, name="kanban.db")
