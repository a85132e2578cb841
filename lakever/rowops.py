"""Row-level changes: delete, update and upsert, by merge-on-read or copy-on-write.

Planning a change reads as little as possible:

1. candidates: the predicate is bound like every filter (`lakever.expr`) and
   manifest statistics rule out the fragments that cannot match it
   (`lakever.pruning`) or the upserted keys, before any file is read; untouched
   fragments are reused by reference;
2. positions: the candidates are read through a scan plan (`lakever.reader`:
   verified files, deletion vectors applied) and DuckDB evaluates the predicate
   (or matches the keys) on their live rows, giving (fragment, row position) pairs;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from lakever import contract as contracts
from lakever._convert import to_arrow_stream
from lakever._metafiles import read_contract_text, write_schema
from lakever._types import RowMode, SchemaMode, ValidateMode
from lakever._writer import (
    _check_message,
    _check_properties,
    default_author,
    layout_for,
)
from lakever.commit import (
    AddFragments,
    Change,
    Check,
    ContractUnchanged,
    FragmentsUnchanged,
    Requirement,
    Rewrite,
    RewriteFragments,
    SchemaUnchanged,
    SetSchema,
    Update,
)
from lakever.deletion import Positions, keep_mask, positions_of, union, write_deletion_vector
from lakever.errors import InvalidArgument, PrimaryKeyViolation, SchemaMismatch
from lakever.evolution import plan_write
from lakever.field_tree import schema_changes as schema_diff
from lakever.format import DATA_DIR, FragmentEntry, Snapshot, Summary
from lakever.fragments import write_fragments
from lakever.integrity import verify
from lakever.keys import KeyCheck, check_declared
from lakever.manifest_list import ManifestFiles
from lakever.manifests import make_manifest
from lakever.planner import bind, make_plan, prune_entries
from lakever.projection import cast_exact, conform
from lakever.reader import ScanPlan, read_file, read_positions
from lakever.schema import check_names, iter_field_ids, schema_to_json
from lakever.snapshot import SnapshotState
from lakever.sql import (
    cursor,
    duckdb_type,
    importable,
    quote_identifier,
    register_arrow,
    schema_map,
    translate_errors,
)
from lakever.sqlplan import (
    FILE_COLUMN,
    POSITION_COLUMN,
    plan_sql,
    position_columns,
    reads_exactly,
    register_plan,
)

__all__ = ["delete", "update", "upsert"]

_log = logging.getLogger("lakever")


# ----------------------------------------------------------------- finding rows


def _check_mode(mode: Any) -> None:
    if mode not in ("merge-on-read", "copy-on-write"):
        raise InvalidArgument(f"mode must be 'merge-on-read' or 'copy-on-write', got {mode!r}")


def _key_names(state: SnapshotState) -> list[str]:
    """The declared primary key's columns, by their current names."""
    return [state.fields[fid].name for fid in state.snap.primary_key]


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The fragments ``where`` may match: their read plan, and their entries by path
    (only these: a snapshot's other entries are never built for a row change)."""

    plan: ScanPlan
    entries: dict[str, FragmentEntry]


def _candidates(state: SnapshotState, where: str | None, columns: Sequence[str]) -> _Candidates:
    """The fragments ``where`` may match (all of them without one)."""
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise InvalidArgument(f"where must be a non-empty SQL expression, got {where!r}")
    bound = bind(state, where, what="where")
    _, kept = prune_entries(state, bound)
    return _Candidates(make_plan(state, kept, columns, bound), {e.path: e for e in kept})


@dataclass(frozen=True, slots=True)
class _Hit:
    """The matching live rows of one fragment."""

    entry: FragmentEntry
    #: Their positions in the fragment's file, ascending.
    positions: Positions
    #: The rows themselves (the plan's columns), one per position.
    rows: pa.Table


def _matches(candidates: _Candidates) -> list[_Hit]:
    """The live rows of the candidates that pass the filter, per fragment, in order."""
    by_path = candidates.entries
    return [
        _Hit(by_path[task.path], pa.array(positions, pa.int64()), rows)
        for task, positions, rows in read_positions(candidates.plan)
    ]


def _positions(candidates: _Candidates) -> list[tuple[FragmentEntry, Positions]]:
    """The file positions of the live rows of the candidates that pass the filter (a
    delete needs no row values), per fragment, in order."""
    found = _positions_in_duckdb(candidates)
    if found is None:
        found = [(h.entry, h.positions) for h in _matches(candidates)]
    return found


def _positions_in_duckdb(candidates: _Candidates) -> list[tuple[FragmentEntry, Positions]] | None:
    """`_positions` with the filter inside DuckDB's Parquet scan: only the columns the
    filter reads are decoded, no row is handed to Arrow, and DuckDB returns the positions
    of the matching rows directly (``file_row_number``). The same DuckDB expression over
    the same values (read through the schema map by field id, as `read_exact` does
    for reads), so the same rows match as on the Arrow path.

    None when the plan is not one DuckDB reads exactly (`sqlplan.reads_exactly`), or DuckDB
    fails: the Arrow path then decides, and names any damage.
    """
    import duckdb

    plan = candidates.plan
    if plan.filter is None:
        return None
    if not plan.tasks:
        return []  # statistics ruled every fragment out
    names = list(plan.filter_columns)
    if not names or not reads_exactly(plan, names):
        return None
    mapping = schema_map(plan.schema, partial=True)
    if mapping is None:
        return None
    verify(plan.storage, plan.tasks, snapshot=plan.snapshot_id)
    extra = position_columns(plan.tasks)  # with a file name per row only for several
    con = cursor()
    try:
        register_plan(con, plan)  # deleted rows are not live: they never match again
        rows = plan_sql(plan, names, mapping, positions=True)
        table = con.sql(
            f"SELECT {', '.join(extra)} FROM ({rows}) WHERE ({plan.filter})"
        ).to_arrow_table()
    except (duckdb.Error, pa.ArrowException):
        return None
    finally:
        con.close()
    positions = table.column(POSITION_COLUMN).to_numpy(zero_copy_only=False).astype(np.int64)
    by_path = candidates.entries
    out: list[tuple[FragmentEntry, Positions]] = []
    files = (
        table.column(FILE_COLUMN).to_numpy(zero_copy_only=False) if FILE_COLUMN in extra else None
    )
    for t in plan.tasks:
        mine = np.sort(
            positions if files is None else positions[files == plan.storage.full_path(t.path)]
        )
        if len(mine):
            out.append((by_path[t.path], pa.array(mine, pa.int64())))
    return out


# ----------------------------------------------------------------- rewriting


def _rewrite(
    state: SnapshotState, entry: FragmentEntry, positions: Positions, mode: RowMode
) -> Rewrite:
    """Delete ``positions`` from ``entry``: a new deletion vector, or a rewritten file."""
    storage = state.storage
    deleted = union(positions_of(storage, entry), positions)
    if len(deleted) >= entry.num_rows:
        return Rewrite(entry, ())  # nothing left: the fragment leaves the manifest
    if mode == "merge-on-read":
        dv = write_deletion_vector(storage, deleted)
        return Rewrite(entry, (replace(entry, deletion=dv),))
    physical = state.schema_of(entry.schema_id)
    kept = read_file(storage, physical, entry, snapshot=state.snap.snapshot_id).filter(
        keep_mask(entry.num_rows, deleted)
    )
    # The rewrite keeps the file's physical schema (no conversion, the same field ids),
    # its partition record and its directory.
    piece = (entry.path.rsplit("/", 1)[0].removeprefix(DATA_DIR).lstrip("/"), entry.partition, kept)
    written = write_fragments(
        storage, [kept], schema_id=entry.schema_id, layout=lambda _rows: [piece]
    )
    return Rewrite(entry, tuple(written))


def _summary(rewrites: Sequence[Rewrite], rows_deleted: int) -> Summary:
    """What ``rewrites`` change: rows hidden, files a copy-on-write added or dropped."""
    old = {r.old.path for r in rewrites}
    new = [n for r in rewrites for n in r.new if n.path not in old]
    gone = [r.old for r in rewrites if all(n.path != r.old.path for n in r.new)]
    # A copy-on-write rewrite copies the rows it keeps: they are neither added nor removed.
    return Summary(
        rows_removed=rows_deleted,
        bytes_added=sum(e.size_bytes for e in new),
        bytes_removed=sum(e.size_bytes for e in gone),
        fragments_added=len(new),
        fragments_removed=len(gone),
    )


def _after(state: SnapshotState, rewrites: Sequence[Rewrite]) -> list[FragmentEntry]:
    """The base's fragments with the rewrites applied (rows the change keeps)."""
    by_path = {r.old.path: r.new for r in rewrites}
    return [n for e in state.entries for n in by_path.get(e.path, (e,))]


@dataclass(frozen=True, slots=True)
class _Commit:
    operation: str
    message: str | None
    author: str | None
    properties: Mapping[str, str] | None


def _commit(
    state: SnapshotState,
    how: _Commit,
    rewrites: Sequence[Rewrite],
    added: Sequence[FragmentEntry],
    parameters: dict[str, Any],
    *,
    rows_deleted: int,
    key: KeyCheck | None = None,
    schema: pa.Schema | None = None,
    last_field_id: int | None = None,
) -> Snapshot:
    """Commit the change; ``schema`` and ``last_field_id`` (an upsert that evolved the
    schema) replace the snapshot's."""
    _check_message(how.message)
    storage = state.storage
    written = sum(e.num_rows for e in added)
    parameters.update(
        rows_deleted=rows_deleted,
        rows_written=written,
        fragments_touched=len(rewrites),
        deletion_vectors_written=sum(1 for r in rewrites for n in r.new if n.path == r.old.path),
    )
    snap = state.snap
    updates: list[Update] = []
    # A delete only hides rows by position: it lands under whatever schema and contract
    # a concurrent winner left. Updates and upserts wrote rows checked against this
    # snapshot's, like an append.
    requirements: list[Requirement] = [FragmentsUnchanged(tuple(rewrites))]
    if how.operation != "delete":
        requirements += [
            SchemaUnchanged(snap.schema, snap.last_field_id),
            ContractUnchanged(snap.contract),
        ]
    if schema is not None:
        assert last_field_id is not None
        updates.append(SetSchema(schema_to_json(schema), last_field_id))
    if rewrites:
        updates.append(RewriteFragments(tuple(rewrites), _summary(rewrites, rows_deleted)))
    if added:
        updates.append(AddFragments(make_manifest(storage, added, level=0)))
        if key is not None:
            requirements.append(Check(key.recheck(added)))
    change = Change(
        operation=how.operation,
        author=how.author if how.author is not None else default_author(),
        message=how.message or "",
        properties=_check_properties(how.properties),
        updates=tuple(updates),
        requirements=tuple(requirements),
        parameters=parameters,
    )
    return state.line.commit(snap, change, io=ManifestFiles(storage))


def _nothing(state: SnapshotState, what: str) -> None:
    _log.info("%s matched no rows of %s: nothing was committed", what, state.uri)


# ----------------------------------------------------------------- operations


def delete(
    state: SnapshotState,
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
    candidates = _candidates(state, where, [])
    hits = _positions(candidates)
    if not hits:
        _nothing(state, f"delete where {where!r}")
        return None
    rewrites = [_rewrite(state, entry, positions, mode) for entry, positions in hits]
    parameters: dict[str, Any] = {
        "where": where,
        "mode": mode,
        "fragments_scanned": len(candidates.plan.tasks),
    }
    how = _Commit("delete", message, author, properties)
    deleted = sum(len(positions) for _, positions in hits)
    return _commit(state, how, rewrites, [], parameters, rows_deleted=deleted)


def _check_set(state: SnapshotState, values: Any) -> dict[str, str]:
    """Each SET column -> its value expression bound as DuckDB SQL over the columns."""
    from lakever.expr import bind_expression

    if not isinstance(values, Mapping) or not values:
        raise InvalidArgument(
            "set must be a non-empty dict of column -> SQL expression, e.g. "
            f"{{'label': \"'spam'\"}}; got {values!r}"
        )
    public = state.public
    out: dict[str, str] = {}
    for column, expr in values.items():
        if column not in public.names:
            raise InvalidArgument(
                f"set names unknown column {column!r}; the snapshot has {public.names}"
            )
        if not isinstance(expr, str) or not expr.strip():
            raise InvalidArgument(
                f"set[{column!r}] must be a SQL expression string (quote text: \"'spam'\"), "
                f"got {expr!r}"
            )
        if duckdb_type(public.field(column).type) is None:
            raise InvalidArgument(
                f"column {column!r} has type {public.field(column).type}, which SQL "
                "expressions cannot produce; use upsert() with the new rows instead"
            )
        out[column], _ = bind_expression(expr, state.schema, what=f"set[{column!r}]")
    return out


def _new_values(state: SnapshotState, rows: pa.Table, exprs: Mapping[str, str]) -> pa.Table:
    """``rows`` with each SET column replaced by its expression's value (in its own type)."""
    public = state.public
    select = ", ".join(
        f"CAST(({sql}) AS {duckdb_type(public.field(c).type)}) AS {quote_identifier(c)}"
        for c, sql in exprs.items()
    )
    text = "SET " + ", ".join(f"{c} = {e}" for c, e in exprs.items())
    con = cursor()
    try:  # float16 / decimal256 columns widened exactly (`register_arrow`)
        register_arrow(
            con, "__lakever_rows", rows.append_column("__i", pa.array(range(rows.num_rows)))
        )
        with translate_errors("update", text, public):
            values = con.sql(f"SELECT {select} FROM __lakever_rows ORDER BY __i").to_arrow_table()
    finally:
        con.close()
    for column in exprs:
        f = public.field(column)
        try:
            new = cast_exact(values.column(column), f.type, column=column, what=f"update {text}")
        except SchemaMismatch as exc:  # names the first value that does not fit exactly
            raise InvalidArgument(str(exc)) from exc
        rows = rows.set_column(public.get_field_index(column), f, new)
    return rows


def _checked_rows(
    state: SnapshotState,
    table: pa.Table,
    what: str,
    validate: ValidateMode,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """``table`` conformed to ``schema`` (default: the snapshot's; with field ids) and checked
    against the contract in force."""
    table = conform(table, state.schema if schema is None else schema, what=what)
    ref = state.snap.contract
    if ref is not None and validate == "contract":
        contracts.check(ref.api, read_contract_text(state.storage, ref.id), table, what=what)
    return table


def _key_check(state: SnapshotState, names: Sequence[str], what: str) -> KeyCheck:
    ids = state.field_ids
    return KeyCheck(
        state.storage, state.schema, [ids[n] for n in names], stats_of=state.stats_of, what=what
    )


def update(
    state: SnapshotState,
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
    exprs = _check_set(state, values)
    candidates = _candidates(state, where, state.public.names)
    hits = _matches(candidates)
    if not hits:
        _nothing(state, f"update where {where!r}")
        return None
    what = f"update of {state.uri}"
    old_rows = pa.concat_tables([h.rows for h in hits])
    new_rows = _new_values(state, old_rows, exprs)
    # Rows whose SET columns keep their values are neither rewritten nor committed.
    changed = _changed_rows(old_rows, new_rows, list(exprs))
    unchanged = old_rows.num_rows - len(changed)
    if not len(changed):
        _log.info(
            "update where %r set every one of the %d row(s) it matched in %s to the values "
            "they have: nothing was committed",
            where,
            unchanged,
            state.uri,
        )
        return None
    if unchanged:
        hits = _only(hits, changed)
        new_rows = new_rows.take(changed)
    new_rows = _checked_rows(state, new_rows, what, validate)
    added = write_fragments(
        state.storage,
        [new_rows],
        schema_id=state.schema_id,
        layout=layout_for(state.snap, state.schema),
    )
    rewrites = [_rewrite(state, h.entry, h.positions, mode) for h in hits]
    key = None
    if state.snap.primary_key:
        key = _key_check(state, _key_names(state), "this update")
        if set(exprs) & set(_key_names(state)):  # unchanged keys cannot collide
            key.check(added, _after(state, rewrites))
    parameters: dict[str, Any] = {
        "where": where,
        "set": dict(values),
        "mode": mode,
        "fragments_scanned": len(candidates.plan.tasks),
        "rows_unchanged": unchanged,
    }
    how = _Commit("update", message, author, properties)
    deleted = sum(len(h.positions) for h in hits)
    return _commit(state, how, rewrites, added, parameters, rows_deleted=deleted, key=key)


def _only(hits: Sequence[_Hit], rows: pa.Array[Any]) -> list[_Hit]:
    """``hits`` keeping only ``rows`` (ascending indices into their concatenated rows)."""
    out, start = [], 0
    wanted = rows.to_numpy()
    for h in hits:
        end = start + len(h.positions)
        mine = wanted[(wanted >= start) & (wanted < end)] - start
        if len(mine):
            keep = pa.array(mine, pa.int64())
            out.append(_Hit(h.entry, h.positions.take(keep), h.rows.take(keep)))
        start = end
    return out


def _changed_rows(old: pa.Table, new: pa.Table, columns: Sequence[str]) -> pa.Array[Any]:
    """Indices (ascending) of the rows where a column of ``columns`` differs from ``old`` to
    ``new``, with SQL's ``IS DISTINCT FROM`` (NULL equals NULL, NaN equals NaN)."""
    arrays: dict[str, Any] = {"i": pa.array(range(old.num_rows), pa.int64())}
    for k, c in enumerate(columns):
        t = importable(old.schema.field(c).type)
        arrays[f"o{k}"], arrays[f"n{k}"] = old.column(c).cast(t), new.column(c).cast(t)
    differ = " OR ".join(f"o{k} IS DISTINCT FROM n{k}" for k in range(len(columns)))
    con = cursor()
    try:
        register_arrow(con, "__pairs", pa.table(arrays))
        table = con.sql(f"SELECT i FROM __pairs WHERE {differ} ORDER BY i").to_arrow_table()
    finally:
        con.close()
    out: pa.Array[Any] = table.column(0).combine_chunks().cast(pa.int64())
    return out


def _upsert_keys(state: SnapshotState, on: Sequence[str] | None) -> list[str]:
    if on is None:
        if not state.snap.primary_key:
            raise InvalidArgument(
                f"upsert needs on=[key columns]: {state.uri} declares no primary key"
            )
        return _key_names(state)
    if isinstance(on, str):
        on = [on]
    check_declared(state.schema, list(on))  # the same rules as for a declared key
    return list(on)


def upsert(
    state: SnapshotState,
    data: Any,
    on: Sequence[str] | None,
    *,
    mode: RowMode,
    schema_mode: SchemaMode = "strict",
    validate: ValidateMode,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot | None:
    """Insert the rows of ``data`` whose key is new and replace the live rows whose key matches.

    ``schema_mode`` works as for an append: "add" and "merge" may evolve the schema,
    which is committed with the upsert. Returns None when ``data`` has no rows
    (nothing committed).
    """
    _check_mode(mode)
    if schema_mode not in ("strict", "add", "merge"):
        raise InvalidArgument(
            f"schema_mode must be 'strict', 'add' or 'merge', got {schema_mode!r}"
        )
    names = _upsert_keys(state, on)
    what = f"upsert to {state.uri}"
    data_schema, tables = to_arrow_stream(data)
    target, last_id = plan_write(state.schema, state.snap.last_field_id, data_schema, schema_mode)
    check_names(target, before=state.schema, what=what)
    # Refuse a mismatch before reading more of the data.
    conform(data_schema.empty_table(), target, what=what, mode=schema_mode)
    table = pa.concat_tables([conform(t, target, what=what, mode=schema_mode) for t in tables])
    if table.num_rows == 0:
        _nothing(state, "upsert of no rows")
        return None
    table = _checked_rows(state, table, what, validate, target)
    evolved = schema_to_json(target) != state.snap.schema
    sid = write_schema(state.storage, target) if evolved else state.schema_id
    added = write_fragments(
        state.storage, [table], schema_id=sid, layout=layout_for(state.snap, target)
    )
    declared = names == _key_names(state)
    ids = {f.name: fid for fid, f in iter_field_ids(target)}
    key = KeyCheck(
        state.storage,
        target,
        [ids[n] for n in names],
        stats_of=None if evolved else state.stats_of,
        what="this upsert",
    )
    dupes = key.duplicates(added)
    if dupes:
        text = (
            f"the rows to upsert repeat keys ({', '.join(names)}) or have null keys, e.g. "
            f"{dupes[:5]}; each key must appear once. Nothing was committed"
        )
        if declared:
            raise PrimaryKeyViolation(text, columns=names, examples=dupes)
        raise InvalidArgument(text)
    matches = key.matches(added, state.entries)
    rewrites = [_rewrite(state, entry, positions, mode) for entry, positions in matches]
    replaced = sum(len(positions) for _, positions in matches)
    parameters: dict[str, Any] = {"on": names, "mode": mode, "rows_replaced": replaced}
    if evolved:
        parameters["schema_mode"] = schema_mode
        parameters["schema_changes"] = [c.to_dict() for c in schema_diff(state.schema, target)]
    how = _Commit("upsert", message, author, properties)
    return _commit(
        state,
        how,
        rewrites,
        added,
        parameters,
        rows_deleted=replaced,
        key=key if state.snap.primary_key else None,
        schema=target if evolved else None,
        last_field_id=last_id if evolved else None,
    )
