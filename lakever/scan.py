"""Reading a snapshot's fragments into Arrow, without DuckDB or polars.

Used for unfiltered reads (the fast path); filtered reads go through
`lakever.sql`. Rows come back in manifest order, then file order, so two reads
of one snapshot always return the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.format import FragmentEntry
from lakever.storage import Storage

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["check_columns", "iter_batches", "read_table", "rebatch"]


def check_columns(schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    """Validate a projection; return the column names to read."""
    if columns is None:
        return list(schema.names)
    if isinstance(columns, str):
        raise InvalidArgument(f"columns must be a list of names, got the string {columns!r}")
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InvalidArgument(
            f"unknown column(s) {missing}; the snapshot has columns {schema.names}"
        )
    return list(columns)


def _dataset(
    storage: Storage, schema: pa.Schema, fragments: Sequence[FragmentEntry]
) -> pads.Dataset:
    # pyarrow.dataset imports pandas (~0.4 s): load it on the first read, not on import.
    import pyarrow.dataset as pads

    return pads.dataset(
        [storage.full_path(f.path) for f in fragments],
        schema=schema,
        format="parquet",
        filesystem=storage.arrow_filesystem(),
    )


def read_table(
    storage: Storage,
    schema: pa.Schema,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
    columns: Sequence[str] | None,
) -> pa.Table:
    """Read the fragments as one table in the ``public`` schema (projected)."""
    names = check_columns(public, columns)
    out_schema = pa.schema([public.field(n) for n in names])
    if not fragments:
        return out_schema.empty_table()
    table = _dataset(storage, schema, fragments).to_table(columns=names)
    return table.cast(out_schema)


def iter_batches(
    storage: Storage,
    schema: pa.Schema,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
    columns: Sequence[str] | None,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of the fragments in the ``public`` schema (projected)."""
    names = check_columns(public, columns)
    out_schema = pa.schema([public.field(n) for n in names])
    if not fragments:
        return
    scanner = _dataset(storage, schema, fragments).scanner(columns=names, batch_size=batch_size)
    for batch in scanner.to_batches():
        yield batch.cast(out_schema)


def rebatch(batches: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches so each has exactly ``batch_size`` rows, except possibly the last."""
    pending: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_size - n, batch.num_rows)
            pending.append(batch.slice(0, take))
            n += take
            batch = batch.slice(take)
            if n == batch_size:
                yield _concat(pending)
                pending, n = [], 0
    if n:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
