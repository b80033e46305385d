"""What :mod:`kanban_migrate.head` says, for readers that must not pay for SQLAlchemy.

``head`` is the one definition of the head schema, and it is SQLAlchemy metadata: importing it
costs about 0.25 s of CPU, more than ``PRAGMA quick_check`` spends on a 100 MB board. ``verify``
needs only what ``head`` derives (the DDL of a fresh board, read back as a
:class:`~kanban_migrate.schema.Schema`) and the plain values it lists (vocabularies, table roles).
So these are taken from ``head`` once and kept, as Python keeps compiled modules: in the
``__pycache__`` folder beside ``head.py`` (``sys.pycache_prefix`` and ``PYTHONDONTWRITEBYTECODE``
are honoured), in a file whose name carries a digest of the sources they were derived from. An
edit of ``head.py`` or ``revisions.py`` changes the digest, so a stale copy is never read; a
folder that cannot be written only means ``head`` is imported each time. Nothing here restates
a fact: every value comes from ``head`` at run time.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from functools import lru_cache
from importlib.util import cache_from_source
from pathlib import Path

#: The names taken from ``head``: plain values (frozensets, tuples, dicts of them).
VALUES = ("TASK_STATUSES", "RUN_STATUSES", "RUN_OUTCOMES", "DELIVERY_MODES", "EVENT_KIND_RENAMES",
          "JSON_COLUMNS", "TASK_CHILDREN")
#: The modules whose source the facts are derived from (the digest covers them and this one).
SOURCES = ("head.py", "revisions.py", "headfacts.py")
_HERE = Path(__file__).resolve().parent


def _digest() -> str:
    """The sources, and SQLAlchemy's own ``__init__`` (it carries its version): the DDL is
    rendered by SQLAlchemy, so another release of it must derive the facts again."""
    from importlib.util import find_spec

    h = hashlib.sha256(marshal.version.to_bytes(4, "little"))
    for name in SOURCES:
        h.update((_HERE / name).read_bytes())
    spec = find_spec("sqlalchemy")
    if spec is not None and spec.origin:
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


def cache_path() -> Path:
    """Where the facts of this ``head.py`` are kept (beside its compiled form)."""
    return Path(cache_from_source(str(_HERE / "head.py"))).with_name(f"head.facts-{_digest()}.marshal")


def _derive() -> dict:
    from . import head

    return {"ddl": tuple(head.head_ddl()), "at": _layouts(head),
            **{name: getattr(head, name) for name in VALUES}}


def _layouts(head) -> dict:
    """Per revision, what head has at it (``head.at``): ``{"tables": ((table, (column, ...)), ...),
    "indexes": (name, ...)}``, tables in ``metadata.sorted_tables`` order, indexes by table then name."""
    from .revisions import REVISIONS

    tables = head.metadata.sorted_tables
    # str(): SQLAlchemy's names are a str subclass, which marshal does not keep
    return {rev: {"tables": tuple((str(t.name), tuple(str(c.name) for c in t.columns if head.at(rev, c)))
                                  for t in tables if head.at(rev, t)),
                  "indexes": tuple(str(ix.name) for t in tables for ix in sorted(t.indexes, key=lambda i: i.name)
                                   if head.at(rev, ix))}
            for rev in REVISIONS}


def layout_at(revision: str) -> dict:
    """What head has at ``revision`` (see :func:`_layouts`), without importing SQLAlchemy."""
    return facts()["at"][revision]


def keep() -> Path:
    """Derive the facts and keep them now, whatever ``sys.dont_write_bytecode`` says, as
    ``compileall`` writes compiled modules: for an install step, or a test session whose machine
    sets ``PYTHONDONTWRITEBYTECODE``. Returns where they are (or would have been) kept."""
    path = cache_path()
    _write(path, _derive())
    return path


def _keep(path: Path, facts: dict) -> None:
    if not sys.dont_write_bytecode:
        _write(path, facts)


def _write(path: Path, facts: dict) -> None:
    """Write ``facts`` to ``path`` atomically and drop the copies of earlier sources. A folder
    that cannot be written is not an error: the facts are derived again next time."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(marshal.dumps(facts))
        os.replace(tmp, path)
        for old in path.parent.glob("head.facts-*.marshal"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


@lru_cache(maxsize=None)
def facts() -> dict:
    """``{"ddl": head.head_ddl(), "at": _layouts(head), name: head.<name> for name in VALUES}``:
    the kept copy when it matches the sources, else derived from ``head`` (and kept)."""
    path = cache_path()
    try:
        kept = marshal.loads(path.read_bytes())
        if isinstance(kept, dict) and set(kept) == {"ddl", "at", *VALUES}:
            return kept
    except (OSError, ValueError, EOFError, TypeError):
        pass
    derived = _derive()
    _keep(path, derived)
    return derived


@lru_cache(maxsize=None)
def expected():
    """The head schema as a :class:`~kanban_migrate.schema.Schema`: ``head.expected()``, built
    from the kept DDL."""
    import sqlite3

    from .schema import snapshot

    conn = sqlite3.connect(":memory:")
    try:
        for stmt in facts()["ddl"]:
            conn.execute(stmt)
        return snapshot(conn)
    finally:
        conn.close()


def __getattr__(name: str):
    if name in VALUES:
        return facts()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
