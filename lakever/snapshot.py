"""`SnapshotState`: one snapshot and what reading it needs, computed once.

Every family (reading, row changes, diffs, refs, maintenance) takes this small
frozen value instead of a `Dataset`: the storage, the line of history it was
reached through, the snapshot record, and lazily cached derived values (the
schema, the fragment entries, per-fragment statistics under the current schema).
The cached values are pure functions of immutable files, so computing one twice
in two threads is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

from lakever._metafiles import read_schema
from lakever.evolution import stats_compatible
from lakever.format import FragmentEntry, Snapshot, schema_id
from lakever.log import Line
from lakever.manifests import ManifestData, manifests_data
from lakever.schema import iter_field_ids, schema_from_json, strip_field_ids
from lakever.storage import Storage

__all__ = ["SnapshotState"]


@dataclass(frozen=True, eq=False)
class SnapshotState:
    """A snapshot of a dataset, the line it belongs to, and cached derived values."""

    storage: Storage
    #: The line of history (branch log) the snapshot was reached through.
    line: Line
    snap: Snapshot
    #: The branch name the view was opened on (detached views: the committing branch).
    branch_name: str
    #: Whether writes may follow (a branch head, not a detached view).
    writable: bool

    @property
    def uri(self) -> str:
        return self.storage.uri

    @cached_property
    def schema(self) -> pa.Schema:
        """The snapshot schema, with field ids."""
        return schema_from_json(self.snap.schema, path=f"snapshot {self.snap.snapshot_id}")

    @cached_property
    def public(self) -> pa.Schema:
        """The snapshot schema without field ids (what readers see)."""
        return strip_field_ids(self.schema)

    @cached_property
    def schema_id(self) -> str:
        return schema_id(self.snap.schema)

    @cached_property
    def fields(self) -> dict[int, pa.Field[Any]]:
        """Top-level field id -> field (with its current name and type)."""
        return dict(iter_field_ids(self.schema))

    @cached_property
    def field_ids(self) -> dict[str, int]:
        """Top-level column name -> field id."""
        return {f.name: fid for fid, f in self.fields.items()}

    @cached_property
    def manifests(self) -> list[ManifestData]:
        """The snapshot's manifests, parsed (columns; what pruning reads)."""
        return manifests_data(self.storage, self.snap.manifests)

    @cached_property
    def entries(self) -> list[FragmentEntry]:
        """The snapshot's fragment entries, in read order."""
        return [e for m in self.manifests for e in m.entries()]

    def schema_of(self, sid: str) -> pa.Schema:
        """The schema (with field ids) a fragment of this snapshot was written under."""
        if sid == self.schema_id:
            return self.schema
        return read_schema(self.storage, sid)

    def stats_of(self, e: FragmentEntry) -> Mapping[int, Mapping[str, Any]]:
        """A fragment's stats by field id, valid for this snapshot's schema.

        A fragment written before a column was widened keeps its min/max when they
        remain valid bounds (numbers, decimals, strings); otherwise (e.g. date to
        timestamp) only the null count. Dropped columns are left out.
        """
        if e.schema_id == self.schema_id:
            return e.stats
        current = self.fields
        written = dict(iter_field_ids(self.schema_of(e.schema_id)))
        out: dict[int, Mapping[str, Any]] = {}
        for fid, st in e.stats.items():
            if fid not in current or fid not in written:
                continue  # dropped since the fragment was written
            keep = stats_compatible(written[fid].type, current[fid].type)
            out[fid] = st if keep else {"nulls": st.get("nulls", 0)}
        return out

    def at(self, snap: Snapshot, *, writable: bool | None = None) -> SnapshotState:
        """The state of another snapshot on the same line (e.g. one just committed)."""
        return SnapshotState(
            self.storage,
            self.line,
            snap,
            self.branch_name,
            self.writable if writable is None else writable,
        )
