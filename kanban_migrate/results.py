"""Plain result objects of ``upgrade`` and ``status``, and their text forms. Standard library only
(the no-op fast path prints these without importing SQLAlchemy or Alembic)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class UpgradeResult:
    """What ``upgrade`` did (or, with ``dry_run``/``check``, would do) to one board."""

    path: str
    status: str  # current | upgraded | created | pending | refused | busy | missing | error
    shape: str | None = None  # the fingerprint of a legacy board, e.g. "v2b +legacy-counters"
    revision_before: str | None = None
    revision_after: str | None = None
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    backup: str | None = None
    seconds: float = 0.0
    evidence: list[str] = field(default_factory=list)
    message: str | None = None  # the one-line reason of a refusal
    hint: str | None = None
    code: int = 0  # the exit code this board contributes
    sql: str | None = None
    note: str | None = None  # something the user must know (a stamp the schema did not bear out)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("sql", "note"):
            if d[key] is None:
                del d[key]
        return d

    def line(self) -> str:
        """One line for people."""
        before = self.revision_before or "unstamped"
        shape = f" [{self.shape}]" if self.shape else ""
        note = f" ({self.note})" if self.note else ""
        if self.status == "current":
            return f"{self.path}: at head ({self.revision_after}), nothing to do{note}"
        if self.status == "pending":
            return (f"{self.path}: {before}{shape} -> {self.pending[-1] if self.pending else '?'}: "
                    f"would apply {' '.join(self.pending)}{note}")
        if self.status in ("upgraded", "created"):
            what = "created at head" if self.status == "created" else f"{before}{shape} -> {self.revision_after}"
            applied = f", applied {' '.join(self.applied)}" if self.applied else ""
            backup = f"; backup {self.backup}" if self.backup else ""
            return f"{self.path}: {what}{applied} in {self.seconds:.2f} s{backup}{note}"
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.path}: {self.message}{hint}"


@dataclass
class StatusResult:
    path: str
    revision: str | None
    head: str
    pending: list[str]
    shape: str | None
    evidence: list[str] = field(default_factory=list)
    note: str | None = None  # a stamp the schema does not bear out

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["note"] is None:
            del d["note"]
        return d


def table(results: list[UpgradeResult]) -> str:
    """A summary table of several boards, aligned plain text."""
    rows = [("board", "shape", "revision", "result")]
    for r in results:
        rev = f"{r.revision_before or '-'} -> {r.revision_after or '-'}"
        result = r.status if r.ok else f"{r.status}: {r.message}"
        rows.append((r.path, r.shape or "-", rev, result))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(f"{len(results)} board(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
