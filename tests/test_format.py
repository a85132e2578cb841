"""The on-disk format: records, hashing, schema JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever.format import (
    ContractRef,
    ManifestRef,
    Snapshot,
    Summary,
    branch_meta_path,
    canonical_json,
    check_object_id,
    check_relative,
    compute_snapshot_id,
    encode_snapshot,
    format_time,
    latest_hint_path,
    log_dir,
    log_path,
    object_id,
    parse_partition,
    parse_time,
    schema_id,
    sha256_hex,
    snapshot_index_path,
)
from lakever.schema import assign_field_ids, schema_from_json, schema_to_json, strip_field_ids
from lakever.snapshot_codec import decode_snapshot


def _snap(**kw) -> Snapshot:
    base = {
        "snapshot_id": "",
        "parent_id": None,
        "branch_id": "main",
        "version": 0,
        "timestamp": datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC),
        "operation": "create",
        "parameters": {},
        "author": "a",
        "message": "m",
        "properties": {"k": "v"},
        "schema": {
            "fields": [
                {"id": 1, "name": "id", "nullable": True, "type": "int64"},
                {"id": 2, "name": "ts", "nullable": True, "type": "int64"},
            ]
        },
        "last_field_id": 2,
        "manifests": (ManifestRef("_lakever/manifests/x.parquet", "sha256:00", 1, 2, 3, 0),),
        "summary": Summary(rows_added=2, total_rows=2),
    }
    base.update(kw)
    snap = Snapshot(**base)
    return Snapshot(**{**base, "snapshot_id": compute_snapshot_id(snap.body())})


def test_round_trip_and_id():
    snap = _snap()
    data = encode_snapshot(snap)
    back = decode_snapshot(data, path="p")
    assert back == snap
    assert len(snap.snapshot_id) == 32
    # Canonical JSON: sorted keys, no whitespace.
    assert data.startswith(b'{"author":"a","branch":"main"')


def test_id_changes_with_any_field():
    assert _snap().snapshot_id != _snap(message="other").snapshot_id
    assert _snap().snapshot_id != _snap(version=1).snapshot_id


def test_unknown_fields_are_kept_and_hashed():
    snap = _snap()
    record = json.loads(encode_snapshot(snap))
    record.pop("snapshot_id")
    record["future_field"] = {"x": 1}
    record["snapshot_id"] = compute_snapshot_id(record)
    back = decode_snapshot(json.dumps(record).encode(), path="p")
    assert back.extra == {"future_field": {"x": 1}}
    assert (
        encode_snapshot(back) == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    )


def test_missing_field_is_corrupt():
    record = json.loads(encode_snapshot(_snap()))
    del record["manifests"]
    record.pop("snapshot_id")
    record["snapshot_id"] = compute_snapshot_id(record)
    with pytest.raises(lv.CorruptMetadata, match="missing or has malformed fields"):
        decode_snapshot(json.dumps(record).encode(), path="p")


def _entry(**kw):
    from lakever.format import FragmentEntry

    base = {
        "path": "data/a.parquet",
        "num_rows": 10,
        "size_bytes": 100,
        "content_hash": "sha256:00",
        "stats": {1: {"nulls": 0, "min": 1, "max": 9}},
        "schema_id": "0" * 32,
    }
    return FragmentEntry(**{**base, **kw})


def test_deletion_vectors_round_trip_in_records_and_manifests(tmp_path):
    from lakever.format import DeletionVector, FragmentEntry
    from lakever.manifests import make_manifest, read_manifest, write_manifest
    from lakever.storage import open_storage

    dv = DeletionVector("_lakever/deletions/" + "1" * 32 + ".parquet", "sha256:ab", 3)
    with_dv, without = _entry(deletion=dv), _entry(path="data/b.parquet")
    assert with_dv.to_json()["deletion_vector"] == {
        "path": dv.path,
        "content_hash": "sha256:ab",
        "count": 3,
    }
    assert "deletion_vector" not in without.to_json()  # records without DVs are unchanged
    assert FragmentEntry.from_json(with_dv.to_json()) == with_dv
    assert (with_dv.live_rows, with_dv.deleted_rows, without.live_rows) == (7, 3, 10)
    storage = open_storage(str(tmp_path / "ds"))
    inline = make_manifest(storage, [with_dv, without], level=0)
    assert (inline.rows, inline.deleted_rows) == (17, 3)
    assert ManifestRef.from_json(inline.to_json()) == inline
    assert inline.key != make_manifest(storage, [_entry(), without], level=0).key
    filed = write_manifest(storage, [with_dv, without], level=1)
    assert filed.to_json()["deleted_rows"] == 3 and filed.rows == 17
    from lakever.manifests import _CACHE

    _CACHE.clear()
    assert read_manifest(storage, filed) == [with_dv, without]
    plain = write_manifest(storage, [without], level=1)
    assert "deleted_rows" not in plain.to_json()
    with pytest.raises(lv.CorruptMetadata, match=r"not a plain path"):
        FragmentEntry.from_json(
            {**with_dv.to_json(), "deletion_vector": {**dv.to_json(), "path": "../x"}}
        )


def test_malformed_deletion_vectors_are_corrupt():
    from lakever.format import FragmentEntry

    good = _entry().to_json()
    for dv in (
        {"path": "_lakever/deletions/x.parquet", "content_hash": "sha256:0", "count": 0},
        {"path": "_lakever/deletions/x.parquet", "content_hash": "sha256:0", "count": 11},
    ):
        with pytest.raises(ValueError, match=r"deletion vector|deletes more rows"):
            FragmentEntry.from_json({**good, "deletion_vector": dv})


def test_unknown_reader_feature_is_refused():
    record = json.loads(encode_snapshot(_snap()))
    record.pop("snapshot_id")
    record["reader_features"] = ["deletion_vectors", "row_lineage"]
    record["snapshot_id"] = compute_snapshot_id(record)
    with pytest.raises(lv.UnsupportedFormatVersion) as info:
        decode_snapshot(json.dumps(record).encode(), path="p/00000000000000000001.json")
    assert info.value.features == ["row_lineage"]
    assert info.value.found == info.value.supported == lv.FORMAT_VERSION
    assert "needs reader feature(s) ['row_lineage']" in str(info.value)
    known = _snap(reader_features=("deletion_vectors",), primary_key=(1, 2))
    back = decode_snapshot(encode_snapshot(known), path="p")
    assert back == known and back.primary_key == (1, 2)
    record = json.loads(encode_snapshot(known))
    assert record["reader_features"] == ["deletion_vectors"] and record["primary_key"] == [1, 2]


def test_log_path_sorts_by_version():
    paths = [log_path("main", v) for v in (0, 9, 10, 100, 12345678901)]
    assert paths == sorted(paths)
    assert log_path("main", 7) == "_lakever/log/main/00000000000000000007.json"


SCHEMAS = [
    pa.schema([("a", pa.int8()), ("b", pa.uint64()), ("c", pa.float16()), ("d", pa.bool_())]),
    pa.schema([("t", pa.timestamp("ns", "Europe/Paris")), ("d", pa.date32()), ("e", pa.date64())]),
    pa.schema([("t", pa.time32("ms")), ("u", pa.time64("ns")), ("dur", pa.duration("s"))]),
    pa.schema([("d", pa.decimal128(38, 9)), ("e", pa.decimal256(60, 2)), ("f", pa.binary(16))]),
    pa.schema([pa.field("s", pa.large_string(), nullable=False), ("b", pa.large_binary())]),
    pa.schema(
        [
            ("l", pa.list_(pa.struct([("x", pa.int32()), ("y", pa.list_(pa.string()))]))),
            ("m", pa.map_(pa.string(), pa.large_list(pa.float64()))),
            ("f", pa.list_(pa.int16(), 3)),
        ]
    ),
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_schema_json_round_trip(schema):
    with_ids, last = assign_field_ids(schema)
    back = schema_from_json(json.loads(json.dumps(schema_to_json(with_ids))))
    assert back.equals(with_ids, check_metadata=True)
    assert strip_field_ids(back) == schema
    assert last >= len(schema)


def test_field_ids_cover_nested_fields():
    schema = pa.schema(
        [("a", pa.int64()), ("s", pa.struct([("x", pa.int8()), ("y", pa.list_(pa.int8()))]))]
    )
    _, last = assign_field_ids(schema)
    assert last == 5  # a, s, s.x, s.y, s.y.element


@given(
    st.lists(
        st.sampled_from(["int64", "string", "float64", "bool", "date32"]), min_size=1, max_size=8
    )
)
def test_schema_json_round_trip_property(types):
    schema = pa.schema(
        [(f"c{i}", getattr(pa, t if t != "bool" else "bool_")()) for i, t in enumerate(types)]
    )
    with_ids, _ = assign_field_ids(schema)
    assert schema_from_json(schema_to_json(with_ids)).equals(with_ids, check_metadata=True)


# ------------------------------------------------------------ what a stored name may be

_ID = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "rel",
    [
        "data/a.parquet",
        "_lakever/deletions/x.parquet",
        "data/category=click/ts_day=2026-11-01/f.parquet",
        "a",
        "é/ü.parquet",
    ],
)
def test_plain_relative_paths_are_accepted(rel):
    assert check_relative(rel) == rel


@pytest.mark.parametrize(
    "rel",
    [
        "",
        "/etc/passwd",
        "../x",
        "data/../../x",
        "data/./x",
        ".",
        "data//x",
        "data/",
        "data\\x",
        "c:/x",
        "data/x\x00",
        "data/\nx",
        None,
        7,
    ],
)
def test_paths_that_could_escape_the_root_are_corrupt(rel):
    with pytest.raises(lv.CorruptMetadata, match="not a plain path inside the dataset root") as e:
        check_relative(rel)
    assert e.value.path == str(rel)


@pytest.mark.parametrize("value", [_ID, "f" * 32])
def test_object_ids_are_32_lowercase_hex_digits(value):
    assert check_object_id(value) == value


@pytest.mark.parametrize("value", ["0" * 31, "0" * 33, _ID.upper(), "g" * 32, "../" + "0" * 29, 5])
def test_other_object_ids_are_corrupt(value):
    with pytest.raises(lv.CorruptMetadata, match="not 32 hex digits") as e:
        check_object_id(value)
    assert e.value.path == str(value)


def test_paths_and_ids_of_metadata_objects():
    assert object_id(b"abc") == sha256_hex(b"abc")[:32] and len(object_id(b"")) == 32
    assert schema_id({"fields": []}) == object_id(canonical_json({"fields": []}))
    assert snapshot_index_path(_ID) == f"_lakever/snapshots/01/{_ID}.json"
    assert latest_hint_path("b1") == "_lakever/log/b1/LATEST"
    assert branch_meta_path("b1") == "_lakever/log/b1/BRANCH.json"
    assert log_dir("b1") == "_lakever/log/b1"


def test_canonical_json_is_one_spelling_per_value():
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})


def test_times_are_stored_in_utc_with_microseconds():
    east = timezone(timedelta(hours=5, minutes=30))
    ts = datetime(2026, 11, 27, 17, 30, 0, 5, tzinfo=east)
    assert format_time(ts) == "2026-11-27T12:00:00.000005Z"
    assert parse_time("2026-11-27T12:00:00.000005Z") == ts
    assert parse_time(format_time(ts)).tzinfo == UTC
    # Years before 1000 keep strftime's spelling (the fast path covers the others).
    early = datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert format_time(early) == early.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_time(early).endswith("-01-02T03:04:05.000006Z")


def test_partition_records_are_validated():
    record = [{"field_id": 3, "transform": "day", "value": 20000}]
    assert parse_partition(None) is None
    assert parse_partition(record) == tuple(record)
    assert parse_partition(json.dumps(record)) == tuple(record)
    for bad in ({"field_id": 3}, [{"field_id": 3, "transform": "day"}], ["x"]):
        with pytest.raises(ValueError, match="malformed partition record"):
            parse_partition(bad)
    entry = _entry(partition=tuple(record))
    assert entry.to_json()["partition"] == record
    assert "partition" not in _entry().to_json()
    from lakever.format import FragmentEntry

    assert FragmentEntry.from_json(entry.to_json()) == entry


def test_contract_references_are_validated():
    ref = ContractRef(_ID, "polars")
    assert ContractRef.from_json(ref.to_json()) == ref
    assert ContractRef.from_json(None) is None
    assert ContractRef.from_json({"id": _ID, "api": "pandas"}).api == "pandas"
    with pytest.raises(ValueError, match="unknown contract api 'spark'"):
        ContractRef.from_json({"id": _ID, "api": "spark"})
    with pytest.raises(lv.CorruptMetadata):
        ContractRef.from_json({"id": "../x", "api": "polars"})
    snap = _snap(contract=ref)
    assert decode_snapshot(encode_snapshot(snap), path="p").contract == ref


def test_a_deletion_vector_may_hide_every_row_but_no_more():
    from lakever.format import DeletionVector, FragmentEntry

    dv = {"path": "_lakever/deletions/x.parquet", "content_hash": "sha256:0", "count": 10}
    entry = FragmentEntry.from_json({**_entry().to_json(), "deletion_vector": dv})
    assert (entry.live_rows, entry.deleted_rows) == (0, 10)
    assert DeletionVector.from_json(None) is None
    assert DeletionVector.from_json({**dv, "count": "1"}).count == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated or not valid JSON"),
        (b'{"format_version": 1', "truncated or not valid JSON"),
        (b"\xff\xfe", "truncated or not valid JSON"),
        (b"[1, 2]", "does not hold a snapshot record"),
        (b'{"version": 1}', "has no valid format_version"),
        (b'{"format_version": "1"}', "has no valid format_version"),
    ],
)
def test_records_that_are_not_snapshots_are_corrupt(data, message):
    with pytest.raises(lv.CorruptMetadata, match=message) as info:
        decode_snapshot(data, path="log/7.json")
    assert info.value.path == "log/7.json" and "log/7.json" in str(info.value)


def test_a_record_from_a_newer_format_is_refused_with_the_versions():
    record = json.loads(encode_snapshot(_snap()))
    record["format_version"] = 3
    with pytest.raises(lv.UnsupportedFormatVersion, match="format version 3") as info:
        decode_snapshot(json.dumps(record).encode(), path="p")
    assert (info.value.found, info.value.supported) == (3, 2)
    record["reader_features"] = "deletion_vectors"  # not a list: not understood
    record["format_version"] = 1
    with pytest.raises(lv.UnsupportedFormatVersion, match="reader feature"):
        decode_snapshot(json.dumps(record).encode(), path="p")


def test_a_modified_record_does_not_match_its_id():
    record = json.loads(encode_snapshot(_snap()))
    record["message"] = "edited"
    with pytest.raises(lv.CorruptMetadata, match="does not match its snapshot id") as info:
        decode_snapshot(json.dumps(record).encode(), path="p")
    assert info.value.path == "p"


def test_every_optional_field_round_trips_and_is_hashed():
    full = _snap(
        merge_parent={"snapshot_id": _ID, "branch": "b", "version": 3},
        partitioning=({"field_id": 1, "transform": "day", "name": "ts_day"},),
        sort_by=({"field_id": 2, "descending": True},),
        primary_key=(1,),
        parameters={"mode": "append"},
        summary=Summary(rows_added=2, total_rows=5, fragments_added=1),
        table_properties={"compaction.auto": "true"},
    )
    back = decode_snapshot(encode_snapshot(full), path="p")
    assert back == full
    assert back.table_properties == {"compaction.auto": "true"}
    record = json.loads(encode_snapshot(full))
    assert record["merge_parent"]["branch"] == "b" and record["sort_by"][0]["descending"]
    plain = json.loads(encode_snapshot(_snap()))
    for key in ("merge_parent", "partitioning", "sort_by", "primary_key", "reader_features"):
        assert key not in plain  # absent unless used: records without them are unchanged
    assert full.snapshot_id != _snap(primary_key=(2,)).snapshot_id
