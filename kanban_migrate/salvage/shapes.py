"""Table shapes and candidate scoring: which table a record of unknown origin fits.

A :class:`TableShape` says what one table's rows look like (from the caller, e.g. every layout a
board has had); a :class:`Candidate` is a table a record is scored against, from the schema
and/or a shape. Checks reject a record; hints (value lists: statuses, kinds) only make a match
more specific, so a row with a value outside every list is never turned away.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from .sqlschema import NO_DEFAULT, TableDef, affinity, parse_create_table

ColumnCheck = "Callable[[object], bool] | re.Pattern | str | type | Iterable"


@dataclass(frozen=True)
class TableShape:
    """What the rows of one table look like, for matching pages whose table is unknown.

    ``columns`` are in physical (record) order. ``types`` are declared types (give
    affinities; None: anything). ``checks`` maps a column name to a check applied to its
    non-NULL values: a callable returning bool, a compiled regex or a pattern string
    (full match on text values), a type (isinstance) or a collection of allowed values; a
    record failing a check does not fit. ``hints`` take the same forms but never reject: a
    value passing one makes the match more specific (use them for open vocabularies such as
    statuses, whose lists an application may extend at any time).
    ``min_columns`` is the shortest record accepted (rows written before ALTER TABLE ADD
    COLUMN are shorter; default: all columns). Supply several shapes per table name for
    legacy layouts; ``label`` says which one matched.
    """

    columns: tuple[str, ...]
    types: tuple[str | None, ...] | None = None
    rowid_alias: str | None = None
    not_null: frozenset[str] = frozenset()
    checks: Mapping[str, object] = field(default_factory=dict)
    hints: Mapping[str, object] = field(default_factory=dict)
    defaults: Mapping[str, object] = field(default_factory=dict)
    without_rowid: bool = False
    primary_key: tuple[str, ...] = ()
    create_sql: str | None = None
    min_columns: int | None = None
    label: str | None = None

    @classmethod
    def from_sql(cls, create_sql: str, *, checks: Mapping[str, object] | None = None,
                 hints: Mapping[str, object] | None = None, min_columns: int | None = None, label: str | None = None) -> "TableShape":
        td = parse_create_table(create_sql)
        if td is None or td.virtual:
            raise ValueError(f"not a CREATE TABLE statement with columns: {create_sql[:80]!r}")
        order = td.record_order()
        cols = tuple(td.columns[i].name for i in order)
        return cls(
            columns=cols,
            types=tuple(td.columns[i].decl_type for i in order),
            rowid_alias=td.columns[td.rowid_alias].name if td.rowid_alias is not None else None,
            not_null=frozenset(c.name for c in td.columns if c.not_null),
            checks=dict(checks or {}),
            hints=dict(hints or {}),
            defaults={c.name: c.default for c in td.columns if c.default is not NO_DEFAULT},
            without_rowid=td.without_rowid,
            primary_key=tuple(td.primary_key),
            create_sql=create_sql,
            min_columns=min_columns,
            label=label,
        )


def compile_check(chk) -> Callable[[object], bool] | None:
    if chk is None:
        return None
    if isinstance(chk, re.Pattern) or isinstance(chk, str):
        rx = re.compile(chk) if isinstance(chk, str) else chk
        fm = rx.fullmatch
        return lambda v: isinstance(v, str) and fm(v) is not None
    if isinstance(chk, type):
        if chk is int:
            return lambda v: type(v) is int
        return lambda v: isinstance(v, chk)
    if callable(chk):
        def safe(v, f=chk):
            try:
                return bool(f(v))
            except Exception:
                return False
        return safe
    allowed = frozenset(chk)
    return lambda v: v in allowed if not isinstance(v, (bytes, bytearray)) else v in allowed


_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*").fullmatch
SCHEMA_TYPES = frozenset(("table", "index", "view", "trigger"))


class Candidate:
    """A table a record can be matched against (from the schema and/or a caller shape)."""

    __slots__ = ("table", "columns", "ncols", "order", "affs", "not_null", "alias_pos",
                 "checks", "hints", "min_cols", "td", "shape", "label", "without_rowid", "defaults",
                 "check_pos", "plan")

    def __init__(self, table, columns, order, affs, not_null, alias_pos, checks, min_cols,
                 td=None, shape=None, label=None, without_rowid=False, defaults=None, hints=None):
        self.table = table
        self.columns = columns          # all column names (declaration order)
        self.order = order              # record position -> column index
        self.ncols = len(order)         # values in a full record
        self.affs = affs                # per record position
        self.not_null = not_null        # per record position
        self.alias_pos = alias_pos      # record position holding NULL for the rowid alias
        self.checks = checks            # per record position: callable or None
        self.hints = hints = hints or [None] * len(order)   # per record position: never rejects
        self.check_pos = tuple(i for i in range(len(order)) if checks[i] is not None or hints[i] is not None)
        # what score() tests per record position, positions with nothing to test left out:
        # (position, NOT NULL, 1 text affinity / 2 numeric affinity / None, check, hint)
        plan = []
        for i in range(len(order)):
            if i == alias_pos:
                continue
            aff = affs[i]
            code = None if aff is None or aff == "BLOB" else 1 if aff == "TEXT" else 2
            if not_null[i] or code is not None or checks[i] is not None or hints[i] is not None:
                plan.append((i, bool(not_null[i]), code, checks[i], hints[i]))
        self.plan = tuple(plan)
        self.min_cols = min_cols
        self.td = td
        self.shape = shape
        self.label = label
        self.without_rowid = without_rowid
        self.defaults = defaults or {}  # column index -> default value

    def score(self, vals) -> int:
        """-1: incompatible; else the number of check and hint hits (specificity)."""
        k = len(vals)
        if k > self.ncols or k < self.min_cols:
            return -1
        ap = self.alias_pos
        if ap is not None and ap < k and vals[ap] is not None:
            return -1
        hits = 0
        for i, nn, aff, chk, hint in self.plan:
            if i >= k:
                break
            v = vals[i]
            if v is None:
                if nn:
                    return -1
                continue
            if aff is not None:
                tv = type(v)
                if aff == 1:
                    if tv is not str and tv is not bytes:
                        return -1
                elif tv is str and _NUMERIC_TEXT(v) is not None:
                    # SQLite would have converted numeric-looking text in a numeric column
                    return -1
            if chk is not None:
                if not chk(v):
                    return -1
                hits += 1
            if hint is not None and hint(v):
                hits += 1
        return hits


def candidate_from_tabledef(name: str, td: TableDef, shape: TableShape | None) -> Candidate:
    order = td.record_order()
    cols = td.column_names
    checks = [None] * len(order)
    hints = [None] * len(order)
    if shape is not None:
        lower = {c.lower(): i for i, c in enumerate(cols)}
        for into, given in ((checks, shape.checks), (hints, shape.hints)):
            for cname, chk in given.items():
                ci = lower.get(cname.lower())
                if ci is not None and ci in order:
                    into[order.index(ci)] = compile_check(chk)
    alias_pos = order.index(td.rowid_alias) if td.rowid_alias is not None else None
    # rows written before ALTER TABLE ADD COLUMN are shorter: allow records down to the
    # last column that has neither a default nor NULLability problems
    min_cols = len(order)
    while min_cols > 1:
        c = td.columns[order[min_cols - 1]]
        if c.not_null and c.default is NO_DEFAULT:
            break
        min_cols -= 1
    if shape is not None and shape.min_columns is not None:
        min_cols = max(1, min(min_cols, shape.min_columns))
    return Candidate(
        name, cols, order, [td.columns[i].affinity for i in order],
        [td.columns[i].not_null for i in order], alias_pos, checks, max(1, min_cols), td=td,
        shape=shape, label=shape.label if shape is not None else None,
        without_rowid=td.without_rowid, hints=hints,
        defaults={i: c.default for i, c in enumerate(td.columns) if c.default is not NO_DEFAULT})


def candidate_from_shape(name: str, shape: TableShape) -> Candidate:
    cols = list(shape.columns)
    n = len(cols)
    lower = {c.lower(): i for i, c in enumerate(cols)}
    affs = [None] * n
    if shape.types is not None:
        affs = [affinity(t) if t is not None else None for t in shape.types][:n]
        affs += [None] * (n - len(affs))
    nn = [c in shape.not_null for c in cols]
    checks = [None] * n
    hints = [None] * n
    for into, given in ((checks, shape.checks), (hints, shape.hints)):
        for cname, chk in given.items():
            ci = lower.get(cname.lower())
            if ci is not None:
                into[ci] = compile_check(chk)
    alias = lower.get(shape.rowid_alias.lower()) if shape.rowid_alias else None
    min_cols = shape.min_columns if shape.min_columns is not None else n
    defaults = {lower[k.lower()]: v for k, v in shape.defaults.items() if k.lower() in lower}
    return Candidate(name, cols, list(range(n)), affs, nn, alias, checks, max(1, min_cols),
                     shape=shape, label=shape.label, without_rowid=shape.without_rowid,
                     defaults=defaults, hints=hints)


SCHEMA_CAND = Candidate(
    "sqlite_schema", ["type", "name", "tbl_name", "rootpage", "sql"], [0, 1, 2, 3, 4],
    ["TEXT", "TEXT", "TEXT", "INTEGER", "TEXT"], [False] * 5, None,
    [compile_check(SCHEMA_TYPES), None, None, compile_check(int), None], 5)


def normalize_shapes(shapes) -> dict[str, list[TableShape]]:
    out: dict[str, list[TableShape]] = {}
    if not shapes:
        return out
    if isinstance(shapes, Mapping):
        for name, v in shapes.items():
            if isinstance(v, TableShape):
                v = [v]
            out.setdefault(name, []).extend(v)
    else:
        for name, v in shapes:
            out.setdefault(name, []).extend([v] if isinstance(v, TableShape) else v)
    return out


def candidates(tables, shape_map) -> list[Candidate]:
    """Every candidate for orphan pages: the schema's own, the tables', and the caller's shapes."""
    out = [SCHEMA_CAND]
    for t in tables.values():
        if t.cand is not None and t.td is not None:
            out.append(t.cand)
    for name, shapes in shape_map.items():
        t = tables.get(name)
        for s in shapes:
            if t is not None and t.td is not None:
                if t.cand.shape is s:
                    continue
                # the schema knows this table: a legacy shape with other columns does not apply
                if [c.lower() for c in s.columns] != [c.lower() for c in t.out.columns]:
                    continue
            out.append(candidate_from_shape(name, s))
    return out


_PICK_PROBE = 2      # records of a page's sample scored against every candidate first


def pick_candidate(missing: dict, cands: list[Candidate], recs, group_hint: str | None,
                   complete: set[str] = frozenset(), open_ended: set[str] = frozenset()):
    """The candidate whose shape the page's records fit best: (candidate, stale_tie).

    A candidate must fit a majority of a sample of the records. Among those the ranking key
    is: records fitting, the orphan group's table, then a table that can have live pages
    with these rowids that its walk did not reach: the rowid range lies behind one of its
    broken pointers or unreadable interior cells, or its walk never ended (``open_ended``).
    So a page that fits a completely read table as well as one that lost pages in that
    rowid range goes to the latter: the former has all its live pages. Then full-length
    records, check hits, a schema table. A tie between tables gives None (lost_and_found
    rather than a guess); ``stale_tie`` is True when every table in the tie was read
    completely (the page is stale whichever it is).

    Cheap, with the same answer as scoring the whole sample against every candidate: the
    first few sampled records are scored against every candidate, giving each an upper
    bound of its key (records fitting at most: sample less the probe's misses; full-length
    records and check hits at most what the remaining records could give). Candidates are
    then scored in full best bound first, until a bound falls below the best key found.
    On a page whose first records decide the table, only that table's best shape is
    scored against the rest of the sample.
    """
    sample = recs if len(recs) <= 12 else recs[:6] + recs[-6:]
    need = len(sample) // 2 + 1                      # ok * 2 > n
    rest = sample[_PICK_PROBE:]
    span = None                                      # (lowest, highest) rowid of the page
    best_key = None
    best = []
    for neg_ub, i, ok, exact, hits, c in _probed(cands, sample[:_PICK_PROBE], len(rest), need):
        ub = -neg_ub
        if best_key is not None and ub < best_key[0]:
            break                          # neither this one nor any after can win or tie
        gaps = missing.get(c.table)
        if gaps and span is None:
            span = (min(r for r, _v in recs), max(r for r, _v in recs))
        in_gap = bool(gaps) and any((a is None or span[0] > a) and (b is None or span[1] <= b) for a, b in gaps)
        head = (ub, c.table == group_hint, in_gap, c.table in open_ended)
        if best_key is not None and ub == best_key[0] and not _may_reach(c, head, exact, hits, rest, best_key):
            continue
        ok, exact, hits = _fit(c, rest, ok, exact, hits)
        if ok < need:
            continue
        key = (ok, *head[1:], exact, hits, c.td is not None)
        if best_key is None or key > best_key:
            best_key = key
            best = [(i, c)]
        elif key == best_key:
            best.append((i, c))
    if not best:
        return None, False
    tied = {c.table for _i, c in best}
    if len(tied) > 1:
        return None, tied <= complete      # ambiguous between tables: lost_and_found rather than a guess
    return min(best, key=itemgetter(0))[1], False   # the first in candidate order


def _fit(c: Candidate, records, ok: int = 0, exact: int = 0, hits: int = 0) -> tuple[int, int, int]:
    """(records fitting, full-length records among them, check hits), added to the counts given."""
    score = c.score
    ncols = c.ncols
    for _rowid, vals in records:
        sc = score(vals)
        if sc >= 0:
            ok += 1
            hits += sc
            if len(vals) == ncols:
                exact += 1
    return ok, exact, hits


def _probed(cands: list[Candidate], probe, nrest: int, need: int) -> list[tuple]:
    """(-upper bound of records fitting, candidate index, the probe's counts, candidate) of every
    candidate that could still fit a majority, most records possibly fitting first."""
    staged = []
    for i, c in enumerate(cands):
        ok, exact, hits = _fit(c, probe)
        if ok + nrest >= need:
            staged.append((-(ok + nrest), i, ok, exact, hits, c))
    staged.sort()
    return staged


def _may_reach(c: Candidate, head: tuple, exact: int, hits: int, rest, best_key: tuple) -> bool:
    """Could a candidate whose bound ties the best key still win or tie it? Its full-length
    records and check hits are bounded by what the rest of the sample could give."""
    if head != best_key[:4]:
        return head > best_key[:4]
    ncols = c.ncols
    more_exact = sum(1 for _r, v in rest if len(v) == ncols)
    more_hits = sum(1 for _r, v in rest for j in c.check_pos if j < len(v) and v[j] is not None)
    return (*head, exact + more_exact, hits + more_hits, c.td is not None) >= best_key
