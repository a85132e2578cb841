"""Verify: every kind of damage is reported, naming the file and the versions it affects.

Damage is made through the storage API, so the same tests run on local disk, in
memory and on S3.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

import lakever as lv
from lakever.format import CONTRACT_DIR, SCHEMA_DIR, branch_meta_path, canonical_json, log_path
from lakever.storage import Storage, open_storage
from tests._data import events
from tests.test_cli import run


def _store(location: str) -> Storage:
    return open_storage(location)


def _replace(store: Storage, rel: str, data: bytes) -> None:
    store.delete(rel)
    store.write_new(rel, data)


def _flip(store: Storage, rel: str, at: int = 100) -> None:
    data = bytearray(store.read_bytes(rel))
    data[at % len(data)] ^= 0x01
    _replace(store, rel, bytes(data))


def _about(report: lv.VerifyReport, rel: str) -> list[lv.Problem]:
    return [p for p in report.problems if p.path.endswith(rel)]


def _one(report: lv.VerifyReport, rel: str, kind: str) -> lv.Problem:
    """The one problem of ``report``; it names ``rel`` and has ``kind``."""
    assert not report.ok
    assert len(report.problems) == 1, report.problems
    (p,) = _about(report, rel)
    assert p.kind == kind, p
    return p


def _lake(location: str) -> list[lv.Dataset]:
    """v0: 2 fragments; v1: +1 fragment; v2: a deletion vector on v0's first fragment."""
    v0 = lv.create_dataset(location, events(0, 8), max_rows_per_fragment=4)
    v1 = v0.append(events(8, 4))
    v2 = v1.delete(where="id = 1")
    return [v0, v1, v2]


def test_a_clean_lake_is_ok(location):
    v2 = _lake(location)[-1]
    report = v2.verify()
    assert report.ok and report.problems == ()
    assert report.snapshots == 3
    assert report.files >= 4  # 3 fragments, 1 deletion vector (each read once)
    assert report.bytes >= sum(f.size_bytes for f in v2.fragments())
    d = report.to_dict()
    assert d["ok"] is True and d["problems"] == [] and d["snapshots"] == 3
    assert json.loads(json.dumps(d)) == d
    assert v2.verify(full=False).snapshots == 1


def test_missing_fragment(location):
    v0, v1, v2 = _lake(location)
    rel = v1._state.entries[-1].path  # added by v1
    _store(location).delete(rel)
    p = _one(v2.verify(), rel, "missing")
    assert p.versions == (("main", 1), ("main", 2))
    assert "missing" in p.message
    assert v0.verify(full=False).ok  # version 0 never listed it


def test_flipped_byte(location):
    v0, _, v2 = _lake(location)
    rel = v0._state.entries[1].path
    _flip(_store(location), rel)
    p = _one(v2.verify(), rel, "hash")
    assert p.versions == (("main", 0), ("main", 1), ("main", 2))
    assert v2.verify(full=False).problems[0].versions == (("main", 2),)


def test_truncated_fragment(location):
    v0, _, v2 = _lake(location)
    rel = v0._state.entries[1].path
    store = _store(location)
    _replace(store, rel, store.read_bytes(rel)[:-10])
    p = _one(v2.verify(), rel, "size")
    assert "bytes instead of" in p.message


def test_swapped_fragments(location):
    v0, _, v2 = _lake(location)
    a, b = (e.path for e in v0._state.entries)
    store = _store(location)
    da, db = store.read_bytes(a), store.read_bytes(b)
    _replace(store, a, db)
    _replace(store, b, da)
    report = v2.verify()
    assert {p.path.rsplit("/", 1)[-1] for p in report.problems} == {
        a.rsplit("/", 1)[-1],
        b.rsplit("/", 1)[-1],
    }
    assert all(p.kind in ("size", "hash") for p in report.problems)


def test_deleted_log_entry_in_the_middle(location):
    _, _, v2 = _lake(location)
    v3 = v2.append(events(20, 1))
    _store(location).delete(log_path("main", 1))
    report = v3.verify()
    p = _one(report, log_path("main", 1), "chain")
    assert p.versions == (("main", 1),)
    assert report.snapshots == 3  # every other version is still checked


def test_rewritten_log_entry(location):
    v2 = _lake(location)[-1]
    store = _store(location)
    rel = log_path("main", 1)
    record = json.loads(store.read_bytes(rel))
    record["message"] = "tampered"
    _replace(store, rel, json.dumps(record).encode())
    report = v2.verify()
    assert [p.kind for p in _about(report, rel)] == ["chain"]
    assert ("main", 1) in _about(report, rel)[0].versions


def test_corrupt_manifest(location):
    # more fragments than a commit inlines: the append writes a manifest file
    v0 = lv.create_dataset(location, events(0, 2))
    v1 = v0.append(events(2, 12), max_rows_per_fragment=2)
    v2 = v1.append(events(20, 1))
    (manifest,) = [m.path for m in v2._snap.manifests if m.path is not None]
    _flip(_store(location), manifest, at=50)
    p = _one(v2.verify(), manifest, "hash")
    assert p.versions == (("main", 1), ("main", 2))
    assert "manifest" in p.message


def test_damaged_deletion_vector(location):
    _, _, v2 = _lake(location)
    dv = next(e.deletion for e in v2._state.entries if e.deletion is not None)
    store = _store(location)
    _flip(store, dv.path, at=20)
    p = _one(v2.verify(), dv.path, "hash")
    assert p.versions == (("main", 2),)
    store.delete(dv.path)
    _one(v2.verify(), dv.path, "missing")


def test_damaged_physical_schema_file(location):
    v0 = lv.create_dataset(location, events(0, 3))
    v1 = v0.evolve(add={"x": pa.int8()})  # v0's fragment is read through its own schema
    sid = v0._state.schema_id
    rel = f"{SCHEMA_DIR}/{sid}.json"
    store = _store(location)
    _flip(store, rel, at=5)
    p = _one(v1.verify(), rel, "schema")
    assert p.versions == (("main", 0), ("main", 1))
    store.delete(rel)
    assert _one(v1.verify(), rel, "schema").message == "schema file is missing"


def test_all_refs_covers_branches_and_tags(location):
    v0 = lv.create_dataset(location, events(0, 3))
    v0.tag("first")
    exp = v0.branch("exp").append(events(3, 3))
    rel = exp._state.entries[-1].path
    _flip(_store(location), rel)
    assert v0.verify().ok  # main never listed it
    p = _one(v0.verify(all_refs=True), rel, "hash")
    assert p.versions == (("exp", 1),)
    report = lv.open_dataset(location).verify(all_refs=True, full=False)
    assert report.snapshots == 2  # the heads of main and exp (the tag is main's head)


def test_verify_refuses_misuse(location):
    ds = lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.InvalidArgument):
        ds.verify(full="yes")  # type: ignore[arg-type]


def test_cli_verify(tmp_path):
    path = str(tmp_path / "lake")
    _, v1, _ = _lake(path)
    code, out = run("verify", path)
    assert code == 0 and out.startswith("ok: 3 snapshot(s)")
    rel = v1._state.entries[-1].path
    _store(path).delete(rel)
    code, out = run("verify", path)
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith(_store(path).full_path(rel) + ": missing:")
    assert lines[0].endswith("(versions: main@1, main@2)")
    assert lines[-1].startswith("1 problem(s)")
    code, out = run("verify", path, "--json", "--all-refs")
    got = json.loads(out)
    assert code == 1 and got["ok"] is False
    assert got["problems"][0]["versions"] == [
        {"branch": "main", "version": 1},
        {"branch": "main", "version": 2},
    ]


def test_damaged_contract_file(location):
    import pandera.polars as pap
    import polars as pl

    v0 = lv.create_dataset(location, events(0, 3))
    v1 = v0.set_contract(pap.DataFrameSchema({"id": pap.Column(pl.Int64)}))
    v2 = v1.append(events(3, 1))
    rel = f"{CONTRACT_DIR}/{v2._snap.contract.id}.json"
    store = _store(location)
    _flip(store, rel, at=3)
    p = _one(v2.verify(), rel, "contract")
    assert p.versions == (("main", 1), ("main", 2))
    store.delete(rel)
    assert _one(v2.verify(), rel, "contract").message == "contract file is missing"


def test_damaged_branch_record(location):
    v0 = lv.create_dataset(location, events(0, 2))
    v1 = v0.append(events(2, 1))
    exp = v0.branch("exp").append(events(5, 1))
    rel = branch_meta_path(exp._snap.branch_id)
    store = _store(location)
    record = json.loads(store.read_bytes(rel))
    record["base"]["snapshot_id"] = v1.snapshot_id  # claims to branch off another snapshot
    _replace(store, rel, canonical_json(record))
    report = v0.verify(all_refs=True)
    assert not report.ok
    assert {p.kind for p in report.problems} == {"chain"}
    assert any(p.path.endswith(rel) for p in report.problems)


def test_each_shared_file_is_hashed_once(location, monkeypatch):
    import lakever.maintenance.verify as verify

    seen: list[str] = []
    real = verify._fragment
    monkeypatch.setattr(verify, "_fragment", lambda s, e: (seen.append(e.path), real(s, e))[1])
    ds = lv.create_dataset(location, events(0, 4), max_rows_per_fragment=2)
    for i in range(5):
        ds = ds.append(events(10 + i, 1))
    report = ds.verify(all_refs=True)  # 6 versions list 2, 3, ..., 7 fragments: 27 references
    assert report.ok and report.snapshots == 6
    assert sorted(seen) == sorted(e.path for e in ds._state.entries)


def test_a_branch_record_starting_past_its_base_is_one_problem(local_location):
    # An edited base version (10**12) made verify probe every version below it: 13 GB
    # and a MemoryError. It is one problem naming the record, found at once.
    ds = lv.create_dataset(local_location, events(0, 3))
    dev = ds.branch("dev").append(events(3, 1))
    storage = open_storage(local_location)
    branch_id = dev._state.snap.branch_id
    rel = branch_meta_path(branch_id)
    record = json.loads(storage.read_bytes(rel))
    record["base"]["version"] = 10**12
    with open(storage.full_path(rel), "w") as f:
        json.dump(record, f)
    report = lv.open_dataset(local_location).verify(all_refs=True)
    (problem,) = [p for p in report.problems if p.path == storage.full_path(rel)]
    assert "starts at version 1000000000000 of its base" in problem.message
    assert lv.open_dataset(local_location).verify(all_refs=True, full=True).problems


def test_a_damaged_expiry_record_is_reported_not_raised_nor_hidden(local_location):
    ds = lv.create_dataset(local_location, events(0, 3))
    ds = ds.append(events(3, 1)).append(events(4, 1))
    ds.expire(keep_last=1, dry_run=False)
    assert lv.open_dataset(local_location).verify(all_refs=True).ok  # seen by this process
    record = open_storage(local_location).full_path("_lakever/expiry/00000000000000000000.json")
    with open(record, "w") as f:
        f.write("{")
    for full in (False, True):
        report = lv.open_dataset(local_location).verify(all_refs=True, full=full)
        assert any(p.path == record for p in report.problems), report
