"""Stable splits and samples (`Dataset.split`, `Dataset.sample`, `lakever.Subset`).

The oracle is a plain Python implementation of the documented hash (docs/splits.md,
docs/format.md §11) applied to the unfiltered rows of ``ds.to_arrow()``; every read
path of a split is compared with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal
from fractions import Fraction

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever.ml.splits import bucket_sql

B = 1 << 64


# ----------------------------------------------------------------- the reference


def _texts(col: pa.ChunkedArray) -> list[str | None]:
    """The documented canonical text of each value (None for NULL)."""
    t = col.type
    if pa.types.is_timestamp(t):
        per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[t.unit]
        ints = col.cast(pa.int64()).to_pylist()
        return [None if v is None else str(v * per) for v in ints]
    if pa.types.is_date(t):
        days = col.cast(pa.date32()).cast(pa.int32()).to_pylist()
        return [None if v is None else str(v * 86_400 * 10**9) for v in days]
    out: list[str | None] = []
    for v in col.to_pylist():
        if v is None:
            out.append(None)
        elif isinstance(v, bytes):
            out.append(v.hex())
        elif isinstance(v, Decimal):
            text = f"{v:f}"
            out.append(text.rstrip("0").rstrip(".") if t.scale > 0 else text)
        else:
            out.append(str(v))  # ints and strings
    return out


def ref_buckets(table: pa.Table, key: list[str], seed: int) -> list[int]:
    columns = [_texts(table.column(k)) for k in key]
    out = []
    for i in range(table.num_rows):
        text = str(seed)
        for col in columns:
            v = col[i]
            text += ":N" if v is None else f":{len(v.encode())}={v}"
        out.append(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))
    return out


def ref_assign(buckets: list[int], fractions: dict[str, float]) -> list[str | None]:
    bounds, cum, lo = [], Fraction(0), 0
    for name, f in fractions.items():
        cum += Fraction(repr(float(f)))
        hi = B if cum >= 1 - Fraction(1, 10**9) else cum.numerator * B // cum.denominator
        bounds.append((name, lo, hi))
        lo = hi
    return [next((n for n, a, z in bounds if a <= b < z), None) for b in buckets]


def ids_of(table: pa.Table) -> list[int]:
    return table.column("id").to_pylist()


def expected_ids(ds: lv.Dataset, fractions, key, seed) -> dict[str, list[int]]:
    full = ds.to_arrow()
    keys = [key] if isinstance(key, str) else list(key)
    names = ref_assign(ref_buckets(full, keys, seed), fractions)
    ids = ids_of(full)
    return {n: [i for i, m in zip(ids, names, strict=True) if m == n] for n in fractions}


def table(n: int, start: int = 0) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "user": pa.array([f"u{i % 97}:{i % 5}" for i in ids], pa.string()),
            "x": pa.array([i * 0.5 for i in ids], pa.float64()),
        }
    )


# ----------------------------------------------------------------- golden


GOLDEN = {  # (seed 7, key id) id -> split of {"train": .8, "val": .1, "test": .1}
    "train": [0, 3, 4, 5, 6, 8, 9, 10, 11, 14, 17, 19],
    "val": [1, 2, 13, 15, 16],
    "test": [7, 12, 18],
}
#: The bucket of a row whose key is NULL (seed 7, one key column): the hash of "7:N".
NULL = 17501271526284697895


def test_golden_buckets_never_change(tmp_path):
    """Changing the hash, the canonical text or the range arithmetic moves rows between
    splits: a format change. These values are a stability promise (docs/format.md §11)."""
    rows = pa.table(
        {
            "id": pa.array([0, -1, 2**63 - 1, None], pa.int64()),
            "s": pa.array(["", "é:=", "train", None]),
            "d": pa.array([dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2024, 2, 29), None]),
            "ts": pa.array([0, -1, 1_700_000_000_123, None], pa.timestamp("ms")),
            "dec": pa.array(
                [Decimal("1.50"), Decimal("-0.25"), Decimal("100.00"), None], pa.decimal128(9, 2)
            ),
            "b": pa.array([b"", b"\x00\xff", b"ab", None]),
        }
    )
    ds = lv.create_dataset(str(tmp_path / "g"), rows)
    got = {
        k: [r[0] for r in ds.sql(f"SELECT {bucket_sql(ds.schema, [k], 7)} FROM self").fetchall()]
        for k in rows.column_names
    }
    assert got == {
        "id": [5610570894309503618, 8593240241829642410, 3446335511105860906, NULL],
        "s": [8580565032602084266, 10305120677956011973, 3893173511506643131, NULL],
        "d": [5610570894309503618, 1126455662134026003, 14831117937235626818, NULL],
        "ts": [5610570894309503618, 13674144660905088991, 6931045091215891231, NULL],
        "dec": [1786846167048832814, 15283102883901397681, 14684843761612455692, NULL],
        "b": [8580565032602084266, 12546850252964070074, 6476566772121859655, NULL],
    }
    two = ds.sql(f"SELECT {bucket_sql(ds.schema, ['id', 's'], -3)} FROM self").fetchall()
    assert [r[0] for r in two] == [
        12062775914430893394,
        6559091482923015017,
        5863295332014528102,
        1953579206687823335,
    ]
    # The reference implementation agrees with every value above.
    for k in rows.column_names:
        assert ref_buckets(rows, [k], 7) == got[k]
    assert ref_buckets(rows, ["id", "s"], -3) == [r[0] for r in two]
    # And the assignment of ids 0..19.
    ds20 = lv.create_dataset(str(tmp_path / "g20"), table(20))
    parts = ds20.split({"train": 0.8, "val": 0.1, "test": 0.1}, key="id", seed=7)
    assert {n: ids_of(s.to_arrow()) for n, s in parts.items()} == GOLDEN


# ----------------------------------------------------------------- differential, every path


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata"])
def test_timestamps_hash_by_instant_across_their_whole_range(tmp_path, unit, tz):
    """DuckDB casts seconds and milliseconds to microseconds through nanoseconds when
    the cast is implicit (failing outside 1677-2262): the whole range must work."""
    limit = {"s": 10**11, "ms": 10**14, "us": 2**63 - 2, "ns": 2**63 - 2}[unit]
    values = [0, -1, 1, limit, -limit, limit // 3, None]
    rows = pa.table({"id": range(7), "t": pa.array(values, pa.timestamp(unit, tz=tz))})
    ds = lv.create_dataset(str(tmp_path / "t"), rows)
    fr = {"a": 0.5, "b": 0.5}
    want = expected_ids(ds, fr, "t", 3)
    for name, subset in ds.split(fr, key="t", seed=3).items():
        paths = _read_paths(subset)
        assert all(got == want[name] for got in paths.values()), paths
    # The same instant in another unit is the same key.
    if unit != "ns":
        wider = rows.set_column(1, "t", rows["t"].cast(pa.timestamp("ns", tz=tz), safe=False))
        in_ns = ref_buckets(wider.slice(0, 3), ["t"], 3)
        assert ref_buckets(rows.slice(0, 3), ["t"], 3) == in_ns


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_infinite_timestamps_are_refused_not_dropped(tmp_path, unit):
    """DuckDB reads the int64 extremes as +-infinity: reading the split raises, rather
    than leaving those rows out of every split."""
    rows = pa.table({"id": [0, 1], "t": pa.array([5, 2**63 - 1], pa.timestamp(unit))})
    ds = lv.create_dataset(str(tmp_path / "t"), rows)
    train = ds.split({"train": 0.5, "test": 0.5}, key="t")["train"]
    for read in (train.to_arrow, train.to_polars, lambda: list(train.to_batches(1))):
        with pytest.raises(lv.InvalidArgument, match="holds a timestamp DuckDB reads as infinite"):
            read()
    # Dates have no such limit: DuckDB's infinite dates still subtract to their day count.
    days = pa.table({"id": [0, 1, 2], "d": pa.array([2**31 - 1, -(2**31) + 1, 7], pa.date32())})
    ds = lv.create_dataset(str(tmp_path / "d"), days)
    parts = ds.split({"a": 0.5, "b": 0.5}, key="d", seed=1)
    assert {n: ids_of(s.to_arrow()) for n, s in parts.items()} == expected_ids(
        ds, {"a": 0.5, "b": 0.5}, "d", 1
    )


_TYPES = {
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "string": (pa.string(), st.text(max_size=6)),
    "large_string": (pa.large_string(), st.sampled_from(["", "a", ":", "=N", "é", "1"])),
    "binary": (pa.binary(), st.binary(max_size=4)),
    "date": (pa.date32(), st.dates()),
    "ts_s": (pa.timestamp("s"), st.integers(-(10**10), 10**10)),
    "ts_us_utc": (pa.timestamp("us", tz="UTC"), st.integers(-(10**15), 10**15)),
    "ts_ns": (pa.timestamp("ns"), st.integers(-(2**62), 2**62)),
    "ts_ns_zoned": (pa.timestamp("ns", tz="Europe/Paris"), st.integers(-(2**62), 2**62)),
    "ts_ms": (pa.timestamp("ms"), st.integers(-(10**13), 10**13)),
    "date64": (pa.date64(), st.integers(-(10**6), 10**6).map(lambda d: d * 86_400_000)),
    "fixed_binary": (pa.binary(3), st.binary(min_size=3, max_size=3)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "decimal": (
        pa.decimal128(12, 3),
        st.decimals(min_value=-(10**8), max_value=10**8, places=3, allow_nan=False),
    ),
    "decimal0": (pa.decimal128(20, 0), st.integers(-(10**19), 10**19).map(Decimal)),
}


@st.composite
def keyed_tables(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(_TYPES)), min_size=1, max_size=2, unique=True))
    n = draw(st.integers(0, 40))
    cols = {"id": pa.array(range(n), pa.int64())}
    for k in kinds:
        t, values = _TYPES[k]
        cols[k] = pa.array(draw(st.lists(st.none() | values, min_size=n, max_size=n)), t)
    return pa.table(cols), kinds


fraction_sets = st.lists(st.floats(0.01, 1.0), min_size=1, max_size=4).flatmap(
    lambda fs: st.sampled_from([1.0, 0.9, 0.5]).map(
        lambda total: {f"s{i}": f / sum(fs) * total for i, f in enumerate(fs)}
    )
)


def _read_paths(subset: lv.Subset) -> dict[str, list[int]]:
    plan = subset.plan(columns=["id"])
    return {
        "to_arrow": ids_of(subset.to_arrow()),
        "to_batches": [i for b in subset.to_batches(3) for i in b.column("id").to_pylist()],
        "to_polars": subset.to_polars(["id"])["id"].to_list(),
        "to_pandas": subset.to_pandas(["id"])["id"].tolist(),
        "scan": subset.scan().collect()["id"].to_list(),
        "plan.read": [i for t in plan.tasks for i in ids_of(plan.read(t))],
        "sql": [r[0] for r in subset.sql("SELECT id FROM self ORDER BY id").fetchall()],
    }


@given(data=keyed_tables(), fractions=fraction_sets, seed=st.integers(-(2**70), 2**70))
def test_splits_match_the_reference_on_every_path(tmp_path, data, fractions, seed):
    rows, kinds = data
    uri = str(tmp_path / uuid.uuid4().hex)
    half = rows.num_rows // 2
    ds = lv.create_dataset(uri, rows.slice(0, half))
    ds = ds.append(rows.slice(half))  # two fragments
    if rows.num_rows > 4:
        ds = ds.delete("id % 4 = 1")  # deletion vectors: DuckDB reads them its own way
    want = expected_ids(ds, fractions, kinds, seed)
    parts = ds.split(fractions, key=kinds, seed=seed)
    assert list(parts) == list(fractions)
    for name, subset in parts.items():
        for path, got in _read_paths(subset).items():
            expected = sorted(want[name]) if path == "sql" else want[name]
            assert got == expected, (name, path)
    # Disjoint, and every row is in one split exactly when the fractions sum to 1.
    seen = [i for ids in want.values() for i in ids]
    assert len(seen) == len(set(seen))
    if abs(sum(fractions.values()) - 1) < 1e-9:
        assert sorted(seen) == sorted(ids_of(ds.to_arrow()))


@given(
    n=st.integers(0, 60),
    seed=st.integers(-5, 5),
    fracs=st.lists(st.floats(0.0, 1.0).filter(lambda f: f > 0), min_size=2, max_size=4),
)
def test_samples_are_nested_and_match_the_reference(tmp_path, n, seed, fracs):
    ds = lv.create_dataset(str(tmp_path / uuid.uuid4().hex), table(n))
    full = ds.to_arrow()
    buckets = ref_buckets(full, ["user", "id"], seed)
    previous: set[int] = set()
    for f in sorted(fracs):
        got = ids_of(ds.sample(f, key=["user", "id"], seed=seed).to_arrow())
        bound = (
            B if f >= 1 - 1e-9 else Fraction(repr(f)).numerator * B // Fraction(repr(f)).denominator
        )
        assert got == [i for i, b in zip(ids_of(full), buckets, strict=True) if b < bound]
        assert previous <= set(got)
        previous = set(got)


def test_sample_of_a_split_is_nested_inside_it(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(3000))
    parts = ds.split({"train": 0.5, "test": 0.5}, key="id", seed=1)
    test = set(ids_of(parts["test"].to_arrow()))
    small = set(ids_of(parts["test"].sample(0.2).to_arrow()))
    large = set(ids_of(parts["test"].sample(0.6).to_arrow()))
    assert small <= large <= test
    assert 0.1 * len(test) < len(small) < 0.3 * len(test)
    assert parts["test"].sample(1.0).to_arrow() == parts["test"].to_arrow()
    # A sample is the first split of a split with the same seed and key.
    assert ds.sample(0.5, key="id", seed=1).to_arrow() == parts["train"].to_arrow()


def test_proportions_are_close_to_the_fractions(tmp_path):
    n = 50_000
    ds = lv.create_dataset(str(tmp_path / "big"), table(n))
    fractions = {"train": 0.7, "val": 0.2, "test": 0.05}
    counts = {k: s.count() for k, s in ds.split(fractions, key="id", seed=42).items()}
    for k, f in fractions.items():
        sigma = (n * f * (1 - f)) ** 0.5
        assert abs(counts[k] - n * f) < 5 * sigma, (k, counts)
    assert sum(counts.values()) < n  # 5 % of the rows are in no split
    assert abs(ds.sample(0.01, key="id").count() - 500) < 5 * (n * 0.01 * 0.99) ** 0.5


def test_memory_storage_reads_through_arrow_the_same(tmp_path):
    rows = table(300)
    local = lv.create_dataset(str(tmp_path / "l"), rows)
    mem = lv.create_dataset(f"memory://splits/{uuid.uuid4().hex}", rows)
    a = local.split({"a": 0.3, "b": 0.7}, key=["user"], seed=9)
    b = mem.split({"a": 0.3, "b": 0.7}, key=["user"], seed=9)
    for name in a:
        assert a[name].to_arrow() == b[name].to_arrow()
        assert _read_paths(a[name]) == _read_paths(b[name])
    assert ids_of(a["a"].to_arrow()) == expected_ids(local, {"a": 0.3, "b": 0.7}, ["user"], 9)["a"]


# ----------------------------------------------------------------- stability


def test_a_row_keeps_its_split_when_the_dataset_changes(tmp_path):
    fr = {"train": 0.6, "val": 0.2, "test": 0.2}
    ds = lv.create_dataset(str(tmp_path / "e"), table(500), primary_key=["id"])
    before = {n: set(ids_of(s.to_arrow())) for n, s in ds.split(fr, seed=3).items()}
    ds = ds.append(table(500, start=500))
    ds = ds.update({"x": "x + 1"}, where="id % 3 = 0")
    ds = ds.delete("id % 7 = 0")
    ds = ds.compact()  # rewrites the fragments: the rows, not their files, carry the split
    after = {n: set(ids_of(s.to_arrow())) for n, s in ds.split(fr, seed=3).items()}
    live = set(ids_of(ds.to_arrow()))
    for name in fr:
        assert before[name] & live == after[name] & set(range(500))
    # On another branch, after its own changes, the same rows are in the same splits.
    other = ds.branch("exp").delete("id < 100").append(table(50, start=2000))
    there = {n: set(ids_of(s.to_arrow())) for n, s in other.split(fr, seed=3).items()}
    for name in fr:
        assert there[name] & after[name] == there[name] - set(range(2000, 2050))
        assert after[name] - there[name] <= set(range(100))
    # An older version, opened read-only, splits the same way.
    old = lv.open_dataset(ds.uri, version=0)
    assert {n: set(ids_of(s.to_arrow())) for n, s in old.split(fr, seed=3).items()} == before


def test_rename_and_widening_of_the_key_keep_the_splits(tmp_path):
    rows = pa.table({"uid": pa.array(range(400), pa.int32()), "v": pa.array(range(400))})
    ds = lv.create_dataset(str(tmp_path / "e"), rows)
    fr = {"a": 0.5, "b": 0.5}
    before = {n: s.to_arrow()["v"].to_pylist() for n, s in ds.split(fr, key="uid").items()}
    ds = ds.evolve(widen={"uid": pa.int64()})
    ds = ds.evolve(rename={"uid": "user_id"})
    with pytest.raises(lv.InvalidArgument, match="after a rename, use the new name"):
        ds.split(fr, key="uid")
    after = {n: s.to_arrow()["v"].to_pylist() for n, s in ds.split(fr, key="user_id").items()}
    assert after == before


def test_a_date_key_widened_to_a_timestamp_keeps_the_splits(tmp_path):
    days = [dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in range(300)]
    ds = lv.create_dataset(str(tmp_path / "e"), pa.table({"day": days, "v": range(300)}))
    fr = {"a": 0.3, "b": 0.3, "c": 0.4}
    before = {n: s.to_arrow()["v"].to_pylist() for n, s in ds.split(fr, key="day").items()}
    ds = ds.evolve(widen={"day": pa.timestamp("us")})
    assert ds.schema.field("day").type == pa.timestamp("us")
    after = {n: s.to_arrow()["v"].to_pylist() for n, s in ds.split(fr, key="day").items()}
    assert after == before


def test_lake_sql_filters_by_the_split_expression(tmp_path):
    lake = lv.connect(str(tmp_path / "lake"))
    ds = lake.create_dataset("events", table(1000))
    train = ds.split({"train": 0.8, "test": 0.2}, key="id", seed=5)["train"]
    got = lake.sql(f"SELECT id FROM events WHERE {train.filter} ORDER BY id").fetchall()
    assert [r[0] for r in got] == sorted(ids_of(train.to_arrow()))
    # The same expression as a filter of the dataset, and in Dataset.sql.
    assert ds.to_arrow(filter=train.filter) == train.to_arrow()
    n = ds.sql(f"SELECT count(*) FROM self WHERE {train.filter}").fetchall()
    assert n == [(train.count(),)]


def test_split_filter_and_caller_filter_combine(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(800))
    val = ds.split({"train": 0.5, "val": 0.5}, key="id")["val"]
    got = ids_of(val.to_arrow(filter="id >= 400"))
    assert got == [i for i in ids_of(val.to_arrow()) if i >= 400]
    assert val.explain("id >= 400").fragments_total == 1
    assert [i for b in val.to_batches(64, filter="id < 10") for i in ids_of(pa.table(b))] == [
        i for i in ids_of(val.to_arrow()) if i < 10
    ]
    with pytest.raises(lv.InvalidArgument, match="'nope >'"):
        val.to_arrow(filter="nope >")


def test_engine_plan_tasks_read_the_split(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(5000))
    test = ds.split({"train": 0.9, "test": 0.1}, key="id", seed=2)["test"]
    plan = test.plan().split(1000)  # what to_ray / to_dask ship, task by task
    got = [i for t in plan.tasks for i in ids_of(plan.read(t))]
    assert got == ids_of(test.to_arrow())
    assert got == expected_ids(ds, {"train": 0.9, "test": 0.1}, "id", 2)["test"]


# ----------------------------------------------------------------- sql on a split


def test_split_sql_sees_only_the_split_and_is_closed(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(300))
    ds = ds.append(table(10, start=300))
    a = ds.split({"a": 0.4}, key="id", seed=0)["a"]
    n = a.sql("SELECT count(*) FROM self").fetchall()
    assert n == [(a.count(),)]
    assert a.count() == len(expected_ids(ds, {"a": 0.4}, "id", 0)["a"])
    with pytest.raises(lv.InvalidArgument, match="split that version"):
        a.sql("SELECT * FROM self VERSION AS OF 0")
    with pytest.raises(lv.DatasetNotFound, match="'other'"):
        a.sql("SELECT * FROM other")
    with pytest.raises(lv.InvalidArgument, match="read-only"):
        a.sql("DELETE FROM self")
    trusted = a.sql("SELECT count(*) FROM self", trusted=True).fetchall()
    assert trusted == n


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fractions", "kwargs", "message"),
    [
        ({}, {}, "non-empty dict"),
        ([0.5], {}, "non-empty dict"),
        ({"a": 0.0}, {}, r"in \(0, 1\]"),
        ({"a": -0.1, "b": 0.5}, {}, r"in \(0, 1\]"),
        ({"a": 1.5}, {}, r"in \(0, 1\]"),
        ({"a": "0.5"}, {}, "must be a number"),
        ({"a": True}, {}, "must be a number"),
        ({"a": 0.7, "b": 0.4}, {}, "sum to 1.1 > 1"),
        ({"": 0.5}, {}, "split name ''"),
        ({"a b": 0.5}, {}, "split name 'a b'"),
        ({1: 0.5}, {}, "split name 1"),
        ({"a": 0.5}, {"seed": 1.5}, "seed must be an int"),
        ({"a": 0.5}, {"seed": True}, "seed must be an int"),
        ({"a": 0.5}, {"key": "nope"}, "key column 'nope' is not in this snapshot"),
        ({"a": 0.5}, {"key": []}, "key must be a column name"),
        ({"a": 0.5}, {"key": ["id", "id"]}, "twice"),
        ({"a": 0.5}, {"key": "x"}, "key column 'x' has type double: floats are not stable"),
        ({"a": 0.5}, {"key": "tags"}, "nested values"),
        ({"a": 0.5}, {"key": "flag"}, "only integers, strings"),
        ({"a": 0.5}, {"key": None}, "has no primary key: pass key="),
    ],
)
def test_bad_arguments_are_refused(tmp_path, fractions, kwargs, message):
    rows = (
        table(5)
        .append_column("tags", pa.array([[1]] * 5))
        .append_column("flag", pa.array([True] * 5))
    )
    ds = lv.create_dataset(str(tmp_path / "e"), rows)
    kwargs = {"key": "id", **kwargs}
    with pytest.raises(lv.InvalidArgument, match=message):
        ds.split(fractions, **kwargs)


def test_sample_arguments_are_refused(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(5))
    for frac in (0, -0.5, 1.01, None, "0.1"):
        with pytest.raises(lv.InvalidArgument, match="frac"):
            ds.sample(frac, key="id")
    with pytest.raises(lv.InvalidArgument, match="frac"):
        ds.sample(0.5, key="id").sample(2)


def test_fractions_summing_to_one_up_to_rounding_cover_every_row(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), table(2000))
    third = 1 / 3
    parts = ds.split({"a": third, "b": third, "c": third}, key="id")
    assert parts["c"].hi == B and parts["a"].lo == 0
    assert sum(p.count() for p in parts.values()) == 2000
    assert "lakever.Subset 'a'" in repr(parts["a"])
    assert abs(parts["b"].fraction - third) < 1e-12


def test_dask_reads_the_split(tmp_path):
    pytest.importorskip("dask.dataframe")
    ds = lv.create_dataset(str(tmp_path / "e"), table(3000))
    ds = ds.append(table(1000, start=3000))
    val = ds.split({"train": 0.8, "val": 0.2}, key=["user", "id"], seed=11)["val"]
    frame = val.to_dask(columns=["id"], max_rows_per_task=700).compute(scheduler="synchronous")
    assert frame["id"].tolist() == ids_of(val.to_arrow())
    assert (
        frame["id"].tolist()
        == expected_ids(ds, {"train": 0.8, "val": 0.2}, ["user", "id"], 11)["val"]
    )
