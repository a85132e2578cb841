"""Review of issue 15 (the ML workflow): regressions found by an independent review.

Each test here failed before the fix it names; the oracle is always a plain engine
(pyarrow or Python) over the unpruned rows of ``ds.to_arrow()``.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv

# ----------------------------------------------------------------- splits feed training reads


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 60),
    per_fragment=st.integers(1, 9),
    world=st.integers(1, 5),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_a_split_is_sharded_and_shuffled_like_a_snapshot(
    tmp_path_factory, n, per_fragment, world, shuffle, seed
):
    # docs/splits.md: a subset's to_batches takes the arguments of Dataset.to_batches;
    # a DDP rank reading its shard of the train split is the point of both features.
    root = tmp_path_factory.mktemp("split")
    table = pa.table({"id": pa.array(range(n), pa.int64()), "v": [i % 7 for i in range(n)]})
    ds = lv.create_dataset(str(root / "ds"), table, max_rows_per_fragment=per_fragment)
    train = ds.split({"train": 0.7, "test": 0.3}, key="id", seed=seed)["train"]
    expected = sorted(train.to_arrow()["id"].to_pylist())
    got: list[int] = []
    for rank in range(world):
        for batch in train.to_batches(
            4, shard=(rank, world), shuffle=shuffle, seed=seed, epoch=1, format="numpy"
        ):
            got += batch["id"].tolist()
    assert sorted(got) == expected
    assert len(got) == len(expected)  # no row read twice
    even = [
        sum(b.num_rows for b in train.to_batches(3, shard=(r, world), even=True))
        for r in range(world)
    ]
    assert len(set(even)) == 1


# ----------------------------------------------------------------- drift's DuckDB is closed


def test_drift_runs_on_a_locked_database_that_reads_only_the_datasets_files(tmp_path):
    import duckdb

    from lakever.ml._profile import session

    outside = tmp_path / "secret.csv"
    outside.write_text("k\nsecret\n")
    ds = lv.create_dataset(str(tmp_path / "lake" / "ds"), pa.table({"x": [1, 2, 3]}))
    with session(ds, ds) as (con, names):
        assert con.execute(f"SELECT count(*) FROM {names[1]}").fetchall() == [(3,)]
        with pytest.raises(duckdb.Error, match=r"(?i)permission|disabled|access"):
            con.sql(f"SELECT * FROM read_csv('{outside}')").fetchall()
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
    report = lv.drift(str(tmp_path / "lake" / "ds"), 0, 0)
    assert report.rows_a == report.rows_b == 3 and not report.flagged


# ----------------------------------------------------------------- a run's split record is checked

_GOOD = {"name": "train", "key": ["id"], "seed": 3, "lo": "0", "hi": str(1 << 63)}


@pytest.mark.parametrize(
    "change",
    [
        {"lo": "-5"},  # below the bucket range
        {"hi": str((1 << 64) + 1)},  # above it
        {"lo": str(1 << 63), "hi": "5"},  # lo > hi
        {"key": "id"},  # a string, not a list (was read as the columns 'i', 'd')
        {"key": []},
        {"seed": 1.7},  # was truncated to 1: other rows
        {"seed": True},
        {"lo": 0},  # bounds are logged as decimal strings
        {"name": None},
    ],
)
def test_a_crafted_split_record_is_refused_not_reopened(tmp_path, change):
    pytest.importorskip("mlflow")
    from lakever.interop._mlflow_dataset import LakeverDatasetSource, split_of

    ds = lv.create_dataset(str(tmp_path / "ds"), pa.table({"id": list(range(50))}))
    good = LakeverDatasetSource.from_dict({"pin": ds.pin(), "split": _GOOD}).load()
    assert isinstance(good, lv.Subset) and split_of(good) == _GOOD
    expected = ds.split({"train": 0.5, "test": 0.5}, key="id", seed=3)["train"]
    assert good.to_arrow() == expected.to_arrow()
    source = LakeverDatasetSource.from_dict({"pin": ds.pin(), "split": {**_GOOD, **change}})
    with pytest.raises(lv.InvalidArgument, match="malformed lakever split record"):
        source.load()


# ----------------------------------------------------------------- drift on far timestamps


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_drift_and_card_read_timestamps_outside_the_nanosecond_range(tmp_path, unit, tz):
    import datetime as dt

    far = unit != "ns"  # ns timestamps cannot hold years 1 or 9999
    years = [1, 1500, 2020, 3000, 9999] if far else [1700, 2020, 2200]
    values = [dt.datetime(y, 3, 4, 5, 6, 7) for y in years] + [None]
    table = pa.table({"ts": pa.array(values, pa.timestamp(unit, tz))})
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, table)
    ds = ds.append(table.slice(0, 2))
    report = lv.drift(uri, 0, 1)
    col = report.column("ts")
    # Oracle: pyarrow's own epoch seconds of the unpruned rows.
    seconds = [v for v in ds.to_arrow()["ts"].cast(pa.int64()).to_pylist() if v is not None]
    per = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    assert col.b is not None
    assert col.b.min == pytest.approx(min(seconds) / per)
    assert col.b.max == pytest.approx(max(seconds) / per)
    assert col.b.nulls == 1 and col.b.rows == len(values) + 2
    assert sum(col.b.counts or []) == len(seconds)
    assert "ts" in lv.card(uri, 1, format="markdown")


# ----------------------------------------------------------------- the card takes pins like drift


def test_card_ref_and_against_accept_a_pin_like_drift(tmp_path):
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    trained = ds.pin()  # what an MLflow run logged
    ds = ds.append(pa.table({"x": [50.0, 60.0], "c": ["z", "z"]}))
    by_version = lv.card(uri, "main", against=0, format="markdown")
    by_pin = lv.card(uri, "main", against=trained, format="markdown")

    # The same per-column drift rows (the "against" label is the ref as given).
    def rows(card: str) -> list[str]:
        return [line for line in card.splitlines() if line.startswith(("| x | same", "| c | same"))]

    assert len(rows(by_pin)) == 2 and "drift flagged" in by_pin
    assert rows(by_pin) == rows(by_version)
    old = lv.open_dataset(trained).snapshot_id
    assert f"version 0 of branch main, snapshot `{old}`" in lv.card(uri, trained, format="markdown")
    assert "psi" in lv.drift(uri, trained, "main").to_dict()["columns"][0]
    other = lv.create_dataset(str(tmp_path / "other"), pa.table({"x": [1.0]}))
    with pytest.raises(lv.VersionNotFound):
        lv.card(uri, "main", against=other.pin())


# ----------------------------------------------------------------- drift on wide decimals


def test_drift_and_card_profile_decimals_wider_than_duckdb(tmp_path):
    from decimal import Decimal

    values = [Decimal("1.500"), None, Decimal("12345678901234567890123456789012345678901.25")]
    table = pa.table({"d": pa.array(values, pa.decimal256(50, 3)), "k": ["a", "b", None]})
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, table)
    ds = ds.append(pa.table({"d": pa.array([Decimal("-7")], pa.decimal256(50, 3)), "k": ["a"]}))
    col = lv.drift(uri, 0, 1).column("d")
    # Oracle: the unpruned rows, through Python's decimals.
    live = [float(v) for v in ds.to_arrow()["d"].to_pylist() if v is not None]
    assert col.b is not None and col.b.kind == "numeric"
    assert (col.b.min, col.b.max) == (min(live), max(live))
    assert col.b.mean == pytest.approx(sum(live) / len(live))
    assert col.b.nulls == 1 and sum(col.b.counts or []) == len(live)
    assert lv.drift(uri, 0, 1).column("k").js is not None
    assert "decimal256(50, 3)" in lv.card(uri, format="markdown")
