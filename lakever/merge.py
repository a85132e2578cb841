"""Merging one line of history into another, at fragment level.

Pure planning: given the common ancestor, the target ("ours") and the source
("theirs") snapshots and their fragment lists, decide the result or report the
conflicts. `Dataset.merge` commits the plan through the log like any commit.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lakever.format import FragmentEntry, Snapshot

__all__ = ["MergePlan", "merge_base", "plan_merge"]

MergeStrategy = Literal["ours", "theirs"]


def merge_base(
    ours: Snapshot, theirs: Snapshot, parents: Callable[[Snapshot], Iterator[Snapshot]]
) -> Snapshot | None:
    """Return the most recent common ancestor of two snapshots (None if unrelated).

    Walks both histories newest first (by commit time), marking which side reached
    each snapshot; the first snapshot reached from both sides is the answer. Cost is
    proportional to the commits made on either side since the common ancestor.
    """
    both = 3
    flags: dict[str, int] = {ours.snapshot_id: 1}
    flags[theirs.snapshot_id] = flags.get(theirs.snapshot_id, 0) | 2
    seen: dict[str, Snapshot] = {ours.snapshot_id: ours, theirs.snapshot_id: theirs}
    heap = [(-s.timestamp.timestamp(), sid) for sid, s in seen.items()]
    heapq.heapify(heap)
    popped: set[str] = set()
    while heap:
        _, sid = heapq.heappop(heap)
        if sid in popped:
            continue
        popped.add(sid)
        if flags[sid] == both:
            return seen[sid]
        for parent in parents(seen[sid]):
            pid = parent.snapshot_id
            flags[pid] = flags.get(pid, 0) | flags[sid]
            if pid in popped:
                # Only with clocks skewed across writers: reached again after expansion.
                if flags[pid] == both:
                    return seen[pid]
                continue
            seen.setdefault(pid, parent)
            heapq.heappush(heap, (-parent.timestamp.timestamp(), pid))
    return None


@dataclass(frozen=True)
class MergePlan:
    """The outcome of planning a merge."""

    kind: Literal["up-to-date", "fast-forward", "three-way", "ours", "theirs"]
    #: The fragments of the result, in read order (three-way only).
    fragments: list[FragmentEntry] = field(default_factory=list)
    #: The result's schema (JSON) and last field id.
    schema: dict[str, Any] | None = None
    last_field_id: int = 0
    added: list[FragmentEntry] = field(default_factory=list)
    removed: list[FragmentEntry] = field(default_factory=list)
    #: Theirs' entries for fragments only theirs deleted rows from (new deletion vectors).
    replaced: list[FragmentEntry] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)


def _schema_columns(schema: dict[str, Any]) -> dict[int, Any]:
    return {f["id"]: f for f in schema.get("fields", [])}


def _schema_conflicts(base: Snapshot, ours: Snapshot, theirs: Snapshot) -> list[dict[str, str]]:
    if ours.schema == base.schema or theirs.schema == base.schema or ours.schema == theirs.schema:
        return []
    b, o, t = (_schema_columns(s.schema) for s in (base, ours, theirs))
    out = []
    for fid in sorted(set(b) | set(o) | set(t)):
        if o.get(fid) != b.get(fid) and t.get(fid) != b.get(fid) and o.get(fid) != t.get(fid):
            name = (o.get(fid) or t.get(fid) or b.get(fid) or {}).get("name", str(fid))
            out.append(
                {
                    "kind": "schema",
                    "item": f"column {name!r} (field id {fid})",
                    "ours": _describe(b.get(fid), o.get(fid)),
                    "theirs": _describe(b.get(fid), t.get(fid)),
                }
            )
    if not out:
        out.append({"kind": "schema", "item": "schema", "ours": "changed", "theirs": "changed"})
    return out


def _describe(before: Any, after: Any) -> str:
    if before is None:
        return f"added {after['name']!r}"
    if after is None:
        return f"dropped {before['name']!r}"
    return f"changed to {after['name']!r} {after['type']}"


def plan_merge(
    base: Snapshot,
    ours: Snapshot,
    theirs: Snapshot,
    *,
    base_fragments: Sequence[FragmentEntry],
    ours_fragments: Sequence[FragmentEntry],
    theirs_fragments: Sequence[FragmentEntry],
    strategy: MergeStrategy | None,
) -> MergePlan:
    """Plan a three-way merge of ``theirs`` into ``ours`` against their common ``base``.

    A fragment is identified by its data file; a side *changed* a fragment of the
    base if it removed it or gave it another deletion vector (deleted rows from it).
    Fragments added on either side are kept; a fragment changed on one side only
    takes that side's state (removed, or its deletion vector); a fragment changed
    on both sides, or schema changes on both sides that disagree, is a conflict.
    With a ``strategy``, a conflicting merge takes that side's snapshot as the result.
    """
    if theirs.snapshot_id == base.snapshot_id:
        return MergePlan(kind="up-to-date")
    if ours.snapshot_id == base.snapshot_id:
        return MergePlan(kind="fast-forward")
    b = {f.path: f for f in base_fragments}
    o = {f.path: f for f in ours_fragments}
    t = {f.path: f for f in theirs_fragments}
    changed_ours = {p for p, f in b.items() if p not in o or o[p].deletion != f.deletion}
    changed_theirs = {p for p, f in b.items() if p not in t or t[p].deletion != f.deletion}
    conflicts = [
        {"kind": "fragment", "item": path, "ours": _did(o, path), "theirs": _did(t, path)}
        for path in sorted(changed_ours & changed_theirs)
    ]
    conflicts += _schema_conflicts(base, ours, theirs)
    if conflicts:
        if strategy is None:
            return MergePlan(kind="three-way", conflicts=conflicts)
        return MergePlan(kind=strategy, conflicts=conflicts)
    removed_theirs = {p for p in changed_theirs if p not in t}
    replaced = {p: t[p] for p in changed_theirs if p in t}
    result = [replaced.get(f.path, f) for f in ours_fragments if f.path not in removed_theirs]
    added = [f for f in theirs_fragments if f.path not in b and f.path not in o]
    result += added
    schema_from = theirs if ours.schema == base.schema else ours
    return MergePlan(
        kind="three-way",
        fragments=result,
        schema=schema_from.schema,
        last_field_id=max(ours.last_field_id, theirs.last_field_id),
        added=added,
        removed=[o[p] for p in sorted(removed_theirs) if p in o],
        replaced=[replaced[p] for p in sorted(replaced)],
    )


def _did(side: dict[str, FragmentEntry], path: str) -> str:
    return "removed" if path not in side else "deleted rows"
