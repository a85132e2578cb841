"""The Iceberg side of `lakever.interop.iceberg`: types, data files, delete files, manifests.

Imports pyiceberg at module level: `lakever.interop.iceberg` imports this module only
after `lakever.interop.require` found pyiceberg. pyiceberg's own Avro writers produce
the manifests and manifest lists; what goes into them (field ids, statistics,
partition values, sequence numbers, deletes) is decided here from lakever's records.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.conversions import to_bytes
from pyiceberg.exceptions import ResolveError
from pyiceberg.io import InputFile, InputStream, OutputFile, OutputStream
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, index_by_id, promote
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    YearTransform,
)
from pyiceberg.typedef import Record
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    PrimitiveType,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from lakever.deletion import positions_of
from lakever.errors import InvalidArgument, SchemaEvolutionError
from lakever.format import FragmentEntry
from lakever.schema import field_id, nested_fields, type_name
from lakever.storage import Storage

__all__ = [
    "DELETE_FILE_PATH_ID",
    "PARTITION_FIELD_BASE",
    "Exporter",
    "Spec",
    "check_promotions",
    "iceberg_schema",
    "read_bytes_file",
]

#: Iceberg's reserved field ids of a positional delete file's columns.
DELETE_FILE_PATH_ID = 2147483546
DELETE_POS_ID = 2147483545
_DELETE_FIELDS: list[pa.Field[Any]] = [
    pa.field("file_path", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
]
_DELETE_SCHEMA = pa.schema(
    [
        f.with_metadata({b"PARQUET:field_id": str(fid).encode()})
        for f, fid in zip(_DELETE_FIELDS, (DELETE_FILE_PATH_ID, DELETE_POS_ID), strict=True)
    ]
)
#: First id of partition fields (Iceberg's convention).
PARTITION_FIELD_BASE = 1000
#: Zone names Iceberg readers (pyiceberg's UTC_ALIASES) read as Iceberg's timestamptz.
_UTC_NAMES = frozenset({"UTC", "+00:00", "Etc/UTC", "Z"})
_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1}
_TRANSFORMS: dict[str, Callable[[], Transform[Any, Any]]] = {
    "identity": IdentityTransform,
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
}


# ----------------------------------------------------------------------- types


def _unsupported(column: str, t: pa.DataType, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"column {column!r} has type {type_name(t)}, which an Apache Iceberg (format version 2) "
        f"table cannot hold: {why}; export a version before the column was added, or add a "
        "column of a supported type and drop this one"
    )


def _primitive(column: str, t: pa.DataType) -> PrimitiveType:
    if pa.types.is_boolean(t):
        return BooleanType()
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t):
            raise _unsupported(column, t, "Iceberg has no unsigned 64-bit integer")
        # Unsigned types fit in the next signed size; Iceberg's int is 32-bit signed.
        return LongType() if t.bit_width == 64 or pa.types.is_uint32(t) else IntegerType()
    if pa.types.is_float32(t):
        return FloatType()
    if pa.types.is_float64(t):
        return DoubleType()
    if pa.types.is_decimal(t):
        if t.precision > 38:
            raise _unsupported(column, t, "Iceberg decimals hold at most 38 digits")
        return DecimalType(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return BinaryType()
    if pa.types.is_fixed_size_binary(t):
        return FixedType(t.byte_width)
    if pa.types.is_date32(t):
        return DateType()
    if pa.types.is_time64(t) and t.unit == "us":
        return TimeType()
    if pa.types.is_timestamp(t) and t.unit in _MICROS:
        if t.tz is None:
            return TimestampType()
        if t.tz in _UTC_NAMES:
            return TimestamptzType()
        raise _unsupported(
            column,
            t,
            "Iceberg stores instants in UTC, and readers such as pyiceberg accept only "
            f"the zone names {', '.join(sorted(_UTC_NAMES))}",
        )
    why = {
        "timestamp": "nanosecond timestamps need Iceberg format version 3",
    }.get(str(t).split("[")[0], "Iceberg has no such type")
    raise _unsupported(column, t, why)


def _iceberg_type(column: str, t: pa.DataType) -> IcebergType:
    if pa.types.is_struct(t):
        return StructType(*(_nested(f"{column}.{f.name}", f) for f in nested_fields(t)))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        (element,) = nested_fields(t)
        return ListType(
            _id(column, element),
            _iceberg_type(f"{column}.element", element.type),
            element_required=not element.nullable,
        )
    if pa.types.is_map(t):
        key, value = nested_fields(t)
        return MapType(
            _id(column, key),
            _iceberg_type(f"{column}.key", key.type),
            _id(column, value),
            _iceberg_type(f"{column}.value", value.type),
            value_required=not value.nullable,
        )
    return _primitive(column, t)


def _id(column: str, f: pa.Field[Any]) -> int:
    fid = field_id(f)
    if fid is None:  # lakever schemas give every field an id (docs/format.md §5.1)
        raise InvalidArgument(f"field {column!r}.{f.name} has no field id")
    return fid


def _nested(column: str, f: pa.Field[Any]) -> NestedField:
    return NestedField(
        _id(column, f), f.name, _iceberg_type(column, f.type), required=not f.nullable
    )


def iceberg_schema(schema: pa.Schema, schema_id: int) -> Schema:
    """The Iceberg schema of a lakever schema (with field ids): same ids, same names."""
    return Schema(*(_nested(f.name, f) for f in schema), schema_id=schema_id)


def check_promotions(old: Schema, new: Schema, *, version: int) -> None:
    """Refuse a schema change Iceberg cannot read old files through (e.g. int to double)."""
    before = index_by_id(old)
    for fid, f in index_by_id(new).items():
        was = before.get(fid)
        if was is None or was.field_type == f.field_type or not f.field_type.is_primitive:
            continue
        try:
            promote(was.field_type, f.field_type)
        except ResolveError as exc:
            raise SchemaEvolutionError(
                f"version {version} changed column {f.name!r} from {was.field_type} to "
                f"{f.field_type}, a promotion Apache Iceberg does not allow (it allows int to "
                "long, float to double and a wider decimal precision); export up to version "
                f"{version - 1} instead",
                column=f.name,
                old_type=str(was.field_type),
                new_type=str(f.field_type),
            ) from exc


# --------------------------------------------------------------------- values


def _bound(t: pa.DataType, it: IcebergType, value: Any) -> bytes | None:
    """A lakever statistics value (manifest-stats encoding, docs/format.md §3) in Iceberg's
    single-value binary encoding; None when it is not an exact bound of this type."""
    if value is None or not isinstance(it, PrimitiveType):
        return None
    if isinstance(it, DecimalType):
        return to_bytes(it, Decimal(str(value)))
    if isinstance(it, TimestampType | TimestamptzType) and isinstance(t, pa.TimestampType):
        return to_bytes(it, int(value) * _MICROS[t.unit])
    if isinstance(it, StringType) and isinstance(value, str):
        return to_bytes(it, value)
    if isinstance(it, IntegerType | LongType | DateType | TimeType) and isinstance(value, int):
        return to_bytes(it, value)
    if isinstance(it, FloatType | DoubleType) and isinstance(value, int | float):
        return to_bytes(it, float(value))
    if isinstance(it, BooleanType) and isinstance(value, bool):
        return to_bytes(it, value)
    return None  # binaries and anything unexpected: no bound rather than a wrong one


class _NotMapped(Exception):
    """A partition record that has no clean Iceberg equivalent (exported unpartitioned)."""


def _partition_value(t: pa.DataType, transform: str, value: Any) -> Any:
    """A fragment's partition value in Iceberg's partition encoding (None: null)."""
    if value is None:
        return None
    if transform != "identity":
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # whole years/months/days/hours since 1970: Iceberg's encoding
        raise _NotMapped
    if pa.types.is_timestamp(t) and t.unit in _MICROS:
        return int(value) * _MICROS[t.unit]
    if pa.types.is_decimal(t):
        return Decimal(str(value))
    if pa.types.is_floating(t) or pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t):
        raise _NotMapped  # no exact single value in the stats encoding
    if isinstance(value, bool | int | str):
        return value
    raise _NotMapped


# ------------------------------------------------------------------------- I/O


class _Sink(io.BytesIO):
    def __init__(self, owner: _MemoryOutput) -> None:
        super().__init__()
        self._owner = owner

    def close(self) -> None:
        if not self.closed:
            self._owner.data = self.getvalue()
        super().close()


class _MemoryOutput(OutputFile):
    """An OutputFile collecting the bytes pyiceberg writes (stored with put-if-absent)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.data = b""

    def __len__(self) -> int:
        return len(self.data)

    def exists(self) -> bool:
        return False

    def to_input_file(self) -> InputFile:
        return _MemoryInput(self.location, self.data)

    def create(self, overwrite: bool = False) -> OutputStream:  # noqa: FBT001, FBT002 - pyiceberg's signature
        return _Sink(self)


class _MemoryInput(InputFile):
    def __init__(self, location: str, data: bytes) -> None:
        super().__init__(location)
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def exists(self) -> bool:
        return True

    def open(self, seekable: bool = True) -> InputStream:  # noqa: FBT001, FBT002 - pyiceberg's signature
        return io.BytesIO(self._data)


def read_bytes_file(location: str, data: bytes) -> InputFile:
    """An InputFile over bytes already read (through lakever's Storage)."""
    return _MemoryInput(location, data)


class _DeleteManifestWriter(ManifestWriterV2):
    """pyiceberg's version-2 manifest writer, for a manifest of positional delete files."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


# -------------------------------------------------------------------- exporter


@dataclass
class Spec:
    spec: PartitionSpec
    #: (field id, transform) per partition field, in order.
    shape: tuple[tuple[int, str], ...]
    #: The source columns as an Iceberg schema (a manifest of the spec is written with it,
    #: so a later drop of the column does not make the spec unreadable).
    source: Schema | None = None


@dataclass
class Exporter:
    """Writes the manifests of one export run; carries what earlier snapshots decided.

    ``seen`` maps a data file (fragment path) or a delete file (fragment path + "#" + DV
    hash) to ``[sequence number, snapshot id, spec id, delete file size]`` of the Iceberg
    snapshot that first listed it: an entry keeps them in every later manifest (EXISTING
    entries), so a positional delete file's sequence number is never below its data file's.
    ``manifests`` maps a lakever manifest (its key's hash) to the Iceberg manifest paths
    written for it: a lakever manifest listed again reuses them.
    """

    source: Storage
    target: Storage
    #: Where a data file path is written: the fragment's absolute path or URI.
    data_location: Callable[[str], str]
    seen: dict[str, list[int]] = field(default_factory=dict)
    manifests: dict[str, list[str]] = field(default_factory=dict)
    #: Spec id -> spec; spec 0 is unpartitioned.
    specs: dict[int, Spec] = field(default_factory=dict)
    #: Manifest path -> its ManifestFile record (sequence numbers assigned).
    files: dict[str, ManifestFile] = field(default_factory=dict)
    bytes_written: int = 0
    delete_bytes_written: int = 0
    files_written: int = 0

    def __post_init__(self) -> None:
        if 0 not in self.specs:
            self.specs[0] = Spec(PartitionSpec(spec_id=0), ())

    def _write(self, rel: str, data: bytes, *, deletes: bool = False) -> None:
        # Durable by the flush before the metadata JSON that references it is created:
        # names are random (manifests) or a hash of what the bytes say (delete files).
        if not self.target.publish_content(rel, data):
            return  # a content-named delete file an interrupted run wrote already
        self.bytes_written += len(data)
        self.files_written += 1
        if deletes:
            self.delete_bytes_written += len(data)

    def location(self, rel: str) -> str:
        return self.target.full_path(rel) if self.target.is_local else self.target.location(rel)

    # ---------------------------------------------------------------- specs

    def _spec_for(self, e: FragmentEntry, physical: pa.Schema) -> tuple[int, Record]:
        """The spec and partition record of a fragment: its own partition values (which
        never change) when each maps to an Iceberg transform; else unpartitioned."""
        if not e.partition:
            return 0, Record()
        fields = {field_id(f): f for f in physical}
        shape = tuple((int(p["field_id"]), str(p["transform"])) for p in e.partition)
        try:
            if any(tr not in _TRANSFORMS or fid not in fields for fid, tr in shape):
                raise _NotMapped
            values = [
                _partition_value(fields[fid].type, tr, p["value"])
                for (fid, tr), p in zip(shape, e.partition, strict=True)
            ]
            source = iceberg_schema(pa.schema([fields[fid] for fid, _ in dict(shape).items()]), 0)
        except (_NotMapped, InvalidArgument):
            return 0, Record()
        for sid, s in self.specs.items():
            if s.shape == shape:
                return sid, Record(*values)
        existing = {
            (f.source_id, str(f.transform)): f.field_id
            for s in self.specs.values()
            for f in s.spec.fields
        }
        next_id = max(existing.values(), default=PARTITION_FIELD_BASE - 1) + 1
        parts = []
        for fid, tr in shape:
            transform = _TRANSFORMS[tr]()
            pid = existing.get((fid, str(transform)))
            if pid is None:
                pid, next_id = next_id, next_id + 1
            name = fields[fid].name if tr == "identity" else f"{fields[fid].name}_{tr}"
            parts.append(PartitionField(fid, pid, transform, name))
        sid = max(self.specs) + 1
        self.specs[sid] = Spec(PartitionSpec(*parts, spec_id=sid), shape, source)
        return sid, Record(*values)

    # ---------------------------------------------------------- data files

    def _data_file(
        self, e: FragmentEntry, physical: pa.Schema, spec_id: int, partition: Record
    ) -> DataFile:
        lower: dict[int, bytes] = {}
        upper: dict[int, bytes] = {}
        nulls: dict[int, int] = {}
        nans: dict[int, int] = {}
        for f in physical:
            fid = field_id(f)
            st = e.stats.get(fid) if fid is not None else None
            if fid is None or st is None:
                continue
            if "nulls" in st:
                nulls[fid] = int(st["nulls"])
            if "nans" in st:
                nans[fid] = int(st["nans"])
            try:
                it = _iceberg_type(f.name, f.type)
            except InvalidArgument:
                continue
            lo, hi = _bound(f.type, it, st.get("min")), _bound(f.type, it, st.get("max"))
            if lo is not None and hi is not None:
                lower[fid], upper[fid] = lo, hi
        df = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=self.data_location(e.path),
            file_format=FileFormat.PARQUET,
            partition=partition,
            record_count=e.num_rows,
            file_size_in_bytes=e.size_bytes,
            null_value_counts=nulls,
            nan_value_counts=nans,
            lower_bounds=lower,
            upper_bounds=upper,
        )
        df.spec_id = spec_id
        return df

    def _delete_file(self, e: FragmentEntry, spec_id: int, partition: Record, key: str) -> DataFile:
        """The positional delete file of a fragment's deletion vector (written once: its
        name is a hash of the fragment and the DV)."""
        assert e.deletion is not None
        path = self.data_location(e.path)
        rel = f"data/{hashlib.sha256(key.encode()).hexdigest()[:32]}-deletes.parquet"
        known = self.seen.get(key)
        if known is None or known[3] < 0:
            positions = positions_of(self.source, e)
            table = pa.table(
                [pa.array([path] * len(positions), pa.string()), positions], schema=_DELETE_SCHEMA
            )
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            data = sink.getvalue().to_pybytes()
            self._write(rel, data, deletes=True)
            size = len(data)
        else:
            size = known[3]
        df = DataFile.from_args(
            content=DataFileContent.POSITION_DELETES,
            file_path=self.location(rel),
            file_format=FileFormat.PARQUET,
            partition=partition,
            record_count=e.deletion.count,
            file_size_in_bytes=size,
            # The data file it applies to, as bounds: readers index deletes by them.
            lower_bounds={DELETE_FILE_PATH_ID: path.encode()},
            upper_bounds={DELETE_FILE_PATH_ID: path.encode()},
        )
        df.spec_id = spec_id
        return df

    # ------------------------------------------------------------- manifests

    def manifests_for(
        self,
        key: str,
        entries: Callable[[], Sequence[FragmentEntry]],
        physical: Callable[[str], pa.Schema],
        schema: Schema,
        snapshot_id: int,
        seq: int,
    ) -> list[ManifestFile]:
        """The Iceberg manifests (data and deletes, one of each per spec) of one lakever
        manifest, written at snapshot ``snapshot_id`` unless written before."""
        known = self.manifests.get(key)
        if known is not None and all(p in self.files for p in known):
            return [self.files[p] for p in known]
        groups: dict[tuple[int, bool], list[ManifestEntry]] = {}
        for e in entries():
            phys = physical(e.schema_id)
            spec_id, partition = self._spec_for(e, phys)
            info = self.seen.setdefault(e.path, [seq, snapshot_id, spec_id, -1])
            entry = self._entry(self._data_file(e, phys, spec_id, partition), info, snapshot_id)
            groups.setdefault((spec_id, False), []).append(entry)
            if e.deletion is not None:
                dkey = f"{e.path}#{e.deletion.content_hash}"
                dinfo = self.seen.get(dkey)
                df = self._delete_file(e, spec_id, partition, dkey)
                if dinfo is None:
                    dinfo = self.seen[dkey] = [seq, snapshot_id, spec_id, df.file_size_in_bytes]
                dentry = self._entry(df, dinfo, snapshot_id)
                groups.setdefault((spec_id, True), []).append(dentry)
        out = []
        for (spec_id, deletes), group in sorted(groups.items()):
            out.append(self._manifest(group, spec_id, schema, snapshot_id, seq, deletes=deletes))
        self.manifests[key] = [m.manifest_path for m in out]
        return out

    @staticmethod
    def _entry(df: DataFile, info: list[int], snapshot_id: int) -> ManifestEntry:
        first_seq, first_snapshot = info[0], info[1]
        status = (
            ManifestEntryStatus.ADDED
            if first_snapshot == snapshot_id
            else ManifestEntryStatus.EXISTING
        )
        return ManifestEntry.from_args(
            status=status,
            snapshot_id=first_snapshot,
            sequence_number=first_seq,
            file_sequence_number=first_seq,
            data_file=df,
        )

    def _manifest(
        self,
        entries: list[ManifestEntry],
        spec_id: int,
        schema: Schema,
        snapshot_id: int,
        seq: int,
        *,
        deletes: bool,
    ) -> ManifestFile:
        rel = f"metadata/{uuid.uuid4().hex}-m{int(deletes)}.avro"
        out = _MemoryOutput(self.location(rel))
        spec = self.specs[spec_id].spec
        schema = self.specs[spec_id].source or schema
        writer = (
            _DeleteManifestWriter(spec, schema, out, snapshot_id, "deflate")
            if deletes
            else write_manifest(2, spec, schema, out, snapshot_id, "deflate")
        )
        with writer:
            for entry in entries:
                writer.add_entry(entry)
        manifest = writer.to_manifest_file()
        manifest.sequence_number = seq
        self._write(rel, out.data)
        self.files[manifest.manifest_path] = manifest
        return manifest

    def manifest_list(
        self, manifests: list[ManifestFile], snapshot_id: int, parent: int | None, seq: int
    ) -> str:
        """Write a snapshot's manifest list; return its location."""
        rel = f"metadata/snap-{snapshot_id}-1-{uuid.uuid4().hex}.avro"
        out = _MemoryOutput(self.location(rel))
        with write_manifest_list(2, out, snapshot_id, parent, seq, "deflate") as writer:
            writer.add_manifests(manifests)
        self._write(rel, out.data)
        return out.location
