"""Vacuum: delete the files no retained snapshot references, decided by reachability.

`vacuum` surveys the dataset (`lakever.maintenance.reach`) and deletes what it finds
collectable: files referenced only by snapshots expired more than ``grace`` ago,
orphans of crashed or failed commits, and leftovers of interrupted writes, both
older than ``grace``. A dry run (the default) deletes nothing and reports the same
list, with the bytes, and which refs keep what alive.

``grace`` (default 7 days, like Delta Lake's VACUUM) is how long a commit in flight
or a reader of a just-expired version is given; shorter than an hour is refused
unless ``allow_short_grace`` says the caller knows no such process runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lakever.errors import InvalidArgument
from lakever.maintenance.reach import survey
from lakever.storage import Storage

__all__ = ["DEFAULT_GRACE", "MIN_GRACE", "VacuumFile", "VacuumReport", "check_grace", "vacuum"]

DEFAULT_GRACE = timedelta(days=7)
MIN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class VacuumFile:
    """A file vacuum deletes (or would): where, how big, why, and when it was written."""

    path: str
    size: int
    #: "expired" (only expired snapshots referenced it), "orphan" (no snapshot did: a
    #: failed or crashed commit) or "temporary" (an interrupted write's leftover).
    reason: str
    modified: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "reason": self.reason,
            "modified": self.modified.isoformat(),
        }


@dataclass(frozen=True)
class Usage:
    """A number of files and their bytes."""

    files: int = 0
    bytes: int = 0

    def plus(self, size: int) -> Usage:
        return Usage(self.files + 1, self.bytes + size)

    def to_dict(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}


@dataclass(frozen=True)
class VacuumReport:
    """What `lakever.Dataset.vacuum` deleted (or would delete, with ``dry_run``)."""

    uri: str
    dry_run: bool
    grace: timedelta
    #: The files deleted (dry run: that would be), by path.
    files: tuple[VacuumFile, ...]
    #: Which roots keep what alive: "branch:main", "tag:v1", "retained:<id>",
    #: "base:a+b" (a merge base) and "history" (retained versions no root names) ->
    #: the files and bytes they reference (a file shared by two counts for both).
    kept: dict[str, Usage] = field(default_factory=dict)
    #: Files referenced only by versions expired less than ``grace`` ago: deletable later.
    expiring: Usage = Usage()
    #: Unreferenced files younger than ``grace``: kept (a commit may be in flight).
    recent: Usage = Usage()
    #: Retained snapshots surveyed.
    snapshots: int = 0

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_reason(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for f in self.files:
            out[f.reason] = out.get(f.reason, Usage()).plus(f.size)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "dry_run": self.dry_run,
            "grace_seconds": self.grace.total_seconds(),
            "files": [f.to_dict() for f in self.files],
            "bytes": self.bytes,
            "by_reason": {k: v.to_dict() for k, v in self.by_reason().items()},
            "kept": {k: v.to_dict() for k, v in self.kept.items()},
            "expiring": self.expiring.to_dict(),
            "recent": self.recent.to_dict(),
            "snapshots": self.snapshots,
        }


def check_grace(grace: Any, *, allow_short_grace: bool) -> timedelta:
    """``grace`` as a timedelta, refusing values below `MIN_GRACE` unless allowed."""
    if not isinstance(grace, timedelta):
        raise InvalidArgument(f"grace must be a timedelta, got {grace!r}")
    if grace < timedelta(0):
        raise InvalidArgument(f"grace must not be negative, got {grace}")
    if grace < MIN_GRACE and not allow_short_grace:
        raise InvalidArgument(
            f"grace {grace} is shorter than {MIN_GRACE}: a commit still in flight, or a reader "
            "of a version expired moments ago, could lose files. Pass allow_short_grace=True "
            "(--allow-short-grace) only when no other process uses the dataset"
        )
    return grace


def vacuum(
    storage: Storage,
    *,
    dry_run: bool,
    grace: timedelta,
    now: datetime | None = None,
) -> VacuumReport:
    """Delete (``dry_run``: list) every collectable file (see the module docstring).

    Raises:
        CorruptMetadata: a retained snapshot is damaged; nothing is deleted
            (run `lakever verify --all-refs` to see what).
    """
    moment = now or datetime.now(UTC)
    s = survey(storage, grace=grace, now=moment)
    doomed: list[VacuumFile] = []
    expiring, recent = Usage(), Usage()
    for path, f in sorted(s.files.items()):
        why = s.reason(path)
        if why is not None:
            when = datetime.fromtimestamp(f.modified, UTC)
            doomed.append(VacuumFile(path, f.size, why, when))
        elif path in s.expiring:
            expiring = expiring.plus(f.size)
        elif path not in s.held:
            recent = recent.plus(f.size)
    kept: dict[str, Usage] = {}
    for path, labels in s.held.items():
        stored = s.files.get(path)
        if stored is not None:
            for name in labels:
                kept[name] = kept.get(name, Usage()).plus(stored.size)
    if not dry_run:
        # Fragments before the manifests naming them: a vacuum interrupted and run again
        # still reads those manifests, so it reports the rest as "expired", not "orphan".
        order = sorted(doomed, key=lambda d: (d.path.startswith("_lakever/"), d.path))
        storage.delete_many([d.path for d in order])
    return VacuumReport(
        storage.uri,
        dry_run,
        grace,
        tuple(doomed),
        dict(sorted(kept.items())),
        expiring,
        recent,
        s.snapshots,
    )
