"""The SQL half of `lakever.ml.drift`: aggregates DuckDB computes over a snapshot's view.

Every function here takes a DuckDB connection and the name of a view of a snapshot's
live rows (`lakever.SnapshotView.to_duckdb`), runs one aggregate query and returns a
handful of numbers: no row of data reaches Python.

Numeric values are compared as DOUBLE: integers and decimals cast, dates and
timestamps as seconds since the epoch (UTC), floats as they are except NaN, which
counts as missing. Categorical values are compared as text
(``CAST(col AS VARCHAR)``: booleans read ``true``/``false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.sql import quote_identifier

if TYPE_CHECKING:
    import duckdb

__all__ = ["Column", "CategoryCompare", "Stats", "compare_categories", "stats", "top_values"]


@dataclass(frozen=True)
class Column:
    """One column to aggregate: its name in the view, Arrow type and kind."""

    name: str
    type: pa.DataType
    kind: str
    #: Histogram edges to count on (numeric), None to compute the view's own.
    edges: Sequence[float] | None = None

    @property
    def quoted(self) -> str:
        return quote_identifier(self.name)

    @property
    def is_float(self) -> bool:
        return bool(pa.types.is_floating(self.type))

    def values(self) -> str:
        """The DOUBLE a numeric value is binned as (NULL for null and NaN; ±inf kept)."""
        q = self.quoted
        if self.is_float:
            return f"CASE WHEN isnan({q}) THEN NULL ELSE CAST({q} AS DOUBLE) END"
        # Exact integers divided once: epoch() truncates nanoseconds and rounds negative
        # instants differently from that division.
        if pa.types.is_timestamp(self.type):
            if self.type.unit == "ns":
                return f"(CAST(epoch_ns({q}) AS DOUBLE) / 1e9)"
            # DuckDB's implicit cast of a naive TIMESTAMP_S/_MS fails outside the
            # nanosecond range (years 1677-2262); the explicit one does not.
            us = q if self.type.tz is not None else f"CAST({q} AS TIMESTAMP)"
            return f"(CAST(epoch_us({us}) AS DOUBLE) / 1e6)"
        if pa.types.is_date(self.type):
            return f"(CAST({q} - DATE '1970-01-01' AS DOUBLE) * 86400)"
        return f"CAST({q} AS DOUBLE)"

    def finite(self) -> str:
        """The DOUBLE a numeric value counts as in min/max/mean/std/quantiles (finite only)."""
        if self.is_float:
            q = self.quoted
            return f"CASE WHEN isfinite({q}) THEN CAST({q} AS DOUBLE) END"
        return self.values()


@dataclass(frozen=True)
class Stats:
    """What `stats` computed for one column (None where it does not apply)."""

    nulls: int
    nans: int
    distinct: int | None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    #: Quantile cut points of the finite values (when edges were not given).
    quantiles: list[float] | None = None
    #: Counts on the given edges.
    counts: list[int] | None = None


def _double(x: float) -> str:
    # Through text: DuckDB parses a quoted double exactly (a bare literal such as
    # 0.30000000000000004 would be read as a DECIMAL first and could round).
    return f"CAST('{x!r}' AS DOUBLE)"


def bin_counts_sql(values: str, edges: Sequence[float]) -> list[str]:
    """One ``count_if`` per bin of ``edges``; the outer bins are open-ended.

    Bin ``i`` holds ``edges[i] <= v < edges[i+1]``, except that the first bin also
    holds everything below ``edges[1]`` and the last everything at or above
    ``edges[-2]``: a value outside the edges is counted in the nearest outer bin.
    """
    cuts = [_double(e) for e in edges[1:-1]]
    if not cuts:
        return [f"count({values})"]
    out = [f"count_if({values} < {cuts[0]})"]
    out += [f"count_if({values} >= {lo} AND {values} < {hi})" for lo, hi in pairwise(cuts)]
    out.append(f"count_if({values} >= {cuts[-1]})")
    return out


def stats(
    con: duckdb.DuckDBPyConnection, view: str, columns: Sequence[Column], bins: int
) -> tuple[int, dict[str, Stats]]:
    """Row count and per-column aggregates of ``view``, in one scan."""
    select = ["count(*)"]
    layout: list[tuple[Column, int, int]] = []  # column, first select index, #bin counts
    fractions = "[" + ", ".join(repr(j / bins) for j in range(1, bins)) + "]"
    for c in columns:
        start = len(select)
        q = c.quoted
        select.append(f"count({q})")
        select.append(f"count_if(isnan({q}))" if c.is_float and c.kind == "numeric" else "0")
        nbins = 0
        if c.kind == "numeric":
            v, f = c.values(), c.finite()
            select.append(f"approx_count_distinct({v if c.is_float else q})")
            select += [f"min({f})", f"max({f})", f"avg({f})", f"stddev_pop({f})"]
            if c.edges is None:
                select.append(f"quantile_disc({f}, {fractions})" if bins > 1 else "[]")
            else:
                counts = bin_counts_sql(v, c.edges)
                nbins = len(counts)
                select += counts
        elif c.kind == "categorical":
            select.append(f"count(DISTINCT {q})")
        layout.append((c, start, nbins))
    row = _one(con, f"SELECT {', '.join(select)} FROM {quote_identifier(view)}")
    rows = int(row[0])
    out: dict[str, Stats] = {}
    for c, i, nbins in layout:
        nulls, nans = rows - int(row[i] or 0), int(row[i + 1] or 0)
        if c.kind == "numeric":
            lo, hi, mean, std = (_float(x) for x in row[i + 3 : i + 7])
            rest = row[i + 7 : i + 7 + max(nbins, 1)]
            out[c.name] = Stats(
                nulls,
                nans,
                int(row[i + 2] or 0),
                lo,
                hi,
                mean,
                std,
                quantiles=[float(x) for x in rest[0] or [] if x is not None] if not nbins else None,
                counts=[int(x or 0) for x in rest] if nbins else None,
            )
        elif c.kind == "categorical":
            out[c.name] = Stats(nulls, nans, int(row[i + 2] or 0))
        else:
            out[c.name] = Stats(nulls, nans, None)
    return rows, out


def bin_counts(
    con: duckdb.DuckDBPyConnection, view: str, columns: Sequence[Column]
) -> dict[str, list[int]]:
    """Counts of each column's values on its ``edges``, in one scan."""
    select: list[str] = []
    spans: list[tuple[str, int, int]] = []
    for c in columns:
        assert c.edges is not None
        counts = bin_counts_sql(c.values(), c.edges)
        spans.append((c.name, len(select), len(counts)))
        select += counts
    if not select:
        return {}
    row = _one(con, f"SELECT {', '.join(select)} FROM {quote_identifier(view)}")
    return {name: [int(x or 0) for x in row[i : i + n]] for name, i, n in spans}


def top_values(
    con: duckdb.DuckDBPyConnection, view: str, column: str, k: int
) -> list[tuple[str, int]]:
    """The ``k`` most frequent non-null values as text, with counts (ties: by value)."""
    q = quote_identifier(column)
    rows = con.execute(
        f"SELECT CAST({q} AS VARCHAR) AS v, count(*) AS n FROM {quote_identifier(view)} "
        f"WHERE {q} IS NOT NULL GROUP BY 1 ORDER BY n DESC, v LIMIT {int(k)}"
    ).fetchall()
    return [(str(v), int(n)) for v, n in rows]


@dataclass(frozen=True)
class CategoryCompare:
    """Two category distributions compared (nulls left out of both)."""

    js: float | None
    new_count: int
    vanished_count: int
    new: list[str]
    vanished: list[str]


def compare_categories(
    con: duckdb.DuckDBPyConnection,
    a: tuple[str, str],
    b: tuple[str, str],
    *,
    listed: int,
) -> CategoryCompare:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the value frequencies of
    column ``a[1]`` of view ``a[0]`` and ``b[1]`` of ``b[0]``, and the categories only
    one side has (the ``listed`` most frequent of each, by count then value)."""

    def freq(side: tuple[str, str]) -> str:
        q = quote_identifier(side[1])
        return (
            f"SELECT CAST({q} AS VARCHAR) AS v, CAST(count(*) AS DOUBLE) AS n "
            f"FROM {quote_identifier(side[0])} WHERE {q} IS NOT NULL GROUP BY 1"
        )

    k = int(listed)
    sql = f"""
    WITH fa AS ({freq(a)}), fb AS ({freq(b)}),
    j AS (SELECT coalesce(fa.v, fb.v) AS v, coalesce(fa.n, 0) AS na, coalesce(fb.n, 0) AS nb
          FROM fa FULL OUTER JOIN fb ON fa.v = fb.v),
    t AS (SELECT sum(na) AS ta, sum(nb) AS tb FROM j),
    p AS (SELECT na / ta AS p, nb / tb AS q FROM j, t WHERE ta > 0 AND tb > 0),
    d AS (SELECT sum(CASE WHEN p > 0 THEN p * log2(p / ((p + q) / 2)) ELSE 0 END)
               + sum(CASE WHEN q > 0 THEN q * log2(q / ((p + q) / 2)) ELSE 0 END) AS s
          FROM p)
    SELECT (SELECT s / 2 FROM d),
           (SELECT count(*) FROM j WHERE na = 0),
           (SELECT count(*) FROM j WHERE nb = 0),
           (SELECT list(v ORDER BY nb DESC, v)
              FROM (SELECT v, nb FROM j WHERE na = 0 ORDER BY nb DESC, v LIMIT {k})),
           (SELECT list(v ORDER BY na DESC, v)
              FROM (SELECT v, na FROM j WHERE nb = 0 ORDER BY na DESC, v LIMIT {k}))
    """
    divergence, new_n, gone_n, new, gone = _one(con, sql)
    js = None if divergence is None else max(0.0, float(divergence)) ** 0.5
    return CategoryCompare(
        js=None if js is None else min(js, 1.0),
        new_count=int(new_n),
        vanished_count=int(gone_n),
        new=[str(v) for v in new or []],
        vanished=[str(v) for v in gone or []],
    )


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None  # an aggregate without GROUP BY returns one row
    return tuple(row)


def _float(x: Any) -> float | None:
    return None if x is None else float(x)
