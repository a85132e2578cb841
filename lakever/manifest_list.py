"""The manifest list of a snapshot, and every edit made to it.

A snapshot lists its fragments through a list of manifests, each a level of a
log-structured merge: small commits add level-0 manifests (inlined in the
snapshot record when small), and every run of `FANOUT` manifests of one level is
merged into one manifest of the next (`merge_levels`). Row-level changes and
merges replace entries in place (`rewrite`): manifests holding none of the
replaced fragments are reused by reference, the others are written again at
their level. This module is the only place that edits a manifest list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from lakever.format import FragmentEntry, ManifestRef
from lakever.manifests import make_manifest, read_manifest, write_manifest
from lakever.storage import Storage

__all__ = ["FANOUT", "ManifestFiles", "ManifestIO", "append", "merge_levels", "rewrite"]

#: Manifests of one level merged into one of the next level once this many exist.
FANOUT = 8


class ManifestIO(Protocol):
    """Reads and makes manifests."""

    def read(self, ref: ManifestRef) -> list[FragmentEntry]:
        """The entries of a manifest."""
        ...

    def make(self, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
        """A manifest of ``level`` listing ``entries``."""
        ...


class ManifestFiles:
    """`ManifestIO` on a storage: level-0 manifests inlined in the record when small."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def read(self, ref: ManifestRef) -> list[FragmentEntry]:
        return read_manifest(self.storage, ref)

    def make(self, entries: Sequence[FragmentEntry], *, level: int) -> ManifestRef:
        if level == 0:
            return make_manifest(self.storage, entries, level=0)
        return write_manifest(self.storage, entries, level=level)


def rewrite(
    manifests: tuple[ManifestRef, ...],
    replacements: Mapping[str, Sequence[FragmentEntry]],
    io: ManifestIO,
) -> tuple[ManifestRef, ...]:
    """The list with each fragment named in ``replacements`` (by path) replaced in place.

    A fragment may be replaced by itself with another deletion vector, by the
    fragments a copy-on-write rewrite produced, or by nothing (it leaves the list).
    Manifests left without entries leave the list too.
    """
    if not replacements:
        return manifests
    out: list[ManifestRef] = []
    for m in manifests:
        entries = io.read(m)
        if not any(e.path in replacements for e in entries):
            out.append(m)
            continue
        replaced = [n for e in entries for n in replacements.get(e.path, (e,))]
        if replaced:
            out.append(io.make(replaced, level=m.level))
    return tuple(out)


def append(
    manifests: tuple[ManifestRef, ...], entries: Sequence[FragmentEntry], io: ManifestIO
) -> tuple[ManifestRef, ...]:
    """The list with ``entries`` added after every existing fragment (one level-0 manifest)."""
    if not entries:
        return manifests
    return (*manifests, io.make(entries, level=0))


def merge_levels(manifests: tuple[ManifestRef, ...], io: ManifestIO) -> tuple[ManifestRef, ...]:
    """Merge every run of `FANOUT` same-level manifests into one of the next level.

    Levels never increase along the list, so a level's manifests are adjacent
    and merging them in place keeps the order of fragments. The list stays at
    most ``(FANOUT - 1) * levels`` long, and each fragment entry is rewritten
    O(log n) times over its life: an append's cost does not grow with the number
    of fragments already in the dataset.
    """
    out = list(manifests)
    changed = True
    while changed:
        changed = False
        for i in range(len(out) - FANOUT + 1):
            run = out[i : i + FANOUT]
            if len({m.level for m in run}) == 1:
                entries = [e for m in run for e in io.read(m)]
                out[i : i + FANOUT] = [io.make(entries, level=run[0].level + 1)]
                changed = True
                break
    return tuple(out)
