"""Diffs between two snapshots, and the change feed along a branch.

The cost of a diff follows what changed, not the size of the dataset:

* planning is metadata only: the two snapshots' fragment entries are matched by
  data file; a fragment both list with the same deletion vector is *shared* and
  never read;
* a fragment only one side lists contributes its live rows;
* a fragment both list with different deletion vectors contributes only the rows
  one side deletes and the other does not (the new positions of a grown vector).

The rows read this way ("touched" rows) are then compared in DuckDB, by key or
as a multiset, so rows a copy-on-write rewrite merely copied cancel out, and
duplicates are counted. Columns are matched by field id: both sides are read
through one schema holding every field id of either side (renamed columns under
their newer name, widened ones in the wider type), so a rename is never a drop
plus an add.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.deletion import Positions, difference, positions_of
from lakever.diffresult import Diff, DiffSummary, Result, change_table
from lakever.errors import InvalidArgument
from lakever.evolution import fits
from lakever.field_tree import schema_changes as schema_diff
from lakever.format import FragmentEntry, Snapshot
from lakever.history import commit_of
from lakever.schema import iter_field_ids, strip_field_ids
from lakever.snapshot import SnapshotState
from lakever.sql import cursor, quote_identifier, quote_literal, register_arrow
from lakever.storage import Storage

if TYPE_CHECKING:
    import duckdb

__all__ = ["Diff", "DiffSummary", "changes", "compute", "match_fragments", "unified_schema"]

_IDX = "__lakever_idx"
_READ_THREADS = max(1, min(4, os.cpu_count() or 1))


# ----------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class _Part:
    """Rows to read from one fragment: its live rows, or the rows at ``positions``."""

    entry: FragmentEntry
    positions: Positions | None = None


@dataclass(frozen=True, slots=True)
class Matched:
    """What a diff reads: the rows of ``a`` that ``b`` may lack, and the reverse."""

    removed: list[_Part]
    added: list[_Part]
    fragments_added: int
    fragments_removed: int
    fragments_shared: int
    fragments_modified: int


def match_fragments(
    a: Sequence[FragmentEntry],
    b: Sequence[FragmentEntry],
    positions: Callable[[FragmentEntry], Positions],
) -> Matched:
    """Match the fragments of two snapshots by data file and deletion vector.

    ``positions`` returns a fragment's deleted positions; it is called only for
    fragments both sides list with different deletion vectors.
    """
    by_a = {e.path: e for e in a}
    by_b = {e.path: e for e in b}
    removed: list[_Part] = []
    added: list[_Part] = []
    shared = modified = 0
    for path, ea in by_a.items():
        eb = by_b.get(path)
        if eb is None:
            removed.append(_Part(ea))
            continue
        if ea.deletion == eb.deletion:
            shared += 1
            continue
        modified += 1
        pa_, pb_ = positions(ea), positions(eb)
        raw = replace(ea, deletion=None)
        gone, back = difference(pb_, pa_), difference(pa_, pb_)
        if len(gone):
            removed.append(_Part(raw, gone))
        if len(back):
            added.append(_Part(raw, back))
    fresh = [_Part(eb) for path, eb in by_b.items() if path not in by_a]
    return Matched(
        removed=removed,
        added=added + fresh,
        fragments_added=len(fresh),
        fragments_removed=sum(1 for p in by_a if p not in by_b),
        fragments_shared=shared,
        fragments_modified=modified,
    )


def unified_schema(a: pa.Schema, b: pa.Schema) -> pa.Schema:
    """Every top-level field id of ``a`` or ``b``: ``b``'s order and names, the wider type.

    Fields only ``a`` has (dropped in ``b``) come last under their old name (with
    ``__field<id>`` appended if ``b`` reuses the name). All fields are nullable: a
    field a fragment lacks reads as null.
    """
    in_a = dict(iter_field_ids(a))
    in_b = dict(iter_field_ids(b))
    fields = []
    for fid, fb in in_b.items():
        fa = in_a.get(fid)
        f = fb
        if fa is not None and not fits(fa.type, fb.type) and fits(fb.type, fa.type):
            f = fa.with_name(fb.name)  # a's type is the wider one (a diff backwards in time)
        fields.append(f.with_nullable(True))
    for fid, fa in in_a.items():
        if fid not in in_b:
            name = fa.name if fa.name not in b.names else f"{fa.name}__field{fid}"
            fields.append(fa.with_name(name).with_nullable(True))
    return pa.schema(fields)


# ----------------------------------------------------------------- reading


def _read(
    storage: Storage,
    target: pa.Schema,
    public: pa.Schema,
    parts: Sequence[_Part],
    schemas: Callable[[str], pa.Schema],
    snapshot_id: str,
) -> pa.Table:
    """The rows of ``parts`` through ``target`` (fragment columns matched by field id).

    Fragments are read through one scan plan (verified, deletion vectors applied), in
    parallel threads (pyarrow releases the GIL), in order.
    """
    from lakever.planner import plan_of

    entries = [p.entry for p in parts]
    scan = plan_of(storage, target, entries, public.names, schemas, snapshot_id=snapshot_id)

    def read(i: int) -> pa.Table:
        table = scan.read(scan.tasks[i])
        positions = parts[i].positions
        return table if positions is None else table.take(positions)

    if len(parts) > 1:
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            tables = list(pool.map(read, range(len(parts))))
    else:
        tables = [read(i) for i in range(len(parts))]
    return pa.concat_tables([public.empty_table(), *tables]).combine_chunks()


# ----------------------------------------------------------------- comparing


def _indexed(name: str) -> str:
    return f"(SELECT *, row_number() OVER () - 1 AS {_IDX} FROM {name})"


def _column(con: duckdb.DuckDBPyConnection, query: str) -> pa.Array[Any]:
    table = con.sql(query).to_arrow_table()
    column: pa.Array[Any] = table.column(0).combine_chunks().cast(pa.int64())
    return column


def _multiset(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> Result:
    """Rows of __r missing from __a and the reverse, counting duplicates.

    Rows are grouped by all their values; a group seen k times more on one side
    contributes k of its rows (the first ones) to that side's result.
    """
    cols = ", ".join(quote_identifier(n) for n in names)
    con.sql(
        f"CREATE TEMP TABLE __groups AS SELECT "
        f"list({_IDX} ORDER BY {_IDX}) FILTER (WHERE __side = 0) AS r, "
        f"list({_IDX} ORDER BY {_IDX}) FILTER (WHERE __side = 1) AS a, "
        f"count(*) FILTER (WHERE __side = 0) AS nr, count(*) FILTER (WHERE __side = 1) AS na "
        f"FROM (SELECT {cols}, 0 AS __side, {_IDX} FROM {_indexed('__r')} UNION ALL "
        f"SELECT {cols}, 1 AS __side, {_IDX} FROM {_indexed('__a')}) "
        f"GROUP BY {cols} HAVING nr <> na"
    )
    try:
        removed = _column(
            con,
            "SELECT i FROM (SELECT unnest(r[1:nr - na]) AS i FROM __groups WHERE nr > na) "
            "ORDER BY i",
        )
        added = _column(
            con,
            "SELECT i FROM (SELECT unnest(a[1:na - nr]) AS i FROM __groups WHERE na > nr) "
            "ORDER BY i",
        )
    finally:
        con.sql("DROP TABLE __groups")
    return Result.of(removed, added)


def _check_unique(
    con: duckdb.DuckDBPyConnection, table: str, keys: Sequence[str], side: str
) -> None:
    cols = ", ".join(quote_identifier(k) for k in keys)
    dupes = con.sql(
        f"SELECT {cols} FROM {table} GROUP BY ALL HAVING count(*) > 1 LIMIT 5"
    ).to_arrow_table()
    if dupes.num_rows:
        raise InvalidArgument(
            f"the key ({', '.join(keys)}) is not unique in {side}, e.g. {dupes.to_pylist()}; "
            "a keyed diff needs one row per key (declare a primary key, or diff without on=)"
        )


def _keyed(con: duckdb.DuckDBPyConnection, names: Sequence[str], keys: Sequence[str]) -> Result:
    """Rows of __r and __a matched by key: removed, added, and changed with the differing
    columns."""
    _check_unique(con, "__r", keys, "the older snapshot's changed rows")
    _check_unique(con, "__a", keys, "the newer snapshot's changed rows")
    others = [n for n in names if n not in keys]
    on = " AND ".join(
        f"r.{quote_identifier(k)} IS NOT DISTINCT FROM a.{quote_identifier(k)}" for k in keys
    )
    flags = ", ".join(
        f"CASE WHEN r.{quote_identifier(c)} IS DISTINCT FROM a.{quote_identifier(c)} "
        f"THEN {quote_literal(c)} END"
        for c in others
    )
    differ = f"list_filter([{flags}], lambda x: x IS NOT NULL)" if others else "[]::VARCHAR[]"
    con.sql(
        f"CREATE TEMP TABLE __pairs AS SELECT r.{_IDX} AS ri, a.{_IDX} AS ai, "
        f"{differ} AS cols FROM {_indexed('__r')} r FULL OUTER JOIN {_indexed('__a')} a ON {on}"
    )
    try:
        removed = _column(con, "SELECT ri FROM __pairs WHERE ai IS NULL ORDER BY ri")
        added = _column(con, "SELECT ai FROM __pairs WHERE ri IS NULL ORDER BY ai")
        changed = con.sql(
            "SELECT ri, ai, cols FROM __pairs WHERE ri IS NOT NULL AND ai IS NOT NULL "
            "AND len(cols) > 0 ORDER BY ai"
        ).to_arrow_table()
    finally:
        con.sql("DROP TABLE __pairs")
    return Result(
        removed,
        added,
        changed.column("ri").combine_chunks().cast(pa.int64()),
        changed.column("ai").combine_chunks().cast(pa.int64()),
        changed.column("cols").combine_chunks().cast(pa.list_(pa.string())),
    )


def _compare(
    removed: pa.Table,
    added: pa.Table,
    keys: Sequence[str] | None,
    names: Sequence[str] | None = None,
) -> Result:
    """Match the rows read from each side on the columns ``names`` (default: all), by
    ``keys`` or as a multiset."""
    names = removed.column_names if names is None else list(names)
    if removed.num_rows == 0 or added.num_rows == 0 or not names:
        # Nothing can cancel out: every row read is a change (no DuckDB needed).
        return Result.of(_range(removed.num_rows), _range(added.num_rows))
    con = cursor()
    try:
        # Only the compared columns are registered: DuckDB never sees the others.
        register_arrow(con, "__r", removed.select(names))
        register_arrow(con, "__a", added.select(names))
        return _keyed(con, names, keys) if keys else _multiset(con, names)
    finally:
        con.close()


def _range(n: int) -> pa.Array[Any]:
    return pa.array(range(n), pa.int64())


# ----------------------------------------------------------------- entry points


def _loader(*sides: SnapshotState) -> Callable[[str], pa.Schema]:
    """The schema a fragment of either side was written under, by schema id."""
    own = {s.schema_id: s.schema for s in sides}
    first = sides[0]
    return lambda sid: own[sid] if sid in own else first.schema_of(sid)


def _keys_by_id(
    sides: Sequence[SnapshotState], target: pa.Schema, on: Sequence[str] | None
) -> list[str]:
    names = target.names
    if on is not None:
        keys = [on] if isinstance(on, str) else list(on)
        missing = [k for k in keys if k not in names]
        if missing:
            raise InvalidArgument(f"on={keys!r} must name columns of the diff ({names})")
        return keys
    by_id = {fid: f.name for fid, f in iter_field_ids(target)}
    for side in reversed(sides):
        if side.snap.primary_key:
            return [by_id[fid] for fid in side.snap.primary_key if fid in by_id]
    return []


def _rows(
    a: SnapshotState, b: SnapshotState, target: pa.Schema
) -> tuple[Matched, pa.Table, pa.Table]:
    storage = a.storage
    p = match_fragments(a.entries, b.entries, lambda e: positions_of(storage, e))
    public = strip_field_ids(target)
    schemas = _loader(a, b)
    return (
        p,
        _read(storage, target, public, p.removed, schemas, a.snap.snapshot_id),
        _read(storage, target, public, p.added, schemas, b.snap.snapshot_id),
    )


def _shared(target: pa.Schema, a: pa.Schema, b: pa.Schema) -> list[str]:
    """The columns of ``target`` (by name) whose field id both ``a`` and ``b`` have."""
    both = {fid for fid, _ in iter_field_ids(a)} & {fid for fid, _ in iter_field_ids(b)}
    return [f.name for fid, f in iter_field_ids(target) if fid in both]


def _limited(
    target: pa.Schema, shared: Sequence[str], keys: Sequence[str], columns: Sequence[str]
) -> pa.Schema:
    """``target`` with only the key columns and ``columns`` (in ``target``'s order)."""
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise InvalidArgument(f"columns must be a non-empty list of column names, got {columns!r}")
    unknown = [c for c in columns if c not in target.names]
    if unknown:
        raise InvalidArgument(
            f"columns names unknown column(s) {unknown}; the diff has {target.names}"
        )
    one_sided = [c for c in columns if c not in shared]
    if one_sided:
        raise InvalidArgument(
            f"columns {one_sided} exist in only one of the two snapshots, so their values "
            "cannot be compared (the schema change is in Diff.schema_changes); pick columns "
            f"both have: {list(shared)}"
        )
    wanted = set(columns) | set(keys)
    return pa.schema([f for f in target if f.name in wanted])


def compute(
    a: SnapshotState,
    b: SnapshotState,
    *,
    on: Sequence[str] | None,
    columns: Sequence[str] | None = None,
) -> Diff:
    """Diff ``a`` (older) against ``b`` (newer); see the module docstring for the cost.

    Rows are compared on the columns both sides have (a column added or dropped in
    between is a schema change, reported once, not a change of every row), limited to
    ``columns`` (plus the key) when given; only those columns are read.
    """
    target = unified_schema(a.schema, b.schema)
    keys = _keys_by_id([a, b], target, on)
    shared = _shared(target, a.schema, b.schema)
    if columns is not None:
        target = _limited(target, shared, keys, columns)
    compared = [n for n in target.names if n in shared or n in keys]
    p, removed, added = _rows(a, b, target)
    result = _compare(removed, added, keys or None, compared)
    summary = DiffSummary(
        rows_added=len(result.added),
        rows_removed=len(result.removed),
        rows_changed=len(result.changed_new),
        fragments_added=p.fragments_added,
        fragments_removed=p.fragments_removed,
        fragments_shared=p.fragments_shared,
        fragments_modified=p.fragments_modified,
        schema_changes=tuple(schema_diff(a.schema, b.schema)),
        key=tuple(keys) if keys else None,
    )
    commits = commit_of(a, a.snap), commit_of(b, b.snap)
    return Diff(*commits, strip_field_ids(target), removed, added, result, summary)


def changes(
    state: SnapshotState, since: SnapshotState, *, key: Sequence[str] | None
) -> Iterator[pa.Table]:
    """The change feed from ``since`` to ``state`` (same line): for each commit in between,
    the rows it changed, oldest first.

    Rows are read through ``state``'s schema, so every table has its columns plus
    ``_change_type``, ``_commit_version``, ``_commit_snapshot_id`` and
    ``_commit_timestamp``. Commits that changed no row (schema or contract changes)
    yield nothing. Each costs what `compute` costs for it.
    """
    storage, schema = state.storage, state.schema
    public = strip_field_ids(schema)
    keys = list(key) if key else None
    previous = since
    for snap in state.line.between(since.snap.version + 1, state.snap.version):
        current = state.at(snap, writable=False)
        p = match_fragments(previous.entries, current.entries, lambda e: positions_of(storage, e))
        loader = _loader(previous, current)
        before, previous = previous, current
        if not p.removed and not p.added:
            continue
        removed = _read(storage, schema, public, p.removed, loader, before.snap.snapshot_id)
        added = _read(storage, schema, public, p.added, loader, snap.snapshot_id)
        table = change_table(removed, added, _compare(removed, added, keys))
        if table.num_rows:
            yield _with_commit(table, snap)


def _with_commit(table: pa.Table, snap: Snapshot) -> pa.Table:
    n = table.num_rows
    when: datetime = snap.timestamp
    return (
        table.append_column("_commit_version", pa.array([snap.version] * n, pa.int64()))
        .append_column("_commit_snapshot_id", pa.array([snap.snapshot_id] * n, pa.string()))
        .append_column("_commit_timestamp", pa.array([when] * n, pa.timestamp("us", tz="UTC")))
    )
