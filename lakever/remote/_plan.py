"""Planning a sync: which history the refs need, what the destination lacks, ref moves."""

import re
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from lakever import _chain
from lakever.errors import (
    CorruptMetadata,
    RemoteConflict,
)
from lakever.format import (
    MAIN_BRANCH,
    Snapshot,
    canonical_json,
    latest_hint_path,
    log_dir,
    log_path,
)
from lakever.log import Line
from lakever.refs import (
    BranchInfo,
    Tag,
    get_branch,
    get_tag,
    line_for,
    ref_path,
)
from lakever.snapshot_codec import decode_snapshot
from lakever.storage import Storage

__all__ = [
    "ENTRY",
    "Move",
    "RefUpdate",
    "SyncResult",
    "Sync",
    "branch_move",
    "check_not_ahead",
    "diverged",
    "each",
    "plan_history",
    "tag_move",
]

ENTRY = re.compile(r"([0-9]{20})\.json")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """A ref a sync moved or created (or found up to date): its old and new position."""

    name: str
    kind: Literal["branch", "tag"]
    #: On the destination before the sync (None: the name did not exist there).
    old_version: int | None
    old_snapshot_id: str | None
    new_version: int
    new_snapshot_id: str
    #: The destination's name pointed at another line and was repointed (``force=True``).
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return {
            "name": self.name,
            "kind": self.kind,
            "old_version": self.old_version,
            "old_snapshot_id": self.old_snapshot_id,
            "new_version": self.new_version,
            "new_snapshot_id": self.new_snapshot_id,
            "forced": self.forced,
        }


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a push, pull or clone did."""

    #: Refs created or moved on the destination.
    updated: tuple[RefUpdate, ...]
    #: Refs the destination already had at the same snapshot.
    up_to_date: tuple[RefUpdate, ...]
    #: Immutable objects written (fragments, deletion vectors, manifests, schema and
    #: contract files, BRANCH.json files, field-id claims, log entries) and their bytes.
    objects_copied: int
    bytes_copied: int
    #: Objects the history needs that the destination already had.
    objects_skipped: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return {
            "updated": [u.to_dict() for u in self.updated],
            "up_to_date": [u.to_dict() for u in self.up_to_date],
            "objects_copied": self.objects_copied,
            "bytes_copied": self.bytes_copied,
            "objects_skipped": self.objects_skipped,
        }


@dataclass
class Sync:
    src: Storage
    dst: Storage
    pool: ThreadPoolExecutor
    force: bool
    #: Branch id -> its source line, and the highest version its history needs.
    lines: dict[str, Line] = field(default_factory=dict)
    tops: dict[str, int] = field(default_factory=dict)
    #: Branch id -> versions (and BRANCH.json) the destination's log lists.
    #: Newest version of each branch log on the destination (None: it has none).
    dst_heads: dict[str, int | None] = field(default_factory=dict)
    #: Branch id -> first version to copy (the destination has the ones before).
    starts: dict[str, int] = field(default_factory=dict)
    #: Branch id -> the source's snapshot at ``starts - 1`` when the destination has it.
    shared: dict[str, Snapshot] = field(default_factory=dict)
    #: (branch id, version) -> raw bytes and decoded record of the entries to copy.
    entries: dict[tuple[str, int], tuple[bytes, Snapshot]] = field(default_factory=dict)
    copied: int = 0
    bytes: int = 0
    skipped: int = 0

    def need(self, line: Line, top: int) -> None:
        """Add ``line`` up to version ``top`` (and its bases) to the history to copy."""
        while True:
            self.lines.setdefault(line.branch_id, line)
            self.tops[line.branch_id] = max(self.tops.get(line.branch_id, -1), top)
            if line.base is None:
                return
            base, base_version = line.base
            line, top = base, min(top, base_version)


def each(pool: ThreadPoolExecutor, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``fn`` over ``items`` concurrently; on a failure, start nothing more and raise it."""
    futures = [pool.submit(fn, i) for i in items]
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in pending:
        f.cancel()
    wait(futures)
    for f in futures:
        exc = None if f.cancelled() else f.exception()
        if exc is not None:
            raise exc
    return [f.result() for f in futures]


# ------------------------------------------------------------------------ history


def _who(line: Line) -> str:
    return f"branch {line.name!r}" if line.name is not None else f"branch id {line.branch_id!r}"


def plan_history(s: Sync) -> None:
    """Find the log entries the destination lacks and read them (merge parents too)."""
    planned: dict[str, int] = {}
    while True:
        for bid, top in list(s.tops.items()):
            if planned.get(bid) != top:
                _compare_log(s, bid)
                planned[bid] = top
        wanted = [
            (bid, v)
            for bid, top in s.tops.items()
            for v in range(s.starts[bid], top + 1)
            if (bid, v) not in s.entries
        ]
        if not wanted:
            break
        for key, got in zip(
            wanted, each(s.pool, lambda k: _read_entry(s, *k), wanted), strict=True
        ):
            s.entries[key] = got
            mp = got[1].merge_parent
            if mp:  # readers walking history verify the second parent: copy its line
                s.need(line_for(s.src, str(mp["branch"])), int(mp["version"]))
    # Entries read before a later plan found the destination has them are not copied.
    s.entries = {k: e for k, e in s.entries.items() if k[1] >= s.starts[k[0]]}
    for bid in s.tops:
        _check_chain(s, bid)


def _read_entry(s: Sync, bid: str, version: int) -> tuple[bytes, Snapshot]:
    line = s.lines[bid]
    rel = log_path(bid, version)
    try:
        data = s.src.read_bytes(rel)
    except FileNotFoundError:
        raise _chain.missing(line, version) from None
    snap = decode_snapshot(data, path=s.src.full_path(rel))
    if snap.version != version or snap.branch_id != bid:
        raise CorruptMetadata(
            f"metadata file {s.src.full_path(rel)} claims to be version {snap.version} of "
            f"branch {snap.branch_id!r}; it was moved or copied",
            path=s.src.full_path(rel),
        )
    return data, snap


def _compare_log(s: Sync, bid: str) -> None:
    """Where the destination's log of ``bid`` stands against the source's (one list)."""
    line, top = s.lines[bid], s.tops[bid]
    newest = dst_head(s, bid)
    start = line.first_own
    if newest is not None:
        at = min(newest, top)
        if at >= line.first_own:
            data, snap = s.entries.get((bid, at)) or _read_entry(s, bid, at)
            try:
                theirs = s.dst.read_bytes(log_path(bid, at))
            except FileNotFoundError:
                theirs = b""
            if theirs != data:
                raise diverged(s, line, at, newest)
            s.shared[bid] = snap
            start = at + 1
    s.starts[bid] = start


def dst_head(s: Sync, bid: str) -> int | None:
    """The newest version of ``bid``'s log on the destination (None: none).

    From its ``LATEST`` hint and one listing after it where the storage lists cheaply
    (object stores: two requests, whatever the length of history); else from a
    listing of the whole log.
    """
    if bid in s.dst_heads:
        return s.dst_heads[bid]
    head: int | None = None
    found = False
    try:
        hint = _chain.parse_hint(s.dst.read_bytes(latest_hint_path(bid)))
    except FileNotFoundError:
        hint = None
    if hint is not None and hint >= 0:
        after = f"{hint - 1:020d}.json" if hint > 0 else ""
        names = s.dst.names_after(log_dir(bid), after, _PAGE)
        if names is not None and len(names) < _PAGE:
            have = sorted(int(m.group(1)) for n in names if (m := ENTRY.fullmatch(n)))
            if have and have[0] == hint:
                head, found = have[-1], True
    if not found:
        have = [int(m.group(1)) for n in s.dst.list(log_dir(bid)) if (m := ENTRY.fullmatch(n))]
        head = max(have) if have else None
    s.dst_heads[bid] = head
    return head


#: Names one listing returns at most (one request on S3).
_PAGE = 1000


def diverged(s: Sync, line: Line, version: int, dst_head: int) -> RemoteConflict:
    name = line.name or line.branch_id
    src_head = line.latest_version()
    return RemoteConflict(
        f"{_who(line)} has diverged: version {version} in {s.src.uri} and in {s.dst.uri} are "
        f"different commits (heads: version {src_head} there, {dst_head} here). Log entries "
        "are immutable, so this cannot be forced. Clone the destination to a new location, "
        "re-apply the source's changes there, and sync again; to avoid this, commit on your own "
        "branches and merge on one side (docs/remotes.md, 'Diverged branches')",
        name=name,
        kind="branch",
        source_version=src_head,
        destination_version=dst_head,
    )


def _check_chain(s: Sync, bid: str) -> None:
    """Every entry to copy names the one before it (or the branch's base) as parent."""
    line = s.lines[bid]
    previous = s.shared.get(bid)
    for v in range(s.starts[bid], s.tops[bid] + 1):
        snap = s.entries[(bid, v)][1]
        if v == line.first_own:  # version 0 of main, or a branch's first own version
            expected = line.base_snapshot_id if line.base is not None else None
        else:
            expected = previous.snapshot_id if previous is not None else None
        if snap.parent_id != expected:
            raise _chain.broken(
                line,
                version=v if v == line.first_own else v - 1,
                path=line.entry_path(v),
                problem=f"log entry {line.entry_path(v)} (version {v}) does not name the "
                "version before it as parent",
            )
        previous = snap


def check_not_ahead(s: Sync, b: BranchInfo, line: Line, head: Snapshot) -> None:
    newest = dst_head(s, b.id)
    if newest is not None and newest > head.version:
        raise RemoteConflict(
            f"branch {b.name!r} in {s.dst.uri} is ahead: it has versions up to {newest}, "
            f"{s.src.uri} only up to {head.version}. Pull first (lakever.pull / 'lakever pull'), "
            "then sync again",
            name=b.name,
            kind="branch",
            source_version=head.version,
            destination_version=newest,
        )


# --------------------------------------------------------------------------- refs


@dataclass
class Move:
    update: RefUpdate
    apply: Callable[[], None] | None


def branch_move(s: Sync, b: BranchInfo, head: Snapshot) -> Move:
    dst = s.dst
    theirs = get_branch(dst, b.name)
    old = None if theirs is None else line_for(dst, theirs.id).head()
    forced = theirs is not None and theirs.id != b.id
    if forced and not s.force:
        assert theirs is not None
        raise RemoteConflict(
            f"branch {b.name!r} in {dst.uri} is another line of history (branch id "
            f"{theirs.id[:12]}, head version {old.version if old else None}) than in "
            f"{s.src.uri} (branch id {b.id[:12]}, head version {head.version}): the name was "
            "deleted and re-created on one side. Sync under another branch name, or pass "
            "force=True (--force) to repoint the destination's name to the source's line (its "
            "old line stays readable by id until vacuumed)",
            name=b.name,
            kind="branch",
            source_version=head.version,
            destination_version=old.version if old else None,
        )
    update = RefUpdate(
        b.name,
        "branch",
        None if old is None else old.version,
        None if old is None else old.snapshot_id,
        head.version,
        head.snapshot_id,
        forced=forced,
    )
    if b.id == MAIN_BRANCH or (theirs is not None and not forced):
        return Move(update, None)  # the log entries are the move
    record = canonical_json({"name": b.name, "id": b.id})

    def apply() -> None:
        rel = ref_path("branch", b.name)
        if forced:
            dst.delete(rel)
        if not dst.publish(rel, record) and dst.read_bytes(rel) != record:
            raise RemoteConflict(
                f"branch {b.name!r} was created in {dst.uri} by another writer during the sync; "
                "its history was copied, sync again to compare",
                name=b.name,
                kind="branch",
            )

    return Move(update, apply)


def tag_move(s: Sync, t: Tag) -> Move:
    theirs = get_tag(s.dst, t.name)
    update = RefUpdate(
        t.name,
        "tag",
        None if theirs is None else theirs.version,
        None if theirs is None else theirs.snapshot_id,
        t.version,
        t.snapshot_id,
    )
    if theirs is not None:
        if theirs.snapshot_id != t.snapshot_id:
            raise RemoteConflict(
                f"tag {t.name!r} names snapshot {theirs.snapshot_id[:12]} (version "
                f"{theirs.version}) in {s.dst.uri} but {t.snapshot_id[:12]} (version {t.version}) "
                f"in {s.src.uri}; tags never move, not even with force: delete one of them "
                "(delete_tag / 'lakever tag PATH --delete NAME') or use another name",
                name=t.name,
                kind="tag",
            )
        return Move(update, None)
    rel = ref_path("tag", t.name)
    data = s.src.read_bytes(rel)  # the tag file as it is: same name, snapshot, author, time

    def apply() -> None:
        if not s.dst.publish(rel, data):
            now = get_tag(s.dst, t.name)
            if now is None or now.snapshot_id != t.snapshot_id:
                raise RemoteConflict(
                    f"tag {t.name!r} was created in {s.dst.uri} by another writer during the "
                    "sync, for another snapshot; tags never move",
                    name=t.name,
                    kind="tag",
                )

    return Move(update, apply)
