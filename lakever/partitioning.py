"""Partitioning: splitting written rows by column values or time transforms.

``partition_by=["category", lakever.day("ts")]`` writes each fragment with rows of
one partition only (Iceberg's hidden partitioning: readers never see a partition
column, they filter on ``ts`` and fragments are skipped). Every fragment records
its own partition values, self-described by field id and transform, so changing
the partitioning later (partition evolution) affects only new fragments and
readers need no spec to interpret old ones.

Transform values (as Iceberg): identity = the value (in manifest-stats encoding);
``year``/``month``/``day``/``hour`` = years/months/days/hours since 1970-01-01 UTC.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakever.errors import InvalidArgument
from lakever.schema import iter_field_ids

__all__ = [
    "PartitionField",
    "SortField",
    "Transform",
    "day",
    "hour",
    "identity",
    "month",
    "year",
]

TransformKind = Literal["identity", "year", "month", "day", "hour"]
_TIME = ("year", "month", "day", "hour")
_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class Transform:
    """A partition transform of a column: ``lakever.day("ts")`` and friends."""

    column: str
    kind: TransformKind = "identity"

    def __repr__(self) -> str:
        return f"{self.kind}({self.column!r})"


def identity(column: str) -> Transform:
    """Partition by the column's values (same as passing the column name)."""
    return Transform(column, "identity")


def year(column: str) -> Transform:
    """Partition a date/timestamp column by year (UTC)."""
    return Transform(column, "year")


def month(column: str) -> Transform:
    """Partition a date/timestamp column by month (UTC)."""
    return Transform(column, "month")


def day(column: str) -> Transform:
    """Partition a date/timestamp column by day (UTC)."""
    return Transform(column, "day")


def hour(column: str) -> Transform:
    """Partition a timestamp column by hour (UTC)."""
    return Transform(column, "hour")


@dataclass(frozen=True, slots=True)
class PartitionField:
    """One field of a partition spec, as stored: the source field id and the transform."""

    field_id: int
    transform: TransformKind
    #: Display name used in fragment paths, e.g. ``category`` or ``ts_day``.
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"field_id": self.field_id, "transform": self.transform, "name": self.name}

    @staticmethod
    def from_json(j: Mapping[str, Any]) -> PartitionField:
        kind = j["transform"]
        if kind not in ("identity", *_TIME):
            raise ValueError(f"unknown partition transform {kind!r}")
        return PartitionField(int(j["field_id"]), kind, str(j["name"]))


@dataclass(frozen=True, slots=True)
class SortField:
    """A column rows are clustered by within each fragment."""

    field_id: int
    descending: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"field_id": self.field_id, "descending": self.descending}

    @staticmethod
    def from_json(j: Mapping[str, Any]) -> SortField:
        return SortField(int(j["field_id"]), bool(j.get("descending", False)))


def _partitionable(t: pa.DataType, kind: TransformKind) -> bool:
    if kind == "identity":
        return (
            pa.types.is_integer(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_boolean(t)
            or pa.types.is_date32(t)
            or pa.types.is_timestamp(t)
        )
    if kind == "hour":
        return pa.types.is_timestamp(t)
    return pa.types.is_timestamp(t) or pa.types.is_date32(t)


def resolve_spec(
    partition_by: Sequence[str | Transform], schema: pa.Schema
) -> tuple[PartitionField, ...]:
    """Check ``partition_by`` against a schema (with field ids); return the stored spec."""
    if isinstance(partition_by, str | Transform):
        partition_by = [partition_by]
    ids = {f.name: (fid, f) for fid, f in iter_field_ids(schema)}
    out: list[PartitionField] = []
    for item in partition_by:
        t = Transform(item) if isinstance(item, str) else item
        if not isinstance(t, Transform):
            raise InvalidArgument(
                f"partition_by takes column names or lakever.day(...)/hour(...)/month(...)/"
                f"year(...), got {item!r}"
            )
        if t.column not in ids:
            raise InvalidArgument(
                f"cannot partition by {t!r}: no column {t.column!r}; columns are {schema.names}"
            )
        fid, field = ids[t.column]
        if not _partitionable(field.type, t.kind):
            raise InvalidArgument(
                f"cannot partition by {t!r}: column {t.column!r} is {field.type}; identity "
                "takes integers, strings, booleans, dates and timestamps, year/month/day take "
                "dates and timestamps, hour takes timestamps"
            )
        name = t.column if t.kind == "identity" else f"{t.column}_{t.kind}"
        pf = PartitionField(fid, t.kind, name)
        if any(p.field_id == fid and p.transform == t.kind for p in out):
            raise InvalidArgument(f"{t!r} appears twice in partition_by")
        out.append(pf)
    return tuple(out)


def resolve_sort(sort_by: Sequence[str] | str, schema: pa.Schema) -> tuple[SortField, ...]:
    """``sort_by=["id", "-ts"]``: names, a leading ``-`` for descending."""
    if isinstance(sort_by, str):
        sort_by = [sort_by]
    ids = {f.name: fid for fid, f in iter_field_ids(schema)}
    out = []
    for name in sort_by:
        if not isinstance(name, str):
            raise InvalidArgument(f"sort_by takes column names, got {name!r}")
        desc = name.startswith("-")
        col = name[1:] if desc else name
        if col not in ids:
            raise InvalidArgument(f"cannot sort by {col!r}: columns are {schema.names}")
        out.append(SortField(ids[col], desc))
    return tuple(out)


# ------------------------------------------------------------------ computing values


def _epoch_ticks(col: Any) -> tuple[Any, Any, int]:
    """(int64 ticks since epoch, null mask, ticks per second) of a timestamp column."""
    t: Any = col.type
    naive = col.cast(pa.timestamp(t.unit)) if t.tz is not None else col
    ints = naive.cast(pa.int64())
    mask = ints.is_null().to_numpy(zero_copy_only=False)
    values = pc.fill_null(ints, 0).to_numpy(zero_copy_only=False)
    return values, mask, _UNIT[t.unit]


def _time_values(col: Any, kind: TransformKind) -> Any:
    t: Any = col.type
    dates: Any
    if pa.types.is_date32(t):
        days = col.cast(pa.int32())
        mask = days.is_null().to_numpy(zero_copy_only=False)
        values = pc.fill_null(days, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if kind == "day":
            return pa.array(values, pa.int64(), mask=mask)
        dates = col.cast(pa.date32())
    else:
        ticks, mask, per_s = _epoch_ticks(col)
        if kind in ("day", "hour"):
            width = per_s * (86_400 if kind == "day" else 3_600)
            return pa.array(np.floor_divide(ticks, width), pa.int64(), mask=mask)
        naive = col.cast(pa.timestamp(t.unit)) if t.tz is not None else col
        dates = naive
    years = pc.fill_null(pc.year(dates), 1970).to_numpy(zero_copy_only=False).astype(np.int64)
    if kind == "year":
        return pa.array(years - 1970, pa.int64(), mask=mask)
    months = pc.fill_null(pc.month(dates), 1).to_numpy(zero_copy_only=False).astype(np.int64)
    return pa.array((years - 1970) * 12 + months - 1, pa.int64(), mask=mask)


def _key_column(table: pa.Table, spec_field: PartitionField, name: str) -> Any:
    col = table.column(name)
    if spec_field.transform == "identity":
        return col.combine_chunks()
    return _time_values(col, spec_field.transform)


def _names_by_id(table: pa.Table) -> dict[int, str]:
    return {fid: f.name for fid, f in iter_field_ids(table.schema)}


def _stat_encode(value: Any, t: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        delta = value - datetime(1970, 1, 1)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros * _UNIT[t.unit] // 1_000_000
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days
    return value


def _identity_value(scalar: Any, t: Any) -> Any:
    """An identity partition value in manifest-stats encoding."""
    if pa.types.is_timestamp(t):
        # The ticks themselves: a Python datetime holds microseconds, not nanoseconds.
        return scalar.cast(pa.int64()).as_py()
    return _stat_encode(scalar.as_py(), t)


def split(
    table: pa.Table, spec: Sequence[PartitionField], sort: Sequence[SortField]
) -> Iterator[tuple[list[dict[str, Any]] | None, pa.Table]]:
    """Split conformed rows into (partition record, rows) groups, each sorted by ``sort``.

    Groups come in order of first appearance; rows keep their order within a group
    unless ``sort`` is given.
    """
    names = _names_by_id(table)
    sort_keys: list[tuple[str, Literal["ascending", "descending"]]] = [
        (names[s.field_id], "descending" if s.descending else "ascending") for s in sort
    ]

    def ordered(t: pa.Table) -> pa.Table:
        return t.sort_by(sort_keys) if sort_keys and t.num_rows > 1 else t

    if not spec:
        yield None, ordered(table)
        return
    keys = {f"__p{i}": _key_column(table, f, names[f.field_id]) for i, f in enumerate(spec)}
    keyed = pa.table({**keys, "__row": pa.array(np.arange(table.num_rows), pa.int64())})
    groups = keyed.group_by(list(keys), use_threads=False).aggregate([("__row", "list")])
    for g in range(groups.num_rows):
        rows = groups.column("__row_list")[g].values
        values = [groups.column(k)[g] for k in keys]
        record = []
        for f, v in zip(spec, values, strict=True):
            t = table.schema.field(names[f.field_id]).type
            value = _identity_value(v, t) if f.transform == "identity" else v.as_py()
            record.append({"field_id": f.field_id, "transform": f.transform, "value": value})
        yield record, ordered(table.take(rows))


def directory(record: Sequence[Mapping[str, Any]] | None, spec: Sequence[PartitionField]) -> str:
    """Hive-style subdirectory for a partition, e.g. ``category=click/ts_day=2026-11-01``."""
    if not record:
        return ""
    names = {(f.field_id, f.transform): f.name for f in spec}
    parts = []
    for item in record:
        name = names.get((item["field_id"], item["transform"]), f"f{item['field_id']}")
        parts.append(f"{quote(name, safe='')}={quote(_display(item), safe='')}")
    return "/".join(parts)


def _display(item: Mapping[str, Any]) -> str:
    v = item["value"]
    if v is None:
        return "__NULL__"
    kind = item["transform"]
    if kind == "day":
        return (date(1970, 1, 1) + timedelta(days=v)).isoformat()
    if kind == "hour":
        return (datetime(1970, 1, 1) + timedelta(hours=v)).strftime("%Y-%m-%d-%H")
    if kind == "month":
        return f"{1970 + v // 12:04d}-{v % 12 + 1:02d}"
    if kind == "year":
        return f"{1970 + v:04d}"
    return str(v)


# ---------------------------------------------------------------------- pruning


def _range_ticks(kind: str, v: int, t: pa.DataType) -> tuple[int, int]:
    """The [first, last] tick (in ``t``'s encoding) covered by transform value ``v``."""
    if kind == "day":
        lo_d, hi_d = v, v
        lo_dt = datetime(1970, 1, 1) + timedelta(days=v)
        hi_dt = lo_dt + timedelta(days=1)
    elif kind == "hour":
        lo_dt = datetime(1970, 1, 1) + timedelta(hours=v)
        hi_dt = lo_dt + timedelta(hours=1)
        lo_d = hi_d = 0
    else:
        y, m = (1970 + v, 1) if kind == "year" else (1970 + v // 12, v % 12 + 1)
        lo_dt = datetime(y, m, 1)
        if kind == "year":
            hi_dt = datetime(y + 1, 1, 1)
        else:
            hi_dt = lo_dt + timedelta(days=calendar.monthrange(y, m)[1])
        lo_d = (lo_dt.date() - date(1970, 1, 1)).days
        hi_d = (hi_dt.date() - date(1970, 1, 1)).days - 1
    if pa.types.is_date32(t):
        return lo_d, hi_d
    lo = _stat_encode(lo_dt, t)
    hi = _stat_encode(hi_dt, t) - 1
    return lo, hi


def partition_stats(
    record: Sequence[Mapping[str, Any]] | None, types: Mapping[int, pa.DataType], num_rows: int
) -> dict[int, dict[str, Any]]:
    """Stats implied by a fragment's partition values alone (for partition pruning)."""
    out: dict[int, dict[str, Any]] = {}
    for item in record or ():
        fid = int(item["field_id"])
        t = types.get(fid)
        if t is None:
            continue
        v = item["value"]
        if v is None:
            out[fid] = {"nulls": num_rows}
            continue
        if item["transform"] == "identity":
            lo = hi = v
        else:
            if not (pa.types.is_timestamp(t) or pa.types.is_date32(t)):
                continue
            lo, hi = _range_ticks(str(item["transform"]), int(v), t)
        prev = out.get(fid)
        if prev is not None and "min" in prev:  # two transforms of one column: intersect
            lo, hi = max(lo, prev["min"]), min(hi, prev["max"])
        out[fid] = {"nulls": 0, "min": lo, "max": hi}
    return out


def spec_json(spec: Iterable[PartitionField]) -> list[dict[str, Any]]:
    return [f.to_json() for f in spec]
