"""`Dataset`: a view of one snapshot (`lakever.view.SnapshotView`) that can commit.

Every write checks its arguments and delegates to the module of its family, which
takes the dataset's `lakever.snapshot.SnapshotState`: data, schema, contract and
layout commits to `lakever._writer`, row changes to `lakever.rowops`, refs to
`lakever.refs` and merges to `lakever._merge_commit`. The top-level functions
(`open_dataset`, ...) are in `lakever.api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever import refs, rowops
from lakever._merge_commit import commit_merge
from lakever._resolve import PIN_PREFIX, pin_parts, resolve_source
from lakever._types import DataLike, Properties, RowMode, SchemaMode, ValidateMode
from lakever._writer import (
    KEEP,
    commit_contract,
    commit_data,
    commit_evolve,
    commit_partitioning,
    default_author,
)
from lakever.errors import InvalidArgument, ReadOnlyDataset
from lakever.evolution import ColumnRef
from lakever.format import MAIN_BRANCH, Snapshot
from lakever.interop import iceberg
from lakever.interop.iceberg import IcebergExport
from lakever.maintenance import auto, restore, usage
from lakever.maintenance import compact as compaction
from lakever.maintenance import expire as expiry
from lakever.maintenance import vacuum as vacuuming
from lakever.maintenance.expire import ExpireReport
from lakever.maintenance.usage import StorageReport
from lakever.maintenance.vacuum import VacuumReport
from lakever.merge import MergeStrategy
from lakever.partitioning import Transform
from lakever.retention import Retained, export_id, list_exported, list_retained
from lakever.snapshot import SnapshotState
from lakever.storage import open_storage
from lakever.view import SnapshotView

if TYPE_CHECKING:
    from lakever.interop.delta import DeltaExport

__all__ = ["Dataset"]


class Dataset(SnapshotView):
    """An immutable view of one snapshot of a dataset, that can commit on its branch.

    Reading never changes what a `Dataset` shows, even while others commit. Writes
    return a new `Dataset` at the new version. A view opened at the head of a branch
    can write to that branch; a view opened at an old version, a tag, a snapshot id or
    a pin is read-only ("detached"). A `Dataset` pickles: it reopens the same snapshot.
    """

    __slots__ = ()

    def _child(self, snap: Snapshot | None) -> Dataset:
        """The Dataset at a snapshot just committed on this branch (None: nothing was),
        or at the automatic compaction its table properties ran after it."""
        if snap is None:
            return self
        state = self._state.at(snap, writable=True)
        return Dataset(state.at(auto.after_commit(state) or snap))

    def _require_writable(self, what: str) -> None:
        state = self._state
        if not state.writable:
            raise ReadOnlyDataset(
                f"cannot {what}: this view of {self.uri} is detached at version {self.version} "
                f"(snapshot {self.snapshot_id[:12]}) and is read-only; open the dataset without "
                "version= to write to the latest, or branch from this snapshot with "
                ".branch(name)"
            )
        if state.branch_name != MAIN_BRANCH:
            info = refs.get_branch(state.storage, state.branch_name)
            if info is None or info.id != state.line.branch_id:
                raise ReadOnlyDataset(
                    f"cannot {what}: branch {state.branch_name!r} of {self.uri} was deleted"
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

        Concurrent appends never conflict: a writer that loses the race retries on top
        of the winner. ``schema_mode``: ``"strict"`` (default) needs the schema's columns
        and types; ``"add"`` adds new columns (nullable); ``"merge"`` also widens types
        (docs/schema-evolution.md). ``validate="skip"`` skips the contract (recorded).
        A Ray Dataset or Dask DataFrame is written by its workers, in one commit
        (docs/engines.md).

        Raises:
            SchemaMismatch, SchemaEvolutionError: the data does not fit the schema.
            ContractViolation, PrimaryKeyViolation: nothing was committed.
            CommitConflict: a concurrent commit changed the schema or the contract.
            ReadOnlyDataset: this view is pinned to an explicit version.
        """
        self._require_writable("append")
        return self._write(
            data, "append", message, author, properties, max_rows_per_fragment, schema_mode,
            validate, sort_by,
        )  # fmt: skip

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
        """Replace all rows (history keeps the old ones); arguments as in `append`.

        Raises:
            CommitConflict: another commit landed after the version this view shows.
        """
        self._require_writable("overwrite")
        return self._write(
            data, "overwrite", message, author, properties, max_rows_per_fragment, schema_mode,
            validate, sort_by,
        )  # fmt: skip

    def _write(self, data: DataLike, operation: str, *options: Any) -> Dataset:
        message, author, properties, max_rows, schema_mode, validate, sort_by = options
        s = self._state
        snap = commit_data(
            s.storage, s.line, s.snap, data, operation=operation, message=message, author=author,
            properties=properties, max_rows_per_fragment=max_rows, schema_mode=schema_mode,
            validate=validate, sort_by=sort_by,
        )  # fmt: skip
        return self._child(snap)

    def set_partitioning(
        self,
        partition_by: Sequence[str | Transform],
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> Dataset:
        """Change how *new* fragments are partitioned (no data moves; ``[]`` stops it).

        Existing fragments keep their partition values; reads and pruning are correct
        across both layouts.
        """
        self._require_writable("set the partitioning")
        s = self._state
        snap = commit_partitioning(
            s.storage, s.line, s.snap, partition_by, message=message, author=author
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

        Columns are named by their current name, or a tuple path for nested fields.
        Changes apply in the order drop, widen, rename, add; an added column is nullable
        and gets a new field id. The contract in force must accept the new schema; pass
        ``contract`` to change both in one commit. Example:
        ``ds.evolve(add={"score": pa.float64()}, rename={"ts": "event_time"})``.

        Raises:
            SchemaEvolutionError: a refused change; nothing was committed.
            InvalidArgument: an unknown column or a malformed argument.
            CommitConflict: a concurrent commit changed the schema or the contract.
        """
        self._require_writable("evolve the schema")
        s = self._state
        snap = commit_evolve(
            s.storage, s.line, s.snap, add=add, rename=rename, drop=drop, widen=widen,
            contract=contract, message=message, author=author, properties=properties,
        )  # fmt: skip
        return self._child(snap)

    def set_contract(
        self,
        contract: Any,
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Attach a pandera contract (None removes it) that every later commit's rows must
        satisfy; existing rows are not re-checked (`validate` does that).

        Raises:
            InvalidArgument: not a pandera schema, or checks pandera cannot serialize.
            ContractViolation: the contract does not fit the schema.
        """
        self._require_writable("set the contract")
        s = self._state
        snap = commit_contract(
            s.storage, s.line, s.snap, contract, message=message, author=author,
            properties=properties,
        )  # fmt: skip
        return self._child(snap)

    # ----------------------------------------------------------------- row changes

    def delete(
        self,
        where: str,
        *,
        mode: RowMode = "merge-on-read",
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Delete the rows where ``where`` (a filter, as in `to_arrow`) holds.

        ``mode="merge-on-read"`` writes deletion vectors; ``"copy-on-write"`` rewrites
        the affected fragments. Matching no row commits nothing and returns ``self``.

        Raises:
            InvalidArgument: the predicate is not one valid expression over the columns.
            CommitConflict: a concurrent commit rewrote a fragment this delete rewrote.
            ReadOnlyDataset: this view is pinned to an explicit version.
        """
        self._require_writable("delete rows")
        return self._child(
            rowops.delete(
                self._state, where, mode=mode, message=message, author=author,
                properties=properties,
            )
        )  # fmt: skip

    def update(
        self,
        set: Mapping[str, str],
        *,
        where: str | None = None,
        mode: RowMode = "merge-on-read",
        validate: ValidateMode = "contract",
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Set columns to SQL expressions in the rows where ``where`` holds (all by default).

        The changed rows are written as a new fragment (checked against the contract and
        the key) and the old ones deleted as in `delete`; updated rows move to the end of
        the read order. Changing no value commits nothing. Example:
        ``ds.update(set={"label": "'spam'"}, where="id IN (3, 7)")``.

        Raises:
            InvalidArgument: unknown column, or an expression DuckDB refuses.
            ContractViolation, PrimaryKeyViolation: nothing was committed.
            CommitConflict: as for `delete`, or a concurrent schema or contract change.
        """
        self._require_writable("update rows")
        return self._child(
            rowops.update(
                self._state, set, where, mode=mode, validate=validate, message=message,
                author=author, properties=properties,
            )
        )  # fmt: skip

    def upsert(
        self,
        data: DataLike,
        *,
        on: Sequence[str] | None = None,
        mode: RowMode = "merge-on-read",
        validate: ValidateMode = "contract",
        schema_mode: SchemaMode = "strict",
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Insert the rows of ``data`` whose key is new; replace the rows whose key matches.

        ``on``: the key columns (default: the declared primary key); each key at most
        once in ``data``. ``schema_mode`` as in `append`.

        Raises:
            InvalidArgument: no key given or declared, or repeated keys in ``data``.
            PrimaryKeyViolation: (declared key) repeated or null keys in ``data``.
            SchemaMismatch, ContractViolation: as for `append`.
            CommitConflict: as for `update`, or a concurrent commit added one of the keys.
        """
        self._require_writable("upsert rows")
        return self._child(
            rowops.upsert(
                self._state, data, on, mode=mode, validate=validate, schema_mode=schema_mode,
                message=message, author=author, properties=properties,
            )
        )  # fmt: skip

    # ----------------------------------------------------------------- maintenance

    def compact(
        self,
        *,
        target_size: int | str = compaction.DEFAULT_TARGET_SIZE,
        where: str | None = None,
        min_fragments: int = 2,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Merge small fragments of each partition and drop the rows deletion vectors hide,
        in a commit (operation ``"compact"``) that changes no row (docs/maintenance.md).

        ``target_size``: bytes per new fragment (an int, or e.g. ``"128M"``); fragments
        smaller than it are merged, up to it. ``where``: only fragments whose partition or
        statistics may hold matching rows. A run of fewer than ``min_fragments`` small
        fragments is left alone unless one has a deletion vector. Nothing to do commits
        nothing and returns ``self``.

        Raises:
            InvalidArgument: a malformed argument or ``where``.
            CommitConflict: concurrent row changes kept rewriting the same fragments.
            ReadOnlyDataset: this view is pinned to an explicit version.
        """
        self._require_writable("compact")
        return self._child(
            compaction.compact(
                self._state, target_size=target_size, where=where, min_fragments=min_fragments,
                message=message, author=author, properties=properties,
            )
        )  # fmt: skip

    def set_properties(
        self,
        properties: Mapping[str, str | None],
        *,
        message: str | None = None,
        author: str | None = None,
    ) -> Dataset:
        """Set table properties (None removes one), carried forward by every later commit.

        Known keys: ``compact.auto`` (``"true"``: compact after a commit once
        ``compact.min_small_fragments`` small fragments exist or deletion vectors hide more
        than ``compact.max_deleted_fraction`` of the rows) and ``compact.target_size``
        (docs/maintenance.md). Example: ``ds.set_properties({"compact.auto": "true"})``.

        Raises:
            InvalidArgument: an unknown key or a malformed value; nothing was committed.
        """
        self._require_writable("set table properties")
        snap = auto.set_properties(self._state, properties, message=message, author=author)
        return self._child(snap)

    # ----------------------------------------------------------------- refs

    def tag(self, name: str, *, message: str | None = None, author: str | None = None) -> refs.Tag:
        """Give this snapshot an immutable name; ``open_dataset(uri, version=name)`` reopens it.

        Raises:
            InvalidRefName: the name breaks git's ref-name rules.
            RefExists: the tag exists (tags never move: delete it first to re-point it).
        """
        for what, value in (("message", message), ("author", author)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"{what} must be a string, got {value!r}")
        s = self._state
        return refs.create_tag(
            s.storage, name, snapshot_id=s.snap.snapshot_id, branch_id=s.snap.branch_id,
            version=s.snap.version, author=author or default_author(), message=message or "",
        )  # fmt: skip

    def delete_tag(self, name: str, *, author: str | None = None) -> None:
        """Delete a tag (recorded in the ref audit trail); its snapshot stays in history."""
        refs.delete_tag(self._storage, name, author=author or default_author())

    def branch(self, name: str, *, author: str | None = None) -> Dataset:
        """Create a branch at this snapshot; return the Dataset on it (writable).

        Raises:
            InvalidRefName: the name breaks git's ref-name rules.
            RefExists: a branch with that name exists.
        """
        s = self._state
        base = (s.snap.branch_id, s.snap.version, s.snap.snapshot_id)
        info = refs.create_branch(s.storage, name, base=base, author=author or default_author())
        line = refs.line_for(s.storage, info.id)
        return Dataset(SnapshotState(s.storage, line, s.snap, name, writable=True))

    def delete_branch(self, name: str, *, author: str | None = None) -> None:
        """Delete a branch name; its commits stay readable through tags, pins and ids."""
        refs.delete_branch(self._storage, name, author=author or default_author())

    def merge(
        self,
        source: str,
        *,
        message: str | None = None,
        strategy: MergeStrategy | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Merge ``source`` (a branch, tag or snapshot id) into this view's branch.

        Fast-forwards when this branch has not moved since ``source`` branched off;
        otherwise merges fragment by fragment against the common ancestor, checking the
        rows it brings against the result's contract and key (docs/branches-and-tags.md).

        Raises:
            MergeConflict: both sides changed the same thing; pass ``strategy="ours"`` or
                ``"theirs"`` to take one side's snapshot.
            ContractViolation, PrimaryKeyViolation: rows the merge brings break them.
            RefNotFound: ``source`` names no branch, tag or snapshot.
        """
        self._require_writable("merge")
        if strategy not in (None, "ours", "theirs"):
            raise InvalidArgument(f"strategy must be None, 'ours' or 'theirs', got {strategy!r}")
        s = self._state
        snap = commit_merge(
            s.storage, s.line, resolve_source(s.storage, source), source=source,
            strategy=strategy, message=message, author=author, properties=properties,
        )  # fmt: skip
        return self._child(snap)

    def restore(
        self,
        version: int | str | datetime,
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Commit a new version whose rows, schema (same field ids), contract, partitioning,
        sort order and key equal those of ``version`` (an int or datetime on this branch,
        or a tag, branch or snapshot id); history is kept (docs/maintenance.md, Restore).

        Raises:
            VersionNotFound: ``version`` names no snapshot.
            CommitConflict: a commit landed on the branch after this view's version.
        """
        self._require_writable("restore")
        snap = restore.restore(
            self._state, version, message=message, author=author, properties=properties
        )
        return self._child(snap)

    # ----------------------------------------------------------------- maintenance

    def expire(
        self,
        *,
        older_than: datetime | timedelta | None = None,
        keep_last: int | None = None,
        dry_run: bool = True,
        author: str | None = None,
    ) -> ExpireReport:
        """Expire old versions on every branch (docs/maintenance.md, Expiry): those
        committed before ``older_than`` (a datetime, or a timedelta before now) and not
        among the ``keep_last`` newest of their branch. Tags, branch heads, retained pins
        and the merge bases of live branches are never expired. Opening an expired version
        raises `VersionExpired`; its files go at the next vacuum after the grace period.

        ``dry_run`` (the default) reports what would be expired and changes nothing.

        Raises:
            InvalidArgument: neither policy given, or a value of the wrong type.
        """
        _check_flag("dry_run", dry_run)
        return expiry.expire(
            self._storage, older_than=older_than, keep_last=keep_last, dry_run=dry_run,
            author=author or default_author(),
        )  # fmt: skip

    def vacuum(
        self,
        *,
        dry_run: bool = True,
        grace: timedelta = vacuuming.DEFAULT_GRACE,
        allow_short_grace: bool = False,
    ) -> VacuumReport:
        """Delete the files no retained snapshot on any branch references (docs/maintenance.md,
        Vacuum): those only versions expired more than ``grace`` ago reference, and
        orphans and leftovers of failed writes older than ``grace``. Decided by
        reachability; tags, branch heads and retained pins keep every byte they need.

        ``dry_run`` (the default) lists what would be deleted and which refs keep what.

        Raises:
            InvalidArgument: ``grace`` under an hour without ``allow_short_grace=True``.
            CorruptMetadata: a retained snapshot is damaged; nothing was deleted.
        """
        _check_flag("dry_run", dry_run)
        _check_flag("allow_short_grace", allow_short_grace)
        grace = vacuuming.check_grace(grace, allow_short_grace=allow_short_grace)
        return vacuuming.vacuum(self._storage, dry_run=dry_run, grace=grace)

    def storage_report(self, *, grace: timedelta = vacuuming.DEFAULT_GRACE) -> StorageReport:
        """Where the dataset's bytes are: held by branch heads, tags, history only; expiring;
        reclaimable by a vacuum with ``grace`` now; per ref exclusively; the head
        fragments' size histogram (docs/maintenance.md, Storage accounting)."""
        grace = vacuuming.check_grace(grace, allow_short_grace=True)
        return usage.storage_report(self._storage, grace=grace)

    def retain(self, *, reason: str = "", author: str | None = None) -> Retained:
        """Keep this snapshot through every expiry until `release` (like an anonymous tag,
        e.g. for a pin logged with a model). Returns the record; ``.pin`` reopens it."""
        s = self._state
        return refs.retain(
            s.storage, s.snap, pin=self.pin(), reason=reason, author=author or default_author()
        )

    def release(self, pin: str, *, author: str | None = None) -> Retained:
        """Stop retaining a snapshot: a pin, or (8+ hex digits of) a retained snapshot id.

        Raises:
            RefNotFound: no single retained snapshot matches.
        """
        if not isinstance(pin, str):
            raise InvalidArgument(f"release needs a pin or a snapshot id, got {pin!r}")
        snapshot = pin_parts(pin)[1].get("snapshot", "") if pin.startswith(PIN_PREFIX) else pin
        return refs.release(self._storage, snapshot, author=author or default_author())

    def retained(self) -> list[Retained]:
        """Every retained snapshot of the dataset, oldest request first."""
        return list_retained(self._storage)

    def exports(self) -> list[Retained]:
        """Every snapshot an export to another format holds (``pin`` is the export id)."""
        return list_exported(self._storage)

    def export_delta(
        self,
        target: str,
        *,
        storage_options: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> DeltaExport:
        """Publish this branch's history up to this snapshot as a Delta Lake table at
        ``target`` (the dataset root or a directory above it), referencing the Parquet
        fragments in place; again later: appends the new versions (docs/export.md).

        Raises:
            ExportError: the target holds another table, or history diverged, or a
                column type Delta cannot hold, or a target the files are not under.
        """
        from lakever.interop import delta

        return delta.export(self._state, target, storage_options=storage_options,
                            author=author or default_author())  # fmt: skip

    def drop_export(self, format: str, target: str, *, author: str | None = None) -> int:
        """Let expiry and vacuum treat the snapshots the export of ``format`` (e.g.
        "delta") to ``target`` (a path or URI; exports are keyed by
        ``export_id(format, open_storage(target).uri)``) holds like any other; returns
        how many it held. The
        exported table is not touched (its readers may then find files gone)."""
        export = export_id(format, open_storage(target).uri)
        held = refs.drop_export(self._storage, export, author=author or default_author())
        return len(held)

    def export_iceberg(self, target: str, *, author: str | None = None) -> IcebergExport:
        """Publish this branch's history up to this snapshot as an Apache Iceberg table at
        ``target`` over the same Parquet files (incremental; docs/export.md)."""
        return iceberg.export_iceberg(self._state, target, author=author or default_author())


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be True or False, got {value!r}")
