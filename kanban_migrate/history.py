"""The board application's release history: each release's CREATE script and column passes
(``fixtures/shapes.toml``), and the historical shapes they leave a board in.

Its own module because two jobs need it: :mod:`kanban_migrate.fixtures` replays a shape to make a
test board, and ``recover`` replays every shape to learn each table layout a board has had (to
match orphaned pages). Standard library only.
"""

from __future__ import annotations

import sqlite3
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from .resources import fixtures_dir
from .schema import quote


@dataclass(frozen=True)
class Era:
    name: str
    create: tuple[str, ...]
    rename: dict[str, list[list[str]]]
    add: dict[str, tuple[str, ...]]
    after: tuple[str, ...]
    aborts: bool
    id_hex: int
    journal_gate: bool = False  # the release follows the WAL-reset journal-mode rule (#70055)


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    steps: tuple[str, ...]
    pre: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def _load() -> dict:
    with open(fixtures_dir() / "shapes.toml", "rb") as fh:
        return tomllib.load(fh)


@lru_cache(maxsize=None)
def eras() -> dict[str, Era]:
    raw = _load()["era"]
    out: dict[str, Era] = {}

    def build(name: str) -> Era:
        if name in out:
            return out[name]
        spec = raw[name]

        def inherited(key: str, empty):
            value = spec.get(key, empty)
            return getattr(build(value), key) if isinstance(value, str) else value  # "v1": as era v1

        create = list(inherited("create", ()))
        for old, new in spec.get("create_replace", []):
            if not any(old in stmt for stmt in create):
                raise ValueError(f"shapes.toml: era {name}: create_replace {old!r} matches nothing")
            create = [stmt.replace(old, new) for stmt in create]
        add = {t: tuple(build(v).add[t] if isinstance(v, str) else v)
               for t, v in dict(inherited("add", {})).items()}
        out[name] = Era(
            name=name,
            create=tuple(create),
            rename=spec.get("rename", {}),
            add=add,
            after=tuple(inherited("after", ())),
            aborts=bool(spec.get("aborts", False)),
            id_hex=int(spec.get("id_hex", 8)),
            journal_gate=bool(spec.get("journal_gate", False)),
        )
        return out[name]

    for name in raw:
        build(name)
    return out


def journal_mode_after(steps, sqlite_version: tuple[int, ...] | None = None) -> str:
    """The journal mode a new file has after the releases ``steps`` opened it in turn: releases
    before the WAL-reset gate put every board in WAL; later ones follow the application's rule
    (:func:`kanban_migrate.board.journal_mode_for`) under the SQLite ``sqlite_version``."""
    from .board import journal_mode_for

    mode = "delete"  # a new file
    all_eras = eras()
    for step in steps:
        if all_eras[step].journal_gate:
            mode = journal_mode_for(mode, sqlite_version) or mode
        else:
            mode = "wal"
    return mode


@lru_cache(maxsize=None)
def shapes() -> dict[str, Shape]:
    return {
        name: Shape(
            name=name,
            description=spec.get("description", ""),
            steps=tuple(spec.get("steps", [])),
            pre=tuple(spec.get("pre", [])),
            extra=tuple(spec.get("extra", [])),
        )
        for name, spec in _load()["shape"].items()
    }


def column_names(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({quote(table)})")]


def open_with(conn: sqlite3.Connection, era: Era) -> str | None:
    """Open the board the way release ``era`` did. Returns the error a release that aborts hit."""
    for stmt in era.create:
        try:
            conn.execute(stmt)
        except sqlite3.OperationalError as exc:
            if era.aborts:
                return str(exc)
            raise
    for table, pairs in era.rename.items():
        for old, new in pairs:
            if new not in column_names(conn, table):
                conn.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    for table, defs in era.add.items():
        have = set(column_names(conn, table))
        if not have:
            continue
        for d in defs:
            ddl, _, backfill = (part.strip() for part in d.partition("|"))
            col = ddl.split()[0]
            if col in have:
                continue
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {ddl}")
            have.add(col)
            if backfill:
                try:
                    conn.execute(f"UPDATE {table} SET {col} = {backfill}")
                except sqlite3.OperationalError:
                    pass  # the column it copies from does not exist on this board
    for stmt in era.after:
        conn.execute(stmt)
    return None


def build_schema(conn: sqlite3.Connection, shape: Shape) -> list[str]:
    aborted = []
    all_eras = eras()
    for stmt in shape.pre:
        conn.execute(stmt)
    for step in shape.steps:
        err = open_with(conn, all_eras[step])
        if err:
            aborted.append(f"{step}: {err}")
    for stmt in shape.extra:
        conn.execute(stmt)
    return aborted
