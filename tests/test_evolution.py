"""Schema evolution: every allowed widening, every refusal, nested types, time travel, readers."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest

import lakever as lv
from lakever.evolution import evolve
from lakever.field_tree import schema_changes as diff
from lakever.schema import assign_field_ids, strip_field_ids
from tests._data import events


def via_sql(ds: lv.Dataset) -> pa.Table:
    """The snapshot read through DuckDB (the filter path casts back to the public schema)."""
    return ds.to_arrow(filter="TRUE")


def readers_agree(ds: lv.Dataset, *, polars: bool = True) -> pa.Table:
    """Read ``ds`` through every reader; assert they return the same rows, in order."""
    expected = ds.to_arrow()
    assert expected.schema == ds.schema
    rows = expected.to_pylist()
    assert pa.Table.from_batches(list(ds.to_batches(3)), schema=ds.schema).to_pylist() == rows
    assert via_sql(ds).to_pylist() == rows
    assert ds.sql("SELECT * FROM self").to_arrow_table().cast(ds.schema).to_pylist() == rows
    assert ds.to_duckdb().to_arrow_table().cast(ds.schema).to_pylist() == rows
    if polars:  # (polars cannot hold 256-bit decimals)
        assert ds.to_polars().to_arrow().cast(ds.schema).to_pylist() == rows
        assert ds.scan().collect().to_arrow().cast(ds.schema).to_pylist() == rows
    assert ds.to_arrow(columns=list(reversed(ds.schema.names))).to_pylist() == [
        dict(reversed(list(r.items()))) for r in rows
    ]
    return expected


# ------------------------------------------------------------------ allowed widenings

DATE = dt.date(2024, 2, 29)
WIDENINGS = [
    # (old type, new type, values, values read back under the new type)
    (pa.int8(), pa.int16(), [-128, 127, None], [-128, 127, None]),
    (pa.int16(), pa.int32(), [-32768, 7], [-32768, 7]),
    (pa.int32(), pa.int64(), [-(2**31), 2**31 - 1], [-(2**31), 2**31 - 1]),
    (pa.int8(), pa.int64(), [-5], [-5]),
    (pa.uint8(), pa.uint16(), [255], [255]),
    (pa.uint16(), pa.uint32(), [65535], [65535]),
    (pa.uint32(), pa.uint64(), [2**32 - 1], [2**32 - 1]),
    (pa.uint8(), pa.int16(), [255], [255]),
    (pa.uint16(), pa.int32(), [65535], [65535]),
    (pa.uint32(), pa.int64(), [2**32 - 1], [2**32 - 1]),
    (pa.float32(), pa.float64(), [1.5, None], [1.5, None]),
    (pa.int8(), pa.float64(), [-128], [-128.0]),
    (pa.int16(), pa.float64(), [32767], [32767.0]),
    (pa.int32(), pa.float64(), [2**31 - 1], [float(2**31 - 1)]),
    (pa.uint32(), pa.float64(), [2**32 - 1], [float(2**32 - 1)]),
    (pa.int16(), pa.float32(), [-32768], [-32768.0]),
    (pa.uint8(), pa.float32(), [255], [255.0]),
    (pa.float16(), pa.float32(), [1.5], [1.5]),
    (pa.date32(), pa.timestamp("us"), [DATE], [dt.datetime(2024, 2, 29)]),
    (pa.date32(), pa.timestamp("ms"), [DATE, None], [dt.datetime(2024, 2, 29), None]),
    (pa.date64(), pa.timestamp("s"), [DATE], [dt.datetime(2024, 2, 29)]),
    (pa.string(), pa.large_string(), ["a", None], ["a", None]),
    (pa.binary(), pa.large_binary(), [b"\x00x"], [b"\x00x"]),
    (pa.decimal128(10, 2), pa.decimal128(12, 2), [Decimal("12.34")], [Decimal("12.34")]),
    (pa.decimal128(10, 2), pa.decimal256(38, 2), [Decimal("-0.01")], [Decimal("-0.01")]),
    (
        pa.struct([("a", pa.int32())]),
        pa.struct([("a", pa.int64()), ("b", pa.string())]),
        [{"a": 1}, None],
        [{"a": 1, "b": None}, None],
    ),
    (pa.list_(pa.int32()), pa.list_(pa.int64()), [[1, None], None, []], [[1, None], None, []]),
    (pa.list_(pa.int32()), pa.large_list(pa.float64()), [[1, 2]], [[1.0, 2.0]]),
    (pa.list_(pa.int8(), 2), pa.list_(pa.int16(), 2), [[1, 2], None], [[1, 2], None]),
    (
        pa.map_(pa.int32(), pa.string()),
        pa.map_(pa.int64(), pa.large_string()),
        [[(1, "a")]],
        [[(1, "a")]],
    ),
    (
        pa.map_(pa.string(), pa.int32()),
        pa.map_(pa.string(), pa.int64()),
        [[("k", 1)], None],
        [[("k", 1)], None],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "values", "expected"),
    WIDENINGS,
    ids=[f"{o}->{n}" for o, n, _, _ in WIDENINGS],
)
def test_allowed_widening(tmp_path, old, new, values, expected):
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, pa.table({"k": range(len(values)), "c": pa.array(values, old)}))
    fragments = [f.path for f in ds.fragments()]
    ds = ds.evolve(widen={"c": new}, message="widen c")
    assert ds.schema.field("c").type == new
    assert ds.commit.operation == "evolve"
    assert [f.path for f in ds.fragments()] == fragments  # no fragment was rewritten
    assert ds.to_arrow()["c"].to_pylist() == expected
    assert via_sql(ds)["c"].to_pylist() == expected
    # New rows are written under the new type, next to the old fragments.
    ds = ds.append(pa.table({"k": [99], "c": pa.array([expected[0]], new)}))
    assert ds.to_arrow()["c"].to_pylist() == [*expected, expected[0]]
    readers_agree(ds, polars=not pa.types.is_decimal256(new))
    assert lv.open_dataset(uri, version=0).to_arrow()["c"].to_pylist() == values


# ------------------------------------------------------------------ refused changes

REFUSALS = [
    # (old type, new type, what the message must say)
    (pa.int64(), pa.int32(), "narrowing would truncate values; keep int64"),
    (pa.int32(), pa.uint32(), "negative values do not fit in an unsigned type"),
    (pa.uint32(), pa.int32(), "uint32 values above 2147483647 do not fit in int32; widen to int64"),
    (pa.uint64(), pa.int64(), "no signed type holds every uint64 value"),
    (pa.int64(), pa.float64(), "int64 -> double is not exact: integers above 2**53 lose precision"),
    (pa.int32(), pa.float32(), "int32 -> float is not exact: integers above 2**24"),
    (pa.float64(), pa.float32(), "narrowing would round values; keep double"),
    (pa.int64(), pa.string(), "int64 and string are different type families; add a new column"),
    (pa.string(), pa.int64(), "string and int64 are different type families"),
    (pa.float64(), pa.int64(), "double and int64 are different type families"),
    (pa.timestamp("us"), pa.date32(), "different type families"),
    (pa.date32(), pa.timestamp("us", tz="UTC"), "widen to pa.timestamp('us')"),
    (pa.large_string(), pa.string(), "64-bit offsets cannot become 32-bit ones"),
    (pa.decimal128(10, 2), pa.decimal128(12, 3), "changing the scale from 2 to 3"),
    (pa.decimal128(12, 2), pa.decimal128(10, 2), "narrowing the precision would overflow"),
    (pa.list_(pa.int32()), pa.int32(), "different type families"),
    (pa.large_list(pa.int32()), pa.list_(pa.int32()), "64-bit list offsets"),
    (pa.list_(pa.int32(), 2), pa.list_(pa.int32(), 3), "a fixed-size list keeps its size"),
    (
        pa.struct([("a", pa.int32()), ("b", pa.int8())]),
        pa.struct([("a", pa.int32())]),
        "it lacks the field 'b'; widening never removes fields: drop it with drop=[('c', 'b')]",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "says"), REFUSALS, ids=[f"{o}->{n}" for o, n, _ in REFUSALS]
)
def test_refused_type_change(location, old, new, says):
    ds = lv.create_dataset(location, pa.table({"c": pa.nulls(1, old)}))
    with pytest.raises(lv.SchemaEvolutionError) as ei:
        ds.evolve(widen={"c": new})
    err = ei.value
    assert says in str(err)
    assert str(err).startswith(f"cannot change column 'c' from {old} to {new}: ")
    assert (err.column, err.old_type, err.new_type) == ("c", str(old), str(new))
    assert lv.open_dataset(location).version == 0  # nothing was committed


def test_nested_refusal_names_the_nested_column(location):
    t = pa.table({"s": pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))})
    ds = lv.create_dataset(location, t)
    with pytest.raises(lv.SchemaEvolutionError, match=r"column 's\.a' from int64 to int8") as ei:
        ds.evolve(widen={("s", "a"): pa.int8()})
    assert ei.value.column == "s.a"
    with pytest.raises(lv.SchemaEvolutionError, match=r"'s\.z' as non-nullable"):
        ds.evolve(widen={"s": pa.struct([("a", pa.int64()), pa.field("z", pa.int8(), False)])})


def test_making_a_column_non_nullable_is_refused(location):
    ds = lv.create_dataset(location, events(0, 2))
    with pytest.raises(lv.SchemaEvolutionError) as ei:
        ds.evolve(widen={"id": pa.field("id", pa.int64(), nullable=False)})
    assert str(ei.value).startswith(
        "cannot make column 'id' non-nullable: fragments written earlier may hold nulls"
    )
    assert "refuse nulls in new rows with a contract (nullable=False)" in str(ei.value)
    assert (ei.value.old_type, ei.value.new_type) == ("int64 (nullable)", "int64 (not null)")


def test_making_a_column_nullable_is_allowed(location):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    ds = lv.create_dataset(location, pa.table({"id": [1]}, schema=schema))
    ds = ds.evolve(widen={"id": pa.field("id", pa.int64(), nullable=True)})
    assert ds.schema.field("id").nullable
    ds = ds.append(pa.table({"id": [None]}, schema=pa.schema([("id", pa.int64())])))
    assert ds.to_arrow()["id"].to_pylist() == [1, None]
    assert [c.describe() for c in ds.schema_history()[-1].changes] == ["make 'id' nullable"]


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        (
            {"add": {"id": pa.int8()}},
            lv.SchemaEvolutionError,
            "cannot add column 'id': a column of that name exists; pick another name, or drop "
            "the existing one in the same call (drop=['id'])",
        ),
        (
            {"rename": {"value": "id"}},
            lv.SchemaEvolutionError,
            "cannot rename 'value' to 'id': a column of that name exists",
        ),
        (
            {"drop": ["id", "value", "category"]},
            lv.SchemaEvolutionError,
            "cannot drop every column: a dataset keeps at least one column",
        ),
        (
            {"add": {"x": pa.field("x", pa.int8(), nullable=False)}},
            lv.SchemaEvolutionError,
            "cannot add column 'x' as non-nullable: rows written earlier have no value for it",
        ),
        ({"drop": ["nope"]}, lv.InvalidArgument, "drop: no column 'nope' in the schema"),
        ({"widen": {"nope": pa.int64()}}, lv.InvalidArgument, "widen: no column 'nope'"),
        ({"rename": {("id", "x"): "y"}}, lv.InvalidArgument, "rename: no column 'id.x'"),
        ({}, lv.InvalidArgument, "evolve needs at least one of add=, rename=, drop= or widen="),
        ({"drop": "id"}, lv.InvalidArgument, "drop must be a list of columns"),
        ({"add": {"x": "int64"}}, lv.InvalidArgument, "expected a pyarrow DataType"),
        ({"rename": {"id": ""}}, lv.InvalidArgument, "must be a non-empty string"),
        (
            {"drop": ["id"], "rename": {"id": "key"}},
            lv.InvalidArgument,
            "rename: column 'id' is also dropped",
        ),
        ({"add": {("id", "x"): pa.int8()}}, lv.InvalidArgument, "fields can only be added to a"),
        (
            {"drop": ["id"], "widen": {"id": pa.int64()}},
            lv.InvalidArgument,
            "widen: column 'id' is also dropped",
        ),
        ({"rename": ["id"]}, lv.InvalidArgument, "rename must be a dict"),
        ({"add": {"": pa.int8()}}, lv.InvalidArgument, "a column is named by a non-empty string"),
        (
            {"add": {"i": pa.month_day_nano_interval()}},
            lv.InvalidArgument,
            "type month_day_nano_interval is not supported",
        ),
    ],
)
def test_refused_evolve_arguments(location, kwargs, error, says):
    ds = lv.create_dataset(location, events(0, 1))
    with pytest.raises(error, match=None) as ei:
        ds.evolve(**kwargs)
    assert says in str(ei.value)
    assert lv.open_dataset(location).version == 0


def test_list_element_and_map_parts_cannot_be_renamed_or_dropped(location):
    t = pa.table(
        {
            "l": pa.array([[1]], pa.list_(pa.int32())),
            "m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int32())),
        }
    )
    ds = lv.create_dataset(location, t)
    with pytest.raises(lv.SchemaEvolutionError, match=r"cannot drop 'l\.element': the element of"):
        ds.evolve(drop=[("l", "element")])
    with pytest.raises(lv.SchemaEvolutionError, match=r"cannot rename 'm\.value'"):
        ds.evolve(rename={("m", "value"): "v"})


def test_dropping_the_last_struct_field_is_refused(location):
    ds = lv.create_dataset(location, pa.table({"s": pa.array([{"a": 1}])}))
    with pytest.raises(lv.SchemaEvolutionError, match=r"drop the struct itself \(drop=\['s'\]\)"):
        ds.evolve(drop=[("s", "a")])


def test_evolve_on_a_read_only_view(location):
    lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.ReadOnlyDataset, match="cannot evolve the schema"):
        lv.open_dataset(location, version=0).evolve(add={"x": pa.int8()})


# ------------------------------------------------------------------ add, rename, drop


def test_add_rename_drop_and_time_travel(location):
    ds = lv.create_dataset(location, events(0, 3), message="v0")
    v0 = ds.to_arrow()
    ds = ds.evolve(
        add={"score": pa.float64()},
        rename={"value": "amount"},
        drop=["category"],
        message="v1 schema",
    )
    assert ds.schema.names == ["id", "amount", "score"]
    assert ds.field_ids == {"id": 1, "amount": 2, "score": 4}
    assert ds.commit.parameters["schema_changes"] == [
        {
            "kind": "drop",
            "field_id": 3,
            "column": "category",
            "old_column": None,
            "old_type": "string",
            "new_type": None,
        },
        {
            "kind": "rename",
            "field_id": 2,
            "column": "amount",
            "old_column": "value",
            "old_type": None,
            "new_type": None,
        },
        {
            "kind": "add",
            "field_id": 4,
            "column": "score",
            "old_column": None,
            "old_type": None,
            "new_type": "double",
        },
    ]
    assert (ds.commit.rows_added, ds.commit.fragments_added, ds.num_rows) == (0, 0, 3)
    ds = ds.append(pa.table({"id": [3], "amount": [0.5], "score": [9.0]}))
    got = readers_agree(ds)
    assert got.to_pylist() == [
        {"id": 0, "amount": 0.0, "score": None},
        {"id": 1, "amount": 0.01, "score": None},
        {"id": 2, "amount": 0.02, "score": None},
        {"id": 3, "amount": 0.5, "score": 9.0},
    ]
    old = lv.open_dataset(location, version=0)
    assert old.schema == v0.schema
    assert old.to_arrow().equals(v0)
    assert via_sql(old).equals(v0)
    assert lv.open_dataset(location, version=1).num_rows == 3


def test_readding_a_dropped_name_is_a_new_column(location):
    ds = lv.create_dataset(location, events(0, 2))
    ds = ds.evolve(drop=["category"])
    ds = ds.evolve(add={"category": pa.string()})
    assert ds.field_ids["category"] == 4  # id 3 is never reused
    assert ds.to_arrow()["category"].to_pylist() == [None, None]  # the old values stay gone
    assert via_sql(ds)["category"].to_pylist() == [None, None]
    # Drop and re-add in one call works too, and again gets a fresh id.
    ds = ds.evolve(drop=["category"], add={"category": pa.int64()})
    assert ds.field_ids["category"] == 5
    assert ds.schema.field("category").type == pa.int64()
    assert lv.open_dataset(location, version=0).to_arrow()["category"].to_pylist() == ["a", "b"]


def test_swapping_names_by_rename(location):
    ds = lv.create_dataset(location, pa.table({"a": [1], "b": ["x"]}))
    ds = ds.evolve(rename={"a": "b", "b": "a"})
    assert readers_agree(ds).to_pylist() == [{"b": 1, "a": "x"}]


def test_rename_and_widen_in_one_call(location):
    ds = lv.create_dataset(location, pa.table({"n": pa.array([1, 2], pa.int32())}))
    ds = ds.evolve(widen={"n": pa.int64()}, rename={"n": "count"})
    assert ds.schema == pa.schema([("count", pa.int64())])
    assert readers_agree(ds)["count"].to_pylist() == [1, 2]


def test_all_new_columns_read_as_null_without_reading_old_files(location):
    ds = lv.create_dataset(location, events(0, 3))
    ds = ds.evolve(add={"x": pa.int8()})
    assert ds.to_arrow(columns=["x"])["x"].to_pylist() == [None] * 3
    batches = list(ds.to_batches(2, columns=["x"]))
    assert [b.num_rows for b in batches] == [2, 1]
    assert ds.to_arrow(columns=["x"], filter="x IS NULL").num_rows == 3


# ------------------------------------------------------------------ nested


def test_nested_evolution_by_field_id(location):
    item = pa.struct([("x", pa.int32()), ("y", pa.string())])
    t = pa.table(
        {
            "id": [1, 2],
            "s": pa.array(
                [{"a": 1, "b": "p"}, None], pa.struct([("a", pa.int16()), ("b", pa.string())])
            ),
            "items": pa.array([[{"x": 1, "y": "u"}], None], pa.list_(item)),
            "m": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int32())),
        }
    )
    ds = lv.create_dataset(location, t)
    ds = ds.evolve(
        rename={("s", "a"): "alpha", ("items", "element", "x"): "xx"},
        drop=[("s", "b"), ("items", "item", "y")],
        widen={("s", "a"): pa.int64(), "m": pa.map_(pa.string(), pa.float64())},
        add={("s", "c"): pa.bool_(), ("items", "element", "z"): pa.string()},
    )
    assert ds.schema.field("s").type == pa.struct([("alpha", pa.int64()), ("c", pa.bool_())])
    new_item = pa.struct([("xx", pa.int32()), ("z", pa.string())])
    assert ds.schema.field("items").type == pa.list_(new_item)
    ds = ds.append(
        pa.table(
            {
                "id": [3],
                "s": pa.array([{"alpha": 7, "c": True}], ds.schema.field("s").type),
                "items": pa.array([[{"xx": 5, "z": "w"}]], pa.list_(new_item)),
                "m": pa.array([[("q", 0.5)]], pa.map_(pa.string(), pa.float64())),
            }
        )
    )
    assert readers_agree(ds).to_pylist() == [
        {"id": 1, "s": {"alpha": 1, "c": None}, "items": [{"xx": 1, "z": None}], "m": [("k", 1.0)]},
        {"id": 2, "s": None, "items": None, "m": []},
        {"id": 3, "s": {"alpha": 7, "c": True}, "items": [{"xx": 5, "z": "w"}], "m": [("q", 0.5)]},
    ]
    assert lv.open_dataset(location, version=0).to_arrow().equals(t)
    kinds = [(c.kind, c.column) for c in ds.schema_history()[1].changes]
    assert kinds == [
        ("drop", "s.b"),
        ("drop", "items.item.y"),
        ("rename", "s.alpha"),
        ("rename", "items.item.xx"),
        ("widen", "s.alpha"),
        ("widen", "m.value"),
        ("add", "s.c"),
        ("add", "items.item.z"),
    ]


def test_struct_field_added_through_widen(location):
    t = pa.table({"s": pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))})
    ds = lv.create_dataset(location, t)
    ds = ds.evolve(widen={"s": pa.struct([("a", pa.int64()), ("b", pa.list_(pa.int8()))])})
    assert ds.field_ids == {"s": 1}
    assert readers_agree(ds)["s"].to_pylist() == [{"a": 1, "b": None}]


# ------------------------------------------------------------------ schema_mode on writes


def test_strict_mode_lists_every_difference_and_hints(location):
    ds = lv.create_dataset(location, events(0, 1))
    data = pa.table({"id": pa.array([1], pa.int32()), "value": [1.0], "category": ["a"], "x": [1]})
    with pytest.raises(lv.SchemaMismatch) as ei:
        ds.append(data)
    msg = str(ei.value)
    assert "column 'id' is int32 in the data but int64 in the dataset" in msg
    assert "column 'x' (int64) is not in the dataset schema" in msg
    assert "Or pass schema_mode='add' to add the new columns to the schema." in msg
    assert "Or pass schema_mode='merge' to widen compatible column types." in msg
    assert ei.value.differences == [("id", "int64", "int32"), ("x", None, "int64")]
    assert lv.open_dataset(location).version == 0


def test_add_mode_adds_nullable_columns_and_fills_missing_ones(location):
    ds = lv.create_dataset(location, events(0, 1))
    ds = ds.append(
        pa.table({"id": [1], "value": [0.5], "tag": pa.array(["t"]).cast(pa.large_string())}),
        schema_mode="add",
    )
    assert ds.schema.names == ["id", "value", "category", "tag"]
    assert ds.schema.field("tag").nullable
    assert ds.commit.operation == "append"
    assert ds.commit.parameters["schema_mode"] == "add"
    assert [c["kind"] for c in ds.commit.parameters["schema_changes"]] == ["add"]
    assert readers_agree(ds).to_pylist() == [
        {"id": 0, "value": 0.0, "category": "a", "tag": None},
        {"id": 1, "value": 0.5, "category": None, "tag": "t"},
    ]
    # A type difference is still refused in add mode, with a hint.
    with pytest.raises(lv.SchemaMismatch, match=r"Or pass schema_mode='merge' to widen"):
        ds.append(pa.table({"id": pa.array([2], pa.int32())}), schema_mode="add")


def test_add_mode_refuses_missing_non_nullable_column(location):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int8())])
    ds = lv.create_dataset(location, pa.table({"id": [1], "v": [1]}, schema=schema))
    with pytest.raises(lv.SchemaMismatch, match=r"column 'id' \(int64\) is missing from the data"):
        ds.append(pa.table({"v": pa.array([2], pa.int8())}), schema_mode="add")


def test_merge_mode_widens_and_casts_narrower_data_up(location):
    t = pa.table(
        {
            "n": pa.array([1], pa.int32()),
            "s": pa.array([{"a": 1}], pa.struct([("a", pa.int16())])),
        }
    )
    ds = lv.create_dataset(location, t)
    big = pa.table({"l": pa.array([[1]], pa.large_list(pa.int8()))})
    lists = lv.create_dataset(location + "-lists", big)
    # list<int64> data merged into a large_list<int8> column: the union is large_list<int64>.
    lists = lists.append(
        pa.table({"l": pa.array([[2**40]], pa.list_(pa.int64()))}), schema_mode="merge"
    )
    assert lists.schema.field("l").type == pa.large_list(pa.int64())
    assert readers_agree(lists)["l"].to_pylist() == [[1], [2**40]]
    wider = pa.table(
        {
            "n": pa.array([2**40], pa.int64()),
            "s": pa.array([{"a": 2, "b": "x"}], pa.struct([("a", pa.int16()), ("b", pa.string())])),
        }
    )
    ds = ds.append(wider, schema_mode="merge")
    assert ds.schema == pa.schema(
        [("n", pa.int64()), ("s", pa.struct([("a", pa.int16()), ("b", pa.string())]))]
    )
    changes = [(c["kind"], c["column"]) for c in ds.commit.parameters["schema_changes"]]
    assert changes == [("widen", "n"), ("add", "s.b")]
    # Narrower data (and a struct missing a nullable field) is cast up; the schema stays.
    narrow = pa.table(
        {"n": pa.array([3], pa.int8()), "s": pa.array([{"a": 3}], pa.struct([("a", pa.int8())]))}
    )
    ds2 = ds.append(narrow, schema_mode="merge")
    assert ds2.schema == ds.schema and "schema_changes" not in ds2.commit.parameters
    assert readers_agree(ds2).to_pylist() == [
        {"n": 1, "s": {"a": 1, "b": None}},
        {"n": 2**40, "s": {"a": 2, "b": "x"}},
        {"n": 3, "s": {"a": 3, "b": None}},
    ]


def test_merge_mode_refuses_unsafe_changes(location):
    ds = lv.create_dataset(location, pa.table({"n": pa.array([1], pa.int64())}))
    with pytest.raises(lv.SchemaEvolutionError) as ei:
        ds.append(pa.table({"n": ["one"]}), schema_mode="merge")
    assert str(ei.value).startswith("cannot change column 'n' from int64 to string")
    assert (ei.value.column, ei.value.old_type, ei.value.new_type) == ("n", "int64", "string")
    with pytest.raises(lv.SchemaEvolutionError, match="not exact"):
        ds.append(pa.table({"n": [1.5]}), schema_mode="merge")
    with pytest.raises(lv.SchemaEvolutionError, match="int64 and list<item: int64> are different"):
        ds.append(pa.table({"n": [[1]]}), schema_mode="merge")
    assert lv.open_dataset(location).version == 0


def test_overwrite_and_write_dataset_take_schema_mode(location):
    lv.create_dataset(location, events(0, 2))
    ds = lv.write_dataset(
        location, pa.table({"id": [7], "x": [True]}), mode="overwrite", schema_mode="add"
    )
    assert ds.schema.names == ["id", "value", "category", "x"]
    assert ds.to_arrow().to_pylist() == [{"id": 7, "value": None, "category": None, "x": True}]
    with pytest.raises(lv.InvalidArgument, match="schema_mode must be 'strict', 'add' or 'merge'"):
        ds.append(events(0, 1), schema_mode="loose")  # type: ignore[arg-type]


# ------------------------------------------------------------------ history, diff, stats


def test_schema_history_and_diff(location):
    ds = lv.create_dataset(location, events(0, 1))
    ds = ds.append(events(1, 1))
    ds = ds.evolve(rename={"value": "amount"}, message="rename")
    ds = ds.append(pa.table({"id": [2], "amount": [0.1], "category": ["c"]}))
    ds = ds.append(pa.table({"id": [3], "flag": [True]}), schema_mode="add")
    history = ds.schema_history()
    assert [(h.version, h.operation) for h in history] == [
        (0, "create"),
        (2, "evolve"),
        (4, "append"),
    ]
    assert history[0].changes == () and history[0].schema == events(0, 0).schema
    assert [c.describe() for c in history[1].changes] == ["rename 'value' -> 'amount' (field id 2)"]
    assert history[1].message == "rename"
    assert [c.describe() for c in history[2].changes] == ["add 'flag' bool (field id 4)"]
    assert history[2].field_ids == {"id": 1, "amount": 2, "category": 3, "flag": 4}
    json.dumps([h.to_dict() for h in history])  # JSON-ready
    # An old version's history stops at that version.
    assert len(lv.open_dataset(location, version=1).schema_history()) == 1
    v0 = lv.open_dataset(location, version=0)
    assert [c.kind for c in v0.schema_diff(ds)] == ["rename", "add"]
    assert ds.schema_diff(ds) == []
    with pytest.raises(lv.InvalidArgument, match="schema_diff needs another Dataset"):
        ds.schema_diff(3)  # type: ignore[arg-type]


def test_fragment_stats_follow_renames_and_widenings(location):
    t = pa.table({"d": pa.array([dt.date(2024, 1, 1)]), "n": pa.array([5], pa.int32())})
    ds = lv.create_dataset(location, t)
    ds = ds.evolve(widen={"d": pa.timestamp("us"), "n": pa.int64()}, rename={"n": "count"})
    (frag,) = ds.fragments()
    assert frag.stats["count"] == {"nulls": 0, "min": 5, "max": 5}  # still valid bounds
    assert frag.stats["d"] == {"nulls": 0}  # day ticks are not microsecond ticks


def test_pure_evolve_and_diff_on_schemas():
    schema, last = assign_field_ids(pa.schema([("a", pa.int32()), ("b", pa.string())]))
    new, new_last = evolve(schema, last, rename={"a": "x"}, add={"c": pa.float64()})
    assert strip_field_ids(new) == pa.schema(
        [("x", pa.int32()), ("b", pa.string()), ("c", pa.float64())]
    )
    assert (last, new_last) == (2, 3)
    assert [c.describe() for c in diff(schema, new)] == [
        "rename 'a' -> 'x' (field id 1)",
        "add 'c' double (field id 3)",
    ]


# ------------------------------------------------------------------ concurrency and format


def test_append_racing_an_evolve_conflicts(location):
    ds = lv.create_dataset(location, events(0, 1))
    stale = lv.open_dataset(location)
    ds.evolve(add={"x": pa.int8()})
    with pytest.raises(
        lv.CommitConflict, match="conflicts with version 1, which changed the schema"
    ):
        stale.append(events(1, 1))
    assert lv.open_dataset(location).num_rows == 1


def test_evolve_racing_an_evolve_conflicts(location):
    ds = lv.create_dataset(location, events(0, 1))
    stale = lv.open_dataset(location)
    ds.evolve(add={"x": pa.int8()})
    with pytest.raises(lv.CommitConflict, match="which changed the schema"):
        stale.evolve(add={"x": pa.int8()})
    assert lv.open_dataset(location).field_ids["x"] == 4


def test_evolve_replays_over_a_concurrent_append(location):
    ds = lv.create_dataset(location, events(0, 1))
    stale = lv.open_dataset(location)
    ds.append(events(1, 1))
    ds = stale.evolve(rename={"value": "amount"})
    assert ds.version == 2
    assert ds.to_arrow()["id"].to_pylist() == [0, 1]
    assert ds.schema.names == ["id", "amount", "category"]


def test_add_mode_append_replays_over_a_plain_append(location):
    ds = lv.create_dataset(location, events(0, 1))
    stale = lv.open_dataset(location)
    ds.append(events(1, 1))
    ds = stale.append(pa.table({"id": [2], "x": [1]}), schema_mode="add")
    assert ds.to_arrow(["id", "x"]).to_pylist() == [
        {"id": 0, "x": None},
        {"id": 1, "x": None},
        {"id": 2, "x": 1},
    ]


def test_schema_files_are_content_addressed(local_location):
    ds = lv.create_dataset(local_location, events(0, 1))
    ds = ds.evolve(add={"x": pa.int8()})
    ds = ds.append(
        pa.table({"id": [1], "value": [0.0], "category": ["b"], "x": pa.array([1], pa.int8())})
    )
    names = sorted(os.listdir(os.path.join(local_location, "_lakever", "schemas")))
    assert len(names) == 2
    ids = {e.schema_id for e in ds._state.entries}
    assert {f"{i}.json" for i in ids} == set(names)


def test_corrupt_schema_file_is_detected(local_location):
    from lakever import _metafiles

    ds = lv.create_dataset(local_location, events(0, 1)).evolve(add={"x": pa.int8()})
    old_sid = ds._state.entries[0].schema_id
    path = os.path.join(local_location, "_lakever", "schemas", f"{old_sid}.json")
    with open(path, "a") as f:
        f.write(" ")
    _metafiles._schemas.clear()  # schemas are cached per process once verified
    with pytest.raises(lv.CorruptMetadata, match="does not match its content hash"):
        lv.open_dataset(local_location).to_arrow()
    os.remove(path)
    with pytest.raises(lv.CorruptMetadata, match="is missing; it was deleted outside lakever"):
        lv.open_dataset(local_location).to_arrow()


def test_unmappable_types_fall_back_to_arrow_for_sql(location):
    t = pa.table({"d": pa.array([1, None], pa.duration("s")), "n": pa.array([1, 2], pa.int8())})
    ds = lv.create_dataset(location, t).evolve(widen={"n": pa.int64()})
    got = ds.sql("SELECT n FROM self ORDER BY n").to_arrow_table()
    assert got["n"].to_pylist() == [1, 2]
    assert ds.to_arrow(["n"], filter="n > 1")["n"].to_pylist() == [2]


def test_polars_scan_of_evolved_dataset(location):
    ds = lv.create_dataset(location, events(0, 2)).evolve(rename={"id": "key"})
    assert ds.scan().filter(pl.col("key") > 0).collect()["key"].to_list() == [1]
