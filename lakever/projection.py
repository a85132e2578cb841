"""Projections: turning Arrow data of one schema into another, field by field.

One mechanism, two uses:

* reading: a fragment written under an older schema is read through the
  snapshot's schema with fields matched by **field id**: a renamed field comes
  back under its new name, a widened one is cast, an added one is null, a
  dropped one is not read at all (`plan` with ``by="id"``, then `project`);
* writing: incoming data is conformed to the dataset schema with fields matched
  by **name** (`conform`), which is where ``schema_mode`` decides what is allowed.

Plans are pure values computed from two schemas; applying one touches only the
Arrow arrays in memory, never files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from lakever._lru import Lru
from lakever._types import SchemaMode
from lakever.errors import SchemaMismatch
from lakever.evolution import fits
from lakever.schema import field_id, normalize_type, same_logical, strip_field, type_name

__all__ = ["Plan", "cast_exact", "check_fits", "conform", "plan", "project"]

_Data = TypeVar("_Data", pa.Table, pa.RecordBatch)

# pyarrow-stubs type the nested-array constructors' ``type=`` overloads too narrowly
# for types known only at run time: call them untyped.
_ARRAYS: Any = pa


@dataclass(frozen=True, slots=True)
class Plan:
    """How to produce one target field from a source."""

    #: The field to produce (no field-id metadata).
    target: pa.Field[Any]
    #: Index of the source field among its parent's fields; None: the field is all null.
    source: int | None
    #: Plans of the children: struct fields, a list's element, a map's key and value.
    children: tuple[Plan, ...]
    #: The source already has exactly the target's type: use it as it is.
    identity: bool


def plan(
    sources: Sequence[pa.Field[Any]],
    targets: Sequence[pa.Field[Any]],
    *,
    by: Literal["id", "name"],
) -> tuple[Plan, ...]:
    """Plan each target field from the source field with the same field id (or name)."""

    def key(f: pa.Field[Any]) -> int | str | None:
        return field_id(f) if by == "id" else f.name

    index = {key(f): i for i, f in enumerate(sources) if key(f) is not None}
    out = []
    for t in targets:
        i = index.get(key(t))
        out.append(_plan_field(None if i is None else sources[i], i, t, by))
    return tuple(out)


def _plan_field(
    src: pa.Field[Any] | None,
    index: int | None,
    dst: pa.Field[Any],
    by: Literal["id", "name"],
) -> Plan:
    target = strip_field(dst)
    if src is None:
        return Plan(target, None, (), identity=False)
    if strip_field(src).type == target.type:
        return Plan(target, index, (), identity=True)
    s, d = src.type, dst.type
    kids: tuple[Plan, ...] = ()
    if pa.types.is_struct(d) and pa.types.is_struct(s):
        kids = plan(list(s), list(d), by=by)
    elif _is_list(d) and _is_list(s):
        kids = (_plan_field(s.value_field, 0, d.value_field, by),)
    elif pa.types.is_map(d) and pa.types.is_map(s):
        kids = (
            _plan_field(s.key_field, 0, d.key_field, by),
            _plan_field(s.item_field, 1, d.item_field, by),
        )
    return Plan(target, index, kids, identity=False)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _mask(arr: pa.Array[Any]) -> pa.Array[Any] | None:
    return arr.is_null() if arr.null_count else None


def _rebased(arr: Any) -> tuple[pa.Array[Any], int, int]:
    """Offsets of a (possibly sliced) list or map array, starting at 0, and the value range."""
    offsets = arr.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, offsets[0]), start, end


def _apply(arr: Any, p: Plan) -> Any:
    """Return ``arr`` turned into ``p.target``'s type."""
    t = p.target.type
    if p.identity:
        return arr
    if len(arr) == 0:
        return pa.array([], type=t)
    if pa.types.is_struct(t):
        kids = [
            _apply(arr.field(c.source), c)
            if c.source is not None
            else pa.nulls(len(arr), c.target.type)
            for c in p.children
        ]
        return _ARRAYS.StructArray.from_arrays(
            kids, fields=[c.target for c in p.children], mask=_mask(arr)
        )
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
        values = _apply(arr.values.slice(arr.offset * size, len(arr) * size), p.children[0])
        return _ARRAYS.FixedSizeListArray.from_arrays(values, type=t, mask=_mask(arr))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets, start, end = _rebased(arr)
        values = _apply(arr.values.slice(start, end - start), p.children[0])
        if pa.types.is_list(t):
            return _ARRAYS.ListArray.from_arrays(offsets, values, type=t, mask=_mask(arr))
        return _ARRAYS.LargeListArray.from_arrays(
            offsets.cast(pa.int64()), values, type=t, mask=_mask(arr)
        )
    if pa.types.is_map(t):
        offsets, start, end = _rebased(arr)
        keys = _apply(arr.keys.slice(start, end - start), p.children[0])
        items = _apply(arr.items.slice(start, end - start), p.children[1])
        return _ARRAYS.MapArray.from_arrays(offsets, keys, items, type=t, mask=_mask(arr))
    return arr.cast(t)


def project(data: _Data, source: pa.Schema, plans: Sequence[Plan], out: pa.Schema) -> _Data:
    """Produce ``out`` from ``data`` (which holds the source columns ``plans`` refer to by name).

    ``source`` is the schema the plans' source indexes refer to; ``data`` may hold
    only the columns the plans read.
    """
    n = data.num_rows
    cols: list[Any] = []
    for p in plans:
        if p.source is None:
            nulls = pa.nulls(n, p.target.type)
            cols.append(nulls if isinstance(data, pa.RecordBatch) else pa.chunked_array([nulls]))
            continue
        col = data.column(source.field(p.source).name)
        if p.identity:
            cols.append(col)
        elif isinstance(col, pa.ChunkedArray):
            cols.append(pa.chunked_array([_apply(c, p) for c in col.chunks], type=p.target.type))
        else:
            cols.append(_apply(col, p))
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(cols, schema=out)
    return pa.Table.from_arrays(cols, schema=out)


# ----------------------------------------------------------------------- writing


def _hints(mode: SchemaMode, wants: set[str]) -> str:
    out = ""
    if "add" in wants and mode == "strict":
        out += " Or pass schema_mode='add' to add the new columns to the schema."
    if "merge" in wants and mode != "merge":
        out += " Or pass schema_mode='merge' to widen compatible column types."
    return out


def conform(
    table: pa.Table, target: pa.Schema, *, what: str, mode: SchemaMode = "strict"
) -> pa.Table:
    """Return ``table`` in exactly the ``target`` schema, or raise SchemaMismatch.

    Accepted in every mode: a different column order, representation-only type
    differences (string vs large_string vs string_view, dictionary encoding,
    list vs large_list) and a nullable input column without nulls for a
    non-nullable target column. Modes "add" and "merge" also accept a missing
    nullable column (written as nulls); "merge" also accepts a narrower type
    that widens exactly to the target's (cast up, struct fields by name). Any
    other difference is reported, every column at once.
    """
    names = table.schema.names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise SchemaMismatch(
            f"{what}: duplicate column names {dupes}; rename them so each is unique",
            differences=[(n, None, "duplicate") for n in dupes],
        )
    by_name = {f.name: f for f in table.schema}
    differences: list[tuple[str, str | None, str | None]] = []
    wants: set[str] = set()
    for f in target:
        have = by_name.get(f.name)
        if have is None:
            if not (mode != "strict" and f.nullable):
                differences.append((f.name, type_name(f.type), None))
        elif not same_logical(have.type, f.type):
            if mode == "merge" and fits(have.type, f.type):
                continue
            differences.append((f.name, type_name(f.type), type_name(have.type)))
            if fits(have.type, f.type) or fits(f.type, have.type):
                wants.add("merge")
    for name in names:
        if name not in target.names:
            differences.append((name, None, type_name(by_name[name].type)))
            wants.add("add")
    if differences:
        parts = []
        for name, exp, got in differences:
            if got is None:
                parts.append(f"column {name!r} ({exp}) is missing from the data")
            elif exp is None:
                parts.append(f"column {name!r} ({got}) is not in the dataset schema")
            else:
                parts.append(
                    f"column {name!r} is {got} in the data but {exp} in the dataset"
                    + _zone_hint(by_name[name].type, target.field(name).type)
                )
        raise SchemaMismatch(
            f"{what}: the data does not match the dataset schema: "
            + "; ".join(parts)
            + ". Select and cast the columns to the dataset schema (Dataset.schema) first."
            + _hints(mode, wants),
            differences=differences,
        )
    columns: list[pa.ChunkedArray[Any]] = []
    for f in target:
        if f.name not in by_name:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, f.type)]))
            continue
        col = table.column(f.name)
        if not f.nullable and col.null_count:
            raise SchemaMismatch(
                f"{what}: column {f.name!r} is declared non-nullable but the data has "
                f"{col.null_count} null value(s); fill or drop them first",
                differences=[(f.name, type_name(f.type), "contains nulls")],
            )
        have = by_name[f.name]
        if same_logical(have.type, f.type):
            if col.type != f.type:
                col = cast_exact(col, f.type, column=f.name, what=what)
        else:  # merge: an exact widening, struct fields matched by name
            try:
                widened = col.cast(normalize_type(have.type))
                (p,) = plan([pa.field(f.name, widened.type)], [f], by="name")
                chunks = [_apply(c, p) for c in widened.chunks]
                col = pa.chunked_array(chunks, type=p.target.type).cast(f.type)
            except pa.ArrowInvalid as exc:  # a timestamp unit or width inside, say, a struct
                raise _inexact(col, f.type, f.name, what, exc) from exc
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=target)


# --------------------------------------------------------------- exact conversions


def _zone_hint(have: pa.DataType, want: pa.DataType) -> str:
    """Why two timestamp types with time zones differ, and the cast that fixes it."""
    if not (pa.types.is_timestamp(have) and pa.types.is_timestamp(want)) or not (
        have.tz and want.tz
    ):
        return ""
    return (
        f" (time zones {have.tz!r} and {want.tz!r} are different zones; the instants are the "
        "same, so if the zone is only how they were shown, as in DuckDB's results, cast the "
        f"column to timestamp[{want.unit}, tz={want.tz}])"
    )


def cast_exact(col: pa.ChunkedArray[Any], t: pa.DataType, *, column: str, what: str) -> Any:
    """``col`` cast to ``t`` (a representation of the same values, see `same_logical`).

    Raises:
        SchemaMismatch: a value ``t`` cannot hold exactly (a timestamp, time or
            duration finer than ``t``'s unit or out of its range, a date64 that is not
            a whole day, binary of another width), naming the column and the first
            such value.
    """
    try:
        return col.cast(t)
    except pa.ArrowInvalid as exc:
        found = _first_in(col, t, column)
        if found is not None:
            raise _inexact(col, t, column, what, exc, found) from exc
        # Arrow casts every child value of a sliced list, also those outside the slice:
        # retry on a compact copy before blaming the data.
        try:
            return pa.chunked_array([_compact(c) for c in col.chunks], type=col.type).cast(t)
        except pa.ArrowInvalid:
            raise _inexact(col, t, column, what, exc) from exc


def _compact(arr: Any) -> Any:
    """A copy of ``arr`` whose buffers hold only its own values."""
    return arr.take(pa.array(range(len(arr)), pa.int64()))


def _first_in(
    col: pa.ChunkedArray[Any], t: pa.DataType, column: str
) -> tuple[str, str, str, str] | None:
    """The first value of any chunk ``t`` cannot hold (see `_first_inexact`)."""
    return next((hit for c in col.chunks if (hit := _first_inexact(c, t, column))), None)


def _inexact(
    col: pa.ChunkedArray[Any],
    t: pa.DataType,
    column: str,
    what: str,
    exc: Exception,
    found: tuple[str, str, str, str] | None = None,
) -> SchemaMismatch:
    """The error for data ``t`` cannot hold: the first such value, or Arrow's reason."""
    found = found or _first_in(col, t, column)
    expected = type_name(t)
    if found is None:
        return SchemaMismatch(
            f"{what}: column {column!r} ({type_name(col.type)}) cannot be stored as "
            f"{expected}: {exc}. Cast it to the dataset schema (Dataset.schema) first",
            differences=[(column, expected, type_name(col.type))],
        )
    path, value, why, advice = found
    return SchemaMismatch(
        f"{what}: column {path!r} holds {value}, which {why}; nothing was written. {advice} "
        f"(the dataset keeps {expected})",
        differences=[(column, expected, f"{type_name(col.type)} value {value}")],
    )


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _first_inexact(arr: Any, t: Any, path: str) -> tuple[str, str, str, str] | None:
    """The first value of ``arr`` that ``t`` cannot hold exactly: its path, the value as
    text, why, and what to do."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    s = arr.type
    if pa.types.is_struct(s) and pa.types.is_struct(t):
        children = dict(zip([f.name for f in s], arr.flatten(), strict=True))
        for f in t:
            child = children.get(f.name)
            if child is not None and (hit := _first_inexact(child, f.type, f"{path}.{f.name}")):
                return hit
        return None
    if _is_list(s) and _is_list(t):
        return _first_inexact(pc.list_flatten(arr), t.value_type, f"{path}.element")
    if pa.types.is_map(s) and pa.types.is_map(t):
        entries = pc.list_flatten(arr)
        return _first_inexact(entries.field(0), t.key_type, f"{path}.key") or _first_inexact(
            entries.field(1), t.item_type, f"{path}.value"
        )
    try:
        arr.cast(t)
        return None
    except pa.ArrowInvalid:
        pass
    advice = "Convert such values yourself, or keep them in a new column of their own type"
    raw = False
    if pa.types.is_fixed_size_binary(t):
        bad = pc.not_equal(pc.binary_length(arr), pa.scalar(t.byte_width, pa.int32()))
        why = f"is not {t.byte_width} bytes long, as every {type_name(t)} value is"
        advice = "Pad or trim such values, or keep them in a new binary column"
    else:
        bad = pc.not_equal(arr.cast(t, safe=False).cast(s, safe=False), arr)
        why = f"{type_name(t)} cannot hold exactly"
        unit, source_unit = getattr(t, "unit", None), getattr(s, "unit", None)
        if unit in _UNIT_NS and source_unit in _UNIT_NS:
            if _UNIT_NS[unit] < _UNIT_NS[source_unit]:
                why += f" (it is out of the range of unit {unit!r})"
                raw = True
            else:
                why += f" (it would lose precision below 1 {unit})"
                advice = (
                    "Round such values to the column's unit first, or keep them in a new column"
                )
        elif pa.types.is_date64(s):
            why += " (it is not a whole day)"
    index = pc.index(pc.fill_null(bad, False), True).as_py()
    if index < 0:
        return None
    return path, _show(arr, index, raw=raw), why, advice


def _show(arr: Any, i: int, *, raw: bool = False) -> str:
    """Value ``i`` of ``arr`` as text (``raw``: a temporal value as its integer and unit)."""
    one = arr.slice(i, 1)
    t = one.type
    unit = "ms" if pa.types.is_date64(t) else getattr(t, "unit", None)
    if raw or pa.types.is_duration(t) or pa.types.is_date64(t):
        return f"{one.cast(pa.int64(), safe=False)[0].as_py()} {unit}"
    if pa.types.is_timestamp(t) or pa.types.is_time(t):
        return str(one.cast(pa.string())[0].as_py())
    text = repr(one[0].as_py())
    return text if len(text) <= 60 else text[:57] + "..."


#: Data schemas `conform` accepted for a target schema and mode, by the target's identity.
_FITS: Lru[tuple[int, str], tuple[pa.Schema, tuple[pa.Schema, ...]]] = Lru(64)


def check_fits(data_schema: pa.Schema, target: pa.Schema, *, what: str, mode: SchemaMode) -> None:
    """Raise what `conform` raises for rows of ``data_schema`` written under ``target``.

    The answer depends on the two schemas only (metadata included); accepted pairs are
    remembered, so a stream of small appends checks its schema once. (Comparing schemas
    is cheap; hashing one is not.)
    """
    key = (id(target), mode)
    hit = _FITS.get(key)
    known = hit[1] if hit is not None and hit[0] is target else ()
    if any(s.equals(data_schema, check_metadata=True) for s in known):
        return
    conform(data_schema.empty_table(), target, what=what, mode=mode)
    _FITS.put(key, (target, (data_schema, *known[:7])))
