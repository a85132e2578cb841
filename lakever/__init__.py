"""lakever: a versioned dataset store on immutable Parquet fragments.

Every write is an atomic commit producing a snapshot; any snapshot can be read
back by version number, time or pin, through Arrow, polars, pandas or DuckDB.

Example:
    >>> import lakever as lv
    >>> ds = lv.create_dataset("lake/events", table)
    >>> ds = ds.append(more, message="november batch")
    >>> lv.open_dataset("lake/events", version=0).to_arrow()
"""

from lakever._records import Branch, Commit, Fragment, SchemaChange, SchemaVersion
from lakever.api import create_dataset, diff, open_dataset, verify, write_dataset
from lakever.catalog import Lake, connect
from lakever.contract import load_contract
from lakever.dataset import Dataset
from lakever.diffresult import Diff, DiffSummary
from lakever.errors import (
    BrokenHistory,
    CommitConflict,
    ContractViolation,
    CorruptData,
    CorruptMetadata,
    DatasetExists,
    DatasetNotFound,
    EngineError,
    ExportError,
    InvalidArgument,
    InvalidRefName,
    LakeverError,
    MergeConflict,
    MissingDependency,
    PrimaryKeyViolation,
    ReadOnlyDataset,
    RefExists,
    RefNotFound,
    RemoteConflict,
    SchemaEvolutionError,
    SchemaMismatch,
    StorageError,
    TrackingError,
    UnsupportedFormatVersion,
    VersionExpired,
    VersionNotFound,
)
from lakever.format import FORMAT_VERSION
from lakever.maintenance.expire import ExpiredVersions, ExpireReport
from lakever.maintenance.usage import StorageReport
from lakever.maintenance.vacuum import Usage, VacuumFile, VacuumReport
from lakever.maintenance.verify import Problem, VerifyReport
from lakever.ml.card import card
from lakever.ml.drift import ColumnDrift, ColumnProfile, DriftReport, DriftThresholds
from lakever.ml.drift import drift_between as drift
from lakever.ml.splits import Subset
from lakever.partitioning import Transform, day, hour, identity, month, year
from lakever.reader import ExplainReport, ScanPlan
from lakever.refs import Tag
from lakever.remote import RefUpdate, SyncResult, clone, pull, push
from lakever.retention import Retained
from lakever.tasks import ReadTask

__version__ = "0.2.0"

__all__ = [
    "Branch",
    "BrokenHistory",
    "ColumnDrift",
    "ColumnProfile",
    "Commit",
    "CommitConflict",
    "ContractViolation",
    "CorruptData",
    "CorruptMetadata",
    "Dataset",
    "DatasetExists",
    "DatasetNotFound",
    "EngineError",
    "Diff",
    "DriftReport",
    "DriftThresholds",
    "DiffSummary",
    "ExpireReport",
    "ExpiredVersions",
    "ExplainReport",
    "ExportError",
    "FORMAT_VERSION",
    "Fragment",
    "InvalidArgument",
    "InvalidRefName",
    "Lake",
    "LakeverError",
    "MergeConflict",
    "MissingDependency",
    "PrimaryKeyViolation",
    "Problem",
    "ReadOnlyDataset",
    "ReadTask",
    "RefExists",
    "RefNotFound",
    "RefUpdate",
    "RemoteConflict",
    "Retained",
    "ScanPlan",
    "SchemaChange",
    "SchemaEvolutionError",
    "SchemaMismatch",
    "SchemaVersion",
    "StorageError",
    "StorageReport",
    "Subset",
    "SyncResult",
    "Tag",
    "TrackingError",
    "Transform",
    "UnsupportedFormatVersion",
    "Usage",
    "VacuumFile",
    "VacuumReport",
    "VerifyReport",
    "VersionExpired",
    "VersionNotFound",
    "card",
    "clone",
    "connect",
    "create_dataset",
    "day",
    "diff",
    "drift",
    "hour",
    "identity",
    "load_contract",
    "month",
    "open_dataset",
    "pull",
    "push",
    "verify",
    "write_dataset",
    "year",
]
