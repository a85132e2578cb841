"""Content-addressed metadata objects: schemas and contracts.

An object's name is `lakever.format.object_id` of its bytes, so it is written at
most once (put-if-absent; a second writer of the same bytes finds it present),
never changes, and is verified against its name on every read. Parsed objects
are cached per process: they are immutable, so a copy stays valid forever.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow as pa

from lakever.errors import CorruptMetadata
from lakever.format import (
    CONTRACT_DIR,
    SCHEMA_DIR,
    canonical_json,
    check_object_id,
    object_id,
)
from lakever.schema import schema_from_json, schema_to_json
from lakever.storage import Storage

__all__ = ["read_contract_text", "read_schema", "write_contract_text", "write_schema"]

_lock = threading.Lock()
_schemas: dict[tuple[str, str], pa.Schema] = {}
_contracts: dict[tuple[str, str], str] = {}


def _put(storage: Storage, directory: str, data: bytes) -> str:
    oid = object_id(data)
    # False means the same bytes are already there (the name is their hash): nothing to do.
    storage.publish(f"{directory}/{oid}.json", data)
    return oid


def _get(storage: Storage, directory: str, oid: str, what: str) -> bytes:
    rel = f"{directory}/{check_object_id(oid)}.json"
    try:
        data = storage.read_bytes(rel)
    except FileNotFoundError as exc:
        raise CorruptMetadata(
            f"{what} {rel} referenced by the dataset's metadata is missing; it was deleted "
            "outside lakever",
            path=storage.full_path(rel),
        ) from exc
    if object_id(data) != oid:
        raise CorruptMetadata(
            f"{what} {rel} does not match its content hash; it was modified after it was written",
            path=storage.full_path(rel),
        )
    return data


def write_schema(storage: Storage, schema: pa.Schema) -> str:
    """Store ``schema`` (with field ids) as a schema file if absent; return its schema id."""
    return _put(storage, SCHEMA_DIR, canonical_json(schema_to_json(schema)))


def read_schema(storage: Storage, sid: str) -> pa.Schema:
    """Return the schema (with field ids) stored under ``sid``, verified and cached."""
    key = (storage.uri, sid)
    with _lock:
        hit = _schemas.get(key)
    if hit is not None:
        return hit
    data = _get(storage, SCHEMA_DIR, sid, "schema file")
    path = storage.full_path(f"{SCHEMA_DIR}/{sid}.json")
    try:
        j: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptMetadata(f"schema file {path} is not valid JSON", path=path) from exc
    schema = schema_from_json(j, path=path)
    with _lock:
        _schemas[key] = schema
    return schema


def write_contract_text(storage: Storage, text: str) -> str:
    """Store a contract's pandera JSON text if absent; return its contract id."""
    return _put(storage, CONTRACT_DIR, text.encode())


def read_contract_text(storage: Storage, cid: str) -> str:
    """Return the pandera JSON text stored under ``cid``, verified and cached."""
    key = (storage.uri, cid)
    with _lock:
        hit = _contracts.get(key)
    if hit is not None:
        return hit
    data = _get(storage, CONTRACT_DIR, cid, "contract file")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        path = storage.full_path(f"{CONTRACT_DIR}/{cid}.json")
        raise CorruptMetadata(f"contract file {path} is not UTF-8 text", path=path) from exc
    with _lock:
        _contracts[key] = text
    return text
