"""Reachability: which stored file each retained snapshot needs, and which none does.

`survey` is the one computation vacuum and storage accounting share. In this order,
so that nothing a concurrent writer or ref creator does can make it delete what a
reader needs (docs/maintenance.md, "How vacuum decides"):

1. list every object under the dataset root, with size and modification time;
2. read the newest expiry record (`lakever.retention`), then the roots (branch
   heads, tags, retained pins, merge bases of live branches);
3. read every log entry of every branch log, deleted branches included, and the
   manifests of every *retained* snapshot: one not expired, expired less than
   ``grace`` ago (a reader may still be scanning it), or named by a root (a root
   is retained even if an interrupted ref creation left it on an expired version).

A file some retained snapshot references is kept, whatever its age. Only data
files (``data/``), manifests and deletion vectors are ever deleted, plus leftovers
of interrupted writes (``*.tmp-*``); log entries, refs, schemas, contracts, field
id claims and expiry records are history and stay. An unreferenced file is
deletable only once it is older than ``grace``: until then it may belong to a
commit still in flight. A damaged retained snapshot (a missing or altered
manifest) stops the survey: what it references is unknown, so nothing may go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from lakever import refs
from lakever.errors import CorruptMetadata
from lakever.format import (
    DATA_DIR,
    DELETION_DIR,
    LOG_DIR,
    MANIFEST_DIR,
    META_DIR,
    FragmentEntry,
    Snapshot,
)
from lakever.fragments import read_manifest
from lakever.maintenance.expire import Key, roots
from lakever.retention import read_expiry
from lakever.storage import Storage, StoredFile

__all__ = ["HISTORY", "Survey", "is_collectable", "survey"]

#: The label of a retained snapshot no root names.
HISTORY = "history"
#: Label prefixes of roots: live branch heads, tags, retained pins, merge bases.
HEAD, TAG, RETAINED, BASE = "branch:", "tag:", "retained:", "base:"
_COLLECTABLE = (f"{DATA_DIR}/", f"{MANIFEST_DIR}/", f"{DELETION_DIR}/")
#: The two top-level directories a dataset owns; nothing else under its root is looked at.
_OWNED = (f"{DATA_DIR}/", f"{META_DIR}/")
T = TypeVar("T")
R = TypeVar("R")


def is_collectable(path: str) -> bool:
    """Whether vacuum may ever delete ``path``: data, manifests, deletion vectors, and
    leftovers of interrupted writes; never history (log, refs, schemas, contracts...)."""
    if path.startswith(_COLLECTABLE):
        return True
    return path.startswith(_OWNED) and ".tmp-" in path.rsplit("/", 1)[-1]


@dataclass
class Survey:
    """Every collectable file, and what keeps it (see the module docstring)."""

    uri: str
    now: datetime
    grace: timedelta
    #: Collectable files as listed, by path.
    files: dict[str, StoredFile]
    #: Path -> labels of the retained snapshots referencing it (roots, "history").
    held: dict[str, set[str]] = field(default_factory=dict)
    #: Paths referenced only by snapshots expired less than ``grace`` ago.
    expiring: set[str] = field(default_factory=set)
    #: Paths referenced by snapshots expired before that (and no retained one).
    expired: set[str] = field(default_factory=set)
    #: Retained snapshots read.
    snapshots: int = 0
    #: Files and bytes of everything else stored (log, refs, schemas, contracts, ...).
    metadata_files: int = 0
    metadata_bytes: int = 0
    #: Fragment entries of the live branch heads (distinct paths).
    head_fragments: dict[str, FragmentEntry] = field(default_factory=dict)

    def old_enough(self, f: StoredFile) -> bool:
        return bool(f.modified <= (self.now - self.grace).timestamp())

    def reason(self, path: str) -> str | None:
        """Why ``path`` may be deleted now ("expired", "orphan", "temporary"), or None."""
        if path in self.held or path in self.expiring:
            return None
        f = self.files[path]
        if not self.old_enough(f):
            return None
        if ".tmp-" in path.rsplit("/", 1)[-1]:
            return "temporary"
        return "expired" if path in self.expired else "orphan"


def _pool_map(storage: Storage, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``map`` with requests in flight together on remote storage (local: in order)."""
    items = list(items)
    if storage.is_local or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(fn, items))


def _files_of(
    storage: Storage, snap: Snapshot, *, strict: bool
) -> tuple[list[str], list[FragmentEntry]]:
    """The collectable files ``snap`` references, and its fragment entries.

    ``strict``: a missing or damaged manifest raises (a retained snapshot); otherwise it
    is skipped (an expired snapshot whose manifests an earlier vacuum deleted).
    """
    paths: list[str] = []
    entries: list[FragmentEntry] = []
    for m in snap.manifests:
        if m.path is not None:
            paths.append(m.path)
        try:
            got = read_manifest(storage, m)
        except CorruptMetadata:
            if strict:
                raise
            continue
        entries.extend(got)
    for e in entries:
        paths.append(e.path)
        if e.deletion is not None:
            paths.append(e.deletion.path)
    return paths, entries


def survey(storage: Storage, *, grace: timedelta, now: datetime) -> Survey:
    """Classify every collectable file of the dataset (see the module docstring).

    Raises:
        CorruptMetadata: a retained snapshot's log entry or manifest is damaged
            (`lakever verify` names it); BrokenHistory for a damaged chain.
    """
    # 1. first: a file written later is simply not a candidate. Only the dataset's own two
    # directories: anything else under its root (a nested dataset, a README) is not ours.
    listed = [*storage.walk(DATA_DIR), *storage.walk(META_DIR)]
    files = {f.path: f for f in listed if is_collectable(f.path)}
    out = Survey(storage.uri, now, grace, files)
    others = [f for f in listed if f.path not in files]
    out.metadata_files, out.metadata_bytes = len(others), sum(f.size for f in others)
    expiry = read_expiry(storage)  # 2. the expiry before the roots
    held = roots(storage)
    acting = expiry.effective(now - grace)  # ranges expired long enough ago to act on

    def label(key: Key) -> list[str]:
        return held.get(key) or [HISTORY]

    work: list[tuple[str, int, bool]] = []
    lines = {}
    for branch_id in sorted(storage.list(LOG_DIR)):
        line = refs.line_for(storage, branch_id)
        lines[branch_id] = line
        latest = line.latest_version()
        if latest is None:
            continue
        for v in range(line.first_own, latest + 1):
            retained = (branch_id, v) in held or acting.find(branch_id, v) is None
            work.append((branch_id, v, retained))

    def one(
        item: tuple[str, int, bool],
    ) -> tuple[tuple[str, int, bool], list[str], list[FragmentEntry]]:
        branch_id, v, retained = item
        snap = lines[branch_id].must_read(v)
        paths, entries = _files_of(storage, snap, strict=retained)
        return item, paths, entries

    head_keys = {k for k, names in held.items() if any(n.startswith(HEAD) for n in names)}
    for (branch_id, v, retained), paths, entries in _pool_map(storage, one, work):
        key = (branch_id, v)
        if not retained:
            out.expired.update(paths)
            continue
        out.snapshots += 1
        if expiry.find(branch_id, v) is not None and key not in held:
            out.expiring.update(paths)
            continue
        names = label(key)
        for p in paths:
            out.held.setdefault(p, set()).update(names)
        if key in head_keys:
            out.head_fragments.update((e.path, e) for e in entries)
    out.expiring -= out.held.keys()
    out.expired -= out.held.keys() | out.expiring
    return out
