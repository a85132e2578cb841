"""Public value types returned by the API: commits, fragments, schema changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from lakever.format import Snapshot

if TYPE_CHECKING:
    from lakever.refs import BranchInfo

__all__ = ["Branch", "Commit", "Fragment", "SchemaChange", "SchemaVersion"]


@dataclass(frozen=True, slots=True)
class Commit:
    """One entry of a dataset's history: the commit that produced a snapshot."""

    version: int
    snapshot_id: str
    parent_id: str | None
    #: The second parent of a merge commit (the merged snapshot), else None.
    merge_parent_id: str | None
    #: Id of the branch whose log holds this commit ("main" for the default branch);
    #: internal: ``branch_name`` names it.
    branch_id: str
    #: Name of that branch (kept after the branch is deleted; ids are internal).
    branch_name: str
    timestamp: datetime
    operation: str
    parameters: dict[str, Any]
    message: str
    author: str
    properties: dict[str, str]
    rows_added: int
    rows_removed: int
    bytes_added: int
    bytes_removed: int
    fragments_added: int
    fragments_removed: int
    total_rows: int
    total_bytes: int
    total_fragments: int
    #: Whether the version was expired (`Dataset.expire`): listed, but its rows unreadable.
    expired: bool = False

    @staticmethod
    def from_snapshot(
        snap: Snapshot, branch_name: str | None = None, *, expired: bool = False
    ) -> Commit:
        """The commit record of ``snap``; ``branch_name`` defaults to the branch id."""
        s = snap.summary
        return Commit(
            version=snap.version,
            snapshot_id=snap.snapshot_id,
            parent_id=snap.parent_id,
            merge_parent_id=(snap.merge_parent or {}).get("snapshot_id"),
            branch_id=snap.branch_id,
            branch_name=snap.branch_id if branch_name is None else branch_name,
            timestamp=snap.timestamp,
            operation=snap.operation,
            parameters=dict(snap.parameters),
            message=snap.message,
            author=snap.author,
            properties=dict(snap.properties),
            rows_added=s.rows_added,
            rows_removed=s.rows_removed,
            bytes_added=s.bytes_added,
            bytes_removed=s.bytes_removed,
            fragments_added=s.fragments_added,
            fragments_removed=s.fragments_removed,
            total_rows=s.total_rows,
            total_bytes=s.total_bytes,
            total_fragments=s.total_fragments,
            expired=expired,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (timestamp as RFC 3339 text)."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out["timestamp"] = self.timestamp.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class Fragment:
    """One immutable Parquet fragment of a snapshot."""

    #: Path relative to the dataset root, as recorded in the manifest.
    path: str
    #: Path or URI an engine can open.
    uri: str
    num_rows: int
    size_bytes: int
    #: ``sha256:<hex>`` of the file's bytes.
    content_hash: str
    #: column name -> {"min": ..., "max": ..., "nulls": ...} (min/max may be absent).
    stats: dict[str, dict[str, Any]]
    #: Rows of the file a deletion vector hides (``num_rows`` counts them too).
    deleted_rows: int = 0
    #: The deletion vector's path relative to the dataset root (None: no row deleted).
    deletion_vector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Branch:
    """A branch and its head."""

    name: str
    head_version: int
    head_snapshot_id: str
    #: Where the branch started: (version, snapshot id) on its base line; None for main.
    base_version: int | None
    base_snapshot_id: str | None
    created: datetime | None

    @staticmethod
    def from_info(info: BranchInfo, head: Snapshot) -> Branch:
        return Branch(
            name=info.name,
            head_version=head.version,
            head_snapshot_id=head.snapshot_id,
            base_version=info.base[1] if info.base else None,
            base_snapshot_id=info.base[2] if info.base else None,
            created=info.created,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["created"] = self.created.isoformat() if self.created else None
        return out


#: The kinds of schema change, in the order `Dataset.evolve` applies them.
ChangeKind = Literal["drop", "rename", "widen", "nullable", "add"]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference between two schemas of a dataset, matched by field id.

    ``column`` is the column's name (a dotted path for nested fields) in the newer
    schema, or in the older one for a ``drop``; ``old_column`` is the older name
    of a ``rename``. ``old_type``/``new_type`` are type names (None where a side
    does not exist).
    """

    kind: ChangeKind
    field_id: int
    column: str
    old_column: str | None = None
    old_type: str | None = None
    new_type: str | None = None

    def describe(self) -> str:
        """Return a one-line human description, e.g. ``widen 'n' int32 -> int64``."""
        if self.kind == "add":
            return f"add {self.column!r} {self.new_type} (field id {self.field_id})"
        if self.kind == "drop":
            return f"drop {self.column!r} {self.old_type} (field id {self.field_id})"
        if self.kind == "rename":
            return f"rename {self.old_column!r} -> {self.column!r} (field id {self.field_id})"
        if self.kind == "widen":
            return f"widen {self.column!r} {self.old_type} -> {self.new_type}"
        return f"make {self.column!r} nullable"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """A schema of a dataset and the commit that introduced it (see `Dataset.schema_history`)."""

    version: int
    snapshot_id: str
    timestamp: datetime
    operation: str
    message: str
    #: The schema from this version on (Arrow, without field-id metadata).
    schema: pa.Schema
    #: Top-level column name -> field id.
    field_ids: dict[str, int]
    #: What changed compared with the previous schema (empty for the first one).
    changes: tuple[SchemaChange, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (schema as a list of columns)."""
        return {
            "version": self.version,
            "snapshot_id": self.snapshot_id,
            "timestamp": self.timestamp.isoformat(),
            "operation": self.operation,
            "message": self.message,
            "schema": [
                {
                    "name": f.name,
                    "type": str(f.type),
                    "nullable": f.nullable,
                    "field_id": self.field_ids.get(f.name),
                }
                for f in self.schema
            ],
            "changes": [c.to_dict() for c in self.changes],
        }
