"""Expiry: old versions become unreadable by name (VersionExpired), roots never do."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

import lakever as lv
from lakever import refs
from lakever.retention import EXPIRY_DIR, read_expiry
from tests._data import events
from tests.test_cli import run
from tests.test_cli_errors import lakever


def _history(location: str, n: int = 6) -> list[lv.Dataset]:
    """Versions 0..n-1, each appending 3 rows."""
    out = [lv.create_dataset(location, events(0, 3))]
    for i in range(1, n):
        out.append(out[-1].append(events(3 * i, 3), message=f"batch {i}"))
    return out


def _expired(location: str, version: int, **kw: object) -> lv.VersionExpired:
    with pytest.raises(lv.VersionExpired) as info:
        lv.open_dataset(location, version=version, **kw)  # type: ignore[arg-type]
    return info.value


def test_dry_run_is_the_default_and_writes_nothing(location):
    vs = _history(location)
    head = vs[-1]
    report = head.expire(keep_last=2)
    assert report.dry_run and report.record is None
    assert report.versions == 4
    assert [(r.branch, r.first, r.last) for r in report.expired] == [("main", 0, 3)]
    assert head._storage.list(EXPIRY_DIR) == []
    for v in range(6):
        assert lv.open_dataset(location, version=v).num_rows == 3 * (v + 1)


def test_expired_versions_raise_everywhere_roots_stay(location):
    vs = _history(location)
    vs[1].tag("first")
    pin2 = vs[2].pin()
    kept = vs[3].retain(reason="model v1")
    head = vs[-1]
    report = head.expire(keep_last=1, dry_run=False, author="ops")
    assert report.record == 0
    assert [(r.first, r.last) for r in report.expired] == [(0, 0), (2, 2), (4, 4)]
    assert report.kept == {"main@1": ["tag:first"], "main@3": [f"retained:{kept.snapshot_id[:12]}"]}
    err = _expired(location, 2)
    assert (err.version, err.branch, err.expired_by, err.next_readable) == (2, "main", "ops", 3)
    assert err.policy == "beyond the last 1 of each branch"
    assert isinstance(err, lv.VersionNotFound) and isinstance(err.expired_at, datetime)
    assert "tag a version" in str(err) and "expired at" in str(err)
    _expired(location, vs[0].timestamp)  # as of a time
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(location, version=vs[2].snapshot_id[:10])  # snapshot id
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(pin2)
    # Roots read back: the tag, the retained pin, the head.
    assert lv.open_dataset(location, version="first").to_arrow().equals(vs[1].to_arrow())
    assert lv.open_dataset(kept.pin).to_arrow().equals(vs[3].to_arrow())
    assert lv.open_dataset(location, version=3).num_rows == 12
    assert lv.open_dataset(location).to_arrow().equals(head.to_arrow())
    # History lists every commit, marking the expired ones.
    assert [(c.version, c.expired) for c in head.history()] == [
        (5, False), (4, True), (3, False), (2, True), (1, False), (0, True),
    ]  # fmt: skip
    assert head.schema_history()  # schema history reads records only


def test_operations_across_expired_versions_say_so(local_location):
    vs = _history(local_location)
    head = vs[-1].expire(keep_last=3, dry_run=False) and vs[-1]
    with pytest.raises(lv.VersionExpired):
        head.diff(1)
    with pytest.raises(lv.VersionExpired):
        list(head.changes(since=1))
    with pytest.raises(lv.VersionExpired):
        head.restore(0)
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(local_location, version=2).branch("late")
    # Within the retained range everything works.
    assert [t["_commit_version"][0].as_py() for t in head.changes(since=3)] == [4, 5]
    assert head.diff(3).summary.rows_removed == 6


def test_tag_or_branch_made_during_an_expiry_is_refused_and_removed(local_location):
    vs = _history(local_location, 4)
    snap = vs[1]._snap
    vs[-1].expire(keep_last=1, dry_run=False)
    # A ref creator that checked before the expiry landed writes its ref after it:
    # the re-check after writing removes it again.
    with pytest.raises(lv.VersionExpired):
        refs.create_tag(
            vs[-1]._storage, "late", snapshot_id=snap.snapshot_id, branch_id="main",
            version=1, author="t", message="",
        )  # fmt: skip
    assert refs.get_tag(vs[-1]._storage, "late") is None
    with pytest.raises(lv.VersionExpired):
        refs.create_branch(vs[-1]._storage, "late", base=("main", 1, snap.snapshot_id), author="t")
    assert refs.get_branch(vs[-1]._storage, "late") is None


def test_older_than_and_keep_last_combine(local_location):
    vs = _history(local_location)
    head = vs[-1]
    cut = vs[3].timestamp  # versions 0..2 are older
    assert [(r.first, r.last) for r in head.expire(older_than=cut).expired] == [(0, 2)]
    both = head.expire(older_than=cut, keep_last=5)
    assert [(r.first, r.last) for r in both.expired] == [(0, 0)]
    recent = head.expire(older_than=timedelta(days=1))
    assert recent.versions == 0 and recent.expired == ()
    everything = head.expire(older_than=timedelta(0), dry_run=False)
    assert everything.versions == 5  # the head is a root
    assert head.expire(older_than=timedelta(0), dry_run=False).record is None  # nothing new


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"keep_last": 0},
        {"keep_last": True},
        {"keep_last": "2"},
        {"older_than": datetime(2026, 1, 1)},  # naive
        {"older_than": "30d"},
        {"older_than": timedelta(days=-1)},
        {"keep_last": 1, "dry_run": "no"},
    ],
)
def test_bad_policies_are_refused(local_location, kw):
    ds = lv.create_dataset(local_location, events(0, 3))
    with pytest.raises(lv.InvalidArgument):
        ds.expire(**kw)


def test_branches_keep_heads_and_merge_bases(local_location):
    vs = _history(local_location, 3)
    feature = vs[2].branch("feature")
    for i in range(3):
        feature = feature.append(events(100 + 3 * i, 3))
    main = vs[2]
    for i in range(3):
        main = main.append(events(200 + 3 * i, 3))
    report = main.expire(keep_last=1, dry_run=False)
    # main@2 is the merge base of main and feature: kept so they can still merge.
    assert report.kept == {"main@2": ["base:main+feature"]}
    expired = {(r.branch, r.first, r.last) for r in report.expired}
    assert expired == {("main", 0, 1), ("main", 3, 4), ("feature", 3, 4)}
    main.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    merged = lv.open_dataset(local_location).merge("feature")
    assert sorted(merged.to_arrow()["id"].to_pylist()) == sorted(
        main.to_arrow()["id"].to_pylist() + list(range(100, 109))
    )
    assert main.verify(full=True, all_refs=True).ok


def test_deleted_branch_expires_except_its_tags(local_location):
    vs = _history(local_location, 2)
    b = vs[-1].branch("tmp")
    b = b.append(events(50, 1))
    b.tag("keep-me")
    b = b.append(events(60, 1))
    b.delete_branch("tmp")
    report = vs[-1].expire(keep_last=1, dry_run=False)
    assert {(r.branch, r.first, r.last) for r in report.expired} == {("main", 0, 0)}
    # The deleted branch's last version is kept by keep_last=1, its tag by the tag.
    assert report.kept == {"tmp@2": ["tag:keep-me"]}
    everything = vs[-1].expire(older_than=timedelta(0), dry_run=False)
    assert {(r.branch, r.first, r.last) for r in everything.expired} == {("tmp", 3, 3)}
    assert lv.open_dataset(local_location, version="keep-me").num_rows == 7


def test_concurrent_expiries_both_land_cumulatively(local_location):
    vs = _history(local_location, 8)
    errors: list[BaseException] = []

    def run_one(keep: int) -> None:
        try:
            lv.open_dataset(local_location).expire(keep_last=keep, dry_run=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run_one, args=(k,)) for k in (6, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expiry = read_expiry(vs[0]._storage)
    assert expiry.sequence in (0, 1)
    assert sorted(expiry.expired_versions("main")) == [0, 1, 2, 3, 4]


def test_damaged_expiry_record_is_corrupt_metadata(local_location):
    vs = _history(local_location, 3)
    vs[-1].expire(keep_last=1, dry_run=False)
    path = f"{local_location}/{EXPIRY_DIR}/{0:020d}.json"
    with open(path, "w") as f:
        f.write('{"sequence": 0, "expired": [{"branch": "main"')
    from lakever.retention import _SEEN

    _SEEN.clear()
    with pytest.raises(lv.CorruptMetadata, match="expiry record"):
        lv.open_dataset(local_location, version=0)


def test_release_lets_the_next_expiry_take_it(local_location):
    vs = _history(local_location, 3)
    r = vs[0].retain(reason="baseline")
    assert vs[0].retain().snapshot_id == r.snapshot_id  # idempotent
    assert [x.reason for x in vs[-1].retained()] == ["baseline"]
    assert vs[-1].expire(keep_last=1, dry_run=False).kept == {
        "main@0": [f"retained:{r.snapshot_id[:12]}"]
    }
    vs[-1].release(r.pin)
    assert vs[-1].retained() == []
    with pytest.raises(lv.RefNotFound):
        vs[-1].release(r.snapshot_id)
    assert vs[-1].expire(keep_last=1, dry_run=False).versions == 1
    _expired(local_location, 0)


def test_expiry_survives_a_new_process_and_a_copy(local_location, tmp_path):
    import shutil

    vs = _history(local_location, 3)
    vs[-1].expire(keep_last=1, dry_run=False)
    copy = str(tmp_path / "copy")
    shutil.copytree(local_location, copy)
    _expired(copy, 0)
    assert lv.open_dataset(copy, version=2).num_rows == 9


def test_cli_expire(local_location):
    _history(local_location, 4)
    code, out = run("expire", local_location, "--keep-last", "2")
    assert code == 0 and "would expire main@0..1 (2 versions)" in out and "dry run" in out
    code, out = run("expire", local_location, "--older-than", "0s", "--apply", "--json")
    assert code == 0 and '"versions": 3' in out
    log = run("log", local_location)[1]
    assert "2 (expired)" in log and "3 (expired)" not in log
    shown = lakever("show", local_location, "1")
    assert shown.returncode == 1 and "was expired at" in shown.stderr
    bad = lakever("expire", local_location, "--older-than", "soon")
    assert bad.returncode == 1 and "not a duration" in bad.stderr


def test_expire_keeps_every_retained_version_identical(location):
    """On every backend: expire, vacuum; what is retained reads back as before."""
    vs = _history(location, 5)
    vs[-1] = vs[-1].delete(where="id = 0")
    vs.append(vs[-1].compact())
    vs[2].tag("mid")
    before = {v.version: v.to_arrow() for v in vs}
    head = lv.open_dataset(location)
    head.expire(keep_last=1, dry_run=False)
    done = head.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    assert done.files  # the compaction left the old fragments to expired versions only
    for v, table in before.items():
        if v in (2, head.version):
            assert lv.open_dataset(location, version=v).to_arrow().equals(table)
        else:
            _expired(location, v)
    assert head.verify(full=True, all_refs=True).ok


def test_expire_by_time_uses_commit_times(local_location):
    vs = _history(local_location, 4)
    head = vs[-1]
    now = datetime.now(UTC)
    assert head.expire(older_than=now).versions == 3
    assert head.expire(older_than=vs[0].timestamp).versions == 0


@pytest.mark.parametrize(
    ("field", "value"), [("version", 10**15), ("version", 1), ("branch", "../x")]
)
def test_a_damaged_retained_pin_stops_expiry_and_is_reported(local_location, field, value):
    # A pin edited to name another version (or none) silently stopped protecting its own:
    # expire then removed it, and verify said nothing. Now expiry refuses to run and
    # verify reports the record.
    import json
    import os

    from lakever.retention import retained_path

    ds = lv.create_dataset(local_location, events(0, 1))
    ds.retain(reason="model v1")
    pinned = ds.snapshot_id
    ds = ds.append(events(1, 1)).append(events(2, 1))
    path = os.path.join(local_location, retained_path(pinned))
    with open(path) as f:
        record = json.load(f)
    record[field] = value
    with open(path, "w") as f:
        json.dump(record, f)
    with pytest.raises(lv.CorruptMetadata) as info:
        lv.open_dataset(local_location).expire(keep_last=1, dry_run=False)
    assert info.value.path == path
    report = lv.open_dataset(local_location).verify(all_refs=True)
    assert any(p.path == path for p in report.problems), report
    assert lv.open_dataset(local_location, version=0).to_arrow().num_rows == 1
