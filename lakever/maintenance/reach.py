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

from collections.abc import Callable, Iterable, Sequence
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
    ManifestRef,
)
from lakever.maintenance.expire import Key, roots
from lakever.manifests import read_manifest
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

    def __post_init__(self) -> None:
        self._cutoff = (self.now - self.grace).timestamp()

    def old_enough(self, f: StoredFile) -> bool:
        return bool(f.modified <= self._cutoff)

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


@dataclass
class _Use:
    """How the snapshots referencing one manifest (a file, or inline entries) are kept."""

    ref: ManifestRef
    labels: set[str] = field(default_factory=set)  # retained snapshots' labels
    expiring: bool = False  # some referencing snapshot expired less than grace ago
    expired: bool = False  # some referencing snapshot expired longer ago
    head: bool = False  # a live branch head references it

    @property
    def strict(self) -> bool:
        """A retained snapshot needs it: a missing or damaged manifest must stop vacuum."""
        return bool(self.labels) or self.expiring


def _paths(ref: ManifestRef, entries: Sequence[FragmentEntry]) -> list[str]:
    """The collectable files a manifest and its entries name."""
    out = [ref.path] if ref.path is not None else []
    for e in entries:
        out.append(e.path)
        if e.deletion is not None:
            out.append(e.deletion.path)
    return out


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

    work: list[tuple[str, int, bool]] = []  # (branch id, version, retained)
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

    # 3. Every log entry, then each distinct manifest once (manifests are shared by the
    # versions after the one that wrote them: per version would cost history squared).
    snaps = _pool_map(storage, lambda item: lines[item[0]].must_read(item[1]), work)
    head_keys = {k for k, names in held.items() if any(n.startswith(HEAD) for n in names)}
    uses: dict[str, _Use] = {}
    for (branch_id, v, retained), snap in zip(work, snaps, strict=True):
        key = (branch_id, v)
        out.snapshots += retained
        expiring = retained and key not in held and expiry.find(branch_id, v) is not None
        for m in snap.manifests:
            use = uses.get(m.key)
            if use is None:
                use = uses[m.key] = _Use(m)
            if not retained:
                use.expired = True
            elif expiring:
                use.expiring = True
            else:
                use.labels.update(label(key))
                use.head = use.head or key in head_keys
    # An expired-only manifest file that is no longer listed was deleted by an earlier
    # vacuum: not fetched again. One a retained snapshot needs is always read.
    wanted = [u for u in uses.values() if u.strict or u.ref.path is None or u.ref.path in files]

    def entries_of(use: _Use) -> list[FragmentEntry] | None:
        try:
            return read_manifest(storage, use.ref)
        except CorruptMetadata:
            if use.strict:
                raise
            return None

    for use, entries in zip(wanted, _pool_map(storage, entries_of, wanted), strict=True):
        if entries is None:
            continue
        paths = _paths(use.ref, entries)
        if use.labels:
            for p in paths:
                out.held.setdefault(p, set()).update(use.labels)
        if use.expiring:
            out.expiring.update(paths)
        if use.expired:
            out.expired.update(paths)
        if use.head:
            out.head_fragments.update((e.path, e) for e in entries)
    out.expiring -= out.held.keys()
    out.expired -= out.held.keys() | out.expiring
    return out
