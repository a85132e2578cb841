"""Schemas: names the engines can use (refused at write time), and time zones by meaning."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
import lakever.schema
from lakever.schema import name_problems


def memory_uri() -> str:
    return f"memory://lakever-tests/{uuid.uuid4().hex}/names"


# --------------------------------------------------------------------------- names


def struct(*names: str) -> pa.DataType:
    return pa.struct([(n, pa.int64()) for n in names])


BAD = [
    (pa.schema([]), r"the data has no columns"),
    (pa.schema([("", pa.int64())]), r"column '' has an empty name"),
    (pa.schema([("id", pa.int64()), ("ID", pa.int64())]), r"'id' and column 'ID' differ only"),
    (pa.schema([("a\x00b", pa.int64())]), r"'a\\x00b' contains a control character"),
    (pa.schema([("a\nb", pa.int64())]), r"'a\\nb' contains a control character"),
    (pa.schema([("__lakever_idx", pa.int64())]), r"'__lakever_idx' is reserved"),
    (pa.schema([("__LakeVer_x", pa.int64())]), r"'__LakeVer_x' is reserved"),
    (pa.schema([("s", struct())]), r"struct 's' has no fields"),
    (pa.schema([("s", struct(""))]), r"field '' of 's' has an empty name"),
    (pa.schema([("s", struct("a", "a"))]), r"field 'a' of 's' appears twice"),
    (pa.schema([("s", struct("Zip", "zip"))]), r"field 'Zip' of 's' and field 'zip' of 's'"),
    (pa.schema([("l", pa.list_(struct("t", "T")))]), r"of 'l.element' .* differ only by case"),
    (pa.schema([("m", pa.map_(pa.string(), struct("\t")))]), r"of 'm.value' contains a control"),
]


@pytest.mark.parametrize(("schema", "message"), BAD)
def test_names_duckdb_cannot_use_are_refused_at_create(location, schema, message):
    data = schema.empty_table() if len(schema) else pa.table({"x": [1]}).select([])
    with pytest.raises(lv.InvalidArgument, match=message) as ei:
        lv.create_dataset(location, data)
    assert "rename them first" in str(ei.value) and f"create to {location}" in str(ei.value)
    with pytest.raises(lv.DatasetNotFound):
        lv.open_dataset(location)


def test_names_that_engines_accept():
    ok = pa.schema(
        [
            ("é", pa.int64()),
            ("É", pa.int64()),  # DuckDB folds ASCII letters only
            ("a b", pa.int64()),
            ('q"uote', pa.int64()),
            ("l", pa.list_(pa.field("", pa.int64()))),  # list elements are positional
            ("s", struct("x", "y")),
            ("_change_type", pa.int64()),
            ("file_row_number", pa.int64()),  # DuckDB's option, but lakever reads it aside
        ]
    )
    assert name_problems(ok) == []


def test_new_names_are_checked_on_append_evolve_and_upsert(location):
    t = pa.table({"id": [1, 2], "s": pa.array([{"a": 1}, {"a": 2}], struct("a"))})
    ds = lv.create_dataset(location, t)
    with pytest.raises(lv.InvalidArgument, match=r"column 'id' and column 'ID' differ only"):
        ds.append(t.append_column("ID", pa.array([3, 4])), schema_mode="add")
    widened = pa.array([{"a": 1, "A": 2}] * 2, struct("a", "A"))
    with pytest.raises(lv.InvalidArgument, match=r"field 'a' of 's' and field 'A' of 's'"):
        ds.append(t.set_column(1, "s", widened), schema_mode="merge")
    with pytest.raises(lv.InvalidArgument, match=r"evolve is refused: column 'id' and column 'Id'"):
        ds.evolve(add={"Id": pa.int64()})
    with pytest.raises(lv.InvalidArgument, match=r"field 'a' of 's' and field 'A' of 's'"):
        ds.evolve(add={("s", "A"): pa.int64()})
    with pytest.raises(lv.InvalidArgument, match=r"column 'i\\nd' contains a control character"):
        ds.evolve(rename={"id": "i\nd"})
    with pytest.raises(lv.InvalidArgument, match=r"upsert to .* column 'S'"):
        ds.upsert(t.append_column("S", pa.array([0, 0])), on=["id"], schema_mode="add")
    assert lv.open_dataset(location).version == 0
    # renaming to a name that differs only by case from itself is fine
    assert ds.evolve(rename={"id": "ID"}).schema.names == ["ID", "s"]


def test_a_dataset_written_before_the_check_stays_writable(location, monkeypatch):
    monkeypatch.setattr(lakever.schema, "name_problems", lambda schema: [])
    t = pa.table({"a": [1], "A": [2]})
    ds = lv.create_dataset(location, t)
    monkeypatch.undo()
    ds = ds.append(t)  # its old problem is not held against it
    ds = ds.evolve(add={"b": pa.int64()})
    with pytest.raises(lv.InvalidArgument, match=r"column 'b' and column 'B'"):
        ds.evolve(add={"B": pa.int64()})  # a new one is


NAMES = st.sampled_from(["id", "ID", "x", "X", "", "a\x00", "b\n", "é", "É", "__lakever_pos"])


@given(names=st.lists(NAMES, max_size=4), fields=st.lists(NAMES, max_size=3))
def test_accepted_names_work_in_every_engine_and_refused_ones_do_not(names, fields):
    """Property: a schema name_problems accepts reads, filters, deletes and diffs in DuckDB;
    one it refuses is refused at create with InvalidArgument, never stored."""
    columns = [pa.array([i], pa.int64()) for i in range(len(names))]
    if fields:
        columns.append(pa.StructArray.from_arrays([pa.array([1])] * len(fields), names=fields))
        names = [*names, "nested"]
    data = pa.Table.from_arrays(columns, names=names) if columns else pa.table({}).select([])
    uri = memory_uri()
    if name_problems(data.schema):
        with pytest.raises(lv.InvalidArgument, match=r"is refused"):
            lv.create_dataset(uri, data)
        return
    ds = lv.create_dataset(uri, data)
    assert ds.sql("SELECT * FROM self").to_arrow_table().num_rows == 1
    assert ds.to_arrow(filter="true").num_rows == 1
    after = ds.append(data).delete(where="true")
    assert after.num_rows == 0 and ds.diff(after, on=[]).summary.rows_removed == 1
