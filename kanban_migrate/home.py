"""Where a Hermes home keeps its boards (spec section 1). Standard library only.

    >>> from kanban_migrate.home import discover
    >>> [b.kind for b in discover("/nonexistent")]
    []
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_]{0,63}$")
BACKUP_PATTERNS = ("*.corrupt.*.bak", "*.pre-upgrade.*.bak", "*.pre-restore.*.bak")


@dataclass(frozen=True)
class BoardRef:
    path: Path
    kind: str  # pinned, default, named, archived, profile
    name: str  # slug, profile name, or "default"


def hermes_root(home: str | os.PathLike | None = None) -> Path:
    """The kanban root: ``--home``, else ``$HERMES_KANBAN_HOME``, else ``$HERMES_HOME`` (a
    ``…/profiles/<p>`` path resolves to the shared root two levels up), else ``~/.hermes``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("HERMES_KANBAN_HOME")
    if env:
        return Path(env).expanduser()
    env = os.environ.get("HERMES_HOME")
    if env:
        p = Path(env).expanduser()
        if p.parent.name == "profiles":
            return p.parent.parent
        return p
    return Path.home() / ".hermes"


def discover(home: str | os.PathLike | None = None, *, include_all: bool = False) -> list[BoardRef]:
    """The boards of a home: the pinned file (``$HERMES_KANBAN_DB``, only when no explicit home is
    given), the default board and the named boards; with ``include_all`` also archived boards and
    old per-profile boards. Paths that do not exist are skipped (a missing pinned file is reported
    by :func:`pinned_problem`); each file appears once. A pinned path that is there but is not a
    file (a folder) is kept, so that every command says what is wrong with it."""
    root = hermes_root(home)
    found: list[BoardRef] = []
    pinned = os.environ.get("HERMES_KANBAN_DB")
    if pinned and home is None:
        found.append(BoardRef(Path(pinned).expanduser(), "pinned", "pinned"))
    found.append(BoardRef(root / "kanban.db", "default", "default"))
    boards = root / "kanban" / "boards"
    if boards.is_dir():
        for d in sorted(boards.iterdir()):
            if d.name != "_archived" and SLUG.match(d.name):
                found.append(BoardRef(d / "kanban.db", "named", d.name))
        archived = boards / "_archived"
        if include_all and archived.is_dir():
            for d in sorted(archived.iterdir()):
                found.append(BoardRef(d / "kanban.db", "archived", d.name))
    profiles = root / "profiles"
    if include_all and profiles.is_dir():
        for d in sorted(profiles.iterdir()):
            found.append(BoardRef(d / "kanban.db", "profile", d.name))
    out, seen = [], set()
    for ref in found:
        if not ref.path.is_file() and not ref.path.is_symlink() and not (ref.kind == "pinned" and ref.path.exists()):
            continue
        key = os.path.realpath(ref.path)
        if key in seen:
            continue
        seen.add(key)
        out.append(ref)
    return out


def pinned_problem(home: str | os.PathLike | None = None) -> str | None:
    """A one-line warning when ``$HERMES_KANBAN_DB`` names a file that is not there (it would
    otherwise be skipped without a word), else None."""
    pinned = os.environ.get("HERMES_KANBAN_DB")
    if not pinned or home is not None:
        return None
    path = Path(pinned).expanduser()
    if path.exists() or path.is_symlink():
        return None
    return (f"HERMES_KANBAN_DB={pinned}: no such file; it is skipped (point it at the board's kanban.db, "
            "or unset it)")


def stray_backups(home: str | os.PathLike | None = None) -> list[Path]:
    """Quarantine and pre-upgrade backups anywhere under the home's board folders."""
    root = hermes_root(home)
    dirs = [root]
    for sub in ("kanban/boards", "kanban/boards/_archived", "profiles"):
        base = root / sub
        if base.is_dir():
            dirs.extend(d for d in base.iterdir() if d.is_dir())
    out = []
    for d in dirs:
        for pattern in BACKUP_PATTERNS:
            out.extend(sorted(d.glob(pattern)))
    return out
