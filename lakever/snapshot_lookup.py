"""Finding a committed snapshot by its id (or a prefix of at least 8 hex digits).

The snapshot index (docs/format.md section 1) is advisory: each entry it gives is
verified by reading that version of that branch's log and comparing ids; on a miss
the newest versions of every branch are scanned (a writer killed right after its
commit may not have indexed it). Used by ``version="<snapshot id>"`` and pins.
"""

from __future__ import annotations

import contextlib
import json

from lakever.errors import BrokenHistory, CorruptMetadata
from lakever.format import LOG_DIR, Snapshot, snapshot_index_log_paths, snapshot_index_path
from lakever.refs import line_for
from lakever.storage import Storage

__all__ = ["find_snapshot"]


def _read_verified(
    storage: Storage, branch_id: str, version: int, snapshot_id: str
) -> Snapshot | None:
    try:
        snap = line_for(storage, branch_id).read(version)
    except CorruptMetadata:
        return None
    return snap if snap is not None and snap.snapshot_id == snapshot_id else None


def _indexed(storage: Storage, prefix: str) -> dict[str, list[tuple[str, int]]]:
    """The advisory index's entries for snapshot ids starting with ``prefix``: id ->
    every (branch id, version) recorded for it (each is verified), from both layouts
    (docs/format.md §1): the appended shards ``_lakever/snapshots/<id[:k]>.jsonl``
    (k = 1, 2, 3) and one file per snapshot under ``_lakever/snapshots/<id[:2]>/``. A
    torn or garbled record is skipped (a miss)."""
    out: dict[str, list[tuple[str, int]]] = {}
    lines: list[bytes] = []
    for rel in snapshot_index_log_paths(prefix):
        with contextlib.suppress(FileNotFoundError):
            lines += storage.read_bytes(rel).split(b"\n")
    for line in lines:
        if not line.strip():
            continue
        try:
            j = json.loads(line)
            sid, where = j["id"], (str(j["branch"]), int(j["version"]))
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(sid, str) and sid.startswith(prefix) and where not in out.get(sid, []):
            out.setdefault(sid, []).append(where)
    shard = snapshot_index_path(prefix).rsplit("/", 1)[0]
    for fname in storage.list(shard):
        sid = fname.removesuffix(".json")
        if not sid.startswith(prefix) or sid in out:
            continue
        try:
            j = json.loads(storage.read_bytes(f"{shard}/{fname}"))
            out[sid] = [(str(j["branch"]), int(j["version"]))]
        except (FileNotFoundError, KeyError, TypeError, ValueError):
            continue  # the index is advisory: a torn entry is a miss, the log scan decides
    return out


def find_snapshot(storage: Storage, prefix: str) -> list[Snapshot]:
    """Committed snapshots whose id starts with ``prefix`` (at least 8 hex digits).

    Uses the advisory index (`_indexed`, verified against the log). A writer killed
    right after committing may not have indexed its commit, so on a miss the newest
    versions of every branch are also checked.

    Raises:
        BrokenHistory: nothing matched and a branch's history is broken (the snapshot
            may have been in the part that was lost).
    """
    found: dict[str, Snapshot] = {}
    for sid, places in _indexed(storage, prefix).items():
        for branch_id, version in places:
            snap = _read_verified(storage, branch_id, version, sid)
            if snap is not None:
                found[sid] = snap
                break
    if found:
        return list(found.values())
    damage: BrokenHistory | None = None
    for branch_id in storage.list(LOG_DIR):
        try:
            line = line_for(storage, branch_id)
            latest = line.latest_version()
        except BrokenHistory as exc:
            damage = damage or exc  # the snapshot may be among the lost entries
            continue
        except CorruptMetadata:
            continue
        if latest is None:
            continue
        for v in range(max(line.first_own, latest - 63), latest + 1):
            snap = line.read(v)
            if snap is not None and snap.snapshot_id.startswith(prefix):
                found[snap.snapshot_id] = snap
    if not found and damage is not None:
        raise damage
    return list(found.values())
