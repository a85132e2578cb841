"""Partitioning, partition evolution, sort_by, and partition pruning."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv

N = 600


def _events(n: int = N, start: int = 0) -> pa.Table:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "category": [["click", "view", "buy"][i % 3] for i in range(start, start + n)],
            "ts": pa.array(
                [base + timedelta(hours=i) for i in range(start, start + n)],
                pa.timestamp("us", "UTC"),
            ),
            "d": pa.array(
                [date(2026, 1, 1) + timedelta(days=i // 40) for i in range(start, start + n)]
            ),
        }
    )


def ids(t: pa.Table) -> list[int]:
    return sorted(t["id"].to_pylist())


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (["category"], 3),
        ([lv.day("ts")], 25),
        ([lv.hour("ts")], N),
        ([lv.month("ts")], 1),
        ([lv.year("d")], 1),
        ([lv.month("d")], 1),
        ([lv.day("d")], 15),
        (["category", lv.day("ts")], 75),
    ],
)
def test_fragments_hold_one_partition(location, spec, fragments):
    ds = lv.create_dataset(location, _events(), partition_by=spec)
    frags = ds.fragments()
    assert len(frags) == fragments
    assert ids(ds.to_arrow()) == list(range(N))
    assert sum(f.num_rows for f in frags) == N


def test_paths_are_hive_style(local_location):
    ds = lv.create_dataset(local_location, _events(48), partition_by=["category", lv.day("ts")])
    paths = sorted(f.path for f in ds.fragments())
    assert paths[0].startswith("data/category=buy/ts_day=2026-11-01/")
    assert all(p.count("/") == 3 for p in paths)


def test_partition_pruning_counts(location):
    ds = lv.create_dataset(location, _events(), partition_by=["category", lv.day("ts")])
    plan = ds.explain("category = 'click'")
    assert (plan.fragments_total, plan.fragments_after_partition_pruning) == (75, 25)
    plan = ds.explain("ts >= '2026-11-20 00:00:00+00:00' AND ts < '2026-11-21 00:00:00+00:00'")
    assert plan.fragments_after_partition_pruning == 3
    plan = ds.explain("category = 'click' AND ts < '2026-11-02 00:00:00+00:00'")
    assert plan.fragments_after_partition_pruning == plan.fragments_after_stats_pruning == 1
    # stats then prune further within partitions
    plan = ds.explain("category = 'click' AND id = 3")
    assert plan.fragments_after_partition_pruning == 25
    assert plan.fragments_after_stats_pruning == 1
    got = ds.to_arrow(filter="category = 'click' AND ts < '2026-11-02 00:00:00+00:00'")
    assert ids(got) == [i for i in range(24) if i % 3 == 0]


def test_partition_evolution(location):
    ds = lv.create_dataset(location, _events(), partition_by=["category"])
    ds = ds.set_partitioning([lv.month("ts")], message="monthly")
    assert ds.partitioning == [lv.month("ts")]
    assert ds.commit.operation == "set_partitioning"
    ds = ds.append(_events(200, start=N))
    assert len(ds.fragments()) == 3 + 2  # Nov and Dec of the new rows
    assert ids(ds.to_arrow()) == list(range(N + 200))
    f = "ts >= '2026-12-01 00:00:00+00:00'"
    got = ds.to_arrow(filter=f)
    assert ids(got) == [i for i in range(N + 200) if i >= 30 * 24]
    plan = ds.explain(f)
    assert plan.fragments_after_partition_pruning == 3 + 1  # old layout unpruned by month
    assert ds.sql(f"SELECT count(*) FROM self WHERE {f}").fetchall() == [(got.num_rows,)]
    old = lv.open_dataset(location, version=0)
    assert old.partitioning == [lv.identity("category")]
    ds = ds.set_partitioning([])
    assert ds.append(_events(5)).fragments()[-1].path.count("/") == 1


def test_sort_by_makes_stats_pruning_effective(location):
    import numpy as np

    shuffled = _events().take(pa.array(np.random.default_rng(0).permutation(N)))
    plain = lv.create_dataset(location, shuffled, max_rows_per_fragment=60)
    assert plain.explain("id < 60").fragments_after_stats_pruning == 10
    clustered = lv.create_dataset(
        location + "-sorted", shuffled, max_rows_per_fragment=60, sort_by=["id"]
    )
    assert clustered.sort_by == ["id"]
    assert clustered.explain("id < 60").fragments_after_stats_pruning == 1
    assert clustered.to_arrow()["id"].to_pylist() == list(range(N))
    again = clustered.append(shuffled.slice(0, 10))  # the default sort applies to appends
    assert again.to_arrow()["id"].to_pylist()[-10:] == sorted(
        shuffled.slice(0, 10)["id"].to_pylist()
    )
    desc = clustered.append(shuffled.slice(0, 10), sort_by=["-id"])
    assert desc.to_arrow()["id"].to_pylist()[-10:] == sorted(
        shuffled.slice(0, 10)["id"].to_pylist(), reverse=True
    )


def test_nulls_and_rename(location):
    t = pa.table({"k": ["a", None, "a", None], "v": [1, 2, 3, 4]})
    ds = lv.create_dataset(location, t, partition_by=["k"])
    assert len(ds.fragments()) == 2
    assert ds.explain("k IS NULL").fragments_after_partition_pruning == 1
    assert ds.explain("k = 'a'").fragments_after_partition_pruning == 1
    ds = ds.evolve(rename={"k": "key"})
    assert ds.partitioning == [lv.identity("key")]
    assert ds.explain("key = 'a'").fragments_after_partition_pruning == 1
    assert sorted(ds.to_arrow(filter="key = 'a'")["v"].to_pylist()) == [1, 3]


@pytest.mark.parametrize("order", [[None, "__NULL__"], ["__NULL__", None]])
def test_a_null_and_the_string_shown_like_it_are_two_partitions(location, order):
    # Both show as the directory __NULL__; the rows were written into one fragment under
    # the first one's partition, and pruning then dropped the other's rows.
    t = pa.table({"id": [0, 1], "s": pa.array(order, pa.string())})
    ds = lv.create_dataset(location, t, partition_by=["s"])
    assert sorted(f.num_rows for f in ds.fragments()) == [1, 1]
    null_id = order.index(None)
    for where in ("s IS NULL", "s = '__NULL__'"):  # the reference: DuckDB over the rows
        want = duckdb.sql(f"SELECT id FROM t WHERE {where}").fetchall()
        assert [(i,) for i in ds.to_arrow(filter=where)["id"].to_pylist()] == want, where
    assert ds.to_arrow(filter="s IS NULL")["id"].to_pylist() == [null_id]
    assert ds.to_arrow(filter="s = '__NULL__'")["id"].to_pylist() == [1 - null_id]
    assert ds.sql("SELECT id FROM self WHERE s = '__NULL__'").fetchall() == [(1 - null_id,)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["nope"], r"no column 'nope'"),
        ([lv.hour("d")], r"hour takes timestamps"),
        ([lv.day("id")], r"column 'id' is int64"),
        (["category", "category"], r"appears twice"),
        ([3], r"partition_by takes column names"),
    ],
)
def test_bad_partitioning(location, spec, message):
    with pytest.raises(lv.InvalidArgument, match=message):
        lv.create_dataset(location, _events(10), partition_by=spec)


def test_partition_by_only_at_create(location):
    lv.create_dataset(location, _events(10))
    with pytest.raises(lv.InvalidArgument, match=r"use Dataset.set_partitioning"):
        lv.write_dataset(location, _events(10), mode="append", partition_by=["category"])
    with pytest.raises(lv.InvalidArgument, match=r"cannot sort by 'zz'"):
        lv.open_dataset(location).append(_events(1), sort_by=["zz"])


def test_concurrent_partitioning_changes_conflict(location):
    a = lv.create_dataset(location, _events(10))
    b = lv.open_dataset(location)
    a.set_partitioning(["category"])
    with pytest.raises(lv.CommitConflict, match=r"conflicts with version 1"):
        b.set_partitioning([lv.day("ts")])
    # an append racing a partitioning change is fine
    c = lv.open_dataset(location, version=1)
    assert c.partitioning == [lv.identity("category")]


def test_row_changes_keep_the_partitioning(location):
    ds = lv.create_dataset(location, _events(60), partition_by=["category"], primary_key=["id"])
    ds = ds.update(set={"category": "'view'"}, where="id = 3")
    ds = ds.upsert(_events(3, start=100), on=["id"])
    for frag in ds.fragments():
        assert frag.path.split("/")[1].startswith("category=")
    assert ds.explain("category = 'click'").fragments_after_partition_pruning == 2
    got = ds.to_arrow(filter="category = 'view'")
    assert 3 in got["id"].to_pylist()
    assert ds.num_rows == 63


# ------------------------------------------- partition ranges at the edges, differentially

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# Instants where a year, a month, a day or an hour begins or ends (UTC).
_ANCHORS = [
    datetime(2026, 1, 1),
    datetime(2026, 2, 28, 23),
    datetime(2024, 2, 29, 23, 59, 59),
    datetime(2026, 12, 31, 23, 59, 59),
    datetime(2026, 6, 15, 0, 59, 59),
    datetime(1969, 12, 31, 23, 59, 59),
]
_OFFSETS = {"": 0, "+00:00": 0, "+05:30": 330, "-08:00": -480}


def _ticks(instant: datetime, unit: str) -> int:
    return int((instant - datetime(1970, 1, 1)).total_seconds()) * _PER_SECOND[unit]


def _text(ticks: int, unit: str, offset: str) -> str:
    """``ticks`` (UTC) as a timestamp literal at full precision, in the wall time of ``offset``."""
    per_s = _PER_SECOND[unit]
    seconds, frac = divmod(ticks, per_s)
    wall = datetime(1970, 1, 1) + timedelta(seconds=seconds, minutes=_OFFSETS[offset])
    digits = len(str(per_s)) - 1
    return wall.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac:0{digits}d}" if digits else "") + offset


@st.composite
def _edge_cases(draw: st.DrawFn) -> tuple[pa.Table, object, list[str]]:
    kind = draw(st.sampled_from(["timestamp", "timestamp", "date"]))
    if kind == "date":
        t: pa.DataType = pa.date32()
        transforms = [lv.year, lv.month, lv.day, lv.identity]
    else:
        unit = draw(st.sampled_from(list(_PER_SECOND)))
        tz = draw(st.sampled_from([None, "UTC", "+05:30", "-08:00", "America/New_York"]))
        t = pa.timestamp(unit, tz=tz)
        transforms = [lv.year, lv.month, lv.day, lv.hour, lv.identity]
    # One transform, or two of the same column (their ranges intersect).
    transform = draw(st.lists(st.sampled_from(transforms), min_size=1, max_size=2, unique=True))
    unit = "s" if kind == "date" else t.unit
    per_day = 86_400 * _PER_SECOND[unit]
    # The last tick of an hour or a day, the first of the next, and their neighbours.
    points = st.builds(
        lambda a, d: _ticks(a, unit) + _PER_SECOND[unit] - 1 + d,
        st.sampled_from(_ANCHORS),
        st.sampled_from([-1, 0, 1, 2]),
    )
    ticks = draw(st.lists(points, min_size=1, max_size=8))
    if kind == "date":
        days = [v // per_day for v in ticks]
        column = pa.array([*days, None], pa.int32()).cast(pa.date32())
    else:
        column = pa.array([*ticks, None], pa.int64()).cast(t)
    table = pa.table({"id": pa.array(range(len(column)), pa.int64()), "c": column})
    filters = []
    for _ in range(3):
        v = draw(st.sampled_from(ticks))
        if kind == "date":
            text = _text((v // per_day) * 86_400, "s", "")[:10]
        else:
            offset = draw(st.sampled_from(list(_OFFSETS) if t.tz else [""]))
            text = _text(v, unit, offset)
        literal = f"'{text}'"
        op = draw(st.sampled_from(["=", "<", "<=", ">", ">=", "<>"]))
        filters.append(f"{literal} {op} c" if draw(st.booleans()) else f"c {op} {literal}")
    return table, transform, filters


def _reference(table: pa.Table, where: str) -> list[int] | None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        con.register("t", table)
        return sorted(r[0] for r in con.sql(f"SELECT id FROM t WHERE {where}").fetchall())
    except duckdb.Error:
        return None
    finally:
        con.close()


@given(_edge_cases())
def test_partition_ranges_never_drop_a_row_at_the_edges(case):
    """Every unit and offset, the last tick of an hour/day/month/year: DuckDB is the reference."""
    table, transform, filters = case
    uri = f"memory://lakever-tests/{uuid.uuid4().hex}/ds"
    ds = lv.create_dataset(uri, table, partition_by=[t("c") for t in transform])
    for where in filters:
        expected = _reference(table, where)
        if expected is None:
            with pytest.raises(lv.LakeverError):
                ds.to_arrow(filter=where)
            continue
        assert ids(ds.to_arrow(filter=where)) == expected, where
        got = sorted(r[0] for r in ds.sql(f"SELECT id FROM self WHERE {where}").fetchall())
        assert got == expected, where


def test_partition_directories_name_each_transform_value(local_location):
    from lakever.partitioning import directory, resolve_spec

    schema = pa.schema([("ts", pa.timestamp("us", "UTC")), ("d", pa.date32()), ("c", pa.string())])
    from lakever.schema import assign_field_ids

    with_ids, _ = assign_field_ids(schema)
    spec = resolve_spec([lv.hour("ts"), lv.day("ts"), lv.month("d"), lv.year("d"), "c"], with_ids)
    hours = (datetime(2026, 11, 1, 5) - datetime(1970, 1, 1)) // timedelta(hours=1)
    record = [
        {"field_id": 1, "transform": "hour", "value": hours},
        {"field_id": 1, "transform": "day", "value": hours // 24},
        {"field_id": 2, "transform": "month", "value": (2026 - 1970) * 12 + 10},
        {"field_id": 2, "transform": "year", "value": 2026 - 1970},
        {"field_id": 3, "transform": "identity", "value": "a/b c"},
    ]
    assert directory(record, spec) == (
        "ts_hour=2026-11-01-05/ts_day=2026-11-01/d_month=2026-11/d_year=2026/c=a%2Fb%20c"
    )
    assert directory([{"field_id": 3, "transform": "identity", "value": None}], spec) == (
        "c=__NULL__"
    )
    assert directory(None, spec) == ""
