"""The filter language: one parsed, validated, bound expression for every path.

A filter (``filter=``, ``where=``, ``set=`` values, SQL WHERE conjuncts) is a DuckDB
SQL expression over a snapshot's columns. It is parsed once with sqlglot and
checked to be an *expression*: no statement, no subquery, no table function, no
parameter, no function with side effects. Its columns are bound by field id
against the snapshot schema and emitted again as DuckDB SQL over the quoted
current column names (`BoundFilter.sql`): that text, never the caller's, is
what every engine evaluates. DuckDB evaluates rows on every path (its semantics
define the language), so the Arrow reader, the polars scan, the SQL views and
the row changes cannot disagree about which rows match.

Data skipping uses the same tree (`BoundFilter.prune`): comparisons of a bare
column with a column-free expression become checks over per-fragment statistics
that DuckDB evaluates with the column's own type (`may_match_sql`), so literal
typing, casts and rounding are DuckDB's, not ours; a comparison whose typing is
not order-preserving for the column's type, or that calls a volatile function,
counts as "may match". Pruning therefore only ever drops fragments that hold no
matching row.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.schema import iter_field_ids

if TYPE_CHECKING:
    import sqlglot.expressions as exp

__all__ = [
    "Always",
    "BoundFilter",
    "bind_expression",
    "Compare",
    "Conj",
    "NullCheck",
    "PruneNode",
    "bind_filter",
    "compares",
    "parse_expression",
]

Op = Literal["=", "<>", "<", "<=", ">", ">="]
_FLIP: dict[str, Op] = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NEGATE: dict[str, Op] = {"=": "<>", "<>": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


# ------------------------------------------------------------------ DuckDB's catalog


@dataclass(frozen=True, slots=True)
class _Catalog:
    table_functions: frozenset[str]
    volatile: frozenset[str]


_catalog: _Catalog | None = None
_catalog_lock = threading.Lock()


def _functions() -> _Catalog:
    """Function names by kind, read once from DuckDB's own catalog."""
    global _catalog
    with _catalog_lock:
        if _catalog is None:
            from lakever.sql import cursor

            con = cursor()
            try:
                rows = con.sql(
                    "SELECT lower(function_name), function_type, has_side_effects, stability "
                    "FROM duckdb_functions()"
                ).fetchall()
            finally:
                con.close()
            _catalog = _Catalog(
                table_functions=frozenset(n for n, t, _, _ in rows if t == "table"),
                volatile=frozenset(
                    n for n, t, s, st in rows if t != "table" and (s or st != "CONSISTENT")
                ),
            )
        return _catalog


# ------------------------------------------------------------------ parsing


def _function_name(node: exp.Expr) -> str:
    """The name DuckDB sees for a function call node (as emitted in DuckDB's dialect)."""
    import sqlglot.expressions as exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    text = node.sql(dialect="duckdb")
    return text.split("(", 1)[0].strip().strip('"').lower()


def parse_expression(text: Any, *, what: str) -> exp.Expr:
    """Parse ``text`` as one DuckDB SQL expression; refuse anything that is not one.

    Refused: statements and several expressions, subqueries and ``EXISTS``, table
    functions, parameters (``?``, ``$1``), ``*``, and functions with side effects.

    Raises:
        InvalidArgument: naming ``what`` (e.g. ``filter``) and the reason.
    """
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{what} must be a non-empty SQL expression string, got {text!r}")
    if "\x00" in text:
        raise InvalidArgument(f"{what} {text!r} contains a NUL character")
    try:
        trees = [t for t in sqlglot.parse(text, read="duckdb") if t is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgument(f"{what} {text!r} is not a SQL expression: {first}") from exc
    if len(trees) != 1:
        raise InvalidArgument(f"{what} {text!r} must be one SQL expression, not several statements")
    tree = trees[0]
    _check_expression(tree, text, what)
    return tree


#: Functions a filter may not call: they change state or stall.
_STATEFUL = frozenset({"setseed", "nextval", "setval", "currval", "write_log", "sleep_ms"})


@functools.lru_cache(maxsize=1)
def _refused() -> tuple[tuple[type, str], ...]:
    import sqlglot.expressions as exp

    kinds = [
        ("Query", "a subquery"),
        ("Subquery", "a subquery"),
        ("Exists", "a subquery"),
        ("Table", "a table reference"),
        ("Placeholder", "a parameter placeholder"),
        ("Parameter", "a parameter"),
        ("Star", "'*'"),
        ("Command", "a statement"),
        ("Block", "several statements"),
        ("DDL", "a statement"),
        ("DML", "a statement"),
        ("Set", "a statement"),
        ("Pragma", "a statement"),
        ("Use", "a statement"),
        ("Copy", "a statement"),
        ("Attach", "a statement"),
        ("Detach", "a statement"),
        ("Install", "a statement"),
        ("Drop", "a statement"),
    ]
    return tuple((getattr(exp, n), label) for n, label in kinds if hasattr(exp, n))


def _check_expression(tree: exp.Expr, text: str, what: str) -> None:
    import sqlglot.expressions as exp

    funcs = _functions()
    for node in tree.walk():
        for cls, label in _refused():
            if isinstance(node, cls):
                raise InvalidArgument(
                    f"{what} {text!r} contains {label}; a {what} is one expression over the "
                    "dataset's columns (no subqueries, statements, tables or parameters)"
                )
        if isinstance(node, exp.Func) and not isinstance(node, exp.Cast | exp.TryCast):
            name = _function_name(node)
            if name in funcs.table_functions or name.startswith("read_"):
                raise InvalidArgument(
                    f"{what} {text!r} calls the table function {name}(); a {what} is one "
                    "expression over the dataset's columns"
                )
            if name in _STATEFUL:
                raise InvalidArgument(
                    f"{what} {text!r} calls {name}(), which has side effects; use a "
                    "deterministic expression"
                )


# ------------------------------------------------------------------ binding


@dataclass(frozen=True, slots=True)
class _Column:
    field_id: int
    name: str
    type: pa.DataType


def _resolver(schema: pa.Schema) -> Mapping[str, _Column]:
    return {f.name: _Column(fid, f.name, f.type) for fid, f in iter_field_ids(schema)}


def _lookup(columns: Mapping[str, _Column], name: str, text: str, what: str) -> _Column:
    found = columns.get(name)
    if found is not None:
        return found
    # DuckDB resolves identifiers case-insensitively, quoted or not.
    matches = [c for n, c in columns.items() if n.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgument(
            f"{what} {text!r}: column {name!r} is ambiguous (columns "
            f"{sorted(c.name for c in matches)} differ only by case)"
        )
    raise InvalidArgument(
        f"{what} {text!r} names unknown column {name!r}; the snapshot has columns {list(columns)}"
    )


def _quoted(name: str) -> exp.Identifier:
    import sqlglot.expressions as exp

    return exp.to_identifier(name, quoted=True)


def _bind_columns(
    tree: exp.Expr, columns: Mapping[str, _Column], text: str, what: str
) -> tuple[exp.Expr, dict[int, _Column]]:
    """Resolve every column reference; return the rewritten tree and the columns used.

    ``a.b`` (and ``a.b.c``) is read as field access into struct column ``a`` when
    ``a`` is a column, as DuckDB does; any other qualifier is refused.
    """
    import sqlglot.expressions as exp

    used: dict[int, _Column] = {}
    tree = tree.copy()
    for col in list(tree.find_all(exp.Column)):
        parts = [p.name for p in col.parts]
        try:
            c = _lookup(columns, parts[0], text, what)
        except InvalidArgument:
            if len(parts) == 1:
                raise
            raise InvalidArgument(
                f"{what} {text!r}: {'.'.join(parts)!r} is qualified by {parts[0]!r}, which is "
                "not a column; refer to columns by their names only"
            ) from None
        used[c.field_id] = c
        node: exp.Expr = exp.Column(this=_quoted(c.name))
        for p in parts[1:]:  # field access into a struct column
            node = exp.Dot(this=node, expression=_quoted(p))
        col.replace(node)
    return tree, used


# ------------------------------------------------------------------ pruning tree


@dataclass(frozen=True, slots=True)
class Always:
    """No pruning: any fragment may match."""


@dataclass(frozen=True, slots=True)
class Compare:
    """``column <op> value`` where ``value`` is a column-free DuckDB SQL expression."""

    field_id: int
    op: Op
    value: str


@dataclass(frozen=True, slots=True)
class NullCheck:
    """``column IS [NOT] NULL`` (``kind="null"``) or ``[NOT] isnan(column)`` (``"nan"``)."""

    field_id: int
    kind: Literal["null", "nan"]
    negated: bool


@dataclass(frozen=True, slots=True)
class Conj:
    """All (``and_``) or any of the children may match."""

    and_: bool
    children: tuple[PruneNode, ...]


PruneNode = Always | Compare | NullCheck | Conj


def _top_column(node: exp.Expr, cols: Mapping[str, _Column]) -> _Column | None:
    import sqlglot.expressions as exp

    if isinstance(node, exp.Paren):
        return _top_column(node.this, cols)
    if isinstance(node, exp.Column) and not node.table:
        return cols.get(node.name)
    return None


def _column_free(node: exp.Expr) -> bool:
    import sqlglot.expressions as exp

    return node.find(exp.Column, exp.Lambda, exp.Dot) is None


def _prune(node: exp.Expr, cols: Mapping[str, _Column], *, negated: bool) -> PruneNode:
    import sqlglot.expressions as exp

    if isinstance(node, exp.Paren):
        return _prune(node.this, cols, negated=negated)
    if isinstance(node, exp.Not):
        return _prune(node.this, cols, negated=not negated)
    if isinstance(node, exp.And | exp.Or):
        conj = isinstance(node, exp.And) != negated
        kids = (
            _prune(node.this, cols, negated=negated),
            _prune(node.expression, cols, negated=negated),
        )
        return _simplify(Conj(conj, kids))
    ops: dict[type, Op] = {
        exp.EQ: "=",
        exp.NEQ: "<>",
        exp.LT: "<",
        exp.LTE: "<=",
        exp.GT: ">",
        exp.GTE: ">=",
    }
    for cls, op in ops.items():
        if isinstance(node, cls):
            left, right = node.this, node.expression
            col, value = _top_column(left, cols), right
            if col is None:
                col, value, op = _top_column(right, cols), left, _FLIP[op]
            if col is None or not _column_free(value):
                return Always()
            return Compare(col.field_id, _NEGATE[op] if negated else op, _sql(value))
    if isinstance(node, exp.Between) and not node.args.get("symmetric"):
        col = _top_column(node.this, cols)
        low, high = node.args.get("low"), node.args.get("high")
        if col is None or low is None or high is None:
            return Always()
        if not (_column_free(low) and _column_free(high)):
            return Always()
        lo, hi = _sql(low), _sql(high)
        if negated:
            return Conj(False, (Compare(col.field_id, "<", lo), Compare(col.field_id, ">", hi)))
        return Conj(True, (Compare(col.field_id, ">=", lo), Compare(col.field_id, "<=", hi)))
    if isinstance(node, exp.In) and not node.args.get("query") and not node.args.get("unnest"):
        col = _top_column(node.this, cols)
        values = node.expressions
        if col is None or not values or not all(_column_free(v) for v in values):
            return Always()
        eq: Op = "<>" if negated else "="
        return _simplify(Conj(negated, tuple(Compare(col.field_id, eq, _sql(v)) for v in values)))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        col = _top_column(node.this, cols)
        return Always() if col is None else NullCheck(col.field_id, "null", negated)
    if isinstance(node, exp.IsNan):
        col = _top_column(node.this, cols)
        if col is None or not pa.types.is_floating(col.type):
            return Always()
        return NullCheck(col.field_id, "nan", negated)
    return Always()


def _simplify(node: Conj) -> PruneNode:
    kids: list[PruneNode] = []
    for k in node.children:
        if isinstance(k, Conj) and k.and_ == node.and_:
            kids.extend(k.children)
        else:
            kids.append(k)
    if node.and_:
        kids = [k for k in kids if not isinstance(k, Always)]
        if not kids:
            return Always()
    elif any(isinstance(k, Always) for k in kids):
        return Always()
    return kids[0] if len(kids) == 1 else Conj(node.and_, tuple(kids))


def _sql(node: exp.Expr) -> str:
    return str(node.sql(dialect="duckdb"))


def compares(node: PruneNode) -> Iterator[Compare]:
    if isinstance(node, Compare):
        yield node
    elif isinstance(node, Conj):
        for k in node.children:
            yield from compares(k)


# ------------------------------------------------------------------ the bound filter


@dataclass(frozen=True, slots=True)
class BoundFilter:
    """A filter bound to a snapshot schema: what every path evaluates and prunes with."""

    #: The text the caller gave.
    text: str
    #: The same expression in DuckDB SQL, over the quoted current column names.
    sql: str
    #: Columns the expression reads: field id -> current name.
    columns: Mapping[int, str]
    #: The data-skipping tree (`Always` when nothing can be pruned).
    prune: PruneNode


def bind_filter(text: Any, schema: pa.Schema, *, what: str = "filter") -> BoundFilter:
    """Parse, validate and bind ``text`` against ``schema`` (top-level columns with field ids).

    Raises:
        InvalidArgument: not one expression, a refused construct, an unknown
            column, or an expression DuckDB cannot bind against the schema.
    """
    tree = parse_expression(text, what=what)
    columns = _resolver(schema)
    bound, used = _bind_columns(tree, columns, text, what)
    sql = _sql(bound)
    _check_binds(sql, schema, used, what, text)
    by_name = {c.name: c for c in columns.values()}
    node = _prune(bound, by_name, negated=False)
    node = _keep_monotone(node, {c.field_id: c for c in columns.values()})
    return BoundFilter(
        text=text, sql=sql, columns={fid: c.name for fid, c in used.items()}, prune=node
    )


def bind_expression(text: Any, schema: pa.Schema, *, what: str) -> tuple[str, dict[int, str]]:
    """Parse, validate and bind a value expression (e.g. an update's ``set`` value).

    Returns its DuckDB SQL over the quoted current column names, and the columns it
    reads (field id -> name).
    """
    tree = parse_expression(text, what=what)
    bound, used = _bind_columns(tree, _resolver(schema), text, what)
    return _sql(bound), {fid: c.name for fid, c in used.items()}


def _check_binds(
    sql: str, schema: pa.Schema, used: Mapping[int, _Column], what: str, text: str
) -> None:
    """Bind the expression in DuckDB against an empty table of the columns it reads."""
    import duckdb

    from lakever.sql import cursor, register_arrow

    fields = [pa.field(c.name, c.type) for c in used.values()] or [pa.field("__x", pa.int8())]
    con = cursor()
    try:
        register_arrow(con, "__lakever_bind", pa.schema(fields).empty_table())
        con.sql(f"SELECT 1 FROM __lakever_bind WHERE ({sql})").to_arrow_table()
    except (duckdb.Error, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidArgument(
            f"{what} {text!r} failed in DuckDB: {first} (columns: {schema.names})"
        ) from exc
    finally:
        con.close()


# ------------------------------------------------------------------ order preservation

_NUMERIC = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"}
    | {"UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL"}
)
_TEMPORAL = frozenset(
    {"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
    | {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMPTZ_NS"}
)


def _family(duck_type: str) -> str | None:
    t = duck_type.upper()
    base = t.split("(", 1)[0].strip()
    if base in _NUMERIC:
        return "number"
    if base in _TEMPORAL:
        return "time"
    if base == "VARCHAR":
        return "string"
    if base == "BOOLEAN":
        return "bool"
    if base == "TIME":
        return "clock"
    return None


def _keep_monotone(node: PruneNode, columns: Mapping[int, _Column]) -> PruneNode:
    """Keep only comparisons DuckDB performs in an order-preserving type for the column.

    Comparing a column with a value of another type family (an integer column with
    a computed string, say) may cast the column to a type whose order differs
    from the column's, where min/max bounds say nothing. A bare string literal is
    cast to the column's type by DuckDB, so it always qualifies. A value calling a
    volatile function (``random()``, ``now()`` in another query) never does.
    """
    found = list(compares(node))
    if not found:
        return node
    types = _value_types([c.value for c in found])
    ok: dict[tuple[int, str], bool] = {}
    volatile = _functions().volatile
    for c in found:
        col_family = _family(_duck_name(columns[c.field_id].type))
        value_type = types.get(c.value)
        good = (
            col_family is not None
            and value_type is not None
            and not _calls_volatile(c.value, volatile)
            and (_is_string_literal(c.value) or _family(value_type) == col_family)
        )
        ok[(c.field_id, c.value)] = good
    return _filter_compares(node, ok)


def _duck_name(t: pa.DataType) -> str:
    from lakever.sql import duckdb_type

    return duckdb_type(t) or ""


@functools.lru_cache(maxsize=4096)
def _is_string_literal(value: str) -> bool:
    import sqlglot
    import sqlglot.expressions as exp

    node = sqlglot.parse_one(value, read="duckdb")
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Literal) and node.is_string


@functools.lru_cache(maxsize=4096)
def _function_names(value: str) -> frozenset[str]:
    import sqlglot
    import sqlglot.expressions as exp

    node = sqlglot.parse_one(value, read="duckdb")
    names = {_function_name(f) for f in node.find_all(exp.Func)}
    # CURRENT_TIMESTAMP and friends are parsed as functions without parentheses.
    names |= {type(f).__name__.lower() for f in node.find_all(exp.Func)}
    return frozenset(names)


def _calls_volatile(value: str, volatile: frozenset[str]) -> bool:
    names = _function_names(value)
    if names & volatile:
        return True
    # Time functions are CONSISTENT_WITHIN_QUERY: pruning runs in another query.
    return any(n.startswith(("current", "now", "today", "get_current", "localtime")) for n in names)


#: A plain decimal number literal; of at most 18 digits DuckDB types it INTEGER, BIGINT or
#: DECIMAL (the "number" family either way); group 1 is its fractional part.
_NUMBER = re.compile(r"-?\s*\d+(\.\d+)?")


def _value_types(values: list[str]) -> dict[str, str]:
    """DuckDB's type for each column-free value (values it cannot evaluate are left out)."""
    import duckdb

    from lakever.sql import cursor

    out: dict[str, str] = {}
    distinct = []
    for v in dict.fromkeys(values):
        literal = _NUMBER.fullmatch(v)
        if literal is None or sum(c.isdigit() for c in v) > 18:  # BIGNUM, DOUBLE: ask
            distinct.append(v)
        else:  # a plain number: no DuckDB round trip for what its family is
            out[v] = "DECIMAL" if literal.group(1) else "INTEGER"
    if not distinct:
        return out
    con = cursor()
    try:
        try:
            row = con.sql("SELECT " + ", ".join(f"typeof(({v}))" for v in distinct)).fetchall()[0]
            out.update(zip(distinct, (str(t) for t in row), strict=True))
            return out
        except duckdb.Error:
            pass
        for v in distinct:  # one fails: find which ones evaluate
            try:
                out[v] = str(con.sql(f"SELECT typeof(({v}))").fetchall()[0][0])
            except duckdb.Error:
                continue
        return out
    finally:
        con.close()


def _filter_compares(node: PruneNode, ok: Mapping[tuple[int, str], bool]) -> PruneNode:
    if isinstance(node, Compare):
        return node if ok.get((node.field_id, node.value)) else Always()
    if isinstance(node, Conj):
        return _simplify(Conj(node.and_, tuple(_filter_compares(k, ok) for k in node.children)))
    return node
