"""One table's state during a salvage, and how a record becomes a row of it.

:class:`Table` is what the walk, the orphan scan and the carver add rows to: the table's candidate
shape, the rowids already taken, the row stream. :func:`make_finalizer` turns the values of a record
(in record order, possibly short: rows written before ALTER TABLE ADD COLUMN) into the table's
full tuple, once per row, so the common shapes get a fast path.
"""
from __future__ import annotations

from collections.abc import Callable

from .model import RANK, RowidSet, RowStream, Spool, TableSalvage
from .shapes import Candidate
from .sqlschema import NO_DEFAULT, TableDef


class Table:
    """Per-table state: its candidate shape, finalizer, rowids seen and row stream."""

    def __init__(self, name, columns, cand: Candidate | None, td: TableDef | None, spool: Spool,
                 sql=None, rootpage=None, reader: Callable | None = None):
        self.name = name
        self.cand = cand
        self.td = td
        self.rows = RowStream(spool, reader)
        self.out = TableSalvage(name=name, columns=list(columns), sql=sql, rootpage=rootpage, rows=self.rows)
        if td is not None:
            self.out.without_rowid = td.without_rowid
            if td.rowid_alias is not None:
                self.out.rowid_alias = td.columns[td.rowid_alias].name
        elif cand is not None and cand.alias_pos is not None:
            self.out.rowid_alias = cand.columns[cand.order[cand.alias_pos]]
        if cand is not None:
            self.out.without_rowid = cand.without_rowid
        self.rowids = RowidSet()
        self.fin = make_finalizer(cand, len(columns)) if cand is not None else None
        self.fin_cache: dict[int, Callable] = {}   # id(candidate) -> finalizer for other shapes

    def finalizer_for(self, cand: Candidate):
        if cand is self.cand or self.cand is None:
            return self.fin
        f = self.fin_cache.get(id(cand))
        if f is None:
            # a different shape of the same table: map its columns by name
            mine = {c.lower(): i for i, c in enumerate(self.out.columns)}
            base = make_finalizer(cand, len(cand.columns))
            idx = [mine.get(c.lower()) for c in cand.columns]
            n = len(self.out.columns)

            def f(vals, rowid, base=base, idx=idx, n=n):
                full = base(vals, rowid)
                out = [None] * n
                for j, i in enumerate(idx):
                    if i is not None:
                        out[i] = full[j]
                return tuple(out)
            self.fin_cache[id(cand)] = f
        return f

    def extend(self, rows: list[tuple], source: str) -> None:
        """Add rows (rowid, values, source, page) of one source, all known to be new."""
        append = self.rows.ranked[RANK.get(source, 2)].append
        for row in rows:
            append(row)
        self.count(source, len(rows))

    def count(self, source: str, n: int) -> None:
        """Count ``n`` rows found outside the table's b-tree by where they were found."""
        if source == "orphan":
            self.out.orphan_rows += n
        elif source == "freelist":
            self.out.freelist_rows += n
        elif source == "freeblock":
            self.out.freeblock_rows += n

    def add_partial(self, rowid, vals, cut, page: int, source: str = "btree", cand=None) -> bool:
        """Keep a record whose overflow chain is broken but whose header was readable: ``vals``
        as decoded by ``decode_record_prefix`` (cut values hold their readable prefix or NULL),
        ``cut`` their record positions. Returns False (the caller keeps it for lost_and_found)
        when the table has no shape to place the values by, or the rowid is already taken."""
        cand = cand if cand is not None else self.cand
        if cand is None or rowid is None and not cand.without_rowid:
            return False
        ncols = len(cand.columns)
        if len(vals) > ncols and any(p >= ncols for p in cut):
            return False        # the cut is in values the table has no column for: not this table's
        if not cand.without_rowid and not self.rowids.add(rowid):
            return False
        order = cand.order
        names = []
        for p in cut:
            if p < len(order) and order[p] < len(cand.columns):
                names.append(cand.columns[order[p]])
        values = self.finalizer_for(cand)(list(vals), None if cand.without_rowid else rowid)
        self.rows.add_partial(None if cand.without_rowid else rowid, values, source, page, names)
        self.count(source, 1)
        return True

    def add(self, rowid, values, source: str, page: int) -> None:
        """Add a row already known to be new (rowid deduplication is the caller's)."""
        self.rows.add(rowid, values, source, page)
        if source != "btree":
            self.count(source, 1)


def make_finalizer(cand: Candidate, n: int):
    """Function (record values, rowid) -> full tuple of column values in declaration order."""
    order = cand.order
    identity = order == list(range(n))
    alias = cand.order[cand.alias_pos] if cand.alias_pos is not None else None
    defaults = [cand.defaults.get(i) for i in range(n)]
    for i, d in enumerate(defaults):
        if d is NO_DEFAULT:
            defaults[i] = None
    real_cols = [ci for p, ci in enumerate(order) if cand.affs[p] == "REAL"]
    k_full = len(order)

    if identity and alias is None and not real_cols:
        def fin(vals, rowid):
            k = len(vals)
            if k == n:
                return tuple(vals)
            if k > n:
                return tuple(vals[:n])
            return tuple(vals) + tuple(defaults[k:])
        return fin

    def slow(vals, rowid):
        k = len(vals)
        if identity:
            if k == n:
                out = vals
            elif k > n:
                out = vals[:n]
            else:
                out = list(vals) + defaults[k:]
        else:
            out = list(defaults)
            for p in range(min(k, k_full)):
                out[order[p]] = vals[p]
        if alias is not None and rowid is not None:
            out[alias] = rowid
        for ci in real_cols:
            if type(out[ci]) is int:
                out[ci] = float(out[ci])
        return tuple(out)

    if identity and not real_cols:
        # the common rowid-alias case: fill the alias into the freshly decoded list
        def fin(vals, rowid):
            if len(vals) == n and rowid is not None and type(vals) is list:
                vals[alias] = rowid
                return tuple(vals)
            return slow(vals, rowid)
        return fin
    return slow
