"""What ``verify`` reports: findings and the per-board report. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
CHECKS = ("file", "integrity", "schema", "revision", "data")
MAX_EXAMPLES = 5
#: The keys of a finding and of a report in JSON, in the order they are printed (README, "verify").
FINDING_KEYS = ("check", "severity", "table", "message", "hint", "count", "examples")
REPORT_KEYS = ("path", "ok", "shape", "revision", "findings", "not_checked")
HINT_UPGRADE = "run 'kanban-migrate upgrade' on it"
HINT_BUG = "report this as a bug of kanban-migrate, with the board if possible"


@dataclass
class Finding:
    """One thing ``verify`` noticed. ``check`` names the check that found it."""

    check: str
    severity: str  # error | warning | info
    message: str
    table: str | None = None
    hint: str | None = None
    count: int | None = None
    examples: list[Any] = field(default_factory=list)
    #: Set when the finding only says that a check could not run (the board was locked, the
    #: machine refused a read): the report then says "not checked" instead of listing it.
    cause: NotChecked | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")
        if self.check not in CHECKS:
            raise ValueError(f"check must be one of {CHECKS}, not {self.check!r}")

    def to_dict(self) -> dict:
        return as_dict(self, FINDING_KEYS)


def excerpt(value: Any, limit: int = 40) -> str:
    """A short, printable excerpt of a value the file supplied (never the whole of a huge one)."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return repr(value[:limit]) + f" (… {len(value)} in all)"
    return repr(value)


def as_dict(obj, keys: tuple[str, ...]) -> dict:
    """``{key: obj.key}`` in JSON's types: what ``to_dict`` returns for a finding and a report."""
    return {k: _jsonable(getattr(obj, k)) for k in keys}


def _jsonable(value: Any) -> Any:
    """JSON's types for a value a board supplied (bytes as hex) or a nested result (its ``to_dict``)."""
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


class NotChecked(Exception):
    """Why a board could not be checked: it was locked or kept changing (exit 4), the machine
    refused a read or the room for a private copy (exit 5), or the path does not exist (exit 2).
    Never a statement about the board's health."""

    def __init__(self, code: int, reason: str, hint: str | None = None):
        super().__init__(reason)
        self.code, self.reason, self.hint = int(code), reason, hint

    def __reduce__(self):  # pickled between the processes of ``verify --jobs``
        return (type(self), (self.code, self.reason, self.hint))

    def line(self) -> str:
        return self.reason + (f" ({self.hint})" if self.hint else "")

    def to_dict(self) -> dict:
        return {"code": self.code, "reason": self.reason, "hint": self.hint}


@dataclass
class VerifyReport:
    """The result of verifying one board. ``ok``: no error and no warning; None when the board
    could not be checked (``not_checked`` says why; nothing is known about its health)."""

    path: str
    shape: str | None = None
    revision: str | None = None
    findings: list[Finding] = field(default_factory=list)
    not_checked: NotChecked | None = None

    @property
    def ok(self) -> bool | None:
        if self.not_checked is not None:
            return None
        return not any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "info"]

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 errors or warnings, else the ``not_checked`` code (2, 4 or 5)."""
        if self.not_checked is not None:
            return self.not_checked.code
        return 0 if self.ok else 1

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def sort(self) -> None:
        """Errors first, then warnings, then info; within a severity in check order (stable)."""
        self.findings.sort(key=lambda f: (SEVERITIES.index(f.severity), CHECKS.index(f.check)))

    def to_dict(self) -> dict:
        return as_dict(self, REPORT_KEYS)


class Examples:
    """A counter that keeps the first few example ids: flat memory however many rows match."""

    __slots__ = ("count", "examples", "limit")

    def __init__(self, limit: int = MAX_EXAMPLES):
        self.count = 0
        self.examples: list[Any] = []
        self.limit = limit

    def add(self, example: Any, n: int = 1) -> None:
        self.count += n
        if len(self.examples) < self.limit:
            self.examples.append(example)

    def __bool__(self) -> bool:
        return self.count > 0
