"""A small tokenizer/parser for the CREATE statements kept in sqlite_schema.

One module (over 600 lines) because it is one grammar: tokenizer, parser and the regeneration
from the parsed form must agree on every construct.

It understands what the salvage needs: column names and declared types, NOT NULL,
literal DEFAULTs, PRIMARY KEY / UNIQUE column sets, the INTEGER PRIMARY KEY rowid alias,
generated columns, WITHOUT ROWID and STRICT, and CREATE [UNIQUE] INDEX column lists.

SQL text stored in a damaged or crafted file is never run or written out as it is: a
``CREATE TABLE`` / ``CREATE INDEX`` is parsed, and :func:`create_table_sql` /
:func:`create_index_sql` regenerate a statement from the parsed, validated form (quoted names,
plain type names, literal defaults, key sets); whatever they cannot regenerate (CHECK
expressions, foreign keys, collations, generated-column expressions, expression or partial
indexes, views, triggers) is named, never copied.
"""
from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass, field

__all__ = ["ColumnDef", "TableDef", "IndexDef", "parse_create_table", "parse_create_index",
           "affinity", "tokenize", "quote_ident", "NO_DEFAULT", "safe_type", "sql_literal",
           "create_table_sql", "create_index_sql", "single_statement", "uncopied_clauses"]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoDefault()

# token kinds
_ID = "id"          # bare word
_QID = "qid"        # "x", [x], `x`
_STR = "str"        # 'x'
_NUM = "num"
_BLOB = "blob"
_PUNCT = "p"

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<c1>--[^\n]*)
  | (?P<c2>/\*.*?(?:\*/|\Z))
  | (?P<blob>[xX]'[0-9A-Fa-f]*')
  | (?P<dq>"(?:[^"]|"")*"?)
  | (?P<br>\[[^\]]*\]?)
  | (?P<bq>`(?:[^`]|``)*`?)
  | (?P<sq>'(?:[^']|'')*'?)
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9A-Fa-f]+)
  | (?P<word>[A-Za-z_\u0080-\U0010FFFF][A-Za-z0-9_$\u0080-\U0010FFFF]*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|.)
""", re.X | re.S)


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str
    text: str       # raw text
    value: str      # identifier/string value with quotes removed; upper-case for bare words
    start: int = 0
    end: int = 0

    def kw(self, *words: str) -> bool:
        return self.kind == _ID and self.value in words


def tokenize(sql: str) -> list[Tok]:
    out: list[Tok] = []
    for m in _TOKEN_RE.finditer(sql):
        k = m.lastgroup
        t = m.group()
        if k in ("ws", "c1", "c2"):
            continue
        tok_start = len(out)
        if k == "word":
            out.append(Tok(_ID, t, t.upper()))
        elif k == "dq":
            out.append(Tok(_QID, t, t[1:-1].replace('""', '"') if len(t) > 1 and t.endswith('"') else t[1:]))
        elif k == "br":
            out.append(Tok(_QID, t, t[1:-1] if t.endswith("]") else t[1:]))
        elif k == "bq":
            out.append(Tok(_QID, t, t[1:-1].replace("``", "`") if len(t) > 1 and t.endswith("`") else t[1:]))
        elif k == "sq":
            out.append(Tok(_STR, t, t[1:-1].replace("''", "'") if len(t) > 1 and t.endswith("'") else t[1:]))
        elif k == "num":
            out.append(Tok(_NUM, t, t))
        elif k == "blob":
            out.append(Tok(_BLOB, t, t[2:-1]))
        else:
            out.append(Tok(_PUNCT, t, t))
        if len(out) > tok_start:
            out[-1] = Tok(out[-1].kind, out[-1].text, out[-1].value, m.start(), m.end())
    return out


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_SAFE_TYPE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z_][A-Za-z0-9_]*)*"
    r"(?:\s*\(\s*[+-]?\d+(?:\.\d+)?\s*(?:,\s*[+-]?\d+(?:\.\d+)?\s*)?\))?"
)


def safe_type(decl_type: str | None) -> str | None:
    """``decl_type`` if it is a plain SQLite type name (words, optionally ``(n)`` or ``(n, m)``),
    else None.

    A declared type read from a damaged or crafted file is text that will be spliced into a new
    CREATE TABLE; anything beyond a type name (a ``)``, a comma, a CHECK, a comment) could add
    columns or constraints, so it is refused and the caller falls back to the type's affinity or
    to no type at all.
    """
    if decl_type is None:
        return None
    text = " ".join(decl_type.split())
    if len(text) > 100 or not _SAFE_TYPE.fullmatch(text):
        return None
    return text


def affinity(decl_type: str | None) -> str:
    """SQLite column affinity of a declared type: INTEGER, TEXT, BLOB, REAL or NUMERIC."""
    t = (decl_type or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


@dataclass
class ColumnDef:
    name: str
    decl_type: str = ""
    not_null: bool = False
    default: object = NO_DEFAULT      # a literal value, None for NULL, NO_DEFAULT if absent/not literal
    primary_key: bool = False
    pk_desc: bool = False
    unique: bool = False
    autoincrement: bool = False
    generated: str | None = None      # None, "VIRTUAL" or "STORED"

    @property
    def affinity(self) -> str:
        return affinity(self.decl_type)


@dataclass
class TableDef:
    name: str
    columns: list[ColumnDef] = field(default_factory=list)
    without_rowid: bool = False
    strict: bool = False
    virtual: bool = False
    module: str | None = None
    primary_key: list[str] = field(default_factory=list)       # column names in PK order
    unique_sets: list[list[str]] = field(default_factory=list)  # PRIMARY KEY and UNIQUE column sets
    autoincrement: bool = False
    rowid_alias: int | None = None    # index of the INTEGER PRIMARY KEY column

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def record_order(self) -> list[int]:
        """Column indexes in the order their values appear in a stored record.

        Rowid tables store the non-VIRTUAL columns in declaration order; WITHOUT ROWID
        tables store the primary-key columns first, then the others.
        """
        stored = [i for i, c in enumerate(self.columns) if c.generated != "VIRTUAL"]
        if not self.without_rowid or not self.primary_key:
            return stored
        lower = {c.name.lower(): i for i, c in enumerate(self.columns)}
        pk = []
        for n in self.primary_key:
            i = lower.get(n.lower())
            if i is not None and i not in pk:
                pk.append(i)
        return pk + [i for i in stored if i not in pk]


@dataclass
class IndexDef:
    name: str
    table: str
    unique: bool = False
    columns: list[str] | None = None  # None when an indexed term is an expression
    partial: bool = False


class _P:
    def __init__(self, toks: list[Tok]):
        self.t = toks
        self.i = 0

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def next(self) -> Tok | None:
        tok = self.peek()
        if tok is not None:
            self.i += 1
        return tok

    def accept(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kw(*words):
            self.i += 1
            return True
        return False

    def accept_p(self, ch: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == _PUNCT and tok.text == ch:
            self.i += 1
            return True
        return False

    def skip_parens(self) -> list[Tok]:
        """At '(' : skip to the matching ')' and return the tokens inside."""
        assert self.accept_p("(")
        depth = 1
        start = self.i
        while self.i < len(self.t):
            tok = self.t[self.i]
            self.i += 1
            if tok.kind == _PUNCT:
                if tok.text == "(":
                    depth += 1
                elif tok.text == ")":
                    depth -= 1
                    if depth == 0:
                        return self.t[start:self.i - 1]
        return self.t[start:]


def _name_tok(tok: Tok | None) -> str | None:
    if tok is None:
        return None
    if tok.kind in (_QID, _STR):
        return tok.value
    if tok.kind == _ID:
        return tok.text
    return None


def _qualified_name(p: _P) -> str | None:
    name = _name_tok(p.next())
    if p.accept_p("."):
        name = _name_tok(p.next())
    return name


_COL_CONSTRAINT = {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT",
                   "COLLATE", "REFERENCES", "GENERATED", "AS"}
_TABLE_CONSTRAINT = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}


def _split_top(toks: list[Tok]) -> list[list[Tok]]:
    items: list[list[Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == _PUNCT:
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
            elif tok.text == "," and depth == 0:
                items.append([])
                continue
        items[-1].append(tok)
    return [it for it in items if it]


def _literal(p: _P):
    tok = p.next()
    if tok is None:
        return NO_DEFAULT
    sign = 1
    if tok.kind == _PUNCT and tok.text in "+-":
        sign = -1 if tok.text == "-" else 1
        tok = p.next()
        if tok is None or tok.kind != _NUM:
            return NO_DEFAULT
    if tok.kind == _NUM:
        s = tok.text
        try:
            if s[:2].lower() == "0x":
                v = int(s, 16)
                if v >= 1 << 63:
                    v -= 1 << 64
                return sign * v
            if re.fullmatch(r"\d+", s):
                v = int(s) * sign
                if -(1 << 63) <= v < (1 << 63):
                    return v
                return float(v)
            return sign * float(s)
        except ValueError:
            return NO_DEFAULT
    if tok.kind == _STR:
        return tok.value
    if tok.kind == _BLOB:
        try:
            return bytes.fromhex(tok.value)
        except ValueError:
            return NO_DEFAULT
    if tok.kind == _ID:
        if tok.value == "NULL":
            return None
        if tok.value == "TRUE":
            return 1
        if tok.value == "FALSE":
            return 0
        return NO_DEFAULT   # CURRENT_TIME and friends
    if tok.kind == _QID:
        # SQLite accepts DEFAULT "word" as a string literal
        return tok.value
    if tok.kind == _PUNCT and tok.text == "(":
        p.i -= 1
        inner = p.skip_parens()
        sub = _P(inner)
        v = _literal(sub)
        return v if sub.i == len(inner) else NO_DEFAULT
    return NO_DEFAULT


def _index_columns(toks: list[Tok]) -> list[str] | None:
    cols = []
    for item in _split_top(toks):
        sub = _P(item)
        name = _name_tok(sub.next())
        while sub.peek() is not None and sub.peek().kw("COLLATE", "ASC", "DESC"):
            if sub.next().kw("COLLATE"):
                sub.next()
        if name is None or sub.peek() is not None:
            return None
        cols.append(name)
    return cols


def _parse_column(item: list[Tok], sql: str) -> ColumnDef:
    p = _P(item)
    name = _name_tok(p.next()) or ""
    first = p.i
    while True:
        tok = p.peek()
        if tok is None or tok.kw(*_COL_CONSTRAINT):
            break
        if tok.kind == _PUNCT and tok.text == "(":
            p.skip_parens()
            continue
        p.next()
    ttoks = item[first:p.i]
    if not ttoks:
        decl = ""
    elif len(ttoks) == 1 and ttoks[0].kind in (_QID, _STR):
        decl = ttoks[0].value
    else:
        decl = sql[ttoks[0].start:ttoks[-1].end]
    col = ColumnDef(name, decl)
    while p.peek() is not None:
        tok = p.next()
        if tok.kw("CONSTRAINT"):
            p.next()
        elif tok.kw("PRIMARY"):
            p.accept("KEY")
            col.primary_key = True
            if p.accept("DESC"):
                col.pk_desc = True
            p.accept("ASC")
        elif tok.kw("AUTOINCREMENT"):
            col.autoincrement = True
        elif tok.kw("NOT"):
            if p.accept("NULL"):
                col.not_null = True
        elif tok.kw("UNIQUE"):
            col.unique = True
        elif tok.kw("DEFAULT"):
            col.default = _literal(p)
        elif tok.kw("CHECK"):
            if p.peek() is not None and p.peek().text == "(":
                p.skip_parens()
        elif tok.kw("GENERATED"):
            p.accept("ALWAYS")
        elif tok.kw("AS"):
            if p.peek() is not None and p.peek().text == "(":
                p.skip_parens()
            col.generated = "VIRTUAL"
            if p.accept("STORED"):
                col.generated = "STORED"
            p.accept("VIRTUAL")
        elif tok.kind == _PUNCT and tok.text == "(":
            p.i -= 1
            p.skip_parens()
        # COLLATE x, REFERENCES t(...) ON ..., ON CONFLICT x, NULL: nothing to keep
    return col


def _open_create(sql: str) -> "_P | None":
    """A parser past ``CREATE``; None when ``sql`` is not a CREATE statement."""
    if not sql:
        return None
    p = _P(tokenize(sql))
    return p if p.accept("CREATE") else None


def _object_name(p: "_P") -> str | None:
    """The name after ``TABLE`` or ``INDEX``, past an ``IF NOT EXISTS``."""
    if p.accept("IF"):
        p.accept("NOT")
        p.accept("EXISTS")
    return _qualified_name(p)


def parse_create_table(sql: str) -> TableDef | None:
    """Parse CREATE [TEMP] [VIRTUAL] TABLE; None if it is not one or has no column list."""
    p = _open_create(sql)
    if p is None:
        return None
    p.accept("TEMP", "TEMPORARY")
    virtual = p.accept("VIRTUAL")
    if not p.accept("TABLE"):
        return None
    name = _object_name(p)
    if name is None:
        return None
    td = TableDef(name)
    if virtual:
        td.virtual = True
        if p.accept("USING"):
            td.module = _name_tok(p.next())
        return td
    if p.peek() is None or p.peek().text != "(":
        return None
    for item in _split_top(p.skip_parens()):
        head = item[0]
        if head.kind == _ID and head.value in _TABLE_CONSTRAINT:
            _table_constraint(td, _P(item))
        else:
            td.columns.append(_parse_column(item, sql))
    while p.peek() is not None:
        tok = p.next()
        if tok.kw("WITHOUT"):
            if p.accept("ROWID"):
                td.without_rowid = True
        elif tok.kw("STRICT"):
            td.strict = True
    _keys_from_columns(td)
    return td if td.columns else None


def _table_constraint(td: TableDef, sub: "_P") -> None:
    """A table constraint: PRIMARY KEY and UNIQUE column sets are kept, the rest skipped."""
    if sub.accept("CONSTRAINT"):
        sub.next()
    kind = sub.next()
    if kind is None or not kind.kw("PRIMARY", "UNIQUE"):
        return
    sub.accept("KEY")
    if sub.peek() is not None and sub.peek().text == "(":
        cols = _index_columns(sub.skip_parens())
        if cols:
            td.unique_sets.append(cols)
            if kind.kw("PRIMARY"):
                td.primary_key = cols
    if kind.kw("PRIMARY") and sub.accept("AUTOINCREMENT"):
        td.autoincrement = True


def _keys_from_columns(td: TableDef) -> None:
    """Column-level PRIMARY KEY, UNIQUE and AUTOINCREMENT, and the rowid alias (an INTEGER
    PRIMARY KEY that is not DESC, in a rowid table)."""
    for c in td.columns:
        if c.primary_key and not td.primary_key:
            td.primary_key = [c.name]
            td.unique_sets.append([c.name])
        elif c.unique:
            td.unique_sets.append([c.name])
        if c.autoincrement:
            td.autoincrement = True
    if not td.without_rowid and len(td.primary_key) == 1:
        pkname = td.primary_key[0].lower()
        for i, c in enumerate(td.columns):
            if c.name.lower() == pkname:
                if c.decl_type.upper() == "INTEGER" and not (c.primary_key and c.pk_desc):
                    td.rowid_alias = i
                break


def parse_create_index(sql: str) -> IndexDef | None:
    p = _open_create(sql)
    if p is None:
        return None
    unique = p.accept("UNIQUE")
    if not p.accept("INDEX"):
        return None
    name = _object_name(p)
    if not p.accept("ON"):
        return None
    table = _name_tok(p.next())
    if name is None or table is None or p.peek() is None or p.peek().text != "(":
        return None
    cols = _index_columns(p.skip_parens())
    partial = p.accept("WHERE")
    return IndexDef(name, table, unique, cols, partial)


_MIN_INT = -(1 << 63)
_SPECIAL = re.compile("([\x00\r])")


def sql_literal(v) -> str:
    """An SQL literal that SQLite reads back as exactly ``v`` (same value, same type)."""
    if v is None:
        return "NULL"
    t = type(v)
    if t is str:
        if v.isascii() and "\x00" not in v and "\r" not in v:
            return "'" + v.replace("'", "''") + "'"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            # invalid UTF-8 kept via surrogateescape by the reader: write the original bytes
            try:
                raw = v.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = v.encode("utf-8", "surrogatepass")
            return "CAST(X'" + raw.hex() + "' AS TEXT)"
        if "\x00" in v or "\r" in v:
            # NUL cannot appear in SQL text and a CR would not survive a text-mode reader
            # (universal newlines): spell both as char() calls
            parts = []
            for piece in _SPECIAL.split(v):
                if piece == "\x00":
                    parts.append("char(0)")
                elif piece == "\r":
                    parts.append("char(13)")
                elif piece:
                    parts.append("'" + piece.replace("'", "''") + "'")
            return "(" + "||".join(parts) + ")"
        return "'" + v.replace("'", "''") + "'"
    if t is int:
        if v == _MIN_INT:
            return "(-9223372036854775807-1)"
        if not _MIN_INT <= v < (1 << 63):
            return sql_literal(str(v))
        return str(v)
    if t is float:
        if math.isnan(v):
            return "NULL"
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        return repr(v)
    if t is bytes or t is bytearray or t is memoryview:
        return "X'" + bytes(v).hex() + "'"
    if t is bool:
        return "1" if v else "0"
    if isinstance(v, int):
        return sql_literal(int(v))
    if isinstance(v, float):
        return sql_literal(float(v))
    return sql_literal(str(v))


_STRICT_TYPES = {"INT", "INTEGER", "REAL", "TEXT", "BLOB", "ANY"}


def create_table_sql(td: TableDef, name: str | None = None) -> tuple[str, list[str]]:
    """A ``CREATE TABLE`` regenerated from a parsed definition, and what was left out.

    Kept: quoted column names, declared types that :func:`safe_type` accepts (else the type's
    affinity), NOT NULL, literal DEFAULTs, the INTEGER PRIMARY KEY rowid alias (with
    AUTOINCREMENT), PRIMARY KEY and UNIQUE column sets, WITHOUT ROWID, and STRICT where every
    type allows it. Never copied: CHECK, REFERENCES, COLLATE, ON CONFLICT, generated-column
    expressions (the column stays, as a plain one).
    """
    dropped: list[str] = []
    names = {c.name.lower() for c in td.columns}
    parts = []
    strict = td.strict
    for i, c in enumerate(td.columns):
        decl = safe_type(c.decl_type) if c.decl_type else ""
        if decl is None:
            decl = affinity(c.decl_type)
            dropped.append(f"column {c.name}: declared type {c.decl_type[:60]!r} is not a plain type name "
                           f"(kept as {decl})")
        if c.generated:
            dropped.append(f"column {c.name}: generated-column expression not copied")
        if strict and decl.upper() not in _STRICT_TYPES:
            strict = False
        piece = quote_ident(c.name) + (f" {decl}" if decl else "")
        if td.rowid_alias == i:
            piece = f"{quote_ident(c.name)} INTEGER PRIMARY KEY" + (" AUTOINCREMENT" if td.autoincrement else "")
        if c.not_null:
            piece += " NOT NULL"
        if c.default is not NO_DEFAULT:
            piece += f" DEFAULT ({sql_literal(c.default)})"
        parts.append(piece)
    alias = td.columns[td.rowid_alias].name.lower() if td.rowid_alias is not None else None
    pk = [n for n in td.primary_key]
    if pk and not (alias is not None and [n.lower() for n in pk] == [alias]):
        if all(n.lower() in names for n in pk):
            parts.append("PRIMARY KEY (" + ", ".join(quote_ident(n) for n in pk) + ")")
        else:
            dropped.append("primary key names an unknown column")
    seen = {tuple(n.lower() for n in pk)}
    for us in td.unique_sets:
        key = tuple(n.lower() for n in us)
        if key in seen:
            continue
        seen.add(key)
        if all(n in names for n in key):
            parts.append("UNIQUE (" + ", ".join(quote_ident(n) for n in us) + ")")
    options = []
    if td.without_rowid and pk:
        options.append("WITHOUT ROWID")
    if strict:
        options.append("STRICT")
    elif td.strict:
        dropped.append("STRICT dropped: a column type is not one STRICT allows")
    sql = f"CREATE TABLE {quote_ident(name or td.name)} ({', '.join(parts)})"
    return (sql + (" " + ", ".join(options) if options else "")), dropped


def create_index_sql(idx: IndexDef, columns: list[str]) -> str | None:
    """``CREATE [UNIQUE] INDEX`` on plain columns of ``columns``, or None when the index cannot be
    regenerated (an expression, a partial index, a column the table does not have)."""
    if idx.columns is None or idx.partial or not idx.columns:
        return None
    have = {c.lower(): c for c in columns}
    cols = [have.get(c.lower()) for c in idx.columns]
    if None in cols:
        return None
    return (f"CREATE {'UNIQUE ' if idx.unique else ''}INDEX {quote_ident(idx.name)} ON {quote_ident(idx.table)} ("
            + ", ".join(quote_ident(c) for c in cols) + ")")


def single_statement(sql: str, *kinds: str) -> bool:
    """``sql`` is exactly one complete ``CREATE [TEMP] <kind>`` statement: nothing after it, no
    second statement hidden behind a semicolon."""
    if not sql or "\x00" in sql:
        return False
    toks = tokenize(sql)
    while toks and toks[-1].kind == _PUNCT and toks[-1].text == ";":
        toks.pop()
    if any(t.kind == _PUNCT and t.text == ";" for t in toks):
        return False
    p = _P(toks)
    if not p.accept("CREATE"):
        return False
    p.accept("TEMP", "TEMPORARY")
    return p.accept(*kinds) and sqlite3.complete_statement(sql.rstrip().rstrip(";") + ";")


_UNCOPIED = {"CHECK": "CHECK", "REFERENCES": "foreign key", "COLLATE": "COLLATE", "GENERATED": "generated column",
             "AS": "generated column", "CONFLICT": "ON CONFLICT"}


def uncopied_clauses(sql: str | None) -> list[str]:
    """The clauses of a stored CREATE TABLE that :func:`create_table_sql` does not carry over."""
    found: list[str] = []
    for tok in tokenize(sql or ""):
        what = _UNCOPIED.get(tok.value) if tok.kind == _ID else None
        if what and what not in found:
            found.append(what)
    return found
