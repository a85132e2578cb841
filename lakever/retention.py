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

`check_readable` is what opening a version by number, time, snapshot id or pin calls:
an expired version raises `VersionExpired` naming when, by whom and why. Branch heads
and tags are never expired, so opening them checks nothing.

A ref made on a snapshot (a tag, a branch, a retained pin) is re-checked after it is
written (`guard_new_ref`): if an expiry landed meanwhile and expired its snapshot,
the ref is removed again and the call fails. Vacuum reads the expiry record *before*
the refs, so a ref either survives and is seen by vacuum, or its creation failed.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakever._fieldids import newest
from lakever.errors import CorruptMetadata, InvalidArgument, RefNotFound, VersionExpired
from lakever.format import META_DIR, Snapshot, canonical_json, format_time, parse_time
from lakever.storage import Storage

__all__ = [
    "EXPIRY_DIR",
    "RETAINED_DIR",
    "ExpiredRange",
    "Expiry",
    "Retained",
    "check_range",
    "check_readable",
    "guard_new_ref",
    "list_retained",
    "read_expiry",
    "release",
    "retain",
    "write_expiry",
]

EXPIRY_DIR = f"{META_DIR}/expiry"
RETAINED_DIR = f"{META_DIR}/refs/retained"
_HINT = f"{EXPIRY_DIR}/LATEST"


def expiry_path(seq: int) -> str:
    return f"{EXPIRY_DIR}/{seq:020d}.json"


def retained_path(snapshot_id: str) -> str:
    return f"{RETAINED_DIR}/{snapshot_id}.json"


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

    def overlapping(self, branch_id: str, first: int, last: int) -> ExpiredRange | None:
        """The first range expiring any version in ``first..last`` of ``branch_id``."""
        for r in self._by_branch.get(branch_id, ()):
            if r.first <= last and r.last >= first:
                return r
        return None

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

    def branches(self) -> list[str]:
        return sorted(self._by_branch)

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


def read_expiry(storage: Storage) -> Expiry:
    """The newest expiry record of a dataset (an empty `Expiry` when none exists).

    A dataset that never expired anything costs one existence check; otherwise two
    checks when the newest record was seen before in this process, else the hint,
    a short forward probe and one read.
    """

    def exists(seq: int) -> bool:
        return storage.exists(expiry_path(seq))

    with _LOCK:
        seen = _SEEN.get(storage.uri)
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
        expiry = _read_record(storage, newest(exists, hint))
    elif exists(0):
        expiry = _read_record(storage, newest(exists, 0))
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


def _expired_error(
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


def _branch_name(storage: Storage, branch_id: str) -> str:
    from lakever import refs  # refs imports retention for its guard

    try:
        return refs.branch_by_id(storage, branch_id).name
    except CorruptMetadata:
        return branch_id


def check_readable(storage: Storage, snap: Snapshot) -> None:
    """Raise `VersionExpired` if ``snap`` (reached by number, time, id or pin) was expired.

    A snapshot a ref names (a retained pin, a tag, a branch head) stays readable even
    when an expiry lists it: an expiry that read the roots just before the ref was
    made, and published just after the ref's `guard_new_ref` read the expiry, lists
    it. Vacuum keeps every file a root needs all the same, so the ref wins.
    """
    r = read_expiry(storage).find(snap.branch_id, snap.version)
    if r is not None and not _named_by_ref(storage, snap):
        name = _branch_name(storage, snap.branch_id)
        raise _expired_error(storage, r, snap.version, name, f"version {snap.version}")


def _named_by_ref(storage: Storage, snap: Snapshot) -> bool:
    """Whether a retained pin, a tag or a branch head names ``snap`` (the refs whose
    creation `guard_new_ref` checks); a few small reads, on the expired path only."""
    from lakever import refs

    if storage.exists(retained_path(snap.snapshot_id)):
        return True
    if any(t.snapshot_id == snap.snapshot_id for t in refs.list_tags(storage)):
        return True
    for info in refs.list_branches(storage):
        head = refs.line_for(storage, info.id).head()
        if head is not None and head.snapshot_id == snap.snapshot_id:
            return True
    return False


def check_range(storage: Storage, owners: Iterable[tuple[str, int]], what: str) -> None:
    """Raise `VersionExpired` if any (branch id, version) in ``owners`` was expired.

    ``what`` names the operation for the message (e.g. "the change feed since 3").
    """
    expiry = read_expiry(storage)
    if expiry.sequence is None:
        return
    for branch_id, version in owners:
        r = expiry.find(branch_id, version)
        if r is not None:
            name = _branch_name(storage, branch_id)
            raise _expired_error(storage, r, version, name, f"{what} crosses version {version}")


def guard_new_ref(storage: Storage, branch_id: str, version: int, undo: Callable[[], None]) -> None:
    """After a ref to version ``version`` of branch log ``branch_id`` was written: if an
    expiry meanwhile expired that version, run ``undo`` (remove the ref) and raise
    `VersionExpired`."""
    r = read_expiry(storage).find(branch_id, version)
    if r is None:
        return
    undo()
    name = _branch_name(storage, branch_id)
    raise _expired_error(storage, r, version, name, f"version {version}")


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


def _retained_from(j: Any, path: str) -> Retained:
    try:
        return Retained(
            snapshot_id=str(j["snapshot_id"]),
            branch_id=str(j["branch"]),
            version=int(j["version"]),
            pin=str(j["pin"]),
            reason=str(j["reason"]),
            created=parse_time(j["created"]),
            author=str(j["author"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptMetadata(f"retained pin {path} is malformed ({exc!r})", path=path) from exc


def _load_retained(storage: Storage, rel: str) -> Retained | None:
    try:
        data = storage.read_bytes(rel)
    except FileNotFoundError:
        return None
    path = storage.full_path(rel)
    try:
        j = json.loads(data)
    except ValueError as exc:
        raise CorruptMetadata(f"retained pin {path} is not JSON ({exc})", path=path) from exc
    return _retained_from(j, path)


def retain(storage: Storage, snap: Snapshot, *, pin: str, reason: str, author: str) -> Retained:
    """Keep ``snap`` through every expiry until `release` (idempotent: an existing
    record for the snapshot is returned as it is)."""
    from lakever import refs

    if not isinstance(reason, str):
        raise InvalidArgument(f"reason must be a string, got {reason!r}")
    check_readable(storage, snap)
    record = {
        "snapshot_id": snap.snapshot_id,
        "branch": snap.branch_id,
        "version": snap.version,
        "pin": pin,
        "reason": reason,
        "created": format_time(datetime.now(UTC)),
        "author": author,
    }
    rel = retained_path(snap.snapshot_id)
    storage.flush()
    if not storage.publish(rel, canonical_json(record)):
        existing = _load_retained(storage, rel)
        if existing is not None:
            return existing
    guard_new_ref(storage, snap.branch_id, snap.version, lambda: storage.delete(rel))
    refs.record_event(storage, "create", "retained", record)
    return _retained_from(record, storage.full_path(rel))


def release(storage: Storage, snapshot_id: str, *, author: str) -> Retained:
    """Stop retaining a snapshot (by full id); later expiries may expire it."""
    from lakever import refs

    found = [r for r in list_retained(storage) if r.snapshot_id.startswith(snapshot_id)]
    if len(snapshot_id) < 8 or len(found) != 1:
        held = [r.snapshot_id[:12] for r in list_retained(storage)]
        raise RefNotFound(
            f"no single retained snapshot matches {snapshot_id!r} (retained: {held}); give a "
            "pin or at least 8 hex digits of a retained snapshot id",
            name=snapshot_id,
        )
    r = found[0]
    storage.delete(retained_path(r.snapshot_id))
    refs.record_event(storage, "delete", "retained", {**r.to_dict(), "deleted_by": author})
    return r


def list_retained(storage: Storage) -> list[Retained]:
    """Every retained snapshot, oldest request first."""
    out = []
    for name in storage.list(RETAINED_DIR):
        if name.endswith(".json"):
            r = _load_retained(storage, f"{RETAINED_DIR}/{name}")
            if r is not None:
                out.append(r)
    return sorted(out, key=lambda r: (r.created, r.snapshot_id))
