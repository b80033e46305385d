"""The click commands behind ``kanban-migrate`` (imported only off the fast path)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .board import DEFAULT_BUSY_TIMEOUT
from .errors import ExitCode, KanbanMigrateError, UsageError
from .progress import progress_bar
from .results import UpgradeResult, table

busy_option = click.option(
    "--busy-timeout", type=float, default=DEFAULT_BUSY_TIMEOUT, show_default=True, metavar="SECONDS",
    help="How long to wait for another process's lock before giving up (exit 4).",
)
home_option = click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The Hermes home (default: $HERMES_KANBAN_HOME, $HERMES_HOME or ~/.hermes).",
)


def _paths(dbs: tuple[str, ...], home: Path | None, include_all: bool) -> list[str]:
    if dbs:
        return list(dbs)
    from .home import discover, hermes_root, pinned_problem

    warning = pinned_problem(home)
    if warning:
        click.echo(f"kanban-migrate: warning: {warning}", err=True)
    found = [str(b.path) for b in discover(home, include_all=include_all)]
    if not found:
        raise UsageError(f"no boards found under {hermes_root(home)}",
                         "name a board file, or point --home at the Hermes home", path=None)
    return found


def _emit_json(items: list[dict], many: bool) -> None:
    click.echo(json.dumps(items if many else items[0], indent=2, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kanban-migrate")
def cli() -> None:
    """Upgrade, check and repair Hermes kanban boards (kanban.db).

    Exit codes: 0 done or healthy, 1 work pending / problems found, 2 usage or missing path,
    3 input refused (left untouched), 4 board locked by another process, 5 the environment
    failed (disk full, file-size limit, permissions, read-only folder).
    """


@cli.command()
@click.argument("dbs", nargs=-1, metavar="[DB]...")
@click.option("--all", "include_all", is_flag=True, help="Every board of the home: archived and per-profile boards too.")
@home_option
@click.option("--create", is_flag=True, help="Make a new board at head where DB is missing or empty.")
@click.option("--dry-run", is_flag=True, help="Show the detected shape and the revisions that would run; write nothing.")
@click.option("--sql", is_flag=True, help="Print the SQL that would run (Alembic offline mode); write nothing.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when any board needs work (for installers).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success, one line per board on failure.")
@click.option("--no-backup", is_flag=True, help="Skip the content-addressed pre-upgrade backup.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None, help="Boards upgraded in parallel (default: cores).")
@busy_option
def upgrade(dbs, include_all, home, create, dry_run, sql, check, as_json, quiet, no_backup, jobs, busy_timeout):
    """Take boards of any historical shape to head.

    With no DB: the boards of the Hermes home ($HERMES_KANBAN_DB, the default board, named boards;
    with --all also archived and per-profile boards). Each revision is atomic; a backup is taken
    first when there is work to do.
    """
    from .upgrading import upgrade_many

    paths = _paths(dbs, home, include_all)
    kw = dict(create=create, dry_run=dry_run or check, sql=sql, backup=not no_backup, busy_timeout=busy_timeout)
    show = not (as_json or quiet or sql) and sys.stderr.isatty()
    if len(paths) == 1 and show and not (dry_run or check):
        from .upgrading import pending_after

        with progress_bar(f"upgrading {paths[0]}", len(pending_after(None))) as advance:
            results = upgrade_many(paths, jobs=1, **kw, on_revision=lambda rev: advance(rev))
    elif show:
        with progress_bar("upgrading boards", len(paths)) as advance:
            results = upgrade_many(paths, jobs=jobs, on_done=lambda r: advance(Path(r.path).name), **kw)
    else:
        results = upgrade_many(paths, jobs=jobs, **kw)
    many = len(results) > 1 or include_all or not dbs
    # A board with work pending counts (exit 1) only for --check; --dry-run and --sql just report.
    worst = max((0 if r.status == "pending" and not check else r.code) for r in results)
    if as_json:
        _emit_json([r.to_dict() for r in results], many)
    elif sql:
        for r in results:
            if r.sql is not None:
                click.echo(f"-- {r.path}\n{r.sql}")
            elif r.status == "current":
                click.echo(f"-- {r.path}: at head, nothing to do")
            elif not r.ok:
                click.echo(f"kanban-migrate: {r.line()}", err=True)
    elif quiet:
        for r in results:
            if not r.ok and r.status != "pending":
                click.echo(f"kanban-migrate: {r.line()}", err=True)
            elif check and r.status == "pending":
                click.echo(r.line())
    else:
        _print_results(results, many)
    sys.exit(worst)


def _print_results(results: list[UpgradeResult], many: bool) -> None:
    if many:
        click.echo(table(results))
        for r in results:
            if not r.ok and r.status != "pending":
                click.echo(f"kanban-migrate: {r.line()}", err=True)
        return
    r = results[0]
    if r.ok or r.status == "pending":
        click.echo(r.line())
        if r.evidence and r.status in ("upgraded", "pending"):
            click.echo(f"  detected: {r.shape} ({'; '.join(r.evidence)})")
    else:
        click.echo(f"kanban-migrate: {r.line()}", err=True)


@cli.command()
@click.argument("dbs", nargs=-1, metavar="[DB]...")
@click.option("--all", "include_all", is_flag=True, help="Archived and per-profile boards too.")
@home_option
@click.option("--json", "as_json", is_flag=True)
@busy_option
def status(dbs, include_all, home, as_json, busy_timeout):
    """Revision, head, pending revisions and detected shape of boards (read-only)."""
    from .upgrading import status as status_of

    out, worst = [], 0
    for p in _paths(dbs, home, include_all):
        try:
            s = status_of(p, busy_timeout=busy_timeout)
        except KanbanMigrateError as exc:
            click.echo(f"kanban-migrate: {exc.line()}", err=True)
            worst = max(worst, int(exc.code))
            continue
        out.append(s.to_dict())
        if not as_json:
            pending = " ".join(s.pending) or "none"
            click.echo(f"{s.path}: revision {s.revision or 'none (legacy board)'}, head {s.head}, "
                       f"pending {pending}, shape {s.shape}" + (f" ({s.note})" if s.note else ""))
    if as_json and out:
        _emit_json(out, len(out) > 1 or not dbs)
    sys.exit(worst)


@cli.command()
def history():
    """The revision chain, oldest first."""
    from alembic.script import ScriptDirectory

    from .migration import make_config

    script = ScriptDirectory.from_config(make_config())
    revs = list(reversed(list(script.walk_revisions())))
    for rev in revs:
        mark = "  (head)" if rev.is_head else ""
        doc = (rev.doc or "").strip().splitlines()[0]
        click.echo(f"{rev.revision:3} {doc}{mark}")


@cli.group()
def fixtures():
    """Boards of every historical shape, with realistic data."""


@fixtures.command("list")
def fixtures_list():
    """The shapes `fixtures create` can build."""
    from . import fixtures as fx

    for name, shape in fx.shapes().items():
        click.echo(f"{name:12} {shape.description}")


@fixtures.command("create")
@click.option("--shape", required=True, help="A name from 'kanban-migrate fixtures list'.")
@click.option("--tasks", type=click.IntRange(0), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def fixtures_create(shape, tasks, seed, path):
    """Build a board of SHAPE at PATH (which must not exist)."""
    from . import fixtures as fx

    if shape not in fx.shapes():
        raise UsageError(f"unknown shape {shape!r}", "see 'kanban-migrate fixtures list'", path=None)
    if path.exists():
        raise UsageError("already exists", "fixtures create never overwrites: pick a new path", path=str(path))
    info = fx.create(path, shape, tasks=tasks, seed=seed)
    rows = ", ".join(f"{n} {t}" for t, n in info.rows.items())
    click.echo(f"{path}: {shape} board with {rows}")
    for err in info.aborted:
        click.echo(f"  (as in the wild, release {err})")


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the demo board (default: a new temporary folder).")
@click.option("--shape", default="v0", show_default=True)
@click.option("--tasks", type=click.IntRange(1), default=500, show_default=True)
def demo(directory, shape, tasks):
    """Build a legacy demo board from the fixtures and upgrade it, printing the report."""
    import tempfile

    from . import fixtures as fx
    from .upgrading import upgrade as do_upgrade

    directory = directory or Path(tempfile.mkdtemp(prefix="kanban-migrate-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kanban.db"
    if path.exists():
        raise UsageError("a demo board is already there", "pass another --dir", path=str(path))
    info = fx.create(path, shape, tasks=tasks, seed=1)
    click.echo(f"demo board: {path} ({fx.shapes()[shape].description})")
    click.echo("  rows: " + ", ".join(f"{n} {t}" for t, n in info.rows.items()))
    result = do_upgrade(path)
    click.echo(result.line())
    click.echo(f"  detected: {result.shape} ({'; '.join(result.evidence)})")
    again = do_upgrade(path)
    click.echo(f"second run: {again.line()}")
    try:
        from .verifying import verify
    except ImportError:  # pragma: no cover - verify ships with the package
        return
    report = verify(path)
    click.echo(f"verify: {'healthy' if report.ok else 'problems found'} "
               f"({sum(1 for f in report.findings if f.severity == 'error')} errors, "
               f"{sum(1 for f in report.findings if f.severity == 'warning')} warnings)")
    sys.exit(0 if report.ok else int(ExitCode.PENDING))


def _register_optional() -> None:
    """Commands that live beside their feature packages."""
    for module, attr in (("kanban_migrate.verifying.cli", "verify_command"),
                         ("kanban_migrate.recovering.cli", "recover_command"),
                         ("kanban_migrate.fleet", "boards_command"),
                         ("kanban_migrate.fleet", "backups_command")):
        try:
            import importlib

            cmd = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        cli.add_command(cmd)


_register_optional()
