"""Conforming written data: lossless representation differences are accepted, lossy ones not."""

from __future__ import annotations

import uuid

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever.schema import timezone_key

NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
INT64 = (-(2**63), 2**63 - 1)


def memory_uri() -> str:
    return f"memory://lakever-tests/{uuid.uuid4().hex}/conform"


def test_sql_and_polars_results_append_back_into_a_dataset_made_from_csv(tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text(
        "id,at,local,day,clock\n"
        "1,2026-01-01T10:00:00Z,2026-01-01 10:00:00,2026-01-01,10:00:00\n"
        "2,2026-01-02T11:30:00Z,2026-01-02 11:30:00,2026-01-02,11:30:00\n"
    )
    table = pacsv.read_csv(csv)
    assert table.schema.field("at").type == pa.timestamp("s", tz="UTC")
    assert table.schema.field("clock").type == pa.time32("s")
    ds = lv.create_dataset(str(tmp_path / "events"), table)
    stored = ds.schema
    out = ds.sql("SELECT * FROM self").to_arrow_table()
    assert out.schema.field("at").type.unit == "us"  # DuckDB's TIMESTAMPTZ
    ds = ds.append(out)
    own = ds.to_duckdb(duckdb.connect()).to_arrow_table()  # a connection of one's own
    assert own.schema.field("at").type == pa.timestamp("us", tz="Etc/UTC")
    ds = ds.append(own)
    polars = ds.to_polars()  # polars has no seconds: timestamp[ms], time64[ns]
    ds = ds.append(polars)
    assert ds.schema == stored  # the stored schema never changes
    rows = ds.to_arrow()
    assert rows.slice(0, 2).to_pylist() * 8 == rows.to_pylist()  # 2, + 2, + 4, + those 8
    assert ds.version == 3


def test_time_zone_aliases_are_one_zone_and_other_zones_are_not():
    utc = ["UTC", "Etc/UTC", "+00:00", "-00:00", "Z", "GMT", "Etc/GMT0", "Universal"]
    assert {timezone_key(tz) for tz in utc} == {"+00:00"}
    assert timezone_key("+05:30") == timezone_key("+0530") != timezone_key("+05:00")
    assert timezone_key("+01:00") == timezone_key("Etc/GMT-1")  # POSIX signs are reversed
    assert timezone_key("US/Eastern") == timezone_key("America/New_York")
    assert timezone_key("Europe/Berlin") != timezone_key("Europe/Paris")  # same offset today
    assert timezone_key("America/New_York") != timezone_key("-05:00")
    assert timezone_key(None) is None and timezone_key("No/Such_Zone") == "No/Such_Zone"


def test_another_zone_stays_a_mismatch_with_a_hint(location):
    ny = pa.timestamp("us", tz="America/New_York")
    ds = lv.create_dataset(location, pa.table({"t": pa.array([0], ny)}))
    ds = ds.append(pa.table({"t": pa.array([1], pa.timestamp("ms", tz="US/Eastern"))}))
    with pytest.raises(lv.SchemaMismatch) as ei:
        ds.append(ds.sql("SELECT * FROM self").to_arrow_table())  # DuckDB answers in UTC
    # the hint says what happened and gives the cast that fixes it
    assert (
        "are different zones; the instants are the same, so if the zone is only how they "
        "were shown, as in DuckDB's results, cast the column to "
        "timestamp[us, tz=America/New_York])" in str(ei.value)
    )
    with pytest.raises(lv.SchemaMismatch, match=r"timestamp\[us\] in the data"):
        ds.append(pa.table({"t": pa.array([1], pa.timestamp("us"))}))  # naive is not aware
    assert ds.schema.field("t").type == ny
    assert ds.to_arrow()["t"].cast(pa.int64()).to_pylist() == [0, 1000]  # 1 ms, in us


@pytest.mark.parametrize(
    ("stored", "data", "message"),
    [
        (
            pa.array([0], pa.timestamp("us", tz="UTC")),
            pa.array([1_000, 1_000_001], pa.timestamp("ns", tz="Etc/UTC")),
            r"column 't' holds 1970-01-01 00:00:00.001000001\+0000, which timestamp\[us, "
            r"tz=UTC\] cannot hold exactly \(it would lose precision below 1 us\)",
        ),
        (
            pa.array([0], pa.timestamp("ns")),
            pa.array([2**30, 2**40], pa.timestamp("s")),
            r"holds 1099511627776 s, which timestamp\[ns\] cannot hold exactly \(it is out",
        ),
        (
            pa.array([0], pa.time32("s")),
            pa.array([2_000_000, 1_500_000], pa.time64("us")),
            r"holds 00:00:01.500000, which time32\[s\]",
        ),
        (
            pa.array([0], pa.date32()),
            pa.array([86_400_000, 86_400_001], pa.date64()),
            r"holds 86400001 ms, .* \(it is not a whole day\)",
        ),
        (
            pa.array([0], pa.duration("s")),
            pa.array([2000, 1500], pa.duration("ms")),
            r"holds 1500 ms, which duration\[s\]",
        ),
        (
            pa.array([b"ab"], pa.binary(2)),
            pa.array([b"cd", b"xyz"], pa.binary()),
            r"holds b'xyz', which is not 2 bytes long",
        ),
        (
            pa.array([{"t": 0}], pa.struct([("t", pa.timestamp("s"))])),
            pa.array([{"t": 2000}, {"t": 2500}], pa.struct([("t", pa.timestamp("ms"))])),
            r"column 't\.t' holds 1970-01-01 00:00:02.500",
        ),
        (
            pa.array([[0]], pa.list_(pa.timestamp("ms"))),
            pa.array([[1000], [2000, 1]], pa.large_list(pa.timestamp("us"))),
            r"column 't\.element' holds 1970-01-01 00:00:00.000001",
        ),
    ],
)
def test_lossy_values_are_refused_naming_the_column_and_value(location, stored, data, message):
    ds = lv.create_dataset(location, pa.table({"t": stored}))
    for mode in ("strict", "merge"):
        with pytest.raises(lv.SchemaMismatch, match=message):
            ds.append(pa.table({"t": data}), schema_mode=mode)
    exact = data.slice(0, 1)
    ds = ds.append(pa.table({"t": exact}))
    assert ds.version == 1 and ds.schema.field("t").type == stored.type
    compact = pa.array(exact.to_pylist(), exact.type)  # a slice casts all its buffers
    assert ds.to_arrow()["t"].to_pylist()[1] == compact.cast(stored.type).to_pylist()[0]


def test_update_results_are_cast_exactly(location):
    t = pa.table({"id": [1], "ts": pa.array([0], pa.timestamp("s", tz="UTC"))})
    ds = lv.create_dataset(location, t)
    ds = ds.update(set={"ts": "ts + INTERVAL 1 second"})  # DuckDB returns microseconds
    assert ds.to_arrow()["ts"].type == pa.timestamp("s", tz="UTC")
    with pytest.raises(lv.InvalidArgument, match=r"column 'ts' holds .*00:00:01.001000"):
        ds.update(set={"ts": "ts + INTERVAL 1 millisecond"})


ZONES = [None, "UTC", "Etc/UTC", "+00:00", "+01:00", "Etc/GMT-1", "America/New_York", "US/Eastern"]


#: Seconds of 0001-01-01 and 9999-12-31T23:59:59: beyond them pyarrow's Parquet statistics
#: cannot become Python datetimes (a separate limit, not a conversion).
YEARS = (-62_135_596_800, 253_402_300_799)


@st.composite
def values(draw: st.DrawFn, unit: str) -> list[int | None]:
    """Values in ``unit``: whole seconds, whole milliseconds, or anything in range."""
    per_second = NS["s"] // NS[unit]
    lo, hi = max(INT64[0], YEARS[0] * per_second), min(INT64[1], YEARS[1] * per_second)
    coarse = st.sampled_from([per_second, max(1, per_second // 1000)]).flatmap(
        lambda step: st.integers(-(-lo // step), hi // step).map(lambda v: v * step)
    )
    value = st.one_of(coarse, st.integers(lo, hi), st.integers(-(10**6), 10**6))
    return draw(st.lists(st.none() | value, min_size=1, max_size=6))


@given(
    stored_unit=st.sampled_from(list(NS)),
    stored_tz=st.sampled_from(ZONES),
    data_unit=st.sampled_from(list(NS)),
    data_tz=st.sampled_from(ZONES),
    data=st.data(),
)
def test_timestamp_representations_convert_exactly_or_are_refused(
    stored_unit, stored_tz, data_unit, data_tz, data
):
    """Property: an append in another unit and time-zone name reads back the same instants
    when every value converts exactly, and is refused otherwise; never truncated."""
    stored_type = pa.timestamp(stored_unit, tz=stored_tz)
    ds = lv.create_dataset(memory_uri(), pa.table({"t": pa.array([0], stored_type)}))
    raw = data.draw(values(data_unit))
    batch = pa.table({"t": pa.array(raw, pa.timestamp(data_unit, tz=data_tz))})
    # The oracle: Python integers, in nanoseconds.
    factor_in, factor_out = NS[data_unit], NS[stored_unit]
    exact = all(
        v is None
        or (v * factor_in % factor_out == 0 and INT64[0] <= v * factor_in // factor_out <= INT64[1])
        for v in raw
    )
    same_zone = (stored_tz is None) == (data_tz is None) and (
        timezone_key(stored_tz) == timezone_key(data_tz)
    )
    if not (same_zone and exact):
        with pytest.raises(lv.SchemaMismatch, match=r"column 't'"):
            ds.append(batch)
        assert lv.open_dataset(ds.uri).version == 0
        return
    after = ds.append(batch)
    assert after.schema.field("t").type == stored_type
    back = after.to_arrow()["t"].cast(pa.int64()).to_pylist()[1:]
    assert back == [None if v is None else v * factor_in // factor_out for v in raw]


# ------------------------------------------------------- reading old fragments by field id


def _f(name: str, t: pa.DataType, fid: int) -> pa.Field:
    from lakever.schema import FIELD_ID_KEY

    return pa.field(name, t, metadata={FIELD_ID_KEY: str(fid).encode()})


# Written schema (field ids in brackets) and the current schema that renames, widens,
# drops and adds fields at every level of nesting.
_OLD = pa.schema(
    [
        _f("n", pa.int32(), 1),
        _f(
            "s",
            pa.struct(
                [_f("a", pa.int16(), 3), _f("gone", pa.string(), 4), _f("b", pa.float32(), 5)]
            ),
            2,
        ),
        _f("l", pa.list_(_f("element", pa.struct([_f("x", pa.int8(), 8)]), 7)), 6),
        _f(
            "m",
            pa.map_(_f("key", pa.string(), 10).with_nullable(False), _f("value", pa.int32(), 11)),
            9,
        ),
        _f("fl", pa.list_(_f("element", pa.int16(), 13), 2), 12),
        _f("ll", pa.large_list(_f("element", pa.float32(), 15)), 14),
        _f("same", pa.list_(_f("element", pa.string(), 17)), 16),
    ]
)
_NEW = pa.schema(
    [
        _f("same", pa.list_(_f("element", pa.string(), 17)), 16),
        _f("n2", pa.int64(), 1),
        _f(
            "s2",
            pa.struct(
                [_f("b2", pa.float64(), 5), _f("a", pa.int64(), 3), _f("new", pa.int8(), 20)]
            ),
            2,
        ),
        _f("l", pa.list_(_f("element", pa.struct([_f("x2", pa.int32(), 8)]), 7)), 6),
        _f(
            "m",
            pa.map_(_f("key", pa.string(), 10).with_nullable(False), _f("value", pa.int64(), 11)),
            9,
        ),
        _f("fl", pa.list_(_f("element", pa.int64(), 13), 2), 12),
        _f("ll", pa.large_list(_f("element", pa.float64(), 15)), 14),
        _f("added", pa.string(), 21),
    ]
)


def _expected(row: dict) -> dict:
    """A row written under _OLD, as _NEW reads it (the model)."""
    s = row["s"]
    return {
        "same": row["same"],
        "n2": row["n"],
        "s2": None if s is None else {"b2": s["b"], "a": s["a"], "new": None},
        "l": None
        if row["l"] is None
        else [None if e is None else {"x2": e["x"]} for e in row["l"]],
        "m": row["m"],
        "fl": row["fl"],
        "ll": row["ll"],
        "added": None,
    }


def _maybe(draw, strategy):
    return draw(st.one_of(st.none(), strategy))


@st.composite
def _old_rows(draw) -> list[dict]:
    small = st.integers(-100, 100)
    halves = st.integers(-8, 8).map(lambda i: i / 2)
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        rows.append(
            {
                "n": _maybe(draw, small),
                "s": _maybe(
                    draw,
                    st.fixed_dictionaries(
                        {"a": st.one_of(st.none(), small), "gone": st.just("x"), "b": halves}
                    ),
                ),
                "l": _maybe(
                    draw,
                    st.lists(st.one_of(st.none(), st.fixed_dictionaries({"x": small})), max_size=3),
                ),
                "m": _maybe(
                    draw,
                    st.lists(
                        st.tuples(st.sampled_from("abc"), st.one_of(st.none(), small)), max_size=3
                    ),
                ),
                "fl": _maybe(draw, st.lists(st.one_of(st.none(), small), min_size=2, max_size=2)),
                "ll": _maybe(draw, st.lists(halves, max_size=3)),
                "same": _maybe(draw, st.lists(st.sampled_from(["p", "q"]), max_size=2)),
            }
        )
    return rows


@given(_old_rows(), st.data())
def test_old_fragments_read_through_the_current_schema_by_field_id(rows, data):
    from lakever.projection import plan, project
    from lakever.schema import strip_field_ids

    table = pa.Table.from_pylist(rows, schema=_OLD)
    # A slice and several chunks: list offsets that do not start at 0.
    start = data.draw(st.integers(0, len(rows)))
    cut = data.draw(st.integers(start, len(rows)))
    pieces = [table.slice(0, start), table.slice(start, cut - start), table.slice(cut)]
    chunked = pa.concat_tables([p for p in pieces if p.num_rows] or [table])
    plans = plan(list(_OLD), list(_NEW), by="id")
    out = strip_field_ids(_NEW)
    expected = [_expected(r) for r in chunked.to_pylist()]
    got = project(chunked, _OLD, plans, out)
    assert got.schema == out and got.to_pylist() == expected
    for batch in chunked.to_batches():
        part = project(batch, _OLD, plans, out)
        assert isinstance(part, pa.RecordBatch) and part.schema == out
        assert part.to_pylist() == [_expected(r) for r in batch.to_pylist()]
    # Only the columns read need to be there; unchanged columns are passed through as they are.
    same = plan(list(_OLD), [_NEW.field("same")], by="id")
    assert same[0].identity and same[0].source == 6
    narrow = project(
        chunked.select(["same"]), _OLD, same, strip_field_ids(pa.schema([_NEW.field("same")]))
    )
    assert narrow.column("same").to_pylist() == chunked.column("same").to_pylist()


def test_plans_match_by_name_when_writing():
    from lakever.projection import plan

    plans = plan(
        [pa.field("a", pa.int32()), pa.field("b", pa.string())],
        [pa.field("b", pa.string()), pa.field("c", pa.int8())],
        by="name",
    )
    assert [(p.source, p.identity) for p in plans] == [(1, True), (None, False)]
