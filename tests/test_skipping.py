"""Pruning wired into reads: explain, filtered reads, scan(filter=), and lake SQL."""

from __future__ import annotations

import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events


@pytest.fixture
def ds(location) -> lv.Dataset:
    # 10 fragments of 10 rows, ids 0..99 in order: id ranges are disjoint per fragment
    return lv.create_dataset(location, events(0, 100), max_rows_per_fragment=10)


def test_explain_counts(ds):
    plan = ds.explain("id >= 95")
    assert (plan.fragments_total, plan.fragments_after_stats_pruning) == (10, 1)
    assert (plan.rows_total, plan.rows_after_pruning) == (100, 10)
    assert plan.fragments_after_partition_pruning == 10
    assert ds.explain("id BETWEEN 15 AND 34").fragments_after_stats_pruning == 3
    assert ds.explain("value > 2").fragments_after_stats_pruning == 0
    assert ds.explain("lower(category) = 'a'").fragments_after_stats_pruning == 10
    with pytest.raises(lv.InvalidArgument, match=r"filter must be a non-empty"):
        ds.explain("")


@pytest.fixture
def spy(fragment_reads) -> list[str]:
    return fragment_reads


def test_filtered_reads_open_only_kept_fragments(ds, spy):
    t = ds.to_arrow(filter="id >= 95")
    assert t["id"].to_pylist() == [95, 96, 97, 98, 99]
    assert len(spy) == 1
    spy.clear()
    assert [b.num_rows for b in ds.to_batches(batch_size=3, filter="id < 12")] == [3, 3, 3, 3]
    assert len(spy) == 2


def test_scan_with_filter(ds):
    got = ds.scan(filter="id >= 95 AND category = 'a'").collect()["id"].to_list()
    assert got == [i for i in range(95, 100) if "abc"[i % 3] == "a"]
    assert ds.scan(filter="id > 1000").collect().height == 0


def test_results_identical_with_and_without_pruning(ds):
    for f in ["id > 37", "id = 5 OR id = 77", "value < 0.05", "category IN ('a', 'c') AND id < 20"]:
        pruned = ds.to_arrow(filter=f)
        full = ds.to_duckdb().filter(f).to_arrow_table().cast(pruned.schema)
        assert pruned.equals(full), f


def test_lake_sql_prunes_where_conjuncts(tmp_path, spy):
    lake = lv.connect(str(tmp_path))
    lake.create_dataset("events", events(0, 100), max_rows_per_fragment=10)
    lake.create_dataset("users", pa.table({"id": pa.array(range(100), pa.int64())}))
    assert lake.sql("SELECT count(*) FROM events WHERE id >= 95").fetchall() == [(5,)]
    assert len(spy) == 1
    spy.clear()
    n = lake.sql(
        "SELECT count(*) FROM events VERSION AS OF 0 AS e JOIN users u ON e.id = u.id "
        "WHERE e.id < 20 AND u.id > 5"
    ).fetchall()
    assert n == [(14,)]
    assert len(spy) == 3  # two fragments of events, the one of users
    # outer joins are never pruned on the null-supplying side
    spy.clear()
    rows = lake.sql(
        "SELECT count(*) FROM users u LEFT JOIN events e ON u.id = e.id + 1000 WHERE e.id IS NULL"
    ).fetchall()
    assert rows == [(100,)]
    assert len(spy) == 11  # every fragment of events, the one of users


def test_cli_explain(tmp_path):
    import json

    from typer.testing import CliRunner

    from lakever.cli import app

    path = str(tmp_path / "ds")
    lv.create_dataset(path, events(0, 100), max_rows_per_fragment=10)
    out = CliRunner().invoke(app, ["explain", path, "id >= 95", "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.stdout)
    assert (plan["fragments_total"], plan["fragments_after_stats_pruning"]) == (10, 1)
    out = CliRunner().invoke(app, ["explain", path, "id >= 95"])
    assert "after stats pruning" in out.stdout
