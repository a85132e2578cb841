"""Compaction: merge small fragments and materialise deletion vectors, changing no row.

Planning is metadata only. In read order, the fragments a filter does not rule out
(all without ``where``) that are *small* (estimated live bytes below the target) or
carry a deletion vector are gathered into groups:

* a group holds fragments of one partition only (the exact partition record each
  fragment carries), and never more than about ``target_size`` live bytes;
* a fragment of the same partition that is not rewritten closes the open group, so
  the rows of a partition keep their order: a group's rows are read in read order
  (deletion vectors applied, projected by field id into the snapshot's current
  schema) and written as one new fragment that takes the place of the group's first
  fragment. In an unpartitioned table without a sort order, ``to_arrow()`` returns
  the same rows in the same order after compaction; in a partitioned one each
  partition's rows keep their order; with a declared sort order (``sort_by``) the
  rows of each new fragment are sorted by it (a stable sort);
* a group is rewritten when one of its fragments has a deletion vector (the deleted
  rows are dropped from the new file), or when it has at least ``min_fragments``
  fragments -- but a lone fragment (``min_fragments=1``) only when it was written
  under an older schema: rewriting it otherwise would make the same file again.

New files are written under the snapshot's current schema, so small or deleted-from
fragments written under an older schema are brought up to date on the way. Large
fragments without deletion vectors are left alone whatever schema they were written
under: rewriting them would cost a full copy and the reader projects them exactly.

The commit (operation ``"compact"``) lists its rewrites, like a row change, and
requires every rewritten fragment to be unchanged (`lakever.commit.FragmentsUnchanged`):
a concurrent append is rebased over (its fragments are kept), while a concurrent
delete, update or compaction of a fragment it rewrote makes it conflict; compaction
then plans again from the new head. So an acknowledged delete is never undone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lakever._writer import _check_message, _check_properties, default_author
from lakever.commit import Change, FragmentsUnchanged, Rewrite, RewriteFragments
from lakever.errors import CommitConflict, InvalidArgument
from lakever.format import DATA_DIR, FragmentEntry, Snapshot, Summary
from lakever.fragments import write_fragments
from lakever.manifest_list import ManifestFiles
from lakever.planner import bind, make_plan, prune_entries
from lakever.projection import conform
from lakever.reader import read_plan
from lakever.snapshot import SnapshotState

__all__ = ["DEFAULT_TARGET_SIZE", "compact", "live_bytes", "parse_size", "plan_groups"]

_log = logging.getLogger("lakever")

#: The size compaction aims for per new fragment (bytes on disk).
DEFAULT_TARGET_SIZE = 128 * 1024 * 1024
#: Times compaction plans again after losing to a concurrent row change.
MAX_REPLANS = 10

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from an int or a text such as ``"128M"``, ``"1.5GiB"``, ``"64k"`` (powers of 2)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"target_size must be a size in bytes, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        n = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    else:
        raise InvalidArgument(
            f"target_size must be bytes (an int) or a size such as '128M', got {value!r}"
        )
    if n < 1:
        raise InvalidArgument(f"target_size must be at least 1 byte, got {value!r}")
    return n


# ----------------------------------------------------------------- planning


@dataclass(slots=True)
class Group:
    """Fragments of one partition, consecutive in the partition's read order."""

    entries: list[FragmentEntry] = field(default_factory=list)
    live_bytes: float = 0.0

    @property
    def has_deletions(self) -> bool:
        return any(e.deletion is not None for e in self.entries)


def live_bytes(e: FragmentEntry) -> float:
    """A fragment's estimated bytes once its deleted rows are dropped."""
    return e.size_bytes * (e.live_rows / e.num_rows) if e.num_rows else 0.0


def _partition_key(e: FragmentEntry) -> str:
    return "" if e.partition is None else json.dumps(list(e.partition), sort_keys=True)


def plan_groups(
    state: SnapshotState, *, target_size: int, where: str | None, min_fragments: int
) -> list[Group]:
    """The groups of fragments compaction rewrites (empty: nothing to do)."""
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise InvalidArgument(f"where must be a non-empty SQL expression, got {where!r}")
    if isinstance(min_fragments, bool) or not isinstance(min_fragments, int) or min_fragments < 1:
        raise InvalidArgument(f"min_fragments must be an int >= 1, got {min_fragments!r}")
    chosen = None
    if where is not None:
        _, kept = prune_entries(state, bind(state, where, what="where"))
        chosen = {e.path for e in kept}
    open_: dict[str, Group] = {}
    closed: list[Group] = []

    def worth(g: Group) -> bool:
        if g.has_deletions:
            return True
        # A lone fragment is rewritten only to bring it to the current schema.
        lone = len(g.entries) == 1 and g.entries[0].schema_id == state.schema_id
        return len(g.entries) >= min_fragments and not lone

    def close(key: str) -> None:
        g = open_.pop(key, None)
        if g is not None and worth(g):
            closed.append(g)

    for e in state.entries:
        key = _partition_key(e)
        size = live_bytes(e)
        wanted = (chosen is None or e.path in chosen) and (
            e.deletion is not None or size < target_size
        )
        if not wanted:
            close(key)  # keep the partition's order: no group spans a kept fragment
            continue
        g = open_.get(key)
        if g is not None and g.entries and g.live_bytes + size > target_size:
            close(key)
            g = None
        if g is None:
            g = open_[key] = Group()
        g.entries.append(e)
        g.live_bytes += size
    for key in list(open_):
        close(key)
    # Rewrite in read order (the order of each group's first fragment).
    order = {e.path: i for i, e in enumerate(state.entries)}
    return sorted(closed, key=lambda g: order[g.entries[0].path])


# ----------------------------------------------------------------- rewriting


def _subdir(e: FragmentEntry) -> str:
    """The directory under data/ a fragment was written in (its partition's, if any)."""
    parent = e.path.rsplit("/", 1)[0]
    return parent[len(DATA_DIR) + 1 :] if parent.startswith(DATA_DIR + "/") else ""


def _sort_keys(state: SnapshotState) -> list[tuple[str, Literal["ascending", "descending"]]]:
    """The declared sort order (``sort_by``) as pyarrow sort keys over current names."""
    fields = state.fields
    out: list[tuple[str, Literal["ascending", "descending"]]] = []
    for s in state.snap.sort_by:
        if s["field_id"] in fields:
            how: Literal["ascending", "descending"] = (
                "descending" if s.get("descending") else "ascending"
            )
            out.append((fields[s["field_id"]].name, how))
    return out


def _rewrite(state: SnapshotState, group: Group) -> list[Rewrite]:
    """Read a group's live rows in the current schema and write them as new fragment(s)."""
    plan = make_plan(state, group.entries, state.public.names, None)
    rows = conform(read_plan(plan), state.schema, what=f"compaction of {state.uri}")
    keys = _sort_keys(state)
    if keys and rows.num_rows > 1:
        rows = rows.sort_by(keys)  # stable: ties keep their read order
    first = group.entries[0]
    new: list[FragmentEntry] = []
    if rows.num_rows:
        piece = (_subdir(first), first.partition, rows)
        # One fragment per group, however many rows or bytes: the group sets its size
        # (target_size; a lone fragment rewritten for its deletion vector keeps its own;
        # its row groups are bounded as any write's). Split at the write size, a group of
        # many small rows made fragments that were still small, and the next compaction
        # rewrote them into the same files again.
        new = write_fragments(
            state.storage,
            [rows],
            schema_id=state.schema_id,
            max_rows=rows.num_rows,
            split_by_bytes=False,
            layout=lambda _t: [piece],
        )
    return [Rewrite(first, tuple(new))] + [Rewrite(e, ()) for e in group.entries[1:]]


def _commit(
    state: SnapshotState,
    groups: Sequence[Group],
    parameters: dict[str, Any],
    *,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    rewrites = [r for g in groups for r in _rewrite(state, g)]
    old = [r.old for r in rewrites]
    new = [n for r in rewrites for n in r.new]
    summary = Summary(
        bytes_added=sum(e.size_bytes for e in new),
        bytes_removed=sum(e.size_bytes for e in old),
        fragments_added=len(new),
        fragments_removed=len(old),
    )
    params = {
        **parameters,
        "fragments_rewritten": len(old),
        "fragments_written": len(new),
        "deletion_vectors_materialized": sum(1 for e in old if e.deletion is not None),
        "rows_purged": sum(e.deleted_rows for e in old),
        "rows_rewritten": sum(e.num_rows for e in new),
    }
    change = Change(
        operation="compact",
        author=author if author is not None else default_author(),
        message=message or "",
        properties=_check_properties(properties),
        updates=(RewriteFragments(tuple(rewrites), summary),),
        # No row changes, so no schema, contract or key requirement: the new files
        # record the schema they were written under. A winner that removed or changed
        # a rewritten fragment makes this commit conflict.
        requirements=(FragmentsUnchanged(tuple(rewrites)),),
        parameters=params,
    )
    return state.line.commit(state.snap, change, io=ManifestFiles(state.storage))


def compact(
    state: SnapshotState,
    *,
    target_size: int | str = DEFAULT_TARGET_SIZE,
    where: str | None = None,
    min_fragments: int = 2,
    message: str | None = None,
    author: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> Snapshot | None:
    """Compact the snapshot's fragments (see the module doc); None when there is nothing
    to do (nothing committed).

    Raises:
        InvalidArgument: a malformed argument or ``where``.
        CommitConflict: concurrent row changes kept winning after `MAX_REPLANS` plans.
    """
    _check_message(message)
    target = parse_size(target_size)
    parameters: dict[str, Any] = {
        "target_size": target,
        "where": where,
        "min_fragments": min_fragments,
    }
    for attempt in range(MAX_REPLANS):
        groups = plan_groups(state, target_size=target, where=where, min_fragments=min_fragments)
        if not groups:
            _log.info("compaction of %s found nothing to do: nothing was committed", state.uri)
            return None
        try:
            return _commit(
                state, groups, parameters, message=message, author=author, properties=properties
            )
        except CommitConflict as exc:
            head = state.line.head()
            if attempt == MAX_REPLANS - 1 or head is None:
                raise
            _log.info("compaction of %s lost to %s; planning again on the head", state.uri, exc)
            state = state.at(head)
    raise AssertionError("unreachable")  # pragma: no cover
