"""Data skipping: decide from manifest statistics which fragments a filter cannot match.

A filter is a DuckDB SQL boolean expression. It is parsed with sqlglot into
simple predicates — ``col <op> literal`` (and flipped), ``BETWEEN``, ``IN``,
``IS [NOT] NULL``, combined with ``AND`` / ``OR`` — and each fragment's min/max
/null/NaN counts are checked against them. Anything not understood counts as
"may match", so pruning only ever removes fragments that certainly hold no
matching row; DuckDB still applies the full filter to the fragments that remain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

__all__ = ["Pruner", "compile_filter"]

_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = datetime(1970, 1, 1)
_FLIP = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte", "eq": "eq", "neq": "neq"}

Stats = Mapping[str, Any]
#: A compiled predicate: (stats of its column or None, rows in the fragment) -> may match?
Check = Callable[[Mapping[int, Stats], int], bool]


class _Unknown(Exception):
    """The expression (or a literal) cannot be used for pruning."""


def _always(_stats: Mapping[int, Stats], _rows: int) -> bool:
    return True


@dataclass(frozen=True)
class _Column:
    field_id: int
    type: pa.DataType


def _to_physical(value: Any, t: pa.DataType) -> Any:
    """Convert a SQL literal to the representation used in manifest stats."""
    if value is None:
        raise _Unknown
    if pa.types.is_boolean(t):
        if isinstance(value, bool):
            return value
        raise _Unknown
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise _Unknown
        return value
    if pa.types.is_decimal(t):
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise _Unknown from exc
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if isinstance(value, str):
            return value
        raise _Unknown
    if pa.types.is_date32(t):
        try:
            return (date.fromisoformat(str(value)[:10]) - date(1970, 1, 1)).days
        except ValueError as exc:
            raise _Unknown from exc
    if pa.types.is_timestamp(t):
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise _Unknown from exc
        if (when.tzinfo is None) != (t.tz is None):
            raise _Unknown  # DuckDB would apply its session time zone: do not guess
        if when.tzinfo is not None:
            when = when.astimezone(UTC).replace(tzinfo=None)
        delta = when - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros * _UNIT[t.unit] // 1_000_000
    raise _Unknown


def _decode(stat: Any, t: pa.DataType) -> Any:
    return Decimal(stat) if pa.types.is_decimal(t) else stat


def _compare(col: _Column, op: str, literal: Any) -> Check:
    value = _to_physical(literal, col.type)
    floating = pa.types.is_floating(col.type)

    def check(stats: Mapping[int, Stats], rows: int) -> bool:
        s = stats.get(col.field_id)
        if s is None:
            return True
        if s.get("nulls", 0) >= rows and rows > 0:
            return False  # only nulls: no comparison is true
        if floating and op in ("gt", "gte", "neq") and s.get("nans", 1):
            return True  # DuckDB orders NaN above every number, and min/max ignore NaN
        if "min" not in s or "max" not in s:
            return True
        lo, hi = _decode(s["min"], col.type), _decode(s["max"], col.type)
        try:
            if op == "eq":
                return bool(lo <= value <= hi)
            if op == "neq":
                return not (lo == hi == value)
            if op == "lt":
                return bool(lo < value)
            if op == "lte":
                return bool(lo <= value)
            if op == "gt":
                return bool(hi > value)
            if op == "gte":
                return bool(hi >= value)
        except TypeError:
            return True
        return True

    return check


def _literal(node: Any) -> Any:
    import sqlglot.expressions as exp

    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Neg):
        inner = _literal(node.this)
        if isinstance(inner, int | float | Decimal) and not isinstance(inner, bool):
            return -inner
        raise _Unknown
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            return int(text)
        except ValueError:
            try:
                return Decimal(text) if "e" not in text.lower() else float(text)
            except InvalidOperation as exc:
                raise _Unknown from exc
    raise _Unknown


class Pruner:
    """A filter compiled against a schema; `may_match` says whether a fragment can match."""

    def __init__(self, filter: str, columns: Mapping[str, tuple[int, pa.DataType]]) -> None:
        self.filter = filter
        self._columns = {name: _Column(fid, t) for name, (fid, t) in columns.items()}
        try:
            import sqlglot
            from sqlglot.errors import ParseError, TokenError

            tree = sqlglot.parse_one(filter, read="duckdb")
        except (ParseError, TokenError, ImportError):
            self._check: Check = _always
            self.understood = False
            return
        self._check = self._compile(tree)
        self.understood = self._check is not _always

    def may_match(self, stats: Mapping[int, Stats], num_rows: int) -> bool:
        """False only when no row of a fragment with these stats can satisfy the filter."""
        return self._check(stats, num_rows)

    def columns_used(self) -> set[int]:
        return {c.field_id for c in self._columns.values()}

    def _column(self, node: Any) -> _Column:
        import sqlglot.expressions as exp

        if isinstance(node, exp.Column) and not node.table and node.name in self._columns:
            return self._columns[node.name]
        raise _Unknown

    def _compile(self, node: Any) -> Check:
        try:
            return self._compile_strict(node)
        except _Unknown:
            return _always

    def _compile_strict(self, node: Any) -> Check:
        import sqlglot.expressions as exp

        if isinstance(node, exp.Paren):
            return self._compile_strict(node.this)
        if isinstance(node, exp.And):
            left, right = self._compile(node.this), self._compile(node.expression)
            return lambda s, n: left(s, n) and right(s, n)
        if isinstance(node, exp.Or):
            left, right = self._compile_strict(node.this), self._compile_strict(node.expression)
            return lambda s, n: left(s, n) or right(s, n)
        ops = {
            exp.EQ: "eq",
            exp.NEQ: "neq",
            exp.GT: "gt",
            exp.GTE: "gte",
            exp.LT: "lt",
            exp.LTE: "lte",
        }
        for cls, op in ops.items():
            if isinstance(node, cls):
                try:
                    return _compare(self._column(node.this), op, _literal(node.expression))
                except _Unknown:
                    return _compare(self._column(node.expression), _FLIP[op], _literal(node.this))
        if isinstance(node, exp.Between):
            col = self._column(node.this)
            low = _compare(col, "gte", _literal(node.args["low"]))
            high = _compare(col, "lte", _literal(node.args["high"]))
            return lambda s, n: low(s, n) and high(s, n)
        if isinstance(node, exp.In) and not node.args.get("query"):
            col = self._column(node.this)
            checks = [_compare(col, "eq", _literal(v)) for v in node.expressions]
            return lambda s, n: any(c(s, n) for c in checks)
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            col = self._column(node.this)
            return lambda s, n: s.get(col.field_id, {}).get("nulls", 1) > 0 or n == 0
        if (
            isinstance(node, exp.Not)
            and isinstance(node.this, exp.Is)
            and isinstance(node.this.expression, exp.Null)
        ):
            col = self._column(node.this.this)
            return lambda s, n: s.get(col.field_id, {}).get("nulls", 0) < n
        raise _Unknown


def compile_filter(filter: str, schema: pa.Schema, field_ids: Mapping[str, int]) -> Pruner:
    """Compile ``filter`` against the top-level columns of ``schema``."""
    cols = {f.name: (field_ids[f.name], f.type) for f in schema if f.name in field_ids}
    return Pruner(filter, cols)
