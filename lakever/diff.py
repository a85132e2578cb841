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
import pyarrow.compute as pc

from lakever._convert import arrow_to_polars
from lakever._records import Commit, SchemaChange
from lakever.deletion import Positions, difference, positions_of
from lakever.errors import InvalidArgument
from lakever.evolution import fits
from lakever.field_tree import schema_changes as schema_diff
from lakever.format import FragmentEntry, Snapshot
from lakever.schema import iter_field_ids, strip_field_ids
from lakever.sql import cursor, quote_identifier, quote_literal
from lakever.storage import Storage

if TYPE_CHECKING:
    import duckdb
    import polars as pl

__all__ = ["Diff", "DiffSummary", "Side", "changes", "compute", "plan", "unified_schema"]

#: The change-type column of `Diff.to_polars` and of the change feed, with the values of
#: Delta Lake's change data feed: insert, delete, update_preimage, update_postimage.
CHANGE_TYPE = "_change_type"
_IDX = "__lakever_idx"
_READ_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class Side:
    """One snapshot of a diff and what reading it needs."""

    snap: Snapshot
    entries: list[FragmentEntry]
    #: The snapshot schema, with field ids.
    schema: pa.Schema


# ----------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class _Part:
    """Rows to read from one fragment: its live rows, or the rows at ``positions``."""

    entry: FragmentEntry
    positions: Positions | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What a diff reads: the rows of ``a`` that ``b`` may lack, and the reverse."""

    removed: list[_Part]
    added: list[_Part]
    fragments_added: int
    fragments_removed: int
    fragments_shared: int
    fragments_modified: int


def plan(
    a: Sequence[FragmentEntry],
    b: Sequence[FragmentEntry],
    positions: Callable[[FragmentEntry], Positions],
) -> Plan:
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
    return Plan(
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
) -> pa.Table:
    """The rows of ``parts`` through ``target`` (fragment columns matched by field id).

    Fragments are read through one scan plan (verified, deletion vectors applied), in
    parallel threads (pyarrow releases the GIL), in order.
    """
    from lakever.planner import plan_of

    scan = plan_of(storage, target, [p.entry for p in parts], public.names, schemas)

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


@dataclass(frozen=True, slots=True)
class _Result:
    """Indices into the rows read from each side (int64 arrays, ascending)."""

    #: Rows of the older side that the newer lacks.
    removed: pa.Array[Any]
    #: Rows of the newer side that the older lacks.
    added: pa.Array[Any]
    #: Changed keys: row in the older side, row in the newer side (ordered by it), and
    #: the names of the columns that differ (list<string>).
    changed_old: pa.Array[Any]
    changed_new: pa.Array[Any]
    changed_columns: pa.Array[Any]

    @staticmethod
    def of(removed: pa.Array[Any], added: pa.Array[Any]) -> _Result:
        empty = pa.array([], pa.int64())
        return _Result(removed, added, empty, empty, pa.array([], pa.list_(pa.string())))


def _indexed(name: str) -> str:
    return f"(SELECT *, row_number() OVER () - 1 AS {_IDX} FROM {name})"


def _column(con: duckdb.DuckDBPyConnection, query: str) -> pa.Array[Any]:
    table = con.sql(query).to_arrow_table()
    column: pa.Array[Any] = table.column(0).combine_chunks().cast(pa.int64())
    return column


def _multiset(con: duckdb.DuckDBPyConnection, names: Sequence[str]) -> _Result:
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
    return _Result.of(removed, added)


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


def _keyed(con: duckdb.DuckDBPyConnection, names: Sequence[str], keys: Sequence[str]) -> _Result:
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
    return _Result(
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
) -> _Result:
    """Match the rows read from each side on the columns ``names`` (default: all), by
    ``keys`` or as a multiset."""
    names = removed.column_names if names is None else list(names)
    if removed.num_rows == 0 or added.num_rows == 0 or not names:
        # Nothing can cancel out: every row read is a change (no DuckDB needed).
        return _Result.of(_range(removed.num_rows), _range(added.num_rows))
    con = cursor()
    try:
        # Only the compared columns are registered: DuckDB never sees the others.
        con.register("__r", removed.select(names))
        con.register("__a", added.select(names))
        return _keyed(con, names, keys) if keys else _multiset(con, names)
    finally:
        con.close()


def _range(n: int) -> pa.Array[Any]:
    return pa.array(range(n), pa.int64())


# ----------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """What changed between two snapshots, in numbers."""

    #: Rows only the newer snapshot has (by key: keys it adds).
    rows_added: int
    #: Rows only the older snapshot has (by key: keys it removes).
    rows_removed: int
    #: Keys both have with different values (0 without a key).
    rows_changed: int
    #: Data files only the newer snapshot lists.
    fragments_added: int
    #: Data files only the older snapshot lists.
    fragments_removed: int
    #: Fragments both list identically (never read by the diff).
    fragments_shared: int
    #: Data files both list with different deletion vectors (only the rows one side
    #: deletes and the other does not were read).
    fragments_modified: int
    #: Schema changes from the older snapshot to the newer, by field id.
    schema_changes: tuple[SchemaChange, ...]
    #: The key the rows were matched by (None: compared as a multiset).
    key: tuple[str, ...] | None

    @property
    def rows_touched(self) -> int:
        """Rows the diff reports (added + removed + changed)."""
        return self.rows_added + self.rows_removed + self.rows_changed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out["schema_changes"] = [c.to_dict() for c in self.schema_changes]
        out["key"] = None if self.key is None else list(self.key)
        return out


class Diff:
    """The differences between two snapshots of a dataset (see `lakever.diff`).

    ``a`` is the older side and ``b`` the newer: rows "added" are in ``b`` only.
    Tables are in one schema holding every column of either side (matched by
    field id, named as in ``b``).
    """

    __slots__ = ("_added", "_changed", "_removed", "_result", "a", "b", "schema", "summary")

    def __init__(
        self,
        a: Snapshot,
        b: Snapshot,
        schema: pa.Schema,
        removed: pa.Table,
        added: pa.Table,
        result: _Result,
        summary: DiffSummary,
    ) -> None:
        #: The commits of the older and newer snapshots (version, snapshot id, time...).
        self.a = Commit.from_snapshot(a)
        self.b = Commit.from_snapshot(b)
        #: The schema of the tables this diff returns.
        self.schema = schema
        self.summary = summary
        self._removed = removed
        self._added = added
        self._result = result

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<lakever.Diff version {self.a.version} -> {self.b.version}: +{s.rows_added} "
            f"-{s.rows_removed} ~{s.rows_changed} rows, {len(s.schema_changes)} schema changes>"
        )

    @property
    def key(self) -> list[str] | None:
        """The key columns rows were matched by, or None."""
        return None if self.summary.key is None else list(self.summary.key)

    @property
    def schema_changes(self) -> list[SchemaChange]:
        """Columns added, dropped, renamed, widened or made nullable from ``a`` to ``b``."""
        return list(self.summary.schema_changes)

    def added(self) -> pa.Table:
        """Rows (by key: keys) only the newer snapshot has."""
        return self._added.take(self._result.added)

    def removed(self) -> pa.Table:
        """Rows (by key: keys) only the older snapshot has."""
        return self._removed.take(self._result.removed)

    def _pairs(self) -> tuple[pa.Table, pa.Table]:
        r = self._result
        return self._removed.take(r.changed_old), self._added.take(r.changed_new)

    def changed(self) -> pa.Table:
        """One row per changed key: the key columns, ``_changed_columns`` (names), and the
        structs ``_old`` and ``_new`` holding the values of the columns that changed in
        any row.

        Raises:
            InvalidArgument: the diff has no key (rows can only be added or removed).
        """
        if self.summary.key is None:
            raise InvalidArgument(
                "this diff has no key, so rows are only added or removed; pass on=[key "
                "columns] (or declare a primary key) to see changed rows"
            )
        old, new = self._pairs()
        changed_columns = self._result.changed_columns
        differ = set(pc.unique(pc.list_flatten(changed_columns)).to_pylist())
        columns = [n for n in self.schema.names if n in differ]
        key = list(self.summary.key)
        out = new.select(key).append_column("_changed_columns", changed_columns)
        for name, side in (("_old", old), ("_new", new)):
            fields = [side.schema.field(c) for c in columns]
            arrays = [side.column(c).combine_chunks() for c in columns]
            struct: pa.Array[Any] = (
                pa.StructArray.from_arrays(arrays, fields=fields)
                if columns
                else pa.array([{}] * old.num_rows, pa.struct([]))
            )
            out = out.append_column(name, struct)
        return out

    def to_arrow(self) -> pa.Table:
        """Every change in one table: the columns plus ``_change_type`` ("insert",
        "delete", "update_preimage", "update_postimage"; preimage and postimage rows of a
        changed key are adjacent)."""
        return _change_table(self._removed, self._added, self._result)

    def to_polars(self) -> pl.DataFrame:
        """`to_arrow` as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def to_dict(self) -> dict[str, Any]:
        """The summary, the two snapshots and the schema changes, JSON-ready."""
        return {
            "a": {
                "version": self.a.version,
                "snapshot_id": self.a.snapshot_id,
                "branch": self.a.branch,
            },
            "b": {
                "version": self.b.version,
                "snapshot_id": self.b.snapshot_id,
                "branch": self.b.branch,
            },
            **self.summary.to_dict(),
        }


def _labelled(table: pa.Table, label: str) -> pa.Table:
    return table.append_column(CHANGE_TYPE, pa.array([label] * table.num_rows, pa.string()))


def _change_table(removed: pa.Table, added: pa.Table, result: _Result) -> pa.Table:
    pre = _labelled(removed.take(result.changed_old), "update_preimage")
    post = _labelled(added.take(result.changed_new), "update_postimage")
    n = pre.num_rows
    # Interleave: each key's preimage is followed by its postimage.
    pairs = pa.concat_tables([pre, post]).take(
        pa.array([i + n * side for i in range(n) for side in (0, 1)], pa.int64())
    )
    return pa.concat_tables(
        [
            _labelled(removed.take(result.removed), "delete"),
            pairs,
            _labelled(added.take(result.added), "insert"),
        ]
    )


# ----------------------------------------------------------------- entry points


def _loader(storage: Storage, *sides: Side) -> Callable[[str], pa.Schema]:
    from lakever._metafiles import read_schema
    from lakever.format import schema_id
    from lakever.schema import schema_to_json

    own = {schema_id(schema_to_json(s.schema)): s.schema for s in sides}
    return lambda sid: own[sid] if sid in own else read_schema(storage, sid)


def _keys_by_id(sides: Sequence[Side], target: pa.Schema, on: Sequence[str] | None) -> list[str]:
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


def _rows(storage: Storage, a: Side, b: Side, target: pa.Schema) -> tuple[Plan, pa.Table, pa.Table]:
    p = plan(a.entries, b.entries, lambda e: positions_of(storage, e))
    public = strip_field_ids(target)
    schemas = _loader(storage, a, b)
    return (
        p,
        _read(storage, target, public, p.removed, schemas),
        _read(storage, target, public, p.added, schemas),
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
    storage: Storage,
    a: Side,
    b: Side,
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
    p, removed, added = _rows(storage, a, b, target)
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
    return Diff(a.snap, b.snap, strip_field_ids(target), removed, added, result, summary)


def changes(
    storage: Storage,
    snapshots: Iterator[Snapshot],
    entries: Callable[[Snapshot], list[FragmentEntry]],
    schema: pa.Schema,
    *,
    key: Sequence[str] | None,
) -> Iterator[pa.Table]:
    """The change feed: for each consecutive pair of ``snapshots``, the rows that changed.

    Rows are read through ``schema`` (with field ids; normally the newest one's), so
    every table has its columns plus ``_change_type``, ``_commit_version``,
    ``_commit_snapshot_id`` and ``_commit_timestamp``. Commits that changed no row
    (schema or contract changes) yield nothing.
    """
    from lakever.schema import schema_from_json

    public = strip_field_ids(schema)
    keys = list(key) if key else None
    previous = next(snapshots, None)
    for snap in snapshots:
        assert previous is not None
        a = Side(previous, entries(previous), schema_from_json(previous.schema))
        b = Side(snap, entries(snap), schema_from_json(snap.schema))
        p = plan(a.entries, b.entries, lambda e: positions_of(storage, e))
        previous = snap
        if not p.removed and not p.added:
            continue
        loader = _loader(storage, a, b)
        removed = _read(storage, schema, public, p.removed, loader)
        added = _read(storage, schema, public, p.added, loader)
        table = _change_table(removed, added, _compare(removed, added, keys))
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
