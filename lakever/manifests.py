"""Manifests: immutable Parquet files listing a snapshot's fragment entries.

A manifest records, per fragment, its path, row count, size, SHA-256, the id of
the schema it was written under, its partition record, its deletion vector and
its column statistics keyed by field id. Small groups of entries are inlined in
the snapshot record instead (`make_manifest`).

Manifests are written in manifest version 2: statistics are typed columns
(``stats.<field id>.min.<class>``, ``.max.<class>``, ``.nulls``, ``.nans``), so a
reader prunes a whole manifest with vectorised Arrow/DuckDB work and builds
Python entries only for the fragments it keeps. Version 1 manifests (statistics
as one JSON string per fragment) are still read. Both parse into `ManifestData`,
cached per process by (location, content hash): manifests never change once
written. docs/format.md section 3 is the specification.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakever._lru import Lru
from lakever._manifest_v1 import parse_v1
from lakever.errors import CorruptMetadata
from lakever.format import (
    _PLAIN_PATH,
    MANIFEST_DIR,
    DeletionVector,
    FragmentEntry,
    ManifestRef,
    check_object_id,
    check_relative,
    parse_partition,
    sha256_hex,
)
from lakever.fragments import new_name
from lakever.storage import Storage

__all__ = [
    "INLINE_MAX_FRAGMENTS",
    "MANIFEST_VERSION",
    "ManifestData",
    "manifest_data",
    "make_manifest",
    "parse_manifest",
    "read_manifest",
    "read_manifests",
    "stats_columns",
    "write_manifest",
]

#: A commit adding at most this many fragments inlines their entries in its snapshot record.
INLINE_MAX_FRAGMENTS = 4

#: The manifest file layout this code writes (the file's Parquet metadata says which).
MANIFEST_VERSION = 2
_VERSION_KEY = b"lakever.manifest_version"

_DV_TYPE = pa.struct(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)
#: The columns every manifest has, before the statistics columns.
_BASE_FIELDS: list[pa.Field[Any]] = [
    pa.field("path", pa.string(), nullable=False),
    pa.field("num_rows", pa.int64(), nullable=False),
    pa.field("size_bytes", pa.int64(), nullable=False),
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("schema_id", pa.string(), nullable=False),
    pa.field("partition", pa.string(), nullable=True),
    pa.field("deletion_vector", _DV_TYPE, nullable=True),
]
_BASE_NAMES = [f.name for f in _BASE_FIELDS]
#: Arrow type of each class of min/max value (the JSON type the statistic has in an entry).
CLASSES: dict[str, pa.DataType] = {
    "b": pa.bool_(),
    "i": pa.int64(),
    "u": pa.uint64(),  # integers above the int64 range
    "f": pa.float64(),
    "s": pa.string(),  # strings, and decimals as their text
}
_COUNTS = ("nulls", "nans")


def _class_of(value: Any) -> str:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i" if value < 1 << 63 else "u"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    raise ValueError(f"the statistic {value!r} is not a number, string or boolean")


def stat_column(fid: int, key: str, cls: str | None = None) -> str:
    """The name of a statistics column: ``stats.<fid>.<key>[.<class>]``."""
    return f"stats.{fid}.{key}" if cls is None else f"stats.{fid}.{key}.{cls}"


def _parse_stat_column(name: str) -> tuple[int, str, str | None]:
    parts = name.split(".")
    if len(parts) == 3 and parts[2] in _COUNTS and parts[1].isdigit():
        return int(parts[1]), parts[2], None
    if (
        len(parts) == 4
        and parts[2] in ("min", "max")
        and parts[3] in CLASSES
        and parts[1].isdigit()
    ):
        return int(parts[1]), parts[2], parts[3]
    raise ValueError(f"unknown manifest column {name!r}")


def stats_columns(
    stats: Sequence[Mapping[int, Mapping[str, Any]]], *, lenient: bool = False
) -> dict[str, pa.Array[Any]]:
    """Typed statistics columns for entries with these stats (one row per entry).

    ``lenient``: a value no column can hold (not a number, string or boolean; a count
    that is not an integer) is left out, i.e. unknown, instead of raising ValueError.
    """
    n = len(stats)
    cols: dict[str, list[Any]] = {}
    for i, st in enumerate(stats):
        for fid, s in st.items():
            for key, v in s.items():
                if v is None:
                    continue
                try:
                    if key in _COUNTS:
                        if isinstance(v, bool) or not isinstance(v, int):
                            raise ValueError(f"the count {v!r} is not an integer")
                        name = stat_column(fid, key)
                    elif key in ("min", "max"):
                        name = stat_column(fid, key, _class_of(v))
                    else:
                        continue
                except ValueError:
                    if lenient:
                        continue
                    raise
                col = cols.get(name)
                if col is None:
                    col = cols[name] = [None] * n
                col[i] = v
    out: dict[str, pa.Array[Any]] = {}
    for name in sorted(cols, key=lambda c: (int(c.split(".")[1]), c)):
        cls = _parse_stat_column(name)[2]
        out[name] = pa.array(cols[name], pa.int64() if cls is None else CLASSES[cls])
    return out


def manifest_table(entries: Sequence[FragmentEntry]) -> pa.Table:
    """The version-2 manifest table of ``entries`` (what `write_manifest` stores)."""
    values: tuple[list[Any], ...] = (
        [e.path for e in entries],
        [e.num_rows for e in entries],
        [e.size_bytes for e in entries],
        [e.content_hash for e in entries],
        [e.schema_id for e in entries],
        [
            None if e.partition is None else json.dumps(list(e.partition), separators=(",", ":"))
            for e in entries
        ],
        [None if e.deletion is None else e.deletion.to_json() for e in entries],
    )
    cols = [pa.array(v, f.type) for f, v in zip(_BASE_FIELDS, values, strict=True)]
    stats = stats_columns([e.stats for e in entries])
    fields = [*_BASE_FIELDS, *(pa.field(name, arr.type) for name, arr in stats.items())]
    schema = pa.schema(fields, metadata={_VERSION_KEY: str(MANIFEST_VERSION).encode()})
    return pa.Table.from_arrays([*cols, *stats.values()], schema=schema)


#: Manifests this large get zstd; smaller ones snappy (zstd's set-up per column costs more
#: than it saves on them: docs/benchmarks.md "Small commits, second pass").
_ZSTD_MIN_ENTRIES = 4096

#: Rows per row group of a manifest file: a read of a few fragments decodes few groups.
MANIFEST_ROW_GROUP = 8192


class ManifestData:
    """One manifest's entries as Arrow columns (statistics typed), checked as they are read.

    A version-2 manifest file is decoded lazily: pruning decodes the columns it needs
    (`column`), `take` only the row groups holding the fragments kept, and `entries`
    everything. Manifests built in memory (version 1, inlined entries, just written)
    hold their table. Values are checked when decoded (paths, schema ids, partition
    records, deletion vectors); column names and types when opened.
    """

    __slots__ = ("_columns", "_entries", "_file", "_lock", "_names", "_starts", "_table", "rel")

    def __init__(
        self,
        rel: str,
        *,
        table: pa.Table | None = None,
        file: pq.ParquetFile | None = None,
        entries: list[FragmentEntry] | None = None,
    ) -> None:
        self.rel = rel
        self._table = table
        self._file = file
        self._entries = entries
        self._columns: dict[str, pa.ChunkedArray[Any]] = {}
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._names: list[str] | None = None
        if file is not None:
            self._names = _check_schema(file.schema_arrow)
            rows = 0
            for g in range(file.metadata.num_row_groups):
                self._starts.append(rows)
                rows += file.metadata.row_group(g).num_rows
        elif table is not None:
            self._names = table.column_names
        else:
            assert entries is not None

    @property
    def names(self) -> list[str]:
        """The manifest's column names (`manifest_table` of in-memory entries)."""
        if self._names is None:
            self._names = self._in_memory().column_names
        return self._names

    @property
    def from_file(self) -> bool:
        """Whether the columns are decoded from a manifest file (else built in memory)."""
        return self._file is not None

    def _in_memory(self) -> pa.Table:
        if self._table is None:
            assert self._entries is not None
            self._table = manifest_table(self._entries)
        return self._table

    def few_entries(self, most: int = 64) -> list[FragmentEntry] | None:
        """The entries when they are built already and at most ``most`` (else None): for
        so few, per-entry work is cheaper than building columns."""
        if self._entries is not None and len(self._entries) <= most:
            return self._entries
        return None

    def partitioned(self) -> bool:
        """Whether any fragment of the manifest has partition values."""
        if self._entries is not None:
            return any(e.partition is not None for e in self._entries)
        return self.column("partition").null_count < len(self)

    def __len__(self) -> int:
        if self._file is not None:
            return int(self._file.metadata.num_rows)
        if self._entries is not None:
            return len(self._entries)
        assert self._table is not None
        return self._table.num_rows

    def _read(self, columns: list[str] | None = None, groups: list[int] | None = None) -> pa.Table:
        assert self._file is not None
        with self._lock:  # a ParquetFile is not safe to read from two threads at once
            try:
                if groups is None:
                    return self._file.read(columns=columns, use_threads=False)
                return self._file.read_row_groups(groups, columns=columns, use_threads=False)
            except (pa.ArrowException, OSError) as exc:  # pages that do not decode
                raise _corrupt(self.rel, exc) from exc

    def column(self, name: str) -> pa.ChunkedArray[Any]:
        """One whole column, a chunk per row group (checked: schema ids are object ids,
        partition records parse). Not concatenated: nothing needs one buffer."""
        hit = self._columns.get(name)
        if hit is not None:
            return hit
        if self._file is None:
            arr = self._in_memory().column(name)
        else:
            arr = self._read([name]).column(0)
            _check_column(name, arr, self.rel)
        self._columns[name] = arr
        return arr

    def prefetch(self, names: Sequence[str]) -> None:
        """Decode the columns ``names`` that are not decoded yet, in one read."""
        if self._file is None:
            return
        missing = [n for n in dict.fromkeys(names) if n not in self._columns and n in self.names]
        if not missing:
            return
        table = self._read(missing)
        for name in missing:
            arr = table.column(name)
            _check_column(name, arr, self.rel)
            self._columns[name] = arr

    def stat_names(self, fid: int) -> list[str]:
        """This manifest's statistics columns of field ``fid``."""
        prefix = f"stats.{fid}."
        return [c for c in self.names if c.startswith(prefix)]

    def entries(self) -> list[FragmentEntry]:
        """Every fragment entry, in order (built once)."""
        if self._entries is None:
            table = self._table if self._file is None else self._read()
            assert table is not None
            self._entries = _to_entries(_check_values(table, self.rel))
        return self._entries

    def take(self, rows: Sequence[int]) -> list[FragmentEntry]:
        """The entries at positions ``rows`` (ascending), building only those."""
        if self._entries is not None:
            return [self._entries[i] for i in rows]
        if not rows:
            return []
        if len(rows) == len(self):
            return self.entries()
        if self._file is None:
            part = self._in_memory().take(pa.array(rows, pa.int64()))
        else:
            assert self._file is not None
            group_of = [bisect.bisect_right(self._starts, r) - 1 for r in rows]
            groups = sorted(set(group_of))
            # A row's position in the read of ``groups``: minus its group's start, plus
            # the rows of the groups read before it.
            shift, at = {}, 0
            for g in groups:
                shift[g] = at - self._starts[g]
                at += self._file.metadata.row_group(g).num_rows
            local = [r + shift[g] for r, g in zip(rows, group_of, strict=True)]
            part = self._read(groups=groups).take(pa.array(local, pa.int64()))
        return _to_entries(_check_values(part, self.rel))


def _check_schema(schema: pa.Schema) -> list[str]:
    """A version-2 manifest's column names and types; raise ValueError when wrong."""
    names = list(schema.names)
    if names[: len(_BASE_NAMES)] != _BASE_NAMES:
        raise ValueError(f"the columns {names[: len(_BASE_NAMES)]} are not {_BASE_NAMES}")
    for f in _BASE_FIELDS:
        got = schema.field(f.name).type
        if f.name in _DICTIONARY and pa.types.is_dictionary(got):
            got = got.value_type
        if got != f.type:
            raise ValueError(f"column {f.name!r} has type {got}, not {f.type}")
    for name in names[len(_BASE_NAMES) :]:
        cls = _parse_stat_column(name)[2]
        want = pa.int64() if cls is None else CLASSES[cls]
        got = schema.field(name).type
        if got != want:
            raise ValueError(f"column {name!r} has type {got}, not {want}")
    return names


def _corrupt(rel: str, exc: Exception) -> CorruptMetadata:
    return CorruptMetadata(f"manifest {rel} cannot be parsed: {exc}", path=rel)


def _check_column(name: str, arr: pa.Array[Any] | pa.ChunkedArray[Any], rel: str) -> None:
    """Check the values of one decoded column that pruning reads."""
    try:
        if name == "schema_id":
            for sid in pc.unique(arr).to_pylist():
                check_object_id(sid)
        elif name == "partition":
            for part in pc.unique(arr).to_pylist():
                if part is not None:
                    parse_partition(part)
        if name in _REQUIRED and arr.null_count:
            raise ValueError(f"column {name!r} has missing values")
    except CorruptMetadata:
        raise
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise _corrupt(rel, exc) from exc


_REQUIRED = {f.name for f in _BASE_FIELDS if not f.nullable}
#: Columns read as dictionaries from manifest files (string values).
_DICTIONARY = ("schema_id", "partition")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building many acyclic objects.

    Millions of new dicts and entries trigger collections whose cost grows with the
    heap; none of them can free anything (nothing built here holds a cycle).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _to_entries(table: pa.Table) -> list[FragmentEntry]:
    """Python entries of a checked manifest table."""
    with _gc_paused():
        return _build_entries(table)


def _build_entries(table: pa.Table) -> list[FragmentEntry]:
    cols = {n: table.column(n).to_pylist() for n in _BASE_NAMES}
    n = table.num_rows
    stats: list[dict[int, dict[str, Any]]] = [{} for _ in range(n)]
    for name in table.column_names[len(_BASE_NAMES) :]:
        fid, key, _ = _parse_stat_column(name)
        for i, v in enumerate(table.column(name).to_pylist()):
            if v is not None:
                s = stats[i].get(fid)
                if s is None:
                    s = stats[i][fid] = {}
                s[key] = v
    partitions = functools.lru_cache(maxsize=None)(parse_partition)
    return [
        FragmentEntry(
            path=p,
            num_rows=rows,
            size_bytes=size,
            content_hash=h,
            stats=st,
            schema_id=sid,
            partition=partitions(part),
            deletion=None
            if dv is None
            else DeletionVector(dv["path"], dv["content_hash"], dv["count"]),
        )
        for p, rows, size, h, st, sid, part, dv in zip(
            cols["path"],
            cols["num_rows"],
            cols["size_bytes"],
            cols["content_hash"],
            stats,
            cols["schema_id"],
            cols["partition"],
            cols["deletion_vector"],
            strict=True,
        )
    ]


def _live(entries: Sequence[FragmentEntry]) -> tuple[int, int]:
    """A manifest's live rows, and the rows its entries' deletion vectors hide."""
    return sum(e.live_rows for e in entries), sum(e.deleted_rows for e in entries)


def write_manifest(
    storage: Storage, entries: Sequence[FragmentEntry], *, level: int
) -> ManifestRef:
    """Write one manifest listing ``entries``; return its reference for the manifest list."""
    table = manifest_table(entries)
    sink = pa.BufferOutputStream()
    codec: Literal["zstd", "snappy"] = "zstd" if len(entries) >= _ZSTD_MIN_ENTRIES else "snappy"
    pq.write_table(table, sink, compression=codec, row_group_size=MANIFEST_ROW_GROUP)
    data = sink.getvalue().to_pybytes()
    rel = new_name(MANIFEST_DIR)
    storage.write_new(rel, data)
    content_hash = f"sha256:{sha256_hex(data)}"
    parsed = ManifestData(rel, table=table, entries=list(entries))
    _CACHE.put((f"{storage.uri}/{rel}", content_hash), parsed)
    return _ref(entries, level, path=rel, content_hash=content_hash)


def _ref(
    entries: Sequence[FragmentEntry],
    level: int,
    *,
    path: str | None = None,
    content_hash: str | None = None,
    inline: tuple[FragmentEntry, ...] | None = None,
) -> ManifestRef:
    """The manifest list's reference to a manifest of ``entries`` (a file, or inlined)."""
    live, deleted = _live(entries)
    return ManifestRef(
        path=path,
        content_hash=content_hash,
        fragments=len(entries),
        rows=live,
        bytes=sum(e.size_bytes for e in entries),
        level=level,
        inline=inline,
        deleted_rows=deleted,
    )


#: Process-wide LRU of parsed manifests, weighed by fragments.
#: Manifests are immutable and verified by content hash, so a parsed copy can be
#: reused by every later snapshot (and by manifest merges) without re-reading.
_CACHE: Lru[tuple[str, str], ManifestData] = Lru(4_000_000, weight=len, keep_first=True)


def make_manifest(storage: Storage, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
    """Return a level manifest for ``entries``: inlined if small, else written as a file."""
    if len(entries) <= INLINE_MAX_FRAGMENTS:
        return _ref(entries, level, inline=tuple(entries))
    return write_manifest(storage, entries, level=level)


def manifest_data(storage: Storage, ref: ManifestRef) -> ManifestData:
    """A manifest's parsed columns; a file is verified against its hash (and cached)."""
    if ref.inline is not None:
        return ManifestData("(inline)", entries=list(ref.inline))
    assert ref.path is not None
    assert ref.content_hash is not None
    key = (f"{storage.uri}/{ref.path}", ref.content_hash)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    data = _read_manifest_file(storage, ref.path, ref.content_hash)
    _CACHE.put(key, data)
    return data


def read_manifest(storage: Storage, ref: ManifestRef) -> list[FragmentEntry]:
    """Return a manifest's entries; a file is verified against its hash (and cached)."""
    return list(manifest_data(storage, ref).entries())


def manifests_data(storage: Storage, refs: Sequence[ManifestRef]) -> list[ManifestData]:
    """The parsed columns of every manifest of ``refs``, in order.

    On remote storage the manifest files not cached yet are fetched concurrently:
    a request each, in flight together, instead of one round trip after another.
    """
    missing = [
        r
        for r in refs
        if r.inline is None and _CACHE.get((f"{storage.uri}/{r.path}", str(r.content_hash))) is None
    ]
    if len(missing) > 1 and not storage.is_local:
        with ThreadPoolExecutor(max_workers=min(16, len(missing))) as pool:
            list(pool.map(lambda r: manifest_data(storage, r), missing))
    return [manifest_data(storage, r) for r in refs]


def read_manifests(storage: Storage, refs: Sequence[ManifestRef]) -> list[FragmentEntry]:
    """The entries of every manifest of ``refs``, in order."""
    return [e for d in manifests_data(storage, refs) for e in d.entries()]


def _read_manifest_file(storage: Storage, path: str, content_hash: str) -> ManifestData:
    rel = check_relative(path)
    try:
        data = storage.read_object(rel, content_hash)
    except FileNotFoundError as exc:
        raise CorruptMetadata(
            f"manifest {rel} referenced by the snapshot is missing; it was deleted outside lakever",
            path=rel,
        ) from exc
    if f"sha256:{sha256_hex(data)}" != content_hash:
        raise CorruptMetadata(
            f"manifest {rel} does not match the hash recorded in its snapshot; it was modified "
            "after it was written",
            path=rel,
        )
    return parse_manifest_data(data, rel)


def parse_manifest(data: bytes, rel: str) -> list[FragmentEntry]:
    """The entries of manifest ``rel`` from its bytes (see `parse_manifest_data`)."""
    return parse_manifest_data(data, rel).entries()


def parse_manifest_data(data: bytes, rel: str) -> ManifestData:
    """Manifest ``rel`` parsed from its bytes (either version) and checked.

    Raises:
        CorruptMetadata: the bytes are not a manifest.
    """
    try:
        try:  # one footer parse: version 2 decodes these columns as dictionaries
            file = pq.ParquetFile(pa.BufferReader(data), read_dictionary=list(_DICTIONARY))
        except KeyError:  # no such column: version 1, or damage `_check_schema` names
            file = pq.ParquetFile(pa.BufferReader(data))
        version = (file.schema_arrow.metadata or {}).get(_VERSION_KEY)
        if version is None:  # version 1 reads its columns plain
            entries = parse_v1(pq.ParquetFile(pa.BufferReader(data)).read())
            return ManifestData(rel, table=manifest_table(entries), entries=entries)
        if version != str(MANIFEST_VERSION).encode():
            shown = version.decode(errors="replace")
            raise CorruptMetadata(
                f"manifest {rel} has manifest version {shown!r}, which this lakever does not "
                f"read (it reads 1 and {MANIFEST_VERSION}); upgrade lakever",
                path=rel,
            )
        _check_schema(file.schema_arrow)  # raises when a dictionary column was missing
        return ManifestData(rel, file=file)
    except CorruptMetadata:
        raise
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise _corrupt(rel, exc) from exc


#: Stored paths that could escape the dataset root: a "." or ".." component.
_DOT_PART = r"(^|/)\.\.?(/|$)"


def _bad_paths(paths: pa.Array[Any]) -> list[Any]:
    """The values of a string column that `check_relative` would refuse (vectorised)."""
    plain = pc.match_substring_regex(paths, "^" + _PLAIN_PATH.pattern + "$")
    dots = pc.match_substring_regex(paths, _DOT_PART)
    bad = pc.or_kleene(pc.invert(plain), dots).fill_null(True)
    return paths.filter(bad).to_pylist()[:3]  # type: ignore[arg-type]


def _check_values(table: pa.Table, rel: str) -> pa.Table:
    """Check the rows of a manifest that become entries: paths, ids, records, counts."""
    try:
        for name in _REQUIRED:
            if table.column(name).null_count:
                raise ValueError(f"column {name!r} has missing values")
        bad = _bad_paths(table.column("path").combine_chunks())
        if bad:
            check_relative(bad[0])  # raises the usual error
        for name in ("schema_id", "partition"):
            _check_column(name, table.column(name).combine_chunks(), rel)
        dv = table.column("deletion_vector").combine_chunks()
        dvs = dv.drop_null()
        if len(dvs):
            bad = _bad_paths(pc.struct_field(dvs, "path"))
            if bad:
                check_relative(bad[0])
            if pc.min(pc.struct_field(dvs, "count")).as_py() <= 0:
                raise ValueError("a deletion vector deletes no rows")
            rows = table.column("num_rows").combine_chunks()
            if pc.any(pc.greater(pc.struct_field(dv, "count"), rows)).as_py():
                raise ValueError("a deletion vector deletes more rows than its fragment has")
    except CorruptMetadata:
        raise
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise _corrupt(rel, exc) from exc
    return table
