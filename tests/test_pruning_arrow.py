"""Pruning conditions computed by Arrow (`may_match_arrow`) agree with DuckDB's.

Conditions over integer columns and integer literals are evaluated without a DuckDB
query. The property test draws statistics relations (bounds, null and NaN counts,
any of them unknown) and condition trees, and compares Arrow's answer with DuckDB's
evaluation of the same `may_match_sql` text, row by row.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever import pruning
from lakever.expr import Always, Compare, Conj, NullCheck, PruneNode
from lakever.pruning import may_match_arrow, may_match_sql, run_prune
from lakever.sql import cursor

INTEGERS = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32()]
FIELDS = (1, 2)
FLOAT = 3
OPS = ["=", "<>", "<", "<=", ">", ">="]


def _range(t: pa.DataType) -> tuple[int, int]:
    bits = t.bit_width
    if pa.types.is_signed_integer(t):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


@st.composite
def _relations(draw: st.DrawFn) -> tuple[pa.Table, dict[int, pa.DataType]]:
    """Fragments' statistics: mostly ordered bounds and counts that leave values, any
    of them unknown (NULL) now and then."""
    types = {f: draw(st.sampled_from(INTEGERS)) for f in FIELDS}
    rows = draw(st.integers(1, 12))
    n = draw(st.lists(st.integers(0, 6), min_size=rows, max_size=rows))
    columns: dict[str, pa.Array] = {"n": pa.array(n, pa.int64())}
    for f, t in types.items():
        low, high = _range(t)
        value = st.integers(low, high) | st.integers(max(low, -3), min(high, 3))
        bounds = []
        for _ in range(rows):
            pair = sorted(draw(st.lists(value, min_size=2, max_size=2)))
            if draw(st.integers(0, 7)) == 0:  # now and then out of order
                pair.reverse()
            bounds.append([None if draw(st.integers(0, 5)) == 0 else b for b in pair])
        columns[f"lo_{f}"] = pa.array([b[0] for b in bounds], t)
        columns[f"hi_{f}"] = pa.array([b[1] for b in bounds], t)
        for prefix in ("nl", "nn"):
            counts = st.none() | st.integers(0, 4)
            columns[f"{prefix}_{f}"] = pa.array(
                draw(st.lists(counts, min_size=rows, max_size=rows)), pa.int64()
            )
    # A float column, for null and NaN checks (its bounds are never compared by Arrow).
    types[FLOAT] = pa.float64()
    columns[f"lo_{FLOAT}"] = columns[f"hi_{FLOAT}"] = pa.nulls(rows, pa.float64())
    for prefix in ("nl", "nn"):
        drawn = draw(st.lists(st.none() | st.integers(0, 4), min_size=rows, max_size=rows))
        columns[f"{prefix}_{FLOAT}"] = pa.array(drawn, pa.int64())
    return pa.table(columns), types


def _trees(literals: dict[int, st.SearchStrategy[int]]) -> st.SearchStrategy[PruneNode]:
    compare = st.sampled_from(FIELDS).flatmap(
        lambda f: st.builds(
            Compare,
            st.just(f),
            st.sampled_from(OPS),
            literals[f].map(str),
        )
    )
    check = st.builds(
        NullCheck,
        st.sampled_from([*FIELDS, FLOAT]),
        st.sampled_from(["null", "nan"]),
        st.booleans(),
    )
    leaves = st.one_of(compare, compare, check, st.just(Always()))
    return st.recursive(
        leaves,
        lambda kids: st.builds(
            Conj, st.booleans(), st.lists(kids, min_size=1, max_size=3).map(tuple)
        ),
        max_leaves=5,
    )


@st.composite
def _cases(draw: st.DrawFn) -> tuple[pa.Table, dict[int, pa.DataType], PruneNode]:
    stats, types = draw(_relations())
    anywhere = st.integers(-(10**18) + 1, 10**18 - 1) | st.integers(-300, 300)
    literals = {}
    for f in FIELDS:
        # Mostly at and beside the field's bounds (where < and <= differ), or anywhere.
        near = sorted(
            {v + d for p in ("lo", "hi") for v in stats.column(f"{p}_{f}").to_pylist()
             if v is not None for d in (-1, 0, 1) if abs(v + d) < 10**18}
        )  # fmt: skip
        literals[f] = st.sampled_from(near) | anywhere if near else anywhere
    return stats, types, draw(_trees(literals))


def _duckdb(node: PruneNode, types: dict[int, pa.DataType], stats: pa.Table) -> list[bool]:
    con = cursor()
    try:
        return run_prune(con, stats, may_match_sql(node, types)).to_pylist()
    finally:
        con.close()


@settings(max_examples=400)
@given(_cases())
def test_arrow_and_duckdb_agree_on_every_fragment(case):
    stats, types, node = case
    arrow = may_match_arrow(node, types, stats)
    assert arrow is not None  # integer columns and integer literals only
    assert arrow.null_count == 0
    assert arrow.to_pylist() == _duckdb(node, types, stats)


@pytest.mark.parametrize("t", INTEGERS)
@pytest.mark.parametrize("op", OPS)
def test_every_operator_at_and_beside_the_bounds(t, op):
    """Each comparison where it turns (a literal equal to a bound, or one off), on
    fragments with known, unknown, equal and out-of-order bounds and with no values."""
    bounds = [(5, 9), (5, 5), (None, 9), (5, None), (None, None), (9, 5), (5, 9), (5, 9)]
    stats = pa.table(
        {
            "n": pa.array([3, 3, 3, 3, 3, 3, 3, 0], pa.int64()),
            "lo_1": pa.array([b[0] for b in bounds], t),
            "hi_1": pa.array([b[1] for b in bounds], t),
            "nl_1": pa.array([0, 1, None, 0, 0, 0, 3, 0], pa.int64()),
            "nn_1": pa.nulls(len(bounds), pa.int64()),
        }
    )
    types = {1: t}
    for v in range(3, 12):
        node = Compare(1, op, str(v))
        arrow = may_match_arrow(node, types, stats)
        assert arrow is not None
        assert arrow.to_pylist() == _duckdb(node, types, stats), (op, v)


@pytest.mark.parametrize(
    ("t", "value"),
    [
        (pa.uint64(), "5"),  # an int64 cannot hold every value
        (pa.float64(), "5"),
        (pa.string(), "'5'"),
        (pa.int64(), "5.5"),
        (pa.int64(), "1234567890123456789"),  # 19 digits
        (pa.int64(), "CAST(5 AS BIGINT)"),
        (pa.date32(), "DATE '2024-01-01'"),
    ],
)
def test_other_comparisons_are_left_to_duckdb(t, value):
    stats = pa.table(
        {"n": pa.array([3], pa.int64()), "lo_1": pa.nulls(1, t), "hi_1": pa.nulls(1, t),
         "nl_1": pa.array([0], pa.int64()), "nn_1": pa.nulls(1, pa.int64())}
    )  # fmt: skip
    assert may_match_arrow(Compare(1, "=", value), {1: t}, stats) is None
    # One such comparison anywhere in the tree: the whole condition goes to DuckDB.
    tree = Conj(False, (Compare(1, "=", value), NullCheck(1, "null", False)))
    assert may_match_arrow(tree, {1: t}, stats) is None


def test_counts_that_overflow_are_left_to_duckdb():
    big = (1 << 63) - 1
    stats = pa.table(
        {"n": pa.array([-big], pa.int64()), "lo_1": pa.array([1], pa.int64()),
         "hi_1": pa.array([2], pa.int64()), "nl_1": pa.array([big], pa.int64()),
         "nn_1": pa.nulls(1, pa.int64())}
    )  # fmt: skip
    assert may_match_arrow(Compare(1, "=", "1"), {1: pa.int64()}, stats) is None


def test_a_small_integer_delete_runs_no_pruning_query(monkeypatch):
    """The point of the Arrow path: a delete by id range on a few fragments asks DuckDB
    only for the matching positions; a string filter still prunes in DuckDB."""
    calls: list[str] = []
    real = pruning.run_prune
    monkeypatch.setattr(pruning, "run_prune", lambda con, s, c: calls.append(c) or real(con, s, c))
    ds = lv.create_dataset(
        f"memory://pruning-arrow/{uuid.uuid4().hex}",
        pa.table({"id": pa.array(range(100), pa.int64()), "s": [str(i) for i in range(100)]}),
    )
    ds = ds.append(pa.table({"id": pa.array(range(100, 200), pa.int64()), "s": ["x"] * 100}))
    after = ds.delete(where="id >= 10 AND id < 20")
    assert calls == []
    assert after.explain("id >= 150").fragments_after_stats_pruning == 1
    assert calls == []
    assert after.to_arrow(filter="id < 30").column("id").to_pylist() == [*range(10), *range(20, 30)]
    after.explain("s = 'x'")
    assert len(calls) == 1
