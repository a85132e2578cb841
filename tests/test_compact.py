"""Compaction: fewer, larger fragments and no deletion vectors, with no row changed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _data import events
from hypothesis import given, settings
from hypothesis import strategies as st
from test_row_concurrency import race
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from lakever.maintenance.compact import parse_size


def many_small(location: str, n: int = 12, rows: int = 10) -> lv.Dataset:
    ds = lv.create_dataset(location, events(0, rows))
    for i in range(1, n):
        ds = ds.append(events(i * rows, rows))
    return ds


def every_version(ds: lv.Dataset) -> dict[int, pa.Table]:
    return {v: lv.open_dataset(ds.uri, version=v).to_arrow() for v in range(ds.version + 1)}


def check_files(ds: lv.Dataset) -> None:
    """Each fragment's bytes match its recorded hash, size and row count; stats match."""
    fs = ds._state.storage
    for f in ds.fragments():
        data = fs.read_bytes(f.path)
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == f.content_hash
        assert len(data) == f.size_bytes
        table = pq.read_table(pa.BufferReader(data))
        assert table.num_rows == f.num_rows
        for name, st_ in f.stats.items():
            col = table.column(name)
            assert st_["nulls"] == col.null_count
            if "min" in st_ and pa.types.is_integer(col.type):
                mm = pc.min_max(col)
                assert (st_["min"], st_["max"]) == (mm["min"].as_py(), mm["max"].as_py())


def test_compaction_merges_materialises_and_changes_no_row(location):
    ds = many_small(location)
    ds = ds.delete(where="id % 7 = 0")
    ds = ds.update(set={"value": "value + 1"}, where="id % 11 = 0")
    before_versions = every_version(ds)
    before = ds.to_arrow()
    assert len(ds.fragments()) == 13 and any(f.deletion_vector for f in ds.fragments())

    after = ds.compact()

    assert after.version == ds.version + 1
    c = after.commit
    assert c.operation == "compact"
    assert c.rows_added == 0 and c.rows_removed == 0 and c.total_rows == ds.num_rows
    assert c.parameters["fragments_rewritten"] == 13 and c.parameters["fragments_written"] == 1
    assert c.parameters["rows_purged"] == sum(f.deleted_rows for f in ds.fragments()) > 0
    assert len(after.fragments()) == 1
    assert not any(f.deletion_vector or f.deleted_rows for f in after.fragments())
    # the same rows in the same order, at the head and at every older version
    assert after.to_arrow().equals(before)
    assert lv.open_dataset(location).to_arrow().equals(before)
    assert every_version(ds) == before_versions
    check_files(after)
    # no row changes: diff and change feed
    d = after.diff(ds)
    assert (d.summary.rows_added, d.summary.rows_removed) == (0, 0)
    assert d.summary.rows_changed == 0
    feed = list(after.changes(since=ds.version))
    assert sum(t.num_rows for t in feed) == 0
    # nothing left to do: nothing committed
    assert after.compact() is after
    assert lv.open_dataset(location).version == after.version


def test_target_size_and_min_fragments_bound_the_groups(tmp_path):
    ds = many_small(str(tmp_path / "t"), n=9)
    sizes = [f.size_bytes for f in ds.fragments()]
    target = 3 * max(sizes) + 1
    assert 4 * min(sizes) > target
    # groups of at most ~3 fragments' bytes
    after = ds.compact(target_size=target)
    assert [f.num_rows for f in after.fragments()] == [30, 30, 30]
    assert after.to_arrow().equals(ds.to_arrow())
    # fragments already at the target are left alone: nothing to do
    assert ds.compact(target_size=min(sizes)) is ds
    # a single small fragment without deletions is not rewritten
    one = lv.create_dataset(str(tmp_path / "one"), events(0, 5))
    assert one.compact() is one
    assert one.compact(min_fragments=1) is one
    # ... but one with deleted rows is
    gone = one.delete(where="id = 2").compact()
    assert gone.commit.operation == "compact" and gone.fragments()[0].deleted_rows == 0
    assert gone.to_arrow()["id"].to_pylist() == [0, 1, 3, 4]
    # min_fragments: a run of 9 small fragments is left alone when 10 are required
    assert ds.compact(min_fragments=10) is ds
    with pytest.raises(lv.InvalidArgument, match="target_size"):
        ds.compact(target_size="lots")
    with pytest.raises(lv.InvalidArgument, match="min_fragments"):
        ds.compact(min_fragments=0)


def test_a_fragment_not_rewritten_keeps_the_order(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "t"), events(0, 5))
    ds = ds.append(events(5, 5)).append(events(10, 2000)).append(events(3000, 5))
    ds = ds.append(events(3005, 5))
    big = ds.fragments()[2].size_bytes
    after = ds.compact(target_size=big)  # the big one is not small: two groups around it
    assert [f.num_rows for f in after.fragments()] == [10, 2000, 10]
    assert after.to_arrow().equals(ds.to_arrow())


def test_where_limits_compaction_to_matching_partitions(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "p"), events(0, 9), partition_by=["category"])
    for i in range(1, 6):
        ds = ds.append(events(i * 9, 9))
    ds = ds.delete(where="id = 4")  # category b
    assert len(ds.fragments()) == 18
    after = ds.compact(where="category = 'a'")
    cats = [f.stats["category"]["min"] for f in after.fragments()]
    assert len(after.fragments()) == 13  # 'a' merged into one, b and c untouched
    assert cats.count("a") == 1 and cats.count("b") == cats.count("c") == 6
    assert any(f.deleted_rows for f in after.fragments())
    full = after.compact()
    assert len(full.fragments()) == 3
    for f in full.fragments():  # partitions never mixed
        assert f.stats["category"]["min"] == f.stats["category"]["max"]
        assert f"category={f.stats['category']['min']}/" in f.path
    by = {}
    for cat in "abc":
        old = ds.to_arrow(filter=f"category = '{cat}'")
        new = full.to_arrow(filter=f"category = '{cat}'")
        assert new.equals(old)  # each partition's rows keep their order
        by[cat] = new.num_rows
    assert sum(by.values()) == ds.num_rows
    check_files(full)


def test_sort_order_is_applied_to_merged_fragments(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "s"), events(0, 0), sort_by=["-value"])
    for i in range(6):
        ds = ds.append(events(i * 7, 7))
    after = ds.compact()
    assert len(after.fragments()) == 1
    got = after.to_arrow()
    assert got["value"].to_pylist() == sorted(got["value"].to_pylist(), reverse=True)
    assert got.sort_by("id").equals(ds.to_arrow().sort_by("id"))


def test_old_schema_fragments_are_rewritten_under_the_current_schema(location):
    ds = many_small(location, n=4)
    ds = ds.evolve(rename={"value": "score"}, add={"note": pa.string()})
    ds = ds.append(events(100, 3).rename_columns(["id", "score", "category"]), schema_mode="add")
    before = ds.to_arrow()
    after = ds.compact()
    assert after.to_arrow().equals(before)
    assert len(after.fragments()) == 1
    (f,) = after.fragments()
    table = pq.read_table(pa.BufferReader(after._state.storage.read_bytes(f.path)))
    assert table.column_names == ["id", "score", "category", "note"]
    assert {e.schema_id for e in after._state.entries} == {after._state.schema_id}


@settings(max_examples=15)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["append", "delete", "update", "cow"]), st.integers(0, 99)),
        min_size=1,
        max_size=8,
    ),
    partitioned=st.booleans(),
)
def test_random_histories_compact_to_the_same_rows(tmp_path_factory, ops, partitioned):
    path = str(tmp_path_factory.mktemp("h") / "t")
    ds = lv.create_dataset(
        path,
        events(0, 12),
        max_rows_per_fragment=5,
        partition_by=["category"] if partitioned else None,
    )
    nxt = 12
    for op, k in ops:
        if op == "append":
            ds = ds.append(events(nxt, k % 13 + 1), max_rows_per_fragment=4)
            nxt += k % 13 + 1
        elif op == "delete":
            ds = ds.delete(where=f"id % {k % 5 + 2} = {k % 2}")
        elif op == "cow":
            ds = ds.delete(where=f"id % {k % 4 + 3} = 1", mode="copy-on-write")
        else:
            ds = ds.update(set={"value": "value + 1"}, where=f"id % {k % 3 + 2} = 0")
    versions = every_version(ds)
    before = ds.to_arrow()
    after = ds.compact(min_fragments=2)
    if after is ds:
        assert len(ds.fragments()) <= 1 or partitioned
        return
    assert not any(f.deleted_rows for f in after.fragments())
    assert len(after.fragments()) <= len(ds.fragments())
    if partitioned:
        assert after.to_arrow().sort_by("id").equals(before.sort_by("id"))
        for cat in "abc":
            f = f"category = '{cat}'"
            assert after.to_arrow(filter=f).equals(ds.to_arrow(filter=f))
        for fr in after.fragments():
            if fr.num_rows:
                assert fr.stats["category"]["min"] == fr.stats["category"]["max"]
    else:
        assert after.to_arrow().equals(before)
        assert len(after.fragments()) == (1 if before.num_rows else 0)
    assert every_version(ds) == versions
    d = after.diff(ds)
    assert (d.summary.rows_added, d.summary.rows_removed, d.summary.rows_changed) == (0, 0, 0)
    check_files(after)


# ----------------------------------------------------------------- concurrency


def test_compaction_and_appends_rebase_over_each_other(location):
    base = many_small(location, n=6)
    # an append over a stale compaction and a compaction over a stale append
    appended = base.append(events(1000, 3))
    compacted = base.compact()
    assert compacted.version == appended.version + 1
    assert compacted.to_arrow().equals(appended.to_arrow())
    assert [f.num_rows for f in compacted.fragments()] == [60, 3]
    again = compacted.append(events(2000, 2))
    stale = compacted.append(events(3000, 2))  # another writer on the compacted version
    assert stale.to_arrow()["id"].to_pylist()[-4:] == [2000, 2001, 3000, 3001]
    assert again.version + 1 == stale.version


def test_a_stale_compaction_replans_and_keeps_the_delete(location):
    base = many_small(location, n=6)
    deleted = base.delete(where="id = 3")  # acknowledged on a fragment compaction rewrites
    compacted = base.compact()  # planned on version 5: loses, replans on the head
    assert compacted.version == deleted.version + 1
    ids = compacted.to_arrow()["id"].to_pylist()
    assert 3 not in ids and ids == deleted.to_arrow()["id"].to_pylist()
    assert not any(f.deleted_rows for f in compacted.fragments())
    # a delete planned before the compaction landed conflicts: never applied to old files
    with pytest.raises(lv.CommitConflict, match="removed fragment"):
        deleted.delete(where="id = 5")
    assert 5 in lv.open_dataset(location).to_arrow()["id"].to_pylist()


def test_racing_compaction_never_loses_a_delete(location):
    many_small(location, n=8)
    expected = set(range(80))
    for round_ in range(3):
        victims = [round_ * 20 + k for k in range(0, 20, 3)]
        writer = lv.open_dataset(location)
        deletes = [lambda v=v, w=writer: w.delete(where=f"id = {v}") for v in victims]
        compactor = lv.open_dataset(location)
        results = race(compactor.compact, *deletes)
        acked = [v for v, r in zip(victims, results[1:], strict=True) if isinstance(r, lv.Dataset)]
        for r in results[1:]:
            if not isinstance(r, lv.Dataset):
                assert isinstance(r, lv.CommitConflict), r
        assert not isinstance(results[0], BaseException), results[0]
        expected -= set(acked)
        final = lv.open_dataset(location)
        ids = set(final.to_arrow()["id"].to_pylist())
        # every acknowledged delete holds; nothing else was removed
        assert ids == expected, (round_, acked, sorted(set(victims) - ids))
    final = lv.open_dataset(location).compact()
    assert set(final.to_arrow()["id"].to_pylist()) == expected


def test_racing_compaction_keeps_appends_and_updates(location):
    many_small(location, n=6)
    writer = lv.open_dataset(location)
    appends = [lambda i=i: writer.append(events(1000 + 10 * i, 3)) for i in range(3)]
    results = race(
        lv.open_dataset(location).compact,
        lambda: writer.update(set={"value": "42"}, where="id = 7"),
        *appends,
    )
    assert not isinstance(results[0], BaseException), results[0]
    for r in results[2:]:
        assert isinstance(r, lv.Dataset), r  # appends never conflict
    final = lv.open_dataset(location)
    rows = {r["id"]: r["value"] for r in final.to_arrow().to_pylist()}
    expected = set(range(60)) | {1000 + 10 * i + k for i in range(3) for k in range(3)}
    assert set(rows) == expected
    if isinstance(results[1], lv.Dataset):  # acknowledged: the new value holds
        assert rows[7] == 42
    else:
        assert isinstance(results[1], lv.CommitConflict) and rows[7] == 0.07
    assert sum(f.deleted_rows for f in final.fragments()) <= 1


def test_compaction_on_a_branch_and_read_only_views(tmp_path):
    ds = many_small(str(tmp_path / "t"), n=4)
    dev = ds.branch("dev")
    compacted = dev.compact()
    assert compacted.branch_name == "dev" and len(compacted.fragments()) == 1
    assert len(lv.open_dataset(ds.uri).fragments()) == 4  # main untouched
    with pytest.raises(lv.ReadOnlyDataset):
        lv.open_dataset(ds.uri, version=1).compact()
    runner = CliRunner()
    out = runner.invoke(app, ["compact", ds.uri, "--branch", "dev"], catch_exceptions=False)
    assert out.exit_code == 0 and out.stdout.startswith("nothing to compact")


# ----------------------------------------------------------------- CLI and sizes


def test_parse_size():
    assert parse_size("128M") == 128 << 20
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("64k") == 64 << 10
    assert parse_size(1000) == 1000
    for bad in ("", "12X", "-1", 0, True, None):
        with pytest.raises(lv.InvalidArgument):
            parse_size(bad)  # type: ignore[arg-type]


def test_cli_compact(tmp_path):
    runner = CliRunner()
    path = str(tmp_path / "lake")
    ds = many_small(path, n=5).delete(where="id = 1")

    def run(*args: str) -> Any:
        result = runner.invoke(app, ["compact", path, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    out = run("--target-size", "64M")
    assert out.startswith(f"committed version {ds.version + 1} of {path} (compact): 5 fragments")
    assert "1 deletion vectors materialized (1 deleted rows dropped); 1 fragments total" in out
    out = run()
    assert out.strip() == f"nothing to compact: nothing committed ({path} stays at version 6)"
    report = json.loads(run("--json"))
    assert report["committed"] is False and report["fragments_after"] == 1
    lv.open_dataset(path).append(events(100, 2))
    report = json.loads(run("--json", "--where", "id >= 100", "--min-fragments", "1"))
    assert report["committed"] is False  # a lone small fragment, current schema, no deletions
    report = json.loads(run("--json"))
    assert report["committed"] and report["fragments_rewritten"] == 2
    bad = runner.invoke(app, ["compact", path, "--target-size", "big"])
    assert bad.exit_code != 0


def test_min_fragments_one_upgrades_a_lone_old_schema_fragment(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "t"), events(0, 5))
    ds = ds.evolve(add={"note": pa.string()})
    assert ds.compact() is ds  # one fragment: nothing to merge
    after = ds.compact(min_fragments=1)
    assert after.commit.operation == "compact"
    assert {e.schema_id for e in after._state.entries} == {after._state.schema_id}
    assert after.to_arrow().equals(ds.to_arrow())
    assert after.compact(min_fragments=1) is after


def test_copy_on_write_keeps_the_partition_record(tmp_path):
    # Compaction groups by partition record: a copy-on-write rewrite must keep it.
    ds = lv.create_dataset(str(tmp_path / "t"), events(0, 9), partition_by=["category"])
    ds = ds.delete(where="id = 3", mode="copy-on-write")
    records = sorted(json.dumps(e.partition) for e in ds._state.entries)
    assert all(e.partition for e in ds._state.entries), records
    assert len(set(records)) == 3
    assert all("category=" in f.path for f in ds.fragments())
    assert ds.to_arrow(filter="category = 'a'")["id"].to_pylist() == [0, 6]


def test_keyed_diff_and_change_feed_see_no_change(tmp_path):
    ds = lv.create_dataset(
        str(tmp_path / "k"), events(0, 20), primary_key=["id"], max_rows_per_fragment=5
    )
    ds = ds.update(set={"value": "value * 2"}, where="id % 3 = 0").delete(where="id = 4")
    after = ds.compact()
    assert after.commit.operation == "compact" and len(after.fragments()) == 1
    d = after.diff(ds)
    assert (d.summary.rows_added, d.summary.rows_removed, d.summary.rows_changed) == (0, 0, 0)
    assert sum(t.num_rows for t in after.changes(since=ds.version)) == 0
    assert sum(t.num_rows for t in after.changes(since=0)) == sum(
        t.num_rows for t in ds.changes(since=0)
    )
    # the key stays enforced on the compacted files
    with pytest.raises(lv.PrimaryKeyViolation):
        after.append(events(3, 1))


def test_stale_keyed_writes_over_a_compaction(tmp_path):
    base = lv.create_dataset(
        str(tmp_path / "k"), events(0, 20), primary_key=["id"], max_rows_per_fragment=5
    )
    assert len(base.compact().fragments()) == 1
    # an append of new keys rebases over it; a repeated key is still refused
    assert base.append(events(100, 3)).num_rows == 23
    with pytest.raises(lv.PrimaryKeyViolation):
        base.append(events(5, 1))
    # an upsert replacing rows of a fragment the compaction rewrote conflicts
    with pytest.raises(lv.CommitConflict, match="removed fragment"):
        base.upsert(events(3, 1))


def test_a_group_of_more_rows_than_a_write_fragment_is_one_fragment(tmp_path):
    # A group is bounded by bytes, not by the write's rows per fragment: 600,000 small rows
    # (more than DEFAULT_MAX_ROWS_PER_FRAGMENT) become one fragment, and compacting again
    # changes nothing (split at the write size they were two small fragments, which every
    # later compaction rewrote into the same two again).
    rows = pa.table({"id": pa.array(range(600_000), pa.int64())})
    ds = lv.create_dataset(str(tmp_path / "d"), rows.slice(0, 100_000))
    for i in range(1, 6):
        ds = ds.append(rows.slice(i * 100_000, 100_000))
    once = ds.compact()
    assert [f.num_rows for f in once.fragments()] == [600_000]
    assert once.to_arrow().equals(rows)
    assert once.compact().version == once.version


@settings(max_examples=25)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=10),
    target=st.integers(400, 30_000),
    deletes=st.booleans(),
)
def test_repeated_compaction_reaches_a_fixed_point(tmp_path_factory, sizes, target, deletes):
    # Every compaction that commits leaves fewer fragments or fewer deletion vectors (and
    # never more of either), so compacting again and again stops committing; the rows never
    # change on the way. (A new file can be smaller than its inputs, so a second round may
    # still merge it with a neighbour.)
    ds = lv.create_dataset(str(tmp_path_factory.mktemp("fp") / "t"), events(0, sizes[0]))
    n = sizes[0]
    for size in sizes[1:]:
        ds = ds.append(events(n, size))
        n += size
    if deletes:
        ds = ds.delete(where="id % 7 = 3")
    rows = ds.to_arrow()

    def measure(d: lv.Dataset) -> tuple[int, int]:
        return len(d.fragments()), sum(1 for f in d.fragments() if f.deleted_rows)

    for _ in range(len(sizes) + 2):
        after = ds.compact(target_size=target)
        if after is ds:
            break
        (f0, d0), (f1, d1) = measure(ds), measure(after)
        assert f1 <= f0 and d1 <= d0 and (f1, d1) != (f0, d0)
        assert after.to_arrow().equals(rows)
        ds = after
    else:
        pytest.fail(f"compaction still committing after {len(sizes) + 2} rounds")
