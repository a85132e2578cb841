"""Manifests: immutable Parquet files listing a snapshot's fragment entries.

A manifest records, per fragment, its path, row count, size, SHA-256, the id of
the schema it was written under, its partition record, its deletion vector and
its column statistics keyed by field id. Small groups of entries are inlined in
the snapshot record instead (`make_manifest`). Parsed manifests are cached per
process by (location, content hash): they never change once written.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from lakever._lru import Lru
from lakever.errors import CorruptMetadata
from lakever.format import (
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
    "make_manifest",
    "parse_manifest",
    "read_manifest",
    "read_manifests",
    "write_manifest",
]

#: A commit adding at most this many fragments inlines their entries in its snapshot record.
INLINE_MAX_FRAGMENTS = 4

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
    rel = new_name(MANIFEST_DIR)
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
