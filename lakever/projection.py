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

from lakever._types import SchemaMode
from lakever.errors import SchemaMismatch
from lakever.evolution import fits
from lakever.schema import field_id, normalize_type, same_logical, strip_field, type_name

__all__ = ["Plan", "conform", "plan", "project"]

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
                parts.append(f"column {name!r} is {got} in the data but {exp} in the dataset")
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
                col = col.cast(f.type)
        else:  # merge: an exact widening, struct fields matched by name
            col = col.cast(normalize_type(have.type))
            (p,) = plan([pa.field(f.name, col.type)], [f], by="name")
            col = pa.chunked_array([_apply(c, p) for c in col.chunks], type=p.target.type)
            col = col.cast(f.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=target)
