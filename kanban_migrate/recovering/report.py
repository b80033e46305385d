"""What a recover run did, as data (``--json``) and as lines.

The lines come in named sections (:attr:`RecoverReport.SECTIONS`), each a method returning its
lines, so that a new kind of finding is one field and one section: what happened, the rows per
table before and after, what was lost, what was not copied, the verdict of ``verify`` on the
result (the same words ``kanban-migrate verify`` would print, so the two never disagree), where
the files are, and what to do next and how to undo it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, field

from ..salvage.dump import FREELIST_MARKS, LOST_AND_FOUND

#: The headline of each mode: what recover found and did.
MODES = {"healthy": "the file is healthy: nothing to recover",
         "wal-only": "only the WAL needed checkpointing",
         "reindex": "only indexes were damaged: rebuilt them with REINDEX",
         "resized": "the file's size disagreed with its header (cut or extended outside SQLite); every page "
                    "was readable: rewrote the file at its true size",
         "salvage": "tables were damaged: salvaged every readable row and rebuilt the board at head"}


@dataclass
class TableReport:
    name: str
    recovered: int = 0  # rows placed in the rebuilt board by the salvage (before the revision chain)
    unreadable: int = 0  # cells seen in damaged areas but not readable
    from_orphan_pages: int = 0  # rows placed from pages no b-tree walk reached
    from_freelist: int = 0  # deleted rows brought back (--include-freelist): listed in FREELIST_MARKS
    rejected: int = 0  # rows the table's constraints refused: kept in lost_and_found
    deleted_set_aside: int = 0  # deleted rows brought back that the table refused (a live row has their key)
    missing_subtrees: int = 0  # child pages the b-tree walk could not follow
    in_file: int | None = None  # rows readable in the source, as far as known (what the salvage read)
    in_board: int | None = None  # rows in the recovered board (after the revision chain)


@dataclass
class Verdict:
    """``verify``'s verdict on the board recover leaves (or found healthy): the one verdict."""

    ok: bool | None  # None: it could not be checked (``reason`` says why)
    errors: int = 0
    warnings: int = 0
    findings: list[str] = field(default_factory=list)  # the first errors and warnings, as verify words them
    hints: list[str] = field(default_factory=list)  # what verify says to do about them (distinct)
    reason: str | None = None

    @classmethod
    def of(cls, checked, limit: int = 5) -> Verdict:
        """From a :class:`kanban_migrate.verifying.VerifyReport`."""
        if checked.not_checked is not None:
            return cls(None, reason=checked.not_checked.line())
        serious = checked.errors + checked.warnings
        hints = list(dict.fromkeys(f.hint for f in serious if f.hint))
        return cls(checked.ok, len(checked.errors), len(checked.warnings),
                   [f"{f.severity}: {f.check}: {f.message}" for f in serious[:limit]], hints[:3])


@dataclass
class RecoverReport:
    path: str
    mode: str = ""  # healthy | wal-only | reindex | resized | salvage
    output: str | None = None  # where the recovered board is
    original: str | None = None  # where the original board is kept (in place)
    workdir: str | None = None  # the work folder, when kept
    wal_commits: bool = False  # the WAL held commits not yet checkpointed
    wal_frames: int = 0
    snapshot: str = "bytes"  # bytes | sqlite-backup (a live board read in one transaction)
    tables: dict[str, TableReport] = field(default_factory=dict)
    lost_and_found: int = 0
    freelist_rows: int = 0  # deleted rows brought back, each listed in the board's FREELIST_MARKS table
    deleted_set_aside: int = 0  # of the lost_and_found rows, deleted ones (not a loss)
    missing_tasks: list[str] = field(default_factory=list)  # task rows gone, their events/runs not
    partial_rows: list[dict] = field(default_factory=list)  # {table, key, columns}: only the readable part
    partial_count: int = 0
    dropped: list[str] = field(default_factory=list)  # what of the damaged file's schema was not copied
    pages_unreadable: int = 0
    timed_out: bool = False
    dump: str | None = None
    verify: Verdict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    code: int = 0

    SECTIONS = ("headline", "counts", "losses", "schema", "verdict", "files", "next_steps")

    @property
    def rows_lost(self) -> bool:
        """Rows are (or may be) lost: unreadable cells, rejected or unplaced rows, rows kept only
        in part, tasks whose events survive, a walk that lost a subtree no orphan page made up
        for, a timeout. A zeroed page that held no readable cell is not a loss by itself, nor is a
        deleted row (``--include-freelist``) set aside because a live row has its key now."""
        return bool(self.timed_out or self.missing_tasks or self.lost_and_found > self.deleted_set_aside
                    or self.partial_count
                    or any(t.unreadable or t.rejected or (t.missing_subtrees and not t.from_orphan_pages)
                           for t in self.tables.values()))

    @property
    def in_place(self) -> bool:
        return self.original is not None

    @property
    def status(self) -> str:
        """One word for scripts: healthy (nothing to recover; with --output, a copy was written),
        recovered, or rows-lost."""
        if self.mode == "healthy":
            return "healthy"
        return "rows-lost" if self.code else "recovered"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tables"] = {k: asdict(v) for k, v in self.tables.items()}
        d["ok"] = self.code == 0
        d["status"] = self.status
        d["next"] = self.next_commands(absolute=True)
        d["undo"] = self.undo_command(absolute=True)
        return d

    def lines(self) -> list[str]:
        out: list[str] = []
        for name in self.SECTIONS:
            out.extend(getattr(self, f"_{name}")())
        return out

    # --- sections ------------------------------------------------------------------------------
    def _headline(self) -> list[str]:
        out = [f"{self.path}: {MODES.get(self.mode, self.mode)}"]
        if self.snapshot == "sqlite-backup":
            out.append("  the board is in use: read as one consistent snapshot (SQLite's backup API)")
        if self.wal_commits:
            out.append(f"  the WAL held uncheckpointed commits ({self.wal_frames} frames); they are included")
        return out

    def _counts(self) -> list[str]:
        """Rows per table: readable in the file (as far as known) and in the recovered board."""
        shown = [t for t in self.tables.values() if t.in_file is not None or t.in_board is not None]
        if not shown:
            return []
        salvaged = self.mode == "salvage"
        head = f"  {'rows':22} {'in the file':>11} {'in the board':>12}"
        if salvaged:
            head += f" {'unreadable':>10} {'orphan pages':>12} {'deleted':>7} {'set aside':>9}"
        out = [head]
        for t in shown:
            line = f"  {t.name:22} {_n(t.in_file):>11} {_n(t.in_board):>12}"
            if salvaged:
                line += (f" {t.unreadable:10} {t.from_orphan_pages:12} {t.from_freelist:7}"
                         f" {t.rejected + t.deleted_set_aside:9}")
            out.append(line)
        if salvaged:
            made = [f"{t.name} +{t.in_board - t.recovered}" for t in shown
                    if t.in_board is not None and t.in_board > t.recovered]
            if made:
                out.append(f"  rows the revision chain added (its data changes, e.g. runs for running tasks that had none): {', '.join(made)}")
        return out

    def _losses(self) -> list[str]:
        out = []
        if self.freelist_rows:
            out.append(f"  {self.freelist_rows} deleted row(s) brought back from the freelist (--include-freelist): "
                       f"each is listed in table {FREELIST_MARKS}")
        if self.lost_and_found:
            deleted = (f" ({self.deleted_set_aside} of them deleted rows whose key a live row has now: not a loss)"
                       if self.deleted_set_aside else "")
            out.append(f"  {self.lost_and_found} row(s) matched no table or were refused by it: "
                       f"kept in table {LOST_AND_FOUND}{deleted}")
        if self.partial_count:
            out.append(f"  {self.partial_count} row(s) kept with only their readable part (a broken overflow chain):")
            for p in self.partial_rows[:20]:
                cols = ", ".join(p["columns"]) or "?"
                out.append(f"    {p['table']} {p['key']!r}: {cols}")
            if self.partial_count > 20:
                out.append(f"    ... ({self.partial_count - 20} more; --json lists up to {len(self.partial_rows)})")
        if self.missing_tasks:
            ids = ", ".join(self.missing_tasks[:10]) + (" ..." if len(self.missing_tasks) > 10 else "")
            out.append(f"  {len(self.missing_tasks)} task(s) lost while their events or runs survive: {ids}")
        if self.pages_unreadable:
            out.append(f"  {self.pages_unreadable} page(s) could not be read")
        if self.timed_out:
            out.append("  the salvage ran out of time: raise --time-limit to read further")
        return out

    def _schema(self) -> list[str]:
        return [f"  not copied: {d}" for d in self.dropped] + [f"  {n}" for n in self.notes]

    def _verdict(self) -> list[str]:
        v = self.verify
        if v is None:
            return []
        what = "the recovered board" if self.mode != "healthy" else "the copy" if self.output else "the board"
        if v.ok is None:
            return [f"  verify could not check {what}: {v.reason}"]
        if v.ok:
            return [f"  verify: OK ({what} has no errors and no warnings)"]
        out = [f"  verify: PROBLEMS in {what} ({v.errors} error(s), {v.warnings} warning(s)); the file itself "
               "is sound" + (": nothing to recover" if self.mode == "healthy" else "")]
        out += [f"    {f}" for f in v.findings]
        out += [f"    -> {h}" for h in v.hints]
        return out

    def _files(self) -> list[str]:
        out = []
        if self.output and not self.in_place:
            out.append(f"  {'copy of the board' if self.mode == 'healthy' else 'recovered board'}: {self.output}")
        if self.original:
            out.append(f"  original kept as: {self.original}")
        if self.dump:
            out.append(f"  SQL dump: {self.dump}")
        if self.workdir:
            out.append(f"  work folder kept: {self.workdir} (the forensic copy, manifest.json, the rebuilt board)")
        return out

    def _next_steps(self) -> list[str]:
        out = [f"  next: {c}" for c in self.next_commands()]
        undo = self.undo_command()
        if undo:
            out.append(f"  undo: {undo}   (puts the original back; the recovered board is kept as "
                       f"{os.path.basename(self.path)}.pre-restore.<hash>.bak)")
        elif self.output:
            out.append("  undo: nothing to undo: the source was not changed (delete the new files if unwanted)")
        else:
            out.append("  undo: nothing to undo: nothing was changed")
        return out

    # --- what to do next ----------------------------------------------------------------------
    def _path(self, path: str, absolute: bool) -> str:
        return os.path.abspath(path) if absolute else shlex.quote(path)

    def next_commands(self, *, absolute: bool = False) -> list[str]:
        """What the user does next, as commands (paths quoted for a shell, or absolute in JSON)."""
        board = self._path(self.path, absolute)
        if self.mode == "healthy":
            if self.verify is not None and self.verify.ok is False:
                return [f"kanban-migrate verify {board}   (the findings in full, with what to do)"]
            return []
        target = self._path(self.output, absolute) if self.output and not self.in_place else board
        steps = [f"kanban-migrate verify {target}   (check the recovered board yourself)"]
        if self.lost_and_found or self.freelist_rows:
            tables = [t for t, n in ((LOST_AND_FOUND, self.lost_and_found), (FREELIST_MARKS, self.freelist_rows)) if n]
            steps.append(f"sqlite3 {target} 'SELECT * FROM {tables[0]}'   (rows set aside or brought back)")
        if self.output and not self.in_place:
            steps.append(f"to use it in place of {board}: stop the application, then 'kanban-migrate recover "
                         f"{board}' (the same salvage, swapped in; the original is kept and 'restore' undoes it)")
        else:
            steps.append("start the application again")
        return steps

    def undo_command(self, *, absolute: bool = False) -> str | None:
        """The command that puts the original back (in place only; README "How to undo a recover")."""
        if not self.original:
            return None
        return f"kanban-migrate restore {self._path(self.path, absolute)} {self._path(self.original, absolute)}"


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
