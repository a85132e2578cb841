"""The Merkle root a pin carries (docs/format.md §6.1): fragments, schema, contract.

Leaves, in this order: the schema, the contract, then one per fragment in read
order. Each leaf is ``SHA-256(0x00 || canonical JSON)``; an inner node is
``SHA-256(0x01 || left || right)`` over the two 32-byte digests; each level pairs
nodes left to right and carries an odd last node up unchanged. The root is
written as 64 lowercase hex digits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from lakever import _chain
from lakever._resolve import PIN_PREFIX, locate_pin, pin_parts
from lakever.errors import CorruptMetadata, DatasetNotFound, InvalidArgument, VersionNotFound
from lakever.format import SCHEMA_DIR, ContractRef, FragmentEntry, canonical_json, schema_id
from lakever.maintenance.verify import Problem, VerifyReport, Walk, check_snapshots
from lakever.storage import open_storage

__all__ = ["leaves", "merkle_root", "root_of", "verify_pin"]


def _leaf(obj: Any) -> bytes:
    return hashlib.sha256(b"\x00" + canonical_json(obj)).digest()


def _raw_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def leaves(
    schema_json: bytes, contract: ContractRef | None, entries: Sequence[FragmentEntry]
) -> list[bytes]:
    """The leaf digests: ``schema_json`` is the canonical JSON of the schema (the bytes of
    its schema file), ``contract`` the contract in force, ``entries`` in read order."""
    out = [
        _raw_leaf(schema_json),
        _leaf(None if contract is None else contract.to_json()),
    ]
    for e in entries:
        dv = e.deletion.content_hash if e.deletion is not None else None
        out.append(_leaf({"content_hash": e.content_hash, "deletion_vector": dv}))
    return out


def root_of(nodes: Sequence[bytes]) -> str:
    """The Merkle root of leaf digests (at least one), as 64 hex digits."""
    level = list(nodes)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def merkle_root(
    schema: dict[str, Any], contract: ContractRef | None, entries: Sequence[FragmentEntry]
) -> str:
    """The Merkle root of a snapshot with schema ``schema`` (its JSON, with field ids)."""
    return root_of(leaves(canonical_json(schema), contract, entries))


def verify_pin(
    pin: str, *, uri: str | None = None, storage_options: dict[str, Any] | None = None
) -> VerifyReport:
    """Check a pinned snapshot (at ``uri`` when the lake was moved or copied): its log
    entry and chain, every file it references, byte for byte, and the Merkle root.

    Raises:
        InvalidArgument: ``pin`` is not a pin.
        DatasetNotFound: no dataset where the pin (or ``uri``) points.
    """
    if not isinstance(pin, str) or not pin.startswith(PIN_PREFIX):
        raise InvalidArgument(f"expected a pin ('lakever:URI?...'), got {pin!r}")
    if uri is not None and not isinstance(uri, str):
        raise InvalidArgument(f"uri must be a string, got {uri!r}")
    pinned_uri, params = pin_parts(pin)
    expected = params.get("merkle")
    where_uri = uri if uri is not None else pinned_uri
    storage = open_storage(where_uri, storage_options)
    try:
        _, found = locate_pin(pin, lambda _u: storage)
    except (VersionNotFound, CorruptMetadata) as exc:
        if isinstance(exc, DatasetNotFound):
            raise
        path = getattr(exc, "path", storage.uri)
        problem = Problem(str(path), "chain", (), " ".join(str(exc).split()))
        return VerifyReport(storage.uri, (problem,), 0, 0, 0)
    snap, label = found.snap, (found.branch_name, found.snap.version)
    w = Walk(storage)
    try:
        _chain.verify(found.log, snap)
    except CorruptMetadata as exc:
        w.add(exc.path, "chain", str(exc), [label])
    w.snapshot(snap, label)
    seen: list[FragmentEntry] = []
    check_snapshots(w, lambda _s, entries: seen.extend(entries))
    rel = f"{SCHEMA_DIR}/{schema_id(snap.schema)}.json"
    try:
        schema_bytes = storage.read_bytes(rel)
    except FileNotFoundError:
        schema_bytes = canonical_json(snap.schema)  # optional file (§5.2): the record's copy
    root = root_of(leaves(schema_bytes, snap.contract, seen))
    if expected is not None and root != expected:
        w.add(
            found.log.entry_path(snap.version),
            "merkle",
            f"the Merkle root recomputed from storage, {root}, is not the pin's {expected}: "
            "the schema, the contract or a fragment's bytes changed",
            [label],
        )
    return w.report(storage.uri, root)
