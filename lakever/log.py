"""The log of versions and the commit protocol.

Version ``N`` of a branch is the immutable file ``log_path(branch, N)``. A commit
becomes visible by creating the next file with put-if-absent, which is the only
atomic step: everything it references (fragments, manifests) is written and made
durable before. Versions are therefore contiguous from 0, any version is one
read away, and the newest is found from the advisory ``LATEST`` hint plus a
forward probe (galloping, then binary search), never by replaying history.

A commit is a `lakever.commit.Change`: typed updates plus the requirements a
concurrent winner must satisfy. A writer that loses the race reads the winning
commits, checks every requirement against each (e.g. an append requires the
schema, field ids and contract it was checked against; a delete that the
fragments it rewrote are unchanged; an overwrite or a merge that nothing landed
at all), and either replays its updates on top of the newest winner or raises
`CommitConflict` naming it. Retries follow `lakever.retry.COMMITS`: bounded, with
exponential backoff and jitter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from lakever import _chain
from lakever._lru import Lru
from lakever.commit import Applied, Change, apply, check
from lakever.errors import CommitConflict, CorruptMetadata, StorageError
from lakever.format import (
    DELETION_VECTORS,
    MAIN_BRANCH,
    ManifestRef,
    Snapshot,
    Summary,
    canonical_json,
    latest_hint_path,
    log_dir,
    log_path,
    newest_number,
    seal_snapshot,
    snapshot_index_log_path,
    snapshot_index_path,
)
from lakever.manifest_list import ManifestIO, merge_levels
from lakever.retry import COMMITS
from lakever.snapshot_codec import decode_snapshot
from lakever.storage import Storage

__all__ = ["Line"]


#: Log entries decoded lately, by (storage, path): re-reading an entry (a commit checks
#: that its base is unchanged) compares the bytes and skips decoding them again. Entries
#: are immutable, so a record is only reused for identical bytes.
#: Names one listing of a log reads at most (one request on S3).
_PAGE = 1000
_DECODED: Lru[tuple[str, str], tuple[bytes, Snapshot]] = Lru(256)


class Line:
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
        base: tuple[Line, int] | None = None,
        *,
        base_snapshot_id: str | None = None,
        name: str | None = None,
    ) -> None:
        self.storage = storage
        self.branch_id = branch
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
        rel = log_path(self.branch_id, version)
        try:
            data = self.storage.read_bytes(rel)
        except FileNotFoundError:
            return None
        known = self.remembered(version, data)
        if known is not None:  # the same bytes decode to the same record
            return known
        snap = decode_snapshot(data, path=self.storage.full_path(rel))
        if snap.version != version or snap.branch_id != self.branch_id:
            raise CorruptMetadata(
                f"metadata file {self.storage.full_path(rel)} claims to be version "
                f"{snap.version} of branch {snap.branch_id!r}; it was moved or copied",
                path=self.storage.full_path(rel),
            )
        _DECODED.put((self.storage.uri, rel), (data, snap))
        return snap

    def remembered(self, version: int, data: bytes) -> Snapshot | None:
        """The snapshot this process decoded (or committed) from exactly ``data`` as
        ``version`` of this line's own log; None if it has not."""
        hit = _DECODED.get((self.storage.uri, log_path(self.branch_id, version)))
        return hit[1] if hit is not None and hit[0] == data else None

    def owner(self, version: int) -> Line:
        """The line whose own log holds ``version``."""
        line = self
        while line.base is not None and version < line.first_own:
            line = line.base[0]
        return line

    def entry_path(self, version: int) -> str:
        """The full path of the log entry of ``version`` on this line."""
        owner = self.owner(version)
        return owner.storage.full_path(log_path(owner.branch_id, version))

    def exists(self, version: int) -> bool:
        """Whether this branch's own log holds ``version`` (no read, no check)."""
        return self.storage.exists(log_path(self.branch_id, version))

    def listed_after(self, version: int, limit: int) -> list[int] | None:
        """Versions of this branch's own log after ``version``, ascending: the first of at
        most ``limit`` names one listing request returns (None: the storage lists no
        cheaper than it probes; see `Storage.names_after`)."""
        after = f"{version:020d}.json" if version >= 0 else ""
        names = self.storage.names_after(log_dir(self.branch_id), after, limit)
        if names is None:
            return None
        return [int(n[:20]) for n in names if n[:20].isdigit() and n[20:] == ".json"]

    def _listed_head(self, hint: int) -> int | None:
        """The newest version from one listing that starts at ``hint`` (None: no listing,
        more entries than one page, or the hint's entry is missing)."""
        listed = self.listed_after(hint - 1, _PAGE)
        if listed is None or len(listed) >= _PAGE or not listed or listed[0] != hint:
            return None
        present = set(listed)
        found = hint
        while found + 1 in present:
            found += 1
        later = [v for v in listed if v > found + 1]
        if later:  # the listing is one consistent view: entries beyond a missing one
            raise _chain.missing(self, found + 1, later=later[0])
        return found

    def _gallop(self, lo: int) -> int:
        """Given that ``lo`` exists, return the newest existing version."""
        return newest_number(self.exists, lo)

    def _hint(self) -> int | None:
        try:
            raw = self.storage.read_bytes(latest_hint_path(self.branch_id))
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
            if hint is not None and (listed := self._listed_head(hint)) is not None:
                return listed  # object stores: one listing instead of a probe per version
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

    def commit(self, base: Snapshot | None, change: Change, *, io: ManifestIO) -> Snapshot:
        """Publish ``change`` on top of ``base`` (or on top of whatever won since).

        Args:
            base: the snapshot the change was computed from (None: create).
            change: the updates and the requirements each concurrent winner must meet.
            io: reads and makes manifests (level merges, rewrites).

        Returns:
            The committed snapshot.

        Raises:
            CommitConflict: a concurrent commit breaks a requirement of the change, or
                the retries ran out (`lakever.retry.COMMITS`).
            DatasetExists: a create lost against an existing dataset.
            BrokenHistory: ``base`` is no longer in the log as it was read, the chain
                below it or a winner's link is broken, or the new entry filled a gap
                (then it is not acknowledged; see `lakever._chain.check_successor`).
        """
        # Refuse to build on a broken chain: entries deleted (the hint or a gap shows it),
        # or the base replaced since it was read. When the hint names the base (the usual
        # case: the head this handle committed or opened), its entry is re-read below and
        # a gap beyond it is found after the entry is created (`_chain.check_successor`),
        # so the probes of `latest_version` would find nothing more.
        if base is None or self._hint() != base.version:
            self.latest_version()
        if base is not None:
            _chain.check_unchanged(self, base)
        current = base
        merged: dict[tuple[str, ...], tuple[ManifestRef, ...]] = {}
        for _attempt in COMMITS.attempts():
            snap, entry = _build(
                current, change, self.branch_id, apply(current, change, io), io, merged
            )
            # put_if_absent makes every file written so far durable before the entry appears.
            rel = log_path(self.branch_id, snap.version)
            if self.storage.publish(rel, entry):
                _DECODED.put((self.storage.uri, rel), (entry, snap))
                # Acknowledge only a version the head shows: not one that filled a gap.
                _chain.check_successor(self, snap)
                self._write_hint(snap.version)
                self._index(snap)
                return snap
            winners = self._winners_after(current)
            check(change, base, current, winners, uri=self.storage.uri, io=io)
            current = winners[-1] if winners else current
        raise CommitConflict(
            f"gave up committing to {self.storage.uri} after {COMMITS.max_attempts} lost races "
            "(or the retry deadline); the dataset is under heavy concurrent writing: retry later",
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

    def _index(self, snap: Snapshot) -> None:
        # Advisory, like the hint: lets a snapshot id be found without a scan. Verified on use.
        # Appended to its shard where storage appends in place (no new file per commit);
        # each record starts a line of its own, so a torn tail never swallows it.
        sid = snap.snapshot_id
        with contextlib.suppress(OSError, StorageError):
            record = {"branch": snap.branch_id, "version": snap.version}
            line = b"\n" + canonical_json({"id": sid, **record}) + b"\n"
            if not self.storage.append_hint(snapshot_index_log_path(sid, snap.version), line):
                self.storage.write_hint(snapshot_index_path(sid), canonical_json(record))

    def _write_hint(self, version: int) -> None:
        # The hint is advisory: readers probe forward from any older value.
        with contextlib.suppress(OSError, StorageError):
            self.storage.write_hint(latest_hint_path(self.branch_id), b"%020d\n" % version)


def _build(
    base: Snapshot | None,
    change: Change,
    branch: str,
    applied: Applied,
    io: ManifestIO,
    merged: dict[tuple[str, ...], tuple[ManifestRef, ...]],
) -> tuple[Snapshot, bytes]:
    """The snapshot ``change`` makes on top of ``base`` (its id computed, not yet committed),
    and its log entry's bytes.

    ``merged`` remembers level merges by manifest list, so a retry on the same list
    writes no manifest twice.
    """
    manifests = applied.manifests
    if not applied.whole_list:
        key = tuple(m.key for m in manifests)
        if key not in merged:
            merged[key] = merge_levels(manifests, io)
        manifests = merged[key]
    now = datetime.now(UTC)
    if base is not None and now <= base.timestamp:
        # Commit times on a branch are strictly increasing even if the clock steps back.
        now = base.timestamp + timedelta(microseconds=1)
    summary = Summary(
        rows_added=applied.delta.rows_added,
        rows_removed=applied.delta.rows_removed,
        bytes_added=applied.delta.bytes_added,
        bytes_removed=applied.delta.bytes_removed,
        fragments_added=applied.delta.fragments_added,
        fragments_removed=applied.delta.fragments_removed,
        total_rows=sum(m.rows for m in manifests),
        total_bytes=sum(m.bytes for m in manifests),
        total_fragments=sum(m.fragments for m in manifests),
    )
    snap = Snapshot(
        snapshot_id="",
        parent_id=base.snapshot_id if base else None,
        branch_id=branch,
        version=base.version + 1 if base else 0,
        timestamp=now,
        operation=change.operation if base is not None else "create",
        parameters=change.parameters,
        author=change.author,
        message=change.message,
        properties=change.properties,
        schema=applied.schema,
        last_field_id=applied.last_field_id,
        manifests=manifests,
        summary=summary,
        merge_parent=applied.merge_parent,
        contract=applied.contract,
        partitioning=applied.partitioning,
        sort_by=applied.sort_by,
        primary_key=applied.primary_key,
        table_properties=applied.table_properties,
        reader_features=(DELETION_VECTORS,) if any(m.deleted_rows for m in manifests) else (),
    )
    return seal_snapshot(snap)
