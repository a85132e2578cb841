"""The Delta Lake side of `lakever.interop.delta`: types, schemas, statistics, and the
commit files (``_delta_log/<version:020d>.json``) an export writes and reads back.

Only plain JSON and pyarrow: no Delta library is needed to write a Delta log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from lakever.errors import ExportError
from lakever.schema import field_id
from lakever.storage import Storage

__all__ = [
    "READ_ONLY_FEATURE",
    "TABLE_PROPERTIES",
    "DeltaFile",
    "LOG_DIR",
    "LogState",
    "delta_schema",
    "encode_path",
    "read_log",
    "reads_by_name",
    "stats_json",
    "table_stats",
]

LOG_DIR = "_delta_log"
_COMMIT = re.compile(r"^(\d{20})\.json$")
#: Strings longer than this get no min/max (lakever's rule for exact bounds too).
_MAX_STRING_STAT = 64
_EPOCH = date(1970, 1, 1)


class Unsupported(Exception):
    """A type Delta Lake has no exact equivalent for (internal; becomes `ExportError`)."""


def delta_type(t: pa.DataType) -> Any:
    """The Delta schema type of Arrow type ``t`` (raises `Unsupported`)."""
    simple = {
        pa.bool_(): "boolean",
        pa.int8(): "byte",
        pa.int16(): "short",
        pa.int32(): "integer",
        pa.int64(): "long",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.string(): "string",
        pa.large_string(): "string",
        pa.string_view(): "string",
        pa.binary(): "binary",
        pa.large_binary(): "binary",
        pa.binary_view(): "binary",
        pa.date32(): "date",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t) and t.unit == "us":
        return "timestamp" if t.tz is not None else "timestamp_ntz"
    if pa.types.is_decimal128(t) and t.precision <= 38:
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_struct(t):
        return {"type": "struct", "fields": [delta_field(t.field(i)) for i in range(t.num_fields)]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {
            "type": "array",
            "elementType": delta_type(t.value_type),
            "containsNull": t.value_field.nullable,
        }
    if pa.types.is_map(t):
        return {
            "type": "map",
            "keyType": delta_type(t.key_type),
            "valueType": delta_type(t.item_type),
            "valueContainsNull": t.item_field.nullable,
        }
    raise Unsupported(str(t))


def delta_field(f: pa.Field[Any]) -> dict[str, Any]:
    return {"name": f.name, "type": delta_type(f.type), "nullable": f.nullable, "metadata": {}}


def delta_schema(schema: pa.Schema) -> str:
    """The ``schemaString`` of a metaData action (raises `Unsupported` naming the column)."""
    fields = []
    for f in schema:
        try:
            fields.append(delta_field(f))
        except Unsupported as exc:
            raise Unsupported(f"column {f.name!r} has type {exc}") from exc
    return json.dumps({"type": "struct", "fields": fields}, separators=(",", ":"))


def uses_ntz(t: pa.DataType) -> bool:
    """Whether ``t`` holds a timestamp without time zone (Delta feature timestampNtz)."""
    if pa.types.is_timestamp(t):
        return t.tz is None
    if pa.types.is_struct(t):
        return any(uses_ntz(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return uses_ntz(t.value_type)
    if pa.types.is_map(t):
        return uses_ntz(t.key_type) or uses_ntz(t.item_type)
    return False


#: A writer feature no Delta writer implements: writers (delta-rs, Spark) refuse to
#: commit to the table (append, delete, OPTIMIZE, VACUUM), so none can add files lakever
#: does not know or delete the dataset's own files; readers ignore writer features.
READ_ONLY_FEATURE = "lakeverExportReadOnly"
#: Table properties of every export: a Delta VACUUM that ignores the writer feature still
#: keeps removed files (lakever's history) for 100 years.
TABLE_PROPERTIES = {"delta.deletedFileRetentionDuration": "interval 36500 days"}


def protocol_of(schema: pa.Schema) -> dict[str, Any]:
    """Reader version 3 (table features): timestampNtz when a column needs it; writer
    version 7 with `READ_ONLY_FEATURE`."""
    ntz = ["timestampNtz"] if any(uses_ntz(f.type) for f in schema) else []
    return {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ntz,
        "writerFeatures": [*ntz, READ_ONLY_FEATURE],
    }


def _signature(f: pa.Field[Any]) -> Any:
    """What a reader matching columns by name needs equal: name, field id, Delta type,
    recursively (nullability is not read)."""
    t = f.type
    if pa.types.is_struct(t):
        inner: Any = tuple(_signature(t.field(i)) for i in range(t.num_fields))
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = ("array", _signature(t.value_field))
    elif pa.types.is_map(t):
        inner = ("map", _signature(t.key_field), _signature(t.item_field))
    else:
        inner = json.dumps(delta_type(t))
    return (f.name, field_id(f), inner)


def reads_by_name(physical: pa.Schema, snapshot: pa.Schema) -> bool:
    """Whether a file written under ``physical`` reads exactly as ``snapshot`` shows it
    through a reader that matches columns by name (Delta without column mapping):
    every snapshot column is either in the file under the same name, field id and type,
    or absent from it under any name (added later: null). Extra file columns are ignored."""
    by_name = {f.name: f for f in physical}
    ids = {field_id(f) for f in physical}
    for f in snapshot:
        g = by_name.get(f.name)
        if g is None:
            if field_id(f) in ids:
                return False  # renamed since the file was written
            continue
        try:
            if _signature(g) != _signature(f):
                return False  # widened, or another column under the same name
        except Unsupported:
            return False
    return True


def _bound(t: pa.DataType, v: Any) -> Any:
    """A min/max value as Delta statistics hold it, or None when not exported."""
    if v is None or isinstance(v, bool):
        return None
    if pa.types.is_integer(t) and isinstance(v, int):
        return v
    if pa.types.is_floating(t) and isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return v if isinstance(v, str) and len(v) <= _MAX_STRING_STAT else None
    if pa.types.is_date32(t):
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, int):
            return (_EPOCH + timedelta(days=v)).isoformat()
    return None  # timestamps, decimals, binaries, nested: no bounds (never wrong)


def stats_json(
    schema: pa.Schema, num_records: int, by_name: Mapping[str, Mapping[str, Any]]
) -> str:
    """The ``stats`` of an add action: numRecords, and per column the null count and,
    where exact and safe, min/max (floats only when the column holds no NaN)."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for f in schema:
        st = by_name.get(f.name)
        if st is None or pa.types.is_nested(f.type):
            continue  # Delta nests a struct's statistics by field: none are exported
        if isinstance(st.get("nulls"), int):
            nulls[f.name] = st["nulls"]
        if pa.types.is_floating(f.type) and st.get("nans") != 0:
            continue
        lo, hi = _bound(f.type, st.get("min")), _bound(f.type, st.get("max"))
        if lo is not None and hi is not None:
            mins[f.name], maxs[f.name] = lo, hi
    out = {"numRecords": num_records, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def table_stats(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Statistics of a table's top-level columns, like lakever's manifests hold them."""
    out: dict[str, dict[str, Any]] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        st: dict[str, Any] = {"nulls": col.null_count}
        t = col.type
        if pa.types.is_floating(t):
            st["nans"] = int(pc.sum(pc.cast(pc.is_nan(col), pa.int64())).as_py() or 0)
        if (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_string(t)
            or (pa.types.is_large_string(t) or pa.types.is_date32(t))
        ):
            mm = pc.min_max(col)
            st["min"], st["max"] = mm["min"].as_py(), mm["max"].as_py()
        out[name] = st
    return out


def encode_path(rel: str) -> str:
    """A relative file path as an add/remove action's ``path`` (a URI reference)."""
    return quote(rel, safe="/")


@dataclass(frozen=True)
class DeltaFile:
    """A data file live in the exported Delta table, and the lakever entry it shows."""

    #: The add action (as written).
    add: dict[str, Any]
    #: The lakever schema id the file's columns were written under.
    schema_id: str

    @property
    def key(self) -> tuple[str, str]:
        tags = self.add["tags"]
        return (tags["lakever.source"], tags["lakever.deletion_vector"])


@dataclass
class LogState:
    """The Delta table an export left at ``TARGET``, replayed from its commit files."""

    #: The newest Delta version (None: no table yet).
    version: int | None = None
    #: The oldest commit file (the export's first version).
    first: int | None = None
    #: The lakever commitInfo of the newest version.
    lakever: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    live: dict[tuple[str, str], DeltaFile] = field(default_factory=dict)


def _damaged(target: str, what: str) -> ExportError:
    return ExportError(
        f"{target} does not hold a Delta table exported by lakever: {what}. Export to "
        "another (empty) target, or remove this one if it is an export you no longer need",
        format="delta",
        target=target,
        reason="not_an_export",
    )


def read_log(storage: Storage) -> LogState:
    """Replay the commit files at ``storage`` (an export's target)."""
    names = storage.list(LOG_DIR)
    versions = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
    foreign = [n for n in names if not _COMMIT.match(n) and ".tmp-" not in n]
    state = LogState()
    if not versions:
        if foreign:
            raise _damaged(storage.uri, f"{LOG_DIR}/ holds {sorted(foreign)[:3]}")
        return state
    if foreign:
        raise _damaged(storage.uri, f"{LOG_DIR}/ holds files lakever never writes: {foreign[:3]}")
    if versions != list(range(versions[0], versions[-1] + 1)):
        raise _damaged(storage.uri, f"its commit files are not contiguous ({versions[0]}..)")
    state.first = versions[0]
    for v in versions:
        rel = f"{LOG_DIR}/{v:020d}.json"
        try:
            actions = [json.loads(line) for line in storage.read_bytes(rel).splitlines() if line]
            _apply(state, v, actions)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _damaged(storage.uri, f"commit {rel} is not one lakever wrote ({exc})") from exc
    return state


def _apply(state: LogState, version: int, actions: list[dict[str, Any]]) -> None:
    info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    lv = info["lakever"]
    if not isinstance(lv, dict) or lv["version"] != version:
        raise ValueError(f"commitInfo names version {lv.get('version')}")
    state.version, state.lakever = version, lv
    for a in actions:
        if "metaData" in a:
            state.metadata = a["metaData"]
        elif "protocol" in a:
            state.protocol = a["protocol"]
        elif "remove" in a:
            key = (
                a["remove"]["tags"]["lakever.source"],
                a["remove"]["tags"]["lakever.deletion_vector"],
            )
            del state.live[key]
        elif "add" in a:
            f = DeltaFile(a["add"], a["add"]["tags"]["lakever.schema"])
            state.live[f.key] = f
