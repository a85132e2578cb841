"""Data skipping: which fragments a bound filter may match, decided by DuckDB over statistics.

For the field ids the filter's pruning tree reads (`lakever.expr.prune_columns`),
a statistics relation holds one row per fragment: its row count and, per field,
min/max in the column's current type, null and NaN counts. The condition of
`lakever.expr.may_match_sql` is evaluated over it by DuckDB in one vectorised
query, so a bound is compared with the filter's value exactly as DuckDB compares
a row's value (same type, same cast, same rounding). A fragment is dropped only
when the condition is false; a missing statistic is NULL, which keeps it.

Two sources of statistics are used, in order: the partition values a fragment
records (partition pruning), then the min/max/null/NaN counts of its manifest
entry. Bounds written under an older type are decoded in that type and cast to
the current one (every widening lakever allows is order-preserving).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.expr import Always, BoundFilter, Compare, Conj, NullCheck, PruneNode
from lakever.format import FragmentEntry
from lakever.partitioning import partition_stats
from lakever.schema import iter_field_ids
from lakever.sql import cursor, duckdb_type

if TYPE_CHECKING:
    import duckdb

__all__ = ["Pruned", "may_match_sql", "prune", "prune_columns", "run_prune"]

#: A fragment's statistics by field id (``{"min", "max", "nulls", "nans"}``).
Stats = Mapping[int, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Pruned:
    """Fragments before pruning, after partition pruning, and after statistics pruning."""

    all: list[FragmentEntry]
    after_partitions: list[FragmentEntry]
    kept: list[FragmentEntry]


def _stat_type(t: pa.DataType) -> bool:
    """Whether min/max of a column of this type are recorded and comparable."""
    return (
        pa.types.is_integer(t)
        or (pa.types.is_floating(t) and not pa.types.is_float16(t))
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
    )


def _decode(values: Sequence[Any], t: pa.DataType) -> pa.Array[Any]:
    """Manifest-encoded bounds (JSON scalars; None: unknown) as an array of type ``t``."""
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        ticks = pa.int32() if t.bit_width == 32 else pa.int64()
        return pa.array(values, ticks).cast(t)
    if pa.types.is_decimal(t):
        out = []
        for v in values:
            try:
                out.append(None if v is None else Decimal(str(v)))
            except InvalidOperation:
                out.append(None)
        return pa.array(out, t)
    return pa.array(values, t)


def _bounds(
    raw: Sequence[Any], written: Sequence[pa.DataType | None], current: pa.DataType
) -> pa.Array[Any]:
    """Decode each bound in the type it was written under, then cast it to ``current``.

    Arrow values never pass through Python objects on the way: converting a zoned
    ``datetime`` back to Arrow drops its offset once pandera has been imported
    (pyarrow 26), which would shift bounds of fixed-offset timestamp columns.
    """
    groups: dict[pa.DataType, list[int]] = {}
    for i, (v, t) in enumerate(zip(raw, written, strict=True)):
        if v is not None and t is not None and _stat_type(t):
            groups.setdefault(t, []).append(i)
    parts: list[pa.Array[Any]] = [pa.nulls(1, current)]  # type: ignore[call-overload]
    where = [0] * len(raw)  # position of each bound in the concatenation (0: null)
    offset = 1
    for t, idx in groups.items():
        try:
            arr = _decode([raw[i] for i in idx], t).cast(current)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            continue  # not representable under the current type: unknown
        parts.append(arr)
        for k, i in enumerate(idx):
            where[i] = offset + k
        offset += len(arr)
    return pa.concat_arrays(parts).take(pa.array(where, pa.int64()))


def _zero(v: Any, *, low: bool) -> Any:
    # -0.0 and 0.0 compare equal; keep the bound on the safe side of both anyway.
    if isinstance(v, float) and v == 0.0:
        return -0.0 if low else 0.0
    return v


def stats_relation(
    entries: Sequence[FragmentEntry],
    fields: Sequence[int],
    types: Mapping[int, pa.DataType],
    stats_of: Callable[[FragmentEntry], Stats],
    written_type: Callable[[FragmentEntry, int], pa.DataType | None],
) -> pa.Table:
    """The statistics relation `lakever.expr.may_match_sql` reads, one row per entry."""
    columns: dict[str, pa.Array[Any]] = {"n": pa.array([e.num_rows for e in entries], pa.int64())}
    all_stats = [stats_of(e) for e in entries]
    for fid in fields:
        t = types[fid]
        per = [s.get(fid) for s in all_stats]
        written = [written_type(e, fid) for e in entries]
        lows = [None if s is None else _zero(s.get("min"), low=True) for s in per]
        highs = [None if s is None else _zero(s.get("max"), low=False) for s in per]
        columns[f"lo_{fid}"] = _bounds(lows, written, t)
        columns[f"hi_{fid}"] = _bounds(highs, written, t)
        columns[f"nl_{fid}"] = pa.array(
            [None if s is None else s.get("nulls") for s in per], pa.int64()
        )
        columns[f"nn_{fid}"] = pa.array(
            [None if s is None else s.get("nans") for s in per], pa.int64()
        )
    return pa.table(columns)


def _own_stats(e: FragmentEntry) -> Stats:
    return e.stats


def _usable(node: PruneNode, usable: set[int]) -> PruneNode:
    """``node`` with checks on columns without usable statistics replaced by `Always`."""
    if isinstance(node, Compare | NullCheck):
        return node if node.field_id in usable else Always()
    if isinstance(node, Conj):
        kids = tuple(_usable(k, usable) for k in node.children)
        if node.and_:
            kept = tuple(k for k in kids if not isinstance(k, Always))
            return Always() if not kept else Conj(True, kept)
        return Always() if any(isinstance(k, Always) for k in kids) else Conj(False, kids)
    return node


def prune(
    entries: list[FragmentEntry],
    bound: BoundFilter,
    types: Mapping[int, pa.DataType],
    schema_of: Callable[[str], pa.Schema],
) -> Pruned:
    """Split ``entries`` by what ``bound`` may match (see the module docstring).

    Args:
        types: the snapshot's top-level field id -> type.
        schema_of: the schema (with field ids) a fragment was written under.
    """
    usable = {
        fid
        for fid in prune_columns(bound.prune)
        if fid in types and duckdb_type(types[fid]) is not None
    }
    node = _usable(bound.prune, usable)
    if isinstance(node, Always) or not entries:
        return Pruned(entries, entries, entries)
    fields = sorted(prune_columns(node))
    condition = may_match_sql(node, types)
    written: dict[tuple[str, int], pa.DataType | None] = {}

    def written_type(e: FragmentEntry, fid: int) -> pa.DataType | None:
        key = (e.schema_id, fid)
        if key not in written:
            f = dict(iter_field_ids(schema_of(e.schema_id))).get(fid)
            written[key] = None if f is None else f.type
        return written[key]

    part_cache: dict[int, Stats] = {}

    def partition_of(e: FragmentEntry) -> Stats:
        if e.partition is None:
            return {}
        key = id(e.partition)
        hit = part_cache.get(key)
        if hit is None:
            # Partition values are recorded in the type the fragment was written under.
            written_types = {fid: written_type(e, fid) for fid in fields}
            hit = partition_stats(
                e.partition, {k: v for k, v in written_types.items() if v}, e.num_rows
            )
            part_cache[key] = hit
        return hit

    import duckdb

    con = cursor()
    try:
        partitioned = [e for e in entries if e.partition is not None]
        after = entries
        if partitioned:
            rel = stats_relation(partitioned, fields, types, partition_of, written_type)
            mask = run_prune(con, rel, condition).to_pylist()
            dropped = {id(e) for e, m in zip(partitioned, mask, strict=True) if not m}
            after = [e for e in entries if id(e) not in dropped]
        kept = after
        if after:
            rel = stats_relation(after, fields, types, _own_stats, written_type)
            mask = run_prune(con, rel, condition).to_pylist()
            kept = [e for e, m in zip(after, mask, strict=True) if m]
    except duckdb.Error:
        # A value DuckDB cannot evaluate (e.g. an out-of-range cast): prune nothing, so
        # evaluating the filter on the rows reports the error exactly as DuckDB would.
        return Pruned(entries, entries, entries)
    finally:
        con.close()
    return Pruned(entries, after, kept)


# ------------------------------------------------------------------ the condition


def prune_columns(node: PruneNode) -> set[int]:
    """Field ids whose statistics the pruning tree reads."""
    if isinstance(node, Compare | NullCheck):
        return {node.field_id}
    if isinstance(node, Conj):
        return set().union(*(prune_columns(k) for k in node.children))
    return set()


def may_match_sql(node: PruneNode, types: Mapping[int, pa.DataType]) -> str:
    """A boolean SQL expression over a statistics relation: false only when no row can match.

    The relation has, per fragment, ``n`` (rows) and per field id ``f``:
    ``lo_f``/``hi_f`` (min/max of the non-null, non-NaN values, in the column's
    type; NULL when unknown), ``nl_f`` (nulls) and ``nn_f`` (NaNs; NULL when
    unknown or not a float column).
    """
    if isinstance(node, Always):
        return "TRUE"
    if isinstance(node, Conj):
        joiner = " AND " if node.and_ else " OR "
        return "(" + joiner.join(may_match_sql(k, types) for k in node.children) + ")"
    f = node.field_id
    nulls, nans = f"coalesce(nl_{f}, 0)", f"coalesce(nn_{f}, 0)"
    floating = pa.types.is_floating(types[f])
    if isinstance(node, NullCheck):
        if node.kind == "null":
            return f"coalesce(nl_{f} < n, TRUE)" if node.negated else f"coalesce(nl_{f} > 0, TRUE)"
        if node.negated:
            return f"(n - {nulls} - {nans} > 0)"
        return f"coalesce(nn_{f} > 0, TRUE)" if floating else "TRUE"
    v, lo, hi = f"({node.value})", f"lo_{f}", f"hi_{f}"
    ranges = {
        "=": f"{lo} <= {v} AND {hi} >= {v}",
        "<>": f"NOT ({lo} = {v} AND {hi} = {v})",
        "<": f"{lo} < {v}",
        "<=": f"{lo} <= {v}",
        ">": f"{hi} > {v}",
        ">=": f"{hi} >= {v}",
    }
    # Values other than NaN lie in [lo, hi]; DuckDB orders NaN above every number.
    out = f"(n - {nulls} - {nans} > 0 AND coalesce({ranges[node.op]}, TRUE))"
    if floating:
        t = duckdb_type(types[f])
        out += (
            f" OR (coalesce(nn_{f} > 0, TRUE) AND coalesce(CAST('NaN' AS {t}) {node.op} {v}, TRUE))"
        )
    return f"({out})"


def run_prune(con: duckdb.DuckDBPyConnection, stats: pa.Table, condition: str) -> pa.BooleanArray:
    """Evaluate ``condition`` (from `may_match_sql`) over each row of ``stats``, in order."""
    con.register("__lakever_stats", stats)
    try:
        out = con.sql(f"SELECT ({condition}) AS m FROM __lakever_stats").to_arrow_table()
    finally:
        con.unregister("__lakever_stats")
    column = out.column("m").combine_chunks()
    mask: pa.BooleanArray = column.fill_null(True)
    return mask
