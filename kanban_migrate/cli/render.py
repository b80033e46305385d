"""Every table and report line the command line prints. Standard library only (the fast path
prints with it); colour is plain ANSI, on a terminal only, and off with ``NO_COLOR``.

Tables are aligned text with the path in the last column. A path is never cut: piped, a row is as
long as it needs to be; on a terminal narrower than a row, the path is folded onto the next lines
at the path column, each folded piece ending in ``FOLD`` so that the eye (and a test) can join
them back, and when even that leaves under ``MIN_PATH`` columns the path goes on its own lines
below the row. Other columns are short words and never wrap.
"""

from __future__ import annotations

import os
import shutil
import sys

from ..units import human_age, human_size
from . import rules

FOLD = "\u21b5"  # ↵ : "continued on the next line"
MIN_PATH = 24
_ANSI = {"green": "32", "yellow": "33", "magenta": "35", "red": "31", "bold red": "1;31", "dim": "2"}
HEALTH_STYLE = {"ok": "green", "unchecked": "dim", "needs-upgrade": "yellow", "newer": "magenta",
                "not-a-board": "dim", "damaged": "bold red", "unreadable": "red", "quarantined": "yellow"}


def terminal_width(stream=None) -> int | None:
    """Columns of the terminal ``stream`` writes to; None when it is not a terminal (piped)."""
    stream = stream or sys.stdout
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _paint(text: str, style: str | None, colour: bool) -> str:
    code = _ANSI.get(style or "")
    return f"\x1b[{code}m{text}\x1b[0m" if code and colour else text


def fold(text: str, width: int) -> list[str]:
    """``text`` in pieces of at most ``width`` columns, each but the last ending in ``FOLD``."""
    width = max(2, width)
    pieces = []
    while len(text) > width:
        pieces.append(text[: width - 1] + FOLD)
        text = text[width - 1:]
    pieces.append(text)
    return pieces


def table(header: list[str], rows: list[list[str]], *, width: int | None = None,
          styles: dict[int, dict[str, str]] | None = None) -> str:
    """Aligned columns, the last one a path (see the module docstring). ``width``: the terminal's
    columns (None: piped, nothing folded, no colour). ``styles``: per column, value -> style."""
    colour = width is not None and not os.environ.get("NO_COLOR")
    styles = styles or {}
    every = [header, *rows]
    widths = [max(len(r[i]) for r in every) for i in range(len(header) - 1)]
    start = sum(widths) + 2 * len(widths)
    lines = []
    for n, row in enumerate(every):
        cells = [_paint(c.ljust(w), styles.get(i, {}).get(c) if n else None, colour)
                 for i, (c, w) in enumerate(zip(row[:-1], widths))]
        lead = "  ".join(cells) + ("  " if cells else "")
        path = row[-1]
        if width is None or start + len(path) <= width:
            lines.append((lead + path).rstrip())
        elif width - start >= MIN_PATH:
            first, *rest = fold(path, width - start)
            lines.append(lead + first)
            lines.extend(" " * start + piece for piece in rest)
        else:
            lines.append(lead.rstrip())
            lines.extend("    " + piece for piece in fold(path, width - 4))
    return "\n".join(lines)


def print_table(title: str, header: list[str], rows: list[list[str]], *, stream=None,
                styles: dict[int, dict[str, str]] | None = None) -> None:
    """The title (on a terminal only: piped output starts with the header) and the table."""
    stream = stream or sys.stdout
    width = terminal_width(stream)
    if width is not None:
        print(title, file=stream)
    print(table(header, rows, width=width, styles=styles), file=stream)


# ---- upgrade and status --------------------------------------------------------------------------
def upgrade_cell(r, mode: str | None) -> str:
    """The result column of one board: what was done, or with --check/--dry-run what would be."""
    if r.status == "pending":
        return "would apply " + " ".join(r.pending)
    if r.status == "current":
        return "at head"
    if r.status in ("upgraded", "created"):
        return r.status + (f" (applied {' '.join(r.applied)})" if r.applied else "")
    verb = "would refuse" if mode in ("check", "dry-run") and r.status == "refused" else r.status
    return f"{verb} (exit {r.code}): {r.message}"


def revision_cell(r) -> str:
    before = r.revision_before or ("unstamped" if r.shape else "-")
    after = r.pending[-1] if r.status == "pending" and r.pending else r.revision_after
    return f"{before} -> {after}" if after and after != before else before


def upgrade_table(results, mode: str | None = None, *, width: int | None = None) -> str:
    rows = [[r.shape or "-", revision_cell(r), upgrade_cell(r, mode), r.path] for r in results]
    counts: dict[str, int] = {}
    for r in results:
        word = "would refuse" if mode in ("check", "dry-run") and r.status == "refused" else r.status
        counts[word] = counts.get(word, 0) + 1
    summary = f"{len(results)} board(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return table(["shape", "revision", "result", "board"], rows, width=width) + "\n" + summary


def refusal_line(r, mode: str | None = None) -> str:
    """The one stderr line of a board that was (or, with --check/--dry-run, would be) refused."""
    verb = "would refuse: " if mode in ("check", "dry-run") and r.status == "refused" else ""
    hint = f" ({r.hint})" if r.hint else ""
    return f"kanban-migrate: {r.path}: {verb}{r.message}{hint}"


def upgrade_line(r) -> str:
    """One board's result for people (a board that was not refused)."""
    before = r.revision_before or "unstamped"
    shape = f" [{r.shape}]" if r.shape else ""
    note = f" ({r.note})" if r.note else ""
    if r.status == "current":
        return f"{r.path}: at head ({r.revision_after}), nothing to do{note}"
    if r.status == "pending":
        return f"{r.path}: {before}{shape} -> {r.pending[-1]}: would apply {' '.join(r.pending)}{note}"
    what = "created at head" if r.status == "created" else f"{before}{shape} -> {r.revision_after}"
    applied = f", applied {' '.join(r.applied)}" if r.applied else ""
    backup = f"; backup {r.backup}" if r.backup else ""
    return f"{r.path}: {what}{applied} in {r.seconds:.2f} s{backup}{note}"


def print_upgrade(results, *, one: bool, quiet: bool, as_json: bool, nl: bool, home, mode: str | None = None,
                  stream=None) -> None:
    """How ``upgrade`` reports, on both paths: JSON, or a line for one named board and a table
    otherwise; each refused board also gets its one line on stderr. ``--quiet`` keeps only those
    lines (and, for ``--check``, the boards with work pending)."""
    out = stream or sys.stdout
    refused = [r for r in results if r.status not in ("current", "upgraded", "created", "pending")]
    if as_json or nl:
        text = rules.json_text([r.to_dict() for r in results], one=one, nl=nl)
        if text:
            print(text, file=out)
    elif quiet:
        for r in results:
            if mode == "check" and r.status == "pending":
                print(upgrade_line(r), file=out)
    elif not results:
        print(rules.no_boards_line(home), file=out)
    elif one:
        r = results[0]
        if r not in refused:
            print(upgrade_line(r), file=out)
            if r.evidence and r.status in ("upgraded", "pending"):
                print(f"  detected: {r.shape} ({'; '.join(r.evidence)})", file=out)
    else:
        print(upgrade_table(results, mode, width=terminal_width(out)), file=out)
    for r in refused:
        print(refusal_line(r, mode), file=sys.stderr)


def status_line(s) -> str:
    pending = " ".join(s.pending) or "none"
    return (f"{s.path}: revision {s.revision or 'none (legacy board)'}, head {s.head}, "
            f"pending {pending}, shape {s.shape}" + (f" ({s.note})" if s.note else ""))


# ---- boards and backups --------------------------------------------------------------------------
BOARD_HEADER = ["kind", "name", "shape", "revision", "size", "health", "path"]
BACKUP_HEADER = ["board kind", "board", "state", "size", "age", "kept", "path"]


def board_rows(items) -> list[list[str]]:
    return [[b.kind, b.name, b.shape or "-", b.revision or "-", human_size(b.size), b.health, b.path]
            for b in items]


def backup_rows(items, *, dry_run: bool = False) -> list[list[str]]:
    gone = "would prune" if dry_run else "pruned"
    return [[b.kind, b.name, b.state, human_size(b.size), human_age(b.age_seconds),
             gone if b.pruned else "kept", b.path] for b in items]


def board_styles() -> dict[int, dict[str, str]]:
    return {BOARD_HEADER.index("health"): HEALTH_STYLE}


def history_line(revision: str, doc: str, is_head: bool) -> str:
    """``v3  branches, projects, ...`` : the revision once, its summary, ``(head)`` once. A
    revision's docstring starts by naming itself (``v7 (head): ...``); that prefix is not repeated."""
    first = (doc.strip().splitlines() or [""])[0]
    name, sep, rest = first.partition(":")
    if sep and name.split()[0] == revision:
        first = rest.strip()
    return f"{revision:3} {first}" + ("  (head)" if is_head else "")


# ---- verify --------------------------------------------------------------------------------------
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def verify_summary(r) -> str:
    """``path: OK (shape ..., revision ...; n error(s), n warning(s), n note(s))``."""
    counts = [f"{len(r.errors)} error(s)", f"{len(r.warnings)} warning(s)", f"{len(r.infos)} note(s)"]
    what = ", ".join(x for x in (f"shape {r.shape}" if r.shape else None,
                                  f"revision {r.revision}" if r.revision else "unstamped") if x)
    return f"{r.path}: {'OK' if r.ok else 'PROBLEMS'} ({what}; {', '.join(counts)})"


def finding_text(f) -> str:
    """A finding's message with its first example ids (schema messages name theirs already)."""
    if f.examples and f.count and f.check != "schema":
        return f.message + "  e.g. " + ", ".join(map(str, f.examples[:3]))
    return f.message


def print_verify(reports, *, stream=None) -> None:
    """Each board's summary line and its findings grouped by severity: plain text when piped, a
    rich table on a terminal (values the file supplied are never read as markup)."""
    stream = stream or sys.stdout
    if terminal_width(stream) is None:
        for r in reports:
            print(verify_plain(r), file=stream)
    else:
        _verify_rich(reports, stream)


def verify_plain(r) -> str:
    from ..verifying.model import SEVERITIES

    lines = [verify_summary(r)]
    for sev in SEVERITIES:
        group = [f for f in r.findings if f.severity == sev]
        if group:
            lines.append(f"  {sev}s:" if sev != "info" else "  info:")
        for f in group:
            lines.append(f"    {f.check}" + (f" [{f.table}]" if f.table else "") + f": {finding_text(f)}")
            if f.hint:
                lines.append(f"      -> {f.hint}")
    return "\n".join(lines)


def _verify_rich(reports, stream) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..verifying.model import SEVERITIES

    console = Console(file=stream)
    for r in reports:
        console.print(verify_summary(r), style="bold green" if r.ok else "bold", markup=False, highlight=False)
        if not r.findings:
            continue
        grid = Table(show_header=True, header_style="bold", expand=False)
        for col in ("severity", "check", "table", "finding", "hint"):
            grid.add_column(col, overflow="fold")
        for sev in SEVERITIES:
            for f in (f for f in r.findings if f.severity == sev):
                grid.add_row(*(Text(x) for x in (sev, f.check, f.table or "", finding_text(f), f.hint or "")),
                             style=SEVERITY_STYLE[sev])
        console.print(grid)
