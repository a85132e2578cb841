"""The Iceberg table an export writes: its metadata JSON, history and incremental state.

Imported by `lakever.interop.iceberg.export_iceberg` once pyiceberg is known to be
installed. The layout at the target is a Hadoop-style Iceberg table::

    metadata/v<N>.metadata.json      table metadata, format version 2 (the commit point)
    metadata/lakever-<hash>.json     what the export needs to continue incrementally
                                     (named by the metadata's lakever.export-state)
    metadata/version-hint.text       N, for readers that look for it (advisory)
    metadata/*.avro                  manifest lists and manifests
    data/<32 hex>-deletes.parquet    positional delete files (lakever's deletion vectors)

Every file is created with put-if-absent, the metadata JSON last: an interrupted export
leaves unreferenced manifests and delete files behind, never a metadata file that
names a file that is not there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyiceberg.manifest import ManifestFile, read_manifest_list
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata, TableMetadataUtil, TableMetadataV2
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import (
    MetadataLogEntry,
    Operation,
    Snapshot,
    SnapshotLogEntry,
    Summary,
)
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from lakever import refs
from lakever._metafiles import read_schema
from lakever.errors import CorruptMetadata, ExportError, InvalidArgument
from lakever.format import FragmentEntry, ManifestRef, canonical_json, schema_id
from lakever.format import Snapshot as LakeverSnapshot
from lakever.interop import _iceberg_files as files
from lakever.manifests import manifests_data
from lakever.retention import EXPORTS_DIR, export_id, read_expiry
from lakever.schema import schema_from_json
from lakever.snapshot import SnapshotState
from lakever.storage import LocalStorage, ObjectStorage, Storage, open_storage

__all__ = ["ExportResult", "export"]

_METADATA = re.compile(r"^v(\d+)\.metadata\.json$")
_STATE_FILE = re.compile(r"^metadata/lakever-[0-9a-f]{32}\.json$")
#: Iceberg operation of each lakever operation (schema-only and layout commits change no
#: file: "replace", which incremental readers skip, like a compaction).
_OPERATIONS = {
    "create": Operation.APPEND,
    "append": Operation.APPEND,
    "delete": Operation.DELETE,
    "compact": Operation.REPLACE,
    "evolve": Operation.REPLACE,
    "set_contract": Operation.REPLACE,
    "set_partitioning": Operation.REPLACE,
    "set_properties": Operation.REPLACE,
}
_MAIN = "main"
#: Table property naming the file with the export's incremental state.
_STATE = "lakever.export-state"


def iceberg_snapshot_id(lakever_snapshot_id: str) -> int:
    """The Iceberg snapshot id of a lakever snapshot: its first 60 bits (positive, stable,
    so exporting the same history twice gives the same ids)."""
    return int(lakever_snapshot_id[:15], 16)


class ExportResult(dict[str, Any]):
    """What `export` did, as plain values (`lakever.interop.iceberg.IcebergExport` holds it)."""


def _data_location(storage: Storage) -> Callable[[str], str]:
    """How the table names a fragment: its absolute path on local disk, its URI on an
    object store; other storage (``memory://``, read-only fsspec) Iceberg cannot read."""
    if isinstance(storage, LocalStorage):
        return storage.full_path
    if isinstance(storage, ObjectStorage):
        return storage.location
    raise ExportError(
        f"cannot export {storage.uri} to Apache Iceberg: its files are on "
        f"{storage.protocol}://, which Iceberg readers cannot open; export a dataset on "
        "local disk or an object store",
        format="iceberg",
        target="",
        reason="location",
    )


def _target(state: SnapshotState, target: str) -> Storage:
    out = open_storage(target)
    src = state.storage.uri.rstrip("/")
    if out.uri.rstrip("/") == src or out.uri.startswith(src + "/"):
        raise ExportError(
            f"export target {out.uri} is inside the dataset {src}; vacuum would delete the "
            "table's files: choose a location outside it",
            format="iceberg",
            target=out.uri,
            reason="location",
        )
    return out


class _Existing:
    """The table at the target (its newest metadata version), or nothing yet."""

    def __init__(self, target: Storage, source_uri: str) -> None:
        self.version = 0
        self.metadata: TableMetadataV2 | None = None
        self.state: dict[str, Any] = {}
        versions = [int(m[1]) for n in target.list("metadata") if (m := _METADATA.match(n))]
        if not versions:
            return
        self.version = max(versions)
        rel = f"metadata/v{self.version}.metadata.json"
        where = target.full_path(rel)
        try:
            parsed = TableMetadataUtil.parse_raw(target.read_bytes(rel).decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptMetadata(
                f"Iceberg metadata {where} is malformed: {exc}", path=where
            ) from exc
        self.metadata = parsed if isinstance(parsed, TableMetadataV2) else None
        lakever = parsed.properties.get("lakever.dataset") if self.metadata else None
        state_rel = parsed.properties.get(_STATE, "")
        try:
            if not _STATE_FILE.match(state_rel):
                raise ValueError(state_rel)
            self.state = json.loads(target.read_bytes(state_rel))
        except (FileNotFoundError, ValueError):
            lakever = None
        if lakever is None:
            raise ExportError(
                f"{target.uri} holds an Apache Iceberg table that lakever did not export "
                f"({where}); export to another location, or delete it first",
                format="iceberg",
                target=target.uri,
                reason="not_an_export",
            )
        if lakever != source_uri:
            raise ExportError(
                f"{target.uri} holds the Iceberg export of another dataset ({lakever}); export "
                "to another location, or drop that export and delete the table first",
                format="iceberg",
                target=target.uri,
                reason="diverged",
            )

    @property
    def last(self) -> tuple[int, str] | None:
        """The lakever version and snapshot id of the table's current snapshot."""
        if self.metadata is None or self.metadata.current_snapshot_id is None:
            return None
        snap = self.metadata.snapshot_by_id(self.metadata.current_snapshot_id)
        summary = snap.summary if snap is not None else None
        if summary is None or "lakever.version" not in summary:
            return None
        return int(str(summary["lakever.version"])), str(summary["lakever.snapshot-id"])


def _to_export(
    state: SnapshotState, last: tuple[int, str] | None, target: str
) -> list[LakeverSnapshot]:
    """The snapshots of the line up to the view's that the table does not hold yet,
    oldest first, expired ones left out. Refuses a table whose history is not a prefix."""
    head = state.snap
    if last is not None:
        version, sid = last
        mine = state.line.read(version)
        same = mine is not None and mine.snapshot_id == sid
        if not same:
            found = f"snapshot {mine.snapshot_id[:12]}" if mine else "not there"
            raise ExportError(
                f"the history at {target} diverged from {state.branch_name!r}: the table's "
                f"version {version} is snapshot {sid[:12]}, on this line it is {found}; "
                "export to a new location",
                format="iceberg",
                target=target,
                reason="diverged",
            )
        if version > head.version:
            raise ExportError(
                f"{target} already holds versions up to {version}, newer than version "
                f"{head.version}; export version {version} or a later one",
                format="iceberg",
                target=target,
                reason="diverged",
            )
        if version == head.version:
            return []
    expiry = read_expiry(state.storage)
    out = []
    for snap in state.line.ancestors(head):
        if last is not None and snap.version <= last[0]:
            break
        if expiry.find(snap.branch_id, snap.version) is None:
            out.append(snap)
    return out[::-1]


def _summary(snap: LakeverSnapshot) -> Summary:
    s = snap.summary
    op = _OPERATIONS.get(snap.operation, Operation.OVERWRITE)
    deleted = sum(m.deleted_rows for m in snap.manifests)
    return Summary(
        op,
        **{
            "added-data-files": str(s.fragments_added),
            "deleted-data-files": str(s.fragments_removed),
            "added-records": str(s.rows_added),
            "deleted-records": str(s.rows_removed),
            "added-files-size": str(s.bytes_added),
            "removed-files-size": str(s.bytes_removed),
            "total-data-files": str(s.total_fragments),
            "total-records": str(s.total_rows + deleted),
            "total-position-deletes": str(deleted),
            "total-files-size": str(s.total_bytes),
            "lakever.snapshot-id": snap.snapshot_id,
            "lakever.version": str(snap.version),
            "lakever.operation": snap.operation,
            "lakever.author": snap.author,
            "lakever.message": snap.message,
        },
    )


class _Schemas:
    """lakever schemas -> Iceberg schemas (ids in order of first use), promotions checked."""

    def __init__(self, existing: TableMetadata | None, known: dict[str, int]) -> None:
        self.list: list[Schema] = list(existing.schemas) if existing is not None else []
        self.ids = dict(known)
        self.physical: dict[str, pa.Schema] = {}
        self.current: Schema | None = (
            existing.schema_by_id(existing.current_schema_id) if existing is not None else None
        )

    def of(self, snap: LakeverSnapshot) -> Schema:
        sid = schema_id(snap.schema)
        arrow = schema_from_json(snap.schema, path=f"snapshot {snap.snapshot_id}")
        self.physical.setdefault(sid, arrow)
        if sid in self.ids:
            found = next(s for s in self.list if s.schema_id == self.ids[sid])
        else:
            found = files.iceberg_schema(arrow, len(self.list))
            if self.current is not None:
                files.check_promotions(self.current, found, version=snap.version)
            self.list.append(found)
            self.ids[sid] = found.schema_id
        self.current = found
        return found

    def physical_of(self, storage: Storage, sid: str) -> pa.Schema:
        hit = self.physical.get(sid)
        if hit is None:
            hit = self.physical[sid] = read_schema(storage, sid)
        return hit


def _previous_manifests(target: Storage, metadata: TableMetadata | None) -> dict[str, ManifestFile]:
    """The manifests of the table's current snapshot, by location (reused when listed again)."""
    if metadata is None or metadata.current_snapshot_id is None:
        return {}
    snap = metadata.snapshot_by_id(metadata.current_snapshot_id)
    rel = "metadata/" + (snap.manifest_list.rsplit("/", 1)[-1] if snap else "(none)")
    try:
        if snap is None:
            raise ValueError(f"no snapshot {metadata.current_snapshot_id}")
        data = target.read_bytes(rel)
        listed = read_manifest_list(files.read_bytes_file(rel, data))
        return {m.manifest_path: m for m in listed}
    except Exception as exc:  # missing, or anything the Avro reader makes of damage
        where = target.full_path(rel)
        raise CorruptMetadata(
            f"the current snapshot's manifest list of the Iceberg table at {target.uri} "
            f"({where}) is missing or damaged ({type(exc).__name__}: {exc}); restore it, "
            "or export to a new location",
            path=where,
        ) from exc


def export(state: SnapshotState, target: str, *, author: str) -> ExportResult:
    """Export ``state``'s line of history up to its snapshot to an Iceberg table at ``target``."""
    location = _data_location(state.storage)
    out = _target(state, target)
    existing = _Existing(out, state.storage.uri)
    todo = _to_export(state, existing.last, out.uri)
    export = export_id("iceberg", out.uri)
    md = existing.metadata
    kept = existing.state
    schemas = _Schemas(md, kept.get("schemas", {}))
    # Every refusal comes before anything is held or written.
    per_snapshot = [schemas.of(snap) for snap in todo]
    reheld = _hold(state, export, out.uri, author, md, todo)
    ex = files.Exporter(
        source=state.storage,
        target=out,
        data_location=location,
        seen={k: list(v) for k, v in kept.get("seen", {}).items()},
        manifests={k: list(v) for k, v in kept.get("manifests", {}).items()},
        files=_previous_manifests(out, md),
    )
    if md is not None:
        for spec in md.partition_specs:
            if spec.spec_id != 0:
                shape = tuple((f.source_id, str(f.transform)) for f in spec.fields)
                ex.specs[spec.spec_id] = files.Spec(spec, shape)
    snapshots: list[Snapshot] = list(md.snapshots) if md is not None else []
    log: list[SnapshotLogEntry] = list(md.snapshot_log) if md is not None else []
    seq = md.last_sequence_number if md is not None else 0
    parent = md.current_snapshot_id if md is not None else None
    used: list[str] = kept.get("current_manifests", [])
    ids = {s.snapshot_id for s in snapshots}
    for snap, schema in zip(todo, per_snapshot, strict=True):
        seq += 1
        sid = iceberg_snapshot_id(snap.snapshot_id)
        if sid in ids:  # 60 bits of a SHA-256: never in practice
            raise InvalidArgument(f"snapshot {snap.snapshot_id} maps to a taken Iceberg id")
        ids.add(sid)
        manifests: list[ManifestFile] = []
        used = []
        for m in snap.manifests:
            key = hashlib.sha256(m.key.encode()).hexdigest()[:32]
            used.append(key)
            manifests += ex.manifests_for(
                key,
                functools.partial(_entries, state, m),
                lambda s: schemas.physical_of(state.storage, s),
                schema,
                sid,
                seq,
            )
        listing = ex.manifest_list(manifests, sid, parent, seq)
        ms = int(snap.timestamp.timestamp() * 1000)
        snapshots.append(
            Snapshot.model_validate(
                {
                    "snapshot-id": sid,
                    "parent-snapshot-id": parent,
                    "sequence-number": seq,
                    "timestamp-ms": ms,
                    "manifest-list": listing,
                    "summary": _summary(snap),
                    "schema-id": schema.schema_id,
                }
            )
        )
        log.append(SnapshotLogEntry.model_validate({"snapshot-id": sid, "timestamp-ms": ms}))
        parent = sid
    tags = _tags(state, snapshots)
    if md is not None and not todo and dict(md.refs) == tags:
        return _result(out, existing.version, [], snapshots, tags, ex, held=reheld)
    version = existing.version + 1
    new_state = {
        "format": 1,
        "seen": ex.seen,
        "manifests": {k: ex.manifests[k] for k in used if k in ex.manifests},
        "current_manifests": used,
        "schemas": schemas.ids,
    }
    sidecar = canonical_json(new_state)
    # Named by its content and by the metadata that uses it: a leftover of an interrupted
    # export is never taken for this one's.
    state_rel = f"metadata/lakever-{hashlib.sha256(sidecar).hexdigest()[:32]}.json"
    out.publish(state_rel, sidecar)
    metadata = _metadata(state, out, md, existing.version, schemas, ex, snapshots, log, tags, seq)
    metadata.properties[_STATE] = state_rel
    out.flush()  # the manifests are durable before the metadata that names them
    body = metadata.model_dump_json(by_alias=True, exclude_none=True).encode()
    ex.bytes_written += len(sidecar) + len(body)
    ex.files_written += 2
    if not out.publish(f"metadata/v{version}.metadata.json", body):
        raise ExportError(
            f"another export wrote version {version} of the Iceberg table at {out.uri} "
            "meanwhile; run the export again",
            format="iceberg",
            target=out.uri,
            reason="conflict",
        )
    with contextlib.suppress(OSError):  # advisory: readers that use it fall back to listing
        hint = str(version).encode()  # never shorter than the last one: N only grows
        out.write_hint("metadata/version-hint.text", hint)
        ex.bytes_written += len(hint)
    return _result(out, version, todo, snapshots, tags, ex, held=len(todo) + reheld)


def _hold(
    state: SnapshotState,
    export: str,
    target: str,
    author: str,
    md: TableMetadataV2 | None,
    todo: Sequence[LakeverSnapshot],
) -> int:
    """Hold the snapshots to export, before any file names their fragments, and again
    those the table already references whose holds were dropped (``drop_export``, then
    an export to the same target). Returns how many were held anew among the latter.

    Raises:
        VersionExpired: a version the table references was expired after its export
            was dropped (its files may be gone): export to a new location.
    """
    reason = f"iceberg export to {target}"
    held = {n.removesuffix(".json") for n in state.storage.list(f"{EXPORTS_DIR}/{export}")}
    again = 0
    for s in md.snapshots if md is not None else ():
        if s.summary is None or str(s.summary["lakever.snapshot-id"]) in held:
            continue
        snap = state.line.must_read(int(str(s.summary["lakever.version"])))
        # Raises VersionExpired (and holds nothing) if an expiry took it meanwhile.
        refs.hold_for_export(state.storage, snap, export=export, reason=reason, author=author)
        again += 1
    for snap in todo:
        refs.hold_for_export(state.storage, snap, export=export, reason=reason, author=author)
    return again


def _entries(state: SnapshotState, m: ManifestRef) -> list[FragmentEntry]:
    if m.inline is not None:
        return list(m.inline)
    return manifests_data(state.storage, [m])[0].entries()


def _tags(state: SnapshotState, snapshots: Sequence[Snapshot]) -> dict[str, SnapshotRef]:
    """Refs of the table: main at the newest snapshot, and every lakever tag naming an
    exported snapshot ("main" is the table's branch: a tag of that name is left out)."""
    if not snapshots:
        return {}
    by_lakever = {
        s.summary["lakever.snapshot-id"]: s.snapshot_id
        for s in snapshots
        if s.summary is not None and "lakever.snapshot-id" in s.summary
    }
    out = {
        _MAIN: SnapshotRef.model_validate(
            {"snapshot-id": snapshots[-1].snapshot_id, "type": SnapshotRefType.BRANCH}
        )
    }
    for tag in refs.list_tags(state.storage):
        if tag.name != _MAIN and tag.snapshot_id in by_lakever:
            out[tag.name] = SnapshotRef.model_validate(
                {"snapshot-id": by_lakever[tag.snapshot_id], "type": SnapshotRefType.TAG}
            )
    return out


def _metadata(
    state: SnapshotState,
    out: Storage,
    md: TableMetadata | None,
    previous: int,
    schemas: _Schemas,
    ex: files.Exporter,
    snapshots: list[Snapshot],
    log: list[SnapshotLogEntry],
    tags: dict[str, SnapshotRef],
    seq: int,
) -> TableMetadataV2:
    now = int(datetime.now(UTC).timestamp() * 1000)
    metadata_log = list(md.metadata_log) if md is not None else []
    if md is not None:
        metadata_log.append(
            MetadataLogEntry.model_validate(
                {
                    "metadata-file": ex.location(f"metadata/v{previous}.metadata.json"),
                    "timestamp-ms": md.last_updated_ms,
                }
            )
        )
    specs: list[PartitionSpec] = [s.spec for _, s in sorted(ex.specs.items())]
    head = state.snap
    shape = tuple((int(p["field_id"]), str(p["transform"])) for p in head.partitioning)
    default_spec = next((i for i, s in ex.specs.items() if shape and s.shape == shape), 0)
    assert schemas.current is not None
    return TableMetadataV2.model_validate(
        {
            "location": ex.location("").rstrip("/"),
            "table-uuid": md.table_uuid if md is not None else uuid.uuid4(),
            "last-updated-ms": now,
            "last-column-id": max(head.last_field_id, md.last_column_id if md else 0),
            "schemas": schemas.list,
            "current-schema-id": schemas.current.schema_id,
            "partition-specs": specs,
            "default-spec-id": default_spec,
            "last-partition-id": max(
                (f.field_id for s in specs for f in s.fields),
                default=files.PARTITION_FIELD_BASE - 1,
            ),
            "properties": {
                "lakever.dataset": state.storage.uri,
                "lakever.branch": state.branch_name,
                "lakever.export": export_id("iceberg", out.uri),
            },
            "current-snapshot-id": snapshots[-1].snapshot_id,
            "snapshots": snapshots,
            "snapshot-log": log,
            "metadata-log": metadata_log,
            "sort-orders": [UNSORTED_SORT_ORDER],
            "default-sort-order-id": UNSORTED_SORT_ORDER.order_id,
            "refs": tags,
            "last-sequence-number": seq,
        }
    )


def _result(
    out: Storage,
    version: int,
    todo: Sequence[LakeverSnapshot],
    snapshots: Sequence[Snapshot],
    tags: dict[str, SnapshotRef],
    ex: files.Exporter,
    *,
    held: int,
) -> ExportResult:
    versions = [int(str(s.summary["lakever.version"])) for s in snapshots if s.summary]
    return ExportResult(
        target=out.uri,
        metadata_location=out.full_path(f"metadata/v{version}.metadata.json"),
        metadata_version=version,
        versions_added=tuple(s.version for s in todo),
        first_version=versions[0] if versions else None,
        last_version=versions[-1] if versions else None,
        snapshots=len(snapshots),
        tags=tuple(sorted(t for t in tags if t != _MAIN)),
        bytes_written=ex.bytes_written,
        delete_bytes_written=ex.delete_bytes_written,
        files_written=ex.files_written,
        held=held,
    )
