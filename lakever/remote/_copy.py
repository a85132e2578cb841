"""Copying a sync's objects (verified), field-id claims and log entries, in order."""

import contextlib
import heapq
import json
import time
from dataclasses import dataclass

from lakever.errors import (
    CorruptMetadata,
    RemoteConflict,
)
from lakever.format import (
    CONTRACT_DIR,
    FIELD_ID_DIR,
    SCHEMA_DIR,
    FragmentEntry,
    Snapshot,
    branch_meta_path,
    canonical_json,
    field_id_claim_path,
    latest_hint_path,
    log_path,
    object_id,
    schema_id,
    sha256_hex,
    snapshot_index_path,
)
from lakever.integrity import damaged
from lakever.log import Line
from lakever.manifests import read_manifest
from lakever.remote._plan import ENTRY, Sync, diverged, each
from lakever.storage import Storage

__all__ = ["copy_claims", "copy_objects", "publish_entries"]


@dataclass
class _Copy:
    """An immutable object to copy and how to verify it."""

    rel: str
    #: "fragment", "deletion vector", "schema file", "contract file", "manifest", "branch record"
    what: str
    #: ``sha256:<hex>`` the bytes must have (fragments, deletion vectors, manifests).
    content_hash: str | None = None
    size: int | None = None
    #: A snapshot that references it (for messages).
    snapshot_id: str = ""
    #: A schema file only some snapshot's own schema names: may be absent on the source.
    optional: bool = False


# ------------------------------------------------------------------------- objects


def copy_objects(s: Sync) -> None:
    """Copy every object the new entries reference: leaves, then manifests."""
    leaves: dict[str, _Copy] = {}
    manifests: dict[str, _Copy] = {}
    inline: list[tuple[FragmentEntry, Snapshot]] = []
    own_schemas: set[str] = set()
    for bid, line in s.lines.items():
        if line.base is not None:
            leaves[branch_meta_path(bid)] = _Copy(branch_meta_path(bid), "branch record")
    for _, snap in s.entries.values():
        sid = schema_id(snap.schema)
        own_schemas.add(sid)
        rel = f"{SCHEMA_DIR}/{sid}.json"
        leaves.setdefault(
            rel, _Copy(rel, "schema file", snapshot_id=snap.snapshot_id, optional=True)
        )
        if snap.contract is not None:
            rel = f"{CONTRACT_DIR}/{snap.contract.id}.json"
            leaves[rel] = _Copy(rel, "contract file", snapshot_id=snap.snapshot_id)
        for m in snap.manifests:
            if m.path is not None:
                manifests[m.path] = _Copy(
                    m.path, "manifest", m.content_hash, None, snap.snapshot_id
                )
            else:
                inline.extend((e, snap) for e in m.inline or ())
    present = _listed(s, manifests)
    new_manifests = [c for rel, c in manifests.items() if rel not in present]
    s.skipped += len(manifests) - len(new_manifests)
    refs = {
        (m.path, m.content_hash): (m, snap)
        for _, snap in s.entries.values()
        for m in snap.manifests
    }

    def entries_of(c: _Copy) -> list[tuple[FragmentEntry, str]]:
        m, snap = refs[(c.rel, c.content_hash)]
        return [(e, snap.snapshot_id) for e in read_manifest(s.src, m)]

    listed = [(e, snap.snapshot_id) for e, snap in inline]
    for got in each(s.pool, entries_of, new_manifests):
        listed.extend(got)
    for e, snap_id in listed:
        leaves.setdefault(e.path, _Copy(e.path, "fragment", e.content_hash, e.size_bytes, snap_id))
        rel = f"{SCHEMA_DIR}/{e.schema_id}.json"
        if e.schema_id not in own_schemas:  # a physical schema no copied snapshot shows
            leaves[rel] = _Copy(rel, "schema file", snapshot_id=snap_id)
        if e.deletion is not None:
            dv = e.deletion
            leaves.setdefault(
                dv.path, _Copy(dv.path, "deletion vector", dv.content_hash, None, snap_id)
            )
    for wave in (leaves, {c.rel: c for c in new_manifests}):
        present = _listed(s, wave)
        todo = [c for rel, c in wave.items() if rel not in present]
        s.skipped += len(wave) - len(todo)
        for copied, size in each(s.pool, lambda c: _copy_one(s, c), todo):
            s.copied += copied
            s.bytes += size
            s.skipped += 1 - copied
        s.dst.flush()


#: Up to this many objects are looked up one by one (concurrently) rather than by listing
#: their directories, whose size grows with history.
_PROBE_AT_MOST = 64


def _listed(s: Sync, objects: dict[str, _Copy]) -> set[str]:
    """The paths among ``objects`` the destination has: a few are probed one by one, many
    by one listing per directory."""
    if len(objects) <= _PROBE_AT_MOST:
        rels = list(objects)
        return {r for r, there in zip(rels, each(s.pool, s.dst.exists, rels), strict=True) if there}
    dirs = sorted({rel.rpartition("/")[0] for rel in objects})
    names = each(s.pool, s.dst.list, dirs)
    return {f"{d}/{n}" for d, ns in zip(dirs, names, strict=True) for n in ns}


#: How long a same-named object another writer is still writing may take to settle.
_SETTLE_SECONDS = 10.0


def _copy_one(s: Sync, c: _Copy) -> tuple[int, int]:
    """Copy one object, verified; return (1, bytes) or (0, 0) if it was already there."""
    try:
        data = s.src.read_bytes(c.rel)
    except FileNotFoundError:
        if c.optional:
            return 0, 0
        data = None
    problem = _problem(c, data)
    if problem is not None:
        path = s.src.full_path(c.rel)
        if c.what == "fragment":
            assert c.content_hash is not None
            assert c.size is not None
            raise damaged(s.src, _Ref(c.rel, c.size, c.content_hash), c.snapshot_id, problem)
        raise CorruptMetadata(
            f"{c.what} {path} {problem}; it was damaged or deleted outside lakever. Nothing "
            "that needs it was published: restore it from a backup, then sync again",
            path=path,
        )
    assert data is not None
    try:
        s.dst.write_new(c.rel, data)
    except FileExistsError:
        # A concurrent sync or writer put it there, and may still be writing it (on a
        # local disk a new file is visible before its bytes): give it time to finish.
        deadline = time.monotonic() + _SETTLE_SECONDS
        while (theirs := s.dst.read_bytes(c.rel)) != data and time.monotonic() < deadline:
            time.sleep(0.05)
        if theirs != data:
            path = s.dst.full_path(c.rel)
            raise CorruptMetadata(
                f"{c.what} {path} in the destination holds other bytes than the source's "
                f"{s.src.full_path(c.rel)}, which match their recorded hash: the destination's "
                "copy is damaged. Restore or delete it there, then sync again",
                path=path,
            ) from None
        return 0, 0
    return 1, len(data)


@dataclass(frozen=True, slots=True)
class _Ref:
    path: str
    size_bytes: int
    content_hash: str


def _problem(c: _Copy, data: bytes | None) -> str | None:
    """Why ``data`` is not the object ``c`` names (None: it is)."""
    if data is None:
        return "is missing"
    if c.size is not None and len(data) != c.size:
        return f"has {len(data)} bytes, its manifest entry records {c.size}"
    if c.content_hash is not None and f"sha256:{sha256_hex(data)}" != c.content_hash:
        return f"does not match the SHA-256 recorded for it ({c.content_hash[:19]}...)"
    name = c.rel.rpartition("/")[2].removesuffix(".json")
    if c.what in ("schema file", "contract file") and object_id(data) != name:
        return "does not match its content-addressed name"
    return None


# ------------------------------------------------------------------ field-id claims


@dataclass(frozen=True, slots=True)
class _Claim:
    seq: int
    data: bytes
    first: int
    last: int
    branch: str


def _claims(s: Sync, storage: Storage) -> list[_Claim]:
    names = sorted(n for n in storage.list(FIELD_ID_DIR) if ENTRY.fullmatch(n))

    def load(name: str) -> _Claim:
        rel = f"{FIELD_ID_DIR}/{name}"
        data = storage.read_bytes(rel)
        try:
            j = json.loads(data)
            claim = _Claim(int(name[:20]), data, j["first"], j["last"], str(j["branch"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptMetadata(
                f"field id claim {storage.full_path(rel)} is malformed ({exc!r})",
                path=storage.full_path(rel),
            ) from exc
        if not (isinstance(claim.first, int) and isinstance(claim.last, int)):
            raise CorruptMetadata(
                f"field id claim {storage.full_path(rel)} holds an invalid range",
                path=storage.full_path(rel),
            )
        return claim

    return each(s.pool, load, names)


def copy_claims(s: Sync) -> None:
    """Copy the field-id claims of the copied branches (docs/format.md §5.1).

    The destination's claims must stay numbered contiguously from 0, each range
    above the previous one, because its writers claim above the newest claim. A
    claim the destination already has (same bytes, at any number) is skipped; a new
    one is put at the next free number, which keeps both rules as long as its ids
    are above the destination's newest claim. A claim overlapping a destination
    claim means both datasets handed out the same ids: refused.
    """
    mine = [c for c in _claims(s, s.src) if c.branch in s.tops]
    for _attempt in range(16):
        theirs = _claims(s, s.dst)
        have = {c.data for c in theirs}
        todo = [c for c in mine if c.data not in have]
        if not todo:
            return
        for c in todo:
            for t in theirs:
                if c.first <= t.last and t.first <= c.last:
                    raise _field_ids_clash(s, c, t)
        seq = max((t.seq for t in theirs), default=-1)
        top = max((t.last for t in theirs), default=0)
        for c in todo:
            if c.first <= top:
                # Its ids lie below the destination's newest claim and overlap none of
                # its claims: destination writers only claim above the newest, so they
                # never hand these ids out. A claim here would break the order.
                continue
            if not s.dst.publish(field_id_claim_path(seq + 1), c.data):
                break  # a destination writer claimed meanwhile: read the claims again
            seq, top = seq + 1, c.last
            s.copied += 1
            s.bytes += len(c.data)
            with contextlib.suppress(OSError):  # advisory, like the writers' hint
                s.dst.write_hint(f"{FIELD_ID_DIR}/LATEST", b"%020d\n" % seq)
        else:
            return
    raise RemoteConflict(
        f"gave up copying field id claims to {s.dst.uri}: other writers keep claiming field "
        "ids there; sync again later",
        name="field ids",
        kind="field ids",
    )


def _field_ids_clash(s: Sync, c: _Claim, t: _Claim) -> RemoteConflict:
    lo, hi = max(c.first, t.first), min(c.last, t.last)
    return RemoteConflict(
        f"field ids {lo} to {hi} were handed out in both datasets since they last synced: "
        f"{s.src.uri} gave them to a schema change of branch id {c.branch[:12]} (claim "
        f"{c.seq}), {s.dst.uri} to one of branch id {t.branch[:12]} (claim {t.seq}), so "
        "one id would name two different columns. Nothing was published. Sync one side's "
        "schema changes to the other first, then redo the other side's schema change "
        "(evolve, or the write that added columns) on top of them",
        name="field ids",
        kind="field ids",
    )


# ---------------------------------------------------------------------- publishing


def publish_entries(s: Sync) -> None:
    """Put the log entries, each after its parent, branch base and merge parent."""
    keys = sorted(s.entries)
    deps: dict[tuple[str, int], set[tuple[str, int]]] = {k: set() for k in keys}
    for bid, v in keys:
        line, snap = s.lines[bid], s.entries[(bid, v)][1]
        before: list[tuple[Line, int]] = [(line, v - 1)]
        if snap.merge_parent:
            mp = snap.merge_parent
            before.append((s.lines[str(mp["branch"])], int(mp["version"])))
        for dep_line, version in before:
            # A version below a branch's first own one is in a base line's log.
            key = (dep_line.owner(version).branch_id, version)
            if key in deps:
                deps[(bid, v)].add(key)
    waiting = {k: len(d) for k, d in deps.items()}
    after: dict[tuple[str, int], list[tuple[str, int]]] = {k: [] for k in keys}
    for k, ds in deps.items():
        for d in ds:
            after[d].append(k)
    ready = [(s.entries[k][1].timestamp, k) for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    while ready:
        _, (bid, v) = heapq.heappop(ready)
        data, snap = s.entries[(bid, v)]
        if s.dst.publish(log_path(bid, v), data):
            s.copied += 1
            s.bytes += len(data)
        elif s.dst.read_bytes(log_path(bid, v)) != data:
            raise diverged(s, s.lines[bid], v, v)
        else:
            s.skipped += 1
        for k in after[(bid, v)]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, (s.entries[k][1].timestamp, k))
    for bid, top in s.tops.items():
        if top >= s.starts[bid] and top >= s.lines[bid].first_own:
            with contextlib.suppress(OSError):  # advisory: readers probe forward
                s.dst.write_hint(latest_hint_path(bid), b"%020d\n" % top)

    def index(snap: Snapshot) -> None:
        with contextlib.suppress(OSError):  # advisory, verified on use
            s.dst.write_hint(
                snapshot_index_path(snap.snapshot_id),
                canonical_json({"branch": snap.branch_id, "version": snap.version}),
            )

    each(s.pool, index, [snap for _, snap in s.entries.values()])
