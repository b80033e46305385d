"""Where the revision chain (``alembic/``) and the fixture definitions (``fixtures/``) live.

In a wheel they ship inside the package (``kanban_migrate/_alembic``, ``kanban_migrate/_fixtures``);
in a checkout or an editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(packaged: str, top: str) -> Path:
    inside = _PKG / packaged
    if inside.is_dir():
        return inside
    repo = _PKG.parent / top
    if repo.is_dir():
        return repo
    raise FileNotFoundError(f"kanban-migrate is installed without its {top}/ folder")


def alembic_dir() -> Path:
    return _find("_alembic", "alembic")


def fixtures_dir() -> Path:
    return _find("_fixtures", "fixtures")
