"""What a recover run did, as data (``--json``) and as lines."""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field

from ..salvage.dump import LOST_AND_FOUND


@dataclass
class TableReport:
    name: str
    recovered: int = 0  # rows in the rebuilt board
    unreadable: int = 0  # cells seen in damaged areas but not readable
    from_orphan_pages: int = 0  # rows placed from pages no b-tree walk reached
    from_freelist: int = 0
    rejected: int = 0  # rows the table's constraints refused: kept in lost_and_found
    missing_subtrees: int = 0  # child pages the b-tree walk could not follow


@dataclass
class RecoverReport:
    path: str
    mode: str = ""  # healthy | wal-only | reindex | salvage
    output: str | None = None  # where the recovered board is
    original: str | None = None  # where the original board is kept (in place)
    workdir: str | None = None  # the work folder, when kept
    wal_commits: bool = False  # the WAL held commits not yet checkpointed
    wal_frames: int = 0
    snapshot: str = "bytes"  # bytes | sqlite-backup (a live board read in one transaction)
    tables: dict[str, TableReport] = field(default_factory=dict)
    lost_and_found: int = 0
    missing_tasks: list[str] = field(default_factory=list)  # task rows gone, their events/runs not
    partial_rows: list[dict] = field(default_factory=list)  # {table, key, columns}: only the readable part
    partial_count: int = 0
    dropped: list[str] = field(default_factory=list)  # what of the damaged file's schema was not copied
    pages_unreadable: int = 0
    timed_out: bool = False
    dump: str | None = None
    notes: list[str] = field(default_factory=list)
    #: kept copies (pre-upgrade, quarantine, pre-restore) holding rows the recovered board lacks
    #: (:class:`kanban_migrate.recovering.frombackup.Holding` as dicts); only looked for when rows were lost
    lost_rows_in_backups: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    code: int = 0

    @property
    def rows_lost(self) -> bool:
        """Rows are (or may be) lost: unreadable cells, rejected or unplaced rows, rows kept only
        in part, tasks whose events survive, a walk that lost a subtree no orphan page made up
        for, a timeout. A zeroed page that held no readable cell is not a loss by itself."""
        return bool(self.timed_out or self.missing_tasks or self.lost_and_found or self.partial_count
                    or any(t.unreadable or t.rejected or (t.missing_subtrees and not t.from_orphan_pages)
                           for t in self.tables.values()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tables"] = {k: asdict(v) for k, v in self.tables.items()}
        return d

    def lines(self) -> list[str]:
        what = {"healthy": "the board is healthy: nothing to recover",
                "wal-only": "only the WAL needed checkpointing",
                "reindex": "only indexes were damaged: rebuilt them",
                "salvage": "tables were damaged: salvaged every readable row and rebuilt the board at head"}
        out = [f"{self.path}: {what.get(self.mode, self.mode)}"]
        if self.snapshot == "sqlite-backup":
            out.append("  the board is in use: read as one consistent snapshot (SQLite's backup API)")
        if self.wal_commits:
            out.append(f"  the WAL held uncheckpointed commits ({self.wal_frames} frames); they are included")
        if self.tables:
            out.append(f"  {'table':22} {'recovered':>9} {'unreadable':>10} {'orphan pages':>12} {'rejected':>8}")
            for t in self.tables.values():
                out.append(f"  {t.name:22} {t.recovered:9} {t.unreadable:10} {t.from_orphan_pages:12} {t.rejected:8}")
        if self.lost_and_found:
            out.append(f"  {self.lost_and_found} row(s) matched no table: kept in table {LOST_AND_FOUND}")
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
        out.extend(self.backup_lines())
        if self.pages_unreadable:
            out.append(f"  {self.pages_unreadable} page(s) could not be read")
        if self.timed_out:
            out.append("  the salvage ran out of time: raise --time-limit to read further")
        out.extend(f"  not copied: {d}" for d in self.dropped)
        out.extend(f"  {n}" for n in self.notes)
        if self.output:
            out.append(f"  recovered board: {self.output}")
        if self.original:
            out.append(f"  original kept as: {self.original}")
        if self.dump:
            out.append(f"  SQL dump: {self.dump}")
        if self.workdir:
            out.append(f"  work folder kept: {self.workdir}")
        return out

    def backup_lines(self) -> list[str]:
        """Which kept copies hold rows the recovered board lacks, and the command that brings them back."""
        out = []
        lost = len(self.missing_tasks)
        for h in self.lost_rows_in_backups:
            if not h["rows"]:
                continue
            name, when = h["name"], time.strftime("%Y-%m-%d %H:%M", time.localtime(h["mtime"]))
            found = h["lost_tasks"]
            ids = ", ".join(found[:10]) + (" ..." if len(found) > 10 else "")
            if found and len(found) == lost:
                who = "it is" if lost == 1 else "both are" if lost == 2 else f"all {lost} are"
                out.append(f"  {lost} task(s) lost: {ids} — {who} in {name} ({when})")
            elif found:
                out.append(f"  {len(found)} of the {lost} lost task(s) are in {name} ({when}): {ids}")
            counts = ", ".join(f"{n} {t}" for t, n in h["rows"].items())
            out.append(f"  {name} ({when}) holds rows the recovered board lacks (lost, or deleted since): {counts}")
            if h.get("damaged"):
                out.append(f"  but {name} is damaged (quick_check: {h['damaged']}): these rows cannot be brought "
                           "back from it")
            elif self.original:
                out.append(f"  bring them back: kanban-migrate recover {shlex.quote(self.path)} "
                           f"--from-backup {shlex.quote(name)}")
            else:
                out.append(f"  once the recovered board is in place, 'kanban-migrate recover DB --from-backup {name}' "
                           "brings them back")
        return out
