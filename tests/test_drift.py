"""Drift between snapshots (lakever.drift, lakever.ml.drift.profile, `lakever drift`).

Every statistic is checked against an independent computation: numpy over the
snapshot's rows read back with `to_arrow()` (live rows, unpruned), counted on the
edges the report gives (searchsorted), with PSI, KS and JS written out by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from lakever.ml.drift import EPSILON, DriftReport, drift, profile

# ----------------------------------------------------------------------------- reference


def numeric_values(column: pa.ChunkedArray) -> np.ndarray:
    """The values a numeric column is binned as: doubles, no null, no NaN, ±inf kept;
    dates and timestamps as seconds since the epoch."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if pa.types.is_date(t):
        days = arr.cast(pa.date32()).cast(pa.int32()).drop_null().to_numpy(zero_copy_only=False)
        return days.astype(np.float64) * 86400
    elif pa.types.is_timestamp(t):
        per_second = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        arr = arr.cast(pa.int64())
    else:
        per_second = 1.0
        if pa.types.is_decimal(t) or pa.types.is_integer(t):
            arr = arr.cast(pa.float64(), safe=False)
    values = (
        np.asarray(arr.drop_null().to_numpy(zero_copy_only=False), dtype=np.float64) / per_second
    )
    return values[~np.isnan(values)]


def counts_on(values: np.ndarray, edges: list[float]) -> list[int]:
    """Bin ``i``: edges[i] <= v < edges[i+1]; the outer bins open-ended."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    idx = np.searchsorted(inner, values, side="right")
    return np.bincount(idx, minlength=len(edges) - 1).tolist()


def ref_psi(a: list[int], b: list[int]) -> float:
    p = np.maximum(np.asarray(a) / sum(a), EPSILON)
    q = np.maximum(np.asarray(b) / sum(b), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ref_ks(a: list[int], b: list[int]) -> float:
    return float(np.max(np.abs(np.cumsum(a) / sum(a) - np.cumsum(b) / sum(b))))


def as_text(v: object) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def ref_js(a: pa.ChunkedArray, b: pa.ChunkedArray) -> float | None:
    ca = Counter(as_text(v) for v in a.to_pylist() if v is not None)
    cb = Counter(as_text(v) for v in b.to_pylist() if v is not None)
    if not ca or not cb:
        return None
    keys = sorted(set(ca) | set(cb))
    p = np.array([ca[k] for k in keys], dtype=float) / sum(ca.values())
    q = np.array([cb[k] for k in keys], dtype=float) / sum(cb.values())
    m = (p + q) / 2
    kl = lambda x: float(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0])))  # noqa: E731
    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def new_path(tmp_path) -> str:
    return str(tmp_path / f"ds-{uuid.uuid4().hex[:8]}")


def check_against_reference(report: DriftReport, ta: pa.Table, tb: pa.Table) -> None:
    """Every number of ``report`` equals numpy's over the two snapshots' rows."""
    assert (report.rows_a, report.rows_b) == (ta.num_rows, tb.num_rows)
    t = report.thresholds
    for c in report.columns:
        assert c.a is not None and c.b is not None
        both = ta.num_rows and tb.num_rows
        assert c.null_rate_delta == (c.b.null_rate - c.a.null_rate if both else None)
        over = [(c.psi, t.psi), (c.ks, t.ks), (c.js, t.js), (c.null_rate_delta, t.null_rate)]
        assert c.flagged == any(v is not None and abs(v) > lim for v, lim in over)
        for prof, table in ((c.a, ta), (c.b, tb)):
            col = table.column(prof.name)
            assert prof.rows == table.num_rows
            assert prof.nulls == col.null_count
            if prof.kind == "numeric" and pa.types.is_floating(col.type):
                nans = int(pc.sum(pc.is_nan(col)).as_py() or 0)
                assert prof.nans == nans
            missing = prof.nulls + prof.nans
            assert prof.null_rate == pytest.approx(
                missing / table.num_rows if table.num_rows else 0
            )
        if c.kind == "numeric":
            va, vb = numeric_values(ta.column(c.a.name)), numeric_values(tb.column(c.b.name))
            if len(va) == 0:
                assert c.a.edges is None and c.psi is None and c.ks is None
                continue
            edges = c.a.edges
            assert edges is not None and edges == c.b.edges
            assert edges[0] == -math.inf and edges[-1] == math.inf
            finite = va[np.isfinite(va)]
            if len(finite):
                # cut points: a's minimum, quantiles that are a's values, just above its maximum
                cuts = edges[1:-1]
                above = math.nextafter(finite.max(), math.inf)
                assert cuts[0] == finite.min()
                assert cuts[-1] == (above if math.isfinite(above) else finite.max())
                assert set(cuts[:-1]) <= set(finite.tolist())
                assert c.a.min == finite.min() and c.a.max == finite.max()
                exact = len(set(va.tolist()))  # HyperLogLog: close, not always exact
                assert abs(c.a.distinct - exact) <= max(2, exact // 10)
                if np.abs(finite).max() < 1e150:  # beyond, sums of squares overflow
                    assert c.a.mean == pytest.approx(finite.mean(), rel=1e-9, abs=1e-9)
                    assert c.a.std == pytest.approx(finite.std(), rel=1e-6, abs=1e-6)
            assert c.a.counts == counts_on(va, edges)
            assert c.b.counts == counts_on(vb, edges)
            if len(vb):
                assert c.psi == pytest.approx(ref_psi(c.a.counts, c.b.counts), abs=1e-12)
                assert c.ks == pytest.approx(ref_ks(c.a.counts, c.b.counts), abs=1e-12)
            else:
                assert c.psi is None and c.ks is None
        elif c.kind == "categorical":
            col_a, col_b = ta.column(c.a.name), tb.column(c.b.name)
            expected = ref_js(col_a, col_b)
            assert (c.js is None) == (expected is None)
            if expected is not None:
                assert c.js == pytest.approx(expected, abs=1e-9)
            sa = {as_text(v) for v in col_a.to_pylist() if v is not None}
            sb = {as_text(v) for v in col_b.to_pylist() if v is not None}
            assert c.new_category_count == len(sb - sa)
            assert c.vanished_category_count == len(sa - sb)
            assert set(c.new_categories) <= sb - sa and set(c.vanished_categories) <= sa - sb
            assert c.a.distinct == len(sa) and c.b.distinct == len(sb)


# ----------------------------------------------------------------------------- random data

floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, -2.5, 1e300]),
)
ints = st.one_of(st.none(), st.integers(-5, 5), st.integers(-(2**40), 2**40))
moments = st.integers(-(2**52), 2**52)  # microseconds since the epoch
words = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "é", "", "a'b"]))


@st.composite
def tables(draw, n_max: int = 40) -> pa.Table:
    n = draw(st.integers(0, n_max))
    return pa.table(
        {
            "k": pa.array(range(n), pa.int64()),
            "x": pa.array(draw(st.lists(floats, min_size=n, max_size=n)), pa.float64()),
            "i": pa.array(draw(st.lists(ints, min_size=n, max_size=n)), pa.int64()),
            "s": pa.array(draw(st.lists(words, min_size=n, max_size=n)), pa.string()),
            "ts": pa.array(
                draw(st.lists(st.one_of(st.none(), moments), min_size=n, max_size=n)),
                pa.timestamp("us", "UTC"),
            ),
            "flag": pa.array(
                draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)),
                pa.bool_(),
            ),
        }
    )


@given(ta=tables(), tb=tables(), bins=st.integers(1, 12), codes=st.booleans())
def test_statistics_match_numpy_on_random_data(tmp_path, ta, tb, bins, codes):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, ta)
    ds.overwrite(tb)
    report = lv.drift(path, 0, 1, bins=bins, categorical=["i"] if codes else None)
    assert report.column("i").kind == ("categorical" if codes else "numeric")
    check_against_reference(report, ds.to_arrow(), lv.open_dataset(path).to_arrow())
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["rows_b"] == tb.num_rows


@given(t=tables(), where=st.sampled_from(["k % 3 = 0", "k < 5", "x > 0", "s = 'a'"]))
def test_deleted_rows_are_not_counted(tmp_path, t, where):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, t)
    after = ds.delete(where)
    report = lv.drift(path, 0, after.version)
    check_against_reference(report, ds.to_arrow(), after.to_arrow())
    assert report.rows_b == after.to_arrow().num_rows


@given(t=tables(), bins=st.integers(1, 12))
def test_identical_snapshots_have_no_drift(tmp_path, t, bins):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, t)
    ds.tag("v1")
    report = lv.drift(path, "v1", 0, bins=bins, thresholds=lv.DriftThresholds(psi=0, ks=0, js=0))
    assert not report.flagged and report.schema_changes == []
    for c in report.columns:
        assert c.change == "same" and c.reasons == []
        assert c.psi in (0.0, None) and c.ks in (0.0, None) and c.js in (0.0, None)
        assert c.null_rate_delta in (0.0, None)


# ----------------------------------------------------------------------------- behaviour


def test_a_shifted_distribution_is_flagged_and_a_stable_one_is_not(tmp_path):
    rng = np.random.default_rng(7)
    n = 5000
    base = pa.table({"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n)})
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, base)
    ds.overwrite(pa.table({"x": rng.normal(0.5, 1, n), "y": rng.normal(0, 1, n)}))
    report = lv.drift(path, 0, 1)
    x, y = report.column("x"), report.column("y")
    assert x.flagged and x.psi > 0.2 and x.ks > 0.1
    assert any(r.startswith("psi") for r in x.reasons)
    assert not y.flagged and y.psi < 0.05 and y.ks < 0.05
    assert report.flagged and report.flagged_columns == ["x"]


def test_values_outside_the_reference_range_land_in_the_outer_bins(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"x": [float(v) for v in range(100)]}))
    ds.overwrite(pa.table({"x": [-1000.0] * 10 + [5.0] * 80 + [1e9] * 10}))
    c = lv.drift(path, 0, 1).column("x")
    assert c.a.counts[0] == 0 and c.a.counts[-1] == 0
    assert c.b.counts[0] == 10 and c.b.counts[-1] == 10
    # A constant reference still sees shifts either way.
    p2 = new_path(tmp_path)
    ds = lv.create_dataset(p2, pa.table({"x": [3] * 50}))
    ds.overwrite(pa.table({"x": [2] * 25 + [4] * 25}))
    c = lv.drift(p2, 0, 1).column("x")
    assert c.a.edges == [-math.inf, 3.0, math.nextafter(3.0, math.inf), math.inf]
    assert c.b.counts == [25, 0, 25] and c.ks == 0.5 and c.flagged


def test_new_and_vanished_categories_are_listed(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"s": ["a"] * 5 + ["b"] * 3 + ["old"] * 2}))
    ds.overwrite(pa.table({"s": ["a"] * 5 + ["b"] * 3 + ["new"] * 4 + ["newer"] * 1}))
    c = lv.drift(path, 0, 1).column("s")
    assert c.kind == "categorical"
    assert c.new_categories == ["new", "newer"] and c.vanished_categories == ["old"]
    assert (c.new_category_count, c.vanished_category_count) == (2, 1)
    assert c.flagged and c.js > 0.1
    assert c.a.top == [("a", 5), ("b", 3), ("old", 2)]


def test_integer_codes_can_be_compared_as_categories(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"code": [1, 2, 3, 1, 2, 3], "f": [0.5] * 6}))
    ds.overwrite(pa.table({"code": [1, 2, 4, 1, 2, 4], "f": [0.5] * 6}))
    numeric = lv.drift(path, 0, 1).column("code")
    assert numeric.kind == "numeric" and numeric.js is None
    c = lv.drift(path, 0, 1, categorical=["code"]).column("code")
    assert c.kind == "categorical" and c.new_categories == ["4"] and c.vanished_categories == ["3"]
    with pytest.raises(lv.InvalidArgument, match="'f' has type double; only integer columns"):
        lv.drift(path, 0, 1, categorical=["f"])
    with pytest.raises(lv.InvalidArgument, match=r"categorical \['nope'\] are in neither"):
        lv.drift(path, 0, 1, categorical=["code", "nope"])


def test_schema_changes_are_matched_by_field_id(tmp_path):
    path = new_path(tmp_path)
    t = pa.table({"a": pa.array([1, 2, 3], pa.int32()), "b": [1.0, 2.0, 3.0], "c": ["x", "y", "z"]})
    ds = lv.create_dataset(path, t)
    ids = ds.field_ids
    ds = ds.evolve(drop=["c"], rename={"b": "b2"}, widen={"a": pa.int64()}, add={"d": pa.float64()})
    report = lv.drift(path, 0, ds.version)
    by = {c.name: c for c in report.columns}
    assert by["a"].change == "type_changed" and by["a"].field_id == ids["a"]
    assert by["a"].psi == 0.0  # same values, read as int64 now
    assert by["b2"].change == "renamed" and by["b2"].field_id == ids["b"]
    assert by["b2"].a.name == "b" and by["b2"].psi == 0.0
    assert by["c"].change == "removed" and by["c"].b is None and by["c"].field_id == ids["c"]
    assert by["d"].change == "added" and by["d"].a is None
    assert all(by[n].flagged for n in ("a", "b2", "c", "d"))
    assert any("rename 'b' -> 'b2'" in line for line in report.schema_changes)
    quiet = lv.drift(path, 0, ds.version, thresholds=lv.DriftThresholds(schema=False))
    assert not quiet.flagged
    only = lv.drift(path, 0, ds.version, columns=["b"])  # an old name selects the column
    assert [c.name for c in only.columns] == ["b2"]


def test_nulls_all_null_columns_and_empty_snapshots(tmp_path):
    path = new_path(tmp_path)
    empty = pa.table({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    ds = lv.create_dataset(path, empty)
    ds = ds.append(pa.table({"x": [None, None, 1.0], "s": pa.array([None] * 3, pa.string())}))
    ds = ds.append(pa.table({"x": [2.0, 3.0, 4.0], "s": ["a", "b", "c"]}))
    r = lv.drift(path, 0, 1)
    assert (r.rows_a, r.rows_b) == (0, 3)
    x = r.column("x")
    assert x.a.null_rate == 0.0 and x.a.edges is None and x.psi is None and x.ks is None
    assert x.null_rate_delta is None and not r.flagged
    assert lv.drift(path, 0, 1, thresholds=lv.DriftThresholds(rows=10.0)).reasons
    r = lv.drift(path, 1, 2)
    s = r.column("s")
    assert s.a.null_rate == 1.0 and s.a.distinct == 0 and s.a.top == []
    assert s.js is None and s.null_rate_delta == pytest.approx(-0.5) and s.flagged
    x = r.column("x")
    assert x.a.nulls == 2 and x.a.edges is not None and x.b.null_rate == pytest.approx(2 / 6)


def test_nan_is_missing_and_infinity_is_binned(tmp_path):
    path = new_path(tmp_path)
    lv.create_dataset(path, pa.table({"x": [1.0, 2.0, math.nan, math.inf, -math.inf, None]}))
    p = profile(lv.open_dataset(path))["x"]
    assert (p.nulls, p.nans, p.null_rate) == (1, 1, pytest.approx(2 / 6))
    assert (p.min, p.max, p.mean) == (1.0, 2.0, 1.5)
    assert p.counts[0] == 1 and p.counts[-1] == 1 and sum(p.counts) == 4
    assert p.to_dict()["edges"][0] == "-inf" and p.to_dict()["edges"][-1] == "inf"


def test_dates_and_timestamps_are_seconds_since_the_epoch(tmp_path):
    path = new_path(tmp_path)
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]
    times = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(30)]
    ds = lv.create_dataset(
        path, pa.table({"d": days, "t": pa.array(times, pa.timestamp("us", "UTC"))})
    )
    ds.overwrite(
        pa.table(
            {
                "d": [d + timedelta(days=20) for d in days],
                "t": pa.array(times, pa.timestamp("us", "UTC")),
            }
        )
    )
    report = lv.drift(path, 0, 1)
    d, t = report.column("d"), report.column("t")
    assert d.kind == t.kind == "numeric"
    assert d.a.min == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert d.flagged and not t.flagged
    check_against_reference(report, ds.to_arrow(), lv.open_dataset(path).to_arrow())


def test_profile_on_given_edges(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"x": [0.5, 1.5, 2.5, 9.0], "s": ["a", "a", "b", None]}))
    p = profile(ds, columns=["x"], edges={"x": [0, 1, 2]})
    assert list(p) == ["x"] and p["x"].edges == [0.0, 1.0, 2.0] and p["x"].counts == [1, 3]
    for bad in ([1, 0], [0], [0, math.nan, 2], "ab"):
        with pytest.raises(lv.InvalidArgument, match="edges for column 'x'"):
            profile(ds, edges={"x": bad})
    with pytest.raises(lv.InvalidArgument, match="not in the snapshot's columns"):
        profile(ds, columns=["nope"])
    with pytest.raises(lv.InvalidArgument, match="bins must be an int >= 1"):
        profile(ds, bins=0)


def test_arguments_are_checked(tmp_path):
    p1, p2 = new_path(tmp_path), new_path(tmp_path)
    a = lv.create_dataset(p1, pa.table({"x": [1.0]}))
    b = lv.create_dataset(p2, pa.table({"x": [1.0]}))
    with pytest.raises(lv.InvalidArgument, match="one dataset"):
        drift(a, b)
    with pytest.raises(lv.InvalidArgument, match="neither snapshot"):
        lv.drift(p1, 0, 0, columns=["y"])
    with pytest.raises(lv.InvalidArgument, match="psi must be a number >= 0"):
        lv.DriftThresholds(psi=-1)
    with pytest.raises(lv.VersionNotFound):
        lv.drift(p1, 0, 5)


def test_pins_tags_and_views_are_accepted(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"x": [1.0, 2.0]}))
    ds2 = ds.append(pa.table({"x": [3.0]}))
    ds2.tag("t")
    r = lv.drift(path, ds.pin(), "t")
    assert (r.a, r.b, r.rows_a, r.rows_b) == (ds.pin(), ds2.pin(), 2, 3)
    assert lv.drift(path, ds, ds2).to_dict() == r.to_dict()


# ----------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_exit_codes_and_json(tmp_path):
    path = new_path(tmp_path)
    ds = lv.create_dataset(path, pa.table({"x": [float(i) for i in range(100)], "s": ["a"] * 100}))
    ds.overwrite(pa.table({"x": [float(i) + 50 for i in range(100)], "s": ["a"] * 100}))
    same = runner.invoke(app, ["drift", path, "0", "0", "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.output)["flagged"] is False
    shifted = runner.invoke(app, ["drift", path, "0", "1", "--json"])
    assert shifted.exit_code == 3  # drifted: not an error's 1
    body = json.loads(shifted.output)
    assert body["flagged"] is True and body["flagged_columns"] == ["x"]
    assert body["thresholds"]["psi"] == 0.2
    loose = runner.invoke(app, ["drift", path, "0", "1", "--psi", "100", "--ks", "1"])
    assert loose.exit_code == 0 and "no drift" in loose.output
    human = runner.invoke(app, ["drift", path, "0", "1"])
    assert human.exit_code == 3 and "drift: 1 column(s) flagged: x" in human.output
    usage = runner.invoke(app, ["drift", path, "0", "1", "--bins", "0"])
    assert usage.exit_code == 2


def test_cli_error_is_one_line_and_exit_1(tmp_path):
    path = new_path(tmp_path)
    lv.create_dataset(path, pa.table({"x": [1.0]}))
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "drift", path, "0", "0", "-c", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: --column ['nope'] are in neither snapshot")


def test_odd_column_names_and_memory_datasets(tmp_path):
    uri = f"memory://drift-{uuid.uuid4().hex[:8]}"
    odd = "a \"b' c"
    ds = lv.create_dataset(uri, pa.table({odd: [1.0, 2.0, 3.0], "s t": ["x", "y", None]}))
    ds2 = ds.overwrite(pa.table({odd: [1.0, 2.0, 9.0], "s t": ["x", "z", "z"]}))
    report = lv.drift(uri, 0, 1)
    check_against_reference(report, ds.to_arrow(), ds2.to_arrow())
    assert report.column("s t").new_categories == ["z"]


def test_decimals_nanoseconds_and_other_types(tmp_path):
    path = new_path(tmp_path)

    def table(shift: int) -> pa.Table:
        n = 40
        return pa.table(
            {
                "dec": pa.array([Decimal(i + shift) / 4 for i in range(n)], pa.decimal128(12, 2)),
                "tns": pa.array([i * 7 + shift for i in range(n)], pa.timestamp("ns")),
                "u64": pa.array([2**63 + i * 2**20 for i in range(n)], pa.uint64()),
                "bin": pa.array([bytes([i % 3]) if i % 4 else None for i in range(n)]),
                "lst": pa.array([[i] for i in range(n)], pa.list_(pa.int64())),
            }
        )

    ds = lv.create_dataset(path, table(0))
    ds2 = ds.overwrite(table(20))
    report = lv.drift(path, 0, 1)
    assert [c.kind for c in report.columns] == ["numeric"] * 3 + ["other"] * 2
    check_against_reference(report, ds.to_arrow(), ds2.to_arrow())
    assert report.column("tns").a.max == pytest.approx(39 * 7 / 1e9)  # not cut to microseconds
    assert report.column("bin").a.null_rate == 0.25 and report.column("bin").psi is None
    assert report.flagged_columns == ["dec", "tns"]


def test_a_query_duckdb_refuses_is_not_reported_as_damage(tmp_path):
    """Damaged files are caught before DuckDB reads them; any other DuckDB error while
    profiling is lakever's, and must not send the user to look for damaged files."""
    from lakever.ml._profile import session

    ds = lv.create_dataset(str(tmp_path / "ds"), pa.table({"x": [1, 2, 3]}))
    with pytest.raises(lv.LakeverError) as info, session(ds) as (con, names):
        con.sql(f"SELECT no_such_column FROM {names[0]}").fetchall()
    assert not isinstance(info.value, lv.StorageError)
    assert "verify" not in str(info.value) and "no_such_column" in str(info.value)
