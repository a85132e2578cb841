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

`iter_plan` (behind ``to_batches``) streams instead: each file through Parquet's batch
reader, on one background thread at most ``readahead`` batches ahead of the caller
(`prefetch`), so its memory does not grow with the snapshot.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import groupby
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa

from lakever._batching import regroup
from lakever._convert import arrow_to_polars, polars_can_hold, scan_parquet
from lakever.deletion import keep_mask, positions_of
from lakever.errors import InvalidArgument
from lakever.integrity import FileRef, reading, verify
from lakever.projection import Plan, plan, project
from lakever.sql import cursor, register_arrow, translate_errors
from lakever.storage import Storage
from lakever.tasks import ReadTask, split_tasks

if TYPE_CHECKING:
    import polars as pl
    import pyarrow.dataset as pads

__all__ = [
    "READAHEAD",
    "ExplainReport",
    "ScanPlan",
    "check_columns",
    "check_readahead",
    "iter_plan",
    "matching",
    "prefetch",
    "read_file",
    "read_plan",
    "read_positions",
    "rebatch",
    "to_lazy",
]


#: Batches `iter_plan` decodes ahead of the one the caller holds, by default (the
#: ``readahead=`` of `Dataset.to_batches`). Peak memory of a stream is about
#: ``readahead + 2`` batches plus the pages being decoded (a `_STREAM_BUFFER` per
#: column read from local files; one row group's column chunks from a remote file).
READAHEAD = 2
#: Bytes read at a time per column when streaming a local file.
_STREAM_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class ExplainReport:
    """What a filtered read would touch: fragments before and after each pruning step."""

    filter: str
    fragments_total: int
    fragments_after_partition_pruning: int
    fragments_after_stats_pruning: int
    rows_total: int
    rows_after_pruning: int
    bytes_total: int
    bytes_after_pruning: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True)
class ScanPlan:
    """A read of one snapshot: read tasks, projection and residual filter (picklable).

    ``to_arrow()``/``to_batches()`` read the whole plan in order; ``read(task)``
    reads one task (e.g. on a worker), with the deletions and the filter applied.
    """

    storage: Storage
    uri: str
    snapshot_id: str
    version: int
    #: The snapshot schema, with field ids.
    schema: pa.Schema
    #: The output columns, by their names in the snapshot.
    columns: tuple[str, ...]
    #: The residual filter in DuckDB SQL over the snapshot's column names (None: no filter).
    filter: str | None
    #: Columns the filter reads.
    filter_columns: tuple[str, ...]
    tasks: tuple[ReadTask, ...]
    #: Physical schemas (with field ids) of the tasks written under another schema.
    schemas: Mapping[str, pa.Schema] = field(default_factory=dict)
    #: The filter as the caller wrote it.
    filter_text: str | None = None
    #: Fragments and rows before pruning and after partition pruning (for `explain`).
    fragments_total: int = 0
    fragments_after_partition_pruning: int = 0
    rows_total: int = 0
    bytes_total: int = 0

    def __repr__(self) -> str:
        where = f" filter={self.filter_text!r}" if self.filter_text else ""
        return (
            f"<lakever.ScanPlan {self.uri!r} snapshot={self.snapshot_id[:12]} "
            f"tasks={len(self.tasks)} columns={list(self.columns)}{where}>"
        )

    @cached_property
    def output_schema(self) -> pa.Schema:
        """The schema of what the plan reads (projection applied, no field ids)."""
        from lakever.schema import strip_field_ids

        public = strip_field_ids(self.schema)
        return pa.schema([public.field(c) for c in self.columns])

    @cached_property
    def schema_id(self) -> str:
        from lakever.format import schema_id
        from lakever.schema import schema_to_json

        return schema_id(schema_to_json(self.schema))

    def physical(self, sid: str) -> pa.Schema:
        """The schema (with field ids) a task was written under."""
        return self.schemas.get(sid) or self.schema

    def to_arrow(self) -> pa.Table:
        """Read every task, in order, as one Arrow table."""
        return read_plan(self)

    def to_batches(
        self, batch_size: int = 65536, *, readahead: int = READAHEAD
    ) -> Iterator[pa.RecordBatch]:
        """Stream the plan as record batches of exactly ``batch_size`` rows (the last may be
        shorter), streamed from the Parquet reader with at most ``readahead`` batches
        decoded ahead (see `lakever.Dataset.to_batches`)."""
        check_readahead(readahead)
        return rebatch(iter_plan(self, batch_size, readahead), batch_size)

    def to_polars(self) -> pl.DataFrame:
        """Read every task as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def read(self, task: ReadTask) -> pa.Table:
        """Read one task of this plan (its live rows that pass the filter, projected)."""
        return read_plan(self, [task])

    def split(self, max_rows: int) -> ScanPlan:
        """This plan with its large files cut into tasks of consecutive row groups of at
        most ``max_rows`` rows each (a row group is never cut): for spreading one read
        over workers. Reads the footers of the files it cuts; same rows, same order."""
        tasks = split_tasks(self.storage, self.tasks, max_rows, snapshot=self.snapshot_id)
        return replace(self, tasks=tasks)

    def explain(self) -> ExplainReport:
        """How many fragments, rows and bytes pruning left for this read."""
        return ExplainReport(
            filter=self.filter_text or "",
            fragments_total=self.fragments_total,
            fragments_after_partition_pruning=self.fragments_after_partition_pruning,
            fragments_after_stats_pruning=len(self.tasks),
            rows_total=self.rows_total,
            rows_after_pruning=sum(t.task_rows for t in self.tasks),
            bytes_total=self.bytes_total,
            bytes_after_pruning=sum(t.size_bytes for t in self.tasks),
        )


def check_columns(schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    """Validate a projection; return the column names to read."""
    if columns is None:
        return list(schema.names)
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise InvalidArgument(f"columns must be a list of column names, got {columns!r}")
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InvalidArgument(
            f"unknown column(s) {missing}; the snapshot has columns {schema.names}"
        )
    if len(set(columns)) != len(columns):
        raise InvalidArgument(f"columns {list(columns)} names a column twice")
    return list(columns)


#: File bytes read together (in parallel) at most before a filter drops rows: bounds the
#: memory of filtered reads without paying a dataset per handful of small fragments.
_RUN_BYTES = 256 << 20
#: The row-number column `matching_mask` adds to the rows DuckDB filters.
_ROW = "__lakever_row"


def _dataset(storage: Storage, schema: pa.Schema, tasks: Sequence[ReadTask]) -> pads.Dataset:
    # pyarrow.dataset imports pandas (~0.4 s): load it on the first read, not on import.
    import pyarrow.dataset as pads

    fs = storage.arrow_filesystem()
    fmt = pads.ParquetFileFormat(
        default_fragment_scan_options=pads.ParquetFragmentScanOptions(
            page_checksum_verification=True  # pages written with a CRC (docs/format.md)
        )
    )
    if all(t.row_groups is None for t in tasks):
        return pads.dataset(
            [storage.full_path(t.path) for t in tasks],
            schema=schema,
            format=fmt,
            filesystem=fs,
        )
    import pyarrow.fs as pafs

    fs = fs or pafs.LocalFileSystem()
    parts = [
        fmt.make_fragment(
            storage.full_path(t.path),
            filesystem=fs,
            row_groups=None if t.row_groups is None else list(t.row_groups),
        )
        for t in tasks
    ]
    return pads.FileSystemDataset(parts, schema, fmt, fs)


def _keep(storage: Storage, t: ReadTask) -> pa.BooleanArray | None:
    """Which of a task's rows are live (None: all of them)."""
    if t.deletion is None:
        return None
    mask = keep_mask(t.num_rows, positions_of(storage, t))
    return mask if t.row_range is None else mask.slice(t.start, t.task_rows)


def _keep_of(storage: Storage, tasks: Sequence[ReadTask]) -> pa.BooleanArray | None:
    """Which rows of ``tasks`` read one after another are live (None: all of them)."""
    if all(t.deletion is None for t in tasks):
        return None
    masks = [_keep(storage, t) for t in tasks]
    parts = [
        pa.array(np.ones(t.task_rows, np.bool_)) if m is None else m
        for t, m in zip(tasks, masks, strict=True)
    ]
    return pa.concat_arrays(parts)


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


def _chunks(tasks: list[ReadTask], limit: int | None) -> Iterator[list[ReadTask]]:
    """``tasks`` in consecutive groups of at most ``limit`` file bytes (at least one task)."""
    if limit is None:
        yield tasks
        return
    group: list[ReadTask] = []
    size = 0
    for t in tasks:
        if group and size + t.size_bytes > limit:
            yield group
            group, size = [], 0
        group.append(t)
        size += t.size_bytes
    if group:
        yield group


def _runs(
    p: ScanPlan, tasks: Sequence[ReadTask], names: Sequence[str], *, limit: int | None
) -> Iterator[_Run]:
    """Split tasks (in order) into runs sharing a physical schema; plan each run."""
    wanted = [p.schema.field(n) for n in names]
    own = p.schema_id
    for sid, group in groupby(tasks, key=lambda t: t.schema_id):
        run = list(group)
        for chunk in _chunks(run, limit):
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
    keep = _keep_of(storage, tasks)
    return table if keep is None else table.filter(keep)


def _live_count(storage: Storage, tasks: Sequence[ReadTask]) -> int:
    keep = _keep_of(storage, tasks)
    return sum(t.task_rows for t in tasks) if keep is None else keep.true_count


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
        table = pa.table({"_": pa.nulls(_live_count(storage, run.tasks))})
    return project(table, run.physical, run.plans, out_schema)


def read_file(storage: Storage, physical: pa.Schema, ref: FileRef, *, snapshot: str) -> pa.Table:
    """One fragment's file as written (its physical schema, no row deleted), verified.

    For rewriting a fragment (copy-on-write), not for reading a snapshot's rows.
    """
    verify(storage, [ref], snapshot=snapshot)
    with reading(storage, snapshot, refs=[ref]):
        import pyarrow.parquet as pq

        path = storage.full_path(ref.path)
        return pq.read_table(
            path,
            schema=physical,
            filesystem=storage.arrow_filesystem(),
            page_checksum_verification=True,
        )


def matching_mask(table: pa.Table | pa.RecordBatch, sql: str) -> pa.BooleanArray:
    """Where DuckDB finds ``sql`` true over the rows of ``table``, in row order.

    ``table`` holds the columns the expression reads, under their snapshot names.
    DuckDB returns the positions of the matching rows (a row-number column rides
    along), and the mask is built from them: DuckDB's output order is never relied on
    (over an Arrow table whose columns are chunked differently it is not the input's).
    """
    n = table.num_rows
    data = pa.Table.from_batches([table]) if isinstance(table, pa.RecordBatch) else table
    data = data.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
    con = cursor()
    try:
        register_arrow(con, "__lakever_rows", data)
        with translate_errors("filter", sql, None):
            query = f'SELECT "{_ROW}" FROM __lakever_rows WHERE ({sql})'
            out = con.sql(query).to_arrow_table()
    finally:
        con.close()
    keep = np.zeros(n, dtype=np.bool_)
    keep[out.column(0).to_numpy()] = True
    mask: pa.BooleanArray = pa.array(keep, pa.bool_())
    return mask


def matching(table: pa.Table | pa.RecordBatch, sql: str) -> np.ndarray[Any, Any]:
    """Indices (ascending) of the rows of ``table`` where DuckDB finds ``sql`` true."""
    return np.flatnonzero(matching_mask(table, sql).to_numpy(zero_copy_only=False))


def _filtered(p: ScanPlan, table: pa.Table) -> pa.Table:
    if p.filter is None:
        return table
    mask = matching_mask(table.select(list(p.filter_columns)), p.filter)
    return table.filter(mask) if mask.false_count else table


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
    with reading(p.storage, p.snapshot_id, refs=tasks):
        for run in _runs(p, tasks, names, limit=_RUN_BYTES if p.filter else None):
            tables.append(_filtered(p, _read_run(p.storage, run, schema)).select(list(p.columns)))
    if not tables:
        return out.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def check_readahead(readahead: Any) -> int:
    """Validate a ``readahead=`` argument (a non-negative int)."""
    if isinstance(readahead, bool) or not isinstance(readahead, int) or readahead < 0:
        raise InvalidArgument(
            f"readahead must be a non-negative int (batches decoded ahead), got {readahead!r}"
        )
    return readahead


def iter_plan(p: ScanPlan, batch_size: int, readahead: int = READAHEAD) -> Iterator[pa.RecordBatch]:
    """Yield record batches of the plan (any sizes; see `rebatch`), in order.

    Files are streamed by Parquet's batch reader, one file at a time, on one background
    thread that stays at most ``readahead`` batches ahead of the caller (0: each batch
    is decoded when the caller asks for it), so memory is bounded by a few batches and
    the pages being decoded (see `READAHEAD`), not by the snapshot or its row groups.
    """
    check_readahead(readahead)
    if not p.tasks:
        return
    names = _needed(p)
    schema = _output(p, names)
    verify(p.storage, p.tasks, snapshot=p.snapshot_id)
    for run in _runs(p, p.tasks, names, limit=None):
        with reading(p.storage, p.snapshot_id, refs=run.tasks):
            yield from _run_batches(p, run, schema, batch_size, readahead)


def _run_batches(
    p: ScanPlan, run: _Run, schema: pa.Schema, batch_size: int, readahead: int
) -> Iterator[pa.RecordBatch]:
    read = run.read_names
    if run.plans is not None and not read:
        total = _live_count(p.storage, run.tasks)
        for start in range(0, total, batch_size):
            n = min(batch_size, total - start)
            empty = pa.RecordBatch.from_pydict({"_": pa.nulls(n)})
            yield _batch_filtered(p, project(empty, run.physical, run.plans, schema))
        return
    physical = pa.schema([run.physical.field(n) for n in read])
    batches = _file_batches(p.storage, run.tasks, read, physical, batch_size)
    keep, offset = _keep_of(p.storage, run.tasks), 0
    for batch in prefetch(batches, readahead):
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


T = TypeVar("T")


def prefetch(items: Iterable[T], readahead: int) -> Iterator[T]:
    """``items``, in order, produced on one background thread that runs at most
    ``readahead`` items ahead of the one the caller holds (0: in the caller's thread,
    on demand). The producer's errors are raised in the caller; stopping early stops
    the producer."""
    if readahead == 0:
        yield from items
        return
    ready: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=readahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((0, item), timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((1, None))
        except BaseException as exc:  # handed to the caller's thread
            ready.put((2, exc))

    thread = threading.Thread(target=produce, name="lakever-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
            del value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()


def _file_batches(
    storage: Storage,
    tasks: Sequence[ReadTask],
    read: list[str],
    physical: pa.Schema,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``tasks`` (their row groups, in order) as batches of ``read`` in
    ``physical``, streamed from the Parquet reader: at most ``batch_size`` rows decoded
    at a time, one file open at a time."""
    import pyarrow.parquet as pq

    fs = storage.arrow_filesystem()
    # Local files (and a remote store's local cache) are read through a small buffer as
    # the batches need them: pyarrow's default pre-buffers a whole row group's column
    # chunks first (1.2 GB of embeddings in one row group: 1,265 MiB held vs 89 MiB;
    # benchmarks/wide_rows.py).
    # A remote file keeps the pre-buffer: it coalesces ranged reads into few requests.
    remote = fs is not None
    buffer = 0 if remote else _STREAM_BUFFER
    for t in tasks:
        path = storage.full_path(t.path)
        with pq.ParquetFile(
            path,
            filesystem=fs,
            pre_buffer=remote,
            buffer_size=buffer,
            page_checksum_verification=True,
        ) as pf:
            groups = None if t.row_groups is None else list(t.row_groups)
            for batch in pf.iter_batches(batch_size, row_groups=groups, columns=read):
                yield batch if batch.schema == physical else batch.cast(physical)


def _batch_filtered(p: ScanPlan, batch: pa.RecordBatch) -> pa.RecordBatch:
    if p.filter is not None and batch.num_rows:
        mask = matching_mask(batch.select(list(p.filter_columns)), p.filter)
        if mask.false_count:
            batch = batch.filter(mask)
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
    for run in _runs(p, tasks, names, limit=_RUN_BYTES):
        with reading(p.storage, p.snapshot_id, refs=run.tasks):
            table = _read_run(p.storage, run, schema)
        # File positions of the live rows, in the order the run's table holds them.
        positions = []
        for t in run.tasks:
            live = np.arange(t.start, t.stop, dtype=np.int64)
            keep = _keep(p.storage, t)
            positions.append(live if keep is None else live[keep.to_numpy(zero_copy_only=False)])
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


def to_lazy(p: ScanPlan) -> pl.LazyFrame:
    """A polars LazyFrame over a scan plan.

    A local plan without a filter, deleted rows or older schemas is scanned lazily by
    polars itself (its later filters and projections reach the Parquet reader); its
    fragments are verified first. Any other plan is read through Arrow.
    """
    simple = (
        p.filter is None
        and p.storage.is_local
        and bool(p.tasks)
        and polars_can_hold(p.output_schema)
        and all(
            t.deletion is None and t.schema_id == p.schema_id and t.row_range is None
            for t in p.tasks
        )
    )
    if not simple:
        return arrow_to_polars(p.to_arrow()).lazy()
    verify(p.storage, p.tasks, snapshot=p.snapshot_id)
    return scan_parquet([p.storage.full_path(t.path) for t in p.tasks], list(p.columns))
