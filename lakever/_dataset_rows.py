"""Row-level changes, diffs and the change feed of `lakever.Dataset` (a mixin; see dataset.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from lakever import rowops
from lakever._resolve import locate
from lakever._types import DataLike, Properties, RowMode, SchemaMode, ValidateMode
from lakever.diff import Diff, Side
from lakever.diff import changes as changes_feed
from lakever.diff import compute as compute_diff
from lakever.errors import InvalidArgument
from lakever.format import FragmentEntry, Snapshot
from lakever.fragments import read_manifest
from lakever.storage import Storage

if TYPE_CHECKING:
    from lakever.dataset import Dataset
    from lakever.log import Log
    from lakever.snapshot import SnapshotState

__all__ = ["RowsMixin", "diff_of"]


class RowsMixin:
    """delete / update / upsert, diff and the change feed."""

    __slots__ = ()

    if TYPE_CHECKING:
        _state: SnapshotState

        @property
        def _storage(self) -> Storage: ...

        @property
        def _log(self) -> Log: ...

        @property
        def _snap(self) -> Snapshot: ...

        @property
        def uri(self) -> str: ...

        @property
        def version(self) -> int: ...

        @property
        def schema(self) -> pa.Schema: ...

        @property
        def branch_name(self) -> str: ...

        @property
        def primary_key(self) -> list[str] | None: ...

        def _require_writable(self, what: str) -> None: ...

        def _child(self, snap: Snapshot) -> Dataset: ...

    def delete(
        self,
        where: str,
        *,
        mode: RowMode = "merge-on-read",
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Delete the rows where ``where`` (a DuckDB SQL boolean expression) is true.

        Fragments whose statistics rule the predicate out are not read. By default
        (``mode="merge-on-read"``) each affected fragment gets a deletion vector, a
        small file of deleted row positions, that every reader applies;
        ``"copy-on-write"`` rewrites the affected fragments instead. A delete that
        matches no row commits nothing and returns this Dataset unchanged.

        Example:
            ``ds = ds.delete(where="label IS NULL")``

        Raises:
            InvalidArgument: the predicate does not parse or bind (unknown column...).
            CommitConflict: a concurrent commit deleted rows from, or removed, a
                fragment this delete rewrote (concurrent appends never conflict).
            ReadOnlyDataset: this view is pinned to an explicit version.
        """
        self._require_writable("delete rows")
        snap = rowops.delete(
            self._state, where, mode=mode, message=message, author=author, properties=properties
        )
        return cast("Dataset", self) if snap is None else self._child(snap)

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
        """Set columns to SQL expressions in the rows where ``where`` holds (all rows by default).

        The new row versions are written as a new fragment (checked against the
        contract and the primary key) and the old ones are deleted as in `delete`.
        Updated rows therefore move to the end of the read order. An update that
        matches no row commits nothing and returns this Dataset unchanged.

        Example:
            ``ds = ds.update(set={"label": "'spam'"}, where="id IN (3, 7)")``

        Raises:
            InvalidArgument: unknown column, or an expression DuckDB refuses.
            ContractViolation, PrimaryKeyViolation: the new rows break the contract or
                the key; nothing was committed.
            CommitConflict: as for `delete`, or a concurrent schema or contract change.
        """
        self._require_writable("update rows")
        snap = rowops.update(
            self._state,
            set,
            where,
            mode=mode,
            validate=validate,
            message=message,
            author=author,
            properties=properties,
        )
        return cast("Dataset", self) if snap is None else self._child(snap)

    def upsert(
        self,
        data: DataLike,
        *,
        on: Sequence[str] | None = None,
        mode: RowMode = "merge-on-read",
        schema_mode: SchemaMode = "strict",
        validate: ValidateMode = "contract",
        message: str | None = None,
        author: str | None = None,
        properties: Properties | None = None,
    ) -> Dataset:
        """Insert the rows of ``data`` whose key is new; replace the rows whose key matches.

        Args:
            on: the key columns (default: the declared primary key). Each key must
                appear at most once in ``data``.
            schema_mode: as in `append`: ``"add"`` adds the data's new columns to the
                schema (null in every row the upsert does not write), ``"merge"`` also
                widens columns. A schema change is committed with the upsert.

        Raises:
            InvalidArgument: no key given or declared, or repeated keys in ``data``.
            PrimaryKeyViolation: (declared key) repeated or null keys in ``data``.
            SchemaMismatch, SchemaEvolutionError, ContractViolation: as for `append`.
            CommitConflict: as for `update`; also a concurrent commit that added rows
                with one of these keys (retry: the upsert then replaces them).
        """
        self._require_writable("upsert rows")
        snap = rowops.upsert(
            self._state,
            data,
            on,
            mode=mode,
            schema_mode=schema_mode,
            validate=validate,
            message=message,
            author=author,
            properties=properties,
        )
        return cast("Dataset", self) if snap is None else self._child(snap)

    def _side(self) -> Side:
        return Side(self._snap, self._state.entries, self._state.schema)

    def _other(self, other: Any) -> Dataset:
        """A Dataset for ``other``: a Dataset of this dataset, or a version reference."""
        from lakever.dataset import Dataset

        if isinstance(other, Dataset):
            if other.uri != self.uri:
                raise InvalidArgument(
                    f"cannot diff snapshots of two datasets ({self.uri} and {other.uri})"
                )
            return other
        branch = None if isinstance(other, str) else self._state.branch_name
        return Dataset._at(self._storage, locate(self._storage, version=other, branch=branch))

    def diff(
        self,
        other: Dataset | int | str | datetime,
        *,
        on: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> Diff:
        """What changed from this snapshot to ``other`` (see `lakever.diff` for ``on`` and
        ``columns``).

        ``other`` is another `Dataset` of the same dataset or a version reference: an
        int version on this branch, an aware datetime, a tag, branch or snapshot id.
        """
        return diff_of(self, self._other(other), on, columns)

    def changes(
        self, *, since: int | str | datetime, on: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """The change feed: rows inserted, deleted and updated after ``since`` up to this
        snapshot, one table per commit, oldest first.

        Each table has this snapshot's columns (older rows are read through its schema
        by field id) plus ``_change_type`` ("insert", "delete", "update_preimage",
        "update_postimage"), ``_commit_version``, ``_commit_snapshot_id`` and
        ``_commit_timestamp``. With a key (``on``, or the declared primary key) a
        changed row is a preimage and a postimage; without one, a delete and an insert.
        Each commit costs what `diff` costs for it: only the fragments it touched are read.

        Args:
            since: a version on this branch's line (int, aware datetime, tag or
                snapshot id); the changes of later commits are returned.

        Raises:
            InvalidArgument: ``since`` is not an earlier snapshot on this branch's line.
        """
        start = self._other(since)._snap
        on_line = self._log.read(start.version) if start.version <= self.version else None
        if on_line is None or on_line.snapshot_id != start.snapshot_id:
            raise InvalidArgument(
                f"since={since!r} (version {start.version}) is not an earlier version of branch "
                f"{self.branch_name!r} up to version {self.version}; use diff() to compare "
                "snapshots on different branches"
            )
        key = self.primary_key if on is None else ([on] if isinstance(on, str) else list(on))
        unknown = [k for k in key or [] if k not in self.schema.names]
        if unknown:
            raise InvalidArgument(f"on names unknown column(s) {unknown}")
        snaps = self._log.between(start.version, self.version)
        return changes_feed(self._storage, snaps, self._entries_at, self._state.schema, key=key)

    def _entries_at(self, snap: Snapshot) -> list[FragmentEntry]:
        return [e for m in snap.manifests for e in read_manifest(self._storage, m)]


def diff_of(
    a: RowsMixin,
    b: RowsMixin,
    on: Sequence[str] | None,
    columns: Sequence[str] | None = None,
) -> Diff:
    """The diff from snapshot ``a`` to snapshot ``b`` (see `lakever.diff`)."""
    if isinstance(on, str):
        on = [on]
    if on is not None and not isinstance(on, Sequence):
        raise InvalidArgument(f"on must be a list of column names, got {on!r}")
    return compute_diff(a._storage, a._side(), b._side(), on=on, columns=columns)
