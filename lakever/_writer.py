"""The write path: data, schema changes and contracts in, committed snapshot out.

Order of effects (the crash-safety argument): fragments, manifests, schema and
contract files are written as new immutable files and made durable; only then
is the log entry created with put-if-absent. A writer killed at any point leaves
either no new version or a complete one, plus at worst unreferenced files.

Incoming rows are conformed to the schema and checked against the contract
before they are written, so a refused write leaves the dataset unchanged.

A data commit (`commit_data`) is three steps: `prepare_data` (schema, field ids,
layout, contract, key; on this process), the write step (`lakever._writeplan.WritePlan`:
here for local data, on Ray or Dask workers for theirs) and `commit_written` (the key
check and one log entry for every fragment written).
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakever import contract as contracts
from lakever._convert import to_arrow_stream
from lakever._fieldids import claim_field_ids
from lakever._metafiles import read_contract_text, write_contract_text, write_schema
from lakever._records import SchemaChange
from lakever._types import SchemaMode, ValidateMode
from lakever._writeplan import WritePlan, layout_fn
from lakever.commit import (
    AddFragments,
    Change,
    Check,
    ContractUnchanged,
    DatasetAbsent,
    NoConcurrentCommit,
    PartitioningUnchanged,
    RemoveAll,
    Requirement,
    SchemaUnchanged,
    SetContract,
    SetPartitioning,
    SetPrimaryKey,
    SetSchema,
    SetSortOrder,
    Update,
)
from lakever.errors import InvalidArgument, SchemaEvolutionError
from lakever.evolution import ColumnRef, evolve, plan_write
from lakever.field_tree import schema_changes as diff
from lakever.format import ContractRef, FragmentEntry, Snapshot
from lakever.fragments import DEFAULT_MAX_ROWS_PER_FRAGMENT, Layout
from lakever.integrity import written
from lakever.keys import KeyCheck, check_declared
from lakever.log import Line
from lakever.manifest_list import ManifestFiles
from lakever.manifests import make_manifest, read_manifest
from lakever.partitioning import (
    PartitionField,
    SortField,
    Transform,
    resolve_sort,
    resolve_spec,
)
from lakever.projection import check_fits
from lakever.schema import (
    assign_field_ids,
    check_names,
    iter_field_ids,
    remembered_schema,
    schema_from_json,
    schema_to_json,
    strip_field_ids,
)
from lakever.storage import Storage

__all__ = [
    "KEEP",
    "commit_contract",
    "commit_data",
    "commit_evolve",
    "commit_partitioning",
    "commit_written",
    "prepare_data",
    "default_author",
]


#: ``contract=`` default of `commit_evolve`: the contract in force stays.
KEEP: Any = object()


def default_author() -> str:
    # getpass.getuser() reads these variables first; only the password database
    # lookup after them (a file read per commit) is remembered.
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    return _account()


@functools.cache
def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _check_properties(properties: Mapping[str, str] | None) -> dict[str, str]:
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise InvalidArgument(f"properties must be a dict of str to str, got {properties!r}")
    bad = [k for k, v in properties.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise InvalidArgument(
            f"properties must map str to str; these keys have a non-string key or value: {bad}"
        )
    return dict(properties)


def _check_message(message: Any) -> None:
    if message is not None and not isinstance(message, str):
        raise InvalidArgument(f"message must be a string, got {message!r}")


def _check_write_options(max_rows_per_fragment: Any, schema_mode: Any, validate: Any) -> None:
    if (
        isinstance(max_rows_per_fragment, bool)
        or not isinstance(max_rows_per_fragment, int)
        or max_rows_per_fragment <= 0
    ):
        raise InvalidArgument(
            f"max_rows_per_fragment must be a positive int, got {max_rows_per_fragment!r}"
        )
    if schema_mode not in ("strict", "add", "merge"):
        raise InvalidArgument(
            f"schema_mode must be 'strict', 'add' or 'merge', got {schema_mode!r}"
        )
    if validate not in ("contract", "skip"):
        raise InvalidArgument(f"validate must be 'contract' or 'skip', got {validate!r}")


def _same_shape(base: Snapshot) -> tuple[Requirement, ...]:
    """A change computed against ``base``'s schema, field ids and contract needs them kept."""
    return (SchemaUnchanged(base.schema, base.last_field_id), ContractUnchanged(base.contract))


@dataclass(frozen=True)
class PreparedWrite:
    """A data commit after its prepare step: the write step (`plan`) and what the commit
    step records. Only ``plan`` travels to workers."""

    plan: WritePlan
    base: Snapshot | None
    operation: str
    schema_json: dict[str, Any]
    last_id: int
    ref: ContractRef | None
    key: tuple[int, ...]
    layout_json: tuple[tuple[dict[str, Any], ...] | None, tuple[dict[str, Any], ...] | None]
    parameters: dict[str, Any]
    message: str
    author: str
    properties: dict[str, str]


def commit_data(
    storage: Storage,
    log: Line,
    base: Snapshot | None,
    data: Any,
    *,
    operation: str,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
    max_rows_per_fragment: int | None = None,
    schema_mode: SchemaMode = "strict",
    validate: ValidateMode = "contract",
    contract: Any = None,
    partition_by: Sequence[str | Transform] | None = None,
    sort_by: Sequence[str] | str | None = None,
    primary_key: Sequence[str] | None = None,
) -> Snapshot:
    """Write ``data`` as fragments and commit it as ``operation`` on top of ``base``.

    ``contract``, ``partition_by`` and ``primary_key`` (only when creating, ``base``
    None) are set at version 0; ``sort_by`` given when creating becomes the dataset's
    default. With a primary key, the rows are checked against it before the commit.
    A Ray Dataset or a Dask DataFrame is written by the engine's workers
    (`lakever.interop.write_distributed`) and committed here, in one commit.
    """
    from lakever.interop.engines import distributed_engine, engine_schema, write_distributed

    engine = distributed_engine(data)
    if engine is not None:
        data_schema = engine_schema(engine, storage, data)
    else:
        data_schema, tables = to_arrow_stream(data)
    prepared = prepare_data(
        storage, log, base, data_schema, operation=operation, message=message, author=author,
        properties=properties, max_rows_per_fragment=max_rows_per_fragment,
        schema_mode=schema_mode, validate=validate, contract=contract,
        partition_by=partition_by, sort_by=sort_by, primary_key=primary_key,
    )  # fmt: skip
    if engine is not None:
        entries = write_distributed(engine, prepared.plan, data)
    else:
        entries = prepared.plan.write(tables)
        written(storage, entries)  # hashed as written: reading them back here needs no rehash
    return commit_written(storage, log, prepared, entries)


def prepare_data(
    storage: Storage,
    log: Line,
    base: Snapshot | None,
    data_schema: pa.Schema,
    *,
    operation: str,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
    max_rows_per_fragment: int | None = None,
    schema_mode: SchemaMode = "strict",
    validate: ValidateMode = "contract",
    contract: Any = None,
    partition_by: Sequence[str | Transform] | None = None,
    sort_by: Sequence[str] | str | None = None,
    primary_key: Sequence[str] | None = None,
) -> PreparedWrite:
    """The prepare step of `commit_data` for data of schema ``data_schema``: check the
    options, plan the target schema (claiming new field ids, writing its schema file),
    the layout, the contract and the key. Writes no data."""
    if max_rows_per_fragment is None:
        max_rows_per_fragment = DEFAULT_MAX_ROWS_PER_FRAGMENT
    _check_write_options(max_rows_per_fragment, schema_mode, validate)
    _check_message(message)
    props = _check_properties(properties)
    what = f"{operation} to {storage.uri}"
    current: pa.Schema | None = None
    current_id: str | None = None
    if base is None:
        target, last_id = assign_field_ids(data_schema)
        check_names(target, what=what)
        what_schema = f"the schema of the data for {storage.uri}"
        attached = _fitting_contract(storage, contract, strip_field_ids(target), what_schema)
        ref, text = attached if attached is not None else (None, None)
    else:
        current, current_id = remembered_schema(base.schema)
        target, last_id = plan_write(current, base.last_field_id, data_schema, schema_mode)
        check_names(target, before=current, what=what)
        # Check the schema before writing any byte, so a mismatch costs nothing.
        check_fits(data_schema, target, what=what, mode=schema_mode)
        cur = current
        target, last_id = _claimed(
            storage,
            log,
            base,
            (target, last_id),
            lambda floor: plan_write(cur, floor, data_schema, schema_mode),
        )
        ref = base.contract
        text = None if ref is None else read_contract_text(storage, ref.id)
    key = _key_of(base, target, primary_key)
    # The base's own schema record when the write keeps it (the usual append): the next
    # commit then finds it parsed (`remembered_schema`), and the record is not rebuilt.
    if base is not None and target is current and current_id is not None:
        schema_json = base.schema
    else:
        schema_json = schema_to_json(target)
    parameters: dict[str, Any] = {}
    if base is None or schema_json != base.schema or current_id is None:
        sid = write_schema(storage, target)
        if current is not None:
            parameters["schema_mode"] = schema_mode
            parameters["schema_changes"] = [c.to_dict() for c in diff(current, target)]
    else:
        sid = current_id
    spec, sort, layout_json = _layout(base, target, partition_by, sort_by)
    checked: tuple[str, str] | None = None
    if ref is not None and text is not None:
        parameters["contract_validation"] = "skipped" if validate == "skip" else "passed"
        if validate == "contract":
            checked = (ref.api, text)
    plan = WritePlan(
        storage=storage,
        target=target,
        schema_id=sid,
        what=what,
        schema_mode=schema_mode,
        max_rows=max_rows_per_fragment,
        spec=tuple(spec),
        sort=tuple(sort),
        contract=checked,
    )
    return PreparedWrite(
        plan=plan,
        base=base,
        operation=operation,
        schema_json=schema_json,
        last_id=last_id,
        ref=ref,
        key=key,
        layout_json=layout_json,
        parameters=parameters,
        message=message or "",
        author=author if author is not None else default_author(),
        properties=props,
    )


def commit_written(
    storage: Storage, log: Line, prepared: PreparedWrite, entries: list[FragmentEntry]
) -> Snapshot:
    """The commit step of `commit_data`: check the primary key over the written fragments
    (reading their key columns here) and commit them all in one log entry."""
    p = prepared
    base, operation = p.base, p.operation
    keys = None
    if p.key:
        keys = KeyCheck(storage, p.plan.target, p.key, what=f"this {operation}")
        joined = base is not None and operation != "overwrite"
        keys.check(entries, entries_of(storage, base) if base is not None and joined else [])
    updates: list[Update] = []
    requirements: list[Requirement] = []
    if base is None:
        spec_json, sort_json = p.layout_json
        updates += [
            SetContract(p.ref),
            SetPartitioning(spec_json or ()),
            SetSortOrder(sort_json or ()),
            SetPrimaryKey(p.key),
        ]
        same = (p.schema_json, p.last_id, p.ref) if operation == "append" else None
        requirements.append(DatasetAbsent(or_same=same))
    elif operation == "overwrite":
        updates.append(RemoveAll())
        requirements.append(NoConcurrentCommit())
    else:
        requirements += [
            SchemaUnchanged(base.schema, base.last_field_id),
            ContractUnchanged(base.contract),
        ]
    updates.append(SetSchema(p.schema_json, p.last_id))
    if entries:
        updates.append(AddFragments(make_manifest(storage, entries, level=0)))
        if keys is not None:
            requirements.append(Check(keys.recheck(entries)))
    change = Change(
        operation=operation,
        author=p.author,
        message=p.message,
        properties=p.properties,
        updates=tuple(updates),
        requirements=tuple(requirements),
        parameters=p.parameters,
    )
    return log.commit(base, change, io=ManifestFiles(storage))


def _layout(
    base: Snapshot | None,
    target: pa.Schema,
    partition_by: Sequence[str | Transform] | None,
    sort_by: Sequence[str] | str | None,
) -> tuple[
    tuple[PartitionField, ...],
    tuple[SortField, ...],
    tuple[tuple[dict[str, Any], ...] | None, tuple[dict[str, Any], ...] | None],
]:
    """The partition spec and sort for this write, and what to record (None: keep base's)."""
    if base is not None and partition_by is not None:
        wanted = tuple(f.to_json() for f in resolve_spec(partition_by, target))
        if wanted != tuple(base.partitioning):
            raise InvalidArgument(
                "partition_by is set when a dataset is created; to change it later use "
                "Dataset.set_partitioning(...), which affects new fragments only"
            )
    if base is None:
        spec = resolve_spec(partition_by or (), target)
        sort = resolve_sort(sort_by or (), target)
        return spec, sort, (tuple(f.to_json() for f in spec), tuple(s.to_json() for s in sort))
    spec = tuple(PartitionField.from_json(f) for f in base.partitioning)
    if sort_by is not None:
        sort = resolve_sort(sort_by, target)
    else:
        sort = tuple(SortField.from_json(s) for s in base.sort_by)
    live = {fid for fid, _ in iter_field_ids(target)}
    # A partition or sort source column dropped since: new rows are simply not split by it.
    spec = tuple(f for f in spec if f.field_id in live)
    sort = tuple(s for s in sort if s.field_id in live)
    return spec, sort, (None, None)


def layout_for(snap: Snapshot, schema: pa.Schema) -> Layout | None:
    """The partitioning and sort a write on top of ``snap`` applies to new rows."""
    spec, sort, _ = _layout(snap, schema, None, None)
    return layout_fn(spec, sort)


def commit_partitioning(
    storage: Storage,
    log: Line,
    base: Snapshot,
    partition_by: Sequence[str | Transform],
    *,
    message: str | None,
    author: str | None,
) -> Snapshot:
    """Commit a new partition spec (operation "set_partitioning"); no data is rewritten."""
    _check_message(message)
    spec = resolve_spec(partition_by, schema_from_json(base.schema))
    change = Change(
        operation="set_partitioning",
        author=author if author is not None else default_author(),
        message=message or "",
        properties={},
        updates=(SetPartitioning(tuple(f.to_json() for f in spec)),),
        requirements=(*_same_shape(base), PartitioningUnchanged(tuple(base.partitioning))),
        parameters={"partitioning": [f.to_json() for f in spec]},
    )
    return log.commit(base, change, io=ManifestFiles(storage))


def _key_of(
    base: Snapshot | None, target: pa.Schema, primary_key: Sequence[str] | None
) -> tuple[int, ...]:
    """The primary key (field ids) a data commit must keep: the base's, or one declared now."""
    key = base.primary_key if base is not None else ()
    if primary_key is None:
        return key
    declared = check_declared(target, primary_key)
    if base is not None and declared != key:
        raise InvalidArgument(
            f"primary_key={list(primary_key)} differs from the dataset's declared key; a "
            "primary key is declared once, when the dataset is created"
        )
    return declared


def entries_of(storage: Storage, snap: Snapshot) -> list[FragmentEntry]:
    """The fragment entries of a snapshot, in read order."""
    return [e for m in snap.manifests for e in read_manifest(storage, m)]


def _contract_refusal(
    cases: pa.Table, old: pa.Schema, new: pa.Schema, changes: list[SchemaChange]
) -> SchemaEvolutionError:
    """Explain why the contract in force forbids a schema change."""
    case = cases.to_pylist()[0]
    column, check = case["column"] or "?", case["check"]
    old_type = str(old.field(column).type) if column in old.names else None
    new_type = str(new.field(column).type) if column in new.names else None
    if check == "column_in_dataframe":
        change = next((c for c in changes if column in (c.column, c.old_column)), None)
        if change is not None and change.kind == "rename":
            what = f"cannot rename column {column!r} to {change.column!r}"
        else:
            what = f"cannot drop column {column!r}"
        why = f"the dataset's contract requires a column named {column!r}"
    else:
        what = f"cannot change column {column!r} to {new_type}"
        why = f"the dataset's contract requires {check} for it"
    return SchemaEvolutionError(
        f"{what}: {why}. Pass the updated contract in the same commit: "
        "evolve(..., contract=new_contract)",
        column=column,
        old_type=old_type,
        new_type=new_type,
    )


def commit_evolve(
    storage: Storage,
    log: Line,
    base: Snapshot,
    *,
    add: Mapping[ColumnRef, Any] | None,
    rename: Mapping[ColumnRef, str] | None,
    drop: Iterable[ColumnRef] | None,
    widen: Mapping[ColumnRef, Any] | None,
    contract: Any = KEEP,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    """Commit a schema-only snapshot (operation "evolve"): no fragment is written or rewritten.

    ``contract`` (unless `KEEP`) replaces the contract in the same commit; the
    contract in force afterwards must accept the new schema.
    """
    _check_message(message)
    props = _check_properties(properties)
    current = schema_from_json(base.schema)
    new, last_id = evolve(
        current, base.last_field_id, add=add, rename=rename, drop=drop, widen=widen
    )
    changes = diff(current, new)
    _keep_key(base, changes)
    public = strip_field_ids(new)
    parameters: dict[str, Any] = {"schema_changes": [c.to_dict() for c in changes]}
    ref = base.contract
    if contract is KEEP:
        if ref is not None:
            text = read_contract_text(storage, ref.id)
            cases = contracts.failures(ref.api, text, public.empty_table())
            if cases is not None:
                raise _contract_refusal(cases, strip_field_ids(current), public, changes)
    else:
        attached = _fitting_contract(storage, contract, public, f"the new schema of {storage.uri}")
        ref = None if attached is None else attached[0]
        parameters["contract"] = None if ref is None else ref.to_json()
    new, last_id = _claimed(
        storage,
        log,
        base,
        (new, last_id),
        lambda floor: evolve(current, floor, add=add, rename=rename, drop=drop, widen=widen),
    )
    parameters["schema_changes"] = [c.to_dict() for c in diff(current, new)]
    write_schema(storage, new)
    change = Change(
        operation="evolve",
        author=author if author is not None else default_author(),
        message=message or "",
        properties=props,
        updates=(SetSchema(schema_to_json(new), last_id), SetContract(ref)),
        requirements=_same_shape(base),
        parameters=parameters,
    )
    return log.commit(base, change, io=ManifestFiles(storage))


def _claimed(
    storage: Storage,
    log: Line,
    base: Snapshot,
    planned: tuple[pa.Schema, int],
    replan: Callable[[int], tuple[pa.Schema, int]],
) -> tuple[pa.Schema, int]:
    """``planned`` (a schema and its last field id) with its new ids claimed dataset-wide.

    The ids a change adds are planned as ``base.last_field_id + 1 ...``, which
    another branch may have used; they are claimed (`claim_field_ids`) and, when
    the claim starts elsewhere, planned again from there with ``replan(floor)``.
    """
    schema, last = planned
    count = last - base.last_field_id
    if count <= 0:
        return planned
    current = schema_from_json(base.schema)
    added = [c.column for c in diff(current, schema) if c.kind == "add"]
    first = claim_field_ids(
        storage, count, floor=base.last_field_id, branch=log.branch_id, columns=added
    )
    if first == base.last_field_id + 1:
        return planned
    schema, last = replan(first - 1)
    assert last == first + count - 1, "replanning assigned another number of field ids"
    return schema, last


def _keep_key(base: Snapshot, changes: list[SchemaChange]) -> None:
    """Refuse dropping a column of the declared primary key."""
    for c in changes:
        if c.kind == "drop" and c.field_id in base.primary_key:
            raise SchemaEvolutionError(
                f"cannot drop column {c.column!r}: it is part of the dataset's primary key, "
                "which every commit enforces. Keep the column (renaming and widening it are "
                "allowed)",
                column=c.column,
                old_type=c.old_type,
                new_type=None,
            )


def _fitting_contract(
    storage: Storage, contract: Any, schema: pa.Schema, what: str
) -> tuple[ContractRef, str] | None:
    """Store ``contract`` (None: no contract) if it accepts ``schema``; return (ref, JSON text).

    Raises:
        InvalidArgument: not a pandera schema, or one that cannot be stored faithfully.
        ContractViolation: the contract rejects ``schema`` (missing columns, other dtypes).
    """
    if contract is None:
        return None
    api, text = contracts.to_json(contract)
    cases = contracts.failures(api, text, schema.empty_table())
    if cases is not None:
        raise contracts.violation(
            f"the contract does not fit {what}, so attaching it",
            cases,
            advice="Nothing was committed. Change the contract so that it accepts the schema",
        )
    return ContractRef(id=write_contract_text(storage, text), api=api), text


def commit_contract(
    storage: Storage,
    log: Line,
    base: Snapshot,
    contract: Any,
    *,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    """Commit a snapshot whose contract is ``contract`` (None removes it); no data changes.

    Raises:
        InvalidArgument: not a pandera schema, or one that cannot be stored faithfully.
        ContractViolation: the contract does not fit the dataset's schema (missing
            columns, other dtypes); existing rows are not checked (see `Dataset.validate`).
    """
    _check_message(message)
    props = _check_properties(properties)
    public = strip_field_ids(schema_from_json(base.schema))
    what = f"the schema of {storage.uri} (version {base.version})"
    attached = _fitting_contract(storage, contract, public, what)
    ref = None if attached is None else attached[0]
    change = Change(
        operation="set_contract",
        author=author if author is not None else default_author(),
        message=message or "",
        properties=props,
        updates=(SetContract(ref),),
        requirements=_same_shape(base),
        parameters={"contract": None if ref is None else ref.to_json()},
    )
    return log.commit(base, change, io=ManifestFiles(storage))
