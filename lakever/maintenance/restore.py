"""Restore: a new commit whose content and table settings equal an older snapshot.

Like Delta Lake's ``RESTORE``, history is kept: the restore is one more commit
(operation ``restore``) on the branch, so every earlier version stays readable
and a diff between the head before and after shows what the restore changed.
No data is copied: the new snapshot lists the older snapshot's manifests, which
reference its fragments and deletion vectors.

The restored snapshot takes from the older one its rows (the manifest list), its
schema (with the same field ids: they exist already, so nothing is claimed), its
contract, partition spec, sort order and primary key. ``last_field_id`` never
decreases (the larger of the two). Commit properties and the message are the
restore's own: lakever has no table-level properties to restore.

A restore replaces what its base showed, so any commit landing on the branch after
the version the restore was computed on makes it fail with `CommitConflict`
(Delta's RESTORE conflicts with concurrent writes the same way): re-open and retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from lakever._merge_commit import _delta
from lakever._metafiles import write_schema
from lakever._resolve import _resolve_on_line, locate
from lakever._writer import _check_properties, default_author
from lakever.commit import (
    Change,
    NoConcurrentCommit,
    SetContract,
    SetManifests,
    SetPartitioning,
    SetPrimaryKey,
    SetSchema,
    SetSortOrder,
)
from lakever.errors import InvalidArgument
from lakever.format import Snapshot
from lakever.manifest_list import ManifestFiles
from lakever.manifests import read_manifests
from lakever.schema import schema_from_json
from lakever.snapshot import SnapshotState

__all__ = ["restore", "target_of"]


def target_of(state: SnapshotState, ref: int | str | datetime) -> Snapshot:
    """The snapshot ``ref`` names: an int version or a datetime on the state's line, or a
    tag, branch or snapshot id (any branch of the dataset)."""
    if isinstance(ref, str):
        return locate(state.storage, version=ref, branch=None).snap
    if isinstance(ref, bool) or not isinstance(ref, int | datetime):
        raise InvalidArgument(
            "restore needs an int version, a timezone-aware datetime, or a tag / branch / "
            f"snapshot id string, got {ref!r}"
        )
    return _resolve_on_line(state.line, ref)


def restore(
    state: SnapshotState,
    ref: int | str | datetime,
    *,
    message: str | None = None,
    author: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> Snapshot:
    """Commit, on top of ``state`` (a branch head), a snapshot equal to the one ``ref`` names.

    Raises:
        VersionNotFound: ``ref`` names no snapshot of the dataset.
        CommitConflict: a commit landed on the branch after ``state``.
        InvalidArgument: ``ref``, ``message`` or ``properties`` of the wrong type.
    """
    if message is not None and not isinstance(message, str):
        raise InvalidArgument(f"message must be a string, got {message!r}")
    props = _check_properties(properties)
    storage, head = state.storage, state.snap
    old = target_of(state, ref)
    # The schema file exists since the old snapshot was committed; put-if-absent keeps
    # the invariant "every snapshot's schema has a file" even for a damaged lake.
    write_schema(storage, schema_from_json(old.schema, path=f"snapshot {old.snapshot_id}"))
    delta = _delta(state.entries, read_manifests(storage, old.manifests))
    change = Change(
        operation="restore",
        author=author if author is not None else default_author(),
        message=message if message is not None else f"restore to snapshot {old.snapshot_id}",
        properties=props,
        updates=(
            SetManifests(tuple(old.manifests), delta),
            SetSchema(old.schema, max(head.last_field_id, old.last_field_id)),
            SetContract(old.contract),
            SetPartitioning(tuple(old.partitioning)),
            SetSortOrder(tuple(old.sort_by)),
            SetPrimaryKey(tuple(old.primary_key)),
        ),
        requirements=(NoConcurrentCommit(),),
        parameters={
            "source": ref if isinstance(ref, str | int) else ref.isoformat(),
            "snapshot_id": old.snapshot_id,
            "branch": old.branch_id,
            "version": old.version,
        },
    )
    return state.line.commit(head, change, io=ManifestFiles(storage))
