"""The filter language: what is refused, how columns bind, and the data-skipping tree.

What every read path returns is checked differentially (test_filter_differential.py) and
how exactly statistics prune (test_pruning.py); these tests pin down the tree a filter
binds to, so a filter that could be pruned never silently stops being pruned.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.expr import (
    Always,
    Compare,
    Conj,
    NullCheck,
    bind_expression,
    bind_filter,
    parse_expression,
)
from lakever.pruning import prune_columns
from lakever.schema import assign_field_ids

SCHEMA, _ = assign_field_ids(
    pa.schema(
        [
            ("i", pa.int64()),
            ("f", pa.float64()),
            ("s", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("st", pa.struct([("x", pa.int32())])),
            ("Mixed", pa.int8()),
        ]
    )
)
I, F, S, TS = 1, 2, 3, 4  # noqa: E741 - field ids named like their columns


def tree(text: str):
    return bind_filter(text, SCHEMA).prune


def C(fid: int, op: str, value: str) -> Compare:
    return Compare(fid, op, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i = 5", C(I, "=", "5")),
        ("i <> 5", C(I, "<>", "5")),
        ("i != 5", C(I, "<>", "5")),
        ("i < 5", C(I, "<", "5")),
        ("i <= 5", C(I, "<=", "5")),
        ("i > 5", C(I, ">", "5")),
        ("i >= 5", C(I, ">=", "5")),
        # literal first: the comparison is flipped, never dropped
        ("7 >= i", C(I, "<=", "7")),
        ("7 > i", C(I, "<", "7")),
        ("7 <= i", C(I, ">=", "7")),
        ("7 < i", C(I, ">", "7")),
        ("7 = i", C(I, "=", "7")),
        ("7 <> i", C(I, "<>", "7")),
        ("(i) > (5)", C(I, ">", "(5)")),
        ('"i" > 1 + 1', C(I, ">", "1 + 1")),
        # negation is pushed down to the comparison
        ("NOT i < 5", C(I, ">=", "5")),
        ("NOT i <= 5", C(I, ">", "5")),
        ("NOT i > 5", C(I, "<=", "5")),
        ("NOT i >= 5", C(I, "<", "5")),
        ("NOT i = 5", C(I, "<>", "5")),
        ("NOT i <> 5", C(I, "=", "5")),
        ("NOT NOT i = 5", C(I, "=", "5")),
        ("NOT (7 > i)", C(I, ">=", "7")),
        ("i BETWEEN 1 AND 3", Conj(True, (C(I, ">=", "1"), C(I, "<=", "3")))),
        ("i NOT BETWEEN 1 AND 3", Conj(False, (C(I, "<", "1"), C(I, ">", "3")))),
        ("NOT (i BETWEEN 1 AND 3)", Conj(False, (C(I, "<", "1"), C(I, ">", "3")))),
        ("i IN (1, 2)", Conj(False, (C(I, "=", "1"), C(I, "=", "2")))),
        ("i IN (4)", C(I, "=", "4")),
        ("i NOT IN (1, 2)", Conj(True, (C(I, "<>", "1"), C(I, "<>", "2")))),
        ("i IS NULL", NullCheck(I, "null", False)),
        ("i IS NOT NULL", NullCheck(I, "null", True)),
        ("NOT (i IS NULL)", NullCheck(I, "null", True)),
        ("isnan(f)", NullCheck(F, "nan", False)),
        ("NOT isnan(f)", NullCheck(F, "nan", True)),
        ("i > 1 AND s = 'a'", Conj(True, (C(I, ">", "1"), C(S, "=", "'a'")))),
        ("i > 1 OR s = 'a'", Conj(False, (C(I, ">", "1"), C(S, "=", "'a'")))),
        # De Morgan
        ("NOT (i > 1 AND s = 'a')", Conj(False, (C(I, "<=", "1"), C(S, "<>", "'a'")))),
        ("NOT (i > 1 OR s = 'a')", Conj(True, (C(I, "<=", "1"), C(S, "<>", "'a'")))),
        # nested conjunctions of one kind are flattened
        (
            "i > 1 AND (i < 9 AND s = 'a')",
            Conj(True, (C(I, ">", "1"), C(I, "<", "9"), C(S, "=", "'a'"))),
        ),
        (
            "(i > 1 OR i < 0) OR s = 'a'",
            Conj(False, (C(I, ">", "1"), C(I, "<", "0"), C(S, "=", "'a'"))),
        ),
        # what cannot be pruned: an AND keeps the rest, an OR keeps nothing
        ("i > 1 AND abs(i) = 3", C(I, ">", "1")),
        ("abs(i) = 3 AND i > 1", C(I, ">", "1")),
        ("i > 1 OR abs(i) = 3", Always()),
        ("abs(i) = 3", Always()),
        ("i = i", Always()),
        ("i + 1 = 5", Always()),
        ("i BETWEEN SYMMETRIC 3 AND 1", Always()),
        ("i BETWEEN f AND 3", Always()),
        ("i IN (1, f)", Always()),
        ("i IS NULL OR abs(i) = 1", Always()),
        ("isnan(i)", Always()),
        ("st.x = 1", Always()),
        ("s LIKE 'a%'", Always()),
        ("i > random()", Always()),
        ("ts > now()", Always()),
        ("ts > current_timestamp", Always()),
        ("s = 'a'", C(S, "=", "'a'")),
        ("ts > '2026-01-01'", C(TS, ">", "'2026-01-01'")),
        ("i > 2.5", C(I, ">", "2.5")),
        ("i > CAST('3' AS INTEGER)", C(I, ">", "CAST('3' AS INT)")),
    ],
)
def test_filters_bind_to_their_pruning_tree(text, expected):
    assert tree(text) == expected


def test_the_bound_filter_records_text_sql_and_columns():
    bound = bind_filter("I > 1 AND mixed = 2", SCHEMA)
    assert bound.text == "I > 1 AND mixed = 2"
    assert bound.sql == '"i" > 1 AND "Mixed" = 2'
    assert bound.columns == {1: "i", 7: "Mixed"}
    assert prune_columns(bound.prune) == {1, 7}
    assert prune_columns(Always()) == set()
    assert bind_filter("st.x = 1", SCHEMA).sql == '"st"."x" = 1'


def test_value_expressions_bind_their_columns():
    sql, used = bind_expression("upper(s) || 'x'", SCHEMA, what="set['s']")
    assert sql == "UPPER(\"s\") || 'x'" and used == {3: "s"}
    assert bind_expression("1 + 1", SCHEMA, what="v") == ("1 + 1", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be a non-empty SQL expression string"),
        ("   ", "must be a non-empty SQL expression string"),
        (None, "must be a non-empty SQL expression string"),
        ("i = 1\x00", "contains a NUL character"),
        ("i = (", "is not a SQL expression"),
        ("i = 1; i = 2", "must be one SQL expression, not several statements"),
        ("i IN (SELECT 1)", "contains a subquery"),
        ("EXISTS (SELECT 1)", "contains a subquery"),
        ("i = ?", "contains a parameter"),
        ("i = $1", "contains a parameter"),
        ("s = read_text('/etc/passwd')", "calls the table function read_text()"),
        ("i = (FROM range(3))", "contains a"),
        ("nextval('seq') > 0", "calls nextval(), which has side effects"),
        ("setseed(0.5) IS NULL", "calls setseed(), which has side effects"),
        ("nope = 1", "names unknown column 'nope'"),
        ("t.i = 1", "is qualified by 't', which is not a column"),
        ("s > 5", "failed in DuckDB: Binder Error"),
    ],
)
def test_what_is_not_one_expression_over_the_columns_is_refused(text, message):
    with pytest.raises(lv.InvalidArgument, match=re.escape(message)) as info:
        bind_filter(text, SCHEMA, what="where")
    assert str(info.value).startswith("where ")


def test_columns_resolve_case_insensitively_unless_ambiguous():
    assert tree("I = 1") == C(I, "=", "1")
    assert tree("MIXED = 1") == C(7, "=", "1")
    both, _ = assign_field_ids(pa.schema([("a", pa.int64()), ("A", pa.int64())]))
    assert bind_filter("a = 1", both).prune == C(1, "=", "1")  # the exact name wins
    with pytest.raises(lv.InvalidArgument, match=r"column 'aa' is unknown|unknown column 'aa'"):
        bind_filter("aa = 1", both)
    three, _ = assign_field_ids(pa.schema([("ab", pa.int64()), ("AB", pa.int64())]))
    with pytest.raises(lv.InvalidArgument, match=r"'Ab' is ambiguous \(columns \['AB', 'ab'\]"):
        bind_filter("Ab = 1", three)


def test_parse_expression_returns_one_tree():
    assert parse_expression("a + 1", what="x").sql() == "a + 1"


@given(
    number=st.one_of(
        st.integers(-(10**40), 10**40).map(str),
        st.decimals(-(10**12), 10**12, places=4, allow_nan=False, allow_infinity=False).map(str),
    )
)
@settings(max_examples=60, deadline=None)
def test_number_literals_are_typed_in_the_family_duckdb_gives_them(number):
    """Plain number literals skip the DuckDB round trip that types compared values; the
    family they get (what decides whether bounds may prune) is DuckDB's own."""
    import duckdb

    from lakever import expr

    fast = expr._value_types([number])[number]
    duck = duckdb.sql(f"SELECT typeof(({number}))").fetchall()[0][0]
    assert expr._family(fast) == expr._family(str(duck))
