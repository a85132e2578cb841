"""`Dataset`, the immutable view of one snapshot, and the top-level functions.

Methods parse and check arguments, then delegate to one lower module. Branch,
tag and merge methods live in `_dataset_refs.RefsMixin`; row-level changes,
diffs and the change feed in `_dataset_rows.RowsMixin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever import contract as contracts
from lakever import refs
from lakever._convert import arrow_to_pandas, arrow_to_polars
from lakever._dataset_refs import RefsMixin
from lakever._dataset_rows import RowsMixin, diff_of
from lakever._metafiles import read_contract_text
from lakever._records import Commit, Fragment, SchemaChange, SchemaVersion
from lakever._resolve import PIN_PREFIX, Located, _owner_name, locate, locate_pin, make_pin
from lakever._sqlrewrite import Reference
from lakever._types import DataLike, Properties, SchemaMode, ValidateMode, WriteMode
from lakever._writer import (
    KEEP,
    commit_contract,
    commit_data,
    commit_evolve,
    commit_partitioning,
)
from lakever.diff import Diff
from lakever.errors import (
    DatasetExists,
    DatasetNotFound,
    InvalidArgument,
    ReadOnlyDataset,
)
from lakever.evolution import ColumnRef
from lakever.field_tree import schema_changes
from lakever.format import MAIN_BRANCH, FragmentEntry, Snapshot
from lakever.log import Log
from lakever.partitioning import Transform
from lakever.planner import bind, plan_scan
from lakever.reader import ExplainReport, ScanPlan, to_lazy
from lakever.schema import iter_field_ids, schema_from_json, strip_field_ids
from lakever.snapshot import SnapshotState
from lakever.storage import Storage, open_storage

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import polars as pl

__all__ = ["Dataset", "create_dataset", "diff", "open_dataset", "write_dataset"]


class Dataset(RefsMixin, RowsMixin):
    """An immutable view of one snapshot of a dataset.

    Reading never changes what a `Dataset` shows, even while others commit.
    Writes (`append`, `overwrite`) return a new `Dataset` at the new version.
    A view opened at the head of a branch can write to that branch; a view
    opened at an old version, a tag, a snapshot id or a pin is read-only
    ("detached"). A `Dataset` pickles: it is reopened at the same snapshot.
    """

    __slots__ = ("_state",)

    def __init__(self, state: SnapshotState) -> None:
        self._state = state

    @classmethod
    def _at(cls, storage: Storage, where: Located) -> Dataset:
        return cls(
            SnapshotState(
                storage, where.log, where.snap, where.branch_name, writable=where.writable
            )
        )

    def _child(self, snap: Snapshot) -> Dataset:
        """The Dataset at a snapshot this one just committed on its branch."""
        return Dataset(self._state.at(snap, writable=True))

    def __reduce__(self) -> tuple[Any, ...]:
        s = self._state
        return (
            _reopen,
            (
                s.storage,
                s.snap.branch,
                s.snap.version,
                s.snap.snapshot_id,
                s.branch_name,
                s.writable,
            ),
        )

    def __repr__(self) -> str:
        mode = "" if self._state.writable else ", read-only"
        return (
            f"<lakever.Dataset {self.uri!r} branch={self.branch_name!r} version={self.version} "
            f"snapshot={self.snapshot_id[:12]} rows={self.num_rows}{mode}>"
        )

    # Shorthands the family mixins use.
    @property
    def _storage(self) -> Storage:
        return self._state.storage

    @property
    def _log(self) -> Log:
        return self._state.line

    @property
    def _snap(self) -> Snapshot:
        return self._state.snap

    @property
    def _writable(self) -> bool:
        return self._state.writable

    @property
    def _branch_name(self) -> str:
        return self._state.branch_name

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
        return self._commit_of(self._snap, {})

    def _commit_of(self, snap: Snapshot, names: dict[str, str]) -> Commit:
        """``snap``'s commit record, its branch named (``names``: branch id -> name, a cache)."""
        if not names:
            names[self._log.branch] = self._branch_name
        if snap.branch not in names:
            names[snap.branch] = _owner_name(self._storage, snap)
        return Commit.from_snapshot(snap, branch_name=names[snap.branch])

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
        if not self._state.snap.primary_key:
            return None
        return [self._state.fields[fid].name for fid in self._state.snap.primary_key]

    def _internal_schema(self) -> pa.Schema:
        return self._state.schema

    def _entries(self) -> list[FragmentEntry]:
        return self._state.entries

    def fragments(self) -> list[Fragment]:
        """The fragments of this snapshot, in read order, with sizes, hashes and stats.

        Stats are keyed by the column's current name. A fragment written before a
        column was widened keeps its min/max when they remain valid bounds (numbers,
        decimals, strings); otherwise (e.g. date to timestamp) only the null count.
        """
        state = self._state
        return [
            Fragment(
                path=e.path,
                uri=state.storage.full_path(e.path),
                num_rows=e.num_rows,
                size_bytes=e.size_bytes,
                content_hash=e.content_hash,
                stats={state.fields[fid].name: dict(st) for fid, st in state.stats_of(e).items()},
                deleted_rows=e.deleted_rows,
                deletion_vector=None if e.deletion is None else e.deletion.path,
            )
            for e in state.entries
        ]

    def history(self, limit: int | None = None) -> list[Commit]:
        """Commits from this snapshot back to the creation, newest first.

        Args:
            limit: return at most this many commits (None: all).
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise InvalidArgument(f"limit must be a non-negative int or None, got {limit!r}")
        out: list[Commit] = []
        names: dict[str, str] = {}
        for snap in self._log.ancestors(self._snap):
            if limit is not None and len(out) >= limit:
                break
            out.append(self._commit_of(snap, names))
        return out

    def pin(self) -> str:
        """Return a string that reopens exactly this snapshot: ``lakever.open_dataset(pin)``."""
        return make_pin(self.uri, self._snap, self._branch_name)

    # ----------------------------------------------------------------- reading

    def plan(self, *, filter: str | None = None, columns: Sequence[str] | None = None) -> ScanPlan:
        """Plan a read: the fragments to read after pruning, as picklable read tasks.

        Every reader of this snapshot consumes such a plan; distributed engines and
        training loaders can ship it (or single tasks) to workers and read them with
        ``plan.read(task)``.

        Args:
            filter: a DuckDB SQL boolean expression over the columns (see `to_arrow`).
            columns: the columns to read (default: all), in this order.

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
            filter: a DuckDB SQL boolean expression, e.g. ``"value > 0.5 AND id < 10"``:
                one expression over the columns (no subqueries or table functions),
                evaluated by DuckDB; fragments that cannot match are skipped.

        Raises:
            CorruptData: a fragment is missing or damaged (nothing is returned).
        """
        return self.plan(filter=filter, columns=columns).to_arrow()

    def to_batches(
        self,
        batch_size: int = 65536,
        *,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Iterate over the snapshot in record batches of exactly ``batch_size`` rows.

        The last batch may be shorter. The order of rows is the same on every call.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
        return self.plan(filter=filter, columns=columns).to_batches(batch_size)

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
        """Return a polars LazyFrame over the snapshot.

        Args:
            filter: a DuckDB SQL boolean expression (as in `to_arrow`), applied with
                the same pruning and the same evaluation as every other read.

        Local snapshots without deleted rows, written under one schema, are scanned
        lazily by polars (later polars filters and projections are pushed into the
        Parquet reader);
        the others, and filtered scans, are read through Arrow first.
        """
        return to_lazy(self.plan(filter=filter))

    def to_duckdb(
        self, con: duckdb.DuckDBPyConnection | None = None, *, prune: str | None = None
    ) -> duckdb.DuckDBPyRelation:
        """Return the snapshot as a DuckDB relation (on ``con``, or a private connection).

        Without ``con`` the relation lives on a locked DuckDB database that can read
        this dataset's data files and nothing else.

        Args:
            prune: a filter (DuckDB SQL) whose non-matching fragments may be left out,
                judged from manifest statistics. The relation still holds rows that do
                not match it: apply the filter yourself.
        """
        from lakever.query import scan_plan_for, snapshot_relation
        from lakever.sqlplan import relation

        if prune is not None:
            bind(self._state, prune, what="prune")  # report a bad filter, like every filter
        plan = scan_plan_for(self._state, prune)
        if con is None:
            return snapshot_relation(plan)
        return relation(con, plan)

    def explain(self, filter: str) -> ExplainReport:
        """Report how many fragments a filter reads after pruning, without reading any.

        Example:
            ``ds.explain("category = 'click' AND ts >= '2026-11-01'")``

        Raises:
            InvalidArgument: the filter is not one valid expression over the columns.
        """
        if not isinstance(filter, str) or not filter.strip():
            raise InvalidArgument(f"filter must be a non-empty SQL expression, got {filter!r}")
        return self.plan(filter=filter).explain()

    def sql(
        self,
        query: str,
        *,
        con: duckdb.DuckDBPyConnection | None = None,
        trusted: bool = False,
    ) -> duckdb.DuckDBPyRelation:
        """Run a DuckDB SQL query in which the table ``self`` is this snapshot.

        ``self VERSION AS OF 3`` (and the other time-travel forms of `lakever.connect`)
        reads another snapshot of the same dataset. The query is one read-only query
        that can read this dataset and nothing else (no files, network, extensions,
        settings: see docs/sql.md); ``trusted=True`` lifts those limits.

        Example:
            ``ds.sql("SELECT category, count(*) FROM self GROUP BY 1").to_arrow_table()``

        Raises:
            InvalidArgument: not one read-only query, or DuckDB refuses it.
            DatasetNotFound: the query names a table other than ``self``.
        """
        from lakever.query import SqlRunner

        if not isinstance(query, str) or not query.strip():
            raise InvalidArgument(f"query must be a non-empty SQL string, got {query!r}")
        state = self._state

        def not_found(name: str) -> DatasetNotFound:
            return DatasetNotFound(
                f"{name!r} is not a dataset here: Dataset.sql knows only 'self'; "
                "use lakever.connect(root).sql(...) to query several datasets",
                uri=name,
            )

        def resolve(ref: Reference) -> SnapshotState:
            if ref.name != "self":
                raise not_found(ref.name)
            if ref.version is None:
                return state
            where = locate(state.storage, version=ref.version, branch=None)
            return SnapshotState(
                state.storage, where.log, where.snap, where.branch_name, writable=False
            )

        runner = SqlRunner(
            is_dataset=lambda n: n == "self",
            all_datasets=lambda: ["self"],
            resolve=resolve,
            trusted=trusted,
            connection=con,
            not_found=not_found,
        )
        return runner.run(query)

    # ----------------------------------------------------------------- writing

    def _require_writable(self, what: str) -> None:
        if not self._writable:
            raise ReadOnlyDataset(
                f"cannot {what}: this view of {self.uri} is detached at version {self.version} "
                f"(snapshot {self.snapshot_id[:12]}) and is read-only; open the dataset without "
                "version= to write to the latest, or branch from this snapshot with "
                ".branch(name)"
            )
        if self._branch_name != MAIN_BRANCH:
            info = refs.get_branch(self._storage, self._branch_name)
            if info is None or info.id != self._log.branch:
                raise ReadOnlyDataset(
                    f"cannot {what}: branch {self._branch_name!r} of {self.uri} was deleted"
                )

    def append(
        self,
        data: DataLike,
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
        max_rows_per_fragment: int | None = None,
        schema_mode: SchemaMode = "strict",
        validate: ValidateMode = "contract",
        sort_by: Sequence[str] | str | None = None,
    ) -> Dataset:
        """Add rows; return the Dataset at the new version.

        Concurrent appends never conflict: a writer that loses the race retries
        on top of the winner automatically.

        Args:
            schema_mode: ``"strict"`` (default): the data must have the schema's
                columns and types. ``"add"``: new columns are added to the schema
                (nullable), missing nullable ones are written as nulls. ``"merge"``:
                also widens columns whose data type is wider (see
                docs/schema-evolution.md). Nothing is ever dropped, truncated or narrowed.
            validate: ``"contract"`` (default) checks the rows against the contract
                before anything is committed; ``"skip"`` is for emergencies and is
                recorded in the commit's parameters.

        Raises:
            SchemaMismatch: the data's columns or types differ from the schema.
            SchemaEvolutionError: (merge) a column's type cannot be widened to the data's.
            ContractViolation: the rows break the contract; nothing was committed.
            CommitConflict: a concurrent commit changed the schema or the contract.
            ReadOnlyDataset: this view is pinned to an explicit version.
        """
        self._require_writable("append")
        return self._write(
            data,
            "append",
            message=message,
            author=author,
            properties=properties,
            max_rows_per_fragment=max_rows_per_fragment,
            schema_mode=schema_mode,
            validate=validate,
            sort_by=sort_by,
        )

    def overwrite(
        self,
        data: DataLike,
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
        max_rows_per_fragment: int | None = None,
        schema_mode: SchemaMode = "strict",
        validate: ValidateMode = "contract",
        sort_by: Sequence[str] | str | None = None,
    ) -> Dataset:
        """Replace all rows (history keeps the old ones); return the Dataset at the new version.

        ``schema_mode`` and ``validate`` work as in `append`.

        Raises:
            CommitConflict: another commit landed after the version this view shows.
        """
        self._require_writable("overwrite")
        return self._write(
            data,
            "overwrite",
            message=message,
            author=author,
            properties=properties,
            max_rows_per_fragment=max_rows_per_fragment,
            schema_mode=schema_mode,
            validate=validate,
            sort_by=sort_by,
        )

    def _write(self, data: DataLike, operation: str, **options: Any) -> Dataset:
        snap = commit_data(
            self._storage, self._log, self._snap, data, operation=operation, **options
        )
        return self._child(snap)

    # ----------------------------------------------------------------- layout

    @property
    def partitioning(self) -> list[Transform]:
        """How new fragments are partitioned, e.g. ``[identity('category'), day('ts')]``."""
        names = {fid: f.name for fid, f in self._state.fields.items()}
        return [
            Transform(names.get(f["field_id"], f"<dropped {f['field_id']}>"), f["transform"])
            for f in self._snap.partitioning
        ]

    @property
    def sort_by(self) -> list[str]:
        """How rows are clustered within new fragments (``-name``: descending)."""
        names = {fid: f.name for fid, f in self._state.fields.items()}
        return [
            ("-" if s.get("descending") else "") + names.get(s["field_id"], "?")
            for s in self._snap.sort_by
        ]

    def set_partitioning(
        self,
        partition_by: Sequence[str | Transform],
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> Dataset:
        """Change how *new* fragments are partitioned (partition evolution); no data moves.

        Existing fragments keep their own partition values; reads and pruning are
        correct across both layouts. ``[]`` stops partitioning.
        """
        self._require_writable("set the partitioning")
        snap = commit_partitioning(
            self._storage, self._log, self._snap, partition_by, message=message, author=author
        )
        return self._child(snap)

    # ------------------------------------------------------- schema and contract

    def evolve(
        self,
        *,
        add: Mapping[ColumnRef, pa.DataType | pa.Field[Any]] | None = None,
        rename: Mapping[ColumnRef, str] | None = None,
        drop: Iterable[ColumnRef] | None = None,
        widen: Mapping[ColumnRef, pa.DataType | pa.Field[Any]] | None = None,
        contract: Any = KEEP,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Change the schema in a schema-only commit (no fragment is rewritten).

        Columns are named by their current name, or a tuple path for nested fields
        (``("address", "zip")``). Changes apply in the order drop, widen, rename,
        add; an added column is nullable and gets a new field id, even if it reuses
        a dropped name (the old values never resurface).

        The contract in force must accept the new schema. To change both, pass the
        new contract (or None) as ``contract``: it is checked against the new schema
        and committed together with it.

        Example:
            ``ds.evolve(add={"score": pa.float64()}, rename={"ts": "event_time"},
            drop=["debug"], widen={"n": pa.int64()}, message="v2 schema")``

        Raises:
            SchemaEvolutionError: a refused change (narrowing, another type family,
                making a column non-nullable, a name collision, or a change the
                contract forbids); nothing was committed.
            InvalidArgument: an unknown column or a malformed argument.
            CommitConflict: a concurrent commit changed the schema or the contract.
        """
        self._require_writable("evolve the schema")
        snap = commit_evolve(
            self._storage,
            self._log,
            self._snap,
            add=add,
            rename=rename,
            drop=drop,
            widen=widen,
            contract=contract,
            message=message,
            author=author,
            properties=properties,
        )
        return self._child(snap)

    @property
    def contract(self) -> Any:
        """The contract in force at this snapshot (a pandera DataFrameSchema), or None."""
        ref = self._snap.contract
        if ref is None:
            return None
        return contracts.from_json(ref.api, read_contract_text(self._storage, ref.id))

    def set_contract(
        self,
        contract: Any,
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Attach a pandera contract (None removes it) in a new commit; rows are not rewritten.

        Every later commit validates its incoming rows against it. Existing rows are
        not re-checked; `validate` does that.

        Args:
            contract: a ``pandera.polars`` DataFrameSchema or DataFrameModel class
                (preferred), or a pandas-API one; stored as pandera's JSON.

        Raises:
            InvalidArgument: not a pandera schema, or one with checks pandera cannot
                serialize (e.g. lambdas): use built-in or registered checks.
            ContractViolation: the contract does not fit the schema (missing
                columns, other dtypes).
        """
        self._require_writable("set the contract")
        snap = commit_contract(
            self._storage,
            self._log,
            self._snap,
            contract,
            message=message,
            author=author,
            properties=properties,
        )
        return self._child(snap)

    def validate(self, *, batch_size: int = 1 << 20) -> int:
        """Re-check every row of this snapshot against its contract; return the rows checked.

        Rows are checked in batches of ``batch_size`` (``unique`` checks apply
        within a batch).

        Raises:
            ContractViolation: with the failure cases of every batch.
            InvalidArgument: this snapshot has no contract.
        """
        ref = self._snap.contract
        if ref is None:
            raise InvalidArgument(
                f"version {self.version} of {self.uri} has no contract to validate against; "
                "attach one with Dataset.set_contract"
            )
        batches = (pa.Table.from_batches([b]) for b in self.to_batches(batch_size))
        text = read_contract_text(self._storage, ref.id)
        what = f"version {self.version} of {self.uri}"
        advice = (
            "Rows committed with validate='skip', or before the contract was attached, are "
            "not checked on commit; overwrite them with corrected rows to fix the dataset"
        )
        return contracts.validate_batches(ref.api, text, batches, what=what, advice=advice)

    def schema_history(self) -> list[SchemaVersion]:
        """Every schema from the creation to this snapshot, oldest first, and what changed.

        One entry per commit that changed the schema (the first is the creation).
        Reads every log entry back to the creation, like `history`.
        """
        snaps = list(self._log.ancestors(self._snap))[::-1]
        out: list[SchemaVersion] = []
        previous: pa.Schema | None = None
        for snap in snaps:
            if previous is not None and snap.schema == snaps[snap.version - 1].schema:
                continue
            schema = schema_from_json(snap.schema, path=f"snapshot {snap.snapshot_id}")
            out.append(_schema_version(snap, schema, previous))
            previous = schema
        return out

    def schema_diff(self, other: Dataset) -> list[SchemaChange]:
        """What changed from this snapshot's schema to ``other``'s (same dataset), by field id."""
        if not isinstance(other, Dataset):
            raise InvalidArgument(f"schema_diff needs another Dataset, got {other!r}")
        return schema_changes(self._internal_schema(), other._internal_schema())


# --------------------------------------------------------------------- top level


def _reopen(
    storage: Storage,
    branch_id: str,
    version: int,
    snapshot_id: str,
    branch_name: str,
    writable: bool,  # noqa: FBT001 - positional: the pickle protocol calls it
) -> Dataset:
    """Unpickle a `Dataset`: the same snapshot, verified by its id."""
    from lakever._resolve import locate_snapshot

    where = locate_snapshot(storage, branch_id, version, snapshot_id)
    return Dataset(SnapshotState(storage, where.log, where.snap, branch_name, writable=writable))


def _schema_version(snap: Snapshot, schema: pa.Schema, previous: pa.Schema | None) -> SchemaVersion:
    return SchemaVersion(
        version=snap.version,
        snapshot_id=snap.snapshot_id,
        timestamp=snap.timestamp,
        operation=snap.operation,
        message=snap.message,
        schema=strip_field_ids(schema),
        field_ids={f.name: fid for fid, f in iter_field_ids(schema)},
        changes=() if previous is None else tuple(schema_changes(previous, schema)),
    )


def diff(
    uri: str,
    a: int | str | datetime,
    b: int | str | datetime,
    *,
    on: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    branch: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Diff:
    """What changed between two snapshots of a dataset: rows added, removed and changed.

    Fragments both snapshots share are never read, and a fragment whose deletion
    vector grew contributes only its newly deleted rows, so the cost follows the
    size of the change, not of the dataset. Columns are matched by field id (a
    rename is a rename, not a drop plus an add), and rows are compared on the columns
    both snapshots have: a column added or dropped in between is reported once, in
    ``schema_changes``, not as a change of every row.

    Args:
        a: the older side: an int version, an aware datetime, a tag, a branch or a
            snapshot id (ints and datetimes on ``branch``, default main).
        b: the newer side, likewise.
        on: key columns: rows are matched by key, and changed keys reported with the
            old and new values (default: the declared primary key; without one, or
            with ``on=[]``, rows are compared as a multiset: added and removed only).
        columns: compare (and read, and return) only these columns, plus the key; a row
            that differs only in other columns is not a change.

    Example:
        ``d = lv.diff("lake/events", "train-v2", "train-v3"); d.summary; d.changed()``

    Raises:
        DatasetNotFound, VersionNotFound: no such dataset or version.
        InvalidArgument: ``on`` or ``columns`` names unknown columns (or, for
            ``columns``, a column only one snapshot has), or ``on`` is not unique in the
            rows compared.
    """
    storage = open_storage(uri, storage_options)
    sides = []
    for ref in (a, b):
        where = locate(storage, version=ref, branch=None if isinstance(ref, str) else branch)
        sides.append(Dataset._at(storage, where))
    return diff_of(sides[0], sides[1], on, columns)


def open_dataset(
    uri: str,
    *,
    version: int | str | datetime | None = None,
    branch: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Dataset:
    """Open a dataset at a branch head, a version, a point in time, a tag, or a pin.

    Args:
        uri: a local path, ``file://`` or ``memory://`` URI, or a pin from `Dataset.pin`.
        version: an int version number on the branch; a timezone-aware datetime (the
            last commit at or before it); or a string: a tag, a branch or a snapshot id
            (prefix of at least 8 hex digits). ``"tag:NAME"`` forces the tag meaning.
        branch: the branch for int/datetime versions and for the head (default main).
        storage_options: passed to fsspec for remote storage.

    Returns:
        The Dataset. At a branch head it can write to that branch; otherwise it is
        read-only (detached).

    Raises:
        DatasetNotFound: nothing at ``uri``.
        VersionNotFound: no such version, time, tag, branch or snapshot id.
        InvalidArgument: ``version`` of the wrong type, a naive datetime, or an
            ambiguous name.
    """
    if isinstance(uri, str) and uri.startswith(PIN_PREFIX):
        if version is not None or branch is not None:
            raise InvalidArgument(
                "a pin names one snapshot already; do not also pass version= or branch="
            )
        storage, where = locate_pin(uri, lambda u: open_storage(u, storage_options))
        return Dataset._at(storage, where)
    storage = open_storage(uri, storage_options)
    return Dataset._at(storage, locate(storage, version=version, branch=branch))


def create_dataset(
    uri: str,
    data: DataLike,
    *,
    message: str | None = None,
    author: str | None = None,
    properties: Properties | None = None,
    max_rows_per_fragment: int | None = None,
    storage_options: dict[str, Any] | None = None,
    contract: Any = None,
    validate: ValidateMode = "contract",
    partition_by: Sequence[str | Transform] | None = None,
    sort_by: Sequence[str] | str | None = None,
    primary_key: Sequence[str] | None = None,
) -> Dataset:
    """Create a dataset from ``data`` (version 0); fail if one exists at ``uri``.

    Args:
        uri: where to create it: a local path, ``file://`` or ``memory://`` URI.
        data: a pyarrow Table/RecordBatch/RecordBatchReader, polars or pandas DataFrame.
        message: commit message; ``author`` defaults to the OS user
            (``getpass.getuser()``: ``LOGNAME``, ``USER``, ``LNAME`` or ``USERNAME`` from
            the environment, else the login name).
        properties: arbitrary str -> str metadata recorded with the commit.
        max_rows_per_fragment: split the rows into Parquet fragments of at most this
            many rows (default 1,048,576).
        contract: a pandera schema every commit's rows must satisfy, starting with
            these (see `Dataset.set_contract`).
        validate: ``"skip"`` does not check ``data`` against ``contract`` (recorded).
        partition_by: columns and/or transforms (``lakever.day("ts")``, ``hour``,
            ``month``, ``year``): every fragment then holds one partition, and filters
            on those columns skip whole partitions. See `Dataset.set_partitioning`.
        sort_by: columns to cluster rows by within fragments (``"-col"`` descending),
            the default for later writes too; makes min/max pruning effective.
        primary_key: key columns every commit keeps unique and non-null (checked on
            each commit; `upsert` uses it by default). Renaming a key column keeps it.

    Raises:
        DatasetExists: a dataset already exists at ``uri``.
        ContractViolation: ``data`` breaks ``contract``; nothing was created.
        PrimaryKeyViolation: ``data`` has null or repeated keys; nothing was created.
    """
    storage = open_storage(uri, storage_options)
    log = Log(storage, MAIN_BRANCH)
    if log.head() is not None:
        raise DatasetExists(
            f"a dataset already exists at {storage.uri}; open it with lakever.open_dataset, "
            "or use write_dataset(..., mode='append' | 'overwrite')",
            uri=storage.uri,
        )
    snap = commit_data(
        storage,
        log,
        None,
        data,
        operation="create",
        message=message,
        author=author,
        properties=properties,
        max_rows_per_fragment=max_rows_per_fragment,
        validate=validate,
        contract=contract,
        partition_by=partition_by,
        sort_by=sort_by,
        primary_key=primary_key,
    )
    return Dataset(SnapshotState(storage, log, snap, MAIN_BRANCH, writable=True))


def write_dataset(
    uri: str,
    data: DataLike,
    *,
    mode: WriteMode = "create",
    message: str | None = None,
    author: str | None = None,
    properties: Properties | None = None,
    max_rows_per_fragment: int | None = None,
    storage_options: dict[str, Any] | None = None,
    schema_mode: SchemaMode = "strict",
    validate: ValidateMode = "contract",
    partition_by: Sequence[str | Transform] | None = None,
    sort_by: Sequence[str] | str | None = None,
    primary_key: Sequence[str] | None = None,
) -> Dataset:
    """Write ``data`` in one call.

    Args:
        mode: ``"create"`` (default; fails if the dataset exists), ``"append"`` or
            ``"overwrite"`` (both create the dataset if it does not exist yet).
        schema_mode: as in `Dataset.append` (ignored when the call creates the dataset).
        validate: as in `Dataset.append`.
        partition_by: as in `create_dataset`; only used when the call creates the dataset.
        sort_by: as in `create_dataset` / `Dataset.append`.
        primary_key: as in `create_dataset`, declared when the call creates the dataset;
            on an existing dataset it must equal the declared key (or be None).

    Raises:
        DatasetExists: ``mode="create"`` and a dataset exists at ``uri``.
        InvalidArgument: ``primary_key`` differs from the existing dataset's key.
        SchemaMismatch, ContractViolation, PrimaryKeyViolation: as for `Dataset.append`.
    """
    if mode not in ("create", "append", "overwrite"):
        raise InvalidArgument(f"mode must be 'create', 'append' or 'overwrite', got {mode!r}")
    kwargs: dict[str, Any] = {
        "message": message,
        "author": author,
        "properties": properties,
        "max_rows_per_fragment": max_rows_per_fragment,
        "validate": validate,
        "sort_by": sort_by,
        "primary_key": primary_key,
    }
    if mode == "create":
        return create_dataset(
            uri, data, storage_options=storage_options, partition_by=partition_by, **kwargs
        )
    storage = open_storage(uri, storage_options)
    log = Log(storage, MAIN_BRANCH)
    head = log.head()
    snap = commit_data(
        storage,
        log,
        head,
        data,
        operation=mode,
        schema_mode=schema_mode,
        partition_by=partition_by,
        **kwargs,
    )
    return Dataset(SnapshotState(storage, log, snap, MAIN_BRANCH, writable=True))
