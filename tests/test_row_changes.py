"""delete, update, upsert and primary keys: what each commits and what every reader sees."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakever as lv
import lakever.keys
from tests._data import events


def ids(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow(["id"])["id"].to_pylist()


def readers_agree(ds: lv.Dataset) -> pa.Table:
    """Every reader returns the same rows in the same order; return them."""
    table = ds.to_arrow()
    assert table.num_rows == ds.num_rows
    duck = ds.to_duckdb().to_arrow_table()
    assert duck.cast(table.schema).equals(table)
    assert ds.sql("SELECT * FROM self").to_arrow_table().cast(table.schema).equals(table)
    batches = list(ds.to_batches(7))
    assert pa.Table.from_batches(batches, schema=table.schema).equals(table)
    assert all(b.num_rows == 7 for b in batches[:-1])
    assert ds.scan().collect().to_arrow().cast(table.schema).equals(table)
    assert ds.to_pandas()["id"].tolist() == table["id"].to_pylist()
    filtered = ds.to_arrow(filter="id % 2 = 0")
    assert filtered["id"].to_pylist() == [i for i in table["id"].to_pylist() if i % 2 == 0]
    assert ds.scan(filter="id % 2 = 0").collect()["id"].to_list() == filtered["id"].to_pylist()
    return table


@pytest.fixture
def ds(location) -> lv.Dataset:
    # 5 fragments of 20 rows, ids 0..99 in order
    return lv.create_dataset(location, events(0, 100), max_rows_per_fragment=20)


# --------------------------------------------------------------------------- delete


def test_delete_merge_on_read(ds):
    after = ds.delete(where="id % 10 = 3 OR id >= 95", message="gdpr")
    assert after.version == 1 and ds.version == 0
    kept = [i for i in range(100) if i % 10 != 3 and i < 95]
    assert ids(after) == kept
    assert after.num_rows == len(kept) == readers_agree(after).num_rows
    c = after.commit
    assert (c.operation, c.message, c.rows_removed, c.rows_added) == ("delete", "gdpr", 15, 0)
    assert (c.fragments_added, c.fragments_removed, c.total_fragments) == (0, 0, 5)
    p = c.parameters
    assert p["mode"] == "merge-on-read" and p["where"] == "id % 10 = 3 OR id >= 95"
    assert (p["rows_deleted"], p["fragments_touched"], p["deletion_vectors_written"]) == (15, 5, 5)
    # each touched fragment got a deletion vector: a plain Parquet file of positions
    frags = after.fragments()
    assert [f.deleted_rows for f in frags] == [2, 2, 2, 2, 7]
    last = frags[-1]
    assert last.num_rows == 20 and last.deletion_vector.startswith("_lakever/deletions/")
    dv = pq.read_table(f"{after.uri}/{last.deletion_vector}") if "://" not in after.uri else None
    if dv is not None:
        assert dv["position"].to_pylist() == [3, 13, 15, 16, 17, 18, 19]
    # the data files themselves are untouched, and old versions read as before
    assert [f.path for f in frags] == [f.path for f in ds.fragments()]
    assert ids(lv.open_dataset(ds.uri, version=0)) == list(range(100))


def test_delete_copy_on_write(ds):
    after = ds.delete(where="id BETWEEN 30 AND 34", mode="copy-on-write")
    assert ids(after) == [i for i in range(100) if not 30 <= i <= 34]
    readers_agree(after)
    frags = after.fragments()
    assert all(f.deleted_rows == 0 and f.deletion_vector is None for f in frags)
    before = {f.path for f in ds.fragments()}
    assert len({f.path for f in frags} - before) == 1  # only the touched fragment rewritten
    c = after.commit
    assert (c.fragments_added, c.fragments_removed, c.rows_removed) == (1, 1, 5)
    assert c.parameters["fragments_scanned"] == 1  # stats ruled the others out


def test_deletes_accumulate_in_one_vector(ds):
    a = ds.delete(where="id = 41")
    b = a.delete(where="id IN (42, 43)")
    (frag,) = [f for f in b.fragments() if f.deleted_rows]
    assert frag.deleted_rows == 3
    assert 41 not in ids(b) and 42 not in ids(b) and 41 not in ids(a) and 42 in ids(a)
    # deleting an already deleted row again matches nothing
    assert b.delete(where="id = 41") is b


def test_delete_matching_nothing_commits_nothing(ds, caplog):
    with caplog.at_level("INFO", logger="lakever"):
        same = ds.delete(where="id > 1000")
    assert same is ds and lv.open_dataset(ds.uri).version == 0
    assert "matched no rows" in caplog.text
    assert ds.delete(where="category = 'nope'") is ds


def test_deleting_every_row_of_a_fragment_drops_it(ds):
    after = ds.delete(where="id < 20")
    assert after.commit.fragments_removed == 1 and after.commit.total_fragments == 4
    assert ids(after) == list(range(20, 100))
    assert all(f.deleted_rows == 0 for f in after.fragments())
    empty = after.delete(where="true")
    assert empty.num_rows == 0 and empty.to_arrow().num_rows == 0
    assert empty.commit.total_fragments == 0
    readers_agree(empty.append(events(7, 1)))


def test_delete_skips_fragments_by_stats(ds, fragment_reads):
    after = ds.delete(where="id >= 90")
    assert len(fragment_reads) == 1 and after.commit.parameters["fragments_scanned"] == 1


def test_nan_fragments_are_not_skipped(location):
    # DuckDB orders NaN above every number, and manifest min/max ignore NaN: the
    # fragment holding the NaN (max 2.0) must stay a candidate for "v > 100". The
    # delete removes exactly the rows a filtered read of the same predicate returns.
    t = pa.table({"id": [1, 2, 3, 4, 5], "v": [1.0, float("nan"), 2.0, 500.0, float("nan")]})
    ds = lv.create_dataset(location, t, max_rows_per_fragment=3)
    expected = ds.to_arrow(filter="v > 100")["id"].to_pylist()
    after = ds.delete(where="v > 100")
    assert after.commit.parameters["fragments_scanned"] == 2
    assert sorted(set(range(1, 6)) - set(ids(after))) == sorted(expected)
    assert 4 in expected and 5 in expected


def test_delete_arguments(ds):
    with pytest.raises(lv.InvalidArgument, match=r"where 'nope > 1' names unknown column 'nope'"):
        ds.delete(where="nope > 1")
    with pytest.raises(lv.InvalidArgument, match=r"mode must be 'merge-on-read' or"):
        ds.delete(where="id = 1", mode="rewrite")  # type: ignore[arg-type]
    with pytest.raises(lv.InvalidArgument, match=r"where must be a non-empty"):
        ds.delete(where=" ")
    with pytest.raises(lv.ReadOnlyDataset):
        lv.open_dataset(ds.uri, version=0).delete(where="id = 1")
    assert lv.open_dataset(ds.uri).version == 0


def test_sql_and_lake_see_deletes(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "events"), events(0, 50), max_rows_per_fragment=10)
    ds.delete(where="id < 45")
    lake = lv.connect(str(tmp_path))
    assert lake.sql("SELECT count(*) FROM events").fetchall() == [(5,)]
    assert lake.sql("SELECT count(*) FROM events VERSION AS OF 0").fetchall() == [(50,)]
    assert lake.sql("SELECT min(id) FROM events WHERE id > 40").fetchall() == [(45,)]


# --------------------------------------------------------------------------- update


def test_update_sets_expressions(ds):
    after = ds.update(set={"category": "'spam'", "value": "value * 10"}, where="id IN (3, 7)")
    rows = {r["id"]: r for r in after.to_arrow().to_pylist()}
    assert rows[3] == {"id": 3, "value": 0.3, "category": "spam"}
    assert rows[7]["category"] == "spam" and rows[8]["category"] == "c"
    assert ids(after)[-2:] == [3, 7]  # new row versions are appended
    assert after.num_rows == 100
    c = after.commit
    assert (c.operation, c.rows_added, c.rows_removed, c.fragments_added) == ("update", 2, 2, 1)
    assert c.parameters["set"] == {"category": "'spam'", "value": "value * 10"}
    readers_agree(after)


def test_update_without_where_touches_every_row(ds):
    after = ds.update(set={"value": "0"}, mode="copy-on-write")
    assert set(after.to_arrow()["value"].to_pylist()) == {0.0}
    assert after.num_rows == 100 and sorted(ids(after)) == list(range(100))
    assert all(f.deleted_rows == 0 for f in after.fragments())


def test_update_refusals(ds):
    with pytest.raises(lv.InvalidArgument, match=r"set names unknown column 'nope'"):
        ds.update(set={"nope": "1"})
    with pytest.raises(lv.InvalidArgument, match=r"must be a SQL expression string"):
        ds.update(set={"value": 1})  # type: ignore[dict-item]
    with pytest.raises(lv.InvalidArgument, match=r"failed in DuckDB"):
        ds.update(set={"value": "'not a number'"}, where="id = 1")
    with pytest.raises(lv.InvalidArgument, match=r"non-empty dict"):
        ds.update(set={})
    assert ds.update(set={"value": "1"}, where="id < 0") is ds
    assert lv.open_dataset(ds.uri).version == 0


def test_update_that_changes_no_value_commits_nothing(ds, caplog):
    with caplog.at_level("INFO", logger="lakever"):
        assert ds.update(set={"value": "value"}, where="id < 50") is ds
    assert "set every one of the 50 row(s) it matched" in caplog.text
    assert ds.update(set={"category": "category", "value": "value + 0"}) is ds
    assert ds.update(set={"category": "'a'"}, where="id % 3 = 0") is ds  # already 'a'
    assert lv.open_dataset(ds.uri).version == 0


def test_update_rewrites_only_the_rows_it_changes(ds):
    after = ds.update(set={"category": "'a'"}, where="id < 20")  # ids 0, 3, ... are 'a'
    changed = [i for i in range(20) if i % 3 != 0]
    c = after.commit
    assert (c.rows_removed, c.rows_added) == (len(changed), len(changed))
    assert (c.parameters["rows_deleted"], c.parameters["rows_unchanged"]) == (13, 7)
    assert ids(after) == [i for i in range(100) if i not in changed] + changed
    assert after.fragments()[0].deleted_rows == len(changed)
    readers_agree(after)


def test_update_compares_nulls_nans_and_nested_values(location):
    t = pa.table(
        {
            "id": [1, 2, 3],
            "f": [float("nan"), None, 1.5],
            "s": pa.array([{"a": 1}, None, {"a": 3}], pa.struct([("a", pa.int64())])),
            "h": pa.array([1.0, 2.0, None], pa.float16()),
        }
    )
    ds = lv.create_dataset(location, t)
    assert ds.update(set={"f": "f", "s": "s", "h": "h"}) is ds
    assert ds.update(set={"f": "CASE WHEN id = 3 THEN 1.5 ELSE f END"}) is ds
    after = ds.update(set={"s": "{'a': 2}"}, where="id <= 2")
    assert (after.commit.rows_removed, after.commit.parameters["rows_unchanged"]) == (2, 0)
    after = after.update(set={"f": "f", "h": "2.0"})
    assert after.commit.rows_removed == 2  # rows 1 and 3 (h: 1.0 -> 2.0, null -> 2.0)
    assert sorted(after.to_arrow()["h"].to_pylist()) == [2.0, 2.0, 2.0]


def test_update_checks_the_contract(location):
    import pandera.polars as pap
    import polars as pl

    contract = pap.DataFrameSchema(
        {"id": pap.Column(pl.Int64), "value": pap.Column(pl.Float64, pap.Check.le(1.0))}
    )
    ds = lv.create_dataset(location, events(0, 10), contract=contract)
    with pytest.raises(lv.ContractViolation):
        ds.update(set={"value": "5.0"}, where="id = 2")
    assert lv.open_dataset(location).version == 0
    assert ds.update(set={"value": "0.5"}, where="id = 2").version == 1


# --------------------------------------------------------------------------- upsert


def test_upsert_inserts_and_replaces(location):
    ds = lv.create_dataset(location, events(0, 10), primary_key=["id"])
    new = events(8, 4).set_column(2, "category", pa.array(["z"] * 4))
    after = ds.upsert(new, message="late rows")
    rows = {r["id"]: r["category"] for r in after.to_arrow().to_pylist()}
    assert sorted(rows) == list(range(12)) and after.num_rows == 12
    assert [rows[i] for i in (7, 8, 9, 10, 11)] == ["b", "z", "z", "z", "z"]
    c = after.commit
    assert (c.operation, c.rows_added, c.rows_removed) == ("upsert", 4, 2)
    assert c.parameters["on"] == ["id"] and c.parameters["rows_replaced"] == 2
    readers_agree(after)
    # copy-on-write gives the same rows
    cow = ds.branch("cow").upsert(new, mode="copy-on-write")
    assert sorted(cow.to_arrow().to_pylist(), key=lambda r: r["id"]) == sorted(
        after.to_arrow().to_pylist(), key=lambda r: r["id"]
    )


def test_upsert_with_on_and_refusals(location):
    ds = lv.create_dataset(location, events(0, 5))
    with pytest.raises(lv.InvalidArgument, match=r"upsert needs on=\[key columns\]"):
        ds.upsert(events(0, 1))
    after = ds.upsert(events(4, 2), on=["id"])
    assert sorted(ids(after)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(lv.InvalidArgument, match=r"repeat keys \(id\)"):
        ds.upsert(pa.concat_tables([events(1, 1), events(1, 1)]), on="id")
    with pytest.raises(lv.SchemaMismatch):
        ds.upsert(pa.table({"id": [1]}), on=["id"])
    with pytest.raises(lv.InvalidArgument, match=r"must name distinct columns"):
        ds.upsert(events(1, 1), on=["nope"])
    assert ds.upsert(events(0, 0), on=["id"]) is ds


def test_upsert_schema_mode_adds_and_widens_columns(location):
    ds = lv.create_dataset(location, events(0, 4), primary_key=["id"])
    late = events(2, 3).append_column("score", pa.array([0.5, 0.6, 0.7]))
    with pytest.raises(lv.SchemaMismatch, match=r"schema_mode='add'"):
        ds.upsert(late)  # strict (the default) refuses the new column
    after = ds.upsert(late, schema_mode="add")
    assert after.schema.names == ["id", "value", "category", "score"]
    rows = {r["id"]: r["score"] for r in after.to_arrow().to_pylist()}
    assert rows == {0: None, 1: None, 2: 0.5, 3: 0.6, 4: 0.7}
    c = after.commit
    assert (c.parameters["schema_mode"], c.parameters["rows_replaced"]) == ("add", 2)
    assert [ch["kind"] for ch in c.parameters["schema_changes"]] == ["add"]
    assert after.field_ids["score"] == 4
    readers_agree(after)
    # merge widens a column (int32 data into an int64 column stays int64; here the reverse)
    small = lv.create_dataset(location + "-w", pa.table({"id": pa.array([1, 2], pa.int32())}))
    wide = small.upsert(
        pa.table({"id": pa.array([2, 3], pa.int64())}), on=["id"], schema_mode="merge"
    )
    assert wide.schema.field("id").type == pa.int64()
    assert sorted(ids(wide)) == [1, 2, 3]
    with pytest.raises(lv.InvalidArgument, match=r"schema_mode must be 'strict', 'add' or 'merge'"):
        ds.upsert(late, schema_mode="loose")  # type: ignore[arg-type]
    assert lv.open_dataset(location).version == 1


# --------------------------------------------------------------------------- primary keys


def test_primary_key_enforced_on_create_and_append(location):
    with pytest.raises(lv.PrimaryKeyViolation) as ei:
        lv.create_dataset(
            location, pa.concat_tables([events(0, 3), events(1, 1)]), primary_key=["id"]
        )
    assert ei.value.columns == ["id"] and ei.value.examples == [{"id": 1}]
    assert "null or repeated keys, e.g. (id=1)" in str(ei.value)
    ds = lv.create_dataset(location, events(0, 10), primary_key=["id"], max_rows_per_fragment=5)
    assert ds.primary_key == ["id"]
    with pytest.raises(lv.PrimaryKeyViolation, match=r"keys that live rows already have") as ei:
        ds.append(events(8, 4))
    assert ei.value.examples == [{"id": 8}, {"id": 9}]
    with pytest.raises(lv.PrimaryKeyViolation):
        ds.append(pa.table({"id": pa.array([None], pa.int64()), "value": [1.0], "category": ["a"]}))
    assert lv.open_dataset(location).version == 0
    # a deleted key can come back; an overwrite only needs unique rows of its own
    ds = ds.delete(where="id = 9").append(events(9, 1))
    assert sorted(ids(ds)) == list(range(10))
    assert ds.overwrite(events(0, 2)).num_rows == 2
    with pytest.raises(lv.PrimaryKeyViolation):
        ds.overwrite(pa.concat_tables([events(0, 2), events(0, 1)]))


def test_primary_key_check_reads_only_overlapping_fragments(location, fragment_reads):
    ds = lv.create_dataset(location, events(0, 100), primary_key=["id"], max_rows_per_fragment=10)
    fragment_reads.clear()
    ds.append(events(100, 10))
    assert len(fragment_reads) == 1  # the new rows only: every existing key range is below 100
    fragment_reads.clear()
    with pytest.raises(lv.PrimaryKeyViolation):
        ds.append(events(55, 1))
    # duplicates among the new rows; then the one overlapping fragment against them
    assert len(fragment_reads) == 3 and len(set(fragment_reads)) == 2


def test_primary_key_update_and_schema(location):
    ds = lv.create_dataset(location, events(0, 5), primary_key=["id"])
    with pytest.raises(lv.PrimaryKeyViolation, match=r"e.g. \(id=4\)"):
        ds.update(set={"id": "4"}, where="id = 3")
    assert ds.update(set={"id": "id + 100"}, where="id = 3").to_arrow().num_rows == 5
    with pytest.raises(lv.SchemaEvolutionError, match=r"part of the dataset's primary key"):
        ds.evolve(drop=["id"])
    renamed = ds.evolve(rename={"id": "event_id"})
    assert renamed.primary_key == ["event_id"]
    with pytest.raises(lv.PrimaryKeyViolation):
        renamed.append(events(0, 1).rename_columns(["event_id", "value", "category"]))
    with pytest.raises(lv.InvalidArgument, match=r"cannot be a key"):
        lv.create_dataset(location + "2", events(0, 1), primary_key=["value"])
    with pytest.raises(lv.InvalidArgument, match=r"must name distinct columns"):
        lv.create_dataset(location + "3", events(0, 1), primary_key=["id", "id"])


# --------------------------------------------------------------------------- evolution


def test_row_changes_across_schema_evolution(location):
    ds = lv.create_dataset(location, events(0, 20), max_rows_per_fragment=10)
    ds = ds.evolve(rename={"value": "score"}, add={"note": pa.string()}, widen={"id": pa.int64()})
    ds = ds.append(
        pa.table({"id": [20, 21], "score": [0.5, 0.6], "category": ["x", "y"], "note": ["n", None]})
    )
    mor = ds.delete(where="score > 0.15 AND score < 0.55")
    assert ids(mor) == [*range(16), 21]
    readers_agree(mor)
    cow = ds.branch("cow").delete(where="score > 0.15 AND score < 0.55", mode="copy-on-write")
    assert cow.to_arrow().equals(mor.to_arrow())
    readers_agree(cow)
    upd = mor.update(set={"note": "category || '!'"}, where="id < 2")
    assert upd.to_arrow(filter="id < 2")["note"].to_pylist() == ["a!", "b!"]
    readers_agree(upd)


def test_reader_feature_is_recorded(ds):
    from lakever.format import log_path
    from lakever.snapshot_codec import decode_snapshot
    from lakever.storage import open_storage

    storage = open_storage(ds.uri)
    raw0 = json.loads(storage.read_bytes(log_path("main", 0)))
    assert "reader_features" not in raw0
    after = ds.delete(where="id = 5")
    raw1 = storage.read_bytes(log_path("main", 1))
    assert json.loads(raw1)["reader_features"] == ["deletion_vectors"]
    assert decode_snapshot(raw1, path="x").reader_features == ("deletion_vectors",)
    assert after.delete(where="id < 20").commit.total_rows == 80


# --------------------------------------------------------------------------- branches


def test_delete_on_a_branch_then_merge(ds):
    fix = ds.branch("fix").delete(where="id % 4 = 0")
    assert lv.open_dataset(ds.uri).num_rows == 100  # main untouched
    merged = lv.open_dataset(ds.uri).merge("fix")  # fast-forward
    assert ids(merged) == ids(fix)
    # three-way: main appended meanwhile, the branch deleted more rows
    lv.open_dataset(ds.uri, branch="fix").delete(where="id = 1")
    main = lv.open_dataset(ds.uri).append(events(200, 2))
    merged = main.merge("fix")
    assert merged.commit.parameters["kind"] == "three-way"
    assert ids(merged) == [i for i in range(100) if i % 4 and i != 1] + [200, 201]
    assert merged.commit.rows_removed == 1 and merged.commit.rows_added == 0
    readers_agree(merged)


def test_deletes_on_both_sides_of_a_merge(ds):
    lv.open_dataset(ds.uri).branch("b").delete(where="id = 2")
    main = lv.open_dataset(ds.uri).delete(where="id = 3")  # same fragment
    with pytest.raises(lv.MergeConflict) as ei:
        main.merge("b")
    (conflict,) = ei.value.conflicts
    assert conflict["ours"] == conflict["theirs"] == "deleted rows"
    # different fragments merge cleanly, keeping both deletion vectors
    lv.open_dataset(ds.uri, branch="b").delete(where="id = 55")
    main = main.merge("b", strategy="theirs")
    b2 = main.branch("b2").delete(where="id = 70")
    main = lv.open_dataset(ds.uri).delete(where="id = 10").merge("b2")
    assert b2.version > 0 and {10, 70} & set(ids(main)) == set()


def test_merge_checks_the_primary_key(location):
    ds = lv.create_dataset(location, events(0, 5), primary_key=["id"])
    ds.branch("b").append(events(10, 1))
    main = lv.open_dataset(location).append(events(10, 1))
    with pytest.raises(lv.PrimaryKeyViolation, match=r"merge of 'b'"):
        main.merge("b")


def test_deletion_vectors_survive_manifest_level_merges(location):
    ds = lv.create_dataset(location, events(0, 4)).delete(where="id = 1")
    for i in range(10):  # 8 level-0 manifests merge into one of level 1
        ds = ds.append(events(10 + i, 1))
    assert max(m.level for m in ds._snap.manifests) == 1
    assert ids(ds) == [0, 2, 3, *range(10, 20)] and ds.num_rows == 13
    readers_agree(ds)
    assert ds.delete(where="id = 2").to_arrow().num_rows == 12


@pytest.mark.parametrize("null_in", ["id", "category"])
def test_upsert_refuses_a_null_in_any_key_column(location, null_in):
    ds = lv.create_dataset(location, events(0, 4), primary_key=["id", "category"])
    late = events(2, 2).to_pydict()
    late[null_in] = [late[null_in][0], None]
    table = pa.table(late, schema=events(0, 1).schema)
    with pytest.raises(lv.PrimaryKeyViolation, match="null keys") as ei:
        ds.upsert(table)
    assert ei.value.columns == ["id", "category"]
    assert lv.open_dataset(location).version == 0
    with pytest.raises(lv.PrimaryKeyViolation):
        ds.append(table.slice(1))
