"""Profiles of one snapshot's columns, computed in DuckDB (see `lakever.ml.drift`).

`profile` is the public entry (re-exported by `lakever.ml.drift`); `_profile` runs on a
connection where the snapshot is a view, so `drift` profiles two snapshots on one
connection and compares their categories there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.errors import InvalidArgument, LakeverError, StorageError
from lakever.ml._drift_sql import Column, Stats, bin_counts, stats, top_values

if TYPE_CHECKING:
    import duckdb

    from lakever.view import SnapshotView

__all__ = ["ColumnProfile", "profile", "profile_on", "session"]


@dataclass(frozen=True)
class ColumnProfile:
    """One column of one snapshot, computed in DuckDB.

    ``nulls`` counts nulls, ``nans`` NaN values (float columns); ``null_rate`` is
    ``(nulls + nans) / rows`` (0 for an empty snapshot). ``distinct`` is the number
    of distinct non-missing values: exact for categorical columns, approximate for
    numeric ones (HyperLogLog, DuckDB's ``approx_count_distinct``, usually within a few
    percent: an exact count of a million floats costs more than the rest of a
    profile), None for "other" columns. ``min``, ``max``,
    ``mean`` and ``std`` (population) are over finite values, dates and timestamps in
    seconds since the epoch. ``edges``/``counts``: the histogram; ``counts[i]`` holds
    ``edges[i] <= v < edges[i+1]``, the first and last bins are open-ended (the outer
    edges are -inf and +inf for edges computed from the data). ``top``: the ``top_k``
    most frequent values of a categorical column as text, most frequent first.
    """

    name: str
    field_id: int
    type: str
    kind: str
    rows: int
    nulls: int
    null_rate: float
    distinct: int | None
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    edges: list[float] | None
    counts: list[int] | None
    top: list[tuple[str, int]] | None
    nans: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: infinite edges (and a ``std`` that overflowed) as the
        strings ``"-inf"``/``"inf"``, which ``float()`` reads back."""
        out = {f.name: _json(getattr(self, f.name)) for f in fields(self)}
        if self.edges is not None:
            out["edges"] = [_json(e) for e in self.edges]
        if self.top is not None:
            out["top"] = [list(t) for t in self.top]
        return out


def _json(x: Any) -> Any:
    return str(x) if isinstance(x, float) and not math.isfinite(x) else x


def _kind(t: pa.DataType, name: str, forced: set[str]) -> str:
    if name in forced:
        if pa.types.is_integer(t) or _categorical_type(t):
            return "categorical"
        raise InvalidArgument(
            f"categorical column {name!r} has type {t}; only integer columns can be "
            "treated as categorical (strings, booleans and dictionaries already are)"
        )
    if _categorical_type(t):
        return "categorical"
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
    ):
        return "numeric"
    return "other"


def _categorical_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_dictionary(t)
    )


def _own_edges(s: Stats, rows: int) -> list[float] | None:
    """Edges from a snapshot's own values: -inf, min, quantiles, just above max, +inf."""
    if rows - s.nulls - s.nans == 0:
        return None
    if s.min is None or s.max is None:  # only infinities
        return [-math.inf, math.inf]
    above = math.nextafter(s.max, math.inf)  # inf when max is the largest double
    cuts = sorted({s.min, *(s.quantiles or []), above if math.isfinite(above) else s.max})
    return [-math.inf, *cuts, math.inf]


def _check_edges(name: str, edges: Any) -> list[float]:
    try:
        out = [float(e) for e in edges]
    except (TypeError, ValueError):
        out = []
    inner_ok = all(math.isfinite(e) for e in out[1:-1])
    if len(out) < 2 or not inner_ok or any(x >= y for x, y in pairwise(out)):
        raise InvalidArgument(
            f"edges for column {name!r} must be at least 2 increasing numbers (finite "
            f"except the outer two), got {edges!r}"
        )
    return out


def _names(view: SnapshotView, columns: Sequence[str] | None, what: str) -> list[str]:
    names = list(view.schema.names)
    if columns is None:
        return names
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidArgument(f"{what} must be a list of column names, got {columns!r}")
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise InvalidArgument(f"{what} {unknown} not in the snapshot's columns {names}")
    return [n for n in names if n in set(columns)]


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidArgument(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _wide_decimal(t: pa.DataType) -> bool:
    return bool(pa.types.is_decimal(t) and t.precision > 38)


def _uris(views: Sequence[SnapshotView]) -> str:
    return " and ".join(sorted({v.uri for v in views}))


def _first(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def session(*views: SnapshotView) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[str]]]:
    """A private DuckDB cursor on which ``__drift_<i>`` is each view's live rows.

    The cursor is on a locked database (`lakever.sql.connect_locked`, as for caller
    SQL): it can read the views' data directories and nothing else, whatever a
    manifest says.
    """
    import duckdb

    from lakever.query import data_dirs, locked_cursor

    plans = [view.plan() for view in views]
    con = locked_cursor(data_dirs(plans))
    try:
        names = []
        for i, view in enumerate(views):
            names.append(f"__drift_{i}")
            wide = [f.name for f in view.schema if _wide_decimal(f.type)]
            if wide:
                # DuckDB holds no decimal of more than 38 digits: such a snapshot is read
                # through Arrow anyway (`SnapshotView.to_duckdb`), so read it here with
                # those columns as their exact text, which DuckDB casts to DOUBLE.
                table = view.to_arrow()
                for n in wide:
                    j = table.schema.get_field_index(n)
                    table = table.set_column(j, n, table.column(n).cast(pa.string()))
                con.register(names[-1], table)
            else:
                con.register(names[-1], view.to_duckdb(con))
        yield con, names
    except duckdb.IOException as exc:
        raise StorageError(
            f"reading snapshots of {_uris(views)} in DuckDB failed: {_first(exc)}; run "
            "'lakever verify' on the dataset to look for damaged files",
            path=views[0].uri,
        ) from exc
    except duckdb.Error as exc:
        # Damaged files are found before DuckDB reads them (their hashes are checked), so
        # anything else is a query lakever built that DuckDB refused: not the data's fault.
        raise LakeverError(
            f"profiling snapshots of {_uris(views)} in DuckDB failed: {_first(exc)}. The "
            "files passed their checks; this is a limitation of lakever's profiling of "
            "these column types: report it with the command that raised it"
        ) from exc
    finally:
        con.close()


def profile(
    view: SnapshotView,
    *,
    columns: Sequence[str] | None = None,
    bins: int = 10,
    edges: Mapping[str, Sequence[float]] | None = None,
    top_k: int = 20,
    categorical: Sequence[str] | None = None,
) -> dict[str, ColumnProfile]:
    """Describe each column of a snapshot (see `ColumnProfile`), computed in DuckDB.

    Args:
        columns: only these columns (default: all), in schema order.
        bins: quantile bins inside the snapshot's range for numeric columns (plus the
            two open-ended outer bins; repeated quantiles merge bins).
        edges: histogram edges to use for some numeric columns instead (the outer
            bins open-ended), e.g. another snapshot's ``profile[col].edges``.
        top_k: how many most frequent values a categorical column lists.
        categorical: integer columns to treat as categorical.

    Raises:
        InvalidArgument: an unknown column, bad edges, ``bins`` < 1 or ``top_k`` < 0.
        CorruptData: a fragment is damaged.
    """
    with session(view) as (con, (name,)):
        return profile_on(con, name, view, columns, bins, edges, top_k, categorical)[1]


def profile_on(
    con: duckdb.DuckDBPyConnection,
    table: str,
    view: SnapshotView,
    columns: Sequence[str] | None,
    bins: int,
    edges: Mapping[str, Sequence[float]] | None,
    top_k: int,
    categorical: Sequence[str] | None,
) -> tuple[int, dict[str, ColumnProfile]]:
    names = _names(view, columns, "columns")
    _check_int("bins", bins, 1)
    _check_int("top_k", top_k, 0)
    forced = set(_names(view, categorical, "categorical")) if categorical is not None else set()
    given = dict(edges or {})
    unknown = [n for n in given if n not in view.schema.names]
    if unknown:
        raise InvalidArgument(f"edges for {unknown}: not columns of {view.schema.names}")
    cols = []
    for n in names:
        t = view.schema.field(n).type
        kind = _kind(t, n, forced)
        e = _check_edges(n, given[n]) if n in given and kind == "numeric" else None
        cols.append(Column(n, t, kind, e))
    rows, st = stats(con, table, cols, bins)
    own = {
        c.name: _own_edges(st[c.name], rows)
        for c in cols
        if c.kind == "numeric" and c.edges is None
    }
    todo = [Column(c.name, c.type, c.kind, own[c.name]) for c in cols if own.get(c.name)]
    counted = bin_counts(con, table, todo)
    ids = view.field_ids
    out = {}
    for c in cols:
        s = st[c.name]
        numeric = c.kind == "numeric"
        out[c.name] = ColumnProfile(
            name=c.name,
            field_id=ids[c.name],
            type=str(c.type),
            kind=c.kind,
            rows=rows,
            nulls=s.nulls,
            null_rate=(s.nulls + s.nans) / rows if rows else 0.0,
            distinct=s.distinct,
            min=s.min,
            max=s.max,
            mean=s.mean,
            std=s.std,
            edges=(list(c.edges) if c.edges is not None else own[c.name]) if numeric else None,
            counts=(s.counts if c.edges is not None else counted.get(c.name)) if numeric else None,
            top=top_values(con, table, c.name, top_k) if c.kind == "categorical" else None,
            nans=s.nans,
        )
    return rows, out
