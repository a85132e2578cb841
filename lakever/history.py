"""What a snapshot's history and metadata say: commits, schemas over time, fragments.

Free functions of a `lakever.snapshot.SnapshotState`, behind `Dataset.history`,
`Dataset.commit`, `Dataset.schema_history` and `Dataset.fragments`.
"""

from __future__ import annotations

import pyarrow as pa

from lakever._records import Commit, Fragment, SchemaVersion
from lakever._resolve import owner_name
from lakever.errors import InvalidArgument
from lakever.field_tree import schema_changes
from lakever.format import Snapshot
from lakever.retention import Expiry, read_expiry
from lakever.schema import iter_field_ids, schema_from_json, strip_field_ids
from lakever.snapshot import SnapshotState

__all__ = ["commit_of", "commits", "fragments", "schema_versions"]


def commit_of(
    state: SnapshotState,
    snap: Snapshot,
    names: dict[str, str] | None = None,
    expiry: Expiry | None = None,
) -> Commit:
    """``snap``'s commit record, its branch named (``names``: branch id -> name, a cache),
    marked expired when ``expiry`` (default: the dataset's newest) expired it."""
    names = {} if names is None else names
    if not names:
        names[state.line.branch_id] = state.branch_name
    if snap.branch_id not in names:
        names[snap.branch_id] = owner_name(state.storage, snap)
    expiry = read_expiry(state.storage) if expiry is None else expiry
    expired = expiry.find(snap.branch_id, snap.version) is not None
    return Commit.from_snapshot(snap, branch_name=names[snap.branch_id], expired=expired)


def commits(state: SnapshotState, limit: int | None) -> list[Commit]:
    """Commits from the snapshot back to the creation, newest first (at most ``limit``)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidArgument(f"limit must be a non-negative int or None, got {limit!r}")
    out: list[Commit] = []
    names: dict[str, str] = {}
    expiry = read_expiry(state.storage)
    for snap in state.line.ancestors(state.snap):
        if limit is not None and len(out) >= limit:
            break
        out.append(commit_of(state, snap, names, expiry))
    return out


def _version(snap: Snapshot, schema: pa.Schema, previous: pa.Schema | None) -> SchemaVersion:
    return SchemaVersion(
        version=snap.version,
        snapshot_id=snap.snapshot_id,
        timestamp=snap.timestamp,
        operation=snap.operation,
        message=snap.message,
        schema=strip_field_ids(schema),
        field_ids={f.name: fid for fid, f in iter_field_ids(schema)},
        changes=() if previous is None else tuple(schema_changes(previous, schema)),
    )


def schema_versions(state: SnapshotState) -> list[SchemaVersion]:
    """Every schema from the creation to the snapshot, oldest first, and what changed."""
    snaps = list(state.line.ancestors(state.snap))[::-1]
    out: list[SchemaVersion] = []
    previous: pa.Schema | None = None
    for snap in snaps:
        if previous is not None and snap.schema == snaps[snap.version - 1].schema:
            continue
        schema = schema_from_json(snap.schema, path=f"snapshot {snap.snapshot_id}")
        out.append(_version(snap, schema, previous))
        previous = schema
    return out


def fragments(state: SnapshotState) -> list[Fragment]:
    """The snapshot's fragments in read order, stats keyed by current column names."""
    return [
        Fragment(
            path=e.path,
            uri=state.storage.full_path(e.path),
            num_rows=e.num_rows,
            size_bytes=e.size_bytes,
            content_hash=e.content_hash,
            stats={state.fields[fid].name: dict(st) for fid, st in state.stats_of(e).items()},
            deleted_rows=e.deleted_rows,
            deletion_vector=None if e.deletion is None else e.deletion.path,
        )
        for e in state.entries
    ]
