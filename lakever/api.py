"""The top-level functions: open, create and write datasets, and diff two snapshots.

``lakever.open_dataset``, ``create_dataset``, ``write_dataset`` and ``diff``; each
resolves a location and a version, then hands over to a `lakever.Dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from lakever._resolve import PIN_PREFIX, locate, locate_pin
from lakever._types import DataLike, Properties, SchemaMode, ValidateMode, WriteMode
from lakever._writer import commit_data
from lakever.dataset import Dataset
from lakever.diffresult import Diff
from lakever.errors import DatasetExists, InvalidArgument
from lakever.format import MAIN_BRANCH
from lakever.log import Line
from lakever.maintenance.pins import verify_pin
from lakever.maintenance.verify import VerifyReport
from lakever.partitioning import Transform
from lakever.snapshot import SnapshotState
from lakever.storage import open_storage

__all__ = ["create_dataset", "diff", "open_dataset", "write_dataset"]


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
    return sides[0].diff(sides[1], on=on, columns=columns)


def open_dataset(
    uri: str,
    *,
    version: int | str | datetime | None = None,
    branch: str | None = None,
    storage_options: dict[str, Any] | None = None,
    location: str | None = None,
) -> Dataset:
    """Open a dataset at a branch head, a version, a point in time, a tag, or a pin.

    Args:
        uri: a local path, ``file://`` or ``memory://`` URI, or a pin from `Dataset.pin`.
        version: an int version number on the branch; a timezone-aware datetime (the
            last commit at or before it); or a string: a tag, a branch or a snapshot id
            (prefix of at least 8 hex digits). ``"tag:NAME"`` forces the tag meaning.
        branch: the branch for int/datetime versions and for the head (default main).
        storage_options: passed to fsspec for remote storage.
        location: with a pin, where the pinned dataset lives now (it was moved or
            copied); the snapshot is verified by id wherever it is found.

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
        here = location
        storage, where = locate_pin(uri, lambda u: open_storage(here or u, storage_options))
        return Dataset._at(storage, where)
    if location is not None:
        raise InvalidArgument("location= is for pins: it says where a pinned dataset lives now")
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
        data: a pyarrow Table/RecordBatch/RecordBatchReader, polars or pandas DataFrame,
            or a Ray Dataset / Dask DataFrame (written by its workers, docs/engines.md).
        message: commit message; ``author`` defaults to the OS user
            (``getpass.getuser()``: ``LOGNAME``, ``USER``, ``LNAME`` or ``USERNAME`` from
            the environment, else the login name).
        properties: arbitrary str -> str metadata recorded with the commit.
        max_rows_per_fragment: split the rows into Parquet fragments of at most this
            many rows (default 524,288).
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
    log = Line(storage, MAIN_BRANCH)
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
    log = Line(storage, MAIN_BRANCH)
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


def verify(
    pin: str, uri: str | None = None, *, storage_options: dict[str, Any] | None = None
) -> VerifyReport:
    """Prove a pinned snapshot's bytes are unchanged: recompute the pin's Merkle root from
    storage and check every file the snapshot references (docs/maintenance.md, Pins).

    Args:
        pin: a pin from `Dataset.pin`.
        uri: where the dataset lives now, when it was moved or copied (default: the
            pin's own URI).

    Returns:
        The `VerifyReport`; damage is reported, never raised.

    Raises:
        InvalidArgument: ``pin`` is not a pin.
        DatasetNotFound: no dataset at the pin's URI (or ``uri``).
    """
    return verify_pin(pin, uri=uri, storage_options=storage_options)
