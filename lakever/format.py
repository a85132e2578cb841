"""The on-disk format, in code. docs/format.md is the prose version of this module.

Layout under a dataset root::

    data/<uuid>.parquet                         immutable data fragments
    _lakever/manifests/<uuid>.parquet           immutable manifests (one row per fragment)
    _lakever/schemas/<schema-id>.json           immutable, content-addressed schemas
    _lakever/contracts/<contract-id>.json       immutable, content-addressed pandera contracts
    _lakever/log/<branch-id>/<version:020>.json the log: one immutable snapshot record per version
    _lakever/log/<branch-id>/LATEST             advisory hint: the newest version seen committed
    _lakever/field-ids/<seq:020>.json           immutable claims of field id ranges (writers only)

A snapshot record is canonical JSON. Its ``snapshot_id`` is the first 32 hex
digits of the SHA-256 of the record without ``snapshot_id``; manifests are
referenced with their SHA-256 and fragments with theirs, so a snapshot id is a
Merkle root over everything the snapshot shows.

Each fragment entry names the schema its file was written under (``schema_id``,
a content hash); readers map a fragment's columns to the snapshot schema by field
id, which is what lets schemas evolve without rewriting fragments.

A fragment entry may also reference a deletion vector: an immutable,
content-addressed Parquet file of the row positions that are deleted from the
fragment. The entry's fragment is then "the same file minus those rows"; a new
delete writes a new vector (the union) and a new entry, never changing the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lakever._lru import Lru, by_identity
from lakever.errors import CorruptMetadata, InvalidArgument

__all__ = [
    "BRANCH_ID",
    "FORMAT_VERSION",
    "LOG_ID",
    "MAX_COUNT",
    "SNAPSHOT_ID",
    "ContractRef",
    "DeletionVector",
    "FragmentEntry",
    "check_relative",
    "ManifestRef",
    "Snapshot",
    "Summary",
    "encode_snapshot",
    "is_unicode",
    "seal_snapshot",
    "log_path",
]

#: The format version this code writes and the newest it can read. Version 2 (lakever
#: 0.3): manifests may be written in manifest version 2 (typed statistics columns,
#: docs/format.md section 3); every version-1 dataset reads unchanged.
FORMAT_VERSION = 2

MAIN_BRANCH = "main"
META_DIR = "_lakever"
DATA_DIR = "data"
MANIFEST_DIR = f"{META_DIR}/manifests"
SCHEMA_DIR = f"{META_DIR}/schemas"
CONTRACT_DIR = f"{META_DIR}/contracts"
DELETION_DIR = f"{META_DIR}/deletions"
LOG_DIR = f"{META_DIR}/log"
#: Field id claims (docs/format.md §5.1): ranges of ids taken, dataset-wide.
FIELD_ID_DIR = f"{META_DIR}/field-ids"

#: Reader features this code implements. A snapshot record lists in ``reader_features``
#: what a reader must understand to return its rows correctly; a reader refuses a
#: record that lists a feature it does not know, instead of misreading it.
DELETION_VECTORS = "deletion_vectors"
READER_FEATURES = frozenset({DELETION_VECTORS})


def log_dir(branch_id: str) -> str:
    return f"{LOG_DIR}/{branch_id}"


def log_path(branch_id: str, version: int) -> str:
    return f"{LOG_DIR}/{branch_id}/{version:020d}.json"


def field_id_claim_path(seq: int) -> str:
    return f"{FIELD_ID_DIR}/{seq:020d}.json"


def snapshot_index_path(snapshot_id: str) -> str:
    return f"{META_DIR}/snapshots/{snapshot_id[:2]}/{snapshot_id}.json"


#: (versions below, id digits) of the appended index shards (docs/format.md section 1):
#: few files for a short history, a few hundred records per shard for a long one.
INDEX_LEVELS = ((4096, 1), (65536, 2), (None, 3))


def snapshot_index_log_path(snapshot_id: str, version: int) -> str:
    """The appended index shard a snapshot's record goes to: one JSON line per snapshot
    (where storage appends in place; else `snapshot_index_path`)."""
    digits = next(k for below, k in INDEX_LEVELS if below is None or version < below)
    return f"{META_DIR}/snapshots/{snapshot_id[:digits]}.jsonl"


def snapshot_index_log_paths(prefix: str) -> list[str]:
    """The appended index shards that may hold an id starting with ``prefix`` (3+ digits)."""
    return [f"{META_DIR}/snapshots/{prefix[:k]}.jsonl" for _, k in INDEX_LEVELS]


def latest_hint_path(branch_id: str) -> str:
    return f"{LOG_DIR}/{branch_id}/LATEST"


def branch_meta_path(branch_id: str) -> str:
    """Where a branch records its name and base (not written for main)."""
    return f"{LOG_DIR}/{branch_id}/BRANCH.json"


def newest_number(exists: Callable[[int], bool], start: int) -> int:
    """Given that ``start`` exists, return the newest existing number.

    Log versions, field id claims and expiry records are numbered contiguously (each is
    created only after the one below it), so galloping forward then binary-searching the
    gap costs O(log distance) existence checks.
    """
    lo, step = start, 1
    while exists(lo + step):
        lo += step
        step *= 2
    hi = lo + step  # known absent
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if exists(mid):
            lo = mid
        else:
            hi = mid
    return lo


#: One encoder for every `canonical_json` call: ``json.dumps`` with options other than
#: the defaults builds a new encoder per call, a third of the cost of encoding a key.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


#: A branch id (main's is ``main``, which has no record), a snapshot id, and the branch a
#: snapshot's log is on: the shapes every record holding one is checked against.
BRANCH_ID = re.compile(r"[0-9a-f]{32}")
SNAPSHOT_ID = re.compile(r"[0-9a-f]{32}")
LOG_ID = re.compile(r"main|[0-9a-f]{32}")
#: Largest row count, size or version a record may hold (an int64 Arrow can index).
MAX_COUNT = 2**62
#: A lone UTF-16 surrogate (from undecodable bytes): not a character, no UTF-8 for it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8 (holds no lone surrogate)."""
    return _SURROGATE.search(text) is None


def canonical_json(obj: Any) -> bytes:
    text = _CANONICAL.encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate in a caller's string
        near = exc.object[max(0, exc.start - 20) : exc.end + 20]
        raise InvalidArgument(
            f"text {near!r} is not valid Unicode (a lone surrogate, e.g. from undecodable "
            "bytes): pass a valid string (message, author, property, name)"
        ) from None


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def object_id(data: bytes) -> str:
    """The id of a content-addressed metadata object: 32 hex digits of its SHA-256."""
    return sha256_hex(data)[:32]


def schema_id(schema_json: dict[str, Any]) -> str:
    """The id of a schema: `object_id` of its canonical JSON (the bytes of its schema file)."""
    return object_id(canonical_json(schema_json))


def format_time(ts: datetime) -> str:
    t = ts.astimezone(UTC)
    if t.year >= 1000:  # the same text as the strftime below, a quarter of its cost
        return t.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


_PLAIN_PATH = re.compile(r"(?:[^/\\\x00-\x1f\x7f:]+)(?:/[^/\\\x00-\x1f\x7f]+)*")


def check_relative(rel: str) -> str:
    """Refuse a stored relative path that could escape the dataset root."""
    if (
        not isinstance(rel, str)
        or not _PLAIN_PATH.fullmatch(rel)
        or any(part in (".", "..") for part in rel.split("/"))
    ):
        raise CorruptMetadata(
            f"metadata references the path {rel!r}, which is not a plain path inside the "
            "dataset root; the metadata was tampered with or is corrupt",
            path=str(rel),
        )
    return rel


_OBJECT_ID = re.compile(r"[0-9a-f]{32}")


def check_object_id(value: Any) -> str:
    """Refuse a stored object id that is not 32 lowercase hex digits (it names a file)."""
    if not (isinstance(value, str) and _OBJECT_ID.fullmatch(value)):
        raise CorruptMetadata(
            f"metadata references the object id {value!r}, which is not 32 hex digits; "
            "the metadata was tampered with or is corrupt",
            path=str(value),
        )
    return value


@dataclass(frozen=True, slots=True)
class ContractRef:
    """The contract in force at a snapshot: a content-addressed pandera JSON file."""

    #: `object_id` of the contract file's bytes.
    id: str
    #: The pandera API the contract was written for: "polars" or "pandas".
    api: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "api": self.api}

    @staticmethod
    def from_json(j: Any) -> ContractRef | None:
        if j is None:
            return None
        api = j["api"]
        if api not in ("polars", "pandas"):
            raise ValueError(f"unknown contract api {api!r}")
        return ContractRef(id=check_object_id(j["id"]), api=api)


@dataclass(frozen=True, slots=True)
class DeletionVector:
    """The rows deleted from a fragment: an immutable Parquet file of row positions.

    The file has one column, ``position`` (int64): the 0-based positions, in the
    fragment's file order, of every deleted row, sorted and unique. It holds all of
    the fragment's deleted rows, not only the latest delete's.
    """

    #: ``_lakever/deletions/<object id>.parquet``, relative to the dataset root.
    path: str
    #: ``sha256:<hex>`` of the file's bytes.
    content_hash: str
    #: How many positions the file holds (rows deleted from the fragment).
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "content_hash": self.content_hash, "count": self.count}

    @staticmethod
    def from_json(j: Any) -> DeletionVector | None:
        if j is None:
            return None
        count = int(j["count"])
        if count <= 0:
            raise ValueError(f"deletion vector with {count} positions")
        return DeletionVector(
            path=check_relative(j["path"]), content_hash=str(j["content_hash"]), count=count
        )


@dataclass(frozen=True, slots=True)
class FragmentEntry:
    """A fragment as listed in a manifest (with the rows deleted from it, if any)."""

    path: str
    num_rows: int
    size_bytes: int
    content_hash: str
    #: field id -> {"min": v, "max": v, "nulls": n}; min/max absent when unknown.
    stats: dict[int, dict[str, Any]]
    #: Id of the schema the file was written under (its physical schema).
    schema_id: str
    #: Partition values of the file, self-described: [{"field_id", "transform", "value"}].
    partition: tuple[dict[str, Any], ...] | None = None
    #: The rows deleted from the file (None: none). ``num_rows`` and ``stats`` describe
    #: the whole file, deleted rows included (the bounds stay valid for the live rows).
    deletion: DeletionVector | None = None

    @property
    def live_rows(self) -> int:
        """Rows of the file that are not deleted."""
        return self.num_rows - (self.deletion.count if self.deletion is not None else 0)

    @property
    def deleted_rows(self) -> int:
        """Rows of the file that a deletion vector hides."""
        return self.deletion.count if self.deletion is not None else 0

    def to_json(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "num_rows": self.num_rows,
            "size_bytes": self.size_bytes,
            "content_hash": self.content_hash,
            "stats": {str(k): v for k, v in self.stats.items()},
            "schema_id": self.schema_id,
        }
        if self.partition is not None:
            out["partition"] = list(self.partition)
        if self.deletion is not None:
            out["deletion_vector"] = self.deletion.to_json()
        return out

    @staticmethod
    def from_json(j: dict[str, Any]) -> FragmentEntry:
        stats = j["stats"]
        if not all(isinstance(v, dict) for v in stats.values()):
            raise ValueError(f"malformed statistics {stats!r}")
        entry = FragmentEntry(
            path=check_relative(j["path"]),
            num_rows=_count(j["num_rows"]),
            size_bytes=_count(j["size_bytes"]),
            content_hash=str(j["content_hash"]),
            stats={int(k): v for k, v in stats.items()},
            schema_id=check_object_id(j["schema_id"]),
            partition=parse_partition(j.get("partition")),
            deletion=DeletionVector.from_json(j.get("deletion_vector")),
        )
        if entry.deleted_rows > entry.num_rows:
            raise ValueError(f"fragment {entry.path} deletes more rows than it has")
        return entry


def _count(value: Any) -> int:
    """A row count or byte size: an int Arrow can index (10**20 rows is damage)."""
    n = int(value)
    if not 0 <= n < MAX_COUNT:
        raise ValueError(f"count {value!r} out of range")
    return n


def parse_partition(raw: Any) -> tuple[dict[str, Any], ...] | None:
    """Validate a fragment's stored partition record (None: not partitioned)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list) or not all(
        isinstance(i, dict) and {"field_id", "transform", "value"} <= i.keys() for i in raw
    ):
        raise ValueError(f"malformed partition record {raw!r}")
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """One manifest in a snapshot's manifest list: a file, or entries inlined in the record.

    Small commits inline their fragment entries (``inline``; ``path`` and
    ``content_hash`` are None) so they write no manifest file; inlined manifests
    are level 0 and are folded into a manifest file by the next level merge.
    """

    path: str | None
    content_hash: str | None
    fragments: int
    #: Live rows: the fragments' rows minus the rows their deletion vectors hide.
    rows: int
    bytes: int
    level: int
    inline: tuple[FragmentEntry, ...] | None = None
    #: Rows hidden by the fragments' deletion vectors.
    deleted_rows: int = 0

    @property
    def key(self) -> str:
        """A string identifying this manifest (fragment paths are unique)."""
        if self.path is not None:
            return self.path
        # The same fragment with another deletion vector is another entry.
        return "inline:" + ",".join(
            e.path if e.deletion is None else f"{e.path}#{e.deletion.content_hash}"
            for e in self.inline or ()
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fragments": self.fragments,
            "rows": self.rows,
            "bytes": self.bytes,
            "level": self.level,
        }
        if self.deleted_rows:
            out["deleted_rows"] = self.deleted_rows
        if self.inline is not None:
            out["inline"] = [e.to_json() for e in self.inline]
        else:
            out["path"] = self.path
            out["content_hash"] = self.content_hash
        return out

    @staticmethod
    def from_json(j: dict[str, Any]) -> ManifestRef:
        inline = j.get("inline")
        return ManifestRef(
            path=None if inline is not None else check_relative(j["path"]),
            content_hash=None if inline is not None else str(j["content_hash"]),
            fragments=int(j["fragments"]),
            rows=int(j["rows"]),
            bytes=int(j["bytes"]),
            level=int(j["level"]),
            inline=None if inline is None else tuple(FragmentEntry.from_json(e) for e in inline),
            deleted_rows=int(j.get("deleted_rows", 0)),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """What a commit changed, and the totals of the snapshot it produced."""

    rows_added: int = 0
    rows_removed: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0
    fragments_added: int = 0
    fragments_removed: int = 0
    total_rows: int = 0
    total_bytes: int = 0
    total_fragments: int = 0

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    @staticmethod
    def from_json(j: dict[str, Any]) -> Summary:
        return Summary(**{k: int(j.get(k, 0)) for k in Summary.__slots__})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable snapshot record: a version of the dataset on a branch."""

    snapshot_id: str
    parent_id: str | None
    #: Id of the branch whose log holds this record ("main" for the default branch).
    branch_id: str
    version: int
    timestamp: datetime
    operation: str
    parameters: dict[str, Any]
    author: str
    message: str
    properties: dict[str, str]
    schema: dict[str, Any]
    last_field_id: int
    manifests: tuple[ManifestRef, ...]
    summary: Summary
    contract: ContractRef | None = None
    format_version: int = FORMAT_VERSION
    #: The second parent of a merge commit: {"snapshot_id", "branch", "version"}.
    merge_parent: dict[str, Any] | None = None
    #: Partition spec for new fragments: [{"field_id", "transform", "name"}] (empty: none).
    partitioning: tuple[dict[str, Any], ...] = ()
    #: Default clustering of rows within new fragments: [{"field_id", "descending"}].
    sort_by: tuple[dict[str, Any], ...] = ()
    #: Field ids of the declared primary key (empty: none), carried forward by every commit.
    primary_key: tuple[int, ...] = ()
    #: What a reader must implement to read this snapshot's rows (see `READER_FEATURES`).
    reader_features: tuple[str, ...] = ()
    #: Settings of the table (e.g. automatic compaction), carried forward by every commit.
    table_properties: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The hashed content: everything but ``snapshot_id``."""
        return self._body([m.to_json() for m in self.manifests])

    def _body(self, manifests: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "parent_id": self.parent_id,
            "branch": self.branch_id,
            "version": self.version,
            "timestamp": format_time(self.timestamp),
            "operation": self.operation,
            "parameters": self.parameters,
            "author": self.author,
            "message": self.message,
            "properties": self.properties,
            "schema": self.schema,
            "last_field_id": self.last_field_id,
            "manifests": manifests,
            "summary": self.summary.to_json(),
            "contract": None if self.contract is None else self.contract.to_json(),
        }
        if self.merge_parent is not None:
            out["merge_parent"] = self.merge_parent
        if self.partitioning:
            out["partitioning"] = list(self.partitioning)
        if self.sort_by:
            out["sort_by"] = list(self.sort_by)
        if self.primary_key:
            out["primary_key"] = list(self.primary_key)
        if self.reader_features:
            out["reader_features"] = list(self.reader_features)
        if self.table_properties:
            out["table_properties"] = dict(self.table_properties)
        out.update(self.extra)
        return out


def compute_snapshot_id(body: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(body))[:32]


def encode_snapshot(snap: Snapshot) -> bytes:
    body = snap.body()
    return canonical_json({**body, "snapshot_id": snap.snapshot_id})


def seal_snapshot(snap: Snapshot) -> tuple[Snapshot, bytes]:
    """``snap`` with its id computed, and its encoded record (`encode_snapshot`'s bytes).

    Each top-level value is serialized once and the two objects -- the body, whose
    hash is the id, and the record, the body plus ``snapshot_id`` -- are assembled
    from the same pieces, exactly as `canonical_json` lays out a dict (keys sorted,
    ``key:value`` joined by commas). The manifest list is laid out the same way from
    each manifest's own encoding; the encodings of the manifests and the schema a
    commit carries over from its parent are remembered (`_remembered_json`).
    """
    # The manifests and the schema are laid out from their remembered encodings.
    body = snap._body(None)
    encoded = {
        "manifests": b"["
        + b",".join(_remembered_json(m, m.to_json) for m in snap.manifests)
        + b"]",
        "schema": _remembered_json(snap.schema, lambda: snap.schema),
    }
    pieces = {k: _key_json(k) + (encoded.get(k) or canonical_json(v)) for k, v in body.items()}
    snapshot_id = sha256_hex(b"{" + b",".join(pieces[k] for k in sorted(pieces)) + b"}")[:32]
    pieces["snapshot_id"] = _key_json("snapshot_id") + canonical_json(snapshot_id)
    record = b"{" + b",".join(pieces[k] for k in sorted(pieces)) + b"}"
    return replace(snap, snapshot_id=snapshot_id), record


#: ``"key":`` of each record key seen (a handful of fixed names).
_KEYS: dict[str, bytes] = {}


def _key_json(key: str) -> bytes:
    found = _KEYS.get(key)
    if found is None:
        found = _KEYS[key] = canonical_json(key) + b":"
    return found


#: Canonical JSON of recently sealed manifests and schema records, by identity (the
#: object is kept, so its id is not reused while remembered). Manifests are frozen, and
#: neither their entries nor schema records are changed once made or read: a small commit
#: carries its parent's inline manifests and schema over, and re-encoding them was most
#: of the cost of sealing.
_ENCODED: Lru[int, tuple[Any, bytes]] = Lru(512)


def _remembered_json(obj: Any, to_json: Callable[[], Any]) -> bytes:
    return by_identity(_ENCODED, obj, lambda: canonical_json(to_json()))
