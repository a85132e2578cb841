"""Maintenance racing other writers and readers.

A ref (tag, retained pin, branch) made while an expiry runs keeps its snapshot readable;
a reader that opened a version while an expiry ran gets the whole vacuum grace.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from _data import events
from _maint_workers import digest

import lakever as lv


def test_ref_made_while_an_expiry_runs_keeps_its_snapshot_readable(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refs made after an expiry read the roots but before it published: each ref's own
    check (it re-reads the expiry after writing the ref) sees nothing expired, then the
    expiry lists the snapshot. Vacuum keeps what a root names, so each snapshot stays
    readable: by its pin, tag or branch, by its number and by its id."""
    import lakever.maintenance.expire as expire_module

    ds = lv.create_dataset(location, events(0, 3))
    for i in range(5):
        ds = ds.append(events(10 * (i + 1), 2))
    views = {v: lv.open_dataset(location, version=v) for v in (1, 2, 3)}
    want = {v: digest(view.to_arrow()) for v, view in views.items()}
    made: dict[str, str] = {}
    roots = expire_module.roots

    def roots_then_refs(storage: Any) -> Any:
        held = roots(storage)
        if not made:  # another process, between this expiry's roots and its publish
            made["pin"] = views[1].retain(reason="race").pin
            made["tag"] = views[2].tag("kept").name
            made["branch"] = views[3].branch("b").branch_name
        return held

    monkeypatch.setattr(expire_module, "roots", roots_then_refs)
    report = ds.expire(keep_last=1, dry_run=False)
    monkeypatch.undo()
    assert [(r.first, r.last) for r in report.expired] == [(0, 4)]  # 1, 2, 3 included
    ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)

    by_ref = {1: made["pin"], 2: "tag:kept", 3: "b"}
    for v, view in views.items():
        ref = by_ref[v]
        for opened in (
            lv.open_dataset(ref)
            if ref.startswith("lakever:")
            else lv.open_dataset(location, version=ref),
            lv.open_dataset(location, version=v),
            lv.open_dataset(location, version=view.snapshot_id),
        ):
            assert (opened.snapshot_id, digest(opened.to_arrow())) == (view.snapshot_id, want[v])
    for v in (0, 4):
        with pytest.raises(lv.VersionExpired):
            lv.open_dataset(location, version=v)
    assert ds.verify(full=True, all_refs=True).ok

    # Without its ref, each is expired like its neighbours.
    ds.release(made["pin"])
    ds.delete_tag("kept")
    ds.delete_branch("b")
    for v in (1, 2, 3):
        with pytest.raises(lv.VersionExpired):
            lv.open_dataset(location, version=v)


def test_grace_starts_when_the_expiry_is_published(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader opens a version while a slow expiry (a big lake, a slow store) runs;
    the expiry then publishes, expiring it, and a vacuum follows at once. The reader
    still has the whole grace: a version counts as expired from when its expiry was
    published, not from when that expiry started."""
    import lakever.maintenance.expire as expire_module

    ds = lv.create_dataset(location, events(0, 3))
    for i in range(3):
        ds = ds.append(events(10 * (i + 1), 2))
    ds = ds.compact()  # version 4: versions 0-3 alone reference the small fragments
    want = digest(lv.open_dataset(location, version=2).to_arrow())
    readers: dict[int, lv.Dataset] = {}
    roots = expire_module.roots

    def slow_roots(storage: Any) -> Any:
        held = roots(storage)
        if not readers:
            readers[2] = lv.open_dataset(location, version=2)  # not expired yet
            time.sleep(3)
        return held

    monkeypatch.setattr(expire_module, "roots", slow_roots)
    report = ds.expire(keep_last=1, dry_run=False)
    monkeypatch.undo()
    assert [(r.first, r.last) for r in report.expired] == [(0, 3)]
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(location, version=2)
    vacuumed = ds.vacuum(dry_run=False, grace=timedelta(seconds=2), allow_short_grace=True)
    assert vacuumed.files == ()  # expired (published) less than the grace ago
    assert digest(readers[2].to_arrow()) == want
    assert ds.vacuum(dry_run=True, grace=timedelta(0), allow_short_grace=True).files  # later
