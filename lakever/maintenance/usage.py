"""Storage accounting: where a dataset's bytes are, and what vacuum could give back.

`storage_report` reuses vacuum's survey (`lakever.maintenance.reach`) and sorts every
collectable file into exactly one category, so the categories add up to the total:

* ``heads``: referenced by a live branch head (what readers of the latest data need);
* ``tags``: by a tag or a retained pin, and no head;
* ``history``: by retained older versions (or the merge base of two branches) only;
* ``expiring``: only by versions expired less than ``grace`` ago;
* ``reclaimable``: vacuum (with the same grace) would delete it now;
* ``recent``: referenced by nothing yet, younger than ``grace`` (a commit in flight).

``exclusive`` says, for each root, the bytes no other root references: what deleting
that tag or branch (then expiring and vacuuming) could free. Log entries, refs,
schemas and contracts are counted apart (``metadata``): vacuum never deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lakever.maintenance.reach import BASE, HEAD, HISTORY, RETAINED, TAG, survey
from lakever.maintenance.vacuum import Usage
from lakever.storage import Storage

__all__ = ["CATEGORIES", "StorageReport", "storage_report"]

CATEGORIES = ("heads", "tags", "history", "expiring", "reclaimable", "recent")
MiB = 1 << 20
#: Upper bounds of the fragment size histogram's buckets (the last is open).
BUCKETS = (1 * MiB, 8 * MiB, 32 * MiB, 128 * MiB, 512 * MiB)


def _bucket_name(i: int) -> str:
    lo = 0 if i == 0 else BUCKETS[i - 1] // MiB
    if i == len(BUCKETS):
        return f">= {lo} MiB"
    return f"{lo}-{BUCKETS[i] // MiB} MiB" if lo else f"< {BUCKETS[i] // MiB} MiB"


@dataclass(frozen=True)
class StorageReport:
    """Where the bytes of a dataset are (see the module docstring)."""

    uri: str
    grace: timedelta
    #: Category -> files and bytes; the categories partition the collectable files.
    categories: dict[str, Usage]
    #: Root ("branch:main", "tag:v1", "retained:<id>") -> bytes only it references.
    exclusive: dict[str, Usage]
    #: Log entries, refs, schemas, contracts, expiry records: history, never vacuumed.
    metadata: Usage
    #: Fragments of the live branch heads (distinct): size bucket -> count and bytes.
    histogram: dict[str, Usage] = field(default_factory=dict)
    snapshots: int = 0

    @property
    def total(self) -> Usage:
        files = sum(u.files for u in self.categories.values()) + self.metadata.files
        size = sum(u.bytes for u in self.categories.values()) + self.metadata.bytes
        return Usage(files, size)

    @property
    def fragments(self) -> int:
        """Fragments the live branch heads reference."""
        return sum(u.files for u in self.histogram.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "grace_seconds": self.grace.total_seconds(),
            "total": self.total.to_dict(),
            "categories": {k: v.to_dict() for k, v in self.categories.items()},
            "exclusive": {k: v.to_dict() for k, v in self.exclusive.items()},
            "metadata": self.metadata.to_dict(),
            "fragments": self.fragments,
            "histogram": {k: v.to_dict() for k, v in self.histogram.items()},
            "snapshots": self.snapshots,
        }


def _category(labels: set[str]) -> str:
    if any(n.startswith(HEAD) for n in labels):
        return "heads"
    if any(n.startswith((TAG, RETAINED)) for n in labels):
        return "tags"
    return "history"


def storage_report(
    storage: Storage, *, grace: timedelta, now: datetime | None = None
) -> StorageReport:
    """Account for every byte of the dataset (see the module docstring)."""
    s = survey(storage, grace=grace, now=now or datetime.now(UTC))
    cats = dict.fromkeys(CATEGORIES, Usage())
    exclusive: dict[str, Usage] = {}
    for path, f in s.files.items():
        labels = s.held.get(path)
        if labels is not None:
            cat = _category(labels)
            named = [n for n in labels if n != HISTORY and not n.startswith(BASE)]
            if len(named) == 1:
                exclusive[named[0]] = exclusive.get(named[0], Usage()).plus(f.size)
        elif path in s.expiring:
            cat = "expiring"
        elif s.reason(path) is not None:
            cat = "reclaimable"
        else:
            cat = "recent"
        cats[cat] = cats[cat].plus(f.size)
    histogram = {_bucket_name(i): Usage() for i in range(len(BUCKETS) + 1)}
    for e in s.head_fragments.values():
        i = next((i for i, b in enumerate(BUCKETS) if e.size_bytes < b), len(BUCKETS))
        name = _bucket_name(i)
        histogram[name] = histogram[name].plus(e.size_bytes)
    metadata = Usage(s.metadata_files, s.metadata_bytes)
    return StorageReport(
        storage.uri,
        grace,
        cats,
        dict(sorted(exclusive.items())),
        metadata,
        histogram,
        s.snapshots,
    )
