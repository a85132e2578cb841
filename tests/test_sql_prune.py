"""SQL whose WHERE clause lakever prunes by returns what DuckDB returns over the whole tables.

`Lake.sql` / `Dataset.sql` leave out fragments a WHERE conjunct cannot match (judged from
statistics) when skipping rows cannot change the result. Each case here is a query where it
can: the reference is the same query on a plain DuckDB connection over the tables as Arrow
data (one fragment per row or per key, so pruning has something to drop). Every case failed
before its fix (found by a differential review).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import lakever as lv

A = pa.table({"id": [0, 10, 20, 30]})
B = pa.table({"bid": [0, 5, 15, 25], "k": [5, 0, 0, 0]})


@pytest.fixture
def lake(tmp_path) -> lv.Lake:
    lake = lv.connect(str(tmp_path))
    lake.create_dataset("a", A)
    lake.create_dataset("b", B, max_rows_per_fragment=1)
    return lake


@pytest.mark.parametrize(
    "query",
    [
        # ASOF: the nearest row of b; leaving out b's rows changes which one is nearest.
        "SELECT a.id, b.bid FROM a ASOF JOIN b ON a.id >= b.bid WHERE b.k > 1 ORDER BY 1",
        # POSITIONAL: rows paired by position; leaving out rows shifts the pairs.
        "SELECT a.id, b.bid FROM a POSITIONAL JOIN b WHERE b.k < 1 ORDER BY 1",
    ],
    ids=["asof", "positional"],
)
def test_joins_that_pair_rows_by_order_or_nearness_are_not_pruned(lake, query):
    con = duckdb.connect()
    con.register("a", A)
    con.register("b", B)
    assert lake.sql(query).fetchall() == con.sql(query).fetchall()


@pytest.mark.parametrize(
    "sample",
    [
        "SELECT id FROM e TABLESAMPLE reservoir(3 ROWS) REPEATABLE (1) WHERE {} ORDER BY id",
        "SELECT id FROM e WHERE {} USING SAMPLE reservoir(5 ROWS) REPEATABLE (7) ORDER BY id",
    ],
    ids=["tablesample", "using-sample"],
)
def test_a_sample_is_drawn_from_every_row_before_the_where(tmp_path, sample):
    # DuckDB samples before WHERE: drawn only from the fragments that can match, a sample
    # of 3 rows always matched fully. `k + 0 = 3` is never pruned: the same query must
    # give the same rows whether or not the WHERE could be.
    lake = lv.connect(str(tmp_path))
    lake.create_dataset(
        "e",
        pa.table({"id": range(40), "k": [i // 10 for i in range(40)]}),
        max_rows_per_fragment=10,
    )
    assert (
        lake.sql(sample.format("k = 3")).fetchall()
        == lake.sql(sample.format("k + 0 = 3")).fetchall()
    )


T = pa.table(
    {
        "id": [0, 1, 2, 3],
        "s": ["A", "b", "c", "d"],
        "ts": pa.array(
            [dt.datetime(2024, 1, 1, h, tzinfo=dt.UTC) for h in (0, 3, 6, 9)],
            pa.timestamp("us", tz="UTC"),
        ),
    }
)


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("SET TimeZone='America/New_York'", "ts < '2024-01-01 02:00'"),
        ("SET default_collation='nocase'", "s = 'a'"),
    ],
    ids=["timezone", "collation"],
)
def test_on_the_callers_connection_its_settings_decide_and_nothing_is_pruned(
    tmp_path, setting, where
):
    # Pruning judges a condition on lakever's own database (UTC, default collation); on
    # the caller's connection the condition means what that connection's settings say.
    ds = lv.create_dataset(str(tmp_path / "e"), T, max_rows_per_fragment=1)
    con = duckdb.connect()
    con.execute(setting)
    con.register("model", T)
    want = con.sql(f"SELECT id FROM model WHERE {where} ORDER BY id").fetchall()
    assert len(want) > 0
    got = ds.sql(f"SELECT id FROM self WHERE {where} ORDER BY id", con=con).fetchall()
    assert got == want
    relation = ds.to_duckdb(con, prune=where).filter(where).project("id").order("id")
    assert relation.fetchall() == want


def test_time_travel_in_a_branch_views_sql_counts_on_that_branch(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "d"), pa.table({"id": [0, 1]}))
    ds = ds.append(pa.table({"id": [2]}))
    dev = ds.branch("dev").append(pa.table({"id": [100]}))  # dev's version 2
    ds.append(pa.table({"id": [3]}))  # main's version 2
    want = sorted(lv.open_dataset(ds.uri, branch="dev", version=2).to_arrow()["id"].to_pylist())
    assert want == [0, 1, 2, 100]
    query = "SELECT id FROM self VERSION AS OF 2 ORDER BY id"
    assert [r[0] for r in dev.sql(query).fetchall()] == want
    when = dev.timestamp.isoformat()
    query = f"SELECT id FROM self FOR TIMESTAMP AS OF '{when}' ORDER BY id"
    assert [r[0] for r in dev.sql(query).fetchall()] == want
    # A name is found by itself, wherever it is.
    dev.tag("on-dev")
    query = "SELECT id FROM self FOR VERSION AS OF 'on-dev' ORDER BY id"
    assert [r[0] for r in ds.sql(query).fetchall()] == want
