"""The log of versions and the commit protocol.

Version ``N`` of a branch is the immutable file ``log_path(branch, N)``. A commit
becomes visible by creating the next file with put-if-absent, which is the only
atomic step: everything it references (fragments, manifests) is written and made
durable before. Versions are therefore contiguous from 0, any version is one
read away, and the newest is found from the advisory ``LATEST`` hint plus a
forward probe (galloping, then binary search), never by replaying history.

A writer that loses the race reads the winning commits, checks them against
its own change, and either retries on top of them or raises `CommitConflict`
naming the winning version. The rule: appends, schema evolutions and contract
changes are replayed on top of winners that kept the schema, the field ids and
the contract the change was computed against; anything else conflicts. So an
append never lands under a schema or contract it was not checked against, and
two schema changes never both land.

Row-level changes (delete, update, upsert) list the fragments they rewrote (a
new deletion vector, a copy-on-write rewrite, or removal). They conflict only
with a winner that removed one of those fragments or changed its deletion
vector; otherwise they are replayed on the winner's manifest list with just
those entries replaced, so rows the winner added are kept.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lakever import _chain
from lakever.errors import CommitConflict, CorruptMetadata, DatasetExists
from lakever.format import (
    DELETION_VECTORS,
    MAIN_BRANCH,
    ContractRef,
    FragmentEntry,
    ManifestRef,
    Snapshot,
    Summary,
    canonical_json,
    compute_snapshot_id,
    decode_snapshot,
    encode_snapshot,
    latest_hint_path,
    log_path,
    snapshot_index_path,
)
from lakever.storage import Storage

__all__ = ["Change", "Log", "ManifestIO", "Rewrite"]

#: Manifests of one level merged into one of the next level once this many exist.
MANIFEST_FANOUT = 8
_MAX_ATTEMPTS = 10_000


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A row-level change to one fragment of the base snapshot."""

    #: The entry as the base snapshot lists it.
    old: FragmentEntry
    #: What replaces it: the same file with a new deletion vector, the fragments a
    #: copy-on-write rewrite produced, or nothing (every row of it deleted).
    new: tuple[FragmentEntry, ...]


class ManifestIO(Protocol):
    """Reads and makes manifests (the I/O row-level commits need when they rebase)."""

    def read(self, ref: ManifestRef) -> list[FragmentEntry]:
        """The entries of a manifest."""
        ...

    def make(self, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
        """A manifest of ``level`` listing ``entries``."""
        ...


@dataclass(frozen=True, slots=True)
class Change:
    """What a commit does, independent of which version it lands on."""

    operation: str
    author: str
    message: str
    properties: dict[str, str]
    schema: dict[str, Any]
    last_field_id: int
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The contract in force from this commit on (None: no contract).
    contract: ContractRef | None = None
    #: The manifest of fragments this commit adds (None: adds nothing).
    added: ManifestRef | None = None
    #: Drop every fragment of the base snapshot (overwrite).
    replace_all: bool = False
    #: The complete manifest list of the new snapshot (merges); valid only on ``base``.
    manifests: tuple[ManifestRef, ...] | None = None
    #: What the change adds and removes, when ``manifests`` is given.
    delta: Summary | None = None
    #: The other parent of a merge commit: {"snapshot_id", "branch", "version"}.
    merge_parent: dict[str, Any] | None = None
    #: Partition spec / default sort for later writes; None keeps the base's.
    partitioning: tuple[dict[str, Any], ...] | None = None
    sort_by: tuple[dict[str, Any], ...] | None = None
    #: Row-level changes to fragments of the base (delete, update, upsert).
    rewrites: tuple[Rewrite, ...] = ()
    #: Field ids of the primary key from this commit on (None: the base's).
    primary_key: tuple[int, ...] | None = None


class Log:
    """The line of history of one branch: its own log, plus its base's line below it.

    A branch made at version ``b`` of another line shares versions ``0..b`` with
    that line; its own log holds versions ``b+1`` onwards. ``base_snapshot_id`` is
    the snapshot its ``BRANCH.json`` records at ``b``; ``name`` the branch's name,
    for messages. Opening the head, walking history and committing check that the
    versions form one chain (see `lakever._chain`) and raise `BrokenHistory` if not.
    """

    def __init__(
        self,
        storage: Storage,
        branch: str = MAIN_BRANCH,
        base: tuple[Log, int] | None = None,
        *,
        base_snapshot_id: str | None = None,
        name: str | None = None,
    ) -> None:
        self.storage = storage
        self.branch = branch
        self.base = base
        self.base_snapshot_id = base_snapshot_id
        self.name = name if name is not None else (branch if branch == MAIN_BRANCH else None)
        #: The first version stored in this branch's own log.
        self.first_own = base[1] + 1 if base is not None else 0

    # ----------------------------------------------------------------- reading

    def read(self, version: int) -> Snapshot | None:
        """Return the snapshot at ``version``, or None if that version does not exist."""
        if version < self.first_own:
            return self.base[0].read(version) if self.base is not None and version >= 0 else None
        rel = log_path(self.branch, version)
        try:
            data = self.storage.read_bytes(rel)
        except FileNotFoundError:
            return None
        snap = decode_snapshot(data, path=self.storage.full_path(rel))
        if snap.version != version or snap.branch != self.branch:
            raise CorruptMetadata(
                f"metadata file {self.storage.full_path(rel)} claims to be version "
                f"{snap.version} of branch {snap.branch!r}; it was moved or copied",
                path=self.storage.full_path(rel),
            )
        return snap

    def owner(self, version: int) -> Log:
        """The line whose own log holds ``version``."""
        line = self
        while line.base is not None and version < line.first_own:
            line = line.base[0]
        return line

    def entry_path(self, version: int) -> str:
        """The full path of the log entry of ``version`` on this line."""
        owner = self.owner(version)
        return owner.storage.full_path(log_path(owner.branch, version))

    def exists(self, version: int) -> bool:
        """Whether this branch's own log holds ``version`` (no read, no check)."""
        return self.storage.exists(log_path(self.branch, version))

    def _gallop(self, lo: int) -> int:
        """Given that ``lo`` exists, return the newest existing version."""
        step = 1
        while self.exists(lo + step):
            lo += step
            step *= 2
        hi = lo + step  # known absent
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.exists(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def _hint(self) -> int | None:
        try:
            raw = self.storage.read_bytes(latest_hint_path(self.branch))
        except FileNotFoundError:
            return None
        hint = _chain.parse_hint(raw)
        return hint if hint is not None and hint >= self.first_own else None

    def latest_version(self) -> int | None:
        """Return the newest version number (None: no version), without parsing any entry.

        Raises:
            BrokenHistory: the ``LATEST`` hint names a version whose entry is missing,
                or entries exist just beyond a missing one.
        """
        for attempt in range(3):
            hint = self._hint()
            if hint is not None and self.exists(hint):
                found = self._gallop(hint)
            else:
                # No usable hint: search from the start (logarithmic in the number of versions).
                start = self.first_own
                found = self._gallop(start) if self.exists(start) else start - 1
                if hint is not None:
                    if attempt < 2 and self._hint() != hint:
                        continue  # the hint moved meanwhile (or a read saw a torn write)
                    # A well-formed hint is written only once its entry exists.
                    raise _chain.hint_missing(self, hint, found)
            found = _chain.probe_beyond(self, found)
            return None if found < 0 else found
        raise AssertionError("unreachable")  # pragma: no cover

    def head(self) -> Snapshot | None:
        """Return the newest snapshot, or None when the branch has no version.

        Reads a constant number of entries whatever the length of history: the head,
        its parent, and each branch base the line reads through.

        Raises:
            BrokenHistory: the chain is broken at the head (see `lakever._chain`).
        """
        latest = self.latest_version()
        if latest is None:
            return None
        snap = self.must_read(latest)
        _chain.verify(self, snap)
        return snap

    def at_time(self, when: datetime, head: Snapshot) -> Snapshot | None:
        """Return the last snapshot committed at or before ``when`` (binary search).

        Commit times on a branch strictly increase with the version, so this reads
        O(log n) log entries; the link between the result and the version after it
        is verified.
        """
        if head.timestamp <= when:
            return head
        lo, hi = -1, head.version  # lo: at or before ``when`` (-1: none); hi: after
        lo_snap, hi_snap = None, head
        while hi - lo > 1:
            mid = (lo + hi) // 2
            snap = self.must_read(mid)
            if snap.timestamp <= when:
                lo, lo_snap = mid, snap
            else:
                hi, hi_snap = mid, snap
        if lo_snap is None:
            _chain.check_root(self, hi_snap)
            return None
        _chain.check_link(self, hi_snap, lo_snap, _chain.recorded_bases(self))
        return lo_snap

    def must_read(self, version: int) -> Snapshot:
        """Return the snapshot at ``version``, which must exist (a later one does)."""
        snap = self.read(version)
        if snap is None:
            raise _chain.missing(self, version)
        return snap

    def between(self, first: int, last: int) -> Iterator[Snapshot]:
        """Yield versions ``first`` to ``last`` of this line, oldest first (one read each).

        Raises:
            BrokenHistory: an entry is missing or does not name the one before it.
        """
        bases = _chain.recorded_bases(self)
        previous = None
        for v in range(first, last + 1):
            snap = self.must_read(v)
            if previous is not None:
                _chain.check_link(self, snap, previous, bases)
            previous = snap
            yield snap

    def ancestors(self, snap: Snapshot) -> Iterator[Snapshot]:
        """Yield ``snap`` and then each earlier version of this branch, newest first.

        Raises:
            BrokenHistory: an entry is missing or does not name the one before it.
        """
        bases = _chain.recorded_bases(self)
        _chain.check_root(self, snap)
        yield snap
        for v in range(snap.version - 1, -1, -1):
            parent = self.must_read(v)
            _chain.check_link(self, snap, parent, bases)
            yield parent
            snap = parent

    # ----------------------------------------------------------------- writing

    def commit(
        self,
        base: Snapshot | None,
        change: Change,
        *,
        merge_manifests: Callable[[tuple[ManifestRef, ...]], tuple[ManifestRef, ...]],
        io: ManifestIO | None = None,
        recheck: Callable[[Snapshot, Snapshot], None] | None = None,
    ) -> Snapshot:
        """Publish ``change`` on top of ``base`` (or on top of whatever won since).

        Args:
            base: the snapshot the change was computed from (None: create).
            change: the change to publish.
            merge_manifests: merges full levels of the manifest list (does I/O).
            io: reads and writes manifests; needed when ``change.rewrites`` is set.
            recheck: called as ``recheck(previous, winner)`` for each concurrent
                winner before the change is replayed on it, to re-check an invariant
                against what the winner added (e.g. primary key uniqueness); it raises
                to refuse the replay.

        Returns:
            The committed snapshot.

        Raises:
            CommitConflict: a concurrent commit makes this change unsafe.
            DatasetExists: a create lost against an existing dataset.
            BrokenHistory: ``base`` is no longer in the log as it was read, the chain
                below it or a winner's link is broken, or the new entry filled a gap
                (then it is not acknowledged; see `lakever._chain.check_successor`).
        """
        # Refuse to build on a broken chain: entries deleted (the hint or a gap shows it),
        # or the base replaced since it was read.
        self.latest_version()
        if base is not None:
            _chain.check_unchanged(self, base)
        current = base
        merged_cache: dict[tuple[str, ...], tuple[ManifestRef, ...]] = {}
        for attempt in range(_MAX_ATTEMPTS):
            manifests = self._manifests_for(current, change, merge_manifests, merged_cache, io)
            snap = _build(current, change, self.branch, manifests)
            self.storage.flush()
            if self.storage.put_if_absent(
                log_path(self.branch, snap.version), encode_snapshot(snap)
            ):
                # Acknowledge only a version the head shows: not one that filled a gap.
                _chain.check_successor(self, snap)
                self._write_hint(snap.version)
                self._index(snap)
                return snap
            winners = self._winners_after(current)
            previous = current
            for w in winners:
                _check_conflict(base, change, w, self.storage.uri, io)
                if recheck is not None and previous is not None:
                    recheck(previous, w)
                previous = w
            if winners and change.operation == "delete":
                # A delete only hides rows by position: it lands under whatever schema
                # and contract the winner left in force.
                w = winners[-1]
                change = replace(
                    change, schema=w.schema, last_field_id=w.last_field_id, contract=w.contract
                )
            current = winners[-1] if winners else current
            if attempt >= 3:
                time.sleep(random.uniform(0, 0.002 * min(attempt, 50)))
        raise CommitConflict(  # pragma: no cover - needs 10,000 lost races in a row
            f"gave up committing to {self.storage.uri} after {_MAX_ATTEMPTS} lost races",
            winning_version=current.version if current else 0,
        )

    def _winners_after(self, current: Snapshot | None) -> list[Snapshot]:
        """The versions committed after ``current`` (None: from version 0), links verified."""
        bases = _chain.recorded_bases(self)
        out: list[Snapshot] = []
        previous = current
        while (snap := self.read(previous.version + 1 if previous else 0)) is not None:
            if previous is None:
                _chain.check_root(self, snap)
            else:
                _chain.check_link(self, snap, previous, bases)
            out.append(snap)
            previous = snap
        return out

    def _manifests_for(
        self,
        current: Snapshot | None,
        change: Change,
        merge_manifests: Callable[[tuple[ManifestRef, ...]], tuple[ManifestRef, ...]],
        cache: dict[tuple[str, ...], tuple[ManifestRef, ...]],
        io: ManifestIO | None,
    ) -> tuple[ManifestRef, ...]:
        if change.manifests is not None:
            return change.manifests
        kept = () if (current is None or change.replace_all) else current.manifests
        if change.rewrites and current is not None:
            if io is None:
                raise TypeError("a commit with rewrites needs a ManifestIO")
            kept = _apply_rewrites(kept, change.rewrites, io)
        listed = kept + ((change.added,) if change.added is not None else ())
        key = tuple(m.key for m in listed)
        if key not in cache:
            cache[key] = merge_manifests(listed)
        return cache[key]

    def _index(self, snap: Snapshot) -> None:
        # Advisory, like the hint: lets a snapshot id be found without a scan. Verified on use.
        with contextlib.suppress(OSError):
            self.storage.write_hint(
                snapshot_index_path(snap.snapshot_id),
                canonical_json({"branch": snap.branch, "version": snap.version}),
            )

    def _write_hint(self, version: int) -> None:
        # The hint is advisory: readers probe forward from any older value.
        with contextlib.suppress(OSError):
            self.storage.write_hint(latest_hint_path(self.branch), b"%020d\n" % version)


def _apply_rewrites(
    manifests: tuple[ManifestRef, ...], rewrites: tuple[Rewrite, ...], io: ManifestIO
) -> tuple[ManifestRef, ...]:
    """The manifest list with each rewritten entry replaced in place.

    Manifests holding none of the rewritten fragments are reused by reference;
    the others are written again at their level, without the entries left empty.
    """
    by_path = {r.old.path: r.new for r in rewrites}
    out: list[ManifestRef] = []
    for m in manifests:
        entries = io.read(m)
        if not any(e.path in by_path for e in entries):
            out.append(m)
            continue
        replaced = [n for e in entries for n in by_path.get(e.path, (e,))]
        if replaced:
            out.append(io.make(replaced, level=m.level))
    return tuple(out)


def _build(
    base: Snapshot | None, change: Change, branch: str, manifests: tuple[ManifestRef, ...]
) -> Snapshot:
    now = datetime.now(UTC)
    if base is not None and now <= base.timestamp:
        # Commit times on a branch are strictly increasing even if the clock steps back.
        now = base.timestamp + timedelta(microseconds=1)
    totals = {
        "total_rows": sum(m.rows for m in manifests),
        "total_bytes": sum(m.bytes for m in manifests),
        "total_fragments": sum(m.fragments for m in manifests),
    }
    if change.delta is not None:
        summary = replace(change.delta, **totals)
    else:
        removed = base.summary if (base is not None and change.replace_all) else Summary()
        added = change.added
        summary = Summary(
            rows_added=added.rows if added else 0,
            rows_removed=removed.total_rows,
            bytes_added=added.bytes if added else 0,
            bytes_removed=removed.total_bytes,
            fragments_added=added.fragments if added else 0,
            fragments_removed=removed.total_fragments,
            **totals,
        )
    snap = Snapshot(
        snapshot_id="",
        parent_id=base.snapshot_id if base else None,
        branch=branch,
        version=base.version + 1 if base else 0,
        timestamp=now,
        operation=change.operation if base is not None else "create",
        parameters=change.parameters,
        author=change.author,
        message=change.message,
        properties=change.properties,
        schema=change.schema,
        last_field_id=change.last_field_id,
        manifests=manifests,
        summary=summary,
        merge_parent=change.merge_parent,
        contract=change.contract,
        partitioning=(
            change.partitioning
            if change.partitioning is not None
            else (base.partitioning if base else ())
        ),
        sort_by=change.sort_by if change.sort_by is not None else (base.sort_by if base else ()),
        primary_key=(
            change.primary_key
            if change.primary_key is not None
            else (base.primary_key if base is not None else ())
        ),
        reader_features=(DELETION_VECTORS,) if any(m.deleted_rows for m in manifests) else (),
    )
    return replace(snap, snapshot_id=compute_snapshot_id(snap.body()))


#: Operations that commute with a commit that kept the schema, field ids and contract:
#: their result does not depend on which rows the winner added or removed.
_REPLAYABLE = ("append", "evolve", "set_contract", "set_partitioning")
#: Row-level operations: replayed unless the winner touched a fragment they rewrote.
ROW_OPERATIONS = ("delete", "update", "upsert")


def _same_shape(a: Snapshot, schema: dict[str, Any], last_field_id: int, contract: Any) -> bool:
    return a.schema == schema and a.last_field_id == last_field_id and a.contract == contract


def _check_rows(
    base: Snapshot, change: Change, winner: Snapshot, uri: str, io: ManifestIO | None
) -> None:
    """Raise if a row-level ``change`` cannot be replayed after ``winner`` (see module doc)."""
    op = change.operation
    # A delete only hides rows by position; updates and upserts wrote rows checked
    # against the base's schema and contract, like an append.
    if op == "delete" or _same_shape(winner, base.schema, base.last_field_id, base.contract):
        if not change.rewrites:
            return
        if io is None:
            raise TypeError("a commit with rewrites needs a ManifestIO")
        theirs = {e.path: e for m in winner.manifests for e in io.read(m)}
        for r in change.rewrites:
            now = theirs.get(r.old.path)
            if now is not None and now.deletion == r.old.deletion:
                continue
            what = "removed" if now is None else "deleted rows from"
            raise CommitConflict(
                f"commit to {uri} conflicts with version {winner.version} (a "
                f"{winner.operation!r}), which {what} fragment {r.old.path} that this {op!r} "
                f"also rewrote; this {op!r} was based on version {base.version}. Re-open the "
                "dataset and retry the "
                "operation on the new version",
                winning_version=winner.version,
            )
        return
    what = "changed the schema" if winner.schema != base.schema else "changed the contract"
    if winner.last_field_id != base.last_field_id:
        what = "changed the schema"
    raise CommitConflict(
        f"commit to {uri} conflicts with version {winner.version}, which {what}; this "
        f"{op!r} was based on version {base.version}. Re-open the dataset and retry the "
        "operation on the new version",
        winning_version=winner.version,
    )


def _check_conflict(
    base: Snapshot | None,
    change: Change,
    winner: Snapshot,
    uri: str,
    io: ManifestIO | None = None,
) -> None:
    """Raise if ``change`` (computed on ``base``) cannot be replayed after ``winner``."""
    if base is None:
        if change.operation == "append" and _same_shape(
            winner, change.schema, change.last_field_id, change.contract
        ):
            return  # write_dataset(mode="append") raced a create of the same schema.
        raise DatasetExists(
            f"a dataset already exists at {uri} (created concurrently); open it with "
            "lakever.open_dataset or write with mode='append'",
            uri=uri,
        )
    if change.operation in ROW_OPERATIONS:
        _check_rows(base, change, winner, uri, io)
        return
    partitioning_race = (
        change.operation == "set_partitioning" and winner.partitioning != base.partitioning
    )
    if (
        change.operation in _REPLAYABLE
        and _same_shape(winner, base.schema, base.last_field_id, base.contract)
        and not partitioning_race
    ):
        return
    if winner.schema != base.schema or winner.last_field_id != base.last_field_id:
        what = "changed the schema"
    elif winner.contract != base.contract:
        what = "changed the contract"
    else:
        what = f"committed a {winner.operation!r} since version {base.version}"
    raise CommitConflict(
        f"commit to {uri} conflicts with version {winner.version}, which {what}; "
        f"this {change.operation!r} was based on version {base.version}. Re-open the dataset "
        "and retry the operation on the new version",
        winning_version=winner.version,
    )
