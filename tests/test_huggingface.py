"""`Dataset.to_huggingface`: a ``datasets.Dataset`` over the snapshot's Arrow table.

Round trips are checked against `to_arrow` at several versions (after a schema change
and after deletions), the pin recorded in ``info.description`` reopens the snapshot,
the Arrow buffers are shared rather than copied, and a missing ``datasets`` raises
`MissingDependency` naming the extra.
"""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.interop.huggingface import pin_of

datasets = pytest.importorskip("datasets")


def _values(table: pa.Table) -> dict[str, list[Any]]:
    return table.to_pydict()


def _hf_table(hf: Any) -> pa.Table:
    """The Arrow table a datasets.Dataset holds (no indices mapping: all rows, in order)."""
    table: pa.Table = hf.data.table
    return table


def _same(hf: Any, want: pa.Table) -> None:
    """The Dataset holds ``want``: names, types (datasets makes every field nullable and
    adds its own schema metadata) and values."""
    got = _hf_table(hf)
    assert got.column_names == want.column_names
    assert [f.type for f in got.schema] == [f.type for f in want.schema]
    assert got.num_rows == want.num_rows == len(hf)
    assert _values(got) == _values(want)


@pytest.fixture
def history(tmp_path) -> list[lv.Dataset]:
    """Versions 0-3: created; appended; a column renamed and one added; rows deleted."""
    loc = str(tmp_path / "events")
    v0 = lv.create_dataset(
        loc,
        pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int32()),
                "text": ["a", "b", None],
                "emb": pa.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], pa.list_(pa.float32(), 2)),
            }
        ),
    )
    v1 = v0.append(
        pa.table(
            {
                "id": pa.array([4, 5], pa.int32()),
                "text": ["d", "e"],
                "emb": pa.array([[2.0, 2.0], [3.0, 3.0]], pa.list_(pa.float32(), 2)),
            }
        )
    )
    v2 = v1.evolve(rename={"text": "body"}, add={"label": pa.int64()}, widen={"id": pa.int64()})
    v3 = v2.delete(where="id IN (2, 4)")
    return [v0, v1, v2, v3]


def test_round_trip_at_every_version(history):
    for ds in history:
        _same(ds.to_huggingface(), ds.to_arrow())
    latest = history[-1]
    assert latest.to_huggingface()["id"] == [1, 3, 5]
    assert latest.to_huggingface()["body"] == ["a", None, "e"]
    assert latest.to_huggingface()["label"] == [None, None, None]


def test_columns_and_filter_are_those_of_to_arrow(history):
    ds = history[-1]
    hf = ds.to_huggingface(["body", "id"], filter="id > 1")
    _same(hf, ds.to_arrow(["body", "id"], filter="id > 1"))
    assert hf.column_names == ["body", "id"]


def test_the_pin_is_recorded_and_reopens_the_snapshot(history):
    ds = history[2]
    hf = ds.to_huggingface(["id"], filter="id < 5")
    pin = pin_of(hf)
    assert pin == ds.pin()
    assert hf.info.description.startswith(f"lakever pin: {pin}\n")
    assert '"filter": "id < 5"' in hf.info.description
    again = lv.open_dataset(pin)
    assert again.snapshot_id == ds.snapshot_id and again.version == 2
    _same(hf, again.to_arrow(["id"], filter="id < 5"))
    assert hf.info.dataset_name == "events"
    # the fingerprint names the snapshot, columns and filter: stable, and distinct
    assert hf._fingerprint == ds.to_huggingface(["id"], filter="id < 5")._fingerprint
    assert hf._fingerprint != ds.to_huggingface(["id"])._fingerprint
    assert hf._fingerprint != history[3].to_huggingface(["id"], filter="id < 5")._fingerprint
    assert pin_of(datasets.Dataset.from_dict({"a": [1]})) is None


def test_the_arrow_buffers_are_not_copied(history, monkeypatch):
    import lakever.reader
    import lakever.sqlplan

    read: list[pa.Table] = []
    exact, arrow = lakever.sqlplan.read_exact, lakever.reader.ScanPlan.to_arrow

    def by_duckdb(plan: Any) -> pa.Table | None:
        table = exact(plan)
        read.extend([] if table is None else [table])
        return table

    def by_arrow(plan: Any) -> pa.Table:
        read.append(arrow(plan))
        return read[-1]

    monkeypatch.setattr(lakever.sqlplan, "read_exact", by_duckdb)
    monkeypatch.setattr(lakever.reader.ScanPlan, "to_arrow", by_arrow)
    # all columns (a fixed-size list: the Arrow reader), then flat ones (read by DuckDB)
    for columns in (None, ["id", "text"]):
        read.clear()
        hf = history[1].to_huggingface(columns)
        (table,) = read
        held = _hf_table(hf)
        for name in table.column_names:
            pairs = zip(table.column(name).chunks, held.column(name).chunks, strict=True)
            for mine, theirs in pairs:
                assert [b.address if b else None for b in mine.buffers()] == [
                    b.address if b else None for b in theirs.buffers()
                ], name


def test_missing_datasets_names_the_extra(history, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(lv.MissingDependency, match=r"lakever\[huggingface\]") as info:
        history[0].to_huggingface()
    assert info.value.extra == "huggingface" and info.value.module == "datasets"


def test_a_column_datasets_cannot_hold_is_named(tmp_path):
    ds = lv.create_dataset(
        str(tmp_path / "e"),
        pa.table(
            {
                "id": pa.array([1], pa.int64()),
                "attrs": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            }
        ),
    )
    with pytest.raises(lv.InvalidArgument, match=r"attrs \(map<string, int64>\)"):
        ds.to_huggingface()
    assert ds.to_huggingface(["id"])["id"] == [1]


def test_bad_columns_and_filters_are_refused(history):
    with pytest.raises(lv.InvalidArgument, match="nope"):
        history[0].to_huggingface(["nope"])
    with pytest.raises(lv.InvalidArgument):
        history[0].to_huggingface(filter="id >")


def test_an_empty_snapshot(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), pa.table({"id": pa.array([], pa.int64())}))
    hf = ds.to_huggingface()
    assert len(hf) == 0 and hf.column_names == ["id"]


@settings(max_examples=15)
@given(
    rows=st.lists(
        st.tuples(st.integers(-(2**40), 2**40), st.one_of(st.none(), st.text(max_size=5))),
        max_size=30,
    ),
    cut=st.integers(-5, 5),
)
def test_random_round_trips_equal_a_plain_filter(tmp_path_factory, rows, cut):
    """Against pyarrow filtering the unpruned read: the same rows, in the same order."""
    loc = str(tmp_path_factory.mktemp("hf") / "e")
    table = pa.table(
        {
            "k": pa.array([r[0] for r in rows], pa.int64()),
            "s": pa.array([r[1] for r in rows], pa.string()),
        }
    )
    ds = lv.create_dataset(loc, table, max_rows_per_fragment=7)
    want = ds.to_arrow()
    want = want.filter(pc.greater(want["k"], cut * 2**38))
    _same(ds.to_huggingface(filter=f"k > {cut * 2**38}"), want)


def test_import_lakever_loads_neither_datasets_nor_torch():
    import subprocess

    code = (
        "import sys, lakever, lakever.ml.batches, lakever.interop.huggingface; "
        "print([m for m in ('datasets', 'torch', 'jax') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
