"""Expiry: declare old versions unreadable, so vacuum may reclaim what only they hold.

`expire` applies a policy (``older_than``, ``keep_last``) to every branch log of the
dataset, deleted branches included, and publishes one cumulative expiry record
(`lakever.retention`). It never expires a *root*: a live branch head, a tagged
snapshot, a retained pin, or the merge base of two live branch heads (so a later
merge between them still finds its common ancestor's files). Log entries are kept:
history still lists an expired commit, version numbers are never reused, and the
chain stays checkable; only reading its rows is refused (`VersionExpired`).

Expiry deletes nothing by itself. ``dry_run`` (the default) reports what would be
expired and writes nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lakever import refs
from lakever._merge_commit import _parents_fn
from lakever.errors import CommitConflict, CorruptMetadata, InvalidArgument
from lakever.format import LOG_DIR, Snapshot, format_time
from lakever.log import Line
from lakever.merge import merge_base
from lakever.retention import (
    ExpiredRange,
    Retained,
    export_path,
    list_exported,
    list_retained,
    read_expiry,
    retained_path,
    write_expiry,
)
from lakever.storage import Storage

__all__ = ["ExpireReport", "ExpiredVersions", "expire", "roots"]

#: Attempts when another expiry publishes its record first.
_ATTEMPTS = 8

Key = tuple[str, int]  # (branch id of the log holding the version, version)


@dataclass(frozen=True)
class ExpiredVersions:
    """Versions ``first..last`` of one branch's log, expired (or to be, in a dry run)."""

    branch: str  # the branch's name (its id once the name was deleted)
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def to_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "first": self.first, "last": self.last}


@dataclass(frozen=True)
class ExpireReport:
    """What `lakever.Dataset.expire` did (or would do, with ``dry_run``)."""

    uri: str
    dry_run: bool
    #: The policy in words, as recorded with the expired ranges.
    policy: str
    expired: tuple[ExpiredVersions, ...]
    #: Versions the policy selected that are kept because a root names them:
    #: "branch@version" -> the roots ("tag:v1", "branch:main", "retained:...", ...).
    kept: dict[str, list[str]] = field(default_factory=dict)
    #: The expiry record written (None: dry run, or nothing to expire).
    record: int | None = None

    @property
    def versions(self) -> int:
        """How many versions were (or would be) expired."""
        return sum(r.count for r in self.expired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "dry_run": self.dry_run,
            "policy": self.policy,
            "versions": self.versions,
            "expired": [r.to_dict() for r in self.expired],
            "kept": self.kept,
            "record": self.record,
        }


def roots(storage: Storage) -> dict[Key, list[str]]:
    """Every snapshot no maintenance may expire or delete, with what names it.

    Live branch heads (``branch:NAME``), tags (``tag:NAME``), retained pins
    (``retained:<id12>``), snapshots an export holds (``export:<export id>``) and the
    merge base of every two live branch heads (``base:A+B``). Keys are (branch id of
    the log holding the version, version).
    """
    out: dict[Key, list[str]] = {}
    heads: list[tuple[str, Snapshot]] = []
    for info in refs.list_branches(storage):
        head = refs.line_for(storage, info.id).head()
        if head is not None:
            heads.append((info.name, head))
            out.setdefault((head.branch_id, head.version), []).append(f"branch:{info.name}")
    for tag in refs.list_tags(storage):
        out.setdefault((tag.branch_id, tag.version), []).append(f"tag:{tag.name}")
    for r in list_retained(storage):
        check_held(storage, r, retained_path(r.snapshot_id))
        out.setdefault((r.branch_id, r.version), []).append(f"retained:{r.snapshot_id[:12]}")
    for r in list_exported(storage):
        check_held(storage, r, export_path(r.pin, r.snapshot_id))
        out.setdefault((r.branch_id, r.version), []).append(f"export:{r.pin}")
    parents = _parents_fn(storage)
    for (a, ha), (b, hb) in itertools.combinations(heads, 2):
        base = merge_base(ha, hb, parents)
        if base is not None and base.snapshot_id not in (ha.snapshot_id, hb.snapshot_id):
            out.setdefault((base.branch_id, base.version), []).append(f"base:{a}+{b}")
    return out


def check_held(storage: Storage, r: Retained, rel: str) -> None:
    """Raise `CorruptMetadata` unless the version a retained pin or export hold names
    holds its snapshot: a damaged record would keep another version and let expiry
    and vacuum remove the one it protects."""
    try:
        snap = refs.line_for(storage, r.branch_id).read(r.version)
    except CorruptMetadata:
        snap = None  # the branch's own damage is reported where it is read
    if snap is None or snap.snapshot_id != r.snapshot_id:
        path = storage.full_path(rel)
        raise CorruptMetadata(
            f"{path} holds snapshot {r.snapshot_id} at version {r.version} of branch "
            f"{r.branch_id}, which is not there: the record is damaged; restore it from a "
            "backup before expiring or vacuuming (it may protect another version)",
            path=path,
        )


def _cutoff(older_than: datetime | timedelta | None, now: datetime) -> datetime | None:
    if older_than is None:
        return None
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise InvalidArgument(f"older_than must not be negative, got {older_than}")
        return now - older_than
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None or older_than.utcoffset() is None:
            raise InvalidArgument(
                f"older_than {older_than.isoformat()} is naive; pass a timezone-aware datetime "
                "or a timedelta"
            )
        return older_than
    raise InvalidArgument(
        f"older_than must be a timezone-aware datetime or a timedelta, got {older_than!r}"
    )


def _policy(cutoff: datetime | None, keep_last: int | None) -> str:
    parts = []
    if cutoff is not None:
        parts.append(f"committed before {format_time(cutoff)}")
    if keep_last is not None:
        parts.append(f"beyond the last {keep_last} of each branch")
    return ", ".join(parts)


def _last_before(line: Line, first: int, last: int, cutoff: datetime) -> int:
    """The newest own version in ``first..last`` committed before ``cutoff`` (first-1: none).

    Timestamps strictly increase along a log, so a binary search: O(log n) reads.
    """
    lo, hi = first - 1, last  # invariant: lo is before the cutoff (or none), hi+1 is not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if line.must_read(mid).timestamp < cutoff:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _runs(versions: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in versions:
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def expire(
    storage: Storage,
    *,
    older_than: datetime | timedelta | None,
    keep_last: int | None,
    dry_run: bool,
    author: str,
    now: datetime | None = None,
) -> ExpireReport:
    """Expire the versions the policy selects on every branch log (see the module docstring).

    A version is expired when it was committed before ``older_than`` (a datetime, or a
    timedelta before now) *and* is not among the ``keep_last`` newest versions of its
    branch's own log (either may be None, not both), unless a root names it.

    Raises:
        InvalidArgument: no policy, or a value of the wrong type.
        BrokenHistory: a branch log is damaged (nothing is expired on a broken history).
        CommitConflict: other expiries kept publishing first (retry).
    """
    if older_than is None and keep_last is None:
        raise InvalidArgument(
            "expire needs a policy: older_than= (a datetime or timedelta) and/or keep_last= "
            "(versions to keep on each branch)"
        )
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
    ):
        raise InvalidArgument(f"keep_last must be an int >= 1, got {keep_last!r}")
    moment = now or datetime.now(UTC)
    cutoff = _cutoff(older_than, moment)
    policy = _policy(cutoff, keep_last)
    for _ in range(_ATTEMPTS):
        expiry = read_expiry(storage)  # before the roots: see lakever.retention
        held = roots(storage)
        new: list[tuple[str, int, int]] = []  # (branch id, first, last)
        shown: list[ExpiredVersions] = []
        kept: dict[str, list[str]] = {}
        for branch_id in sorted(storage.list(LOG_DIR)):
            line = refs.line_for(storage, branch_id)
            latest = line.latest_version()
            if latest is None or latest < line.first_own:
                continue
            hi = latest if keep_last is None else latest - keep_last
            if cutoff is not None and hi >= line.first_own:
                hi = _last_before(line, line.first_own, hi, cutoff)
            name = line.name or refs.branch_by_id(storage, branch_id).name
            chosen = []
            for v in range(line.first_own, hi + 1):
                if expiry.find(branch_id, v) is not None:
                    continue
                if (branch_id, v) in held:
                    kept[f"{name}@{v}"] = held[(branch_id, v)]
                    continue
                chosen.append(v)
            for first, last in _runs(chosen):
                new.append((branch_id, first, last))
                shown.append(ExpiredVersions(name, first, last))
        report = ExpireReport(storage.uri, dry_run, policy, tuple(shown), kept)
        if dry_run or not new:
            return report
        # Expired from the publish on, not from the start of this run: a reader that
        # opened one of these versions meanwhile gets the whole grace before vacuum acts.
        stamp = now or datetime.now(UTC)
        ranges = [ExpiredRange(b, first, last, stamp, author, policy) for b, first, last in new]
        done = write_expiry(
            storage,
            expiry.with_ranges(ranges),
            created=stamp,
            author=author,
            policy={
                "older_than": None if cutoff is None else format_time(cutoff),
                "keep_last": keep_last,
            },
        )
        if done:
            seq = 0 if expiry.sequence is None else expiry.sequence + 1
            return ExpireReport(storage.uri, False, policy, tuple(shown), kept, seq)
    raise CommitConflict(
        f"other expiries of {storage.uri} kept publishing first ({_ATTEMPTS} attempts); "
        "retry the expiry",
        winning_version=-1,
    )
