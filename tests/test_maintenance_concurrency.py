"""Maintenance racing other writers.

A ref (tag, retained pin, branch) made while an expiry runs keeps its snapshot readable.
"""

from __future__ import annotations

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
