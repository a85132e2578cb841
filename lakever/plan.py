"""Scan plans: the files a read touches, as a frozen, picklable value.

`plan_scan` is the one place that lists a snapshot's fragments for reading: it
binds the filter (`lakever.expr`), prunes fragments by partition values and
statistics (`lakever.pruning`), and returns a `ScanPlan`: the read tasks (one
per fragment: its path, size and content hash, the schema it was written under,
its deletion vector), the projection, and the residual filter as DuckDB SQL over
the snapshot's column names. Every reader consumes a plan (`lakever.reader` for
Arrow, batches and polars; `lakever.sql` for DuckDB relations and SQL views; the
row changes and diffs), and so can a worker of a distributed engine: a plan or
any of its tasks can be pickled and read elsewhere with `ScanPlan.read`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.format import DeletionVector, FragmentEntry
from lakever.storage import Storage

if TYPE_CHECKING:
    import polars as pl

    from lakever.expr import BoundFilter
    from lakever.snapshot import SnapshotState

__all__ = ["ExplainReport", "ReadTask", "ScanPlan", "check_columns", "plan_scan"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class ReadTask:
    """One fragment to read: its file, how it was written, and the rows deleted from it."""

    #: Path of the Parquet file relative to the dataset root.
    path: str
    size_bytes: int
    #: ``sha256:<hex>`` of the file's bytes; verified before the file is read.
    content_hash: str
    #: Rows in the file (deleted rows included).
    num_rows: int
    #: Id of the schema the file was written under (its physical schema).
    schema_id: str
    #: The rows deleted from the file (None: none).
    deletion: DeletionVector | None = None

    @property
    def live_rows(self) -> int:
        """Rows of the file that are not deleted."""
        return self.num_rows - (self.deletion.count if self.deletion is not None else 0)

    @staticmethod
    def of(e: FragmentEntry) -> ReadTask:
        return ReadTask(e.path, e.size_bytes, e.content_hash, e.num_rows, e.schema_id, e.deletion)


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
        from lakever.reader import read_plan

        return read_plan(self)

    def to_batches(self, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """Stream the plan as record batches of exactly ``batch_size`` rows (the last may be
        shorter)."""
        from lakever.reader import iter_plan, rebatch

        return rebatch(iter_plan(self, batch_size), batch_size)

    def to_polars(self) -> pl.DataFrame:
        """Read every task as a polars DataFrame."""
        from lakever._convert import arrow_to_polars

        return arrow_to_polars(self.to_arrow())

    def read(self, task: ReadTask) -> pa.Table:
        """Read one task of this plan (its live rows that pass the filter, projected)."""
        from lakever.reader import read_plan

        return read_plan(self, [task])

    def explain(self) -> ExplainReport:
        """How many fragments, rows and bytes pruning left for this read."""
        return ExplainReport(
            filter=self.filter_text or "",
            fragments_total=self.fragments_total,
            fragments_after_partition_pruning=self.fragments_after_partition_pruning,
            fragments_after_stats_pruning=len(self.tasks),
            rows_total=self.rows_total,
            rows_after_pruning=sum(t.num_rows for t in self.tasks),
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


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map of values derived from immutable inputs."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


#: Bound filters by (text, schema id, what): binding is a pure function of the two.
_BOUND: _Lru[tuple[str, str, str], BoundFilter] = _Lru(1024)
#: Pruning results by (dataset, snapshot id, bound SQL): snapshots never change.
_PRUNED: _Lru[tuple[str, str, str], tuple[list[FragmentEntry], list[FragmentEntry]]] = _Lru(256)


def bind(state: SnapshotState, filter: str | None, *, what: str = "filter") -> BoundFilter | None:
    """Bind ``filter`` against the snapshot (None: no filter)."""
    if filter is None:
        return None
    from lakever.expr import bind_filter

    if not isinstance(filter, str):
        return bind_filter(filter, state.schema, what=what)  # raises the usual error
    key = (filter, state.schema_id, what)
    bound = _BOUND.get(key)
    if bound is None:
        bound = bind_filter(filter, state.schema, what=what)
        _BOUND.put(key, bound)
    return bound


def prune_entries(
    state: SnapshotState, bound: BoundFilter | None
) -> tuple[list[FragmentEntry], list[FragmentEntry]]:
    """The entries after partition pruning and after statistics pruning for ``bound``."""
    entries = state.entries
    if bound is None:
        return entries, entries
    from lakever.pruning import prune

    key = (state.uri, state.snap.snapshot_id, bound.sql)
    hit = _PRUNED.get(key)
    if hit is not None:
        return hit
    types = {fid: f.type for fid, f in state.fields.items()}
    pruned = prune(entries, bound, types, state.schema_of)
    result = (pruned.after_partitions, pruned.kept)
    _PRUNED.put(key, result)
    return result


def plan_scan(
    state: SnapshotState,
    *,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    what: str = "filter",
) -> ScanPlan:
    """Plan a read of ``state``'s snapshot: prune, then list the tasks (see the module doc)."""
    names = check_columns(state.public, columns)
    bound = bind(state, filter, what=what)
    after_partitions, kept = prune_entries(state, bound)
    return make_plan(state, kept, names, bound, after_partitions=len(after_partitions))


def make_plan(
    state: SnapshotState,
    entries: Sequence[FragmentEntry],
    columns: Sequence[str],
    bound: BoundFilter | None,
    *,
    after_partitions: int | None = None,
) -> ScanPlan:
    """A plan reading ``entries`` (already chosen) of ``state``'s snapshot."""
    all_entries = state.entries
    return plan_of(
        state.storage,
        state.schema,
        entries,
        columns,
        state.schema_of,
        bound=bound,
        snapshot_id=state.snap.snapshot_id,
        version=state.snap.version,
        fragments_total=len(all_entries),
        fragments_after_partition_pruning=(
            len(entries) if after_partitions is None else after_partitions
        ),
        rows_total=sum(e.num_rows for e in all_entries),
        bytes_total=sum(e.size_bytes for e in all_entries),
    )


def plan_of(
    storage: Storage,
    schema: pa.Schema,
    entries: Sequence[FragmentEntry],
    columns: Sequence[str],
    schema_of: Callable[[str], pa.Schema],
    *,
    bound: BoundFilter | None = None,
    snapshot_id: str = "",
    version: int = -1,
    **counts: int,
) -> ScanPlan:
    """A plan reading ``entries`` through ``schema`` (with field ids), e.g. fragments a
    commit is about to add (``snapshot_id`` empty: not committed yet)."""
    from lakever.format import schema_id
    from lakever.schema import schema_to_json

    own = schema_id(schema_to_json(schema))
    tasks = tuple(ReadTask.of(e) for e in entries)
    sids = {t.schema_id for t in tasks if t.schema_id != own}
    return ScanPlan(
        storage=storage,
        uri=storage.uri,
        snapshot_id=snapshot_id or "(uncommitted)",
        version=version,
        schema=schema,
        columns=tuple(columns),
        filter=None if bound is None else bound.sql,
        filter_columns=() if bound is None else tuple(bound.columns.values()),
        tasks=tasks,
        schemas={sid: schema_of(sid) for sid in sorted(sids)},
        filter_text=None if bound is None else bound.text,
        **counts,
    )
