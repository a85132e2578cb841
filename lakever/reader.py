"""Executing scan plans into Arrow: the reader behind every non-SQL read.

Rows come back in task order, then file order, so two reads of one plan return
the same rows in the same order. For each task:

1. the fragment is verified against its manifest entry (`lakever.integrity`);
2. its file is read with pyarrow (consecutive tasks written under one schema
   together, in parallel), only the columns needed;
3. the rows its deletion vector lists are dropped;
4. columns are mapped to the snapshot schema by field id (`lakever.projection`):
   renamed, widened, added and dropped columns need no rewrite;
5. the residual filter is evaluated by DuckDB over the filter's columns
   (`matching`), and only the matching rows are kept.

Values keep their exact Arrow types throughout (DuckDB only decides which rows
match), so a filtered read returns the same values as an unfiltered one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakever._batching import regroup
from lakever.deletion import keep_mask, keep_mask_of, positions_of
from lakever.integrity import reading, verify
from lakever.plan import ReadTask, ScanPlan
from lakever.projection import Plan, plan, project
from lakever.storage import Storage

if TYPE_CHECKING:
    import pyarrow.dataset as pads

__all__ = ["iter_plan", "matching", "read_file", "read_plan", "read_positions", "rebatch"]

#: Tasks read together (in parallel) at most: bounds memory on filtered reads.
_RUN_TASKS = 32
_INDEX = "__lakever_row"


def _dataset(storage: Storage, schema: pa.Schema, tasks: Sequence[ReadTask]) -> pads.Dataset:
    # pyarrow.dataset imports pandas (~0.4 s): load it on the first read, not on import.
    import pyarrow.dataset as pads

    return pads.dataset(
        [storage.full_path(t.path) for t in tasks],
        schema=schema,
        format="parquet",
        filesystem=storage.arrow_filesystem(),
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive tasks written under one schema, and how to read them."""

    tasks: list[ReadTask]
    #: The schema the files were written under (restricted to the columns to read
    #: when it is the snapshot's own schema).
    physical: pa.Schema
    #: None: the files already have the output schema (the common, zero-work case).
    plans: tuple[Plan, ...] | None

    @property
    def read_names(self) -> list[str]:
        if self.plans is None:
            return list(self.physical.names)
        return sorted(
            {self.physical.field(p.source).name for p in self.plans if p.source is not None},
            key=self.physical.names.index,
        )


def _runs(
    p: ScanPlan, tasks: Sequence[ReadTask], names: Sequence[str], *, limit: int | None
) -> Iterator[_Run]:
    """Split tasks (in order) into runs sharing a physical schema; plan each run."""
    wanted = [p.schema.field(n) for n in names]
    own = p.schema_id
    for sid, group in groupby(tasks, key=lambda t: t.schema_id):
        run = list(group)
        chunks = [run] if limit is None else [run[i : i + limit] for i in range(0, len(run), limit)]
        for chunk in chunks:
            if sid == own:
                yield _Run(chunk, pa.schema(wanted), None)
            else:
                physical = p.physical(sid)
                yield _Run(chunk, physical, plan(list(physical), wanted, by="id"))


def _needed(p: ScanPlan) -> list[str]:
    """The columns to read: the output columns, then the filter's other columns.

    At least one column is read, so row counts survive an empty projection.
    """
    names = list(p.columns) + [c for c in p.filter_columns if c not in p.columns]
    return names or p.schema.names[:1]


def _live(storage: Storage, tasks: Sequence[ReadTask], table: pa.Table) -> pa.Table:
    """``table`` (the files of ``tasks``, in order) without the deleted rows."""
    if all(t.deletion is None for t in tasks):
        return table
    parts, offset = [], 0
    for t in tasks:
        part = table.slice(offset, t.num_rows)
        offset += t.num_rows
        if t.deletion is not None:
            part = part.filter(keep_mask(t.num_rows, positions_of(storage, t)))
        parts.append(part)
    return pa.concat_tables(parts)


def _read_run(storage: Storage, run: _Run, out_schema: pa.Schema) -> pa.Table:
    """The live rows of a run's files in ``out_schema`` (the snapshot's names and types)."""
    read = run.read_names
    if run.plans is None:
        table = _dataset(storage, run.physical, run.tasks).to_table(columns=read)
        return _live(storage, run.tasks, table).cast(out_schema)
    if read:
        table = _dataset(storage, run.physical, run.tasks).to_table(columns=read)
        table = _live(storage, run.tasks, table)
    else:  # every wanted column was added after these files: all null
        table = pa.table({"_": pa.nulls(sum(t.live_rows for t in run.tasks))})
    return project(table, run.physical, run.plans, out_schema)


def read_file(storage: Storage, physical: pa.Schema, task: ReadTask, *, snapshot: str) -> pa.Table:
    """One fragment's file as written (its physical schema, no row deleted), verified."""
    verify(storage, [task], snapshot=snapshot)
    with reading(storage, snapshot):
        return _dataset(storage, physical, [task]).to_table()


def matching(table: pa.Table | pa.RecordBatch, sql: str) -> np.ndarray[Any, Any]:
    """Indices (ascending) of the rows of ``table`` where DuckDB finds ``sql`` true.

    ``table`` holds the columns the expression reads, under their snapshot names.
    """
    from lakever.sql import cursor

    n = table.num_rows
    data = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
    data = data.append_column(_INDEX, pa.array(np.arange(n, dtype=np.int64)))
    con = cursor()
    try:
        con.register("__lakever_rows", data)
        out = con.sql(f'SELECT "{_INDEX}" FROM __lakever_rows WHERE ({sql})').to_arrow_table()
    finally:
        con.close()
    idx = out.column(0).to_numpy()
    return np.sort(idx) if len(idx) > 1 else idx


def _filtered(p: ScanPlan, table: pa.Table) -> pa.Table:
    if p.filter is None:
        return table
    idx = matching(table.select(list(p.filter_columns)), p.filter)
    return table.take(pa.array(idx, pa.int64())) if len(idx) < table.num_rows else table


def _output(p: ScanPlan, names: list[str]) -> pa.Schema:
    from lakever.schema import strip_field_ids

    public = strip_field_ids(p.schema)
    return pa.schema([public.field(n) for n in names])


def read_plan(p: ScanPlan, tasks: Sequence[ReadTask] | None = None) -> pa.Table:
    """Read ``tasks`` of ``p`` (default: all), in order, as one table in the plan's output
    schema, with deletions and the filter applied."""
    tasks = p.tasks if tasks is None else tasks
    out = p.output_schema
    if not tasks:
        return out.empty_table()
    names = _needed(p)
    schema = _output(p, names)
    verify(p.storage, tasks, snapshot=p.snapshot_id)
    tables = []
    with reading(p.storage, p.snapshot_id):
        for run in _runs(p, tasks, names, limit=_RUN_TASKS if p.filter else None):
            tables.append(_filtered(p, _read_run(p.storage, run, schema)).select(list(p.columns)))
    if not tables:
        return out.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def iter_plan(p: ScanPlan, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Yield record batches of the plan (any sizes; see `rebatch`), in order."""
    if not p.tasks:
        return
    names = _needed(p)
    schema = _output(p, names)
    verify(p.storage, p.tasks, snapshot=p.snapshot_id)
    for run in _runs(p, p.tasks, names, limit=None):
        with reading(p.storage, p.snapshot_id):
            yield from _run_batches(p, run, schema, batch_size)


def _run_batches(
    p: ScanPlan, run: _Run, schema: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch]:
    read = run.read_names
    if run.plans is not None and not read:
        total = sum(t.live_rows for t in run.tasks)
        for start in range(0, total, batch_size):
            n = min(batch_size, total - start)
            empty = pa.RecordBatch.from_pydict({"_": pa.nulls(n)})
            yield _batch_filtered(p, project(empty, run.physical, run.plans, schema))
        return
    scanner = _dataset(p.storage, run.physical, run.tasks).scanner(
        columns=read, batch_size=batch_size
    )
    keep, offset = keep_mask_of(p.storage, run.tasks), 0
    for batch in scanner.to_batches():
        if keep is not None:
            offset += batch.num_rows
            mask = keep.slice(offset - batch.num_rows, batch.num_rows)
            if mask.false_count:
                batch = batch.filter(mask)
        if run.plans is None:
            batch = batch.cast(schema)
        else:
            batch = project(batch, run.physical, run.plans, schema)
        yield _batch_filtered(p, batch)


def _batch_filtered(p: ScanPlan, batch: pa.RecordBatch) -> pa.RecordBatch:
    if p.filter is not None and batch.num_rows:
        idx = matching(batch.select(list(p.filter_columns)), p.filter)
        if len(idx) < batch.num_rows:
            batch = batch.take(pa.array(idx, pa.int64()))
    return batch.select(list(p.columns))


def read_positions(
    p: ScanPlan, tasks: Sequence[ReadTask] | None = None
) -> Iterator[tuple[ReadTask, np.ndarray[Any, Any], pa.Table]]:
    """For each task with matching rows: the task, the file positions of its live rows
    that pass the filter (ascending), and those rows (output columns)."""
    tasks = p.tasks if tasks is None else tasks
    if not tasks:
        return
    names = _needed(p)
    schema = _output(p, names)
    verify(p.storage, tasks, snapshot=p.snapshot_id)
    for run in _runs(p, tasks, names, limit=_RUN_TASKS):
        with reading(p.storage, p.snapshot_id):
            table = _read_run(p.storage, run, schema)
        # File positions of the live rows, in the order the run's table holds them.
        positions = []
        for t in run.tasks:
            live = np.arange(t.num_rows, dtype=np.int64)
            if t.deletion is not None:
                live = live[
                    keep_mask(t.num_rows, positions_of(p.storage, t)).to_numpy(zero_copy_only=False)
                ]
            positions.append(live)
        if p.filter is not None:
            idx = matching(table.select(list(p.filter_columns)), p.filter)
        else:
            idx = np.arange(table.num_rows, dtype=np.int64)
        bounds = np.cumsum([0] + [len(x) for x in positions])
        for i, t in enumerate(run.tasks):
            lo, hi = np.searchsorted(idx, [bounds[i], bounds[i + 1]])
            if hi == lo:
                continue
            local = idx[lo:hi] - bounds[i]
            rows = table.take(pa.array(idx[lo:hi], pa.int64())).select(list(p.columns))
            yield t, positions[i][local], rows


def rebatch(batches: Iterator[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Regroup batches so each has exactly ``batch_size`` rows, except possibly the last."""
    return regroup(batches, batch_size, _concat)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
