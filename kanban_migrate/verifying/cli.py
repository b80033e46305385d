"""``kanban-migrate verify [DB ...]``: the click command (registered by ``kanban_migrate.cli``).

Exit codes: 0 no error or warning; 1 errors or warnings found; 2 usage (a missing path, no
boards found, options that do not fit together).
"""

from __future__ import annotations

import json
import sys

import click

from ..board import DEFAULT_BUSY_TIMEOUT
from ..errors import ExitCode, KanbanMigrateError
from .model import SEVERITIES, VerifyReport


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
        _usage(f"no boards found under {hermes_root(home)} (pass the path of a board)")
    return [str(b.path) for b in found]


@click.command("verify")
@click.argument("dbs", metavar="[DB]...", nargs=-1, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per board (a list for several).")
@click.option("--full", is_flag=True, help="PRAGMA integrity_check instead of quick_check (compares index contents too).")
@click.option("--all", "include_all", is_flag=True, help="Without DB: also archived and old per-profile boards.")
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Without DB: the Hermes home to look in (default: $HERMES_KANBAN_HOME, $HERMES_HOME, ~/.hermes).")
@click.option("--busy-timeout", type=click.FloatRange(min=0), default=DEFAULT_BUSY_TIMEOUT, show_default=True,
              help="Seconds to wait for a board another process holds locked.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None,
              help="Boards verified in parallel processes (default: the core count).")
def verify_command(dbs, as_json, full, include_all, home, busy_timeout, jobs):
    """Inspect boards without changing them and report findings.

    Checks: file (header, size, WAL, backups), integrity (quick_check, or integrity_check with
    --full; foreign keys), schema (against head), revision (alembic_version) and data (the kanban
    invariants). Without DB, the boards of the Hermes home are verified.
    Exit 0: no error or warning; 1: errors or warnings; 2: usage.
    """
    paths = _targets(dbs, home, include_all)
    show = not as_json and len(paths) > 1 and sys.stderr.isatty()
    if show:
        from ..progress import progress_bar

        with progress_bar("verifying boards", len(paths)) as advance:
            outcomes = _verify_all(paths, full, busy_timeout, jobs, on_done=advance)
    else:
        outcomes = _verify_all(paths, full, busy_timeout, jobs)
    reports: list[VerifyReport] = []
    for outcome in outcomes:
        if isinstance(outcome, tuple):  # only a missing path is refused; everything else is a finding
            code, line = outcome
            click.echo(f"kanban-migrate: {line}", err=True)
            sys.exit(code)
        reports.append(outcome)
    if as_json:
        payload = reports[0].to_dict() if len(reports) == 1 else [r.to_dict() for r in reports]
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        render(reports)
    sys.exit(0 if all(r.ok for r in reports) else int(ExitCode.PENDING))


def _verify_one(path: str, full: bool, busy_timeout: float):
    from . import verify

    try:
        return verify(path, full=full, busy_timeout=busy_timeout)
    except KanbanMigrateError as exc:
        return (int(exc.code), exc.line())


def _verify_all(paths: list[str], full: bool, busy_timeout: float, jobs: int | None, on_done=None) -> list:
    """One report (or refusal) per path, in order; several boards in parallel processes."""
    import os

    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(paths) <= 1:
        out = []
        for p in paths:
            out.append(_verify_one(p, full, busy_timeout))
            if on_done:
                on_done(os.path.basename(p))
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out: list = [None] * len(paths)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures = {pool.submit(_verify_one, p, full, busy_timeout): i for i, p in enumerate(paths)}
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
