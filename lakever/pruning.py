"""Data skipping: which fragments a bound filter may match, decided by DuckDB over statistics.

For the field ids the filter's pruning tree reads (`lakever.expr.prune_columns`),
a statistics relation holds one row per fragment: its row count and, per field,
min/max in the column's current type, null and NaN counts. The condition of
`lakever.expr.may_match_sql` is evaluated over it by DuckDB in one vectorised
query, so a bound is compared with the filter's value exactly as DuckDB compares
a row's value (same type, same cast, same rounding). Conditions that compare integer
columns with integer literals only are computed by Arrow instead (`may_match_arrow`:
both engines compare those exactly), which spares a small delete or read the query.
A fragment is dropped only when the condition is false; a missing statistic is NULL,
which keeps it.

Two sources of statistics are used, in order: the partition values a fragment
records (partition pruning), then the min/max/null/NaN counts of its manifest
entry. Bounds written under an older type are decoded in that type and cast to
the current one (every widening lakever allows is order-preserving).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from lakever.expr import Always, BoundFilter, Compare, Conj, NullCheck, PruneNode
from lakever.format import FragmentEntry, parse_partition
from lakever.fragments import bounded
from lakever.manifests import CLASSES, ManifestData, stat_column, stats_columns
from lakever.partitioning import partition_stats
from lakever.schema import iter_field_ids
from lakever.sql import cursor, duckdb_type

if TYPE_CHECKING:
    import duckdb

__all__ = ["Pruned", "may_match_arrow", "may_match_sql", "prune", "prune_columns", "run_prune"]

#: A fragment's statistics by field id (``{"min", "max", "nulls", "nans"}``).
Stats = Mapping[int, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many fragments there were and survived partition pruning; the ones kept."""

    total: int
    after_partitions: int
    kept: list[FragmentEntry]


def _ticks(t: pa.DataType) -> pa.DataType | None:
    """The integer type a temporal column's bounds are recorded in (None: not temporal)."""
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        return pa.int32() if t.bit_width == 32 else pa.int64()
    return None


def _decode_column(
    raw: pa.Array[Any] | pa.ChunkedArray[Any], t: pa.DataType
) -> pa.Array[Any] | pa.ChunkedArray[Any]:
    """A typed statistics column (`lakever.manifests.CLASSES`) decoded as type ``t``."""
    ticks = _ticks(t)
    if ticks is not None:
        return raw.cast(ticks).cast(t)
    return raw.cast(t)


_CAST_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def _signed_zeros(
    arr: pa.Array[Any] | pa.ChunkedArray[Any], t: pa.DataType, *, low: bool
) -> pa.Array[Any] | pa.ChunkedArray[Any]:
    """`_zero` over a column of bounds of type ``t``."""
    if not pa.types.is_floating(t) or len(arr) == 0:
        return arr
    zero = pa.scalar(-0.0 if low else 0.0, pa.float64()).cast(t)
    out: pa.Array[Any] = pc.if_else(pc.equal(arr, zero).fill_null(False), zero, arr)
    return out


WrittenType = Callable[[str, int], "pa.DataType | None"]


Column: TypeAlias = "pa.Array[Any] | pa.ChunkedArray[Any]"


def _manifest_relation(
    m: ManifestData, fields: Sequence[int], types: Mapping[int, pa.DataType], written: WrittenType
) -> dict[str, pa.ChunkedArray[Any]]:
    """The statistics relation's columns for one manifest (see `_relation`)."""
    few = m.few_entries()
    if few is not None:  # e.g. entries inlined in the snapshot record: no manifest table
        return _stats_relation(
            [e.num_rows for e in few], [e.schema_id for e in few], [e.stats for e in few],
            fields, types, written,
        )  # fmt: skip
    names = set(m.names)
    return _relation(
        m.column("num_rows"),
        m.column("schema_id"),
        lambda name: m.column(name) if name in names else None,
        fields,
        types,
        written,
    )


def _stats_relation(
    n: Sequence[int],
    sids: Sequence[str],
    stats: Sequence[Stats],
    fields: Sequence[int],
    types: Mapping[int, pa.DataType],
    written: WrittenType,
) -> dict[str, pa.ChunkedArray[Any]]:
    """The statistics relation of a few stats dicts, through the same typed columns a
    manifest file holds (`lakever.manifests.stats_columns`); a value no column can hold
    is unknown."""
    columns = stats_columns(stats, lenient=True)
    return _relation(
        pa.array(n, pa.int64()), pa.array(sids, pa.string()), columns.get, fields, types, written
    )


def _relation(
    n: Column,
    sids: Column,
    stat: Callable[[str], Column | None],
    fields: Sequence[int],
    types: Mapping[int, pa.DataType],
    written: WrittenType,
) -> dict[str, pa.ChunkedArray[Any]]:
    """The statistics relation `may_match_sql` reads, computed column by column.

    ``stat`` gives a typed statistics column by name (None: absent). Bounds are decoded
    per schema the fragments were written under (``sids``; few distinct), in that type,
    then cast to the current one; what cannot be cast is unknown.
    """
    count = len(n)
    out: dict[str, Column] = {"n": n}
    unique = [str(sid) for sid in pc.unique(sids).to_pylist()]
    for fid in fields:
        t = types[fid]
        if pa.types.is_float16(t):  # never bounded (`bounded`); Arrow compute and DuckDB
            t = pa.float32()  # have no float16 kernels: unknown bounds as float32
        for key, prefix in (("min", "lo"), ("max", "hi")):
            acc: Column | None = None
            for cls in CLASSES:
                raw = stat(stat_column(fid, key, cls))
                if raw is None:
                    continue
                for sid in unique:
                    wt = written(sid, fid)
                    if wt is None or not bounded(wt):
                        continue
                    mask = None if len(unique) == 1 else _flat(pc.equal(sids, pa.scalar(sid)))
                    try:
                        picked = raw if mask is None else raw.filter(mask)
                        dec = _decode_column(picked, wt).cast(t)
                    except _CAST_ERRORS:
                        continue  # not representable under the current type: unknown
                    if mask is not None:
                        nulls = pa.nulls(count, t)  # type: ignore[call-overload]
                        dec = pc.replace_with_mask(nulls, mask, _flat(dec))
                    acc = dec if acc is None else pc.coalesce(acc, dec)
            if acc is None:
                acc = pa.nulls(count, t)  # type: ignore[call-overload]
            out[f"{prefix}_{fid}"] = _signed_zeros(acc, t, low=key == "min")
        for key, prefix in (("nulls", "nl"), ("nans", "nn")):
            col = stat(stat_column(fid, key))
            out[f"{prefix}_{fid}"] = pa.nulls(count, pa.int64()) if col is None else col
    return {k: _chunked(v) for k, v in out.items()}


def _flat(x: pa.Array[Any] | pa.ChunkedArray[Any]) -> pa.Array[Any]:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def _chunked(x: pa.Array[Any] | pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    return x if isinstance(x, pa.ChunkedArray) else pa.chunked_array([x])


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
    manifests: Sequence[ManifestData],
    bound: BoundFilter,
    types: Mapping[int, pa.DataType],
    schema_of: Callable[[str], pa.Schema],
) -> Pruned:
    """The fragments of ``manifests`` that ``bound`` may match (see the module docstring).

    The work is per column, not per fragment: Python entries are built only for the
    fragments kept.

    Args:
        types: the snapshot's top-level field id -> type.
        schema_of: the schema (with field ids) a fragment was written under.
    """
    total = sum(len(m) for m in manifests)
    usable = {
        fid
        for fid in prune_columns(bound.prune)
        if fid in types and duckdb_type(types[fid]) is not None
    }
    node = _usable(bound.prune, usable)
    if isinstance(node, Always) or not total:
        return Pruned(total, total, [e for m in manifests for e in m.entries()])
    fields = sorted(prune_columns(node))
    cache: dict[tuple[str, int], pa.DataType | None] = {}

    def written(sid: str, fid: int) -> pa.DataType | None:
        key = (sid, fid)
        if key not in cache:
            f = dict(iter_field_ids(schema_of(sid))).get(fid)
            cache[key] = None if f is None else f.type
        return cache[key]

    import duckdb

    for m in manifests:  # one read per manifest file, of the columns pruning reads
        if not m.from_file:
            continue
        m.prefetch(
            ["num_rows", "schema_id", "partition", *(c for f in fields for c in m.stat_names(f))]
        )
    con = cursor()
    try:
        by_partition = _partition_mask(con, manifests, fields, types, node, written)
        parts = [_manifest_relation(m, fields, types, written) for m in manifests]
        relation = pa.Table.from_arrays(
            [pa.chunked_array([c for p in parts for c in p[k].chunks]) for k in parts[0]],
            names=list(parts[0]),
        )
        mask = _evaluate(con, relation, node, types)
    except duckdb.Error:
        # A value DuckDB cannot evaluate (e.g. an out-of-range cast): prune nothing, so
        # evaluating the filter on the rows reports the error exactly as DuckDB would.
        return Pruned(total, total, [e for m in manifests for e in m.entries()])
    finally:
        con.close()
    after = total
    if by_partition is not None:
        after = int(pc.sum(by_partition.cast(pa.int64())).as_py() or 0)
        mask = pc.and_(mask, by_partition)
    kept: list[FragmentEntry] = []
    offset = 0
    for m in manifests:
        rows: list[int] = pc.indices_nonzero(mask.slice(offset, len(m))).to_numpy().tolist()
        kept.extend(m.take(rows))
        offset += len(m)
    return Pruned(total, after, kept)


def _partition_mask(
    con: duckdb.DuckDBPyConnection,
    manifests: Sequence[ManifestData],
    fields: Sequence[int],
    types: Mapping[int, pa.DataType],
    node: PruneNode,
    written: WrittenType,
) -> pa.BooleanArray | None:
    """Which fragments their partition values allow (None: no fragment is partitioned).

    The condition is evaluated once per distinct (partition record, schema) pair.
    """
    if not any(m.partitioned() for m in manifests):
        return None
    # Columns read from files are dictionaries: decode them to concatenate them.
    part = pa.concat_arrays([_flat(m.column("partition").cast(pa.string())) for m in manifests])
    sids = pa.concat_arrays([_flat(m.column("schema_id").cast(pa.string())) for m in manifests])
    joined = pc.binary_join_element_wise(part, sids, "\n")  # type: ignore[call-overload]
    keys = pc.dictionary_encode(joined)
    stats: list[Stats] = []
    key_sids: list[str] = []
    for key in keys.dictionary.to_pylist():
        record, sid = key.rsplit("\n", 1)
        known = {fid: t for fid in fields if (t := written(sid, fid)) is not None}
        # Partition values are recorded in the type the fragment was written under;
        # a one-row stand-in: the condition only asks whether rows can match.
        stats.append(partition_stats(parse_partition(record), known, 1))
        key_sids.append(sid)
    if not stats:
        return None
    columns = _stats_relation([1] * len(stats), key_sids, stats, fields, types, written)
    relation = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    allowed = _evaluate(con, relation, node, types)
    mask = allowed.take(keys.indices).fill_null(True)
    return mask  # type: ignore[return-value]


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


#: A plain integer literal that fits in a BIGINT with room to spare (DuckDB and Arrow
#: both compare it with an integer column exactly).
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _exact_integer(t: pa.DataType) -> bool:
    """An integer column whose every value an int64 holds (not uint64)."""
    return pa.types.is_integer(t) and t != pa.uint64()


def may_match_arrow(
    node: PruneNode, types: Mapping[int, pa.DataType], stats: pa.Table
) -> pa.BooleanArray | None:
    """`may_match_sql`'s condition over ``stats`` computed by Arrow, without a DuckDB
    query (~3 ms, which a one-fragment delete would otherwise spend on pruning), for the
    trees where the two engines agree by construction: every comparison is between an
    integer column (not uint64) and a plain integer literal, and null and NaN checks,
    which compare counts only. None for any other tree: DuckDB evaluates it
    (`run_prune`), so a value is still compared exactly as DuckDB compares a row's.
    """
    try:
        mask = _arrow_condition(node, types, stats)
    except pa.ArrowException:  # e.g. an overflow in the counts: let DuckDB decide
        return None
    if mask is None:
        return None
    # A null (a row count is never null: a manifest with one is corrupt) keeps the fragment.
    out: pa.BooleanArray = _flat(mask).fill_null(True)  # type: ignore[assignment]
    return out


def _arrow_condition(node: PruneNode, types: Mapping[int, pa.DataType], stats: pa.Table) -> Any:
    """`may_match_arrow`'s mask (a boolean column without nulls), or None."""
    if isinstance(node, Conj):
        kids = [_arrow_condition(k, types, stats) for k in node.children]
        if any(k is None for k in kids):
            return None
        out = kids[0]
        for k in kids[1:]:
            out = pc.and_(out, k) if node.and_ else pc.or_(out, k)
        return out
    n: Any = stats.column("n")
    if isinstance(node, Always):
        return pc.is_valid(n)  # n (a row count) is never null
    f = node.field_id
    nulls: Any = stats.column(f"nl_{f}")
    nans: Any = stats.column(f"nn_{f}")
    zero = pa.scalar(0, pa.int64())
    some = pc.greater(
        pc.subtract_checked(pc.subtract_checked(n, nulls.fill_null(0)), nans.fill_null(0)), zero
    )
    if isinstance(node, NullCheck):
        if node.kind == "null":
            known = pc.less(nulls, n) if node.negated else pc.greater(nulls, zero)
            return known.fill_null(True)
        if node.negated:
            return some
        if pa.types.is_floating(types[f]):
            return pc.greater(nans, zero).fill_null(True)
        return pc.is_valid(n)
    if not _exact_integer(types[f]) or not _INTEGER.fullmatch(node.value):
        return None
    v = pa.scalar(int(node.value), pa.int64())
    lo: Any = stats.column(f"lo_{f}")
    hi: Any = stats.column(f"hi_{f}")
    # SQL's three-valued AND/NOT, as in the condition's text; unknown keeps the fragment.
    ranges = {
        "=": lambda: pc.and_kleene(pc.less_equal(lo, v), pc.greater_equal(hi, v)),
        "<>": lambda: pc.invert(pc.and_kleene(pc.equal(lo, v), pc.equal(hi, v))),
        "<": lambda: pc.less(lo, v),
        "<=": lambda: pc.less_equal(lo, v),
        ">": lambda: pc.greater(hi, v),
        ">=": lambda: pc.greater_equal(hi, v),
    }
    return pc.and_(some, ranges[node.op]().fill_null(True))


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    stats: pa.Table,
    node: PruneNode,
    types: Mapping[int, pa.DataType],
) -> pa.BooleanArray:
    """``node``'s condition over ``stats``: by Arrow where it compares exactly as DuckDB
    does (`may_match_arrow`), else by DuckDB (`may_match_sql`, `run_prune`)."""
    mask = may_match_arrow(node, types, stats)
    return run_prune(con, stats, may_match_sql(node, types)) if mask is None else mask


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
