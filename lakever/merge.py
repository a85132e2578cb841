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

from lakever.format import ContractRef, FragmentEntry, Snapshot

__all__ = ["MergePlan", "field_id_collisions", "merge_base", "plan_merge"]

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
    """The outcome of planning a merge: the result's state, or the conflicts."""

    kind: Literal["up-to-date", "fast-forward", "three-way", "ours", "theirs"]
    #: The fragments of the result, in read order.
    fragments: list[FragmentEntry] = field(default_factory=list)
    #: The result's schema (JSON) and last field id.
    schema: dict[str, Any] | None = None
    last_field_id: int = 0
    #: The result's contract, partition spec and default sort.
    contract: ContractRef | None = None
    partitioning: tuple[dict[str, Any], ...] = ()
    sort_by: tuple[dict[str, Any], ...] = ()
    #: Three-way only: theirs' additions, removals, and theirs' entries for fragments
    #: only theirs deleted rows from (new deletion vectors).
    added: list[FragmentEntry] = field(default_factory=list)
    removed: list[FragmentEntry] = field(default_factory=list)
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


_SETTINGS = ("contract", "partitioning", "sort_by")


def _show_setting(value: Any) -> str:
    if value is None or value == ():
        return "none"
    if isinstance(value, ContractRef):
        return f"contract {value.id[:12]}"
    return "[" + ", ".join(_show_item(v) for v in value) + "]"


def _show_item(item: Any) -> str:
    """A partition or sort field as a user writes it: ``status``, ``day(ts)``, ``id DESC``."""
    if not isinstance(item, dict):
        return repr(item)
    shown = str(item.get("name") or f"field id {item.get('field_id')}")
    if item.get("transform") not in (None, "identity"):
        shown = f"{item['transform']}({shown})"
    return f"{shown} DESC" if item.get("descending") else shown


def _pick_settings(
    base: Snapshot, ours: Snapshot, theirs: Snapshot
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Each setting of a three-way result, from the side that changed it.

    A setting only theirs changed is theirs'; one ours changed (or both, to the
    same value) is ours'; one both changed to different values is a conflict.
    """
    picked: dict[str, Any] = {}
    conflicts = []
    for name in _SETTINGS:
        b, o, t = (getattr(s, name) for s in (base, ours, theirs))
        if o == b:
            picked[name] = t
        elif t in (b, o):
            picked[name] = o
        else:
            picked[name] = o
            conflicts.append(
                {
                    "kind": "setting",
                    "item": name,
                    "ours": f"changed to {_show_setting(o)}",
                    "theirs": f"changed to {_show_setting(t)}",
                }
            )
    return picked, conflicts


def _side(kind: Literal["fast-forward", "ours", "theirs"], snap: Snapshot, **kw: Any) -> MergePlan:
    return MergePlan(
        kind=kind,
        schema=snap.schema,
        contract=snap.contract,
        partitioning=snap.partitioning,
        sort_by=snap.sort_by,
        **kw,
    )


def plan_merge(
    base: Snapshot,
    ours: Snapshot,
    theirs: Snapshot,
    *,
    base_fragments: Sequence[FragmentEntry],
    ours_fragments: Sequence[FragmentEntry],
    theirs_fragments: Sequence[FragmentEntry],
    strategy: MergeStrategy | None,
    known_conflicts: Sequence[dict[str, str]] = (),
) -> MergePlan:
    """Plan a three-way merge of ``theirs`` into ``ours`` against their common ``base``.

    A fragment is identified by its data file; a side *changed* a fragment of the
    base if it removed it or gave it another deletion vector (deleted rows from it).
    Fragments added on either side are kept; a fragment changed on one side only
    takes that side's state (removed, or its deletion vector); a fragment changed
    on both sides, schema changes on both sides that disagree, or a setting
    (contract, partitioning, sort) both sides changed differently, is a conflict.
    The schema and each setting of the result come from the side that changed
    them. ``known_conflicts`` are conflicts found by the caller (e.g. field ids both
    sides assigned). With a ``strategy``, a conflicting merge takes that side's
    snapshot as the result.
    """
    last_id = max(ours.last_field_id, theirs.last_field_id)
    if theirs.snapshot_id == base.snapshot_id:
        return MergePlan(kind="up-to-date")
    if ours.snapshot_id == base.snapshot_id:
        return _side(
            "fast-forward", theirs, fragments=list(theirs_fragments), last_field_id=last_id
        )
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
    settings, setting_conflicts = _pick_settings(base, ours, theirs)
    conflicts += setting_conflicts
    conflicts += known_conflicts
    if conflicts:
        if strategy is None:
            return MergePlan(kind="three-way", conflicts=conflicts)
        side = ours if strategy == "ours" else theirs
        chosen = ours_fragments if strategy == "ours" else theirs_fragments
        return _side(
            strategy, side, fragments=list(chosen), last_field_id=last_id, conflicts=conflicts
        )
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
        last_field_id=last_id,
        added=added,
        removed=[o[p] for p in sorted(removed_theirs) if p in o],
        replaced=[replaced[p] for p in sorted(replaced)],
        **settings,
    )


def _did(side: dict[str, FragmentEntry], path: str) -> str:
    return "removed" if path not in side else "deleted rows"


# ------------------------------------------------------------- field id collisions


def _field_ids(schema: dict[str, Any]) -> dict[int, str]:
    """Every field id of a schema (nested ones included) -> its dotted column path."""
    out: dict[int, str] = {}

    def visit(f: dict[str, Any], prefix: str) -> None:
        path = f"{prefix}{f['name']}"
        out[int(f["id"])] = path
        t = f["type"]
        if isinstance(t, dict):
            for child in (*t.get("fields", ()), t.get("element"), t.get("key"), t.get("value")):
                if isinstance(child, dict):
                    visit(child, f"{path}.")

    for f in schema.get("fields", []):
        visit(f, "")
    return out


def _introductions(
    head: Snapshot, floor: int, parents: Callable[[Snapshot], Iterator[Snapshot]]
) -> dict[int, tuple[Snapshot, str]]:
    """Field ids above ``floor`` in the history of ``head``: id -> (the commit whose schema
    first had it, the column it named there).

    ``last_field_id`` never decreases from a parent to a child, so the walk stops at
    commits whose ``last_field_id`` is at most ``floor``: neither they nor their
    ancestors assigned an id above it.
    """
    out: dict[int, tuple[Snapshot, str]] = {}
    seen: set[str] = set()
    todo = [head]
    while todo:
        snap = todo.pop()
        if snap.snapshot_id in seen or snap.last_field_id <= floor:
            continue
        seen.add(snap.snapshot_id)
        before = list(parents(snap))
        had = {fid for p in before for fid in _field_ids(p.schema)}
        for fid, column in _field_ids(snap.schema).items():
            if fid > floor and fid not in had:
                out[fid] = (snap, column)
        todo.extend(before)
    return out


def field_id_collisions(
    base: Snapshot,
    ours: Snapshot,
    theirs: Snapshot,
    parents: Callable[[Snapshot], Iterator[Snapshot]],
) -> list[dict[str, str]]:
    """Field ids both sides assigned, each to its own column, after their common ancestor.

    lakever allocates field ids dataset-wide (`lakever._fieldids`), so this finds
    only what writers before that did: main added ``x`` as id 3 and dropped it, a
    branch added ``y`` as id 3 too. Merging would read main's old ``x`` values as
    ``y``, so such a merge is a conflict. An id both sides got from the same commit
    (a third branch merged into both) is one column, not a collision. Cost: the
    commits of each side since it first assigned an id after the common ancestor,
    and nothing when one side assigned none.
    """
    floor = base.last_field_id
    if ours.last_field_id <= floor or theirs.last_field_id <= floor:
        return []
    mine, yours = _introductions(ours, floor, parents), _introductions(theirs, floor, parents)
    out = []
    for fid in sorted(mine.keys() & yours.keys()):
        (o, o_col), (t, t_col) = mine[fid], yours[fid]
        if o.snapshot_id == t.snapshot_id:
            continue
        out.append(
            {
                "kind": "field id",
                "item": str(fid),
                "ours": f"assigned it to column {o_col!r} in version {o.version}",
                "theirs": f"assigned it to column {t_col!r} in version {t.version}",
            }
        )
    return out
