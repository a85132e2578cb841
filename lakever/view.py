"""`SnapshotView`: everything that reads one snapshot of a dataset.

The read half of `lakever.Dataset` (which adds everything that commits): identity
and metadata, reads through scan plans (`lakever.planner`, `lakever.reader`),
SQL (`lakever.query`), history (`lakever.history`), diffs and the change feed
(`lakever.diff`). Each method checks its arguments and delegates to the module
of its family, which takes the view's `lakever.snapshot.SnapshotState`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Self

import pyarrow as pa

from lakever import contract as contracts
from lakever import history, refs
from lakever._convert import arrow_to_pandas, arrow_to_polars, check_polars_can_read
from lakever._metafiles import read_contract_text
from lakever._records import Branch, Commit, Fragment, SchemaChange, SchemaVersion
from lakever._resolve import Located, check_range, locate, locate_snapshot, make_pin
from lakever._sqlrewrite import Reference
from lakever.diff import changes as change_feed
from lakever.diff import compute as compute_diff
from lakever.diffresult import Diff
from lakever.errors import DatasetNotFound, InvalidArgument
from lakever.field_tree import schema_changes
from lakever.format import Snapshot
from lakever.log import Line
from lakever.maintenance.pins import merkle_root
from lakever.maintenance.verify import VerifyReport, verify_dataset
from lakever.ml import batches as ml_batches
from lakever.ml import lineage, splits
from lakever.ml.batches import SHUFFLE_BUFFER
from lakever.ml.splits import Subset
from lakever.partitioning import Transform
from lakever.planner import bind, plan_scan
from lakever.reader import READAHEAD, ExplainReport, ScanPlan, to_lazy
from lakever.snapshot import SnapshotState
from lakever.storage import Storage

if TYPE_CHECKING:
    import dask.dataframe
    import datasets  # type: ignore[import-untyped]
    import duckdb
    import pandas as pd
    import polars as pl
    import ray.data

__all__ = ["SnapshotView"]


class SnapshotView:
    """Everything that reads one snapshot; `lakever.Dataset` adds what commits.

    Reading never changes what a view shows, even while others commit.
    """

    __slots__ = ("_state",)

    def __init__(self, state: SnapshotState) -> None:
        self._state = state

    @classmethod
    def _at(cls, storage: Storage, where: Located) -> Self:
        return cls(SnapshotState(storage, where.log, where.snap, where.branch_name, where.writable))

    def __reduce__(self) -> tuple[Any, ...]:
        s = self._state
        args = (s.storage, s.snap.branch_id, s.snap.version, s.snap.snapshot_id, s.branch_name)
        return (_reopen, (type(self), *args, s.writable))

    def __repr__(self) -> str:
        mode = "" if self._state.writable else ", read-only"
        return (
            f"<lakever.Dataset {self.uri!r} branch={self.branch_name!r} version={self.version} "
            f"snapshot={self.snapshot_id[:12]} rows={self.num_rows}{mode}>"
        )

    # Short names for the state's parts (tests and the CLI peek at them).
    @property
    def _storage(self) -> Storage:
        return self._state.storage

    @property
    def _snap(self) -> Snapshot:
        return self._state.snap

    @property
    def _log(self) -> Line:
        return self._state.line

    # ----------------------------------------------------------------- identity

    @property
    def uri(self) -> str:
        """Where the dataset lives (an absolute path for local datasets)."""
        return self._state.storage.uri

    @property
    def version(self) -> int:
        """The version number of this snapshot on its branch (0 = created)."""
        return self._state.snap.version

    @property
    def branch_name(self) -> str:
        """The branch this view was opened on (detached views: the branch that committed it)."""
        return self._state.branch_name

    @property
    def snapshot_id(self) -> str:
        """Content hash identifying this snapshot and, through it, every byte it shows."""
        return self._state.snap.snapshot_id

    @property
    def timestamp(self) -> datetime:
        """When this snapshot was committed (UTC)."""
        return self._state.snap.timestamp

    @property
    def read_only(self) -> bool:
        """True for views opened at an explicit version or pin."""
        return not self._state.writable

    @property
    def commit(self) -> Commit:
        """The commit record that produced this snapshot."""
        return history.commit_of(self._state, self._state.snap)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of this snapshot (without field-id metadata)."""
        return self._state.public

    @property
    def field_ids(self) -> dict[str, int]:
        """Top-level column name -> stable field id."""
        return dict(self._state.field_ids)

    @property
    def num_rows(self) -> int:
        """Number of rows in this snapshot (from metadata; reads no data)."""
        return self._state.snap.summary.total_rows

    @property
    def primary_key(self) -> list[str] | None:
        """The declared primary key's columns (current names), or None without one."""
        key = self._state.snap.primary_key
        return [self._state.fields[fid].name for fid in key] if key else None

    def fragments(self) -> list[Fragment]:
        """The fragments of this snapshot, in read order, with sizes, hashes and stats
        (keyed by current column names; a widened column keeps min/max only where they
        stay valid bounds)."""
        return history.fragments(self._state)

    def history(self, limit: int | None = None) -> list[Commit]:
        """Commits from this snapshot back to the creation, newest first (at most ``limit``)."""
        return history.commits(self._state, limit)

    def pin(self) -> str:
        """Return a string that reopens exactly this snapshot: ``lakever.open_dataset(pin)``.

        It carries the Merkle root of the snapshot's fragments, schema and contract, which
        `lakever.verify` recomputes (docs/format.md §6.1). Reads the manifests once.
        """
        s = self._state
        root = merkle_root(s.snap.schema, s.snap.contract, s.entries)
        return make_pin(self.uri, s.snap, self.branch_name, merkle=root)

    def lineage_record(self) -> dict[str, Any]:
        """This snapshot as a plain-JSON dict for any tracker (keys: docs/tracking.md);
        ``lakever.open_dataset(record["pin"])`` reopens it."""
        return lineage.lineage_record(self._state)

    def verify(self, *, full: bool = True, all_refs: bool = False) -> VerifyReport:
        """Check every file the snapshots reference and the log chain; never raises on damage.

        ``full=False``: this snapshot only; ``full=True``: every version of this branch;
        ``all_refs=True``: every branch and tag (docs/maintenance.md, Verify).
        """
        if not isinstance(full, bool) or not isinstance(all_refs, bool):
            raise InvalidArgument(f"full and all_refs must be bools, got {full!r}, {all_refs!r}")
        s = self._state
        return verify_dataset(
            s.storage, s.line, s.snap, s.branch_name, full=full, all_refs=all_refs
        )

    # ----------------------------------------------------------------- reading

    def plan(self, *, filter: str | None = None, columns: Sequence[str] | None = None) -> ScanPlan:
        """Plan a read: the fragments left after pruning, as picklable read tasks.

        Every reader consumes such a plan; distributed engines and training loaders
        ship it (or single tasks) to workers and read them with ``plan.read(task)``.

        Raises:
            InvalidArgument: an unknown column, or a filter that is not one valid
                expression over the columns.
        """
        return plan_scan(self._state, columns=columns, filter=filter)

    def to_arrow(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pa.Table:
        """Read the snapshot as a pyarrow Table.

        Args:
            columns: the columns to read (default: all), in this order.
            filter: one DuckDB SQL expression over the columns, e.g. ``"value > 0.5"``
                (docs/index.md, the filter language); fragments that cannot match are
                skipped, DuckDB evaluates the rest.

        Local snapshots of flat types are read by DuckDB, given the whole file list at
        once with the projection, the deletion vectors and the filter in its scan; the
        others through Arrow (`ScanPlan.to_arrow`). Both return the same rows, in the
        same order, with the same types.

        Raises:
            CorruptData: a fragment is missing or damaged (nothing is returned).
        """
        from lakever.sqlplan import read_exact

        plan = self.plan(filter=filter, columns=columns)
        table = read_exact(plan)
        return plan.to_arrow() if table is None else table

    def to_batches(
        self,
        batch_size: int = 65536,
        *,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        readahead: int = READAHEAD,
        shard: tuple[int, int] | None = None,
        worker: tuple[int, int] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        drop_last: bool = False,
        even: bool = False,
        format: Literal["arrow", "numpy", "dict"] = "arrow",
    ) -> Iterator[Any]:
        """Iterate in batches of exactly ``batch_size`` rows (the last may be shorter).

        With only ``columns``, ``filter`` and ``readahead``: record batches of the snapshot's
        rows in the same order on every call, streamed by the Parquet reader one file at a
        time while a background thread decodes at most ``readahead`` batches ahead of the
        one you hold. Peak memory is about ``readahead + 2`` batches plus the pages being
        decoded (a 1 MiB buffer per column of a local file; a row group's column chunks
        of a file read straight from object storage) (docs/index.md, streaming;
        ``readahead=0``: decode on demand).

        For training (docs/training.md, the contract):

        Args:
            shard: ``(rank, world_size)``: read only this rank's disjoint part; the parts
                of all ranks hold every row exactly once.
            worker: ``(worker_id, num_workers)`` within a rank; default: a PyTorch
                DataLoader worker's own when torch is imported (never imports torch).
            shuffle: permute the row groups and each block of ``shuffle_buffer`` rows,
                reproducibly from ``seed`` and ``epoch`` (and the shard).
            drop_last: drop the part's final short batch.
            even: every part yields the same number of rows (the fewest any part has;
                the others' last rows are left out), so DDP ranks never wait.
            format: ``"arrow"`` (RecordBatch), ``"numpy"`` (dict of column -> ndarray)
                or ``"dict"`` (dict of column -> list).

        Raises:
            InvalidArgument: a bad argument, named with its value.
            CorruptData: a fragment is missing or damaged (checked before any batch).
        """
        opts = ml_batches.options(
            batch_size, readahead=readahead, shard=shard, worker=worker, shuffle=shuffle,
            seed=seed, epoch=epoch, shuffle_buffer=shuffle_buffer, drop_last=drop_last,
            even=even, format=format,
        )  # fmt: skip
        return ml_batches.iter_batches(self.plan(filter=filter, columns=columns), opts)

    def to_polars(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pl.DataFrame:
        """Read the snapshot as a polars DataFrame (see `to_arrow` for the arguments)."""
        return arrow_to_polars(self.to_arrow(columns, filter=filter))

    def to_pandas(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> pd.DataFrame:
        """Read the snapshot as a pandas DataFrame (see `to_arrow` for the arguments)."""
        return arrow_to_pandas(self.to_arrow(columns, filter=filter))

    def scan(self, *, filter: str | None = None) -> pl.LazyFrame:
        """A polars LazyFrame over the snapshot (``filter`` as in `to_arrow`).

        Local snapshots without deleted rows, written under one schema, are scanned
        lazily by polars; the others are read first (filtered ones by DuckDB, with the
        filter in its scan, where it reads the types exactly; otherwise through Arrow).
        """
        from lakever.sqlplan import read_filtered

        plan = self.plan(filter=filter)
        check_polars_can_read(plan.output_schema)
        table = read_filtered(plan)
        return to_lazy(plan) if table is None else arrow_to_polars(table).lazy()

    def to_ray(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> ray.data.Dataset:
        """The snapshot as a Ray Dataset: one Ray read task per fragment (or per run of
        row groups of at most ``max_rows_per_task`` rows), read on the workers exactly as
        `to_arrow` reads (docs/engines.md). Rows come in `to_arrow`'s order."""
        from lakever.interop import ray

        return ray.read(self._engine_plan(filter, columns, max_rows_per_task))

    def to_dask(
        self,
        *,
        filter: str | None = None,
        columns: Sequence[str] | None = None,
        max_rows_per_task: int | None = None,
    ) -> dask.dataframe.DataFrame:
        """The snapshot as a Dask DataFrame: one partition per fragment (or run of row
        groups), read on the workers exactly as `to_arrow` reads; every column a
        ``pandas.ArrowDtype`` of its exact Arrow type (docs/engines.md)."""
        from lakever.interop import dask

        return dask.read(self._engine_plan(filter, columns, max_rows_per_task))

    def to_huggingface(
        self, columns: Sequence[str] | None = None, *, filter: str | None = None
    ) -> datasets.Dataset:
        """The rows (``columns`` and ``filter`` as in `to_arrow`) as a Hugging Face
        ``datasets.Dataset`` over the Arrow table read, not copied; its
        ``info.description`` records the pin (docs/training.md, Hugging Face)."""
        from lakever.interop import huggingface

        return huggingface.to_dataset(self.plan(filter=filter, columns=columns), self.pin())

    def _engine_plan(
        self, filter: str | None, columns: Sequence[str] | None, max_rows: int | None
    ) -> ScanPlan:
        plan = self.plan(filter=filter, columns=columns)
        return plan if max_rows is None else plan.split(max_rows)

    def to_duckdb(
        self, con: duckdb.DuckDBPyConnection | None = None, *, prune: str | None = None
    ) -> duckdb.DuckDBPyRelation:
        """The snapshot as a DuckDB relation, on ``con`` or on a locked database that can
        read this dataset's data files and nothing else.

        Args:
            prune: a filter whose non-matching fragments may be left out (judged from
                statistics); the relation still holds rows that do not match it. Not
                used with ``con``: your connection's settings (TimeZone, collation, ...)
                decide what the filter you apply means, and lakever's judge it in UTC.
        """
        from lakever.query import scan_plan_for, snapshot_relation
        from lakever.sqlplan import relation

        if prune is not None:
            bind(self._state, prune, what="prune")  # report a bad filter, like every filter
        plan = scan_plan_for(self._state, prune if con is None else None)
        return snapshot_relation(plan) if con is None else relation(con, plan)

    def explain(self, filter: str) -> ExplainReport:
        """How many fragments, rows and bytes a filter reads after pruning (reads none)."""
        if not isinstance(filter, str) or not filter.strip():
            raise InvalidArgument(f"filter must be a non-empty SQL expression, got {filter!r}")
        return self.plan(filter=filter).explain()

    def split(
        self,
        fractions: Mapping[str, float],
        *,
        key: str | Sequence[str] | None = None,
        seed: int = 0,
    ) -> dict[str, Subset]:
        """Split the rows by a hash of their ``key`` (default: the primary key), e.g.
        ``ds.split({"train": .8, "val": .1, "test": .1}, key="id", seed=7)``: a row keeps
        its split across versions, branches and engines (docs/splits.md)."""
        return splits.make_splits(self, fractions, key=key, seed=seed)

    def sample(
        self, frac: float, *, key: str | Sequence[str] | None = None, seed: int = 0
    ) -> Subset:
        """A stable sample of about ``frac`` of the rows, by a hash of their ``key``; with
        one seed a smaller ``frac`` gives a subset of a larger one (docs/splits.md)."""
        return splits.make_sample(self, frac, key=key, seed=seed)

    def sql(
        self,
        query: str,
        *,
        con: duckdb.DuckDBPyConnection | None = None,
        trusted: bool = False,
    ) -> duckdb.DuckDBPyRelation:
        """Run a DuckDB SQL query in which the table ``self`` is this snapshot.

        ``self VERSION AS OF 3`` (and the time-travel forms of `lakever.connect`) reads
        another snapshot. The query is one read-only query that reads this dataset and
        nothing else (docs/sql.md); ``trusted=True`` lifts those limits.

        Raises:
            InvalidArgument: not one read-only query, or DuckDB refuses it.
            DatasetNotFound: the query names a table other than ``self``.
            CorruptData: a fragment it reads is damaged (checked now, not when the
                relation runs: errors while it runs are DuckDB's, docs/sql.md).
        """
        from lakever.query import run_on_self

        state = self._state

        def not_found(name: str) -> DatasetNotFound:
            return DatasetNotFound(
                f"{name!r} is not a dataset here: Dataset.sql knows only 'self'; "
                "use lakever.connect(root).sql(...) to query several datasets",
                uri=name,
            )

        def at(ref: Reference) -> SnapshotState:
            # A number or a time counts on this view's branch, as open_dataset(branch=)
            # does; a name (tag, branch, snapshot id) is found by itself.
            branch = None if isinstance(ref.version, str) else state.branch_name
            where = locate(state.storage, version=ref.version, branch=branch)
            return SnapshotState(state.storage, where.log, where.snap, where.branch_name, False)

        return run_on_self(
            state, query, at=at, not_found=not_found, trusted=trusted, connection=con
        )

    @property
    def partitioning(self) -> list[Transform]:
        """How new fragments are partitioned, e.g. ``[identity('category'), day('ts')]``."""
        names = {fid: f.name for fid, f in self._state.fields.items()}
        return [
            Transform(names.get(f["field_id"], f"<dropped {f['field_id']}>"), f["transform"])
            for f in self._state.snap.partitioning
        ]

    @property
    def sort_by(self) -> list[str]:
        """How rows are clustered within new fragments (``-name``: descending)."""
        names = {fid: f.name for fid, f in self._state.fields.items()}
        return [
            ("-" if s.get("descending") else "") + names.get(s["field_id"], "?")
            for s in self._state.snap.sort_by
        ]

    @property
    def table_properties(self) -> dict[str, str]:
        """The table properties this snapshot carries (`Dataset.set_properties`)."""
        return dict(self._snap.table_properties)

    @property
    def contract(self) -> Any:
        """The contract in force at this snapshot (a pandera DataFrameSchema), or None."""
        ref = self._state.snap.contract
        if ref is None:
            return None
        return contracts.from_json(ref.api, read_contract_text(self._state.storage, ref.id))

    def validate(self, *, batch_size: int = 1 << 20) -> int:
        """Re-check every row against the contract, in batches; return the rows checked.

        Raises:
            ContractViolation: with the failure cases of every batch.
            InvalidArgument: this snapshot has no contract.
        """
        ref = self._state.snap.contract
        if ref is None:
            raise InvalidArgument(
                f"version {self.version} of {self.uri} has no contract to validate against; "
                "attach one with Dataset.set_contract"
            )
        batches = (pa.Table.from_batches([b]) for b in self.to_batches(batch_size))
        text = read_contract_text(self._state.storage, ref.id)
        advice = (
            "Rows committed with validate='skip', or before the contract was attached, are "
            "not checked on commit; overwrite them with corrected rows to fix the dataset"
        )
        what = f"version {self.version} of {self.uri}"
        return contracts.validate_batches(ref.api, text, batches, what=what, advice=advice)

    def schema_history(self) -> list[SchemaVersion]:
        """Every schema from the creation to this snapshot, oldest first, and what changed."""
        return history.schema_versions(self._state)

    def schema_diff(self, other: SnapshotView) -> list[SchemaChange]:
        """What changed from this snapshot's schema to ``other``'s (same dataset), by field id."""
        if not isinstance(other, SnapshotView):
            raise InvalidArgument(f"schema_diff needs another Dataset, got {other!r}")
        return schema_changes(self._state.schema, other._state.schema)

    def _other(self, other: Any) -> Self:
        """``other`` as a Dataset of this dataset: a Dataset, or a version reference."""
        if isinstance(other, SnapshotView):
            if other.uri != self.uri:
                raise InvalidArgument(
                    f"cannot diff snapshots of two datasets ({self.uri} and {other.uri})"
                )
            return type(self)(other._state)
        branch = None if isinstance(other, str) else self.branch_name
        return type(self)._at(self._storage, locate(self._storage, version=other, branch=branch))

    def diff(
        self,
        other: SnapshotView | int | str | datetime,
        *,
        on: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> Diff:
        """What changed from this snapshot to ``other``: another `Dataset` of this dataset,
        an int version on this branch, an aware datetime, a tag, branch or snapshot id
        (``on`` and ``columns`` as in `lakever.diff`)."""
        if isinstance(on, str):
            on = [on]
        if on is not None and not isinstance(on, Sequence):
            raise InvalidArgument(f"on must be a list of column names, got {on!r}")
        return compute_diff(self._state, self._other(other)._state, on=on, columns=columns)

    def changes(
        self, *, since: int | str | datetime, on: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """The change feed: the rows each commit after ``since`` (an earlier version of this
        branch's line) inserted, deleted and updated, one table per commit, oldest first.

        Each table has this snapshot's columns plus ``_change_type`` ("insert", "delete",
        "update_preimage", "update_postimage") and ``_commit_version``,
        ``_commit_snapshot_id``, ``_commit_timestamp``. With a key (``on``, or the
        declared primary key) a changed row is a pre- and a postimage.

        Raises:
            InvalidArgument: ``since`` is not an earlier snapshot on this branch's line.
        """
        start = self._other(since)._state
        on_line = self._log.read(start.snap.version) if start.snap.version <= self.version else None
        if on_line is None or on_line.snapshot_id != start.snap.snapshot_id:
            raise InvalidArgument(
                f"since={since!r} (version {start.snap.version}) is not an earlier version of "
                f"branch {self.branch_name!r} up to version {self.version}; use diff() to "
                "compare snapshots on different branches"
            )
        line, end = self._log, self.version
        owners = ((line.owner(v).branch_id, v) for v in range(start.snap.version, end + 1))
        check_range(self._storage, owners, f"the change feed since version {start.snap.version}")
        key = self.primary_key if on is None else ([on] if isinstance(on, str) else list(on))
        unknown = [k for k in key or [] if k not in self.schema.names]
        if unknown:
            raise InvalidArgument(f"on names unknown column(s) {unknown}")
        return change_feed(self._state, start, key=key)

    # ----------------------------------------------------------------- refs

    def tags(self) -> list[refs.Tag]:
        """All tags of the dataset, by name."""
        return refs.list_tags(self._storage)

    def branches(self) -> list[Branch]:
        """All branches with their heads; main first."""
        out = []
        for info in refs.list_branches(self._storage):
            head = refs.line_for(self._storage, info.id).head()
            if head is not None:
                out.append(Branch.from_info(info, head))
        return out


def _reopen(
    cls: type[SnapshotView],
    storage: Storage,
    branch_id: str,
    version: int,
    snapshot_id: str,
    branch_name: str,
    writable: bool,  # noqa: FBT001 - positional: the pickle protocol calls it
) -> SnapshotView:
    """Unpickle a view: the same snapshot, verified by its id."""
    where = locate_snapshot(storage, branch_id, version, snapshot_id)
    return cls(SnapshotState(storage, where.log, where.snap, branch_name, writable))
