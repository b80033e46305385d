"""``fixtures`` and ``demo``: boards of every historical shape, and a legacy board upgraded."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from ..errors import ExitCode, UsageError


def known_shape(shape: str) -> str:
    from .. import fixtures as fx

    if shape not in fx.shapes():
        raise UsageError(f"unknown shape {shape!r}", "see 'kanban-migrate fixtures list'")
    return shape


def _new_board_path(path: Path) -> Path:
    """A path ``fixtures create`` may write: new, in a folder that exists (a typo in the folder is
    a mistake to point out, not a tree to create)."""
    if path.exists() or path.is_symlink():
        raise UsageError("already exists", "fixtures create never overwrites: pick a new path", path=str(path))
    if not path.parent.is_dir():
        raise UsageError(f"no such folder: {path.parent}", "create the folder first, or pick another path",
                         path=str(path))
    return path


@click.group()
def fixtures():
    """Boards of every historical shape, with realistic data."""


@fixtures.command("list")
def fixtures_list():
    """The shapes 'fixtures create' can build."""
    from .. import fixtures as fx

    for name, shape in fx.shapes().items():
        click.echo(f"{name:12} {shape.description}")


@fixtures.command("create")
@click.option("--shape", required=True, help="A name from 'kanban-migrate fixtures list'.")
@click.option("--tasks", type=click.IntRange(0), default=200, show_default=True, help="How many tasks (other rows scale with it).")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same board, byte for byte.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def fixtures_create(shape, tasks, seed, path):
    """Build a board of SHAPE at PATH (which must not exist; its folder must)."""
    from .. import fixtures as fx

    known_shape(shape)
    _new_board_path(path)
    try:
        info = fx.create(path, shape, tasks=tasks, seed=seed)
    except BaseException:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # never a half-built board
        raise
    rows = ", ".join(f"{n} {t}" for t, n in info.rows.items())
    click.echo(f"{path}: {shape} board with {rows}")
    for err in info.aborted:
        click.echo(f"  (as in the wild, release {err})")


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo board (default: a new temporary folder).")
@click.option("--shape", default="v0", show_default=True, help="The legacy shape to start from ('fixtures list').")
@click.option("--tasks", type=click.IntRange(1), default=500, show_default=True, help="How many tasks the demo board has.")
def demo(directory, shape, tasks):
    """Build a legacy demo board from the fixtures and upgrade it, printing the report."""
    import tempfile

    from .. import fixtures as fx
    from ..upgrading import upgrade as do_upgrade
    from ..verifying import verify
    from . import render

    known_shape(shape)
    made = directory is None
    if made:
        directory = Path(tempfile.mkdtemp(prefix="kanban-migrate-demo-"))
    path = directory / "kanban.db"
    if path.exists():
        raise UsageError("a demo board is already there", "pass another --dir", path=str(path))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        info = fx.create(path, shape, tasks=tasks, seed=1)
    except BaseException:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    click.echo(f"demo board: {path} ({fx.shapes()[shape].description})")
    click.echo("  rows: " + ", ".join(f"{n} {t}" for t, n in info.rows.items()))
    result = do_upgrade(path)
    click.echo(render.upgrade_line(result))
    if result.evidence:
        click.echo(f"  detected: {result.shape} ({'; '.join(result.evidence)})")
    click.echo(f"second run: {render.upgrade_line(do_upgrade(path))}")
    report = verify(path)
    click.echo(f"verify: {'healthy' if report.ok else 'problems found'} "
               f"({len(report.errors)} errors, {len(report.warnings)} warnings)")
    sys.exit(0 if report.ok else int(ExitCode.PENDING))
