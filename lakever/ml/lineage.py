"""`Dataset.lineage_record`: one snapshot described as plain JSON for any tracker.

The record is a stability promise: its keys and their meaning are fixed for
``record_version`` 1 (docs/tracking.md, "The lineage record"); new keys may be added
without changing the version, none is removed or changes meaning.
"""

from __future__ import annotations

import copy
import shlex
import sys
from typing import TYPE_CHECKING, Any

from lakever import refs
from lakever._resolve import make_pin
from lakever.format import FORMAT_VERSION
from lakever.maintenance.pins import merkle_root

if TYPE_CHECKING:
    from lakever.snapshot import SnapshotState

__all__ = ["RECORD_VERSION", "dataset_name", "lineage_record"]

#: The version of the record's layout (bumped only if a key is removed or changes meaning).
RECORD_VERSION = 1


def dataset_name(uri: str) -> str:
    """A short name for a dataset: the last segment of its URI ("lake/events" -> "events")."""
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    return tail.rsplit(":", 1)[-1] or uri


def _version() -> str:
    # The package root defines it; importing the root from a submodule would be a cycle,
    # and the root is always loaded before any of its submodules.
    return str(getattr(sys.modules.get("lakever"), "__version__", "unknown"))


def lineage_record(s: SnapshotState) -> dict[str, Any]:
    """The lineage record of the snapshot ``s`` shows (keys: docs/tracking.md)."""
    snap = s.snap
    merkle = merkle_root(snap.schema, snap.contract, s.entries)
    pin = make_pin(s.storage.uri, snap, s.branch_name, merkle=merkle)
    tags = sorted(t.name for t in refs.list_tags(s.storage) if t.snapshot_id == snap.snapshot_id)
    columns = [
        {"name": f.name, "type": str(f.type), "nullable": f.nullable, "field_id": fid}
        for fid, f in ((s.field_ids[f.name], f) for f in s.public)
    ]
    key = [s.fields[fid].name for fid in snap.primary_key] if snap.primary_key else None
    return {
        "record_version": RECORD_VERSION,
        "lakever_version": _version(),
        "format_version": snap.format_version,
        "reader_format_version": FORMAT_VERSION,
        "pin": pin,
        "uri": s.storage.uri,
        "name": dataset_name(s.storage.uri),
        "branch": s.branch_name,
        "version": snap.version,
        "snapshot_id": snap.snapshot_id,
        "parent_snapshot_id": snap.parent_id,
        "timestamp": snap.timestamp.isoformat(),
        "operation": snap.operation,
        "message": snap.message,
        "tags": tags,
        "columns": columns,
        "schema": copy.deepcopy(snap.schema),
        "primary_key": key,
        "num_rows": snap.summary.total_rows,
        "num_fragments": snap.summary.total_fragments,
        "size_bytes": snap.summary.total_bytes,
        "contract_digest": None if snap.contract is None else snap.contract.id,
        "contract_api": None if snap.contract is None else snap.contract.api,
        "merkle_root": merkle,
        "verify": f"lakever verify {shlex.quote(pin)}",
    }
