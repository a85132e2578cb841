"""Verify: check every file the snapshots of a dataset reference, and the log chain.

`verify_dataset` walks the snapshots asked for (the head, every version of a
branch, or every branch and tag), checks the chain of log entries (parent links,
branch records; `lakever._chain`), then reads every distinct file they reference
once: manifests and deletion vectors (hash, and that they parse), schema and
contract files (their content-addressed names), and fragments (existence, size,
SHA-256; concurrently). Damage never raises: each problem is reported with the
file, its kind, and the versions it affects. Only misuse raises.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakever import _chain, refs
from lakever.deletion import _valid
from lakever.errors import CorruptMetadata, LakeverError, UnsupportedFormatVersion
from lakever.format import (
    CONTRACT_DIR,
    SCHEMA_DIR,
    FragmentEntry,
    Snapshot,
    branch_meta_path,
    log_dir,
    object_id,
    schema_id,
)
from lakever.integrity import _hash_file
from lakever.log import Line
from lakever.maintenance.expire import check_held
from lakever.manifests import parse_manifest
from lakever.retention import (
    Expiry,
    export_path,
    list_exported,
    list_retained,
    read_expiry,
    retained_path,
)
from lakever.storage import Storage

__all__ = ["KINDS", "Problem", "VerifyReport", "Walk", "check_snapshots", "verify_dataset"]

#: The kinds of problem a report lists.
KINDS = (
    "missing",
    "size",
    "hash",
    "unreadable",
    "chain",
    "schema",
    "contract",
    "deletion vector",
    "merkle",
)
_LOCK = threading.Lock()
_ENTRY = re.compile(r"(\d{20})\.json")
Version = tuple[str, int]


@dataclass(frozen=True)
class Problem:
    """One damaged file: where, what kind of damage, which versions (branch, version) show it."""

    path: str
    kind: str
    versions: tuple[Version, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "versions": [{"branch": b, "version": v} for b, v in self.versions],
            "message": self.message,
        }

    def __str__(self) -> str:
        where = ", ".join(f"{b}@{v}" for b, v in self.versions) or "-"
        return f"{self.path}: {self.kind}: {self.message} (versions: {where})"


@dataclass(frozen=True)
class VerifyReport:
    """What `lakever.Dataset.verify` and `lakever.verify` found; ``ok`` when nothing."""

    uri: str
    problems: tuple[Problem, ...]
    #: Distinct snapshots checked.
    snapshots: int
    #: Distinct files read (fragments, manifests, deletion vectors, schemas, contracts).
    files: int
    #: Bytes read and hashed.
    bytes: int
    #: The Merkle root recomputed from storage (pins only; docs/format.md §6.1).
    merkle: str | None = None
    #: Expired versions passed over: their chain was checked, not their files.
    expired: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "ok": self.ok,
            "snapshots": self.snapshots,
            "files": self.files,
            "bytes": self.bytes,
            "merkle": self.merkle,
            "expired": self.expired,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class Walk:
    """Problems and referenced snapshots collected so far."""

    storage: Storage
    #: (path, kind) -> [message, versions].
    found: dict[tuple[str, str], tuple[str, set[Version]]] = field(default_factory=dict)
    #: snapshot id -> (snapshot, versions showing it).
    snaps: dict[str, tuple[Snapshot, set[Version]]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    #: Expired versions met (branch id, version): chain checked, files not.
    expired: set[Version] = field(default_factory=set)
    _expiry: Expiry | None = None

    def expiry(self) -> Expiry:
        """The dataset's expiry record, read from storage once per walk; a damaged one is
        a problem, and then no version counts as expired."""
        if self._expiry is None:
            try:
                self._expiry = read_expiry(self.storage, fresh=True)
            except CorruptMetadata as exc:
                self.add(exc.path, "chain", str(exc), [])
                self._expiry = Expiry(None)
        return self._expiry

    def add(self, path: str, kind: str, message: str, versions: Iterable[Version]) -> None:
        one = " ".join(part.strip() for part in message.splitlines() if part.strip())
        with _LOCK:
            _, seen = self.found.setdefault((path, kind), (one, set()))
            seen.update(versions)

    def count(self, size: int) -> None:
        with _LOCK:
            self.files += 1
            self.bytes += size

    def snapshot(self, snap: Snapshot, label: Version) -> None:
        self.snaps.setdefault(snap.snapshot_id, (snap, set()))[1].add(label)

    def report(self, uri: str, merkle: str | None = None) -> VerifyReport:
        problems = tuple(
            Problem(path, kind, tuple(sorted(vs)), msg)
            for (path, kind), (msg, vs) in sorted(self.found.items())
        )
        return VerifyReport(
            uri, problems, len(self.snaps), self.files, self.bytes, merkle, len(self.expired)
        )


# ----------------------------------------------------------------- the log chain


def _listed_latest(line: Line) -> int | None:
    """The newest version of ``line`` by listing its own log (no hint, no probe)."""
    own = [
        int(m.group(1))
        for n in line.storage.list(log_dir(line.branch_id))
        if (m := _ENTRY.fullmatch(n))
    ]
    if own:
        return max(own)
    return line.first_own - 1 if line.first_own > 0 else None


def _base_beyond_history(w: Walk, line: Line, label: str) -> bool:
    """Whether ``line`` starts after the newest version its base has (reported): a
    damaged branch record, whose versions below the start would all read as missing
    (10**12 of them for a number edited in)."""
    if line.base is None:
        return False
    base, start = line.base
    top = _listed_latest(base)
    if top is not None and start <= top:
        return False
    path = line.storage.full_path(branch_meta_path(line.branch_id))
    why = f"its base has versions up to {top}" if top is not None else "its base has no version"
    w.add(
        path,
        "chain",
        f"branch record {path} says branch {label!r} starts at version {start} of its base, "
        f"but {why}: the record is damaged; restore it from a backup",
        [(label, start)],
    )
    return True


def walk_line(w: Walk, line: Line, label: str, *, full: bool) -> None:
    """Check ``line``'s chain and collect its head (``full``: every version)."""
    if _base_beyond_history(w, line, label):
        return
    try:
        latest = line.latest_version()
    except CorruptMetadata as exc:
        w.add(exc.path, "chain", str(exc), [(label, getattr(exc, "version", 0) or 0)])
        latest = None
    # A listing finds entries beyond a gap the hint and probe stop at (full walks only).
    listed = _listed_latest(line) if full or latest is None else None
    if latest is None or (listed is not None and listed > latest):
        latest = listed
    if latest is None:
        return
    try:
        bases = _chain.recorded_bases(line)
    except CorruptMetadata as exc:
        w.add(exc.path, "chain", str(exc), [(label, latest)])
        bases = {}
    previous: Snapshot | None = None
    expiry = w.expiry()
    for v in range(0 if full else latest, latest + 1):
        path = line.entry_path(v)
        try:
            snap = line.read(v)
        except (CorruptMetadata, UnsupportedFormatVersion) as exc:
            w.add(path, "chain", f"log entry of version {v} cannot be read: {exc}", [(label, v)])
            previous = None
            continue
        if snap is None:
            w.add(
                path,
                "chain",
                f"log entry of version {v} is missing although version {latest} exists",
                [(label, v)],
            )
            previous = None
            continue
        try:
            if v == 0:
                _chain.check_root(line, snap)
            _chain.check_base(line, snap, bases)
            if previous is not None:
                _chain.check_link(line, snap, previous, bases)
            elif not full and v > 0:
                _chain.verify(line, snap)
        except CorruptMetadata as exc:
            w.add(exc.path, "chain", str(exc), [(label, getattr(exc, "version", v))])
        if expiry.find(snap.branch_id, v) is None:
            w.snapshot(snap, (label, v))
        else:
            w.expired.add((snap.branch_id, v))  # its files may be vacuumed: not checked
        previous = snap


def walk_refs(w: Walk, storage: Storage, *, full: bool) -> None:
    """Every branch (head, or every version) and every tag."""
    try:
        branches = refs.list_branches(storage)
        tags = refs.list_tags(storage)
    except CorruptMetadata as exc:
        w.add(exc.path, "chain", str(exc), [])
        branches, tags = [refs.MAIN], []
    for info in branches:
        try:
            line = refs.line_for(storage, info.id)
        except CorruptMetadata as exc:
            w.add(exc.path, "chain", str(exc), [(info.name, 0)])
            continue
        walk_line(w, line, info.name, full=full)
    for tag in tags:
        label = (f"tag:{tag.name}", tag.version)
        try:
            line = refs.line_for(storage, tag.branch_id)
            snap = line.read(tag.version)
        except CorruptMetadata as exc:
            w.add(exc.path, "chain", str(exc), [label])
            continue
        if snap is None or snap.snapshot_id != tag.snapshot_id:
            w.add(
                line.entry_path(tag.version),
                "chain",
                f"tag {tag.name!r} names snapshot {tag.snapshot_id}, which is not in the log",
                [label],
            )
            continue
        w.snapshot(snap, label)
    walk_held(w, storage)


def walk_held(w: Walk, storage: Storage) -> None:
    """Every retained pin and export hold names a version that holds its snapshot."""
    try:
        held = [
            (r, retained_path(r.snapshot_id), f"retained:{r.snapshot_id[:12]}")
            for r in list_retained(storage)
        ]
        held += [
            (r, export_path(r.pin, r.snapshot_id), f"export:{r.pin}")
            for r in list_exported(storage)
        ]
    except CorruptMetadata as exc:
        w.add(exc.path, "chain", str(exc), [])
        return
    for r, rel, label in held:  # labelled as `expire.roots` names them
        try:
            check_held(storage, r, rel)
        except CorruptMetadata as exc:
            w.add(exc.path, "chain", str(exc), [(label, r.version)])


# ----------------------------------------------------------------- referenced files


def _pool(storage: Storage) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=16 if not storage.is_local else min(4, os.cpu_count() or 1)
    )


def _read(w: Walk, rel: str, what: str, versions: set[Version]) -> bytes | None:
    try:
        data = w.storage.read_bytes(rel)
    except FileNotFoundError:
        w.add(w.storage.location(rel), "missing", f"{what} is missing", versions)
        return None
    except (OSError, LakeverError) as exc:
        w.add(w.storage.location(rel), "unreadable", f"{what} cannot be read: {exc}", versions)
        return None
    w.count(len(data))
    return data


def _check_manifest(w: Walk, rel: str, digest: str, vs: set[Version]) -> list[FragmentEntry]:
    data = _read(w, rel, "manifest", vs)
    if data is None:
        return []
    where = w.storage.location(rel)
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        w.add(where, "hash", "manifest does not match the hash its snapshot records", vs)
        return []
    try:
        return parse_manifest(data, rel)
    except CorruptMetadata as exc:
        w.add(where, "unreadable", str(exc), vs)
        return []


def _fragment(storage: Storage, e: FragmentEntry) -> tuple[str | None, str, int]:
    """(kind of damage or None, message, bytes read) for ``e``'s file."""
    try:
        if storage.is_local:
            path = storage.full_path(e.path)
            size = os.stat(path).st_size
            if size != e.size_bytes:
                return "size", f"fragment has {size} bytes instead of {e.size_bytes}", 0
            digest, size = _hash_file(path)
        else:
            data = storage.read_bytes(e.path)
            size = len(data)
            if size != e.size_bytes:
                return "size", f"fragment has {size} bytes instead of {e.size_bytes}", size
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    except FileNotFoundError:
        return "missing", "fragment is missing", 0
    except (OSError, LakeverError) as exc:
        return "unreadable", f"fragment cannot be read: {exc}", 0
    if digest != e.content_hash:
        return "hash", "fragment does not match the SHA-256 its manifest records", size
    return None, "", size


def _check_dv(w: Walk, e: FragmentEntry, vs: set[Version]) -> None:
    dv = e.deletion
    assert dv is not None
    data = _read(w, dv.path, "deletion vector", vs)
    if data is None:
        return
    where = w.storage.location(dv.path)
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != dv.content_hash:
        w.add(where, "hash", f"deletion vector of {e.path} does not match its recorded hash", vs)
        return
    try:
        positions = pq.read_table(pa.BufferReader(data)).column("position").combine_chunks()
        good = _valid(positions.cast(pa.int64()), dv.count, e.num_rows)
    except (pa.ArrowException, KeyError) as exc:
        w.add(where, "deletion vector", f"deletion vector cannot be parsed: {exc}", vs)
        return
    if not good:
        w.add(
            where,
            "deletion vector",
            f"deletion vector of {e.path} does not hold {dv.count} sorted unique positions "
            f"below {e.num_rows}",
            vs,
        )


def _check_named(
    w: Walk, rel: str, oid: str, kind: str, vs: set[Version], *, required: bool
) -> None:
    """A content-addressed schema or contract file: present (when required), named by its hash."""
    try:
        data = w.storage.read_bytes(rel)
    except FileNotFoundError:
        if required:
            w.add(w.storage.location(rel), kind, f"{kind} file is missing", vs)
        return
    except (OSError, LakeverError) as exc:
        w.add(w.storage.location(rel), "unreadable", f"{kind} file cannot be read: {exc}", vs)
        return
    w.count(len(data))
    if object_id(data) != oid:
        w.add(
            w.storage.location(rel),
            kind,
            f"{kind} file does not match its content-addressed name (modified after written)",
            vs,
        )


OnEntries = Callable[[Snapshot, list[FragmentEntry]], None]


def check_snapshots(w: Walk, on_entries: OnEntries | None = None) -> None:
    """Check every file the collected snapshots reference, each distinct file once.

    ``on_entries`` sees each snapshot with the fragment entries read for it.
    """
    storage = w.storage
    manifests: dict[tuple[str, str], set[Version]] = {}
    schemas: dict[str, tuple[set[Version], bool]] = {}
    contracts: dict[str, set[Version]] = {}
    for snap, vs in w.snaps.values():
        schemas.setdefault(schema_id(snap.schema), (set(), False))[0].update(vs)
        if snap.contract is not None:
            contracts.setdefault(snap.contract.id, set()).update(vs)
        for m in snap.manifests:
            if m.path is not None and m.content_hash is not None:
                manifests.setdefault((m.path, m.content_hash), set()).update(vs)
    with _pool(storage) as pool:
        keys = list(manifests)
        got = pool.map(lambda k: _check_manifest(w, k[0], k[1], manifests[k]), keys)
        read = dict(zip(keys, got, strict=True))
        fragments: dict[tuple[str, int, str], tuple[FragmentEntry, set[Version]]] = {}
        dvs: dict[tuple[str, str, int], tuple[FragmentEntry, set[Version]]] = {}
        for snap, vs in w.snaps.values():
            own = schema_id(snap.schema)
            entries: list[FragmentEntry] = []
            for m in snap.manifests:
                listed = m.inline if m.inline is not None else None
                entries.extend(listed or read.get((m.path or "", m.content_hash or ""), []))
            if on_entries is not None:
                on_entries(snap, entries)
            for e in entries:
                fkey = (e.path, e.size_bytes, e.content_hash)
                fragments.setdefault(fkey, (e, set()))[1].update(vs)
                if e.deletion is not None:
                    dkey = (e.deletion.path, e.deletion.content_hash, e.num_rows)
                    dvs.setdefault(dkey, (e, set()))[1].update(vs)
                if e.schema_id != own:  # a physical schema must have its file (§5.2)
                    seen, _ = schemas.get(e.schema_id, (set(), True))
                    schemas[e.schema_id] = (seen | vs, True)
        for sid, (vs, required) in schemas.items():
            _check_named(w, f"{SCHEMA_DIR}/{sid}.json", sid, "schema", vs, required=required)
        for cid, vs in contracts.items():
            _check_named(w, f"{CONTRACT_DIR}/{cid}.json", cid, "contract", vs, required=True)
        list(pool.map(lambda x: _check_dv(w, x[0], x[1]), dvs.values()))
        items = list(fragments.values())
        results = pool.map(lambda x: _fragment(storage, x[0]), items)
        for (e, vs), (kind, message, size) in zip(items, results, strict=True):
            w.count(size)
            if kind is not None:
                w.add(storage.location(e.path), kind, message, vs)


def verify_dataset(
    storage: Storage, line: Line, snap: Snapshot, label: str, *, full: bool, all_refs: bool
) -> VerifyReport:
    """Check a dataset (see the module docstring): ``snap`` on ``line`` (``full``: every
    version of the line; ``all_refs``: every branch and tag instead)."""
    w = Walk(storage)
    if all_refs:
        walk_refs(w, storage, full=full)
    elif full:
        walk_line(w, line, label, full=True)
    else:
        try:
            _chain.verify(line, snap)
        except (CorruptMetadata, UnsupportedFormatVersion) as exc:
            path = getattr(exc, "path", line.entry_path(snap.version))
            w.add(path, "chain", str(exc), [(label, snap.version)])
        w.snapshot(snap, (label, snap.version))
    check_snapshots(w)
    return w.report(storage.uri)
