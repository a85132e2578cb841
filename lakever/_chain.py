"""Checks that a branch's history is one unbroken chain of log entries.

Versions of a branch are created only at head + 1, by put-if-absent, and log
entries are never deleted or rewritten; each record names the snapshot id of the
version before it (``parent_id``), and a branch's ``BRANCH.json`` names the
snapshot it started from. So each of these is damage done outside lakever:

* an entry missing below one that exists (a gap), or a well-formed ``LATEST``
  hint naming a version whose entry is missing (the hint is written only after
  the entry exists);
* a record whose ``parent_id`` is not the snapshot id of the version before it;
* a branch whose recorded base snapshot is not the entry at the base version, or
  whose first own entry does not have that snapshot as parent.

`verify` checks a head in a constant number of reads, `probe_beyond` looks for a
gap just beyond a head in `WINDOW` existence checks, and `check_link` is applied
to each link a history walk crosses. All raise `BrokenHistory`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, NamedTuple, Protocol

from lakever.errors import BrokenHistory, CorruptMetadata, UnsupportedFormatVersion
from lakever.format import (
    MAIN_BRANCH,
    Snapshot,
    branch_meta_path,
    latest_hint_path,
    log_path,
)

if TYPE_CHECKING:
    from lakever.storage import Storage


class Line(Protocol):
    """What the checks need of a line of history (`lakever.log.Line` is one)."""

    storage: Storage
    branch_id: str
    name: str | None
    base_snapshot_id: str | None

    @property
    def base(self) -> tuple[Line, int] | None: ...

    @property
    def first_own(self) -> int: ...

    def read(self, version: int) -> Snapshot | None: ...

    def must_read(self, version: int) -> Snapshot: ...

    def remembered(self, version: int, data: bytes) -> Snapshot | None: ...

    def exists(self, version: int) -> bool: ...

    def listed_after(self, version: int, limit: int) -> list[int] | None: ...

    def owner(self, version: int) -> Line: ...

    def entry_path(self, version: int) -> str: ...


__all__ = [
    "WINDOW",
    "Claimed",
    "Entry",
    "broken",
    "check_link",
    "check_next",
    "check_root",
    "check_successor",
    "check_unchanged",
    "claimed",
    "hint_missing",
    "merge_parent_of",
    "missing",
    "parent_of",
    "parse_hint",
    "probe_beyond",
    "recorded_bases",
    "verify",
]

#: How many versions beyond a head are probed for a gap (existence checks, no reads).
#: A gap of up to this many consecutive deleted entries just beyond the head is found
#: when the head is opened or a commit lands; longer ones when history is walked.
WINDOW = 8

_HINT = re.compile(rb"[0-9]{20}\n")


def parse_hint(raw: bytes) -> int | None:
    """The version a ``LATEST`` hint names, or None unless it is exactly as written.

    Writers write 20 digits and a newline; anything else is a torn or foreign
    write and is ignored. Only a well-formed hint is evidence that its version
    was committed.
    """
    return int(raw[:20]) if _HINT.fullmatch(raw) else None


def who(log: Line) -> str:
    """How messages name a line: by branch name where known."""
    return f"branch {log.name!r}" if log.name is not None else f"branch id {log.branch_id!r}"


def broken(log: Line, *, version: int, path: str, problem: str, advice: str = "") -> BrokenHistory:
    """A `BrokenHistory` for ``log`` whose first untrusted version is ``version``."""
    uri = log.storage.uri
    if version > 0:
        branch_arg = "" if log.name in (None, MAIN_BRANCH) else f", branch={log.name!r}"
        keep = (
            f"versions 0 to {version - 1} come before the break and stay readable by version "
            f"number (lakever.open_dataset({uri!r}{branch_arg}, version={version - 1}))"
        )
    else:
        keep = "no version comes before the break"
    advice = advice or (
        "Restore the file from a backup (lakever never deletes or rewrites a log entry)"
    )
    return BrokenHistory(
        f"the history of {who(log)} in {uri} is broken: {problem}. {advice}; {keep}. "
        "See 'Repairing a broken history' in docs/format.md",
        path=path,
        branch=log.name if log.name is not None else log.branch_id,
        version=version,
    )


def missing(log: Line, version: int, *, later: int | None = None) -> BrokenHistory:
    """A `BrokenHistory` for a missing entry of ``version`` (``later``: a version that exists)."""
    owner = log.owner(version)
    path = owner.entry_path(version)
    since = f" although version {later} exists" if later is not None else ""
    return broken(
        owner,
        version=version,
        path=path,
        problem=f"log entry {path} (version {version}) is missing{since}; it was deleted "
        "outside lakever",
    )


def hint_missing(log: Line, hint: int, found: int) -> BrokenHistory:
    """A `BrokenHistory` for a well-formed ``LATEST`` hint naming a missing entry."""
    if hint < found:
        return missing(log, hint, later=found)
    path = log.entry_path(hint)
    hint_path = log.storage.full_path(latest_hint_path(log.branch_id))
    gone = f"version {hint}" if hint == found + 1 else f"versions {found + 1} to {hint}"
    newest = f"the newest entry found is version {found}" if found >= 0 else "no entry is left"
    return broken(
        log,
        version=found + 1,
        path=path,
        problem=(
            f"the hint {hint_path} records version {hint} as committed, but its log entry "
            f"{path} is missing and {newest}: {gone} (or some of them) were deleted outside "
            "lakever, and committing now would reuse their version numbers"
        ),
        advice=(
            "Restore the missing entries from a backup (lakever never deletes or rewrites a log "
            "entry); if they are lost for good, deleting the hint accepts the loss"
        ),
    )


def recorded_bases(log: Line) -> dict[int, tuple[Line, str]]:
    """Version -> (branch line, recorded snapshot id) of each branch base ``log`` reads through."""
    out: dict[int, tuple[Line, str]] = {}
    cap: int | None = None  # the newest version read through the current line
    line = log
    while line.base is not None:
        b = line.first_own - 1
        if (cap is None or b < cap) and line.base_snapshot_id is not None:
            out[b] = (line, line.base_snapshot_id)
        cap = b if cap is None else min(cap, b)
        line = line.base[0]
    return out


class Entry(Protocol):
    """What a link check needs of a log entry (a `Snapshot`, or a `Claimed` one)."""

    @property
    def version(self) -> int: ...

    @property
    def snapshot_id(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...


class Claimed(NamedTuple):
    """The ids a log entry claims, read without building or hash-checking the record."""

    version: int
    snapshot_id: str
    parent_id: str | None


def claimed(log: Line, version: int, *, optional: bool = False) -> Entry | None:
    """The ids the entry of ``version`` claims, at a fraction of the cost of a `Line.read`.

    Enough for a link check: a replaced entry claims another id, and an entry whose
    bytes do not match the id it claims is caught whenever it is read for use.
    Anything unexpected falls back to a full, verifying read. A missing entry is
    None if ``optional``, else `BrokenHistory`.
    """
    owner = log.owner(version)
    try:
        data = owner.storage.read_bytes(log_path(owner.branch_id, version))
    except FileNotFoundError:
        if optional:
            return None
        raise missing(log, version) from None
    known = owner.remembered(version, data)
    if known is not None:
        return known
    try:
        j = json.loads(data)
        entry = Claimed(version, j["snapshot_id"], j["parent_id"])
        plain = (
            j["version"] == version
            and j["branch"] == owner.branch_id
            and isinstance(entry.snapshot_id, str)
            and (entry.parent_id is None or isinstance(entry.parent_id, str))
        )
    except (ValueError, KeyError, TypeError):
        plain = False
    return entry if plain else log.must_read(version)


def _claimed(log: Line, version: int) -> Entry:
    entry = claimed(log, version)
    assert entry is not None
    return entry


def check_root(log: Line, snap: Entry) -> None:
    """Version 0 has no parent."""
    if snap.version == 0 and snap.parent_id is not None:
        path = log.entry_path(0)
        raise broken(
            log.owner(0),
            version=0,
            path=path,
            problem=f"log entry {path} is version 0 but names parent snapshot {snap.parent_id}",
        )


def check_link(log: Line, child: Entry, parent: Entry, bases: dict[int, tuple[Line, str]]) -> None:
    """Raise unless ``child`` (version v) names ``parent`` (version v-1) and any recorded base."""
    if child.parent_id != parent.snapshot_id:
        path = log.entry_path(child.version)
        raise broken(
            log.owner(child.version),
            version=parent.version,
            path=path,
            problem=(
                f"log entry {path} (version {child.version}) names parent snapshot "
                f"{child.parent_id}, but version {parent.version} is snapshot "
                f"{parent.snapshot_id} ({log.entry_path(parent.version)}); one of the two "
                "entries was replaced or altered outside lakever"
            ),
        )
    check_base(log, parent, bases)
    check_root(log, parent)


def check_base(log: Line, snap: Entry, bases: dict[int, tuple[Line, str]]) -> None:
    """Raise if ``snap`` is at a branch's base version but is not its recorded base snapshot."""
    recorded = bases.get(snap.version)
    if recorded is None or recorded[1] == snap.snapshot_id:
        return
    line, sid = recorded
    path = line.storage.full_path(branch_meta_path(line.branch_id))
    raise broken(
        line,
        version=snap.version,
        path=path,
        problem=(
            f"its branch record {path} says it starts at version {snap.version}, snapshot "
            f"{sid}, but version {snap.version} is snapshot {snap.snapshot_id} "
            f"({log.entry_path(snap.version)})"
        ),
        advice="Restore the branch record or the log entry from a backup",
    )


def parent_of(log: Line, snap: Snapshot) -> Snapshot | None:
    """The snapshot before ``snap`` on ``log``'s line (None for version 0), link verified."""
    if snap.version == 0:
        check_root(log, snap)
        return None
    parent = log.must_read(snap.version - 1)
    check_link(log, snap, parent, recorded_bases(log))
    return parent


def merge_parent_of(log: Line, snap: Snapshot, source: Line) -> Snapshot:
    """The second parent of merge commit ``snap`` (on ``log``), read from ``source``, verified."""
    mp = snap.merge_parent or {}
    version = int(mp["version"])
    other = source.read(version)
    if other is not None and other.snapshot_id == mp["snapshot_id"]:
        return other
    path = log.entry_path(snap.version)
    found = "is missing" if other is None else f"holds snapshot {other.snapshot_id}"
    raise broken(
        log.owner(snap.version),
        version=snap.version,
        path=path,
        problem=(
            f"merge commit {path} (version {snap.version}) names snapshot {mp['snapshot_id']}, "
            f"version {version} of {who(source)}, as its second parent, but that entry "
            f"({source.entry_path(version)}) {found}"
        ),
    )


def check_next(log: Line, snap: Snapshot) -> None:
    """Raise if the version after ``snap`` exists but was not committed on ``snap``.

    Opening a version by number checks this: an entry that was replaced, or that
    was written into a gap, is not what was committed at its version.
    """
    try:
        nxt = claimed(log, snap.version + 1, optional=True)
    except (CorruptMetadata, UnsupportedFormatVersion):
        return  # an unreadable successor says nothing about this version
    if nxt is not None:
        check_link(log, nxt, snap, recorded_bases(log))


def verify(log: Line, snap: Snapshot) -> None:
    """Check the links a head needs, in a constant number of reads.

    ``snap`` (a head, or the base of a commit) must name the entry before it as
    parent, and each branch base the line reads through must be its recorded
    snapshot and the parent of the branch's first own entry (when that exists
    up to ``snap``).
    """
    reads: dict[int, Entry] = {snap.version: snap}

    def get(version: int) -> Entry:
        if version not in reads:
            reads[version] = _claimed(log, version)
        return reads[version]

    bases = recorded_bases(log)
    check_root(log, snap)
    check_base(log, snap, bases)
    if snap.version > 0:
        check_link(log, snap, get(snap.version - 1), bases)
    for b in sorted(bases):
        if b < snap.version:
            check_base(log, get(b), bases)
            check_link(log, get(b + 1), get(b), bases)


def _check_record(line: Line) -> None:
    """Raise unless ``line``'s ``BRANCH.json`` still records the base ``line`` was built from."""
    assert line.base is not None
    path = line.storage.full_path(branch_meta_path(line.branch_id))
    try:
        base = json.loads(line.storage.read_bytes(branch_meta_path(line.branch_id)))["base"]
        recorded = (int(base["version"]), str(base["snapshot_id"]))
    except FileNotFoundError:
        recorded = None
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptMetadata(f"branch file {path} is malformed ({exc!r})", path=path) from exc
    if recorded != (line.first_own - 1, line.base_snapshot_id):
        now = "is missing" if recorded is None else f"now records version {recorded[0]}, "
        raise broken(
            line,
            version=line.first_own - 1,
            path=path,
            problem=(
                f"its branch record {path} {now}"
                + ("" if recorded is None else f"snapshot {recorded[1]}")
                + f", but it was read as version {line.first_own - 1}, snapshot "
                f"{line.base_snapshot_id}: the record was changed outside lakever. Nothing "
                "was committed"
            ),
            advice="Restore the branch record from a backup",
        )


def check_unchanged(log: Line, base: Snapshot) -> None:
    """Before committing on ``base``: its entry and the branch records are as they were
    read, and the links a head needs hold."""
    line: Line | None = log
    while line is not None and line.base is not None:
        if line.base_snapshot_id is not None:
            _check_record(line)
        line = line.base[0]
    stored = log.must_read(base.version)
    if stored.snapshot_id != base.snapshot_id:
        path = log.entry_path(base.version)
        raise broken(
            log.owner(base.version),
            version=base.version,
            path=path,
            problem=(
                f"a commit was based on version {base.version}, snapshot {base.snapshot_id}, "
                f"but its log entry {path} now holds snapshot {stored.snapshot_id}: the entry "
                "was replaced outside lakever. Nothing was committed"
            ),
        )
    verify(log, stored)


def probe_beyond(log: Line, head: int) -> int:
    """Return ``head`` after checking that no entry exists just beyond ``head + 1``.

    An entry at ``head + k`` (k ≤ `WINDOW` + 1) while ``head + 1`` is missing means
    ``head + 1`` was deleted: the probe found the version before a gap, and would
    show (and commit on) an older head. The check of ``head + 1`` comes after the
    probe, so a concurrent commit (which creates ``head + 1`` before ``head + 2``)
    is never mistaken for a gap.
    """
    listed = log.listed_after(head, WINDOW + 2)
    if listed is not None:  # one listing (object stores) instead of a probe per version
        beyond = [v for v in listed if head + 2 <= v < head + 2 + WINDOW]
        if not beyond or head + 1 in listed:
            return head
        raise missing(log, head + 1, later=beyond[0])
    for v in range(head + 2, head + 2 + WINDOW):
        if log.exists(v):
            if log.exists(head + 1):
                return head  # commits landed meanwhile: head was the head when probed
            raise missing(log, head + 1, later=v)
    return head


def check_successor(log: Line, snap: Snapshot) -> None:
    """After ``snap`` was created, raise if an entry beyond it shows it filled a gap.

    A version after ``snap`` that existed before it must have been committed on
    another entry at ``snap``'s version, which was deleted: ``snap`` then is not a
    version the head shows, so it must not be acknowledged.
    """
    nxt = snap.version + 1
    listed = log.listed_after(snap.version, WINDOW)
    if listed is not None:
        later = next((v for v in listed if v < nxt + WINDOW), None)
    else:
        later = next((v for v in range(nxt, nxt + WINDOW) if log.exists(v)), None)
    if later is None:
        return
    successor = log.read(nxt)
    if successor is not None and successor.parent_id == snap.snapshot_id:
        return  # a concurrent commit on top of this one
    path = log.entry_path(snap.version)
    raise broken(
        log,
        version=snap.version,
        path=path,
        problem=(
            f"a commit to it landed as version {snap.version}, but version {later} "
            f"already existed and was not committed on top of it: the entry of version "
            f"{snap.version} had been deleted outside lakever and this commit filled the gap. "
            f"The commit is NOT acknowledged; its entry {path} is left in place as evidence"
        ),
        advice=(
            "Move that entry aside and restore the deleted one from a backup, then redo the "
            "commit on the restored head"
        ),
    )
