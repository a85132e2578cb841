"""Diffs between any two snapshots, the change feed, and their cost rule."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from tests._data import events

# lv.diff (the function) shadows the module's name on the package.
diff_module = sys.modules["lakever.diff"]


@pytest.fixture
def ds(location) -> lv.Dataset:
    # 5 fragments of 20 rows, ids 0..99, with a declared key
    return lv.create_dataset(location, events(0, 100), max_rows_per_fragment=20, primary_key=["id"])


def rows(table: pa.Table) -> Counter[tuple]:
    return Counter(tuple(r.values()) for r in table.to_pylist())


# --------------------------------------------------------------------------- keyed


def test_keyed_diff(ds, fragment_reads):
    v1 = ds.delete(where="id IN (1, 2)")
    v2 = v1.update(set={"category": "'zz'", "value": "value + 1"}, where="id IN (41, 42)")
    v3 = v2.upsert(events(99, 3))  # 99 replaced with identical values, 100 and 101 new
    fragment_reads.clear()
    d = lv.diff(ds.uri, 0, 3)
    s = d.summary
    assert (s.rows_added, s.rows_removed, s.rows_changed) == (2, 2, 2)
    assert (s.fragments_added, s.fragments_removed, s.fragments_shared) == (2, 0, 2)
    assert s.fragments_modified == 3 and s.key == ("id",) and s.schema_changes == ()
    assert d.key == ["id"] and d.a.version == 0 and d.b.version == 3
    assert d.added()["id"].to_pylist() == [100, 101]
    assert d.removed()["id"].to_pylist() == [1, 2]
    changed = d.changed()
    assert changed.column_names == ["id", "_changed_columns", "_old", "_new"]
    assert changed.to_pylist() == [
        {
            "id": 41,
            "_changed_columns": ["value", "category"],
            "_old": {"value": 0.41, "category": "c"},
            "_new": {"value": 1.41, "category": "zz"},
        },
        {
            "id": 42,
            "_changed_columns": ["value", "category"],
            "_old": {"value": 0.42, "category": "a"},
            "_new": {"value": 1.42, "category": "zz"},
        },
    ]
    # the two untouched fragments were never read; the three with new deletion
    # vectors only through their newly deleted rows, plus the two new fragments
    frags = [f.path for f in ds.fragments()]
    assert set(fragment_reads) == {frags[0], frags[2], frags[4]} | {
        f.path for f in v3.fragments()[5:]
    }
    frame = d.to_polars()
    assert frame["_change_type"].to_list() == [
        "delete",
        "delete",
        "update_preimage",
        "update_postimage",
        "update_preimage",
        "update_postimage",
        "insert",
        "insert",
    ]
    assert frame.columns == ["id", "value", "category", "_change_type"]
    assert repr(d).startswith("<lakever.Diff version 0 -> 3: +2 -2 ~2 rows")
    assert d.to_dict()["rows_changed"] == 2 and d.to_dict()["b"]["version"] == 3
    assert v1.diff(v3).summary.rows_removed == 0  # Dataset.diff: from v1 to v3


def test_diff_of_a_snapshot_with_itself_reads_nothing(ds, fragment_reads):
    v1 = ds.delete(where="id = 5")
    fragment_reads.clear()
    for a, b in [(0, 0), (1, 1)]:
        d = lv.diff(ds.uri, a, b)
        assert d.summary.rows_touched == 0 and d.to_arrow().num_rows == 0
    assert fragment_reads == []
    assert v1.diff(v1).summary.fragments_shared == 5


def test_copy_on_write_copies_cancel_out(ds):
    v1 = ds.delete(where="id = 50", mode="copy-on-write")
    d = ds.diff(v1)
    s = d.summary
    assert (s.rows_removed, s.rows_added, s.rows_changed) == (1, 0, 0)
    assert (s.fragments_removed, s.fragments_added) == (1, 1)
    assert d.removed()["id"].to_pylist() == [50]
    keyless = ds.diff(v1, on=[])
    assert keyless.key is None and keyless.summary.rows_removed == 1


def test_keyless_diff_counts_duplicates(location):
    t = pa.table({"x": [1, 1, 1, 2], "y": ["a", "a", "a", "b"]})
    ds = lv.create_dataset(location, t)
    v1 = ds.delete(where="x = 1").append(pa.table({"x": [1, 3], "y": ["a", "c"]}))
    d = ds.diff(v1)
    assert d.key is None
    assert rows(d.removed()) == Counter({(1, "a"): 2})
    assert rows(d.added()) == Counter({(3, "c"): 1})
    with pytest.raises(lv.InvalidArgument, match=r"this diff has no key"):
        d.changed()
    with pytest.raises(lv.InvalidArgument, match=r"not unique in the older"):
        ds.diff(v1, on=["x"])
    assert set(d.to_polars()["_change_type"].to_list()) == {"delete", "insert"}


def test_keyed_diff_by_any_column(location):
    ds = lv.create_dataset(location, events(0, 10))
    v1 = ds.update(set={"value": "-1"}, where="id = 3")
    assert ds.diff(v1).summary.rows_changed == 0  # no key: a delete plus an insert
    d = ds.diff(v1, on="id")
    assert d.summary.rows_changed == 1 and d.changed()["_new"].to_pylist() == [{"value": -1.0}]
    with pytest.raises(lv.InvalidArgument, match=r"on=\['nope'\] must name columns"):
        ds.diff(v1, on=["nope"])


def test_diff_across_schema_changes_matches_field_ids(ds):
    v1 = ds.evolve(rename={"category": "kind"}, add={"score": pa.float64()})
    v2 = v1.update(set={"score": "1.5"}, where="id = 7")
    d = lv.diff(ds.uri, 0, 2)
    assert [c.describe() for c in d.schema_changes] == [
        "rename 'category' -> 'kind' (field id 3)",
        "add 'score' double (field id 4)",
    ]
    # rows compare on the columns both snapshots have: version 0 has no 'score'
    assert d.summary.rows_touched == 0
    assert lv.diff(ds.uri, 1, 2).changed().to_pylist() == [
        {"id": 7, "_changed_columns": ["score"], "_old": {"score": None}, "_new": {"score": 1.5}}
    ]
    assert d.schema.names == ["id", "value", "kind", "score"]
    # a dropped column keeps its values on the side that has it
    v3 = v2.evolve(drop=["value"]).delete(where="id = 8")
    back = v3.diff(ds)
    assert back.schema.names == ["id", "value", "category", "score"]  # the newer side last
    assert back.added().to_pylist() == [{"id": 8, "value": 0.08, "category": "c", "score": None}]


def test_diff_across_a_dropped_column_compares_the_shared_columns(location):
    t = pa.table({"id": list(range(50)), "x": [i * 2 for i in range(50)], "y": ["a"] * 50})
    ds = lv.create_dataset(location, t, max_rows_per_fragment=20)
    rewritten = ds.evolve(drop=["y"]).overwrite(t.drop_columns(["y"]))
    x = t.column("x").to_pylist()
    x[7] = -1
    changed = rewritten.overwrite(t.drop_columns(["y"]).set_column(1, "x", pa.array(x)))
    for on in (None, ["id"]):
        d = lv.diff(location, 0, 2, on=on)
        assert d.summary.rows_touched == 0  # not 50 rows "changed" by losing 'y'
        assert [c.describe() for c in d.schema_changes] == ["drop 'y' string (field id 3)"]
        assert d.schema.names == ["id", "x", "y"]  # the dropped column is still shown
    keyed = ds.diff(changed, on=["id"])
    assert keyed.changed().to_pylist() == [
        {"id": 7, "_changed_columns": ["x"], "_old": {"x": 14}, "_new": {"x": -1}}
    ]
    bag = ds.diff(changed, on=[])
    assert (bag.summary.rows_added, bag.summary.rows_removed) == (1, 1)
    assert bag.removed().to_pylist() == [{"id": 7, "x": 14, "y": "a"}]
    assert bag.added().to_pylist() == [{"id": 7, "x": -1, "y": None}]
    # the same across an added column that the overwrite backfilled
    added = changed.evolve(add={"z": pa.int64()}).overwrite(
        changed.to_arrow().append_column("z", pa.array(range(50), pa.int64()))
    )
    assert changed.diff(added).summary.rows_touched == 0


def test_diff_limited_to_columns(ds):
    after = ds.update(set={"value": "value + 1"}, where="id < 3").update(
        set={"category": "'z'"}, where="id IN (1, 5)"
    )
    d = ds.diff(after, columns=["category"])
    assert d.schema.names == ["id", "category"]  # the key comes along
    assert sorted(d.changed().to_pylist(), key=lambda r: r["id"]) == [
        {
            "id": 1,
            "_changed_columns": ["category"],
            "_old": {"category": "b"},
            "_new": {"category": "z"},
        },
        {
            "id": 5,
            "_changed_columns": ["category"],
            "_old": {"category": "c"},
            "_new": {"category": "z"},
        },
    ]
    assert ds.diff(after).summary.rows_changed == 4
    value = lv.diff(ds.uri, 0, after.version, columns=["value"])
    assert sorted(value.changed()["id"].to_pylist()) == [0, 1, 2]
    # without a key, a row that differs only in other columns is not a change
    bag = ds.diff(after, on=[], columns=["value"])
    assert sorted(bag.added()["value"].to_pylist()) == [1.0, 1.01, 1.02]
    assert bag.removed().column_names == ["value"]
    for bad, message in [
        (["nope"], r"columns names unknown column\(s\) \['nope'\]"),
        ([], r"columns must be a non-empty list"),
        ("value", r"columns must be a non-empty list"),
    ]:
        with pytest.raises(lv.InvalidArgument, match=message):
            ds.diff(after, columns=bad)
    dropped = after.evolve(drop=["value"])
    with pytest.raises(lv.InvalidArgument, match=r"exist in only one of the two snapshots"):
        ds.diff(dropped, columns=["value"])


def test_widened_columns_compare_in_the_wider_type(location):
    t = pa.table({"id": pa.array([1, 2], pa.int32()), "n": pa.array([5, 6], pa.int32())})
    ds = lv.create_dataset(location, t, primary_key=["id"])
    v1 = ds.evolve(widen={"n": pa.int64()}).update(set={"n": "n + 5000000000"}, where="id = 1")
    d = ds.diff(v1)
    assert d.schema.field("n").type == pa.int64()
    assert d.changed()["_new"].to_pylist() == [{"n": 5000000005}]
    assert v1.diff(ds).changed()["_old"].to_pylist() == [{"n": 5000000005}]


def test_diff_across_branches_tags_ids_and_time(ds):
    ds.tag("train-v2")
    exp = ds.branch("exp").delete(where="id < 10")
    exp.tag("train-v3")
    d = lv.diff(ds.uri, "train-v2", "train-v3")
    assert d.summary.rows_removed == 10
    assert lv.diff(ds.uri, ds.snapshot_id[:12], "exp").summary.rows_removed == 10
    assert lv.diff(ds.uri, 0, 1, branch="exp").summary.rows_removed == 10
    now = datetime.now(UTC)
    main = lv.open_dataset(ds.uri).append(events(500, 1))
    assert lv.diff(ds.uri, now, main.version).added()["id"].to_pylist() == [500]
    # main vs the branch: each side's changes since the fork
    both = lv.diff(ds.uri, "main", "exp")
    assert (both.summary.rows_removed, both.summary.rows_added) == (11, 0)
    assert exp.diff("main").summary.rows_added == 11
    with pytest.raises(lv.VersionNotFound):
        lv.diff(ds.uri, 0, "nope")
    with pytest.raises(lv.InvalidArgument, match=r"two datasets"):
        ds.diff(lv.create_dataset(ds.uri + "-other", events(0, 1)))


# --------------------------------------------------------------------------- change feed


def test_change_feed(ds):
    v1 = ds.delete(where="id = 3")
    v2 = v1.evolve(add={"note": pa.string()})  # no row change: nothing yielded
    v3 = v2.update(set={"note": "'fixed'"}, where="id = 4")
    v4 = v3.append(events(100, 1), schema_mode="add")
    feed = list(v4.changes(since=0))
    assert [t["_commit_version"][0].as_py() for t in feed] == [1, 3, 4]
    assert feed[0].select(["id", "_change_type"]).to_pylist() == [
        {"id": 3, "_change_type": "delete"}
    ]
    assert feed[1].select(["id", "note", "_change_type"]).to_pylist() == [
        {"id": 4, "note": None, "_change_type": "update_preimage"},
        {"id": 4, "note": "fixed", "_change_type": "update_postimage"},
    ]
    assert feed[2]["_change_type"].to_pylist() == ["insert"]
    assert feed[1].column_names[-4:] == [
        "_change_type",
        "_commit_version",
        "_commit_snapshot_id",
        "_commit_timestamp",
    ]
    assert feed[2]["_commit_snapshot_id"][0].as_py() == v4.snapshot_id
    assert pa.concat_tables(feed).num_rows == 4
    assert list(v4.changes(since=4)) == []
    keyless = list(v4.changes(since=2, on=[]))
    assert len(keyless) == 2
    assert [t["_change_type"].to_pylist() for t in v4.changes(since=v3.snapshot_id)] == [["insert"]]


def test_change_feed_refusals(ds):
    exp = ds.branch("exp").delete(where="id = 1")
    main = lv.open_dataset(ds.uri).delete(where="id = 2")
    with pytest.raises(lv.InvalidArgument, match=r"is not an earlier version of branch 'main'"):
        main.changes(since=exp.snapshot_id)
    with pytest.raises(lv.InvalidArgument, match=r"is not an earlier version"):
        lv.open_dataset(ds.uri, version=0).changes(since=1)
    with pytest.raises(lv.InvalidArgument, match=r"unknown column"):
        main.changes(since=0, on=["nope"])
    # a branch's feed runs along its line, through the versions shared with main
    assert [t["id"].to_pylist() for t in exp.changes(since=0)] == [[1]]


# --------------------------------------------------------------------------- properties

_MODES = st.sampled_from(["merge-on-read", "copy-on-write"])
_OPS = st.one_of(
    st.tuples(st.just("delete"), st.integers(2, 5), st.integers(0, 4), _MODES),
    st.tuples(st.just("update"), st.integers(2, 5), st.integers(0, 4), _MODES),
    st.tuples(st.just("upsert"), st.integers(0, 40), st.integers(1, 6), _MODES),
    st.tuples(st.just("append"), st.integers(0, 40), st.integers(1, 4), _MODES),
)


def _apply(ds: lv.Dataset, op: tuple, step: int) -> lv.Dataset:
    kind, a, b, mode = op
    if kind == "delete":
        return ds.delete(where=f"id % {a} = {b % a}", mode=mode)
    if kind == "update":
        return ds.update(
            set={"value": "value + 1", "category": "category || 'x'"},
            where=f"id % {a} = {b % a}",
            mode=mode,
        )
    if kind == "upsert":
        return ds.upsert(events(a, b).set_column(1, "value", pa.array([7.5] * b)), mode=mode)
    return ds.append(events(1000 + 10 * step, b))


def _keyed_apply(before: pa.Table, d: lv.Diff) -> dict:
    state = {r["id"]: r for r in before.to_pylist()}
    for r in d.removed().to_pylist():
        del state[r["id"]]
    for r in d.changed().to_pylist():
        state[r["id"]] = {**state[r["id"]], **r["_new"]}
    for r in d.added().to_pylist():
        state[r["id"]] = r
    return state


@settings(max_examples=25)
@given(ops=st.lists(_OPS, min_size=1, max_size=5), size=st.integers(2, 9))
def test_diff_properties(ops, size):
    uri = f"memory://lakever-tests/{uuid.uuid4().hex}/ds"
    versions = [
        lv.create_dataset(uri, events(0, 30), max_rows_per_fragment=size, primary_key=["id"])
    ]
    for step, op in enumerate(ops):
        versions.append(_apply(versions[-1], op, step))
    tables = [v.to_arrow() for v in versions]
    for i, j in [(0, len(versions) - 1), (len(versions) - 1, 0), (len(versions) // 2, -1)]:
        a, b = versions[i], versions[j]
        keyed = a.diff(b)
        # applying diff(a, b) to a reproduces b, by key and as a multiset
        assert _keyed_apply(tables[i], keyed) == {r["id"]: r for r in tables[j].to_pylist()}
        multi = a.diff(b, on=[])
        assert multi.key is None
        got = rows(tables[i]) - rows(multi.removed()) + rows(multi.added())
        assert got == rows(tables[j])
        # diff(b, a) is the inverse of diff(a, b)
        back = b.diff(a)
        assert rows(back.added()) == rows(keyed.removed())
        assert rows(back.removed()) == rows(keyed.added())
        flip = {(r["id"], tuple(r["_new"].values())) for r in back.changed().to_pylist()}
        assert flip == {(r["id"], tuple(r["_old"].values())) for r in keyed.changed().to_pylist()}
        # diff(a, a) is empty
        assert a.diff(a).summary.rows_touched == 0


# ------------------------------------------------------------------ null keys and values

_KEY = st.sampled_from([None, 0, 1, 2])
_VALUE = st.sampled_from([None, "a", "b"])


@st.composite
def _keyed_versions(draw: st.DrawFn) -> tuple[dict, dict]:
    """Two versions of a table keyed by (k1, k2), where keys and values may be null."""
    keys = draw(st.sets(st.tuples(_KEY, _KEY), min_size=1, max_size=12))
    before = {k: draw(_VALUE) for k in keys}
    after = {k: draw(_VALUE) for k in keys if draw(st.booleans())}
    others = draw(st.sets(st.tuples(_KEY, _KEY), max_size=6))
    after |= {k: draw(_VALUE) for k in others - keys}
    return before, after


def _table(version: dict) -> pa.Table:
    keys = list(version)
    return pa.table(
        {
            "k1": pa.array([k[0] for k in keys], pa.int64()),
            "k2": pa.array([k[1] for k in keys], pa.int64()),
            "v": pa.array(list(version.values()), pa.string()),
        }
    )


@given(_keyed_versions(), st.integers(1, 4))
def test_a_keyed_diff_matches_null_keys_and_compares_null_values(versions, size):
    """NULL is a key value like any other (IS NOT DISTINCT FROM), and NULL -> 'a' a change."""
    before, after = versions
    uri = f"memory://lakever-tests/{uuid.uuid4().hex}/ds"
    a = lv.create_dataset(uri, _table(before), max_rows_per_fragment=size)
    b = a.overwrite(_table(after))
    d = a.diff(b, on=["k1", "k2"])

    def keys(table: pa.Table) -> set:
        return set(zip(table["k1"].to_pylist(), table["k2"].to_pylist(), strict=True))

    assert keys(d.removed()) == before.keys() - after.keys()
    assert keys(d.added()) == after.keys() - before.keys()
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    rows_changed = d.changed().to_pylist()
    assert {(r["k1"], r["k2"]) for r in rows_changed} == changed
    for r in rows_changed:
        k = (r["k1"], r["k2"])
        assert (r["_old"]["v"], r["_new"]["v"], r["_changed_columns"]) == (
            before[k],
            after[k],
            ["v"],
        )
    assert d.summary.rows_changed == len(changed)


def test_a_keyed_diff_without_changed_rows_has_an_empty_changed_table(ds):
    after = ds.delete(where="id = 3")
    d = ds.diff(after)
    changed = d.changed()
    assert changed.num_rows == 0
    assert changed.column_names == ["id", "_changed_columns", "_old", "_new"]
    assert changed.schema.field("_old").type == changed.schema.field("_new").type == pa.struct([])
    assert [r["id"] for r in d.removed().to_pylist()] == [3]


def test_diff_to_dict_names_both_snapshots(ds):
    after = ds.branch("b").delete(where="id < 2")
    got = ds.diff(after).to_dict()
    assert got["a"] == {"version": 0, "snapshot_id": ds.snapshot_id, "branch": "main"}
    assert (got["b"]["version"], got["b"]["snapshot_id"]) == (1, after.snapshot_id)
    assert (got["rows_removed"], got["rows_added"], got["rows_changed"]) == (2, 0, 0)


def test_diff_to_dict_names_branches_not_their_ids(ds):
    after = ds.branch("b").delete(where="id < 2")
    assert ds.diff(after).to_dict()["b"]["branch"] == "b"


def test_columns_only_one_side_has_cannot_be_compared(ds):
    after = ds.evolve(add={"note": pa.string()})
    with pytest.raises(lv.InvalidArgument, match=r"columns \['note'\] exist in only one") as e:
        ds.diff(after, columns=["note"])
    assert "cannot be compared" in str(e.value) and "pick columns both have" in str(e.value)
