"""The public Dataset API on every backend: writes, time travel, readers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events


def test_create_append_overwrite_versions(location):
    ds = lv.create_dataset(location, events(0, 3), message="first")
    assert (ds.version, ds.num_rows) == (0, 3)
    ds2 = ds.append(events(3, 2), message="nov", properties={"source": "kafka"})
    assert (ds2.version, ds2.num_rows) == (1, 5)
    # The old view is immutable: it still shows version 0.
    assert ds.version == 0 and ds.to_arrow().num_rows == 3
    ds3 = ds2.overwrite(events(100, 1))
    assert ds3.version == 2 and ds3.to_arrow()["id"].to_pylist() == [100]
    assert (
        lv.open_dataset(location, version=1)
        .to_arrow()
        .equals(pa.concat_tables([events(0, 3), events(3, 2)]))
    )
    assert lv.open_dataset(location).version == 2


def test_history_records_everything(location):
    ds = lv.create_dataset(location, events(0, 3), author="alice")
    ds = ds.append(events(3, 2), message="nov", properties={"k": "v"}, author="bob")
    ds = ds.overwrite(events(0, 1))
    hist = ds.history()
    assert [c.version for c in hist] == [2, 1, 0]
    assert [c.operation for c in hist] == ["overwrite", "append", "create"]
    assert hist[1].message == "nov" and hist[1].properties == {"k": "v"}
    assert hist[1].author == "bob" and hist[2].author == "alice"
    assert (hist[1].rows_added, hist[1].rows_removed, hist[1].fragments_added) == (2, 0, 1)
    assert (hist[0].rows_added, hist[0].rows_removed) == (1, 5)
    assert hist[0].fragments_removed == 2 and hist[0].bytes_removed == hist[1].total_bytes
    assert hist[1].parent_id == hist[2].snapshot_id
    assert ds.history(limit=2) == hist[:2]
    assert lv.open_dataset(location, version=1).history() == hist[1:]
    assert hist[0].timestamp > hist[1].timestamp > hist[2].timestamp


def test_author_defaults_to_os_user(location):
    import getpass

    ds = lv.create_dataset(location, events(0, 1))
    assert ds.commit.author == getpass.getuser()


def test_time_travel_by_datetime(location):
    ds = lv.create_dataset(location, events(0, 1))
    time.sleep(0.01)
    ds = ds.append(events(1, 1))
    t1 = ds.commit.timestamp
    time.sleep(0.01)
    ds.append(events(2, 1))
    assert lv.open_dataset(location, version=t1).version == 1
    assert lv.open_dataset(location, version=t1 + timedelta(microseconds=1)).version == 1
    assert lv.open_dataset(location, version=t1 - timedelta(microseconds=1)).version == 0
    t2 = lv.open_dataset(location).timestamp
    assert lv.open_dataset(location, version=t2).version == 2
    with pytest.raises(lv.VersionNotFound, match=r"after the newest commit on branch 'main'"):
        lv.open_dataset(location, version=t2 + timedelta(microseconds=1))
    before = datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(lv.VersionNotFound, match=r"no version of .* existed at 2000-01-01"):
        lv.open_dataset(location, version=before)


def test_time_travel_accepts_any_timezone(location):
    from zoneinfo import ZoneInfo

    ds = lv.create_dataset(location, events(0, 1))
    when = ds.commit.timestamp.astimezone(ZoneInfo("America/New_York"))
    assert lv.open_dataset(location, version=when).version == 0


def test_readers_agree(location):
    ds = lv.create_dataset(location, events(0, 50))
    ds = ds.append(events(50, 30))
    expected = pa.concat_tables([events(0, 50), events(50, 30)])
    assert ds.to_arrow().equals(expected)
    assert ds.to_polars().to_arrow().cast(expected.schema).equals(expected)
    assert ds.scan().collect().to_arrow().cast(expected.schema).equals(expected)
    assert (
        pa.Table.from_pandas(ds.to_pandas(), preserve_index=False)
        .cast(expected.schema)
        .equals(expected)
    )
    batches = list(ds.to_batches(batch_size=16))
    assert [b.num_rows for b in batches] == [16] * 5
    assert pa.Table.from_batches(batches).equals(expected)
    rel = ds.to_duckdb()
    assert rel.to_arrow_table().cast(expected.schema).equals(expected)
    assert ds.sql("SELECT count(*) AS n FROM self").to_arrow_table()["n"][0].as_py() == 80


def test_projection_and_filter(location):
    ds = lv.create_dataset(location, events(0, 100))
    t = ds.to_arrow(columns=["value", "id"], filter="value > 0.5 AND id < 80")
    assert t.schema.names == ["value", "id"]
    assert t["id"].to_pylist() == [i for i in range(80) if i % 100 / 100 > 0.5]
    assert t.schema.field("id").type == pa.int64()
    assert ds.to_polars(filter="category = 'a'").height == 34
    assert len(ds.to_pandas(columns=["id"], filter="id % 2 = 0")) == 50
    batches = list(ds.to_batches(batch_size=7, columns=["id"], filter="id >= 90"))
    assert [b.num_rows for b in batches] == [7, 3]
    assert pa.Table.from_batches(batches)["id"].to_pylist() == list(range(90, 100))


def test_bad_projection_and_filter(location):
    ds = lv.create_dataset(location, events(0, 3))
    with pytest.raises(lv.InvalidArgument, match=r"unknown column\(s\) \['nope'\]"):
        ds.to_arrow(columns=["nope"])
    with pytest.raises(lv.InvalidArgument, match=r"filter 'nope > 1' names unknown column 'nope'"):
        ds.to_arrow(filter="nope > 1")
    with pytest.raises(lv.InvalidArgument, match=r"filter must be a non-empty"):
        ds.to_arrow(filter="  ")
    with pytest.raises(lv.InvalidArgument, match=r"batch_size must be a positive int"):
        list(ds.to_batches(batch_size=0))
    with pytest.raises(lv.InvalidArgument, match=r"cannot parse this SQL"):
        ds.sql("SELEKT 1")


def test_sql_self_is_the_snapshot_not_the_latest(location):
    ds = lv.create_dataset(location, events(0, 3))
    ds.append(events(3, 4))
    old = lv.open_dataset(location, version=0)
    assert old.sql("SELECT count(*) FROM self").fetchall() == [(3,)]
    assert lv.open_dataset(location).sql("SELECT max(id) FROM self").fetchall() == [(6,)]


def test_duckdb_on_a_user_connection(location):
    import duckdb

    ds = lv.create_dataset(location, events(0, 5))
    con = duckdb.connect()
    rel = ds.to_duckdb(con)
    assert rel.aggregate("sum(id)").fetchall() == [(10,)]
    assert ds.sql("SELECT min(id) FROM self", con=con).fetchall() == [(0,)]


def test_empty_dataset(location):
    empty = events(0, 0)
    ds = lv.create_dataset(location, empty)
    assert ds.num_rows == 0 and ds.fragments() == []
    assert ds.to_arrow().equals(empty)
    assert list(ds.to_batches()) == []
    assert ds.scan().collect().height == 0
    assert ds.sql("SELECT count(*) FROM self").fetchall() == [(0,)]
    assert ds.to_arrow(filter="id > 0").num_rows == 0
    ds = ds.append(events(0, 2))
    assert ds.num_rows == 2
    ds = ds.append(empty)  # an empty append is still a commit, with nothing added
    assert (ds.version, ds.num_rows, ds.commit.fragments_added) == (2, 2, 0)


def test_write_dataset_modes(location):
    ds = lv.write_dataset(location, events(0, 2))
    assert ds.version == 0
    with pytest.raises(lv.DatasetExists):
        lv.write_dataset(location, events(0, 2))
    assert lv.write_dataset(location, events(2, 2), mode="append").num_rows == 4
    assert lv.write_dataset(location, events(9, 1), mode="overwrite").num_rows == 1
    with pytest.raises(lv.InvalidArgument, match=r"mode must be 'create', 'append' or 'overwrite'"):
        lv.write_dataset(location, events(0, 1), mode="upsert")  # type: ignore[arg-type]


def test_write_dataset_append_creates_when_missing(location):
    ds = lv.write_dataset(location, events(0, 2), mode="append")
    assert (ds.version, ds.commit.operation) == (0, "create")


@pytest.mark.parametrize("mode", ["create", "append", "overwrite"])
def test_write_dataset_declares_a_primary_key(location, mode):
    ds = lv.write_dataset(location, events(0, 2), mode=mode, primary_key=["id"])
    assert ds.primary_key == ["id"]
    with pytest.raises(lv.PrimaryKeyViolation):
        lv.write_dataset(location, events(1, 1), mode="append")
    # the same key again is fine; another one (or one on a dataset without) is refused
    ds = lv.write_dataset(location, events(5, 1), mode="append", primary_key=["id"])
    assert ds.num_rows == 3
    with pytest.raises(lv.InvalidArgument, match=r"differs from the dataset's declared key"):
        lv.write_dataset(location, events(9, 1), mode="overwrite", primary_key=["category"])
    other = lv.write_dataset(location + "-nokey", events(0, 1))
    with pytest.raises(lv.InvalidArgument, match=r"differs from the dataset's declared key"):
        lv.write_dataset(other.uri, events(1, 1), mode="append", primary_key=["id"])
    assert lv.open_dataset(location).version == 1


def test_input_kinds(location):
    import pandas as pd
    import polars as pl

    ds = lv.create_dataset(location, pl.DataFrame({"id": [1, 2], "s": ["a", "b"]}))
    ds = ds.append(pl.LazyFrame({"id": [3], "s": ["c"]}))
    ds = ds.append(pd.DataFrame({"id": [4], "s": ["d"]}))
    t = pa.table({"id": [5, 6], "s": ["e", "f"]})
    ds = ds.append(t.to_batches()[0])
    ds = ds.append(pa.RecordBatchReader.from_batches(t.schema, t.to_batches()))
    assert ds.to_arrow()["id"].to_pylist() == [1, 2, 3, 4, 5, 6, 5, 6]
    # Representation-only differences are not schema changes.
    ds = ds.append(t.cast(pa.schema([("id", pa.int64()), ("s", pa.string_view())])))
    ds = ds.append(pa.table({"s": pa.array(["x"]).dictionary_encode(), "id": [7]}))
    assert ds.to_arrow()["s"].to_pylist()[-1] == "x"
    with pytest.raises(lv.InvalidArgument, match=r"cannot write data of type builtins.dict"):
        ds.append({"id": [1]})


def test_large_write_splits_into_fragments(location):
    ds = lv.create_dataset(location, events(0, 10))
    ds = ds.append(events(10, 4500), max_rows_per_fragment=1000)
    assert [f.num_rows for f in ds.fragments()] == [10, 1000, 1000, 1000, 1000, 500]
    assert ds.to_arrow()["id"].to_pylist() == list(range(4510))
    with pytest.raises(lv.InvalidArgument, match=r"max_rows_per_fragment must be a positive int"):
        ds.append(events(0, 1), max_rows_per_fragment=0)


def test_fragments_carry_hashes_and_stats(location):
    ds = lv.create_dataset(location, events(0, 10))
    (frag,) = ds.fragments()
    assert frag.num_rows == 10 and frag.size_bytes > 0
    assert frag.content_hash.startswith("sha256:") and len(frag.content_hash) == 71
    assert frag.stats["id"] == {"min": 0, "max": 9, "nulls": 0}
    assert frag.stats["category"] == {"min": "a", "max": "c", "nulls": 0}
    assert ds.field_ids == {"id": 1, "value": 2, "category": 3}


def test_stats_for_temporal_and_null_columns(location):
    t = pa.table(
        {
            "ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC), None], pa.timestamp("us", "UTC")),
            "d": pa.array([None, None], pa.date32()),
            "f": pa.array([float("nan"), 1.0]),
        }
    )
    (frag,) = lv.create_dataset(location, t).fragments()
    assert frag.stats["ts"]["min"] == frag.stats["ts"]["max"] == 1767225600000000
    assert frag.stats["d"] == {"nulls": 2}
    assert frag.stats["f"]["nulls"] == 0


def test_pin_reopens_exact_snapshot(location):
    ds = lv.create_dataset(location, events(0, 3))
    pin = ds.pin()
    ds.append(events(3, 3))
    again = lv.open_dataset(pin)
    assert again.snapshot_id == ds.snapshot_id and again.read_only
    assert again.to_arrow().equals(events(0, 3))
    with pytest.raises(lv.InvalidArgument, match=r"do not also pass version="):
        lv.open_dataset(pin, version=0)


def test_nested_types_round_trip(location):
    t = pa.table(
        {
            "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
            "point": pa.array(
                [{"x": 1, "y": 2.0}, None], pa.struct([("x", pa.int32()), ("y", pa.float64())])
            ),
            "attrs": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            "amount": pa.array([1, 2], pa.decimal128(10, 2)),
            "ts": pa.array([1, 2], pa.timestamp("ns")),
        }
    )
    ds = lv.create_dataset(location, t)
    ds = ds.append(t)
    assert ds.to_arrow().equals(pa.concat_tables([t, t]))
    assert ds.schema == t.schema
    assert ds.to_arrow(filter="amount > 1").num_rows == 2


def test_many_commits_keep_manifest_list_short(location):
    ds = lv.create_dataset(location, events(0, 1))
    for i in range(1, 80):
        ds = ds.append(events(i, 1))
    # 80 fragments: the manifest list is merged level by level (fan-out 8).
    assert len(ds._snap.manifests) <= 8
    assert ds.to_arrow()["id"].to_pylist() == list(range(80))
    assert [f.num_rows for f in ds.fragments()] == [1] * 80


def test_sql_self_is_private_to_each_dataset(tmp_path):
    """Datasets share one DuckDB database; `self` must still mean each one's own snapshot."""
    import threading

    a = lv.create_dataset(str(tmp_path / "a"), events(0, 3))
    b = lv.create_dataset(str(tmp_path / "b"), events(0, 7))
    assert a.sql("SELECT count(*) FROM self").fetchall() == [(3,)]
    assert b.sql("SELECT count(*) FROM self").fetchall() == [(7,)]
    rel_a = a.sql("SELECT count(*) FROM self")
    b.sql("SELECT count(*) FROM self")
    assert rel_a.fetchall() == [(3,)]
    errors = []

    def run(ds: lv.Dataset, n: int) -> None:
        for _ in range(20):
            got = ds.sql("SELECT count(*) FROM self").fetchall()
            if got != [(n,)]:
                errors.append(got)

    threads = [threading.Thread(target=run, args=(ds, n)) for ds, n in ((a, 3), (b, 7)) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
