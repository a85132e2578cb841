"""Committing a merge: plan it against the common ancestor, check what it brings, publish it.

`lakever.merge` decides the result (pure); this module does the I/O around it.
A merge makes rows reachable on the target like any write, so before anything is
committed the rows it brings onto the target (the source's fragments added since
the common ancestor, and fragments whose deletion vectors the source changed)
are checked against the contract and the primary key in force in the result,
with key uniqueness checked across the whole result. A violation raises
`ContractViolation` / `PrimaryKeyViolation` naming the source, and the target
stays unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from lakever import contract as contracts
from lakever._chain import merge_parent_of, parent_of
from lakever._metafiles import read_contract_text, read_schema
from lakever._resolve import check_readable
from lakever._writer import (
    _check_properties,
    default_author,
    entries_of,
)
from lakever.commit import (
    Change,
    NoConcurrentCommit,
    SetContract,
    SetManifests,
    SetMergeParent,
    SetPartitioning,
    SetSchema,
    SetSortOrder,
)
from lakever.errors import CommitConflict, InvalidArgument, MergeConflict
from lakever.format import FragmentEntry, ManifestRef, Snapshot, Summary
from lakever.keys import KeyCheck
from lakever.log import Line
from lakever.manifest_list import ManifestFiles, append, merge_levels, rewrite
from lakever.merge import MergePlan, MergeStrategy, field_id_collisions, merge_base, plan_merge
from lakever.retry import COMMITS
from lakever.schema import schema_from_json, strip_field_ids
from lakever.storage import Storage

__all__ = ["commit_merge"]

#: Rows per batch when a merge validates the rows it brings against the contract.
_VALIDATE_BATCH = 1 << 20


def _parents_fn(storage: Storage) -> Callable[[Snapshot], Iterator[Snapshot]]:
    """The parents of a snapshot (its previous version, and a merge's second parent).

    Both links are verified: a merge base found across a broken link could be wrong.
    """
    from lakever.refs import line_for

    lines: dict[str, Line] = {}
    # Planning walks the same commits more than once (common ancestor, field ids).
    known: dict[str, list[Snapshot]] = {}

    def line(branch_id: str) -> Line:
        if branch_id not in lines:
            lines[branch_id] = line_for(storage, branch_id)
        return lines[branch_id]

    def parents(snap: Snapshot) -> Iterator[Snapshot]:
        if snap.snapshot_id not in known:
            found = []
            parent = parent_of(line(snap.branch_id), snap)
            if parent is not None:
                found.append(parent)
            if snap.merge_parent:
                source = line(str(snap.merge_parent["branch"]))
                found.append(merge_parent_of(line(snap.branch_id), snap, source))
            known[snap.snapshot_id] = found
        yield from known[snap.snapshot_id]

    return parents


def _delta(before: list[FragmentEntry], after: list[FragmentEntry]) -> Summary:
    b = {e.path: e for e in before}
    a = {e.path: e for e in after}
    added = [e for p, e in a.items() if p not in b]
    removed = [e for p, e in b.items() if p not in a]
    # A fragment on both sides may show fewer (or more) rows: another deletion vector.
    both = a.keys() & b.keys()
    hidden = sum(max(0, b[p].live_rows - a[p].live_rows) for p in both)
    shown = sum(max(0, a[p].live_rows - b[p].live_rows) for p in both)
    return Summary(
        rows_added=sum(e.live_rows for e in added) + shown,
        rows_removed=sum(e.live_rows for e in removed) + hidden,
        bytes_added=sum(e.size_bytes for e in added),
        bytes_removed=sum(e.size_bytes for e in removed),
        fragments_added=len(added),
        fragments_removed=len(removed),
    )


def _three_way_manifests(
    storage: Storage, ours: Snapshot, plan: MergePlan
) -> tuple[ManifestRef, ...]:
    """Ours' manifest list minus theirs' removals, with theirs' deletion vectors, plus theirs'
    additions."""
    io = ManifestFiles(storage)
    replacements: dict[str, tuple[FragmentEntry, ...]] = {e.path: () for e in plan.removed}
    replacements.update({e.path: (e,) for e in plan.replaced})
    listed = append(rewrite(ours.manifests, replacements, io), plan.added, io)
    return merge_levels(listed, io)


def _conflict_message(
    source: str, ours: Snapshot, theirs: Snapshot, base: Snapshot, conflicts: list[dict[str, str]]
) -> str:
    shown = "; ".join(
        f"{c['kind']} {c['item']}: ours {c['ours']}, theirs {c['theirs']}" for c in conflicts[:10]
    )
    more = f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""
    why = ""
    if any(c["kind"] == "field id" for c in conflicts):
        why = (
            " (each side gave the field id to another column, which only datasets written "
            "before field ids were allocated dataset-wide hold; merging would show one "
            "column's values under the other)"
        )
    return (
        f"merging {source!r} (version {theirs.version}) into version {ours.version} conflicts "
        f"against their common ancestor (version {base.version}): {shown}{more}{why}. Nothing "
        "was changed; pass strategy='ours' to keep the target's snapshot or strategy='theirs' "
        "to take the source's"
    )


# ------------------------------------------------------------------- checks


def _read_rows(
    storage: Storage,
    schema_json: dict[str, Any],
    entries: Sequence[FragmentEntry],
    snapshot_id: str,
) -> Iterator[pa.Table]:
    """The live rows of ``entries`` read through the schema ``schema_json`` (by field id).

    The one place a merge reads rows, through the snapshot reader, in batches.
    """
    from lakever.planner import plan_of

    schema = schema_from_json(schema_json)
    scan = plan_of(
        storage,
        schema,
        entries,
        schema.names,
        lambda sid: read_schema(storage, sid),
        snapshot_id=snapshot_id,
    )
    for batch in scan.to_batches(_VALIDATE_BATCH):
        yield pa.Table.from_batches([batch])


def _contract_conflict(
    storage: Storage, plan: MergePlan, ours: Snapshot, theirs: Snapshot
) -> list[dict[str, str]]:
    """A conflict if the result's contract (from one side) rejects its schema (from the other)."""
    ref, schema = plan.contract, plan.schema
    assert schema is not None
    if ref is None or any(s.contract == ref and s.schema == schema for s in (ours, theirs)):
        return []
    public = strip_field_ids(schema_from_json(schema))
    cases = contracts.failures(ref.api, read_contract_text(storage, ref.id), public.empty_table())
    if cases is None:
        return []
    failed = sorted({str(c) for c in cases.column("column").to_pylist() if c is not None})
    contract = f"set a contract that rejects the merged schema (columns {failed})"
    ours_did = contract if ref == ours.contract else "changed the schema"
    theirs_did = "changed the schema" if ref == ours.contract else contract
    return [{"kind": "setting", "item": "contract", "ours": ours_did, "theirs": theirs_did}]


def _check_brought(
    storage: Storage,
    plan: MergePlan,
    ours: Snapshot,
    ours_entries: Sequence[FragmentEntry],
    source: str,
    theirs_id: str,
) -> None:
    """Check the rows the merge brings onto the target against the result's contract and key.

    Raises:
        ContractViolation: a brought row breaks the contract in force in the result.
        PrimaryKeyViolation: the result would hold a null or repeated key.
    """
    mine = {(e.path, e.deletion) for e in ours_entries}
    brought = [e for e in plan.fragments if (e.path, e.deletion) not in mine]
    if not brought or plan.schema is None:
        return
    ref = plan.contract
    if ref is not None:
        contracts.validate_batches(
            ref.api,
            read_contract_text(storage, ref.id),
            _read_rows(storage, plan.schema, brought, theirs_id),
            what=f"the merge of {source!r}",
            advice=(
                f"Nothing was committed. The failing rows come from {source!r}: fix or delete "
                "them there (or change the target's contract with Dataset.set_contract), then "
                "merge again"
            ),
        )
    if ours.primary_key:
        paths = {e.path for e in brought}
        rest = [e for e in plan.fragments if e.path not in paths]
        schema = schema_from_json(plan.schema)
        key = KeyCheck(storage, schema, ours.primary_key, what=f"the merge of {source!r}")
        key.check(brought, rest)


# ------------------------------------------------------------------- commit


def commit_merge(
    storage: Storage,
    log: Line,
    theirs: Snapshot,
    *,
    source: str,
    strategy: MergeStrategy | None,
    message: str | None,
    author: str | None,
    properties: Mapping[str, str] | None,
) -> Snapshot:
    """Merge snapshot ``theirs`` into the head of ``log``'s branch and commit the result.

    A commit that lands on the target meanwhile makes the merge re-plan from the
    new head (up to a bound), so a merge never overwrites a concurrent commit.

    Raises:
        MergeConflict: the sides conflict (and no ``strategy`` was given).
        ContractViolation: a row the merge brings breaks the result's contract.
        PrimaryKeyViolation: the result would repeat a primary key.
        CommitConflict: the target kept changing while the merge was planned.
    """
    if message is not None and not isinstance(message, str):
        raise InvalidArgument(f"message must be a string, got {message!r}")
    props = _check_properties(properties)
    parents = _parents_fn(storage)
    for _attempt in COMMITS.attempts():
        ours = log.head()
        assert ours is not None
        base = merge_base(ours, theirs, parents)
        if base is None:
            raise MergeConflict(
                f"{source!r} shares no history with the target branch", conflicts=[]
            )
        if base.snapshot_id not in (ours.snapshot_id, theirs.snapshot_id):
            # Expiry keeps the merge bases of live branches; another source's may be gone.
            check_readable(storage, base)
        ours_e, theirs_e = entries_of(storage, ours), entries_of(storage, theirs)
        base_e = entries_of(storage, base)

        def plan_with(known: list[dict[str, str]]) -> MergePlan:
            return plan_merge(
                base,  # noqa: B023 - called within this iteration only
                ours,  # noqa: B023
                theirs,
                base_fragments=base_e,  # noqa: B023
                ours_fragments=ours_e,  # noqa: B023
                theirs_fragments=theirs_e,  # noqa: B023
                strategy=strategy,
                known_conflicts=known,
            )

        collisions = field_id_collisions(base, ours, theirs, parents)
        plan = plan_with(collisions)
        if plan.kind == "up-to-date":
            return ours
        if plan.kind == "three-way" and not plan.conflicts:
            # The schema and the contract may come from different sides: they must fit.
            late = _contract_conflict(storage, plan, ours, theirs)
            if late:
                plan = plan_with(collisions + late)
        if plan.kind == "three-way" and plan.conflicts:
            raise MergeConflict(
                _conflict_message(source, ours, theirs, base, plan.conflicts),
                conflicts=plan.conflicts,
            )
        _check_brought(storage, plan, ours, ours_e, source, theirs.snapshot_id)
        if plan.kind in ("fast-forward", "theirs"):
            manifests = theirs.manifests
        elif plan.kind == "ours":
            manifests = ours.manifests
        else:
            manifests = _three_way_manifests(storage, ours, plan)
        assert plan.schema is not None
        parent: dict[str, Any] = {
            "snapshot_id": theirs.snapshot_id,
            "branch": theirs.branch_id,
            "version": theirs.version,
        }
        change = Change(
            operation="merge",
            author=author if author is not None else default_author(),
            message=message or "",
            properties=props,
            updates=(
                SetManifests(manifests, _delta(ours_e, list(plan.fragments))),
                SetSchema(plan.schema, plan.last_field_id),
                SetContract(plan.contract),
                SetPartitioning(tuple(plan.partitioning)),
                SetSortOrder(tuple(plan.sort_by)),
                SetMergeParent(parent),
            ),
            # The result was planned on this head: anything landing meanwhile re-plans.
            requirements=(NoConcurrentCommit(),),
            parameters={
                "source": source,
                "kind": plan.kind,
                "base_snapshot_id": base.snapshot_id,
                "conflicts": len(plan.conflicts),
            },
        )
        try:
            return log.commit(ours, change, io=ManifestFiles(storage))
        except CommitConflict:
            continue  # the target moved: plan again from its new head
    raise CommitConflict(
        f"gave up merging {source!r}: the target kept changing during {COMMITS.max_attempts} "
        "attempts (or the retry deadline); retry when the target branch is quieter",
        winning_version=(log.latest_version() or 0),
    )
