"""Type aliases shared across modules."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    import pyarrow as pa

#: Anything a write accepts: a pyarrow Table / RecordBatch / RecordBatchReader,
#: a polars DataFrame or LazyFrame, or a pandas DataFrame.
DataLike: TypeAlias = "pa.Table | pa.RecordBatch | pa.RecordBatchReader | Any"

#: ``version=`` on open: an int is a version number, a datetime means "as of" (tz-aware).
VersionSpec: TypeAlias = int | datetime | None

WriteMode: TypeAlias = Literal["create", "append", "overwrite"]

Properties: TypeAlias = dict[str, str]

#: How a write treats data whose columns differ from the schema (see docs/schema-evolution.md).
SchemaMode: TypeAlias = Literal["strict", "add", "merge"]

#: Whether a write validates its rows against the dataset's contract ("skip": emergencies).
ValidateMode: TypeAlias = Literal["contract", "skip"]

#: How a delete, update or upsert changes fragments: deletion vectors (cheap writes,
#: readers filter) or rewritten files (plain Parquet, costlier writes).
RowMode: TypeAlias = Literal["merge-on-read", "copy-on-write"]
