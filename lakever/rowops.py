"""Row-level changes: delete, update and upsert, by merge-on-read or copy-on-write.

Planning a change reads as little as possible:

1. candidates: manifest statistics rule out the fragments whose min/max cannot
   match the predicate (`lakever.pruning`) or the upserted keys, before any file
   is read; untouched fragments are reused by reference;
2. positions: DuckDB evaluates the predicate (or matches the keys) on the live
   rows of the candidates only, returning (fragment, row position) pairs;
3. rewrites: each touched fragment gets a new deletion vector holding its old and
   new deleted positions (merge-on-read, the default), or is rewritten without
   those rows (copy-on-write); a fragment left without rows leaves the manifest;
4. new rows (update, upsert) are written as a new fragment, after they were
   conformed to the schema and checked against the contract and the primary key.

The commit lists its rewrites (`lakever.log.Rewrite`), so the log replays it on
top of concurrent commits that touched none of the same fragments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakever import contract as contracts
from lakever._convert import to_arrow_stream
from lakever._metafiles import read_contract_text
from lakever._types import RowMode, ValidateMode
from lakever._writer import (
    _check_message,
    _check_properties,
    default_author,
    merge_manifest_levels,
)
from lakever.deletion import Positions, keep_mask, positions_of, union, write_deletion_vector
from lakever.errors import InvalidArgument, PrimaryKeyViolation
from lakever.format import FragmentEntry, ManifestRef, Snapshot, Summary
from lakever.fragments import Layout, make_manifest, read_manifest, write_fragments, write_manifest
from lakever.keys import KeyCheck, StatsOf, check_declared
from lakever.log import Change, Log, Rewrite
from lakever.projection import conform
from lakever.scan import read_file, read_table
from lakever.schema import iter_field_ids
from lakever.sql import (
    FILE_COLUMN,
    POSITION_COLUMN,
    cursor,
    duckdb_type,
    live_rows_sql,
    quote_identifier,
    register,
    schema_map,
    translate_errors,
)
from lakever.storage import Storage

__all__ = ["ManifestFiles", "View", "delete", "update", "upsert"]

_log = logging.getLogger("lakever")


@dataclass(frozen=True, slots=True)
class View:
    """What a row-level change works on: a snapshot, its fragments and how to read them."""

    storage: Storage
    log: Log
    snap: Snapshot
    entries: list[FragmentEntry]
    #: The snapshot schema, with field ids; ``public`` is the same without.
    schema: pa.Schema
    public: pa.Schema
    schema_id: str
    #: The schema (with field ids) a fragment was written under, by schema id.
    schemas: Callable[[str], pa.Schema]
    stats_of: StatsOf
    #: The fragments a predicate may match (those the dataset's pruning keeps).
    prune: Callable[[str], list[FragmentEntry]]

    @property
    def field_ids(self) -> dict[str, int]:
        return {f.name: fid for fid, f in iter_field_ids(self.schema)}

    def layout(self) -> Layout | None:
        """How new rows are partitioned and sorted, as for any write to this snapshot."""
        from lakever._writer import layout_for

        return layout_for(self.snap, self.schema)

    @property
    def key_names(self) -> list[str]:
        """The declared primary key's columns, by their current names."""
        names = {fid: f.name for fid, f in iter_field_ids(self.schema)}
        return [names[fid] for fid in self.snap.primary_key]


class ManifestFiles:
    """`lakever.log.ManifestIO` on a storage: level-0 manifests inline when small."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def read(self, ref: ManifestRef) -> list[FragmentEntry]:
        return read_manifest(self.storage, ref)

    def make(self, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
        if level == 0:
            return make_manifest(self.storage, entries, level=0)
        return write_manifest(self.storage, entries, level=level)


# ----------------------------------------------------------------- finding rows


def _check_mode(mode: Any) -> None:
    if mode not in ("merge-on-read", "copy-on-write"):
        raise InvalidArgument(f"mode must be 'merge-on-read' or 'copy-on-write', got {mode!r}")


def _candidates(view: View, where: str | None) -> list[FragmentEntry]:
    """The fragments pruning does not rule out for ``where`` (all of them without one)."""
    if where is None:
        return list(view.entries)
    if not isinstance(where, str) or not where.strip():
        raise InvalidArgument(f"where must be a non-empty SQL expression, got {where!r}")
    return view.prune(where)


def _readable(view: View) -> tuple[list[str], str]:
    """The columns DuckDB can read (and their schema map): what predicates may use."""
    fields = [f for f in view.schema if schema_map(pa.schema([f])) is not None]
    names = [f.name for f in fields]
    mapping = schema_map(pa.schema(fields)) if fields else None
    if mapping is None or "file_row_number" in names:
        raise InvalidArgument(
            f"row-level changes on {view.storage.uri} need columns DuckDB can read, and none "
            "named 'file_row_number'"
        )
    return names, mapping


@dataclass(frozen=True, slots=True)
class _Hit:
    """The matching live rows of one fragment."""

    entry: FragmentEntry
    #: Their positions in the fragment's file, ascending.
    positions: Positions
    #: For an update: the new values of the SET columns, one row per position.
    values: pa.Table | None = None


def _positions_per_file(view: View, grouped: pa.Table) -> list[_Hit]:
    """Hits from a table of (`FILE_COLUMN`, ``positions`` list), in fragment order."""
    by_uri = {view.storage.full_path(e.path): e for e in view.entries}
    order = {e.path: i for i, e in enumerate(view.entries)}
    lists = grouped.column("positions").combine_chunks()
    hits = [
        _Hit(by_uri[str(uri)], lists[i].values.cast(pa.int64()))
        for i, uri in enumerate(grouped.column(FILE_COLUMN).to_pylist())
    ]
    return sorted(hits, key=lambda h: order[h.entry.path])


def _matches(
    view: View, entries: Sequence[FragmentEntry], where: str | None, values: Mapping[str, str]
) -> list[_Hit]:
    """The live rows of ``entries`` where ``where`` holds, per fragment.

    ``values`` maps columns to SQL expressions evaluated on each matching row (cast
    to the column's type); without any, positions are aggregated per fragment in
    DuckDB, so even a delete of most rows moves little data.
    """
    if not entries:
        return []
    names, mapping = _readable(view)
    select = [FILE_COLUMN, POSITION_COLUMN]
    for column, expr in values.items():
        t = duckdb_type(view.public.field(column).type)
        select.append(f"CAST(({expr}) AS {t}) AS {quote_identifier(column)}")
    con = cursor()
    try:
        register(con, view.storage)
        rel = con.sql(live_rows_sql(view.storage, names, mapping, entries, positions=True))
        with translate_errors("where", where or "", view.public):
            if where is not None:
                rel = rel.filter(where)
        with translate_errors("set", str(dict(values)), view.public):
            rel = rel.project(", ".join(select))
        # Errors while running (a failed cast, a division by zero) may come from either.
        what, text = "where", where or ""
        if values:
            what = "update"
            text = "SET " + ", ".join(f"{c} = {e}" for c, e in values.items())
            text += f" WHERE {where}" if where else ""
        with translate_errors(what, text, view.public):
            if not values:
                positions = f"list({POSITION_COLUMN} ORDER BY {POSITION_COLUMN}) AS positions"
                grouped = rel.aggregate(f"{FILE_COLUMN}, {positions}", FILE_COLUMN)
                return _positions_per_file(view, grouped.to_arrow_table())
            table = rel.order(f"{FILE_COLUMN}, {POSITION_COLUMN}").to_arrow_table()
    finally:
        con.close()
    by_uri = {view.storage.full_path(e.path): e for e in view.entries}
    files = table.column(FILE_COLUMN)
    order = {e.path: i for i, e in enumerate(view.entries)}
    hits = []
    for uri in pc.unique(files).to_pylist():
        rows = table.filter(pc.equal(files, pa.scalar(uri, files.type)))
        positions = rows.column(POSITION_COLUMN).combine_chunks().cast(pa.int64())
        hits.append(_Hit(by_uri[str(uri)], positions, rows.select(list(values))))
    return sorted(hits, key=lambda h: order[h.entry.path])


# ----------------------------------------------------------------- rewriting


def _rewrite(view: View, entry: FragmentEntry, positions: Positions, mode: RowMode) -> Rewrite:
    """Delete ``positions`` from ``entry``: a new deletion vector, or a rewritten file."""
    deleted = union(positions_of(view.storage, entry), positions)
    if len(deleted) >= entry.num_rows:
        return Rewrite(entry, ())  # nothing left: the fragment leaves the manifest
    if mode == "merge-on-read":
        dv = write_deletion_vector(view.storage, deleted)
        return Rewrite(entry, (replace(entry, deletion=dv),))
    physical = view.schemas(entry.schema_id)
    kept = read_file(view.storage, physical, entry).filter(keep_mask(entry.num_rows, deleted))
    # The rewrite keeps the file's physical schema: no conversion, the same field ids.
    return Rewrite(entry, tuple(write_fragments(view.storage, [kept], schema_id=entry.schema_id)))


def _summary(
    rewrites: Sequence[Rewrite], added: Sequence[FragmentEntry], rows_deleted: int, written: int
) -> Summary:
    old = {r.old.path for r in rewrites}
    new = [n for r in rewrites for n in r.new if n.path not in old] + list(added)
    gone = [r.old for r in rewrites if all(n.path != r.old.path for n in r.new)]
    return Summary(
        rows_added=written,
        rows_removed=rows_deleted,
        bytes_added=sum(e.size_bytes for e in new),
        bytes_removed=sum(e.size_bytes for e in gone),
        fragments_added=len(new),
        fragments_removed=len(gone),
    )


def _after(view: View, rewrites: Sequence[Rewrite]) -> list[FragmentEntry]:
    """The base's fragments with the rewrites applied (rows the change keeps)."""
    by_path = {r.old.path: r.new for r in rewrites}
    return [n for e in view.entries for n in by_path.get(e.path, (e,))]


@dataclass(frozen=True, slots=True)
class _Commit:
    operation: str
    message: str | None
    author: str | None
    properties: Mapping[str, str] | None


def _commit(
    view: View,
    how: _Commit,
    rewrites: Sequence[Rewrite],
    added: Sequence[FragmentEntry],
    parameters: dict[str, Any],
    *,
    rows_deleted: int,
    key: KeyCheck | None = None,
) -> Snapshot:
    _check_message(how.message)
    storage = view.storage
    written = sum(e.num_rows for e in added)
    parameters.update(
        rows_deleted=rows_deleted,
        rows_written=written,
        fragments_touched=len(rewrites),
        deletion_vectors_written=sum(1 for r in rewrites for n in r.new if n.path == r.old.path),
    )
    change = Change(
        operation=how.operation,
        author=how.author if how.author is not None else default_author(),
        message=how.message or "",
        properties=_check_properties(how.properties),
        schema=view.snap.schema,
        last_field_id=view.snap.last_field_id,
        parameters=parameters,
        contract=view.snap.contract,
        added=make_manifest(storage, added, level=0) if added else None,
        rewrites=tuple(rewrites),
        delta=_summary(rewrites, added, rows_deleted, written),
    )
    return view.log.commit(
        view.snap,
        change,
        merge_manifests=lambda refs: merge_manifest_levels(storage, refs),
        io=ManifestFiles(storage),
        recheck=key.recheck(added) if key is not None and added else None,
    )


def _nothing(view: View, what: str) -> None:
    _log.info("%s matched no rows of %s: nothing was committed", what, view.storage.uri)


# ----------------------------------------------------------------- operations


def delete(
    view: View,
    where: str,
    *,
    mode: RowMode,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot | None:
    """Delete the live rows where ``where`` holds; None when no row matches (nothing committed)."""
    _check_mode(mode)
    if where is None:
        raise InvalidArgument("delete needs where=...; to delete every row pass where='true'")
    candidates = _candidates(view, where)
    hits = _matches(view, candidates, where, {})
    if not hits:
        _nothing(view, f"delete where {where!r}")
        return None
    rewrites = [_rewrite(view, h.entry, h.positions, mode) for h in hits]
    parameters: dict[str, Any] = {
        "where": where,
        "mode": mode,
        "fragments_scanned": len(candidates),
    }
    how = _Commit("delete", message, author, properties)
    deleted = sum(len(h.positions) for h in hits)
    return _commit(view, how, rewrites, [], parameters, rows_deleted=deleted)


def _check_set(view: View, values: Any) -> dict[str, str]:
    if not isinstance(values, Mapping) or not values:
        raise InvalidArgument(
            "set must be a non-empty dict of column -> SQL expression, e.g. "
            f"{{'label': \"'spam'\"}}; got {values!r}"
        )
    out: dict[str, str] = {}
    for column, expr in values.items():
        if column not in view.public.names:
            raise InvalidArgument(
                f"set names unknown column {column!r}; the snapshot has {view.public.names}"
            )
        if not isinstance(expr, str) or not expr.strip():
            raise InvalidArgument(
                f"set[{column!r}] must be a SQL expression string (quote text: \"'spam'\"), "
                f"got {expr!r}"
            )
        if duckdb_type(view.public.field(column).type) is None:
            raise InvalidArgument(
                f"column {column!r} has type {view.public.field(column).type}, which SQL "
                "expressions cannot produce; use upsert() with the new rows instead"
            )
        out[column] = expr
    return out


def _checked_rows(view: View, table: pa.Table, what: str, validate: ValidateMode) -> pa.Table:
    """``table`` conformed to the snapshot schema (with field ids) and checked against the
    contract in force."""
    table = conform(table, view.schema, what=what)
    ref = view.snap.contract
    if ref is not None and validate == "contract":
        contracts.check(ref.api, read_contract_text(view.storage, ref.id), table, what=what)
    return table


def _key_check(view: View, names: Sequence[str], what: str) -> KeyCheck:
    ids = view.field_ids
    return KeyCheck(
        view.storage, view.schema, [ids[n] for n in names], stats_of=view.stats_of, what=what
    )


def update(
    view: View,
    values: Mapping[str, str],
    where: str | None,
    *,
    mode: RowMode,
    validate: ValidateMode,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot | None:
    """Set columns of the live rows where ``where`` holds (all rows without one).

    The new row versions are written as a new fragment (after the contract and
    primary-key checks); the old ones are deleted like `delete` does.
    """
    _check_mode(mode)
    exprs = _check_set(view, values)
    candidates = _candidates(view, where)
    hits = _matches(view, candidates, where, exprs)
    if not hits:
        _nothing(view, f"update where {where!r}")
        return None
    what = f"update of {view.storage.uri}"
    parts = []
    for hit in hits:
        raw = replace(hit.entry, deletion=None)
        old = read_table(
            view.storage, view.schema, view.public, [raw], None, view.schemas, view.schema_id
        ).take(hit.positions)
        assert hit.values is not None
        for column in exprs:
            f = view.public.field(column)
            old = old.set_column(
                view.public.get_field_index(column), f, hit.values.column(column).cast(f.type)
            )
        parts.append(old)
    new_rows = _checked_rows(view, pa.concat_tables(parts), what, validate)
    added = write_fragments(
        view.storage, [new_rows], schema_id=view.schema_id, layout=view.layout()
    )
    rewrites = [_rewrite(view, h.entry, h.positions, mode) for h in hits]
    key = None
    if view.snap.primary_key:
        key = _key_check(view, view.key_names, "this update")
        if set(exprs) & set(view.key_names):  # unchanged keys cannot collide
            key.check(added, _after(view, rewrites))
    parameters: dict[str, Any] = {
        "where": where,
        "set": dict(exprs),
        "mode": mode,
        "fragments_scanned": len(candidates),
    }
    how = _Commit("update", message, author, properties)
    deleted = sum(len(h.positions) for h in hits)
    return _commit(view, how, rewrites, added, parameters, rows_deleted=deleted, key=key)


def _upsert_keys(view: View, on: Sequence[str] | None) -> list[str]:
    if on is None:
        if not view.snap.primary_key:
            raise InvalidArgument(
                f"upsert needs on=[key columns]: {view.storage.uri} declares no primary key"
            )
        return view.key_names
    if isinstance(on, str):
        on = [on]
    check_declared(view.schema, list(on))  # the same rules as for a declared key
    return list(on)


def upsert(
    view: View,
    data: Any,
    on: Sequence[str] | None,
    *,
    mode: RowMode,
    validate: ValidateMode,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot | None:
    """Insert the rows of ``data`` whose key is new and replace the live rows whose key matches.

    Returns None when ``data`` has no rows (nothing committed).
    """
    _check_mode(mode)
    names = _upsert_keys(view, on)
    what = f"upsert to {view.storage.uri}"
    data_schema, tables = to_arrow_stream(data)
    conform(data_schema.empty_table(), view.schema, what=what)  # refuse before reading more
    table = pa.concat_tables([conform(t, view.schema, what=what) for t in tables])
    if table.num_rows == 0:
        _nothing(view, "upsert of no rows")
        return None
    table = _checked_rows(view, table, what, validate)
    added = write_fragments(view.storage, [table], schema_id=view.schema_id, layout=view.layout())
    declared = names == view.key_names
    key = _key_check(view, names, "this upsert")
    dupes = key.duplicates(added)
    if dupes:
        text = (
            f"the rows to upsert repeat keys ({', '.join(names)}) or have null keys, e.g. "
            f"{dupes[:5]}; each key must appear once. Nothing was committed"
        )
        if declared:
            raise PrimaryKeyViolation(text, columns=names, examples=dupes)
        raise InvalidArgument(text)
    hits = _positions_per_file(view, key.matches(added, view.entries))
    rewrites = [_rewrite(view, h.entry, h.positions, mode) for h in hits]
    replaced = sum(len(h.positions) for h in hits)
    parameters: dict[str, Any] = {"on": names, "mode": mode, "rows_replaced": replaced}
    how = _Commit("upsert", message, author, properties)
    return _commit(
        view,
        how,
        rewrites,
        added,
        parameters,
        rows_deleted=replaced,
        key=key if view.snap.primary_key else None,
    )
