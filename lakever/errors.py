"""Every error lakever raises on purpose.

The tree::

    LakeverError                      catch-all: `except lakever.LakeverError`
    ├── InvalidArgument (ValueError)  a parameter value is wrong (bad mode, naive datetime, ...)
    │   └── InvalidRefName            a tag/branch name breaks git's rules
    ├── DatasetNotFound               no dataset at this location
    ├── DatasetExists                 create on a location that already holds a dataset
    ├── VersionNotFound               no such version, time, tag, branch, snapshot id or pin
    │   └── VersionExpired            the version was expired by maintenance (``expire``)
    ├── RefNotFound                   deleting or merging a tag/branch that does not exist
    ├── RefExists                     creating a tag/branch whose name is taken
    ├── ReadOnlyDataset               write on a detached view (old version, tag, snapshot id)
    ├── CommitConflict                a concurrent commit changed what this commit read
    ├── MergeConflict                 both sides of a merge changed the same thing
    ├── SchemaMismatch                written data does not match the dataset schema
    ├── SchemaEvolutionError          a schema change that is refused (narrowing, type family, ...)
    ├── ContractViolation             data breaks the dataset's contract (pandera schema)
    ├── PrimaryKeyViolation           a commit would make the declared primary key non-unique
    ├── RemoteConflict                push/pull refused: diverged or moved refs, clashing field ids
    ├── ExportError                   an export to Delta or Iceberg refused (target, history)
    ├── CorruptMetadata               a truncated or tampered metadata file
    │   └── BrokenHistory             a log entry deleted or altered, or a wrong branch base
    ├── CorruptData                   a data fragment is missing, truncated or altered
    ├── UnsupportedFormatVersion      written by a newer lakever than this one
    ├── StorageError                  the storage backend failed or cannot commit safely
    ├── MissingDependency (ImportError) an optional engine or format is not installed
    ├── EngineError                   a Ray or Dask job failed (a worker died, or the input raised)
    └── TrackingError                 an experiment tracker (MLflow) failed or refused

Each class keeps its structured fields as attributes (``.path``, ``.version``, ...),
so callers can act on them without parsing the message. Every error pickles with its
fields (a Ray or Dask worker's error reaches the driver as the same class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BrokenHistory",
    "CommitConflict",
    "ContractViolation",
    "CorruptData",
    "CorruptMetadata",
    "DatasetExists",
    "DatasetNotFound",
    "EngineError",
    "ExportError",
    "InvalidArgument",
    "InvalidRefName",
    "LakeverError",
    "MergeConflict",
    "PrimaryKeyViolation",
    "ReadOnlyDataset",
    "RefExists",
    "RefNotFound",
    "RemoteConflict",
    "SchemaEvolutionError",
    "SchemaMismatch",
    "StorageError",
    "MissingDependency",
    "UnsupportedFormatVersion",
    "VersionExpired",
    "VersionNotFound",
    "TrackingError",
]


class LakeverError(Exception):
    """Root of every error lakever raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds with cls(*args), which misses the keyword-only fields.
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


def _rebuild(cls: type[LakeverError], args: tuple[Any, ...]) -> LakeverError:
    """An error of class ``cls`` with ``args``, its fields set afterwards (unpickling)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class InvalidArgument(LakeverError, ValueError):
    """A parameter value is wrong; the message names it and the accepted values."""


class InvalidRefName(InvalidArgument):
    """A tag or branch name breaks git's naming rules; raised before storage is touched."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class DatasetNotFound(LakeverError):
    """No dataset exists at the given location."""

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class DatasetExists(LakeverError):
    """A dataset already exists where a new one was to be created."""

    def __init__(self, message: str, *, uri: str) -> None:
        super().__init__(message)
        self.uri = uri


class VersionNotFound(LakeverError):
    """The requested version (number, time or pin) does not exist."""

    def __init__(self, message: str, *, version: Any) -> None:
        super().__init__(message)
        self.version = version


class VersionExpired(VersionNotFound):
    """The version exists in the log but was expired (``Dataset.expire``): its data may be gone.

    ``branch`` is the branch's name (its id once the name was deleted), ``version`` the
    version asked for, ``expired_at`` when it was expired (a timezone-aware datetime),
    ``expired_by`` who expired it and ``policy`` the rule they gave; ``next_readable``
    is the first version after it that is still readable on that line (None: none
    before the head). Tags, branch heads and retained pins are never expired.
    """

    def __init__(
        self,
        message: str,
        *,
        version: Any,
        branch: str,
        expired_at: Any,
        expired_by: str,
        policy: str,
        next_readable: int | None,
    ) -> None:
        super().__init__(message, version=version)
        self.branch = branch
        self.expired_at = expired_at
        self.expired_by = expired_by
        self.policy = policy
        self.next_readable = next_readable


class RefNotFound(LakeverError):
    """The named tag or branch does not exist."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class RefExists(LakeverError):
    """A tag or branch with this name already exists."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class ReadOnlyDataset(LakeverError):
    """A write was attempted on a view opened at an explicit version."""


class CommitConflict(LakeverError):
    """A concurrent commit changed what this commit was based on."""

    def __init__(self, message: str, *, winning_version: int) -> None:
        super().__init__(message)
        self.winning_version = winning_version


class MergeConflict(LakeverError):
    """Both sides of a merge changed the same fragments, the schema or a setting incompatibly.

    ``conflicts`` holds one dict per conflict: ``{"kind": "fragment" | "schema" |
    "setting" | "field id", "item": <fragment path, column, setting name or field id>,
    "ours": <what the target did>, "theirs": <what the source did>}``.
    """

    def __init__(self, message: str, *, conflicts: Sequence[dict[str, str]]) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)


class SchemaMismatch(LakeverError):
    """Written data does not match the dataset schema.

    ``differences`` holds one ``(column, expected, got)`` triple per difference;
    ``expected`` or ``got`` is ``None`` when the column is missing on that side.
    """

    def __init__(
        self, message: str, *, differences: Sequence[tuple[str, str | None, str | None]]
    ) -> None:
        super().__init__(message)
        self.differences = list(differences)


class SchemaEvolutionError(LakeverError):
    """A schema change was refused; the message says why and what to do instead.

    ``column`` is the column (a dotted path for nested fields), ``old_type`` and
    ``new_type`` the types before and after the refused change (``None`` where a
    side does not exist, e.g. for a dropped or added column).
    """

    def __init__(
        self, message: str, *, column: str, old_type: str | None, new_type: str | None
    ) -> None:
        super().__init__(message)
        self.column = column
        self.old_type = old_type
        self.new_type = new_type


class ContractViolation(LakeverError):
    """Data does not satisfy the dataset's contract; nothing was committed.

    ``failure_cases`` is a pyarrow Table with one row per distinct failure:
    ``column``, ``check``, ``failure_case`` (the failing value, as text; null for
    a null value) and ``count`` (how many rows failed that way).
    """

    def __init__(self, message: str, *, failure_cases: pa.Table) -> None:
        super().__init__(message)
        self.failure_cases = failure_cases


class PrimaryKeyViolation(LakeverError):
    """A commit would leave two live rows with the same primary key (or a null key).

    ``columns`` names the key columns; ``examples`` holds up to 10 offending keys,
    each a dict of column -> value. Nothing was committed.
    """

    def __init__(
        self, message: str, *, columns: Sequence[str], examples: Sequence[dict[str, Any]]
    ) -> None:
        super().__init__(message)
        self.columns = list(columns)
        self.examples = list(examples)


class RemoteConflict(LakeverError):
    """A push, pull or clone was refused: the two datasets disagree; nothing was published.

    ``name`` is the ref (or ``"field ids"``), ``kind`` is ``"branch"``, ``"tag"`` or
    ``"field ids"``; ``source_version`` and ``destination_version`` are the head versions
    of the branch on each side (None where not applicable). The message says what
    happened (the destination is ahead, both sides committed, a tag names another
    snapshot, both sides assigned the same field ids) and what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        kind: str,
        source_version: int | None = None,
        destination_version: int | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.kind = kind
        self.source_version = source_version
        self.destination_version = destination_version


class ExportError(LakeverError):
    """An export to another table format (Delta Lake, Apache Iceberg) was refused; nothing
    was published.

    ``format`` is the table format (``"delta"``, ``"iceberg"``), ``target`` the target
    URI, ``reason`` one of ``"not_an_export"`` (the target holds something this export
    did not write),
    ``"diverged"`` (the target's history is not this branch's: another dataset, branch,
    or a rewritten history), ``"unsupported"`` (a column type the format cannot hold
    exactly), ``"location"`` (the target cannot reference the dataset's files) or
    ``"conflict"`` (another export wrote the same version concurrently).
    """

    def __init__(self, message: str, *, format: str, target: str, reason: str) -> None:
        super().__init__(message)
        self.format = format
        self.target = target
        self.reason = reason


class CorruptMetadata(LakeverError):
    """A metadata file is truncated, unparsable or does not match its recorded hash."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class BrokenHistory(CorruptMetadata):
    """A branch's log is not one unbroken chain of versions; nothing was committed on it.

    Versions are created only at head + 1 and log entries are never deleted or
    rewritten, so a missing entry below an existing one, an entry whose
    ``parent_id`` is not the snapshot id of the version before it, or a branch
    whose ``BRANCH.json`` base does not match its base line is damage done outside
    lakever. ``path`` is the file at the break (a log entry or ``BRANCH.json``),
    ``branch`` the branch's name (its id where the name is unknown), ``version``
    the first version that is missing or cannot be trusted: versions before it stay
    readable by version number. Restore the file from a backup (docs/format.md,
    "Repairing a broken history").
    """

    def __init__(self, message: str, *, path: str, branch: str, version: int) -> None:
        super().__init__(message, path=path)
        self.branch = branch
        self.version = version


class CorruptData(LakeverError):
    """A data fragment a snapshot references is missing, truncated or altered.

    Raised before any row of it is returned: fragments are verified against the size
    and SHA-256 their manifest entry records. ``path`` is the fragment (or the
    dataset when the failing file is not known), ``snapshot_id`` the snapshot read.
    """

    def __init__(self, message: str, *, path: str, snapshot_id: str) -> None:
        super().__init__(message)
        self.path = path
        self.snapshot_id = snapshot_id


class UnsupportedFormatVersion(LakeverError):
    """Metadata was written in a format version (or with reader features) this reader lacks.

    ``features`` lists the reader features the metadata needs and this reader does
    not implement (empty when the format version itself is too new).
    """

    def __init__(
        self, message: str, *, found: int, supported: int, features: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported
        self.features = list(features)


class StorageError(LakeverError):
    """The storage backend failed, or cannot provide an atomic put-if-absent."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class MissingDependency(LakeverError, ImportError):
    """An optional engine or format (Ray, Dask, deltalake, pyiceberg...) is not installed;
    ``extra`` is the lakever extra that installs it."""

    def __init__(self, message: str, *, module: str, extra: str) -> None:
        super().__init__(message)
        self.module = module
        self.extra = extra


class EngineError(LakeverError):
    """A Ray or Dask job lakever ran failed for a reason of the engine's or the input's
    (a worker died, or computing the input data raised); ``engine`` is ``"ray"`` or
    ``"dask"``, the engine's error is chained as ``__cause__``. Nothing was committed."""

    def __init__(self, message: str, *, engine: str) -> None:
        super().__init__(message)
        self.engine = engine


class TrackingError(LakeverError):
    """An experiment tracker (MLflow) failed or refused: the run cannot be fetched, the
    tracking server is unreachable, or it refused the input; ``run_id`` names the run
    (None when unknown). The tracker's error is chained as ``__cause__``."""

    def __init__(self, message: str, *, run_id: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
