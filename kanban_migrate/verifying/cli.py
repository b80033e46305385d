"""``kanban-migrate verify [DB ...]``: the click command (registered by ``kanban_migrate.cli``).

Every board named (or found in the Hermes home) is tried, and the exit code is the worst:
0 healthy; 1 errors or warnings found; 2 usage (a missing path, options that do not fit
together); 4 a board could not be checked because it is locked or kept changing; 5 a board could
not be checked because the machine refused (permissions, no room in TMPDIR for a private copy);
70 a bug. A board that could not be checked gets one line on standard error,
``kanban-migrate: <path>: <why> (<what to do>)``, and in ``--json`` a report with ``"ok": null``
and ``"not_checked": {"code", "reason", "hint"}``. "No boards found" is not an error (exit 0).

``--json`` prints an object when exactly one DB path is named, else a list (home discovery,
``--all``, several paths), so that a script's parser does not depend on how many boards exist.
"""

from __future__ import annotations

import json
import sys

import click

from ..board import DEFAULT_BUSY_TIMEOUT
from ..errors import ExitCode, KanbanMigrateError
from .model import SEVERITIES, NotChecked, VerifyReport


def _usage(message: str) -> None:
    click.echo(f"kanban-migrate: {message}", err=True)
    sys.exit(int(ExitCode.USAGE))


def _targets(dbs: tuple[str, ...], home: str | None, include_all: bool) -> list[str]:
    if dbs:
        if home is not None or include_all:
            _usage("--home and --all apply only when no DB is given")
        return list(dbs)
    from ..home import discover, hermes_root

    found = discover(home, include_all=include_all)
    if not found:
        click.echo(f"kanban-migrate: no boards found under {hermes_root(home)} (nothing to verify)", err=True)
    return [str(b.path) for b in found]


@click.command("verify")
@click.argument("dbs", metavar="[DB]...", nargs=-1, type=click.Path(dir_okay=True, readable=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: an object when exactly one DB is named, else a list.")
@click.option("--quick", is_flag=True,
              help="PRAGMA quick_check and the data checks that indexes and small tables answer (large boards, cron).")
@click.option("--full", is_flag=True, help="The default, said explicitly: PRAGMA integrity_check and every data check.")
@click.option("--all", "include_all", is_flag=True, help="Without DB: also archived and old per-profile boards.")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Without DB: the Hermes home to look in (default: $HERMES_KANBAN_HOME, $HERMES_HOME, ~/.hermes).")
@click.option("--busy-timeout", type=click.FloatRange(min=0), default=DEFAULT_BUSY_TIMEOUT, show_default=True,
              help="Seconds to wait for a board another process holds locked.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None,
              help="Boards verified in parallel processes (default: the core count).")
def verify_command(dbs, as_json, quick, full, include_all, home, busy_timeout, jobs):
    """Inspect boards without changing them and report findings.

    Checks: file (header, size, WAL, backups), integrity (integrity_check, or quick_check with
    --quick; foreign keys), schema (against head), revision (alembic_version) and data (the
    kanban invariants). Without DB, the boards of the Hermes home are verified.
    Exit 0: healthy; 1: errors or warnings; 2: usage or a missing path; 4: locked, not checked;
    5: the machine refused a read, not checked; 70: a bug.
    """
    if quick and full:
        _usage("--quick and --full do not go together (--full is the default)")
    paths = _targets(dbs, home, include_all)
    show = not as_json and len(paths) > 1 and sys.stderr.isatty()
    if show:
        from ..progress import progress_bar

        with progress_bar("verifying boards", len(paths)) as advance:
            reports = _verify_all(paths, quick, busy_timeout, jobs, on_done=advance)
    else:
        reports = _verify_all(paths, quick, busy_timeout, jobs)
    for r in reports:
        if r.not_checked is not None:
            click.echo(f"kanban-migrate: {r.path}: {r.not_checked.line()}", err=True)
    if as_json:
        payload = reports[0].to_dict() if len(dbs) == 1 else [r.to_dict() for r in reports]
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        render([r for r in reports if r.not_checked is None])
    sys.exit(max((r.exit_code for r in reports), default=int(ExitCode.OK)))


def _verify_one(path: str, quick: bool, busy_timeout: float) -> VerifyReport:
    """The report of one board; a refusal (a missing path) becomes a report that says why."""
    from . import verify

    try:
        return verify(path, quick=quick, busy_timeout=busy_timeout)
    except KanbanMigrateError as exc:
        return VerifyReport(path, not_checked=NotChecked(exc.code, exc.message, exc.hint))


def _verify_all(paths: list[str], quick: bool, busy_timeout: float, jobs: int | None,
                on_done=None) -> list[VerifyReport]:
    """One report per path, in order; several boards in parallel processes."""
    import os

    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(paths) <= 1:
        out = []
        for p in paths:
            out.append(_verify_one(p, quick, busy_timeout))
            if on_done:
                on_done(os.path.basename(p))
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: list = [None] * len(paths)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = {pool.submit(_verify_one, p, quick, busy_timeout): i for i, p in enumerate(paths)}
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            if on_done:
                on_done(os.path.basename(paths[futures[fut]]))
    return out


# ---- human output ----------------------------------------------------------------------------------
def _summary(r: VerifyReport) -> str:
    counts = [f"{len(r.errors)} error(s)", f"{len(r.warnings)} warning(s)", f"{len(r.infos)} note(s)"]
    state = "OK" if r.ok else "PROBLEMS"
    what = ", ".join(x for x in (f"shape {r.shape}" if r.shape else None,
                                  f"revision {r.revision}" if r.revision else "unstamped") if x)
    return f"{r.path}: {state} ({what}; {', '.join(counts)})"


def _message(f) -> str:
    msg = f.message
    if f.examples and f.count and f.check != "schema":  # schema messages name them already
        msg += "  e.g. " + ", ".join(map(str, f.examples[:3]))
    return msg


def render(reports: list[VerifyReport], *, stream=None) -> None:
    """A short table per board, grouped by severity; rich on a terminal, plain text otherwise."""
    stream = stream or sys.stdout
    if stream.isatty():
        _render_rich(reports, stream)
    else:
        _render_plain(reports, stream)


def _render_plain(reports: list[VerifyReport], stream) -> None:
    for r in reports:
        print(_summary(r), file=stream)
        for sev in SEVERITIES:
            group = [f for f in r.findings if f.severity == sev]
            if not group:
                continue
            print(f"  {sev}s:" if sev != "info" else "  info:", file=stream)
            for f in group:
                where = f"{f.check}" + (f" [{f.table}]" if f.table else "")
                print(f"    {where}: {_message(f)}", file=stream)
                if f.hint:
                    print(f"      -> {f.hint}", file=stream)


def _render_rich(reports: list[VerifyReport], stream) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream)
    styles = {"error": "bold red", "warning": "yellow", "info": "dim"}
    for r in reports:
        console.print(_summary(r), style="bold green" if r.ok else "bold", markup=False, highlight=False)
        if not r.findings:
            continue
        table = Table(show_header=True, header_style="bold", expand=False)
        for col in ("severity", "check", "table", "finding", "hint"):
            table.add_column(col, overflow="fold")
        for sev in SEVERITIES:
            for f in (f for f in r.findings if f.severity == sev):
                table.add_row(*(Text(x) for x in (sev, f.check, f.table or "", _message(f), f.hint or "")),
                              style=styles[sev])
        console.print(table)
