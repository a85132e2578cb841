"""Retention: which snapshots stay readable. Expiry records and retained pins.

Every snapshot is retained until a user expires it (docs/format.md §9). This module
holds the two records that decide it, and the checks every reader makes:

* **Expiry records** ``_lakever/expiry/<seq:020d>.json``, numbered contiguously from 0
  and created with put-if-absent like field id claims (the newest is found from the
  ``LATEST`` hint plus a forward probe). Each is *cumulative*: it lists every expired
  range of every branch log, each with when, by whom and under which policy it was
  expired, so a reader needs only the newest one. Expiry only grows.
* **Retained pins** ``_lakever/refs/retained/<snapshot id>.json``: a snapshot a user
  asked to keep (a pin logged with a model), a garbage-collection root like a tag.

Who acts on them: opening a version by number, time, snapshot id or pin checks the
expiry (`lakever._resolve.check_readable`: `VersionExpired` naming when, by whom and
why); a ref made on a snapshot (a tag, a branch, a retained pin) re-checks it after
it is written and backs out if an expiry took the snapshot meanwhile
(`lakever.refs`); expiry and vacuum write and read it (`lakever.maintenance`).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lakever.errors import CorruptMetadata, InvalidArgument, VersionExpired
from lakever.format import (
    LOG_ID,
    MAX_COUNT,
    META_DIR,
    canonical_json,
    format_time,
    newest_number,
    parse_time,
)
from lakever.storage import Storage

__all__ = [
    "EXPIRY_DIR",
    "EXPORTS_DIR",
    "RETAINED_DIR",
    "ExpiredRange",
    "Expiry",
    "Retained",
    "expired_error",
    "export_id",
    "export_path",
    "held_by_export",
    "list_exported",
    "list_retained",
    "load_retained",
    "read_expiry",
    "retained_path",
    "write_expiry",
]

EXPIRY_DIR = f"{META_DIR}/expiry"
RETAINED_DIR = f"{META_DIR}/refs/retained"
#: Snapshots held by an export to another table format (one folder per export).
EXPORTS_DIR = f"{META_DIR}/refs/exports"
_EXPORT_ID = re.compile(r"^[a-z]{1,16}-[0-9a-f]{16}$")
_HINT = f"{EXPIRY_DIR}/LATEST"


def expiry_path(seq: int) -> str:
    return f"{EXPIRY_DIR}/{seq:020d}.json"


def retained_path(snapshot_id: str) -> str:
    return f"{RETAINED_DIR}/{snapshot_id}.json"


def export_id(fmt: str, target: str) -> str:
    """The id of the export of format ``fmt`` (e.g. "delta") to ``target`` (a URI)."""
    out = f"{fmt}-{hashlib.sha256(target.encode()).hexdigest()[:16]}"
    if not _EXPORT_ID.match(out):
        raise InvalidArgument(f"export format must be 1-16 lowercase letters, got {fmt!r}")
    return out


def export_path(export: str, snapshot_id: str) -> str:
    """Where export ``export`` (an `export_id`) records that it holds a snapshot."""
    if not _EXPORT_ID.match(export):
        raise InvalidArgument(f"{export!r} is not an export id (format-16 hex digits)")
    return f"{EXPORTS_DIR}/{export}/{snapshot_id}.json"


# ----------------------------------------------------------------------- expiry


@dataclass(frozen=True, slots=True)
class ExpiredRange:
    """Versions ``first..last`` (inclusive) of one branch log, expired together."""

    branch: str  # the branch id whose own log holds the versions
    first: int
    last: int
    expired_at: datetime
    author: str
    policy: str

    def to_json(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "first": self.first,
            "last": self.last,
            "expired_at": format_time(self.expired_at),
            "author": self.author,
            "policy": self.policy,
        }

    @staticmethod
    def from_json(j: Any) -> ExpiredRange:
        r = ExpiredRange(
            branch=str(j["branch"]),
            first=int(j["first"]),
            last=int(j["last"]),
            expired_at=parse_time(j["expired_at"]),
            author=str(j["author"]),
            policy=str(j["policy"]),
        )
        if not 0 <= r.first <= r.last:
            raise ValueError(f"invalid range {r.first}..{r.last}")
        return r


@dataclass(frozen=True)
class Expiry:
    """The expired versions of a dataset, as its newest expiry record lists them."""

    sequence: int | None  # None: nothing was ever expired
    ranges: tuple[ExpiredRange, ...] = ()
    _by_branch: dict[str, list[ExpiredRange]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for r in sorted(self.ranges, key=lambda r: (r.branch, r.first)):
            self._by_branch.setdefault(r.branch, []).append(r)

    def find(self, branch_id: str, version: int) -> ExpiredRange | None:
        """The range expiring ``version`` of branch log ``branch_id``, if any."""
        rs = self._by_branch.get(branch_id)
        if not rs:
            return None
        i = bisect.bisect_right([r.first for r in rs], version) - 1
        return rs[i] if i >= 0 and rs[i].last >= version else None

    def next_readable(self, branch_id: str, version: int) -> int:
        """The smallest version >= ``version`` of ``branch_id``'s log not expired."""
        v = version
        for r in self._by_branch.get(branch_id, ()):
            if r.first <= v <= r.last:
                v = r.last + 1
        return v

    def expired_versions(self, branch_id: str) -> Iterable[int]:
        for r in self._by_branch.get(branch_id, ()):
            yield from range(r.first, r.last + 1)

    def effective(self, before: datetime) -> Expiry:
        """Only the ranges expired at or before ``before`` (what vacuum may act on)."""
        return Expiry(self.sequence, tuple(r for r in self.ranges if r.expired_at <= before))

    def with_ranges(self, new: Sequence[ExpiredRange]) -> Expiry:
        """This expiry plus ``new`` (ranges must not overlap expired versions)."""
        return Expiry(self.sequence, (*self.ranges, *new))


_LOCK = threading.Lock()
#: storage uri -> the newest expiry seen (validated by existence probes on each use).
_SEEN: dict[str, Expiry] = {}


def _read_record(storage: Storage, seq: int) -> Expiry:
    rel = expiry_path(seq)
    path = storage.full_path(rel)
    try:
        j = json.loads(storage.read_bytes(rel))
        if j.get("sequence") != seq:
            raise ValueError(f"sequence {j.get('sequence')!r} in file {seq}")
        ranges = tuple(ExpiredRange.from_json(r) for r in j["expired"])
    except FileNotFoundError as exc:
        raise CorruptMetadata(
            f"expiry record {path} is missing although a later one exists; it was deleted "
            "outside lakever: restore it from a backup",
            path=path,
        ) from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptMetadata(
            f"expiry record {path} is truncated or malformed ({exc}); it was modified "
            "outside lakever: restore it from a backup",
            path=path,
        ) from exc
    return Expiry(seq, ranges)


def read_expiry(storage: Storage, *, fresh: bool = False) -> Expiry:
    """The newest expiry record of a dataset (an empty `Expiry` when none exists).

    A dataset that never expired anything costs one existence check; otherwise two
    checks when the newest record was seen before in this process, else the hint,
    a short forward probe and one read. ``fresh``: read it from storage even if seen
    (verification).
    """

    def exists(seq: int) -> bool:
        return storage.exists(expiry_path(seq))

    with _LOCK:
        seen = None if fresh else _SEEN.get(storage.uri)
    if seen is not None:
        if seen.sequence is None and not exists(0):
            return seen
        if seen.sequence is not None and not exists(seen.sequence + 1) and exists(seen.sequence):
            return seen
    try:
        hint: int | None = int(storage.read_bytes(_HINT).decode().strip())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        hint = None
    if hint is not None and hint >= 0 and exists(hint):
        expiry = _read_record(storage, newest_number(exists, hint))
    elif exists(0):
        expiry = _read_record(storage, newest_number(exists, 0))
    else:
        expiry = Expiry(None)
    with _LOCK:
        _SEEN[storage.uri] = expiry
    return expiry


def write_expiry(
    storage: Storage, expiry: Expiry, *, created: datetime, author: str, policy: dict[str, Any]
) -> bool:
    """Publish ``expiry`` (cumulative) as the record after ``expiry.sequence``.

    Returns False when another expiry took that number first (re-read and retry).
    """
    seq = 0 if expiry.sequence is None else expiry.sequence + 1
    record = {
        "sequence": seq,
        "created": format_time(created),
        "author": author,
        "policy": policy,
        "expired": [r.to_json() for r in expiry.ranges],
    }
    storage.flush()
    if not storage.publish(expiry_path(seq), canonical_json(record)):
        return False
    with contextlib.suppress(OSError):  # advisory
        storage.write_hint(_HINT, f"{seq:020d}\n".encode())
    with _LOCK:
        _SEEN[storage.uri] = Expiry(seq, expiry.ranges)
    return True


def expired_error(
    storage: Storage, r: ExpiredRange, version: int, branch: str, what: str
) -> VersionExpired:
    nxt = read_expiry(storage).next_readable(r.branch, version)
    when = format_time(r.expired_at)
    return VersionExpired(
        f"{what} of branch {branch!r} in {storage.uri} was expired at {when} by {r.author} "
        f"(policy: {r.policy}); its data may already be deleted by vacuum. Versions from "
        f"{nxt} on are readable; tags, branch heads and retained pins are never expired, so "
        "tag a version (or ds.retain()) before expiring to keep it",
        version=version,
        branch=branch,
        expired_at=r.expired_at,
        expired_by=r.author,
        policy=r.policy,
        next_readable=nxt,
    )


# --------------------------------------------------------------- retained pins


@dataclass(frozen=True)
class Retained:
    """A snapshot kept by request: never expired while this record exists."""

    snapshot_id: str
    branch_id: str
    version: int
    pin: str
    reason: str
    created: datetime
    author: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id,
            "branch": self.branch_id,
            "version": self.version,
            "pin": self.pin,
            "reason": self.reason,
            "created": format_time(self.created),
            "author": self.author,
        }

    @staticmethod
    def from_json(j: Any, path: str, what: str = "retained pin") -> Retained:
        """A retained pin (or export hold) record; the error names ``what`` and ``path``."""
        try:
            r = Retained(
                snapshot_id=str(j["snapshot_id"]),
                branch_id=str(j["branch"]),
                version=int(j["version"]),
                pin=str(j["pin"]),
                reason=str(j["reason"]),
                created=parse_time(j["created"]),
                author=str(j["author"]),
            )
            # Named by its snapshot id; a branch id and a version a log can hold.
            if not (
                path.rsplit("/", 1)[-1] == f"{r.snapshot_id}.json"
                and LOG_ID.fullmatch(r.branch_id)
                and 0 <= r.version < MAX_COUNT
            ):
                raise ValueError(f"{r.snapshot_id!r}, {r.branch_id!r}, {r.version!r}")
            return r
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptMetadata(f"{what} {path} is malformed ({exc!r})", path=path) from exc


def load_retained(storage: Storage, rel: str, what: str = "retained pin") -> Retained | None:
    try:
        data = storage.read_bytes(rel)
    except FileNotFoundError:
        return None
    path = storage.full_path(rel)
    try:
        j = json.loads(data)
    except ValueError as exc:
        raise CorruptMetadata(f"{what} {path} is not JSON ({exc})", path=path) from exc
    return Retained.from_json(j, path, what)


def list_retained(storage: Storage) -> list[Retained]:
    """Every retained snapshot, oldest request first."""
    out = []
    for name in storage.list(RETAINED_DIR):
        if name.endswith(".json"):
            r = load_retained(storage, f"{RETAINED_DIR}/{name}")
            if r is not None:
                out.append(r)
    return sorted(out, key=lambda r: (r.created, r.snapshot_id))


def list_exported(storage: Storage) -> list[Retained]:
    """Every snapshot an export holds (``pin`` is the export id), oldest first. Vacuum
    and expiry keep them like retained snapshots until the export is dropped."""
    out = []
    for f in storage.walk(EXPORTS_DIR):
        if f.path.endswith(".json"):
            r = load_retained(storage, f.path, "export hold")
            if r is not None:
                out.append(r)
    return sorted(out, key=lambda r: (r.created, r.snapshot_id))


def held_by_export(storage: Storage, snapshot_id: str) -> bool:
    """Whether some export holds the snapshot (one existence check per export)."""
    return any(
        storage.exists(export_path(e, snapshot_id))
        for e in storage.list(EXPORTS_DIR)
        if _EXPORT_ID.match(e)
    )
