"""Every read path returns exactly what DuckDB returns over the unpruned rows in memory.

Random tables over every supported type (floats with NaN, +-0.0, infinities and
subnormals; decimals; every integer width; dates; timestamps in every unit, with
and without time zones; strings with non-ASCII text and longer than the
statistics prefix) are written as many small fragments; random filters from the
whole grammar the binder accepts (comparisons both ways round, BETWEEN, IN,
IS NULL, isnan, NOT, AND, OR, casts, literals printed from stored values) are
run through every path -- ``to_arrow``, ``to_batches``, ``scan``, ``Dataset.sql``,
``Lake.sql``, ``delete`` -- and compared with DuckDB over the same rows held in
memory (never over the files: engines have pruning bugs of their own).

CI runs a derandomised profile; the ``slow`` tier runs a larger random sweep.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

import duckdb
import pandera  # noqa: F401 - once imported, pyarrow converts aware datetimes differently
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakever as lv
import lakever.fragments

TYPES: dict[str, pa.DataType] = {
    "i8": pa.int8(),
    "i16": pa.int16(),
    "i32": pa.int32(),
    "i64": pa.int64(),
    "u8": pa.uint8(),
    "u32": pa.uint32(),
    "u64": pa.uint64(),
    "f32": pa.float32(),
    "f64": pa.float64(),
    "dec": pa.decimal128(10, 2),
    "d": pa.date32(),
    "ts_s": pa.timestamp("s"),
    "ts_ms": pa.timestamp("ms"),
    "ts_us": pa.timestamp("us"),
    "ts_ns": pa.timestamp("ns"),
    "tz_us": pa.timestamp("us", tz="UTC"),
    "tz_ms": pa.timestamp("ms", tz="+05:30"),
    "tz_ns": pa.timestamp("ns", tz="America/New_York"),
    "s": pa.string(),
    "b": pa.bool_(),
}
_FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.0, -1.5, 0.1, 2.5, 1e300]
_FLOATS32 = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e-45, 1.0, -1.5, 0.1, 2.5, 3e38]
_EPOCH = datetime(2026, 1, 1)


def _values(name: str) -> st.SearchStrategy[object]:
    t = TYPES[name]
    if pa.types.is_integer(t):
        lo, hi = (
            (0, 2**t.bit_width - 1)
            if pa.types.is_unsigned_integer(t)
            else (
                -(2 ** (t.bit_width - 1)),
                2 ** (t.bit_width - 1) - 1,
            )
        )
        return st.one_of(st.integers(-3, 3).filter(lambda v: lo <= v <= hi), st.integers(lo, hi))
    if name == "f32":
        return st.one_of(st.sampled_from(_FLOATS32), st.floats(width=32))
    if name == "f64":
        return st.one_of(st.sampled_from(_FLOATS), st.floats())
    if name == "dec":
        return st.decimals(min_value=-999, max_value=999, places=2, allow_nan=False)
    if name == "d":
        return st.integers(-800, 800).map(lambda n: date(2026, 1, 1) + timedelta(days=n))
    if name.startswith(("ts_", "tz_")):
        seconds = st.integers(-3 * 86_400, 3 * 86_400)
        micros = st.integers(0, 999_999)
        naive = st.builds(
            lambda s, us: _EPOCH + timedelta(seconds=s, microseconds=us), seconds, micros
        )
        if name.startswith("tz_"):
            return naive.map(lambda v: v.replace(tzinfo=UTC))
        return naive
    if name == "s":
        alphabet = st.sampled_from(list("abcAZ z09_-'é日本語😀"))
        return st.one_of(
            st.text(alphabet, max_size=6),
            st.text(alphabet, min_size=60, max_size=90),
        )
    return st.booleans()


def _column(name: str, values: list[object]) -> pa.Array:
    t = TYPES[name]
    if name in ("ts_s", "ts_ms", "tz_ms"):
        unit = t.unit
        return pa.array(values, pa.timestamp("us", tz=t.tz)).cast(
            pa.timestamp(unit, tz=t.tz), safe=False
        )
    return pa.array(values, t)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 40))
    cols: dict[str, pa.Array] = {"id": pa.array(range(n), pa.int64())}
    for name in TYPES:
        vals = draw(st.lists(st.one_of(st.none(), _values(name)), min_size=n, max_size=n))
        cols[name] = _column(name, vals)
    return pa.table(cols)


# ----------------------------------------------------------------- filters


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(name: str, value: object, draw: st.DrawFn) -> str:
    """``value`` (of column ``name``'s type) printed as one of the SQL forms a user writes."""
    t = TYPES[name]
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "false"]))
    if isinstance(value, float):
        if math.isnan(value):
            return draw(st.sampled_from(["'NaN'::DOUBLE", "CAST('nan' AS FLOAT)"]))
        if math.isinf(value):
            return "'Infinity'::DOUBLE" if value > 0 else "'-Infinity'::DOUBLE"
        if name == "f32":
            value = float(pa.scalar(value, pa.float32()).as_py())
        return draw(
            st.sampled_from([repr(value), f"CAST({value!r} AS FLOAT)", f"{value!r}::DOUBLE"])
        )
    if isinstance(value, int):
        return draw(
            st.sampled_from(
                [
                    str(value),
                    f"CAST({value} AS BIGINT)",
                    f"{value}.0",
                    f"{value} + 0.5",
                    f"CAST({value}.5 AS INTEGER)" if abs(value) < 2**31 - 1 else str(value),
                    _sql_string(str(value)),
                ]
            )
        )
    if isinstance(value, Decimal):
        return draw(
            st.sampled_from(
                [
                    str(value),
                    f"CAST({_sql_string(str(value))} AS DECIMAL(10,2))",
                    f"{float(value)!r}",
                ]
            )
        )
    if isinstance(value, datetime):
        text = value.replace(tzinfo=None).isoformat(sep=" ")
        if pa.types.is_timestamp(t) and t.tz is not None:
            # The same instant written in the wall time of other offsets.
            east = (value.replace(tzinfo=None) + timedelta(hours=5, minutes=30)).isoformat(sep=" ")
            west = (value.replace(tzinfo=None) - timedelta(hours=8)).isoformat(sep=" ")
            return draw(
                st.sampled_from(
                    [
                        _sql_string(text + "+00:00"),
                        _sql_string(east + "+05:30"),
                        f"TIMESTAMPTZ {_sql_string(west + '-08:00')}",
                        f"TIMESTAMPTZ {_sql_string(text + '+00:00')}",
                        _sql_string(text),
                        f"CAST({_sql_string(text)} AS DATE)",
                    ]
                )
            )
        return draw(
            st.sampled_from(
                [
                    _sql_string(text),
                    f"TIMESTAMP {_sql_string(text)}",
                    f"CAST({_sql_string(text)} AS DATE)",
                    _sql_string(text[:10]),
                ]
            )
        )
    if isinstance(value, date):
        text = value.isoformat()
        return draw(
            st.sampled_from(
                [
                    _sql_string(text),
                    f"DATE {_sql_string(text)}",
                    f"CAST({_sql_string(text + ' 12:00')} AS DATE)",
                    f"TIMESTAMP {_sql_string(text + ' 12:00')}",
                ]
            )
        )
    return _sql_string(str(value))


def _some_value(table: pa.Table, name: str, draw: st.DrawFn) -> object:
    stored = [v for v in table.column(name).to_pylist() if v is not None]
    if stored and draw(st.booleans()):
        v = draw(st.sampled_from(stored))
        if isinstance(v, datetime) and v.tzinfo is not None:
            v = v.astimezone(UTC)
        return v
    return draw(_values(name))


_OPS = ["=", "<>", "<", "<=", ">", ">=", "!="]


@st.composite
def atoms(draw: st.DrawFn, table: pa.Table) -> str:
    name = draw(st.sampled_from(list(TYPES)))
    col = f'"{name}"' if draw(st.booleans()) else name
    kind = draw(st.sampled_from(["cmp", "cmp", "cmp", "flip", "between", "in", "null", "nan"]))
    if kind == "null":
        return f"{col} IS {'NOT ' if draw(st.booleans()) else ''}NULL"
    if kind == "nan" and name in ("f32", "f64"):
        return f"{'NOT ' if draw(st.booleans()) else ''}isnan({col})"

    def lit() -> str:
        return _literal(name, _some_value(table, name, draw), draw)

    if kind == "between":
        return f"{col} {'NOT ' if draw(st.booleans()) else ''}BETWEEN {lit()} AND {lit()}"
    if kind == "in":
        items = ", ".join(lit() for _ in range(draw(st.integers(1, 3))))
        return f"{col} {'NOT ' if draw(st.booleans()) else ''}IN ({items})"
    op = draw(st.sampled_from(_OPS))
    return f"{lit()} {op} {col}" if kind == "flip" else f"{col} {op} {lit()}"


@st.composite
def filters(draw: st.DrawFn, table: pa.Table, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(atoms(table))
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return f"NOT ({draw(filters(table, depth - 1))})"
    a, b = draw(filters(table, depth - 1)), draw(filters(table, depth - 1))
    return f"({a}) {kind.upper()} ({b})"


# ----------------------------------------------------------------- the check


def _reference(table: pa.Table, where: str) -> list[int] | None:
    """Ids DuckDB selects over the rows in memory (None: DuckDB refuses the filter)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # lakever pins UTC for every query
    try:
        con.register("t", table)
        rows = con.sql(f"SELECT id FROM t WHERE {where}").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def _diagnose(ds: lv.Dataset, where: str) -> dict[str, object]:
    """What pruning kept and what the rows of every fragment give, for a failure message."""
    import dataclasses

    from lakever.planner import bind

    plan = ds.plan(filter=where)
    unpruned = dataclasses.replace(plan, tasks=ds.plan().tasks)
    bound = bind(ds._state, where)
    return {
        "kept": [t.path for t in plan.tasks],
        "all": [e.path for e in ds._state.entries],
        "unpruned to_arrow": _ids(unpruned.to_arrow()),
        "bound": None if bound is None else (bound.sql, bound.prune),
        "stats": [
            {
                ds._state.fields[k].name: v
                for k, v in e.stats.items()
                if bound and k in bound.columns
            }
            for e in ds._state.entries
        ],
    }


def _ids(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist())


def check_every_path(
    root: Path, table: pa.Table, where: str, rows_per_fragment: int, row_group_rows: int = 0
) -> None:
    """``row_group_rows``: rows per Parquet row group in the fragments written (0: the
    default, one row group per fragment here)."""
    if row_group_rows:
        with mock.patch.object(lakever.fragments, "ROW_GROUP_ROWS", row_group_rows):
            check_every_path(root, table, where, rows_per_fragment)
        return
    expected = _reference(table, where)
    lake = lv.connect(str(root))
    ds = lake.create_dataset("t", table, max_rows_per_fragment=rows_per_fragment)
    if expected is None:
        # DuckDB refuses the filter over the rows: every path refuses it with a named error.
        with pytest.raises(lv.LakeverError):
            ds.to_arrow(filter=where)
        with pytest.raises(lv.LakeverError):
            ds.delete(where=where)
        return
    got = {
        "to_arrow": _ids(ds.to_arrow(filter=where)),
        "to_batches": sorted(
            i for b in ds.to_batches(batch_size=7, filter=where) for i in b.column("id").to_pylist()
        ),
        "scan": sorted(ds.scan(filter=where).collect()["id"].to_list()),
        "Dataset.sql": sorted(
            r[0] for r in ds.sql(f"SELECT id FROM self WHERE {where}").fetchall()
        ),
        "Lake.sql": sorted(r[0] for r in lake.sql(f"SELECT id FROM t WHERE {where}").fetchall()),
        "to_arrow(id only)": _ids(ds.to_arrow(["id"], filter=where)),
    }
    for path, ids in got.items():
        if ids != expected:
            # Keep the case next to the lake (pytest keeps the last three runs' folders).
            import pyarrow.parquet as pq

            pq.write_table(table, str(root / "case.parquet"))
            (root / "case.txt").write_text(f"{where}\n{rows_per_fragment}\n")
        assert ids == expected, (path, where, str(root), _diagnose(ds, where))
    # DuckDB's read of a filtered plan and the Arrow reader's: same rows, order, values, types
    _assert_same(ds.to_arrow(filter=where), ds.plan(filter=where).to_arrow(), where)
    plan = ds.explain(where)
    assert plan.fragments_after_stats_pruning <= plan.fragments_total
    after = ds.delete(where=where)
    remaining = _ids(after.to_arrow(["id"]))
    assert remaining == sorted(set(range(table.num_rows)) - set(expected)), ("delete", where)
    # ... and with deletion vectors in the fragments
    odd = "id % 2 = 1"
    _assert_same(after.to_arrow(filter=odd), after.plan(filter=odd).to_arrow(), odd)


def _assert_same(got: pa.Table, want: pa.Table, where: str) -> None:
    """Same schema and the same values in the same order (NaN equal to NaN, -0.0 not 0.0)."""
    assert got.schema == want.schema, (where, got.schema, want.schema)
    for name in want.column_names:
        a = [repr(v) for v in got.column(name).to_pylist()]
        b = [repr(v) for v in want.column(name).to_pylist()]
        assert a == b, (where, name)


@st.composite
def cases(draw: st.DrawFn) -> tuple[pa.Table, str, int, int]:
    table = draw(tables())
    where = draw(filters(table))
    return table, where, draw(st.integers(1, 6)), draw(st.sampled_from([0, 0, 1, 2, 3]))


@settings(deadline=None, suppress_health_check=list(HealthCheck))  # examples: the profile
@given(case=cases())
def test_every_read_path_agrees_with_duckdb_over_the_rows(tmp_path_factory, case):
    table, where, rows, groups = case
    check_every_path(tmp_path_factory.mktemp("lake"), table, where, rows, groups)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(
    max_examples=150, deadline=None, derandomize=False, suppress_health_check=list(HealthCheck)
)
@given(case=cases())
def test_every_read_path_agrees_random_sweep(tmp_path_factory, case):
    table, where, rows, groups = case
    check_every_path(tmp_path_factory.mktemp("lake"), table, where, rows, groups)


# ----------------------------------------------------------------- the reported cases


@pytest.mark.parametrize(
    ("rows", "where", "expected"),
    [
        ({"x": [0.1, 0.5]}, "x = 0.1", [0]),
        ({"x": pa.array([0.1, 0.5], pa.float32())}, "x = 0.1", [0]),
        ({"x": [3, 3, 1, 2]}, "x <= CAST(2.5 AS INTEGER)", [0, 1, 2, 3]),
        ({"x": [0.5, math.nan, 250.0]}, "isnan(x)", [1]),
        ({"x": [0.5, math.nan, 250.0]}, "x > 100", [1, 2]),
        ({"x": [3, 1]}, "7 >= x", [0, 1]),
        (
            {"x": pa.array([datetime(2026, 1, 1, 12)], pa.timestamp("us"))},
            "x < CAST('2026-01-01 12:00' AS DATE)",
            [],
        ),
        (
            {"x": pa.array([datetime(2026, 1, 1, 12)], pa.timestamp("us"))},
            "x >= CAST('2026-01-01 12:00' AS DATE)",
            [0],
        ),
    ],
)
def test_reported_wrong_answers(tmp_path, rows, where, expected):
    table = pa.table({"id": pa.array(range(len(next(iter(rows.values())))), pa.int64()), **rows})
    assert _reference(table, where) == expected
    for n in (1, 2):
        check_every_path(tmp_path / uuid.uuid4().hex, table, where, n)
