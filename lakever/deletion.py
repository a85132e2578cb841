"""Deletion vectors: which rows of a fragment are deleted, as an immutable file.

A deletion vector (DV) is a plain Parquet file with one int64 column,
``position``: the 0-based positions, in file order, of the deleted rows of one
fragment, sorted and unique. Any Parquet reader can read it (DuckDB does, in
`lakever.sql`); runs of consecutive positions cost almost nothing thanks to the
DELTA_BINARY_PACKED encoding. A DV holds *all* the deleted rows of its fragment,
so a later delete writes a new DV (the union) and a new manifest entry, and the
fragment file itself never changes.

DV files are content-addressed (``_lakever/deletions/<object id>.parquet``),
written with put-if-absent, verified against their hash on every read, and
cached per process like manifests.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakever._lru import Lru
from lakever.errors import CorruptMetadata
from lakever.format import (
    DELETION_DIR,
    DeletionVector,
    check_relative,
    object_id,
    sha256_hex,
)
from lakever.storage import Storage

__all__ = [
    "difference",
    "encode",
    "keep_mask",
    "positions_of",
    "union",
    "write_deletion_vector",
]

#: Sorted, unique int64 row positions.
Positions: TypeAlias = "pa.Array[Any]"


class Deletable(Protocol):
    """A fragment and its deletion vector (a manifest entry or a read task)."""

    @property
    def path(self) -> str: ...

    @property
    def num_rows(self) -> int: ...

    @property
    def deletion(self) -> DeletionVector | None: ...


_SCHEMA = pa.schema([pa.field("position", pa.int64(), nullable=False)])
#: Positions kept in the process-wide cache (8 bytes each).
_CACHE_POSITIONS = 16_000_000


def encode(positions: Positions) -> bytes:
    """The bytes of a DV file holding ``positions`` (sorted, unique, non-negative)."""
    table = pa.Table.from_arrays([positions.cast(pa.int64())], schema=_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=False,
        column_encoding={"position": "DELTA_BINARY_PACKED"},
    )
    return bytes(sink.getvalue().to_pybytes())


def write_deletion_vector(storage: Storage, positions: Positions) -> DeletionVector:
    """Store a DV for ``positions`` (if absent: its name is its hash); return its reference."""
    data = encode(positions)
    rel = f"{DELETION_DIR}/{object_id(data)}.parquet"
    # False means these exact bytes are already stored under their hash: nothing to do.
    # Durable by the commit's own flush, before its log entry can reference it.
    storage.publish_content(rel, data)
    dv = DeletionVector(path=rel, content_hash=f"sha256:{sha256_hex(data)}", count=len(positions))
    _CACHE.put((storage.uri, dv.content_hash), positions.cast(pa.int64()))
    return dv


def _new_cache(max_positions: int) -> Lru[tuple[str, str], Positions]:
    """A process-wide LRU of parsed DVs (immutable and verified, so always valid),
    within a budget of positions."""
    return Lru(max_positions, weight=len, keep_first=True)


_CACHE = _new_cache(_CACHE_POSITIONS)


def positions_of(storage: Storage, entry: Deletable) -> Positions:
    """The deleted positions of ``entry`` (empty without a DV), verified against the entry.

    Raises:
        CorruptMetadata: the DV file is missing, does not match its hash, or does
            not hold ``count`` sorted unique positions inside the fragment.
    """
    dv = entry.deletion
    if dv is None:
        return pa.array([], pa.int64())
    key = (storage.uri, dv.content_hash)
    hit = _CACHE.get(key)
    if hit is not None and len(hit) == dv.count and (not hit or hit[-1].as_py() < entry.num_rows):
        return hit
    rel = check_relative(dv.path)
    try:
        data = storage.read_object(rel, dv.content_hash)
    except FileNotFoundError as exc:
        raise CorruptMetadata(
            f"deletion vector {rel} of fragment {entry.path} is missing; it was deleted "
            "outside lakever",
            path=storage.full_path(rel),
        ) from exc
    if f"sha256:{sha256_hex(data)}" != dv.content_hash:
        raise CorruptMetadata(
            f"deletion vector {rel} does not match the hash recorded for fragment "
            f"{entry.path}; it was modified after it was written",
            path=storage.full_path(rel),
        )
    try:
        column = pq.read_table(pa.BufferReader(data)).column("position")
        positions = column.combine_chunks().cast(pa.int64())
    except (pa.ArrowException, KeyError) as exc:
        raise CorruptMetadata(
            f"deletion vector {rel} cannot be parsed: {exc}", path=storage.full_path(rel)
        ) from exc
    if not _valid(positions, dv.count, entry.num_rows):
        raise CorruptMetadata(
            f"deletion vector {rel} of fragment {entry.path} does not hold {dv.count} sorted, "
            f"unique positions below {entry.num_rows}",
            path=storage.full_path(rel),
        )
    _CACHE.put(key, positions)
    return positions


def _valid(positions: Positions, count: int, num_rows: int) -> bool:
    if len(positions) != count or positions.null_count:
        return False
    if count == 0:
        return True
    if positions[0].as_py() < 0 or positions[-1].as_py() >= num_rows:
        return False
    if count == 1:
        return True
    steps = pc.subtract(positions.slice(1), positions.slice(0, count - 1))
    return bool(pc.min(steps).as_py() > 0)


def union(a: Positions, b: Positions) -> Positions:
    """Sorted unique positions in ``a`` or ``b``."""
    if len(a) == 0 or len(b) == 0:  # a first delete: the new positions alone, if in order
        only = (b if len(a) == 0 else a).cast(pa.int64())
        values = only.to_numpy(zero_copy_only=False)
        if len(values) < 2 or bool((values[1:] > values[:-1]).all()):
            return only
    both = pa.concat_arrays([a.cast(pa.int64()), b.cast(pa.int64())])
    unique = pc.unique(both)
    return unique.take(pc.sort_indices(unique))


def difference(a: Positions, b: Positions) -> Positions:
    """Positions of ``a`` that are not in ``b`` (order of ``a`` kept)."""
    a = a.cast(pa.int64())
    if len(b) == 0 or len(a) == 0:
        return a
    return a.filter(pc.invert(pc.is_in(a, value_set=b.cast(pa.int64()))))


def keep_mask(num_rows: int, positions: Positions) -> pa.BooleanArray:
    """A boolean array of ``num_rows`` values, False at ``positions`` and True elsewhere."""
    import numpy as np

    keep = np.ones(num_rows, dtype=np.bool_)
    keep[positions.cast(pa.int64()).to_numpy(zero_copy_only=False)] = False
    mask: pa.BooleanArray = pa.array(keep, pa.bool_())
    return mask
