"""Property: random allowed schema changes and appends, every version read back against a model.

The model keeps each column by field id with its name and type, and each row as
the values written (by field id). Reading a version must give, for every column
of that version's schema, the written value converted to the column's current
type, or null where the row predates the column; dropped and re-added names
never bring old values back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv

#: Each type and the types it may be widened to (a subset of the compatibility table).
WIDER: dict[pa.DataType, list[pa.DataType]] = {
    pa.int8(): [pa.int16(), pa.int32(), pa.int64(), pa.float64()],
    pa.int16(): [pa.int32(), pa.int64(), pa.float32(), pa.float64()],
    pa.int32(): [pa.int64(), pa.float64()],
    pa.int64(): [],
    pa.float32(): [pa.float64()],
    pa.float64(): [],
    pa.string(): [pa.large_string()],
    pa.large_string(): [],
    pa.date32(): [pa.timestamp("us")],
    pa.timestamp("us"): [],
}
BASE = [pa.int8(), pa.int16(), pa.int32(), pa.float32(), pa.string(), pa.date32()]
NAMES = ["a", "b", "c", "d", "e"]


def values_of(t: pa.DataType) -> st.SearchStrategy[Any]:
    if pa.types.is_integer(t):
        bits = t.bit_width - 1
        return st.none() | st.integers(-(2**bits), 2**bits - 1)
    if pa.types.is_floating(t):  # exactly representable in float32
        return st.none() | st.integers(-1000, 1000).map(lambda i: i / 4)
    if pa.types.is_date(t):
        return st.none() | st.dates(dt.date(1970, 1, 1), dt.date(2100, 1, 1))
    if pa.types.is_timestamp(t):
        return st.none() | st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1))
    return st.none() | st.text("xyz", max_size=3)


def as_type(value: Any, t: pa.DataType) -> Any:
    """A written value as read under the column's current type."""
    if value is None:
        return None
    if pa.types.is_floating(t):
        return float(value)
    if (
        pa.types.is_timestamp(t)
        and isinstance(value, dt.date)
        and not isinstance(value, dt.datetime)
    ):
        return dt.datetime(value.year, value.month, value.day)
    return value


@dataclass
class Model:
    #: field id -> (name, type), in schema order.
    columns: dict[int, tuple[str, pa.DataType]] = field(default_factory=dict)
    rows: list[dict[int, Any]] = field(default_factory=list)
    last_id: int = 0

    def schema(self) -> pa.Schema:
        return pa.schema([(n, t) for n, t in self.columns.values()])

    def read(self) -> list[dict[str, Any]]:
        return [
            {n: as_type(r.get(fid), t) for fid, (n, t) in self.columns.items()} for r in self.rows
        ]

    def free_name(self, data: st.DataObject) -> str | None:
        used = {n for n, _ in self.columns.values()}
        free = [n for n in NAMES if n not in used]
        return data.draw(st.sampled_from(free)) if free else None


def draw_rows(data: st.DataObject, model: Model, n: int) -> tuple[pa.Table, list[dict[int, Any]]]:
    cols = {
        fid: data.draw(st.lists(values_of(t), min_size=n, max_size=n))
        for fid, (_, t) in model.columns.items()
    }
    table = pa.table(
        {model.columns[fid][0]: pa.array(v, model.columns[fid][1]) for fid, v in cols.items()}
    )
    return table, [{fid: cols[fid][i] for fid in cols} for i in range(n)]


def step(data: st.DataObject, ds: lv.Dataset, model: Model) -> lv.Dataset:
    op = data.draw(st.sampled_from(["append", "append_add", "add", "rename", "drop", "widen"]))
    fids = list(model.columns)
    if op == "append":
        table, rows = draw_rows(data, model, data.draw(st.integers(0, 3)))
        model.rows += rows
        return ds.append(table)
    if op in ("append_add", "add"):
        name = model.free_name(data)
        if name is None:
            return ds
        t = data.draw(st.sampled_from(BASE))
        model.last_id += 1
        if op == "add":
            model.columns[model.last_id] = (name, t)
            return ds.evolve(add={name: t})
        n = data.draw(st.integers(1, 3))
        table, rows = draw_rows(data, model, n)
        new = data.draw(st.lists(values_of(t), min_size=n, max_size=n))
        model.columns[model.last_id] = (name, t)
        for r, v in zip(rows, new, strict=True):
            r[model.last_id] = v
        model.rows += rows
        return ds.append(table.append_column(name, pa.array(new, t)), schema_mode="add")
    fid = data.draw(st.sampled_from(fids))
    name, t = model.columns[fid]
    if op == "rename":
        new_name = model.free_name(data)
        if new_name is None:
            return ds
        model.columns[fid] = (new_name, t)
        return ds.evolve(rename={name: new_name})
    if op == "drop":
        if len(fids) == 1:
            return ds
        del model.columns[fid]
        return ds.evolve(drop=[name])
    if not WIDER[t]:
        return ds
    wider = data.draw(st.sampled_from(WIDER[t]))
    model.columns[fid] = (name, wider)
    return ds.evolve(widen={name: wider})


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_evolution_matches_the_model(data):
    uri = f"memory://lakever-model/{uuid.uuid4().hex}"
    model = Model()
    first = data.draw(st.lists(st.sampled_from(BASE), min_size=1, max_size=3))
    for i, t in enumerate(first):
        model.last_id += 1
        model.columns[model.last_id] = (NAMES[i], t)
    table, rows = draw_rows(data, model, data.draw(st.integers(1, 3)))
    model.rows = rows
    ds = lv.create_dataset(uri, table)
    expected = [(model.schema(), model.read())]
    for _ in range(data.draw(st.integers(1, 8))):
        ds = step(data, ds, model)
        if ds.version == len(expected):
            expected.append((model.schema(), model.read()))
        assert ds.version == len(expected) - 1
    for version, (schema, rows) in enumerate(expected):
        old = lv.open_dataset(uri, version=version)
        assert old.schema == schema, version
        assert old.to_arrow().to_pylist() == rows, version
        assert old.to_arrow(filter="TRUE").to_pylist() == rows, version
    batches = pa.Table.from_batches(list(ds.to_batches(2)), schema=ds.schema)
    assert batches.to_pylist() == expected[-1][1]
