"""A seeded corruption generator for realistic boards: each function damages a board file in
one of the ways boards break in the wild (or that forensic tools must survive)."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import struct
from pathlib import Path


def page_size(path: Path) -> int:
    data = Path(path).read_bytes()[:100]
    ps = struct.unpack(">H", data[16:18])[0]
    return 65536 if ps == 1 else ps


def _ro(path: Path) -> sqlite3.Connection:
    """Read the main file only: never replays or checkpoints a -wal beside it."""
    return sqlite3.connect(f"file:{path}?immutable=1", uri=True)


def root_of(path: Path, name: str) -> int:
    c = _ro(path)
    try:
        return c.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
    finally:
        c.close()


def _page(data: bytes, pgno: int, ps: int) -> bytes:
    return data[(pgno - 1) * ps: pgno * ps]


def btree_pages(path: Path, root: int) -> dict[int, int]:
    """Every page of the b-tree at ``root``: {page number: page type}."""
    data = Path(path).read_bytes()
    ps = page_size(path)
    out, todo = {}, [root]
    while todo:
        pg = todo.pop()
        if pg in out or pg < 1 or pg * ps > len(data):
            continue
        page = _page(data, pg, ps)
        off = 100 if pg == 1 else 0
        kind = page[off]
        out[pg] = kind
        if kind in (0x02, 0x05):
            ncells = struct.unpack(">H", page[off + 3: off + 5])[0]
            todo.append(struct.unpack(">I", page[off + 8: off + 12])[0])
            for i in range(ncells):
                ptr = struct.unpack(">H", page[off + 12 + 2 * i: off + 14 + 2 * i])[0]
                todo.append(struct.unpack(">I", page[ptr: ptr + 4])[0])
    return out


def overflow_pages(path: Path, table: str) -> list[int]:
    """Pages that are neither b-tree pages of any table/index nor freelist: overflow pages."""
    data = Path(path).read_bytes()
    ps = page_size(path)
    c = _ro(path)
    roots = [r[0] for r in c.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 0")]
    c.close()
    tree = {1}
    for r in roots:
        tree |= set(btree_pages(path, r))
    n = len(data) // ps
    return [pg for pg in range(2, n + 1) if pg not in tree and _page(data, pg, ps)[:4] != b"\0\0\0\0"
            or pg not in tree and pg > 1 and any(_page(data, pg, ps)[4:64])]


def write_page(path: Path, pgno: int, content: bytes, *, ps: int | None = None) -> None:
    """Page ``pgno`` becomes ``content`` (cut or zero-padded to the page). ``ps``: the page size,
    for a file whose header no longer says it."""
    ps = ps or page_size(path)
    with open(path, "r+b") as fh:
        fh.seek((pgno - 1) * ps)
        fh.write(content[:ps].ljust(ps, b"\0"))


def zero_page(path: Path, pgno: int, *, ps: int | None = None) -> None:
    write_page(path, pgno, b"", ps=ps)


def garble_root(path: Path, table: str, rng: random.Random) -> int:
    """The root page of ``table`` overwritten with random bytes (an interior page, on a big
    table: every row below it is cut off from the b-tree)."""
    pg = root_of(path, table)
    write_page(path, pg, rng.randbytes(page_size(path)))
    return pg


def leaf_pages(path: Path, table: str) -> list[int]:
    return sorted(p for p, k in btree_pages(path, root_of(path, table)).items() if k == 0x0D)


def overwrite_leaf(path: Path, table: str, rng: random.Random) -> int:
    pg = rng.choice(leaf_pages(path, table))
    write_page(path, pg, rng.randbytes(page_size(path)))
    return pg


def zero_interior(path: Path, table: str, rng: random.Random) -> int:
    root = root_of(path, table)
    interiors = sorted(p for p, k in btree_pages(path, root).items() if k == 0x05 and p != root)
    pg = rng.choice(interiors or [root])
    write_page(path, pg, b"")
    return pg


def zero_root(path: Path, table: str, rng: random.Random) -> int:
    pg = root_of(path, table)
    write_page(path, pg, b"")
    return pg


def garble_index(path: Path, index: str, rng: random.Random) -> list[int]:
    pages = sorted(btree_pages(path, root_of(path, index)))
    for pg in pages:
        write_page(path, pg, rng.randbytes(page_size(path)))
    return pages


def truncate_half(path: Path, rng: random.Random) -> int:
    ps = page_size(path)
    size = Path(path).stat().st_size
    keep = (size // ps // 2) * ps
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    return keep


def bit_flips(path: Path, rng: random.Random, flips: int = 60) -> list[int]:
    data = bytearray(Path(path).read_bytes())
    ps = page_size(path)
    where = [rng.randrange(ps, len(data)) for _ in range(flips)]  # page 1 stays sound
    for pos in where:
        data[pos] ^= 1 << rng.randrange(8)
    Path(path).write_bytes(bytes(data))
    return where


def break_overflow(path: Path, rng: random.Random, count: int = 3) -> list[int]:
    pages = overflow_pages(path, "tasks")
    chosen = rng.sample(pages, min(count, len(pages)))
    for pg in chosen:
        write_page(path, pg, rng.randbytes(page_size(path)))
    return chosen


def overwrite_header(path: Path, rng: random.Random) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def damage_schema_page(path: Path, rng: random.Random) -> None:
    ps = page_size(path)
    with open(path, "r+b") as fh:
        fh.seek(100)
        fh.write(rng.randbytes(ps - 100))


def garbage_freelist_trunk(path: Path, rng: random.Random) -> int:
    data = Path(path).read_bytes()
    trunk = struct.unpack(">I", data[32:36])[0]
    if trunk:
        write_page(path, trunk, rng.randbytes(page_size(path)))
    return trunk


def overwrite_random_pages(path: Path, rng: random.Random, count: int = 20) -> list[int]:
    """``count`` pages anywhere after page 1 overwritten with random bytes (a failing disk)."""
    pages = Path(path).stat().st_size // page_size(path)
    chosen = sorted(rng.sample(range(2, pages + 1), min(count, pages - 1)))
    for pg in chosen:
        write_page(path, pg, rng.randbytes(page_size(path)))
    return chosen


def repeated_leaf(src: Path, dest: Path, table: str, size: int, rng: random.Random) -> int:
    """A file of ``size`` bytes that is one table-leaf page of ``src`` repeated (no header, no
    schema: every page an orphan with the same rowids), as left by a runaway copy tool."""
    ps = page_size(src)
    pg = rng.choice(leaf_pages(src, table))
    page = _page(Path(src).read_bytes(), pg, ps)
    with open(dest, "wb") as fh:
        for _ in range(size // ps):
            fh.write(page)
    return pg


def overflow_chains(path: Path, table: str) -> dict[int, list[int]]:
    """{rowid: overflow pages in chain order} of the rowid table's cells that spill to overflow."""
    from kanban_migrate.salvage.fileformat import local_payload_size, max_local, read_varint

    data = Path(path).read_bytes()
    ps = page_size(path)
    usable = ps - data[20]
    out: dict[int, list[int]] = {}
    for pg, kind in btree_pages(path, root_of(path, table)).items():
        if kind != 0x0D:
            continue
        page = _page(data, pg, ps)
        off = 100 if pg == 1 else 0
        ncells = struct.unpack(">H", page[off + 3: off + 5])[0]
        for i in range(ncells):
            ptr = struct.unpack(">H", page[off + 8 + 2 * i: off + 10 + 2 * i])[0]
            plen, p = read_varint(page, ptr)
            rowid, p = read_varint(page, p)
            if plen <= max_local(usable, True):
                continue
            local = local_payload_size(plen, usable, True)
            chain, nxt = [], struct.unpack(">I", page[p + local: p + local + 4])[0]
            while nxt:
                chain.append(nxt)
                nxt = struct.unpack(">I", _page(data, nxt, ps)[:4])[0]
            out[rowid] = chain
    return out


def garble_overflow_chains(path: Path, table: str, rng: random.Random, count: int = 3,
                           at: int = 1, rowids=None) -> dict[int, list[int]]:
    """Overwrite, for ``count`` rows of ``table`` whose overflow chain has more than ``at``
    pages, the chain's page number ``at`` (0 = first) with garbage whose next-page pointer leads
    out of the file: those rows keep their local part and the chain pages before ``at``.
    ``rowids``: choose among these rows only. Returns {rowid: chain} of the rows hit."""
    chains = {r: c for r, c in overflow_chains(path, table).items()
              if len(c) > at and (rowids is None or r in rowids)}
    hit = dict(sorted(rng.sample(sorted(chains.items()), min(count, len(chains)))))
    ps = page_size(path)
    for chain in hit.values():
        write_page(path, chain[at], struct.pack(">I", 0xFFFFFFF0 - rng.randrange(1000)) + rng.randbytes(ps - 4))
    return hit


def poke(path: Path, offset: int, data: bytes) -> None:
    """``data`` written over the file at ``offset`` (a header field, a tampered copy)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def poke_page(path: Path, pgno: int, offset: int, data: bytes, *, ps: int | None = None) -> None:
    """``data`` written at ``offset`` inside page ``pgno`` (a cell count, a cell pointer, a
    b-tree header). ``ps``: the page size, for a file whose header no longer says it."""
    poke(path, (pgno - 1) * (ps or page_size(path)) + offset, data)


def cut_tail(path: Path, nbytes: int) -> None:
    """The last ``nbytes`` of the file gone (a copy or a disk that stopped early)."""
    os.truncate(path, Path(path).stat().st_size - nbytes)


def grow(path: Path, nbytes: int) -> None:
    """``nbytes`` of zeros after the end, as a hole where the file system keeps holes: a file
    longer than its header says."""
    os.truncate(path, Path(path).stat().st_size + nbytes)


def torn_wal_frame(wal: Path, rng: random.Random, ps: int) -> None:
    """A frame of random bytes appended to a ``-wal``: a write torn by a crash, never committed."""
    with open(wal, "ab") as fh:
        fh.write(rng.randbytes(24 + ps))


def overstate_payload(path: Path, pgno: int, by: int = 4) -> None:
    """The first cell of table leaf ``pgno`` claims ``by`` more payload bytes than its record
    holds (one flipped bit in the payload-size varint; the record itself is whole)."""
    ps = page_size(path)
    page = _page(Path(path).read_bytes(), pgno, ps)
    off = 100 if pgno == 1 else 0
    assert page[off] == 0x0D, "not a table leaf"
    cell = struct.unpack(">H", page[off + 8: off + 10])[0]
    assert page[cell] + by < 0x80, "the payload size must stay a one-byte varint"
    poke_page(path, pgno, cell, bytes([page[cell] + by]), ps=ps)


def set_schema_sql(path: Path, name: str, sql: str) -> None:
    """The schema row of ``name`` says ``sql``, whatever its pages hold (``PRAGMA
    writable_schema``): an index whose entries no longer match its definition (index-only
    damage), or a declared type no ALTER TABLE can write."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (sql, name))
        conn.execute(f"PRAGMA schema_version={version + 1}")
        conn.execute("PRAGMA writable_schema=OFF")
    finally:
        conn.close()


def forget_table(path: Path, name: str) -> None:
    """The schema row of table ``name`` deleted: its pages belong to no table (orphans)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("DELETE FROM sqlite_master WHERE name = ?", (name,))
    finally:
        conn.close()


def hostile_schema(board: Path, other: Path) -> None:
    """Schema rows that run SQL when executed (an ATTACH of ``other`` and a DELETE there, a
    trigger, a DELETE), a declared type that adds a column, and the task_events root zeroed so
    the file must be salvaged."""
    conn = sqlite3.connect(board, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, 'x')")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='task_events'").fetchone()[0]
    conn.execute("PRAGMA writable_schema=ON")
    for i, sql in enumerate([f"ATTACH DATABASE '{other}' AS o", "DELETE FROM o.tasks",
                             "CREATE TRIGGER planted AFTER INSERT ON tasks BEGIN DELETE FROM tasks; END",
                             "DELETE FROM tasks"]):
        conn.execute("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) "
                     "VALUES ('index', ?, 'tasks', 0, ?)", (f"zz_ix{i}", sql))
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'notes'",
                 ("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT) , INJECTED INTEGER CHECK (INJECTED IS NULL))",))
    conn.close()
    write_page(board, root, bytes(page_size(board)))


def delete_rows(path: Path, table: str, where: str) -> list:
    """Delete rows (``secure_delete`` off, so their cells stay on freed pages) and return the
    rowids deleted: what ``--include-freelist`` may bring back."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=OFF")
        gone = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} WHERE {where}")]
        conn.execute(f"DELETE FROM {table} WHERE {where}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone
    finally:
        conn.close()


def extend_with_garbage(path: Path, rng: random.Random, size: int = 5000) -> None:
    """``size`` random bytes appended (a copy tool that wrote past the end): every page still
    reads clean, but the file's size no longer agrees with its header."""
    with open(path, "ab") as fh:
        fh.write(rng.randbytes(size))


def mismatch_index(path: Path, index: str, table: str, column: str) -> None:
    """Index-only damage: ``index``'s stored definition rewritten to another column, so its
    entries no longer match its table (``REINDEX`` repairs it; no row is touched)."""
    set_schema_sql(path, index, f"CREATE INDEX {index} ON {table}({column})")


def commit_only_in_wal(board: Path, dest: Path, sql: str) -> None:
    """Make ``dest`` a WAL-mode copy of ``board`` whose ``-wal`` holds one commit (``sql``) not yet
    checkpointed, with no ``-shm``: what an application killed before its checkpoint leaves.
    ``dest`` may be ``board`` itself."""
    work = dest.with_name(dest.name + ".making")
    shutil.copyfile(board, work)
    conn = sqlite3.connect(work)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(sql)
    conn.commit()
    shutil.copyfile(work, dest)
    shutil.copyfile(f"{work}-wal", f"{dest}-wal")
    conn.close()
    for p in work.parent.glob(work.name + "*"):
        p.unlink()
