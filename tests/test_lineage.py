"""`Dataset.lineage_record`: one snapshot as plain JSON for any tracker, reopenable by its pin."""

from __future__ import annotations

import json

import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.ml.lineage import RECORD_VERSION, dataset_name
from tests._data import events

#: The keys of record_version 1 (docs/tracking.md): a stability promise.
KEYS_V1 = {
    "record_version",
    "lakever_version",
    "format_version",
    "reader_format_version",
    "pin",
    "uri",
    "name",
    "branch",
    "version",
    "snapshot_id",
    "parent_snapshot_id",
    "timestamp",
    "operation",
    "message",
    "tags",
    "columns",
    "schema",
    "primary_key",
    "num_rows",
    "num_fragments",
    "size_bytes",
    "contract_digest",
    "contract_api",
    "merkle_root",
    "verify",
}


def _through_json(record: dict) -> dict:
    return json.loads(json.dumps(record, allow_nan=False))


def test_record_has_exactly_the_documented_keys_and_survives_json(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "lake" / "events"), events(0, 10), message="first")
    record = ds.lineage_record()
    assert set(record) == KEYS_V1
    assert record["record_version"] == RECORD_VERSION == 1
    assert _through_json(record) == record  # only JSON types, nothing lost
    assert record["lakever_version"] == lv.__version__
    assert record["format_version"] == lv.FORMAT_VERSION
    assert record["name"] == "events"
    assert record["uri"] == ds.uri
    assert (record["branch"], record["version"], record["operation"]) == ("main", 0, "create")
    assert record["message"] == "first"
    assert record["parent_snapshot_id"] is None
    assert record["snapshot_id"] == ds.snapshot_id
    assert record["pin"] == ds.pin()
    assert record["timestamp"] == ds.timestamp.isoformat()


def test_record_pin_reopens_the_snapshot_after_the_dataset_moved_on(tmp_path):
    uri = str(tmp_path / "events")
    ds = lv.create_dataset(uri, events(0, 20))
    ds = ds.append(events(20, 5))
    record = _through_json(ds.lineage_record())
    expected = ds.to_arrow()
    ds = ds.append(events(100, 3))
    ds = ds.delete("id < 10")
    ds = ds.evolve(add={"score": pa.float32()})
    ds = ds.overwrite(ds.to_arrow().slice(0, 4))
    back = lv.open_dataset(record["pin"])
    assert back.snapshot_id == record["snapshot_id"]
    assert back.to_arrow().equals(expected)
    assert back.lineage_record() == record  # the record of a snapshot never changes
    assert lv.verify(record["pin"]).merkle == record["merkle_root"]


def test_record_counts_match_a_plain_read(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 50), max_rows_per_fragment=20)
    ds = ds.append(events(50, 7)).delete("id % 3 = 0")
    record = ds.lineage_record()
    table = ds.to_arrow()
    frags = ds.fragments()
    assert record["num_rows"] == table.num_rows == 57 - 19
    assert record["num_fragments"] == len(frags) == 4
    assert record["size_bytes"] == sum(f.size_bytes for f in frags)
    assert record["columns"] == [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "field_id": ds.field_ids[f.name],
        }
        for f in table.schema
    ]


def test_record_names_the_tags_on_this_snapshot_only_and_the_branch(tmp_path):
    uri = str(tmp_path / "e")
    ds = lv.create_dataset(uri, events(0, 5))
    ds.tag("train-v1")
    ds.tag("also-v1")
    ds2 = ds.append(events(5, 5))
    ds2.tag("train-v2")
    assert ds.lineage_record()["tags"] == ["also-v1", "train-v1"]
    assert ds2.lineage_record()["tags"] == ["train-v2"]
    exp = ds2.branch("exp").append(events(10, 1))
    r = exp.lineage_record()
    assert (r["branch"], r["tags"], r["num_rows"]) == ("exp", [], 11)
    assert r["parent_snapshot_id"] == ds2.snapshot_id
    tagged = lv.open_dataset(uri, version="train-v1").lineage_record()
    assert tagged["snapshot_id"] == ds.snapshot_id
    assert lv.open_dataset(tagged["pin"]).to_arrow().equals(ds.to_arrow())


def test_record_schema_has_field_ids_that_follow_renames(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 3))
    before = ds.lineage_record()
    ds = ds.evolve(rename={"value": "amount"}, add={"extra": pa.string()})
    after = ds.lineage_record()
    ids_before = {c["name"]: c["field_id"] for c in before["columns"]}
    ids_after = {c["name"]: c["field_id"] for c in after["columns"]}
    assert ids_after["amount"] == ids_before["value"]
    assert ids_after["extra"] not in ids_before.values()
    assert {f["name"]: f["id"] for f in after["schema"]["fields"]} == ids_after
    assert before["schema"] != after["schema"]


def test_record_carries_the_contract_digest(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 3))
    assert ds.lineage_record()["contract_digest"] is None
    contract = pa_pl.DataFrameSchema({"id": pa_pl.Column(pl.Int64, pa_pl.Check.ge(0))})
    ds = ds.set_contract(contract)
    with_contract = ds.lineage_record()
    assert with_contract["contract_api"] == "polars"
    assert isinstance(with_contract["contract_digest"], str) and with_contract["contract_digest"]
    stricter = pa_pl.DataFrameSchema({"id": pa_pl.Column(pl.Int64, pa_pl.Check.ge(-1))})
    other = ds.set_contract(stricter).lineage_record()
    assert other["contract_digest"] != with_contract["contract_digest"]
    # The Merkle root covers the contract: a changed contract is a changed root.
    assert other["merkle_root"] != with_contract["merkle_root"]


@pytest.mark.parametrize(
    ("uri", "name"),
    [("lake/events", "events"), ("/a/b/c/", "c"), ("memory://x", "x"), ("s3://bucket/t", "t")],
)
def test_dataset_name_is_the_last_segment(uri, name):
    assert dataset_name(uri) == name


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 30)),
        st.tuples(st.just("delete"), st.integers(2, 5)),
        st.tuples(st.just("tag"), st.integers(0, 0)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=15, deadline=None)
@given(ops=_OPS)
def test_every_record_reopens_its_rows_after_random_histories(tmp_path_factory, ops):
    uri = str(tmp_path_factory.mktemp("lineage") / "e")
    ds = lv.create_dataset(uri, events(0, 5))
    seen = [(json.dumps(ds.lineage_record()), ds.to_arrow())]
    next_id = 5
    for i, (op, n) in enumerate(ops):
        if op == "append":
            ds = ds.append(events(next_id, n))
            next_id += n
        elif op == "delete":
            ds = ds.delete(f"id % {n} = 1")
        else:
            ds.tag(f"t{i}")
        seen.append((json.dumps(ds.lineage_record()), ds.to_arrow()))
    for text, expected in seen:
        record = json.loads(text)
        back = lv.open_dataset(record["pin"]).to_arrow()
        assert back.equals(expected)
        assert record["num_rows"] == expected.num_rows
        assert record["num_rows"] == pc.count(expected["id"]).as_py()
