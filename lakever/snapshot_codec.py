"""Reading a snapshot record (a log entry): parse, verify its id, check every field.

The record's id is the hash of its content, so an edit shows as a mismatch; a record
made by another tool (or re-sealed after an edit) is also checked field by field, so
a malformed value is `CorruptMetadata` naming the file when the entry is read, never
a Python error in whatever later uses the field. Writing is in `lakever.format`.
"""

from __future__ import annotations

import json
from typing import Any

from lakever.errors import CorruptMetadata, UnsupportedFormatVersion
from lakever.format import (
    FORMAT_VERSION,
    MAX_COUNT,
    READER_FEATURES,
    ContractRef,
    ManifestRef,
    Snapshot,
    Summary,
    compute_snapshot_id,
    parse_time,
)
from lakever.partitioning import PartitionField

__all__ = ["decode_snapshot"]

_KNOWN = {
    "format_version",
    "parent_id",
    "branch",
    "version",
    "timestamp",
    "operation",
    "parameters",
    "author",
    "message",
    "properties",
    "schema",
    "last_field_id",
    "manifests",
    "summary",
    "contract",
    "snapshot_id",
    "merge_parent",
    "partitioning",
    "sort_by",
    "primary_key",
    "reader_features",
    "table_properties",
}


def decode_snapshot(data: bytes, *, path: str) -> Snapshot:
    """Parse and verify a snapshot record; raise CorruptMetadata naming ``path``."""
    try:
        j = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptMetadata(
            f"metadata file {path} is truncated or not valid JSON ({exc}); "
            "restore it from a backup or open an earlier version",
            path=path,
        ) from exc
    if not isinstance(j, dict):
        raise CorruptMetadata(f"metadata file {path} does not hold a snapshot record", path=path)
    fv = j.get("format_version")
    if isinstance(fv, int) and fv > FORMAT_VERSION:
        raise UnsupportedFormatVersion(
            f"{path} was written in lakever format version {fv}, but this lakever reads "
            f"format versions up to {FORMAT_VERSION}; upgrade lakever to read it",
            found=fv,
            supported=FORMAT_VERSION,
        )
    if not isinstance(fv, int):
        raise CorruptMetadata(f"metadata file {path} has no valid format_version", path=path)
    features = j.get("reader_features", [])
    unknown = (
        sorted(set(map(str, features)) - READER_FEATURES)
        if isinstance(features, list)
        else [repr(features)]
    )
    if unknown:
        raise UnsupportedFormatVersion(
            f"{path} needs reader feature(s) {unknown} that this lakever does not implement "
            f"(it implements {sorted(READER_FEATURES)}); upgrade lakever to read it",
            found=fv,
            supported=FORMAT_VERSION,
            features=unknown,
        )
    try:
        claimed = j.pop("snapshot_id")
        if compute_snapshot_id(j) != claimed:
            raise CorruptMetadata(
                f"metadata file {path} does not match its snapshot id {claimed} "
                "(it was modified after it was written); restore it or open another version",
                path=path,
            )
        _check_fields(j)
        return Snapshot(
            snapshot_id=claimed,
            parent_id=j["parent_id"],
            branch_id=j["branch"],
            version=int(j["version"]),
            timestamp=parse_time(j["timestamp"]),
            operation=j["operation"],
            parameters=dict(j["parameters"]),
            author=j["author"],
            message=j["message"],
            properties=dict(j["properties"]),
            schema=j["schema"],
            last_field_id=int(j["last_field_id"]),
            manifests=tuple(ManifestRef.from_json(m) for m in j["manifests"]),
            summary=Summary.from_json(j["summary"]),
            contract=ContractRef.from_json(j["contract"]),
            format_version=fv,
            merge_parent=j.get("merge_parent"),
            partitioning=tuple(j.get("partitioning", ())),
            sort_by=tuple(j.get("sort_by", ())),
            primary_key=tuple(int(f) for f in j.get("primary_key", [])),
            reader_features=tuple(str(f) for f in features),
            table_properties={
                str(k): str(v) for k, v in dict(j.get("table_properties", {})).items()
            },
            extra={k: v for k, v in j.items() if k not in _KNOWN},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptMetadata(
            f"metadata file {path} is missing or has malformed fields ({exc!r})", path=path
        ) from exc


def _check_fields(j: dict[str, Any]) -> None:
    """Raise ValueError for a field of the wrong type or shape (reported by the caller
    as CorruptMetadata naming the file)."""

    def ints(values: Any, what: str) -> None:
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_COUNT for v in values
        ):
            raise ValueError(f"{what} is {values!r}")

    # author and message are free text, not checked: lakever before 0.3.0 stored any
    # value a caller passed (author=5), and such records must stay readable.
    for key in ("operation", "parent_id", "branch"):
        if not isinstance(j.get(key), str) and not (key == "parent_id" and j.get(key) is None):
            raise ValueError(f"{key} is {j.get(key)!r}")
    for key in ("parameters", "properties", "schema"):
        if not isinstance(j.get(key), dict):
            raise ValueError(f"{key} is {j.get(key)!r}")
    ints([j.get("version"), j.get("last_field_id")], "version or last_field_id")
    merge = j.get("merge_parent")
    if merge is not None and not (
        isinstance(merge, dict)
        and isinstance(merge.get("snapshot_id"), str)
        and isinstance(merge.get("branch"), str)
        and isinstance(merge.get("version"), int)
    ):
        raise ValueError(f"merge_parent is {merge!r}")
    ints(j.get("primary_key", []), "primary_key")
    fields = j["schema"].get("fields")
    top = (
        {f.get("id") for f in fields if isinstance(f, dict)} if isinstance(fields, list) else set()
    )
    if not set(j.get("primary_key", [])) <= top:  # key columns cannot be dropped
        raise ValueError(f"primary_key {j['primary_key']!r} names no column of the schema")
    for key, wanted in (("partitioning", {"field_id", "transform"}), ("sort_by", {"field_id"})):
        items = j.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and wanted <= i.keys() and isinstance(i["field_id"], int)
            for i in items
        ):
            raise ValueError(f"{key} is {items!r}")
    for p in j.get("partitioning", []):
        PartitionField.from_json(p)  # an unknown transform: ValueError
    if not isinstance(j.get("table_properties", {}), dict):
        raise ValueError(f"table_properties is {j.get('table_properties')!r}")
