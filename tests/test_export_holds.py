"""Snapshots held by an export (lakever.refs.hold_for_export): kept through expiry and
vacuum like retained pins until the export is dropped (docs/maintenance.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import lakever as lv
from lakever import refs
from lakever.retention import export_id, export_path, list_exported


def _lake(tmp_path: Path) -> lv.Dataset:
    ds = lv.create_dataset(str(tmp_path / "t"), pa.table({"id": [0]}))
    for i in range(1, 5):
        ds = ds.append(pa.table({"id": [i]}))
    return ds


def _expire_and_vacuum(ds: lv.Dataset) -> None:
    ds.expire(keep_last=1, older_than=timedelta(0), dry_run=False)
    ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)


def test_an_exported_snapshot_survives_expiry_and_vacuum_until_dropped(tmp_path: Path) -> None:
    ds = _lake(tmp_path)
    uri = str(tmp_path / "t")
    held = lv.open_dataset(uri, version=1)
    export = export_id("delta", "/somewhere/else")
    s = held._state
    r = refs.hold_for_export(s.storage, s.snap, export=export, reason="export delta x", author="me")
    assert (r.version, r.pin) == (1, export)
    again = refs.hold_for_export(s.storage, s.snap, export=export, reason="other", author="me")
    assert again.reason == "export delta x"  # idempotent: the first record stays
    _expire_and_vacuum(ds)
    assert lv.open_dataset(uri, version=1).to_arrow()["id"].to_pylist() == [0, 1]
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(uri, version=2)
    assert [x.snapshot_id for x in list_exported(s.storage)] == [held.snapshot_id]

    dropped = refs.drop_export(s.storage, export, author="me")
    assert [x.version for x in dropped] == [1]
    assert list_exported(s.storage) == []
    _expire_and_vacuum(lv.open_dataset(uri))
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(uri, version=1)
    assert lv.open_dataset(uri).to_arrow()["id"].to_pylist() == [0, 1, 2, 3, 4]
    assert lv.open_dataset(uri).verify(full=True).ok


@pytest.mark.parametrize("fmt", ["", "Delta", "de/lta", "a" * 17])
def test_export_ids_are_validated(fmt: str) -> None:
    with pytest.raises(lv.InvalidArgument):
        export_id(fmt, "/t")
    with pytest.raises(lv.InvalidArgument):
        export_path("../x", "abc")


def test_dataset_lists_and_drops_an_export_by_format_and_target(tmp_path: Path) -> None:
    ds = _lake(tmp_path)
    target = tmp_path / "exported"
    export = export_id("iceberg", str(target))  # targets are keyed by their normalised URI
    for v in (1, 3):
        s = lv.open_dataset(ds.uri, version=v)._state
        refs.hold_for_export(s.storage, s.snap, export=export, reason="r", author="a")
    assert sorted(r.version for r in ds.exports()) == [1, 3]
    assert ds.drop_export("delta", str(target)) == 0  # another format: another export
    assert ds.drop_export("iceberg", str(tmp_path / "x" / ".." / "exported")) == 2
    assert ds.exports() == []


def test_a_version_an_export_holds_stays_readable_when_an_expiry_raced_past_it(tmp_path: Path):
    """The hold landed just after an expiry read the roots (its guard read the expiry
    before that expiry was published): the expiry lists the version, the hold wins."""
    from lakever.format import canonical_json

    ds = _lake(tmp_path)
    ds.expire(keep_last=1, older_than=timedelta(0), dry_run=False)
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(ds.uri, version=2)
    s = ds._state
    snap = s.line.read(2)
    assert snap is not None
    record = {
        "snapshot_id": snap.snapshot_id, "branch": snap.branch_id, "version": 2,
        "pin": export_id("delta", "/t"), "reason": "r", "created": "2026-12-02T00:00:00.000000Z",
        "author": "a",
    }  # fmt: skip
    rel = export_path(export_id("delta", "/t"), snap.snapshot_id)
    s.storage.publish(rel, canonical_json(record))
    assert lv.open_dataset(ds.uri, version=2).to_arrow()["id"].to_pylist() == [0, 1, 2]


@pytest.mark.parametrize(("content", "says"), [(b"{not json", "not JSON"), (b"{}", "malformed")])
def test_a_damaged_export_hold_is_named_as_one(tmp_path: Path, content: bytes, says: str) -> None:
    ds = _lake(tmp_path)
    s = ds._state
    export = export_id("iceberg", "/elsewhere")
    refs.hold_for_export(s.storage, s.snap, export=export, reason="x", author="me")
    (tmp_path / "t" / export_path(export, s.snap.snapshot_id)).write_bytes(content)
    with pytest.raises(lv.CorruptMetadata, match=f"export hold .* {says}") as info:
        list_exported(s.storage)
    assert export in str(info.value.path)
