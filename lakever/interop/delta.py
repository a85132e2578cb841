"""Publish a lakever branch's history as a Delta Lake table (docs/export.md, Delta Lake).

Delta version N is lakever version N of the exported branch. Each Delta commit holds
the difference between two consecutive snapshots: ``remove`` for the entries gone,
``add`` for the new ones, with numRecords/min/max/nullCount from lakever's statistics,
and a ``commitInfo`` naming the lakever snapshot. The add actions reference lakever's
own Parquet fragments in place (no copy). delta-rs 1.6.6 (and so polars) resolves
every add path against the table root, absolute paths included, so the Delta table
must live at the dataset root or a directory above it.

Files a Delta reader without column mapping, deletion vectors or type widening would
misread are rewritten into ``TARGET/_delta_rewrites/`` (delta-rs 1.6.6's
``to_pyarrow_table`` refuses all three reader features): fragments with a deletion
vector (their live rows), fragments written before a column was renamed or widened,
or whose column name now names another column. Nothing else is written but the log.

Every snapshot an exported Delta version references is held for the export
(`lakever.refs.hold_for_export`), so lakever's expiry and vacuum keep its files until
`Dataset.drop_export("delta", target)`.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakever import refs
from lakever._resolve import check_readable
from lakever.errors import ExportError, VersionExpired
from lakever.format import FragmentEntry, Snapshot
from lakever.interop._delta_log import (
    LOG_DIR,
    TABLE_PROPERTIES,
    DeltaFile,
    LogState,
    Unsupported,
    delta_schema,
    encode_path,
    protocol_of,
    read_log,
    reads_by_name,
    stats_json,
    table_stats,
)
from lakever.planner import plan_scan
from lakever.reader import ScanPlan
from lakever.retention import export_id, read_expiry
from lakever.snapshot import SnapshotState
from lakever.storage import Storage, open_storage

__all__ = ["REWRITE_DIR", "DeltaExport", "export"]

#: Where an export writes the files it rewrites, under the target.
REWRITE_DIR = "_delta_rewrites"


@dataclass(frozen=True)
class DeltaExport:
    """What `Dataset.export_delta` did."""

    #: The Delta table's location (normalised URI).
    target: str
    #: The export's id (``Dataset.exports()`` lists the snapshots it holds under it).
    export_id: str
    #: The exported branch (its name) and the lakever version exported up to.
    branch: str
    version: int
    #: The Delta table's first and newest versions (= lakever versions).
    first_version: int
    head_version: int
    #: Delta versions this call wrote (empty: the target was up to date).
    versions_written: tuple[int, ...] = ()
    #: Add actions referencing lakever fragments in place, and rewritten files, written now.
    files_referenced: int = 0
    files_rewritten: int = 0
    bytes_rewritten: int = 0
    #: Every byte this call wrote under the target (commit files and rewrites).
    bytes_written: int = 0
    #: Rewritten files by reason ("deletion_vector", "schema"), written now.
    rewrites: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "export_id": self.export_id,
            "branch": self.branch,
            "version": self.version,
            "first_version": self.first_version,
            "head_version": self.head_version,
            "versions_written": list(self.versions_written),
            "files_referenced": self.files_referenced,
            "files_rewritten": self.files_rewritten,
            "bytes_rewritten": self.bytes_rewritten,
            "bytes_written": self.bytes_written,
            "rewrites": dict(self.rewrites),
        }


def _error(target: str, reason: str, message: str) -> ExportError:
    return ExportError(message, format="delta", target=target, reason=reason)


def _prefix(ds: Storage, target: Storage) -> str:
    """The dataset root's path relative to the target ('' or 'a/b/')."""
    root, top = ds.uri.rstrip("/"), target.uri.rstrip("/")
    if root == top:
        return ""
    if root.startswith(top + "/"):
        return root[len(top) + 1 :] + "/"
    raise _error(
        target.uri,
        "location",
        f"cannot export {ds.uri} to {target.uri} without copying its data: Delta readers "
        "(delta-rs 1.6.6, polars) resolve every data file path against the table's root, "
        "absolute paths included, so the Delta table must be at the dataset root or a "
        f"directory above it; export to {ds.uri} itself (the log goes to {ds.uri}/{LOG_DIR}, "
        "which lakever never reads or vacuums)",
    )


class _Run:
    """One export call: the dataset line, the target, and what has been written."""

    def __init__(self, state: SnapshotState, target: Storage, author: str) -> None:
        self.state = state
        self.target = target
        self.author = author
        self.prefix = _prefix(state.storage, target)
        self.export = export_id("delta", target.uri)
        root = state.line.read(0)
        self.root = root.snapshot_id if root is not None else ""
        self.table_id = str(uuid.UUID(hex=_sha(f"{self.root}/{state.line.branch_id}")[:32]))
        self.written: list[int] = []
        self.referenced = self.rewritten = self.bytes_rewritten = self.bytes_written = 0
        self.reasons: dict[str, int] = {}
        self.compatible: dict[tuple[str, str], bool] = {}

    @property
    def config(self) -> dict[str, str]:
        return {
            **TABLE_PROPERTIES,
            "lakever.root": self.root,
            "lakever.branch_id": self.state.line.branch_id,
            "lakever.dataset": self.state.storage.uri,
        }

    # ------------------------------------------------------------- which versions

    def check_target(self, log: LogState) -> None:
        """The target's table must be this branch's export, its head on this line."""
        config = log.metadata.get("configuration", {})
        uri = self.target.uri
        if config.get("lakever.root") != self.root:
            raise _error(
                uri,
                "not_an_export",
                f"{uri} holds the Delta export of another dataset "
                f"({config.get('lakever.dataset', 'unknown')}); export to another target",
            )
        if config.get("lakever.branch_id") != self.state.line.branch_id:
            raise _error(
                uri,
                "diverged",
                f"{uri} holds the Delta export of another branch of {self.state.uri} "
                f"(not {self.state.branch_name!r}, or a branch of that name deleted since); "
                "export to another target, or drop this export and delete the target",
            )
        assert log.version is not None
        snap = self.state.line.read(log.version)
        if snap is None or snap.snapshot_id != log.lakever.get("snapshot_id"):
            raise _error(
                uri,
                "diverged",
                f"Delta version {log.version} of {uri} shows lakever snapshot "
                f"{str(log.lakever.get('snapshot_id'))[:12]}, but version {log.version} of "
                f"branch {self.state.branch_name!r} is "
                f"{snap.snapshot_id[:12] if snap else 'missing'}: the branch's history was "
                "rewritten since the export; export to a new target (and drop this export)",
            )

    def oldest_readable(self, end: int) -> int:
        """The first version of the run of readable versions ending at ``end``."""
        storage, line = self.state.storage, self.state.line
        expiry = read_expiry(storage)
        v = end
        while v > 0:
            snap = line.read(v - 1)
            if snap is None or not _readable(storage, snap, expiry.find(snap.branch_id, v - 1)):
                break
            v -= 1
        return v

    # ------------------------------------------------------------- one version

    def publish(self, log: LogState, snap: Snapshot) -> None:
        """Hold ``snap``, write its rewrites, then its commit file (put-if-absent)."""
        s = self.state
        if read_expiry(s.storage).find(snap.branch_id, snap.version) is not None:
            _check(s.storage, snap, self.target.uri)
        view = SnapshotState(s.storage, s.line, snap, s.branch_name, False)
        schema_string = self.schema_string(view)  # refuse a type before holding anything
        refs.hold_for_export(
            s.storage, snap, export=self.export, reason=f"delta export to {self.target.uri}",
            author=self.author,
        )  # fmt: skip
        lines = self.actions(log, view, schema_string)
        data = b"".join(json.dumps(a, sort_keys=True).encode() + b"\n" for a in lines)
        self.target.flush()
        rel = f"{LOG_DIR}/{snap.version:020d}.json"
        if not self.target.publish(rel, data):
            raise _error(
                self.target.uri,
                "conflict",
                f"Delta version {snap.version} of {self.target.uri} was written by another "
                "export meanwhile; run the export again (it continues from there)",
            )
        self.bytes_written += len(data)
        self.written.append(snap.version)
        log.version = snap.version
        if log.first is None:
            log.first = snap.version

    def schema_string(self, view: SnapshotState) -> str:
        try:
            return delta_schema(view.schema)
        except Unsupported as exc:
            raise _error(
                self.target.uri,
                "unsupported",
                f"cannot export version {view.snap.version} of {view.uri} to Delta Lake: "
                f"{exc}, which Delta has no exact type for (supported: bool, int8-64, "
                "float32/64, string, binary, date32, timestamp[us], decimal128 up to 38 "
                "digits, and structs, lists and maps of them)",
            ) from exc

    def actions(
        self, log: LogState, view: SnapshotState, schema_string: str
    ) -> list[dict[str, Any]]:
        snap = view.snap
        ts = int(snap.timestamp.timestamp() * 1000)
        out: list[dict[str, Any]] = [{"commitInfo": self.commit_info(snap, ts)}]
        protocol = protocol_of(view.schema)
        if protocol != log.protocol:
            out.append({"protocol": protocol})
            log.protocol = protocol
        if schema_string != log.metadata.get("schemaString"):
            log.metadata = {
                "id": self.table_id,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string,
                "partitionColumns": [],
                "configuration": self.config,
                "createdTime": ts,
            }
            out.append({"metaData": log.metadata})
        live: dict[tuple[str, str], DeltaFile] = {}
        adds: list[DeltaFile] = []
        plan: list[ScanPlan] = []
        for e in view.entries:
            key = (e.path, e.deletion.content_hash if e.deletion is not None else "")
            cur = log.live.get(key)
            if cur is not None and self.reads(view, cur.schema_id):
                live[key] = cur
                continue
            direct = e.deletion is None and self.reads(view, e.schema_id)
            f = self.direct(view, e) if direct else self.rewrite(view, e, plan)
            live[key] = f
            adds.append(f)
        change = snap.operation != "compact"
        for key, f in log.live.items():
            if live.get(key) is not f:
                replaced = key in live  # the same rows, in another file
                out.append({"remove": _remove(f.add, ts, data_change=change and not replaced)})
        for f in adds:
            f.add["modificationTime"] = ts
            f.add["dataChange"] = change and f.key not in log.live
            out.append({"add": f.add})
        log.live = live
        log.lakever = out[0]["commitInfo"]["lakever"]
        return out

    def reads(self, view: SnapshotState, schema_id: str) -> bool:
        """Whether files written under ``schema_id`` read right by name in ``view``."""
        key = (schema_id, view.schema_id)
        hit = self.compatible.get(key)
        if hit is None:
            hit = self.compatible[key] = reads_by_name(view.schema_of(schema_id), view.schema)
        return hit

    def commit_info(self, snap: Snapshot, ts: int) -> dict[str, Any]:
        return {
            "timestamp": ts,
            "operation": snap.operation.upper(),
            "operationParameters": {},
            "isBlindAppend": snap.operation == "append",
            "engineInfo": "lakever",
            "userName": snap.author,
            "lakever": {
                "snapshot_id": snap.snapshot_id,
                "version": snap.version,
                "branch_id": snap.branch_id,
                "operation": snap.operation,
                "message": snap.message,
            },
        }

    def direct(self, view: SnapshotState, e: FragmentEntry) -> DeltaFile:
        """An add action for a lakever fragment, in place."""
        names = {fid: f.name for fid, f in view.fields.items()}
        stats = {names[fid]: st for fid, st in view.stats_of(e).items() if fid in names}
        self.referenced += 1
        add = {
            "path": encode_path(self.prefix + e.path),
            "partitionValues": {},
            "size": e.size_bytes,
            "stats": stats_json(view.schema, e.num_rows, stats),
            "tags": _tags(e, e.schema_id),
        }
        return DeltaFile(add, e.schema_id)

    def rewrite(self, view: SnapshotState, e: FragmentEntry, plan: list[ScanPlan]) -> DeltaFile:
        """The fragment's live rows through the snapshot's schema, as a new file."""
        if not plan:
            plan.append(plan_scan(view))
        task = next(t for t in plan[0].tasks if t.path == e.path)
        table = plan[0].read(task)
        table = pa.Table.from_arrays(table.columns, schema=view.schema)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        data = buf.getvalue()
        rel = f"{REWRITE_DIR}/{_sha(data)[:32]}.parquet"
        try:
            self.target.write_new(rel, data)
            self.bytes_written += len(data)
            self.bytes_rewritten += len(data)
            self.rewritten += 1
            reason = "deletion_vector" if e.deletion is not None else "schema"
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        except FileExistsError:
            if _sha(self.target.read_bytes(rel)) != _sha(data):
                raise _error(
                    self.target.uri,
                    "not_an_export",
                    f"{self.target.uri}/{rel} holds other bytes than lakever wrote there",
                ) from None
        add = {
            "path": encode_path(rel),
            "partitionValues": {},
            "size": len(data),
            "stats": stats_json(view.schema, table.num_rows, table_stats(table)),
            "tags": _tags(e, view.schema_id),
        }
        return DeltaFile(add, view.schema_id)

    def report(self, log: LogState, end: int) -> DeltaExport:
        assert log.version is not None
        assert log.first is not None
        return DeltaExport(
            target=self.target.uri, export_id=self.export, branch=self.state.branch_name,
            version=end, first_version=log.first, head_version=log.version,
            versions_written=tuple(self.written), files_referenced=self.referenced,
            files_rewritten=self.rewritten, bytes_rewritten=self.bytes_rewritten,
            bytes_written=self.bytes_written, rewrites=dict(self.reasons),
        )  # fmt: skip


def _tags(e: FragmentEntry, schema_id: str) -> dict[str, str]:
    return {
        "lakever.source": e.path,
        "lakever.deletion_vector": e.deletion.content_hash if e.deletion is not None else "",
        "lakever.schema": schema_id,
    }


def _remove(add: dict[str, Any], ts: int, *, data_change: bool) -> dict[str, Any]:
    return {
        "path": add["path"],
        "deletionTimestamp": ts,
        "dataChange": data_change,
        "extendedFileMetadata": True,
        "partitionValues": {},
        "size": add["size"],
        "tags": add["tags"],
    }


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _readable(storage: Storage, snap: Snapshot, expired: object) -> bool:
    if expired is None:
        return True
    try:
        check_readable(storage, snap)
    except VersionExpired:
        return False
    return True


def _check(storage: Storage, snap: Snapshot, target: str) -> None:
    try:
        check_readable(storage, snap)
    except VersionExpired as exc:
        raise _error(
            target,
            "diverged",
            f"version {snap.version} was expired before it was exported, so the Delta "
            f"table at {target} cannot continue without a gap: {exc}. Drop this export "
            "and export again to a new target (it starts at the oldest readable version)",
        ) from exc


def export(
    state: SnapshotState,
    target: str,
    *,
    storage_options: dict[str, Any] | None = None,
    author: str,
) -> DeltaExport:
    """Export the history of ``state``'s branch up to ``state`` to a Delta table at
    ``target``, or append the versions the table lacks (see the module docstring)."""
    storage = open_storage(target, storage_options)
    run = _Run(state, storage, author)
    log = read_log(storage)
    end = state.snap.version
    if log.version is None:
        start = run.oldest_readable(end)
    else:
        run.check_target(log)
        start = log.version + 1
    for v in range(start, end + 1):
        snap = state.line.read(v)
        if snap is None:  # the line was read up to ``end`` when the view was opened
            raise _error(storage.uri, "diverged", f"version {v} of {state.uri} is missing")
        run.publish(log, snap)
    return run.report(log, end)
