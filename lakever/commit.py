"""Commits as values: typed updates, and the requirements they re-check on every retry.

A `Change` is what a commit does, independent of the version it lands on:

* **updates** say how the new snapshot differs from the one it lands on: fragments
  added (`AddFragments`), all dropped (`RemoveAll`), rewritten by row changes
  (`RewriteFragments`), a whole new manifest list (`SetManifests`, merges), and the
  settings a commit may set (`SetSchema`, `SetContract`, `SetPartitioning`,
  `SetSortOrder`, `SetPrimaryKey`, `SetTableProperties`, `SetMergeParent`). Everything
  no update sets is carried over from the snapshot the commit lands on -- which is
  why a delete, which sets no schema, lands under whatever schema a concurrent winner left;
* **requirements** say what a concurrent winner must not have done for the updates
  to be replayed on top of it (`SchemaUnchanged`, `ContractUnchanged`,
  `PartitioningUnchanged`, `FragmentsUnchanged`, `NoConcurrentCommit`,
  `DatasetAbsent`, and `Check` for an invariant a caller re-checks, such as primary
  key uniqueness). `lakever.log.Line.commit` checks every requirement against each
  winner, then applies the updates to the newest one.

`apply` turns a change into the fields of the next snapshot; the manifest list is
edited only through `lakever.manifest_list`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lakever.errors import CommitConflict, DatasetExists, InvalidArgument
from lakever.format import ContractRef, FragmentEntry, ManifestRef, Snapshot, Summary
from lakever.manifest_list import ManifestIO, rewrite

__all__ = [
    "AddFragments",
    "Change",
    "Check",
    "ContractUnchanged",
    "DatasetAbsent",
    "FragmentsUnchanged",
    "NoConcurrentCommit",
    "PartitioningUnchanged",
    "RemoveAll",
    "Requirement",
    "Rewrite",
    "RewriteFragments",
    "SchemaUnchanged",
    "SetContract",
    "SetManifests",
    "SetMergeParent",
    "SetPartitioning",
    "SetPrimaryKey",
    "SetSchema",
    "SetSortOrder",
    "SetTableProperties",
    "Update",
    "apply",
    "check",
]


# ----------------------------------------------------------------- updates


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A row-level change to one fragment of the base snapshot."""

    #: The entry as the base snapshot lists it.
    old: FragmentEntry
    #: What replaces it: the same file with a new deletion vector, the fragments a
    #: copy-on-write rewrite produced, or nothing (every row of it deleted).
    new: tuple[FragmentEntry, ...]


@dataclass(frozen=True, slots=True)
class AddFragments:
    """Add the fragments of one manifest after the existing ones."""

    manifest: ManifestRef


@dataclass(frozen=True, slots=True)
class RemoveAll:
    """Drop every fragment of the snapshot the commit lands on (overwrite)."""


@dataclass(frozen=True, slots=True)
class RewriteFragments:
    """Replace fragments in place (deletion vectors, copy-on-write rewrites, removal)."""

    rewrites: tuple[Rewrite, ...]
    #: Rows and bytes the rewrites add and remove.
    delta: Summary


@dataclass(frozen=True, slots=True)
class SetManifests:
    """The whole manifest list of the new snapshot (a merge's result)."""

    manifests: tuple[ManifestRef, ...]
    #: What the list adds and removes compared with the snapshot it is planned on.
    delta: Summary


@dataclass(frozen=True, slots=True)
class SetSchema:
    schema: dict[str, Any]
    last_field_id: int


@dataclass(frozen=True, slots=True)
class SetContract:
    contract: ContractRef | None


@dataclass(frozen=True, slots=True)
class SetPartitioning:
    spec: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class SetSortOrder:
    sort: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class SetPrimaryKey:
    key: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetTableProperties:
    """Set table properties (a value of None removes the key); the others carry over."""

    changes: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class SetMergeParent:
    """The second parent of a merge commit: {"snapshot_id", "branch", "version"}."""

    parent: dict[str, Any]


Update = (
    AddFragments
    | RemoveAll
    | RewriteFragments
    | SetManifests
    | SetSchema
    | SetContract
    | SetPartitioning
    | SetSortOrder
    | SetPrimaryKey
    | SetTableProperties
    | SetMergeParent
)


# ----------------------------------------------------------------- requirements


@dataclass(frozen=True, slots=True)
class Context:
    """What requirements need to judge a winner."""

    uri: str
    #: The snapshot the change was computed on (None: a create).
    base: Snapshot | None
    operation: str
    io: ManifestIO | None
    #: The winner before ``winner`` (the base for the first winner).
    previous: Snapshot | None


def _conflict(ctx: Context, winner: Snapshot, what: str) -> CommitConflict:
    since = f"version {ctx.base.version}" if ctx.base is not None else "nothing"
    return CommitConflict(
        f"commit to {ctx.uri} conflicts with version {winner.version}, which {what}; this "
        f"{ctx.operation!r} was based on {since}. Re-open the dataset and retry the operation "
        "on the new version",
        winning_version=winner.version,
    )


@dataclass(frozen=True, slots=True)
class SchemaUnchanged:
    """The winner kept the schema and the field ids the change was computed against."""

    schema: dict[str, Any]
    last_field_id: int

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if winner.schema != self.schema or winner.last_field_id != self.last_field_id:
            raise _conflict(ctx, winner, "changed the schema")


@dataclass(frozen=True, slots=True)
class ContractUnchanged:
    """The winner kept the contract the rows were checked against."""

    contract: ContractRef | None

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if winner.contract != self.contract:
            raise _conflict(ctx, winner, "changed the contract")


@dataclass(frozen=True, slots=True)
class PartitioningUnchanged:
    """The winner kept the partition spec (two spec changes never both land)."""

    spec: tuple[dict[str, Any], ...]

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if tuple(winner.partitioning) != tuple(self.spec):
            raise _conflict(ctx, winner, "changed the partitioning")


@dataclass(frozen=True, slots=True)
class FragmentsUnchanged:
    """The winner still lists every rewritten fragment, with the same deletion vector."""

    rewrites: tuple[Rewrite, ...]

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if not self.rewrites:
            return
        if ctx.io is None:
            raise TypeError("a commit with rewrites needs a ManifestIO")
        theirs = {e.path: e for m in winner.manifests for e in ctx.io.read(m)}
        for r in self.rewrites:
            now = theirs.get(r.old.path)
            if now is not None and now.deletion == r.old.deletion:
                continue
            did = "removed" if now is None else "deleted rows from"
            raise _conflict(
                ctx,
                winner,
                f"(a {winner.operation!r}) {did} fragment {r.old.path} that this "
                f"{ctx.operation!r} also rewrote",
            )


@dataclass(frozen=True, slots=True)
class NoConcurrentCommit:
    """Any commit since the base conflicts (overwrite, merge: they replace what they saw)."""

    def check(self, winner: Snapshot, ctx: Context) -> None:
        since = ctx.base.version if ctx.base is not None else 0
        raise _conflict(ctx, winner, f"committed a {winner.operation!r} since version {since}")


@dataclass(frozen=True, slots=True)
class DatasetAbsent:
    """A create: the dataset must not exist, unless ``or_same`` accepts the winner's shape."""

    #: (schema, last field id, contract) an append-or-create may land on.
    or_same: tuple[dict[str, Any], int, ContractRef | None] | None = None

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if (
            self.or_same is not None
            and (
                winner.schema,
                winner.last_field_id,
                winner.contract,
            )
            == self.or_same
        ):
            return  # write_dataset(mode="append") raced a create of the same schema
        raise DatasetExists(
            f"a dataset already exists at {ctx.uri} (created concurrently); open it with "
            "lakever.open_dataset or write with mode='append'",
            uri=ctx.uri,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """An invariant the caller re-checks against each winner: ``fn(previous, winner)``
    raises to refuse the replay (e.g. a winner added rows with the same primary key)."""

    fn: Callable[[Snapshot, Snapshot], None] = field(compare=False)

    def check(self, winner: Snapshot, ctx: Context) -> None:
        if ctx.previous is not None:
            self.fn(ctx.previous, winner)


Requirement = (
    SchemaUnchanged
    | ContractUnchanged
    | PartitioningUnchanged
    | FragmentsUnchanged
    | NoConcurrentCommit
    | DatasetAbsent
    | Check
)


# ----------------------------------------------------------------- the change


@dataclass(frozen=True, slots=True)
class Change:
    """What a commit does (updates) and what a concurrent winner must have left alone."""

    operation: str
    author: str
    message: str
    properties: dict[str, str]
    updates: tuple[Update, ...]
    requirements: tuple[Requirement, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every commit passes here: a caller's author or message that is not text would
        # be stored as given (readers accept that, for records written before this check).
        for what, value in (("author", self.author), ("message", self.message)):
            if not isinstance(value, str):
                raise InvalidArgument(f"{what} must be a string, got {value!r}")

    def with_update(self, update: Update) -> Change:
        return replace(self, updates=(*self.updates, update))


def check(
    change: Change,
    base: Snapshot | None,
    current: Snapshot | None,
    winners: list[Snapshot],
    *,
    uri: str,
    io: ManifestIO | None,
) -> None:
    """Raise if ``change`` (computed on ``base``) cannot be replayed after ``winners``,
    the commits that landed after ``current`` (the base, or the last winner checked)."""
    previous = current
    for w in winners:
        ctx = Context(uri, base, change.operation, io, previous)
        for r in change.requirements:
            r.check(w, ctx)
        previous = w


@dataclass(frozen=True, slots=True)
class Applied:
    """The fields of the next snapshot a change produces on top of ``current``."""

    schema: dict[str, Any]
    last_field_id: int
    contract: ContractRef | None
    partitioning: tuple[dict[str, Any], ...]
    sort_by: tuple[dict[str, Any], ...]
    primary_key: tuple[int, ...]
    table_properties: dict[str, str]
    merge_parent: dict[str, Any] | None
    #: The manifest list before level merging (None: ``SetManifests`` gave it whole).
    manifests: tuple[ManifestRef, ...]
    whole_list: bool
    delta: Summary


def _plus(a: Summary, b: Summary) -> Summary:
    return Summary(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(Summary)})


def _added(m: ManifestRef) -> Summary:
    return Summary(rows_added=m.rows, bytes_added=m.bytes, fragments_added=m.fragments)


def apply(current: Snapshot | None, change: Change, io: ManifestIO | None) -> Applied:
    """The next snapshot's fields: ``current``'s, with the change's updates applied in order.

    Raises:
        TypeError: a create without a schema, or rewrites without a ``ManifestIO``.
    """
    schema = current.schema if current is not None else None
    last_field_id = current.last_field_id if current is not None else 0
    contract = current.contract if current is not None else None
    partitioning = tuple(current.partitioning) if current is not None else ()
    sort_by = tuple(current.sort_by) if current is not None else ()
    primary_key = tuple(current.primary_key) if current is not None else ()
    table_properties = dict(current.table_properties) if current is not None else {}
    merge_parent = None
    manifests: tuple[ManifestRef, ...] = current.manifests if current is not None else ()
    whole = False
    delta = Summary()
    for u in change.updates:
        match u:
            case AddFragments(manifest=m):
                manifests = (*manifests, m)
                delta = _plus(delta, _added(m))
            case RemoveAll():
                if current is not None:
                    s = current.summary
                    gone = Summary(
                        rows_removed=s.total_rows,
                        bytes_removed=s.total_bytes,
                        fragments_removed=s.total_fragments,
                    )
                    delta = _plus(delta, gone)
                manifests = ()
            case RewriteFragments(rewrites=rewrites, delta=rewritten):
                if io is None:
                    raise TypeError("a commit with rewrites needs a ManifestIO")
                replacements = {r.old.path: r.new for r in rewrites}
                manifests = rewrite(manifests, replacements, io)
                delta = _plus(delta, rewritten)
            case SetManifests(manifests=listed, delta=planned):
                manifests, whole, delta = listed, True, _plus(delta, planned)
            case SetSchema(schema=new_schema, last_field_id=n):
                schema, last_field_id = new_schema, n
            case SetContract(contract=c):
                contract = c
            case SetPartitioning(spec=spec):
                partitioning = tuple(spec)
            case SetSortOrder(sort=sort):
                sort_by = tuple(sort)
            case SetPrimaryKey(key=key):
                primary_key = tuple(key)
            case SetTableProperties(changes=changes):
                for k, v in changes:
                    if v is None:
                        table_properties.pop(k, None)
                    else:
                        table_properties[k] = v
            case SetMergeParent(parent=p):
                merge_parent = p
    if schema is None:
        raise TypeError("a commit that creates a dataset needs a SetSchema update")
    return Applied(
        schema=schema,
        last_field_id=last_field_id,
        contract=contract,
        partitioning=partitioning,
        sort_by=sort_by,
        primary_key=primary_key,
        table_properties=table_properties,
        merge_parent=merge_parent,
        manifests=manifests,
        whole_list=whole,
        delta=delta,
    )
