"""Pins carry a Merkle root; `lakever.verify(pin)` proves the pinned bytes are unchanged,
also after the lake was moved or copied."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

import lakever as lv
from lakever.format import SCHEMA_DIR, canonical_json
from lakever.storage import Storage, open_storage
from tests._data import events
from tests.test_cli import run


def _store(location: str) -> Storage:
    return open_storage(location)


def _flip(store: Storage, rel: str, at: int = 100) -> None:
    data = bytearray(store.read_bytes(rel))
    data[at % len(data)] ^= 0x01
    store.delete(rel)
    store.write_new(rel, bytes(data))


def _merkle(pin: str) -> str:
    m = re.search(r"&merkle=([0-9a-f]{64})$", pin)
    assert m is not None, pin
    return m.group(1)


def _by_the_spec(ds: lv.Dataset) -> str:
    """The Merkle root as docs/format.md §6.1 constructs it, written independently."""

    def leaf(data: bytes) -> bytes:
        return hashlib.sha256(b"\x00" + data).digest()

    snap = ds._snap
    contract = None if snap.contract is None else {"id": snap.contract.id, "api": snap.contract.api}
    level = [leaf(canonical_json(snap.schema)), leaf(canonical_json(contract))]
    for f in ds._state.entries:
        dv = f.deletion.content_hash if f.deletion is not None else None
        level.append(leaf(canonical_json({"content_hash": f.content_hash, "deletion_vector": dv})))
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [
            hashlib.sha256(b"\x01" + p[0] + p[1]).digest() if len(p) == 2 else p[0] for p in pairs
        ]
    return level[0].hex()


def _lake(location: str) -> lv.Dataset:
    v0 = lv.create_dataset(location, events(0, 12), max_rows_per_fragment=4)
    return v0.append(events(12, 3)).delete(where="id = 2")


def test_pin_carries_the_merkle_root_of_the_spec(location):
    ds = _lake(location)
    pin = ds.pin()
    assert _merkle(pin) == _by_the_spec(ds)
    report = lv.verify(pin)
    assert report.ok and report.merkle == _merkle(pin) and report.snapshots == 1
    assert report.files >= 5  # 4 fragments and a deletion vector
    other = ds.append(events(20, 1))
    assert _merkle(other.pin()) != _merkle(pin)
    assert lv.open_dataset(pin).snapshot_id == ds.snapshot_id


def test_verify_pin_names_a_damaged_fragment(location):
    ds = _lake(location)
    pin = ds.pin()
    rel = ds._state.entries[2].path
    _flip(_store(location), rel)
    report = lv.verify(pin)
    assert not report.ok
    (p,) = report.problems
    assert p.path.endswith(rel) and p.kind == "hash"
    assert p.versions == (("main", ds.version),)
    assert report.merkle == _merkle(pin)  # the recorded hashes are intact; the bytes are not


def test_pin_of_a_moved_or_copied_lake(tmp_path):
    original = str(tmp_path / "a" / "events")
    ds = _lake(original)
    pin = ds.pin()
    copy = str(tmp_path / "b" / "events")
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # moved: the pin's path is gone
    report = lv.verify(pin, uri=copy)
    assert report.ok and report.uri == copy and report.merkle == _merkle(pin)
    again = lv.open_dataset(pin, location=copy)
    assert again.snapshot_id == ds.snapshot_id and again.uri == copy
    assert again.to_arrow().num_rows == 14
    with pytest.raises(lv.DatasetNotFound):
        lv.verify(pin)  # nothing at the old path any more
    # damage a byte in the copy: the report names the copy's file
    rel = ds._state.entries[0].path
    _flip(_store(copy), rel)
    (p,) = lv.verify(pin, uri=copy).problems
    assert p.path == str(Path(copy) / rel) and p.kind == "hash"


def test_a_changed_schema_file_breaks_the_merkle_root(tmp_path):
    path = str(tmp_path / "events")
    ds = _lake(path)
    pin = ds.pin()
    store = _store(path)
    rel = f"{SCHEMA_DIR}/{ds._state.schema_id}.json"
    schema = json.loads(store.read_bytes(rel))
    schema["fields"][0]["name"] = "renamed"
    store.delete(rel)
    store.write_new(rel, canonical_json(schema))
    report = lv.verify(pin)
    assert {p.kind for p in report.problems} == {"schema", "merkle"}
    assert report.merkle != _merkle(pin)
    (schema_problem,) = [p for p in report.problems if p.kind == "schema"]
    assert schema_problem.path.endswith(rel)


def test_old_pins_keep_working(location):
    ds = _lake(location)
    old = ds.pin().rsplit("&merkle=", 1)[0]  # a pin written before Merkle roots
    assert lv.open_dataset(old).snapshot_id == ds.snapshot_id
    report = lv.verify(old)
    assert report.ok and report.merkle == _merkle(ds.pin())


def test_a_pin_whose_snapshot_is_gone_is_reported(location):
    ds = _lake(location)
    pin = ds.pin().replace(ds.snapshot_id, "0" * 32)
    report = lv.verify(pin)
    assert not report.ok and report.problems[0].kind == "chain"
    assert "not in the log" in report.problems[0].message


def test_verify_pin_refuses_misuse(location):
    ds = lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.InvalidArgument, match="expected a pin"):
        lv.verify(ds.uri)
    with pytest.raises(lv.InvalidArgument, match="location= is for pins"):
        lv.open_dataset(ds.uri, location=ds.uri)


def test_cli_verify_a_pin_at_a_new_location(tmp_path):
    original = str(tmp_path / "a")
    pin = _lake(original).pin()
    copy = str(tmp_path / "b")
    shutil.copytree(original, copy)
    code, out = run("verify", pin, "--at", copy)
    assert code == 0 and out.startswith("ok: 1 snapshot(s)")
    code, out = run("verify", pin, "--at", copy, "--json")
    assert code == 0 and json.loads(out)["merkle"] == _merkle(pin)
