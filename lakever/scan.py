"""Reading a snapshot's fragments into Arrow, without DuckDB or polars.

Used for unfiltered reads (the fast path); filtered reads go through
`lakever.sql`. Rows come back in manifest order, then file order, so two reads
of one snapshot always return the same rows in the same order. Fragments
written under an older schema are read through the snapshot's schema by field
id (see `lakever.projection`). Rows the fragments' deletion vectors list are
dropped right after the files are read, keeping the order of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

import pyarrow as pa

from lakever._batching import regroup
from lakever.deletion import keep_mask, keep_mask_of, positions_of
from lakever.errors import InvalidArgument
from lakever.format import FragmentEntry
from lakever.projection import Plan, plan, project
from lakever.storage import Storage

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["check_columns", "iter_batches", "read_file", "read_table", "rebatch"]


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


def read_file(storage: Storage, physical: pa.Schema, entry: FragmentEntry) -> pa.Table:
    """One fragment's file as written: its physical schema (with field ids), no row deleted."""
    return _dataset(storage, physical, [entry]).to_table()


#: Returns the schema (with field ids) stored under a schema id.
SchemaLoader = Callable[[str], pa.Schema]


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive fragments written under one schema, and how to read them."""

    fragments: list[FragmentEntry]
    #: The schema the files were written under, restricted to the columns to read.
    physical: pa.Schema
    #: None: the files already have the output schema (the common, zero-work case).
    plans: tuple[Plan, ...] | None


def _runs(
    schema: pa.Schema,
    snapshot_sid: str,
    fragments: Sequence[FragmentEntry],
    names: list[str],
    schemas: SchemaLoader,
) -> Iterator[_Run]:
    """Split the fragments (in order) into runs sharing a physical schema; plan each run.

    Fragments written under the snapshot's own schema are read as they are; the
    others are read through a projection by field id (renamed, widened, added
    and dropped columns), so no fragment is ever rewritten.
    """
    wanted = [schema.field(n) for n in names]
    for sid, group in groupby(fragments, key=lambda f: f.schema_id):
        run = list(group)
        if sid == snapshot_sid:
            yield _Run(run, pa.schema(wanted), None)
            continue
        physical = schemas(sid)
        yield _Run(run, physical, plan(list(physical), wanted, by="id"))


def _read_names(run: _Run) -> list[str]:
    if run.plans is None:
        return list(run.physical.names)
    return sorted(
        {run.physical.field(p.source).name for p in run.plans if p.source is not None},
        key=run.physical.names.index,
    )


def read_table(
    storage: Storage,
    schema: pa.Schema,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
    columns: Sequence[str] | None,
    schemas: SchemaLoader,
    schema_id: str,
) -> pa.Table:
    """Read the fragments as one table in the ``public`` schema (projected).

    Args:
        schema: the snapshot schema, with field ids.
        public: the same without field ids (what readers see).
        schemas: loads the schema a fragment was written under, by schema id.
        schema_id: the id of ``schema``: fragments written under it need no projection.
    """
    names = check_columns(public, columns)
    out_schema = pa.schema([public.field(n) for n in names])
    if not fragments:
        return out_schema.empty_table()
    tables = []
    for run in _runs(schema, schema_id, fragments, names, schemas):
        tables.append(_read_run(storage, run, out_schema))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _live(storage: Storage, fragments: Sequence[FragmentEntry], table: pa.Table) -> pa.Table:
    """``table`` (the files of ``fragments``, in order) without the deleted rows.

    Only the slices of fragments with deleted rows are filtered (copied); the
    others are kept as they are.
    """
    if all(f.deletion is None for f in fragments):
        return table
    parts, offset = [], 0
    for f in fragments:
        part = table.slice(offset, f.num_rows)
        offset += f.num_rows
        if f.deletion is not None:
            part = part.filter(keep_mask(f.num_rows, positions_of(storage, f)))
        parts.append(part)
    return pa.concat_tables(parts)


def _read_run(storage: Storage, run: _Run, out_schema: pa.Schema) -> pa.Table:
    read = _read_names(run)
    # The run's files are read together (in parallel, in order), then filtered.
    if run.plans is None:
        table = _dataset(storage, run.physical, run.fragments).to_table(columns=read)
        return _live(storage, run.fragments, table).cast(out_schema)
    if read:
        table = _dataset(storage, run.physical, run.fragments).to_table(columns=read)
        table = _live(storage, run.fragments, table)
    else:  # every wanted column was added after these files: all null
        table = pa.table({"_": pa.nulls(sum(f.live_rows for f in run.fragments))})
    return project(table, run.physical, run.plans, out_schema)


def iter_batches(
    storage: Storage,
    schema: pa.Schema,
    public: pa.Schema,
    fragments: Sequence[FragmentEntry],
    columns: Sequence[str] | None,
    batch_size: int,
    schemas: SchemaLoader,
    schema_id: str,
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of the fragments in the ``public`` schema (see `read_table`)."""
    names = check_columns(public, columns)
    out_schema = pa.schema([public.field(n) for n in names])
    if not fragments:
        return
    for run in _runs(schema, schema_id, fragments, names, schemas):
        read = _read_names(run)
        if run.plans is not None and not read:
            yield from _null_batches(run, out_schema, batch_size)
            continue
        scanner = _dataset(storage, run.physical, run.fragments).scanner(
            columns=read, batch_size=batch_size
        )
        keep, offset = keep_mask_of(storage, run.fragments), 0
        for batch in scanner.to_batches():
            if keep is not None:
                offset += batch.num_rows
                mask = keep.slice(offset - batch.num_rows, batch.num_rows)
                if mask.false_count:
                    batch = batch.filter(mask)
            if run.plans is None:
                yield batch.cast(out_schema)
            else:
                yield project(batch, run.physical, run.plans, out_schema)


def _null_batches(run: _Run, out_schema: pa.Schema, batch_size: int) -> Iterator[pa.RecordBatch]:
    assert run.plans is not None
    total = sum(f.live_rows for f in run.fragments)
    for start in range(0, total, batch_size):
        n = min(batch_size, total - start)
        empty = pa.RecordBatch.from_pydict({"_": pa.nulls(n)})
        yield project(empty, run.physical, run.plans, out_schema)


def rebatch(batches: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches so each has exactly ``batch_size`` rows, except possibly the last."""
    return regroup(batches, batch_size, _concat)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
