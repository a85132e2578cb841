"""Public value types returned by the API: commits and fragments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lakever.format import Snapshot

__all__ = ["Commit", "Fragment"]


@dataclass(frozen=True, slots=True)
class Commit:
    """One entry of a dataset's history: the commit that produced a snapshot."""

    version: int
    snapshot_id: str
    parent_id: str | None
    branch: str
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

    @staticmethod
    def from_snapshot(snap: Snapshot) -> Commit:
        s = snap.summary
        return Commit(
            version=snap.version,
            snapshot_id=snap.snapshot_id,
            parent_id=snap.parent_id,
            branch=snap.branch,
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

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}
