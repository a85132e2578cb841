"""Planning a read: binding the filter, pruning fragments, listing read tasks.

`plan_scan` is the one place that lists a snapshot's fragments for reading: it
binds the filter (`lakever.expr`), prunes fragments by partition values and
statistics (`lakever.pruning`), and returns a `lakever.reader.ScanPlan` of read
tasks, projection and residual filter. Every reader consumes such a plan.
Binding and pruning results are cached per process: they are pure functions of
immutable inputs (the filter text and schema; the snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from lakever._lru import Lru
from lakever.format import FragmentEntry
from lakever.reader import ScanPlan, check_columns
from lakever.storage import Storage
from lakever.tasks import ReadTask

if TYPE_CHECKING:
    from lakever.expr import BoundFilter
    from lakever.snapshot import SnapshotState

__all__ = ["bind", "make_plan", "plan_of", "plan_scan", "prune_entries"]

#: Bound filters by (text, schema id, what): binding is a pure function of the two.
_BOUND: Lru[tuple[str, str, str], BoundFilter] = Lru(1024)
#: Pruning results by (dataset, snapshot id, bound SQL): snapshots never change.
_PRUNED: Lru[tuple[str, str, str], tuple[int, list[FragmentEntry]]] = Lru(256)


def bind(state: SnapshotState, filter: str | None, *, what: str = "filter") -> BoundFilter | None:
    """Bind ``filter`` against the snapshot (None: no filter)."""
    if filter is None:
        return None
    from lakever.expr import bind_filter

    if not isinstance(filter, str):
        return bind_filter(filter, state.schema, what=what)  # raises the usual error
    key = (filter, state.schema_id, what)
    bound = _BOUND.get(key)
    if bound is None:
        bound = bind_filter(filter, state.schema, what=what)
        _BOUND.put(key, bound)
    return bound


def prune_entries(
    state: SnapshotState, bound: BoundFilter | None
) -> tuple[int, list[FragmentEntry]]:
    """How many fragments partition pruning keeps, and the entries statistics pruning
    keeps, for ``bound`` (entries are built for the kept fragments only)."""
    if bound is None:
        entries = state.entries
        return len(entries), entries
    from lakever.pruning import prune

    key = (state.uri, state.snap.snapshot_id, bound.sql)
    hit = _PRUNED.get(key)
    if hit is not None:
        return hit
    types = {fid: f.type for fid, f in state.fields.items()}
    pruned = prune(state.manifests, bound, types, state.schema_of)
    result = (pruned.after_partitions, pruned.kept)
    _PRUNED.put(key, result)
    return result


def plan_scan(
    state: SnapshotState,
    *,
    columns: Sequence[str] | None = None,
    filter: str | None = None,
    what: str = "filter",
) -> ScanPlan:
    """Plan a read of ``state``'s snapshot: prune, then list the tasks (see the module doc)."""
    names = check_columns(state.public, columns)
    bound = bind(state, filter, what=what)
    after_partitions, kept = prune_entries(state, bound)
    return make_plan(state, kept, names, bound, after_partitions=after_partitions)


def make_plan(
    state: SnapshotState,
    entries: Sequence[FragmentEntry],
    columns: Sequence[str],
    bound: BoundFilter | None,
    *,
    after_partitions: int | None = None,
) -> ScanPlan:
    """A plan reading ``entries`` (already chosen) of ``state``'s snapshot."""
    refs = state.snap.manifests  # the totals without building every entry
    return plan_of(
        state.storage,
        state.schema,
        entries,
        columns,
        state.schema_of,
        bound=bound,
        snapshot_id=state.snap.snapshot_id,
        version=state.snap.version,
        fragments_total=sum(m.fragments for m in refs),
        fragments_after_partition_pruning=(
            len(entries) if after_partitions is None else after_partitions
        ),
        rows_total=sum(m.rows + m.deleted_rows for m in refs),
        bytes_total=sum(m.bytes for m in refs),
    )


def plan_of(
    storage: Storage,
    schema: pa.Schema,
    entries: Sequence[FragmentEntry],
    columns: Sequence[str],
    schema_of: Callable[[str], pa.Schema],
    *,
    bound: BoundFilter | None = None,
    snapshot_id: str = "",
    version: int = -1,
    **counts: int,
) -> ScanPlan:
    """A plan reading ``entries`` through ``schema`` (with field ids), e.g. fragments a
    commit is about to add (``snapshot_id`` empty: not committed yet)."""
    from lakever.format import schema_id
    from lakever.schema import schema_to_json

    own = schema_id(schema_to_json(schema))
    tasks = tuple(ReadTask.of(e) for e in entries)
    sids = {t.schema_id for t in tasks if t.schema_id != own}
    return ScanPlan(
        storage=storage.engine_view(),
        uri=storage.uri,
        snapshot_id=snapshot_id or "(being committed)",
        version=version,
        schema=schema,
        columns=tuple(columns),
        filter=None if bound is None else bound.sql,
        filter_columns=() if bound is None else tuple(bound.columns.values()),
        tasks=tasks,
        schemas={sid: schema_of(sid) for sid in sorted(sids)},
        filter_text=None if bound is None else bound.text,
        **counts,
    )
