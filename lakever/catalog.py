"""A lake: a folder of datasets queried together with DuckDB SQL and time travel.

``lake = lakever.connect("lake/")``; ``lake.sql("SELECT ... FROM events VERSION AS OF 3
JOIN users FOR TIMESTAMP AS OF '2026-11-01' u USING (user_id)")``.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

from lakever._sqlrewrite import Reference
from lakever.api import create_dataset, open_dataset
from lakever.dataset import Dataset
from lakever.errors import DatasetExists, DatasetNotFound, InvalidArgument
from lakever.format import log_path
from lakever.storage import ObjectStorage, Storage, open_storage

if TYPE_CHECKING:
    import duckdb

__all__ = ["Lake", "connect", "validate_dataset_name"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def validate_dataset_name(name: Any) -> str:
    """A dataset name in a lake: letters, digits, ``_ . -``; no path separators.

    Names are compared ignoring case in SQL (DuckDB's identifiers are
    case-insensitive), so `Lake.create_dataset` also refuses a name that differs
    only by case from an existing dataset's.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(
            f"invalid dataset name {name!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter, digit or '_' (no '/', no '..')"
        )
    return name


def _root_problem(storage: Storage) -> str | None:
    """Why ``storage``'s root cannot hold datasets ("does not exist", ...), or None."""
    if isinstance(storage, ObjectStorage):
        return None  # no folders in an object store: an empty prefix is an empty lake
    if storage.is_local:
        if os.path.isdir(storage.uri):
            return None
        return "is a file, not a folder" if os.path.exists(storage.uri) else "does not exist"
    fs = storage.fsspec_filesystem()
    root = storage.full_path("").rstrip("/")
    if fs.isdir(root):
        return None
    return "is a file, not a folder" if fs.isfile(root) else "does not exist"


class Lake:
    """Many datasets under one root, and one DuckDB connection to query them together.

    Raises:
        DatasetNotFound: the root is a file (a root that does not exist yet is refused
            by `datasets`, `open` and `sql`; `create_dataset` creates it).
        InvalidArgument: the root is a dataset, not a folder of datasets.
    """

    def __init__(self, root: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self._storage: Storage = open_storage(root, storage_options)
        self._options = storage_options
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        if _root_problem(self._storage) == "is a file, not a folder":
            raise self._missing("is a file, not a folder")
        if self._storage.exists(log_path("main", 0)):
            parent = os.path.dirname(self.uri.rstrip("/")) or "/"
            raise InvalidArgument(
                f"{self.uri} is a dataset, not a lake (a folder of datasets); open it with "
                f"lakever.open_dataset, or connect to the folder that holds it ({parent})"
            )

    def _missing(self, problem: str) -> DatasetNotFound:
        return DatasetNotFound(
            f"no lake at {self.uri}: the path {problem}; pass the folder that holds the "
            "datasets, or create the first one with lake.create_dataset(name, data)",
            uri=self.uri,
        )

    def __repr__(self) -> str:
        return f"<lakever.Lake {self.uri!r}>"

    @property
    def uri(self) -> str:
        """The lake's root."""
        return self._storage.uri

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """This lake's private, unlocked DuckDB connection (what ``sql(trusted=True)`` uses)."""
        from lakever.sql import connect as duck_connect

        with self._lock:
            if self._con is None:
                self._con = duck_connect()
            return self._con

    def _uri_of(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{validate_dataset_name(name)}"

    def datasets(self) -> list[str]:
        """Names of the datasets in the lake.

        Raises:
            DatasetNotFound: the lake's root does not exist (or is not a folder).
        """
        entries = self._storage.list("")
        if not entries:
            problem = _root_problem(self._storage)
            if problem is not None:
                raise self._missing(problem)
        return [
            name
            for name in entries
            if _NAME.fullmatch(name) and self._storage.exists(f"{name}/{log_path('main', 0)}")
        ]

    def open(self, name: str, **kwargs: Any) -> Dataset:
        """Open a dataset of the lake (same arguments as `lakever.open_dataset`).

        Raises:
            DatasetNotFound: no dataset of that name (the message lists the lake's
                datasets), or no lake at the root.
        """
        try:
            return open_dataset(self._uri_of(name), storage_options=self._options, **kwargs)
        except DatasetNotFound:
            raise DatasetNotFound(
                f"no dataset {name!r} in lake {self.uri}; datasets are {self.datasets()}",
                uri=self._uri_of(name),
            ) from None

    def create_dataset(self, name: str, data: Any, **kwargs: Any) -> Dataset:
        """Create a dataset in the lake (same arguments as `lakever.create_dataset`).

        Raises:
            DatasetExists: the lake has a dataset of that name, or of a name that differs
                only by case (SQL would not tell the two apart).
        """
        uri = self._uri_of(name)
        if self._storage.list(""):
            twin = next(
                (n for n in self.datasets() if n.lower() == name.lower() and n != name), None
            )
            if twin is not None:
                raise DatasetExists(
                    f"lake {self.uri} has a dataset {twin!r}, whose name differs from {name!r} "
                    "only by case; SQL names ignore case, so queries could not tell the two "
                    f"apart. Open {twin!r} (lake.open({twin!r})) or pick another name",
                    uri=self._uri_of(twin),
                )
        return create_dataset(uri, data, storage_options=self._options, **kwargs)

    def sql(self, query: str, *, trusted: bool = False) -> duckdb.DuckDBPyRelation:
        """Run DuckDB SQL over the lake's datasets, with lakehouse time-travel clauses.

        ``events`` is the latest snapshot on main; ``events VERSION AS OF 3``,
        ``events FOR TIMESTAMP AS OF '2026-11-01'`` (UTC unless an offset is given),
        ``events FOR VERSION AS OF 'train-v3'`` (a tag, branch or snapshot id) and
        ``events AT (VERSION => 3)`` pick a snapshot.

        The query is one read-only query over the lake's datasets: it cannot read
        other files, reach the network, load extensions, attach databases or change
        settings (see docs/sql.md). ``trusted=True`` lifts those limits.

        Raises:
            DatasetNotFound: the query names a table that is not a dataset of the lake.
            VersionNotFound: no such version, time, tag, branch or snapshot id.
            InvalidArgument: not one read-only query, or DuckDB refuses it.
            CorruptData: a fragment it reads is damaged (checked now, not when the
                relation runs: errors while it runs are DuckDB's, docs/sql.md).
        """
        from lakever.query import SqlRunner
        from lakever.snapshot import SnapshotState

        if not isinstance(query, str) or not query.strip():
            raise InvalidArgument(f"query must be a non-empty SQL string, got {query!r}")
        names = set(self.datasets())

        def resolve(ref: Reference) -> SnapshotState:
            return self.open(ref.name, version=ref.version)._state

        def not_found(name: str) -> DatasetNotFound:
            return DatasetNotFound(
                f"no dataset {name!r} in lake {self.uri}; datasets are {sorted(names)}",
                uri=self._uri_of(name) if _NAME.fullmatch(name) else name,
            )

        runner = SqlRunner(
            not_found=not_found,
            is_dataset=lambda n: n in names,
            all_datasets=lambda: names,
            resolve=resolve,
            trusted=trusted,
            connection=self._trusted_connection() if trusted else None,
        )
        return runner.run(query)

    def _trusted_connection(self) -> duckdb.DuckDBPyConnection:
        return self.connection.cursor()


def connect(root: str, *, storage_options: dict[str, Any] | None = None) -> Lake:
    """Connect to a lake: a folder (local path, ``file://`` or ``memory://``) of datasets."""
    return Lake(root, storage_options=storage_options)
