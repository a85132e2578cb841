"""Schemas with stable field ids: assignment, JSON encoding, and conforming data.

Every field (nested ones included) carries a field id, kept in Arrow field
metadata under ``PARQUET:field_id`` so the Parquet writer records it in each
fragment. Ids are assigned by the store, increase monotonically and are never
reused (``last_field_id`` is recorded in every snapshot).

The JSON form (see docs/format.md) is engine-neutral::

    {"fields": [{"id": 1, "name": "id", "nullable": false, "type": "int64"}, ...]}

with nested types as objects: {"type": "list", "element": field},
{"type": "struct", "fields": [...]}, {"type": "map", "key": field, "value": field},
and parameterised ones as {"type": "timestamp", "unit": "us", "tz": "UTC"} etc.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from lakever._lru import Lru, by_identity
from lakever.errors import CorruptMetadata, InvalidArgument
from lakever.format import schema_id

__all__ = [
    "FIELD_ID_KEY",
    "assign_field_ids",
    "check_names",
    "field_id",
    "map_type",
    "name_problems",
    "nested_fields",
    "normalize_type",
    "remembered_schema",
    "same_logical",
    "schema_from_json",
    "schema_to_json",
    "strip_field",
    "strip_field_ids",
    "strip_type_ids",
    "timezone_key",
    "type_name",
]

FIELD_ID_KEY = b"PARQUET:field_id"

_SIMPLE: dict[str, pa.DataType] = {
    "null": pa.null(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date32": pa.date32(),
    "date64": pa.date64(),
}
_SIMPLE_BY_TYPE = {v: k for k, v in _SIMPLE.items()}


def map_type(key: pa.Field[Any], item: pa.Field[Any], keys_sorted: bool) -> pa.DataType:  # noqa: FBT001
    """Build a map type from its key and item fields (metadata kept)."""
    # pyarrow-stubs still spell this argument "key_sorted"; pyarrow itself says keys_sorted.
    return pa.map_(key, item, keys_sorted=keys_sorted)  # type: ignore[call-overload]


def map_leaves(t: pa.DataType, leaf: Callable[[pa.DataType], pa.DataType]) -> pa.DataType:
    """``t`` with every type that is not a struct, list or map replaced by ``leaf(type)``;
    names, nullability and metadata of nested fields kept."""

    def field(f: pa.Field[Any]) -> pa.Field[Any]:
        return f.with_type(map_leaves(f.type, leaf))

    out: pa.DataType
    if pa.types.is_struct(t):
        out = pa.struct([field(f) for f in t])
    elif pa.types.is_map(t):
        out = map_type(field(t.key_field), field(t.item_field), t.keys_sorted)
    elif pa.types.is_fixed_size_list(t):
        out = pa.list_(field(t.value_field), t.list_size)
    elif pa.types.is_large_list(t):
        out = pa.large_list(field(t.value_field))
    elif pa.types.is_list(t):
        out = pa.list_(field(t.value_field))
    else:
        out = leaf(t)
    return out


def narrow_decimal(t: pa.DataType) -> pa.DataType:
    """A ``decimal256`` of at most 38 digits as the ``decimal128`` holding the same values
    (DuckDB and polars read no 256-bit decimal); any other type as it is."""
    if isinstance(t, pa.Decimal256Type) and t.precision <= 38:
        return pa.decimal128(t.precision, t.scale)
    return t


def wide_decimal_columns(schema: pa.Schema) -> list[str]:
    """The columns holding decimals of more than 38 digits (nested ones included), which
    neither DuckDB nor polars can read."""
    found: list[str] = []
    for f in schema:

        def note(t: pa.DataType, name: str = f.name) -> pa.DataType:
            if isinstance(t, pa.Decimal256Type) and t.precision > 38 and name not in found:
                found.append(name)
            return t

        map_leaves(f.type, note)
    return found


def field_id(field: pa.Field[Any]) -> int | None:
    """Return the field id a field carries in its metadata (None: none)."""
    md = field.metadata or {}
    raw = md.get(FIELD_ID_KEY)
    return int(raw) if raw is not None else None


def _with_id(field: pa.Field[Any], type_: pa.DataType, fid: int) -> pa.Field[Any]:
    return pa.field(field.name, type_, field.nullable, metadata={FIELD_ID_KEY: str(fid).encode()})


def normalize_type(t: pa.DataType) -> pa.DataType:
    """Map representation-only variants to the type lakever stores.

    Dictionary encoding is a representation (stored as its value type), and
    string/binary views are stored as their large variants.
    """
    if pa.types.is_dictionary(t):
        return normalize_type(t.value_type)
    if t == pa.string_view():
        return pa.large_string()
    if t == pa.binary_view():
        return pa.large_binary()
    if pa.types.is_list_view(t):
        return pa.list_(normalize_type(t.value_type))
    if pa.types.is_large_list_view(t):
        return pa.large_list(normalize_type(t.value_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vf = t.value_field
        nf = pa.field(vf.name, normalize_type(vf.type), vf.nullable)
        if pa.types.is_list(t):
            return pa.list_(nf)
        if pa.types.is_large_list(t):
            return pa.large_list(nf)
        return pa.list_(nf, t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, normalize_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return map_type(
            pa.field(t.key_field.name, normalize_type(t.key_type), False),
            pa.field(t.item_field.name, normalize_type(t.item_type), t.item_field.nullable),
            t.keys_sorted,
        )
    return t


def assign_field_ids(schema: pa.Schema, *, start: int = 1) -> tuple[pa.Schema, int]:
    """Give every field (depth first) a fresh id; return the schema and the last id used."""
    counter = [start - 1]

    def next_id() -> int:
        counter[0] += 1
        return counter[0]

    def visit(field: pa.Field[Any]) -> pa.Field[Any]:
        fid = next_id()
        return _with_id(field, _assign_type(normalize_type(field.type)), fid)

    def _assign_type(t: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(t):
            return pa.struct([visit(f) for f in t])
        if pa.types.is_list(t):
            return pa.list_(visit(t.value_field))
        if pa.types.is_large_list(t):
            return pa.large_list(visit(t.value_field))
        if pa.types.is_fixed_size_list(t):
            return pa.list_(visit(t.value_field), t.list_size)
        if pa.types.is_map(t):
            return map_type(visit(t.key_field), visit(t.item_field), t.keys_sorted)
        return t

    fields = [visit(f) for f in schema]
    for f in schema:
        _check_supported(f.name, normalize_type(f.type))
    return pa.schema(fields), counter[0]


def _check_supported(name: str, t: pa.DataType) -> None:
    try:
        _type_to_json(t)
    except InvalidArgument as exc:
        raise InvalidArgument(f"column {name!r}: {exc}") from None


def nested_fields(t: pa.DataType) -> list[pa.Field[Any]]:
    """Return the fields nested directly in ``t`` (struct fields, list element, map key/value)."""
    if pa.types.is_struct(t):
        return list(t)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [t.value_field]
    if pa.types.is_map(t):
        return [t.key_field, t.item_field]
    return []


def strip_type_ids(t: pa.DataType) -> pa.DataType:
    """Return ``t`` with the metadata (field ids) of its nested fields removed."""
    if pa.types.is_struct(t):
        return pa.struct([strip_field(f) for f in t])
    if pa.types.is_list(t):
        return pa.list_(strip_field(t.value_field))
    if pa.types.is_large_list(t):
        return pa.large_list(strip_field(t.value_field))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(strip_field(t.value_field), t.list_size)
    if pa.types.is_map(t):
        return map_type(strip_field(t.key_field), strip_field(t.item_field), t.keys_sorted)
    return t


def strip_field(f: pa.Field[Any]) -> pa.Field[Any]:
    """Return ``f`` without metadata, nested fields included."""
    return pa.field(f.name, strip_type_ids(f.type), f.nullable)


def strip_field_ids(schema: pa.Schema) -> pa.Schema:
    """Return the schema users see: same names, types and nullability, no metadata."""
    return pa.schema([strip_field(f) for f in schema])


# ----------------------------------------------------------------- names engines accept

#: Column names lakever's own SQL gives its helper columns (row indexes, file names...).
_RESERVED_PREFIX = "__lakever"


def _fold(name: str) -> str:
    """A name as DuckDB compares identifiers: ASCII letters case-insensitively, the rest as is."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _level_problems(names: list[str], parent: str | None) -> list[str]:
    """Problems among the names of one level: the columns (``parent`` None) or a struct's
    fields."""

    def label(name: str) -> str:
        return f"column {name!r}" if parent is None else f"field {name!r} of {parent!r}"

    out = []
    for name in names:
        if not name:
            out.append(f"{label(name)} has an empty name")
        elif any(unicodedata.category(c) == "Cc" for c in name):
            out.append(f"{label(name)} contains a control character (NUL, newline, tab, ...)")
        elif parent is None and _fold(name).startswith(_RESERVED_PREFIX):
            out.append(f"{label(name)} is reserved by lakever's SQL (names '__lakever...')")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.get(_fold(name))
        if other is None:
            seen[_fold(name)] = name
        elif other == name:
            out.append(f"{label(name)} appears twice")
        else:
            out.append(f"{label(other)} and {label(name)} differ only by case")
    return out


def _type_problems(t: pa.DataType, path: str) -> list[str]:
    if pa.types.is_struct(t):
        if t.num_fields == 0:
            return [f"struct {path!r} has no fields (Parquet cannot store an empty struct)"]
        out = _level_problems([f.name for f in t], path)
        for f in t:
            out += _type_problems(f.type, f"{path}.{f.name}")
        return out
    if pa.types.is_map(t):
        return _type_problems(t.key_type, f"{path}.key") + _type_problems(
            t.item_type, f"{path}.value"
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _type_problems(t.value_type, f"{path}.element")
    if pa.types.is_dictionary(t):
        return _type_problems(t.value_type, path)
    return []


def name_problems(schema: pa.Schema) -> list[str]:
    """Why DuckDB (and so SQL, filters, row-level changes) could not use ``schema``'s names.

    Refused: no column at all; an empty name; a control character (NUL, newline,
    ...) in a name; two names of one level (the columns, or one struct's fields) that
    are equal, or equal ignoring ASCII case (DuckDB's identifiers are
    case-insensitive); a struct without fields (Parquet cannot store one); and the
    column names lakever's SQL reserves (``__lakever...``).
    List elements and map keys/values are named by their position, so their names
    do not matter.
    """
    if len(schema) == 0:
        return ["the data has no columns (a dataset needs at least one)"]
    out = _level_problems(schema.names, None)
    for f in schema:
        out += _type_problems(f.type, f.name)
    return out


def check_names(schema: pa.Schema, *, before: pa.Schema | None = None, what: str) -> None:
    """Refuse a schema whose names DuckDB cannot use (see `name_problems`).

    Only problems ``before`` (the schema the change starts from) did not have are
    refused, so a dataset written before this check stays writable.

    Raises:
        InvalidArgument: naming every refused name and why.
    """
    if before is not None and schema.equals(before):
        return  # the same names and types: the same problems, all known
    problems = name_problems(schema)
    if before is not None:
        known = set(name_problems(before))
        problems = [p for p in problems if p not in known]
    if problems:
        raise InvalidArgument(
            f"{what} is refused: " + "; ".join(problems) + ". DuckDB (SQL, filters, row-level "
            "changes) needs at least one column and one field per struct, and names that are "
            "non-empty, free of control characters and unique ignoring case: rename them "
            "first (e.g. table.rename_columns(...))"
        )


# --------------------------------------------------------------------- JSON codec


def _type_to_json(t: pa.DataType) -> Any:
    if t in _SIMPLE_BY_TYPE:
        return _SIMPLE_BY_TYPE[t]
    if pa.types.is_timestamp(t):
        return {"type": "timestamp", "unit": t.unit, "tz": t.tz}
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        return {"type": "time", "unit": t.unit}
    if pa.types.is_duration(t):
        return {"type": "duration", "unit": t.unit}
    if pa.types.is_decimal(t):
        return {"type": "decimal", "precision": t.precision, "scale": t.scale, "bits": t.bit_width}
    if pa.types.is_fixed_size_binary(t):
        return {"type": "fixed_binary", "width": t.byte_width}
    if pa.types.is_list(t):
        return {"type": "list", "element": _field_to_json(t.value_field)}
    if pa.types.is_large_list(t):
        return {"type": "large_list", "element": _field_to_json(t.value_field)}
    if pa.types.is_fixed_size_list(t):
        return {"type": "fixed_list", "size": t.list_size, "element": _field_to_json(t.value_field)}
    if pa.types.is_struct(t):
        return {"type": "struct", "fields": [_field_to_json(f) for f in t]}
    if pa.types.is_map(t):
        return {
            "type": "map",
            "key": _field_to_json(t.key_field),
            "value": _field_to_json(t.item_field),
            "keys_sorted": t.keys_sorted,
        }
    raise InvalidArgument(f"type {t} is not supported by lakever; cast it to a supported type")


def _field_to_json(f: pa.Field[Any]) -> dict[str, Any]:
    fid = field_id(f)
    out: dict[str, Any] = {"id": fid, "name": f.name, "nullable": f.nullable}
    out["type"] = _type_to_json(f.type)
    return out


def schema_to_json(schema: pa.Schema) -> dict[str, Any]:
    """Encode a schema (with field ids) as the JSON object stored in snapshots."""
    return {"fields": [_field_to_json(f) for f in schema]}


def _type_from_json(j: Any) -> pa.DataType:
    if isinstance(j, str):
        if j in _SIMPLE:
            return _SIMPLE[j]
        raise ValueError(f"unknown type {j!r}")
    kind = j["type"]
    if kind == "timestamp":
        return pa.timestamp(j["unit"], tz=j.get("tz"))
    if kind == "time":
        return pa.time32(j["unit"]) if j["unit"] in ("s", "ms") else pa.time64(j["unit"])
    if kind == "duration":
        return pa.duration(j["unit"])
    if kind == "decimal":
        ctor = pa.decimal128 if j.get("bits", 128) == 128 else pa.decimal256
        return ctor(j["precision"], j["scale"])
    if kind == "fixed_binary":
        return pa.binary(j["width"])
    if kind == "list":
        return pa.list_(_field_from_json(j["element"]))
    if kind == "large_list":
        return pa.large_list(_field_from_json(j["element"]))
    if kind == "fixed_list":
        return pa.list_(_field_from_json(j["element"]), j["size"])
    if kind == "struct":
        return pa.struct([_field_from_json(f) for f in j["fields"]])
    if kind == "map":
        return map_type(
            _field_from_json(j["key"]),
            _field_from_json(j["value"]),
            bool(j.get("keys_sorted", False)),
        )
    raise ValueError(f"unknown type {kind!r}")


def _field_from_json(j: dict[str, Any]) -> pa.Field[Any]:
    t = _type_from_json(j["type"])
    md = {FIELD_ID_KEY: str(j["id"]).encode()} if j.get("id") is not None else None
    return pa.field(j["name"], t, j["nullable"], metadata=md)


def schema_from_json(j: dict[str, Any], *, path: str = "<schema>") -> pa.Schema:
    """Decode a stored schema; raise CorruptMetadata naming ``path`` if it is malformed."""
    try:
        return pa.schema([_field_from_json(f) for f in j["fields"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptMetadata(f"malformed schema in {path}: {exc}", path=path) from exc


def type_name(t: pa.DataType) -> str:
    """A short human-readable type name for messages."""
    return str(strip_type_ids(t))


def iter_field_ids(schema: pa.Schema) -> Iterator[tuple[int, pa.Field[Any]]]:
    """Yield (field id, field) for top-level fields that carry an id."""
    for f in schema:
        fid = field_id(f)
        if fid is not None:
            yield fid, f


# ----------------------------------------------------------------- conforming data


def same_logical(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether values of one type are stored in the other by a lossless representation change.

    Besides string/binary/list sizes, views and dictionaries: time zones compared by
    meaning (`timezone_key`), the units of timestamps, times and durations, date32
    and date64, and binary into fixed-size binary. The last ones convert exactly
    only for some values: `lakever.projection.conform` checks each value and refuses
    one that would lose precision, overflow or not fit.
    """
    if a == b:  # the usual case (data written in the dataset's own types), no rebuilding
        return True
    return strip_types(normalize_type(a)) == strip_types(normalize_type(b))


def strip_types(t: pa.DataType) -> pa.DataType:
    """Type with nested field metadata removed and representation differences unified."""
    if t in (pa.string(), pa.large_string()):
        return pa.large_string()
    if t in (pa.binary(), pa.large_binary()) or pa.types.is_fixed_size_binary(t):
        return pa.large_binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("ns", tz=timezone_key(t.tz))
    if pa.types.is_time(t):
        return pa.time64("ns")
    if pa.types.is_duration(t):
        return pa.duration("ns")
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.large_list(pa.field("item", strip_types(t.value_type), t.value_field.nullable))
    if pa.types.is_fixed_size_list(t):
        vf = t.value_field
        return pa.list_(pa.field("item", strip_types(vf.type), vf.nullable), t.list_size)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, strip_types(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        return pa.map_(strip_types(t.key_type), strip_types(t.item_type))
    return t


# --------------------------------------------------------------------- time zones

#: Names of zones that are UTC at every instant (offset 0, no daylight saving time).
_UTC = frozenset(
    n.lower()
    for n in (
        *("UTC", "UCT", "Universal", "Zulu", "Z", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich"),
        *("Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "Etc/GMT", "Etc/GMT0"),
        *("Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich"),
    )
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
#: POSIX-style zones: "Etc/GMT-1" is one hour *ahead* of UTC.
_ETC_GMT = re.compile(r"etc/gmt([+-])(\d{1,2})")
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


def _offset_key(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@functools.lru_cache(maxsize=256)
def timezone_key(tz: str | None) -> str | None:
    """What a time zone means, as a string equal for every name of the same zone.

    Aliases of UTC (``UTC``, ``Etc/UTC``, ``Z``, ``+00:00``, ``GMT``...) give
    ``"+00:00"``; fixed offsets give ``"+HH:MM"`` (``+0530``, ``+05:30`` and
    ``Etc/GMT-5``... are the same); other IANA names give the hash of their tz
    database rules (``US/Eastern`` is ``America/New_York``); a name the database
    lacks is its own meaning. None (no time zone) stays None.
    """
    if tz is None:
        return None
    name = tz.strip()
    if name.lower() in _UTC:
        return _offset_key(0)
    if m := _OFFSET.fullmatch(name):
        minutes = int(m[2]) * 60 + int(m[3])
        return _offset_key(-minutes if m[1] == "-" else minutes)
    if m := _ETC_GMT.fullmatch(name.lower()):
        hours = int(m[2])
        return _offset_key(hours * 60 if m[1] == "-" else -hours * 60)
    rules = _zone_rules(name)
    return name if rules is None else "tzif:" + hashlib.sha256(rules).hexdigest()[:32]


def _zone_rules(name: str) -> bytes | None:
    """The TZif file of zone ``name`` (system tz database first, then ``tzdata``), or None."""
    if not _ZONE_NAME.fullmatch(name):
        return None
    for root in zoneinfo.TZPATH:
        path = os.path.join(root, *name.split("/"))
        if os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            return data if data.startswith(b"TZif") else None
    try:
        resource = importlib.resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
        data = resource.read_bytes()
    except (ModuleNotFoundError, OSError):
        return None
    return data if data.startswith(b"TZif") else None


#: Recent snapshots' schema records, parsed, with their schema ids, by identity of the
#: record (kept, so its id is not reused while remembered). Schema records are never
#: changed once read or made; consecutive commits through one Dataset share theirs.
_RECORDS: Lru[int, tuple[Any, tuple[pa.Schema, str | None]]] = Lru(64)


def remembered_schema(schema_json: dict[str, Any]) -> tuple[pa.Schema, str | None]:
    """``schema_json`` as an Arrow schema (field ids in its metadata), and its schema id;
    None instead of the id when the record is not what `schema_to_json` makes of the
    schema (a record written by an older version), which is then written anew."""

    def make() -> tuple[pa.Schema, str | None]:
        schema = schema_from_json(schema_json)
        return schema, schema_id(schema_json) if schema_to_json(schema) == schema_json else None

    return by_identity(_RECORDS, schema_json, make)
