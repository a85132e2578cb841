"""Data fragments and manifests: writing Parquet with field ids, stats and hashes.

A fragment is one immutable Parquet file. Its manifest entry records the row
count, size, SHA-256 of the bytes, per-column min/max/null counts keyed by field
id, and the id of the schema the file was written under. A manifest is itself a
small immutable Parquet file of such entries.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakever._batching import regroup
from lakever._lru import Lru
from lakever.errors import CorruptMetadata
from lakever.format import (
    DATA_DIR,
    MANIFEST_DIR,
    DeletionVector,
    FragmentEntry,
    ManifestRef,
    check_object_id,
    check_relative,
    parse_partition,
    sha256_hex,
)
from lakever.schema import FIELD_ID_KEY
from lakever.storage import Storage

__all__ = [
    "DEFAULT_MAX_ROWS_PER_FRAGMENT",
    "INLINE_MAX_FRAGMENTS",
    "make_manifest",
    "parse_manifest",
    "read_manifest",
    "read_manifests",
    "write_fragments",
    "write_manifest",
]

#: Rows per fragment before a write starts a new one (also the row-group size).
DEFAULT_MAX_ROWS_PER_FRAGMENT = 1 << 20
#: Rows per Parquet row group in the fragments lakever writes: the unit a read task of a
#: larger fragment covers (`ScanPlan.split`).
ROW_GROUP_ROWS = 1 << 20
#: A commit adding at most this many fragments inlines their entries in its snapshot record.
INLINE_MAX_FRAGMENTS = 4
_MAX_STAT_STRING = 64
_WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------------------- stats


def _stat_value(value: Any, t: pa.DataType) -> Any:
    """Encode one min/max scalar as JSON (None when it cannot be a useful bound)."""
    if value is None:
        return None
    if pa.types.is_floating(t):
        f = float(value)
        return f if f == f and f not in (float("inf"), float("-inf")) else None
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return value
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return value if len(value) <= _MAX_STAT_STRING else None
    if isinstance(value, Decimal):
        return str(value)
    return None


def _parquet_string_bounds(meta: pq.FileMetaData | None) -> dict[str, tuple[Any, Any]]:
    """min/max of top-level string columns from the Parquet footer (free to read)."""
    out: dict[str, tuple[Any, Any]] = {}
    if meta is None or meta.num_row_groups == 0:
        return out
    for j in range(meta.num_columns):
        lo = hi = None
        for g in range(meta.num_row_groups):
            col = meta.row_group(g).column(j)
            st = col.statistics
            if "." in col.path_in_schema or st is None or not st.has_min_max:
                if st is None or st.null_count != col.num_values:
                    lo = hi = None
                    break
                continue
            if not isinstance(st.min, str) or not isinstance(st.max, str):
                lo = hi = None
                break
            lo = st.min if lo is None or st.min < lo else lo
            hi = st.max if hi is None or st.max > hi else hi
        else:
            if lo is not None:
                out[meta.row_group(0).column(j).path_in_schema] = (lo, hi)
    return out


def _stats_for(table: pa.Table, meta: pq.FileMetaData | None = None) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    strings = _parquet_string_bounds(meta)
    for f, col in zip(table.schema, table.columns, strict=True):
        raw = (f.metadata or {}).get(FIELD_ID_KEY)
        if raw is None:
            continue
        entry: dict[str, Any] = {"nulls": col.null_count}
        if pa.types.is_floating(f.type) and not pa.types.is_float16(f.type):
            entry["nans"] = pc.sum(pc.is_nan(col).cast(pa.int64())).as_py() or 0
        t = f.type
        if (
            pa.types.is_integer(t)
            or (pa.types.is_floating(t) and not pa.types.is_float16(t))
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_decimal(t)
            or pa.types.is_boolean(t)
            or (pa.types.is_temporal(t) and not pa.types.is_duration(t))
        ) and col.null_count < len(col):
            if f.name in strings:
                # String min/max is the costly one; the Parquet writer computed it already.
                lo_str, hi_str = (_stat_value(v, t) for v in strings[f.name])
                if lo_str is not None and hi_str is not None:
                    entry["min"], entry["max"] = lo_str, hi_str
                out[int(raw)] = entry
                continue
            mm = pc.min_max(col)
            lo_s, hi_s = mm["min"], mm["max"]
            ptype = t
            if pa.types.is_temporal(t):
                # Dates, times and timestamps are recorded as their integer ticks.
                ptype = pa.int32() if t.bit_width == 32 else pa.int64()
                lo_s, hi_s = lo_s.cast(ptype), hi_s.cast(ptype)
            lo, hi = _stat_value(lo_s.as_py(), ptype), _stat_value(hi_s.as_py(), ptype)
            if lo is not None and hi is not None:
                entry["min"], entry["max"] = lo, hi
        out[int(raw)] = entry
    return out


# ------------------------------------------------------------------------- fragments


def _new_name(directory: str) -> str:
    return f"{directory}/{uuid.uuid4().hex}.parquet"


def _write_one(
    storage: Storage,
    table: pa.Table,
    schema_id: str,
    subdir: str = "",
    partition: Sequence[dict[str, Any]] | None = None,
) -> FragmentEntry:
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    buf = sink.getvalue()
    data = memoryview(buf)
    rel = _new_name(f"{DATA_DIR}/{subdir}" if subdir else DATA_DIR)
    digest = sha256_hex(data)
    storage.write_new(rel, data)
    return FragmentEntry(
        path=rel,
        num_rows=table.num_rows,
        size_bytes=buf.size,
        content_hash=f"sha256:{digest}",
        stats=_stats_for(table, writer.writer.metadata),
        schema_id=schema_id,
        partition=None if partition is None else tuple(partition),
    )


#: A group of rows to write: (subdirectory under data/, partition record, rows).
Piece = tuple[str, "Sequence[dict[str, Any]] | None", pa.Table]
#: Splits conformed rows into pieces (partitioning and sorting); None: one piece.
Layout = Callable[[pa.Table], Iterable[Piece]]


def _chunks(pieces: Iterable[Piece], max_rows: int) -> Iterator[Piece]:
    """Regroup pieces into pieces of at most ``max_rows`` rows, never mixing partitions."""
    for subdir, group in itertools.groupby(pieces, key=lambda piece: piece[0]):
        head = next(group)
        # Each group is consumed in full by regroup before groupby moves on.
        rest = (piece[2] for piece in group)  # noqa: B031
        for table in regroup(itertools.chain([head[2]], rest), max_rows, pa.concat_tables):
            yield subdir, head[1], table


def write_fragments(
    storage: Storage,
    tables: Iterable[pa.Table],
    *,
    schema_id: str,
    max_rows: int = DEFAULT_MAX_ROWS_PER_FRAGMENT,
    layout: Layout | None = None,
) -> list[FragmentEntry]:
    """Write conformed tables as fragments (in parallel threads); return their entries.

    Every table is in the schema whose id is ``schema_id``. ``layout`` splits rows
    by partition (and sorts them); each fragment holds one partition. The order of
    the returned entries follows the order of the pieces.
    """
    pieces: Iterable[Piece] = (
        ((("", None, t) for t in tables))
        if layout is None
        else (p for t in tables for p in layout(t))
    )
    chunks = _chunks(pieces, max_rows)
    first = next(chunks, None)
    if first is None:
        return []
    second = next(chunks, None)
    if second is None:
        return [_write_one(storage, first[2], schema_id, first[0], first[1])]
    futures: list[Future[FragmentEntry]] = []
    pending: set[Future[FragmentEntry]] = set()
    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        for subdir, partition, chunk in itertools.chain((first, second), chunks):
            # Bound memory: at most a few chunks in flight beyond the workers.
            while len(pending) >= 2 * _WRITE_THREADS:
                _, pending = wait(pending, return_when=FIRST_COMPLETED)
            future = pool.submit(_write_one, storage, chunk, schema_id, subdir, partition)
            futures.append(future)
            pending.add(future)
        return [f.result() for f in futures]


# ------------------------------------------------------------------------- manifests

_MANIFEST_SCHEMA = pa.schema(
    [  # type: ignore[arg-type]  # pyarrow-stubs: Field[...] of differing types is list[object]
        pa.field("path", pa.string(), nullable=False),
        pa.field("num_rows", pa.int64(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("stats", pa.string(), nullable=False),
        pa.field("schema_id", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=True),
        pa.field(
            "deletion_vector",
            pa.struct(
                [
                    pa.field("path", pa.string(), nullable=False),
                    pa.field("content_hash", pa.string(), nullable=False),
                    pa.field("count", pa.int64(), nullable=False),
                ]
            ),
            nullable=True,
        ),
    ]
)


def _live(entries: Sequence[FragmentEntry]) -> tuple[int, int]:
    """A manifest's live rows, and the rows its entries' deletion vectors hide."""
    return sum(e.live_rows for e in entries), sum(e.deleted_rows for e in entries)


def write_manifest(
    storage: Storage, entries: Sequence[FragmentEntry], *, level: int
) -> ManifestRef:
    """Write one manifest listing ``entries``; return its reference for the manifest list."""
    table = pa.Table.from_pydict(
        {
            "path": [e.path for e in entries],
            "num_rows": [e.num_rows for e in entries],
            "size_bytes": [e.size_bytes for e in entries],
            "content_hash": [e.content_hash for e in entries],
            "stats": [
                json.dumps({str(k): v for k, v in e.stats.items()}, separators=(",", ":"))
                for e in entries
            ],
            "schema_id": [e.schema_id for e in entries],
            "partition": [
                None
                if e.partition is None
                else json.dumps(list(e.partition), separators=(",", ":"))
                for e in entries
            ],
            "deletion_vector": [
                None if e.deletion is None else e.deletion.to_json() for e in entries
            ],
        },
        schema=_MANIFEST_SCHEMA,
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    rel = _new_name(MANIFEST_DIR)
    storage.write_new(rel, data)
    content_hash = f"sha256:{sha256_hex(data)}"
    _CACHE.put((f"{storage.uri}/{rel}", content_hash), list(entries))
    live, deleted = _live(entries)
    return ManifestRef(
        path=rel,
        content_hash=content_hash,
        fragments=len(entries),
        rows=live,
        bytes=sum(e.size_bytes for e in entries),
        level=level,
        deleted_rows=deleted,
    )


#: Process-wide LRU of parsed manifests.
#:
#: Manifests are immutable and verified by content hash, so a parsed copy can be
#: reused by every later snapshot (and by manifest merges) without re-reading.
_CACHE: Lru[tuple[str, str], list[FragmentEntry]] = Lru(1_000_000, weight=len, keep_first=True)


def make_manifest(storage: Storage, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
    """Return a level manifest for ``entries``: inlined if small, else written as a file."""
    if len(entries) <= INLINE_MAX_FRAGMENTS:
        live, deleted = _live(entries)
        return ManifestRef(
            path=None,
            content_hash=None,
            fragments=len(entries),
            rows=live,
            bytes=sum(e.size_bytes for e in entries),
            level=level,
            inline=tuple(entries),
            deleted_rows=deleted,
        )
    return write_manifest(storage, entries, level=level)


def read_manifest(storage: Storage, ref: ManifestRef) -> list[FragmentEntry]:
    """Return a manifest's entries; a file is verified against its hash (and cached)."""
    if ref.inline is not None:
        return list(ref.inline)
    assert ref.path is not None
    assert ref.content_hash is not None
    key = (f"{storage.uri}/{ref.path}", ref.content_hash)
    cached = _CACHE.get(key)
    if cached is not None:
        return list(cached)
    entries = _read_manifest_file(storage, ref.path, ref.content_hash)
    _CACHE.put(key, entries)
    return list(entries)


def read_manifests(storage: Storage, refs: Sequence[ManifestRef]) -> list[FragmentEntry]:
    """The entries of every manifest of ``refs``, in order.

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
            list(pool.map(lambda r: read_manifest(storage, r), missing))
    return [e for r in refs for e in read_manifest(storage, r)]


def _read_manifest_file(storage: Storage, path: str, content_hash: str) -> list[FragmentEntry]:
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
    return parse_manifest(data, rel)


def parse_manifest(data: bytes, rel: str) -> list[FragmentEntry]:
    """The entries of manifest ``rel`` from its bytes (their hash checked by the caller).

    Raises:
        CorruptMetadata: the bytes are not a manifest.
    """
    try:
        table = pq.ParquetFile(pa.BufferReader(data)).read()
        cols = table.to_pydict()
        # Manifests written before deletion vectors existed have no such column.
        dvs = cols.get("deletion_vector") or [None] * table.num_rows
        # A manifest holds few distinct partition records: parse each once.
        partitions = functools.lru_cache(maxsize=None)(parse_partition)
        # One JSON parse for the whole column: ~3x faster than one per fragment.
        all_stats = json.loads("[" + ",".join(cols["stats"]) + "]") if cols["stats"] else []
        if len(all_stats) != table.num_rows or not all(isinstance(x, dict) for x in all_stats):
            raise ValueError("the stats column does not hold one JSON object per fragment")
        entries = [
            FragmentEntry(
                path=check_relative(p),
                num_rows=n,
                size_bytes=s,
                content_hash=h,
                stats={int(k): v for k, v in st.items()},
                schema_id=check_object_id(sid),
                partition=partitions(part),
                deletion=DeletionVector.from_json(dv),
            )
            for p, n, s, h, st, sid, part, dv in zip(
                cols["path"],
                cols["num_rows"],
                cols["size_bytes"],
                cols["content_hash"],
                all_stats,
                cols["schema_id"],
                cols.get("partition") or [None] * len(cols["path"]),
                dvs,
                strict=True,
            )
        ]
        if any(e.deleted_rows > e.num_rows for e in entries):
            raise ValueError("a deletion vector deletes more rows than its fragment has")
        return entries
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise CorruptMetadata(f"manifest {rel} cannot be parsed: {exc}", path=rel) from exc
