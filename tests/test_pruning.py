"""Data skipping: a fragment is skipped only when no row of it can match.

The property test checks pruning against DuckDB itself: for random data split into
fragments and random filters, every fragment that DuckDB finds a match in must be kept.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        ("tz", pa.timestamp("us", "UTC")),
        ("b", pa.bool_()),
        ("m", pa.decimal128(10, 2)),
    ]
)


def _frag(**cols) -> pa.Table:
    return pa.table({k: pa.array(v, SCHEMA.field(k).type) for k, v in cols.items()})


def may(filter: str, table: pa.Table) -> bool:
    """Whether pruning keeps a one-fragment dataset holding ``table`` for ``filter``."""
    ds = lv.create_dataset(f"memory://pruning/{uuid.uuid4().hex}", table)
    return ds.explain(filter).fragments_after_stats_pruning == 1


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("i > 10", False),
        ("i >= 10", True),
        ("10 < i", False),
        ("i = 5", True),
        ("i = 11", False),
        ("i <> 5", True),
        ("i BETWEEN 11 AND 20", False),
        ("i IN (0, 11)", False),
        ("i IN (0, 7)", True),
        ("i < 5", False),
        ("i > 10 OR i = 6", True),
        ("i > 10 OR i = 0", False),
        ("i > 10 AND abs(i) = 3", False),
        ("7 >= i", True),
        ("4 >= i", False),
        ("i <= CAST(4.5 AS INTEGER)", True),
        ("i < CAST(4.5 AS INTEGER)", False),
        ("NOT (i > 10)", True),
        ("i IS NULL", False),
        ("i IS NOT NULL", True),
        ("i > -3", True),
        ("i > 7.5", True),
        ("i > 10.5", False),
    ],
)
def test_int_predicates(filter, expected):
    assert may(filter, _frag(i=[5, 6, 10])) is expected


def test_strings_dates_timestamps_decimals_bools():
    t = _frag(
        s=["apple", "banana"],
        d=[datetime(2026, 1, 1).date(), datetime(2026, 1, 31).date()],
        ts=[datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 12)],
        tz=[datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)],
        b=[True, True],
        m=[1, 2],
    )
    assert may("s = 'apple'", t)
    assert not may("s > 'c'", t)
    assert not may("s < 'a'", t)
    assert not may("d > DATE '2026-02-01'", t)
    assert may("d = '2026-01-15'", t)
    assert not may("ts >= TIMESTAMP '2026-01-01 12:00:01'", t)
    assert may("ts BETWEEN '2026-01-01 11:00' AND '2026-01-01 11:30'", t)
    assert not may("tz > '2026-01-01 12:30:00+00:00'", t)
    # A naive literal on a zoned column is read in UTC, the time zone lakever pins.
    assert not may("tz > '2026-01-01 12:30:00'", t)
    assert may("tz > '2026-01-01 11:30:00'", t)
    assert not may("b = false", t)
    assert not may("m > 2.5", t)
    assert may("m >= 2", t)


def test_nan_and_nulls():
    f = _frag(f=[1.0, float("nan")])
    assert may("f > 5", f)  # NaN sorts above every number in DuckDB
    assert not may("f < 0", f)
    assert not may("f > 5", _frag(f=[1.0, 2.0]))
    only_null = _frag(i=[None, None])
    assert not may("i = 1", only_null)
    assert not may("i IS NOT NULL", only_null)
    assert may("i IS NULL", only_null)
    assert not may("i IS NULL", _frag(i=[1]))


def test_filters_that_do_not_bind_are_refused():
    for bad in ("i >>>> 3", "unknown_col = 3", "i IN (SELECT 1)", "read_csv('x') IS NULL"):
        with pytest.raises(lv.InvalidArgument):
            may(bad, _frag(i=[1]))


def test_expressions_on_columns_keep_the_fragment():
    assert may("lower(s) = 'x'", _frag(s=["a"]))
    assert may("i + 1 = 100", _frag(i=[1]))


values = st.one_of(st.none(), st.integers(-5, 5))
ops = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])


@given(
    frags=st.lists(st.lists(values, min_size=1, max_size=6), min_size=1, max_size=6),
    op=ops,
    lit=st.integers(-6, 6),
    op2=ops,
    lit2=st.integers(-6, 6),
    conj=st.sampled_from(["AND", "OR"]),
    floats=st.booleans(),
)
def test_pruning_never_drops_a_match(frags, op, lit, op2, lit2, conj, floats):
    con = duckdb.connect()
    filter = f"x {op} {lit} {conj} x {op2} {lit2}"
    for rows in frags:
        if floats:
            arr = pa.array(
                [None if v is None else (float("nan") if v == 5 else v / 2) for v in rows]
            )
        else:
            arr = pa.array(rows, pa.int64())
        table = pa.table({"x": arr})
        con.register("t", table)
        n = con.sql(f"SELECT count(*) FROM t WHERE {filter}").fetchall()[0][0]
        if n:
            assert may(filter, table), (filter, rows)


def test_fixed_offset_bounds_survive_pandera_being_imported():
    # With pandera imported, pyarrow 26 converts a zoned Python datetime back to Arrow
    # without its offset: statistics must never take that road (they once did, and a
    # fragment of a '+05:30' column was pruned although it matched).
    import pandera  # noqa: F401

    ticks = pa.array([1767243679000], pa.int64())  # 2026-01-01 05:01:19 UTC
    t = pa.table({"x": ticks.cast(pa.timestamp("ms", tz="+05:30"))})
    assert may("x < '2026-01-01 06:16:19+00:00'", t)
    assert not may("x < '2026-01-01 05:00:00+00:00'", t)


# --------------------------------------------- with one row per fragment, pruning is exact

_EXACT = {
    "i8": (pa.int8(), st.integers(-3, 3)),
    "u32": (pa.uint32(), st.integers(0, 4)),
    "i64": (pa.int64(), st.integers(-3, 3)),
    "f32": (pa.float32(), st.sampled_from([-1.5, -0.0, 0.0, 0.5, 2.0, float("nan")])),
    # (A fragment of infinities only has no min/max, so it is kept: conservative, not exact.)
    "f64": (pa.float64(), st.sampled_from([-1.5, 0.0, 0.1, 2.0, 1e300, float("nan")])),
    "dec": (pa.decimal128(6, 2), st.sampled_from(["-1.50", "0.00", "0.10", "2.25"])),
    "s": (pa.string(), st.sampled_from(["", "a", "ab", "b", "é"])),
    "d": (pa.date32(), st.sampled_from([date(1969, 12, 31), date(2026, 1, 1), date(2026, 1, 2)])),
    "b": (pa.bool_(), st.booleans()),
}
for _unit in ("s", "ms", "us", "ns"):
    _EXACT[f"ts_{_unit}"] = (pa.timestamp(_unit), st.integers(-2, 2))
    _EXACT[f"tz_{_unit}"] = (pa.timestamp(_unit, tz="UTC"), st.integers(-2, 2))
_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_T0 = datetime(2026, 1, 1, 23, 59, 59)


def _exact_value(name: str, raw: object) -> object:
    """The Arrow value of column ``name`` for a drawn ``raw`` (timestamps: ticks around _T0)."""
    t = _EXACT[name][0]
    if name == "dec":
        return Decimal(str(raw))
    if pa.types.is_timestamp(t):
        base = int((_T0 - datetime(1970, 1, 1)).total_seconds()) * _SECOND[t.unit]
        return base + _SECOND[t.unit] - 1 + int(raw)  # the last tick of a day, and around it
    return raw


def _exact_literal(name: str, value: object, draw: st.DrawFn) -> str:
    t = _EXACT[name][0]
    if value is None:
        return "NULL"
    if pa.types.is_timestamp(t):
        per_s = _SECOND[t.unit]
        seconds, frac = divmod(int(value), per_s)
        offset = draw(st.sampled_from(["", "+00:00", "+05:30", "-08:00"])) if t.tz else ""
        shift = {"": 0, "+00:00": 0, "+05:30": 330, "-08:00": -480}[offset]
        wall = datetime(1970, 1, 1) + timedelta(seconds=seconds, minutes=shift)
        digits = len(str(per_s)) - 1
        text = wall.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac:0{digits}d}" if digits else "")
        return f"'{text}{offset}'"
    if isinstance(value, float):
        return (
            f"'{value}'::{'FLOAT' if name == 'f32' else 'DOUBLE'}"
            if value != value
            else repr(value)
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return str(value)


@st.composite
def _exact_cases(draw: st.DrawFn) -> tuple[pa.Table, str]:
    names = draw(st.lists(st.sampled_from(sorted(_EXACT)), min_size=1, max_size=2, unique=True))
    n = draw(st.integers(1, 6))
    columns = {"id": pa.array(range(n), pa.int64())}
    for name in names:
        t, values = _EXACT[name]
        drawn = [draw(st.one_of(st.none(), values)) for _ in range(n)]
        arrow = [None if v is None else _exact_value(name, v) for v in drawn]
        columns[name] = (
            pa.array(arrow, pa.int64()).cast(t) if pa.types.is_timestamp(t) else pa.array(arrow, t)
        )
    table = pa.table(columns)

    def lit(name: str) -> str:
        stored = [v for v in table.column(name).to_pylist() if v is not None]
        if stored and draw(st.booleans()):
            value = (
                table.column(name).cast(pa.int64()).to_pylist()
                if pa.types.is_timestamp(_EXACT[name][0])
                else table.column(name).to_pylist()
            )
            return _exact_literal(
                name, draw(st.sampled_from([v for v in value if v is not None])), draw
            )
        return _exact_literal(name, _exact_value(name, draw(_EXACT[name][1])), draw)

    def atom() -> str:
        name = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["cmp", "flip", "between", "in", "null"]))
        if kind == "null":
            return f"{name} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
        if kind == "between":
            return f"{name} BETWEEN {lit(name)} AND {lit(name)}"
        if kind == "in":
            return f"{name} IN ({lit(name)}, {lit(name)})"
        op = draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="]))
        return f"{lit(name)} {op} {name}" if kind == "flip" else f"{name} {op} {lit(name)}"

    def where() -> str:
        text = atom()
        if draw(st.integers(0, 3)) == 0:
            text = f"NOT ({text})"
        if draw(st.booleans()):
            text = f"({text}) {draw(st.sampled_from(['AND', 'OR']))} ({atom()})"
        return text

    return table, [where() for _ in range(8)]


@given(_exact_cases())
def test_one_row_fragments_are_kept_exactly_when_their_row_matches(case):
    """min = max for one row, so the statistics decide exactly: a kept fragment matches."""
    table, filters = case
    ds = lv.create_dataset(f"memory://pruning/{uuid.uuid4().hex}", table, max_rows_per_fragment=1)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("t", table)
    try:
        for where in filters:
            try:
                matching = con.sql(f"SELECT count(*) FROM t WHERE {where}").fetchall()[0][0]
            except duckdb.Error:
                continue  # DuckDB refuses the filter: nothing to prune (the differential test)
            report = ds.explain(where)
            assert report.fragments_total == table.num_rows
            assert report.fragments_after_stats_pruning == matching, where
    finally:
        con.close()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_zoned_bounds_keep_their_instant_whatever_the_process_imported(unit):
    # Importing pandera changes how pyarrow turns aware Python datetimes back into Arrow
    # values: bounds that made that round trip moved by the zone's offset, and pruning
    # then dropped the fragment holding the matching row.
    import pandera  # noqa: F401

    t = pa.timestamp(unit, tz="+05:30")
    instant = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    table = pa.table({"id": [0, 1], "c": pa.array([instant, instant + timedelta(days=400)], t)})
    ds = lv.create_dataset(f"memory://pruning/{uuid.uuid4().hex}", table, max_rows_per_fragment=1)
    for where in (
        "c = '2025-12-31 23:59:59'",
        "c = '2026-01-01 05:29:59+05:30'",
        "c < '2026-02-01'",
    ):
        assert ds.explain(where).fragments_after_stats_pruning == 1, where
        assert ds.to_arrow(filter=where)["id"].to_pylist() == [0], where
