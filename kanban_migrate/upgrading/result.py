"""Plain result objects of ``upgrade`` and ``status``.

Its own piece because it is standard library only: the no-op fast path builds these without
importing SQLAlchemy or Alembic. Their text forms are in :mod:`kanban_migrate.cli.render`."""

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

