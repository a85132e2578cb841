"""Reads of issue 13: unfiltered `to_arrow` through DuckDB, and bounded streaming.

`Dataset.to_arrow()` hands DuckDB the whole file list once; it must return what the
Arrow reader (`ScanPlan.to_arrow`) and plain DuckDB over all the files return.
`Dataset.to_batches(readahead=)` streams the Parquet reader behind a queue of at most
``readahead`` batches: the tests count the batches decoded ahead of the caller (the
bound), not wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakever as lv
import lakever.reader as reader
from lakever.reader import prefetch
from lakever.sqlplan import read_exact
from tests._data import events


@pytest.fixture
def grouped(local_location, monkeypatch) -> lv.Dataset:
    """Fragments of 40 rows in row groups of 10, two schemas, deletions in some."""
    monkeypatch.setattr("lakever.fragments.ROW_GROUP_ROWS", 10)
    ds = lv.create_dataset(local_location, events(0, 100), max_rows_per_fragment=40)
    ds = ds.evolve(rename={"value": "score"}, add={"note": pa.string()})
    ds = ds.append(events(100, 45).rename_columns(["id", "score", "category"]), schema_mode="add")
    return ds.delete(where="id IN (3, 17, 41, 42, 99, 120)")


def _same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    for name in want.column_names:
        assert [repr(v) for v in got.column(name).to_pylist()] == [
            repr(v) for v in want.column(name).to_pylist()
        ], name


def _duckdb_all_files(ds: lv.Dataset) -> list[tuple[object, ...]]:
    """Rows (id, score) plain DuckDB reads from every fragment, minus the deleted ids."""
    files = [f"{ds.uri}/{f.path}" for f in ds.fragments()]
    con = duckdb.connect()
    rows = con.sql(
        "SELECT id, coalesce(score, value) FROM read_parquet($files, union_by_name=true)",
        params={"files": files},
    ).fetchall()
    live = set(ds.to_arrow(["id"]).column("id").to_pylist())
    return sorted(r for r in rows if r[0] in live)


# ----------------------------------------------------------------------------- to_arrow


def test_unfiltered_to_arrow_is_read_by_duckdb_and_equals_the_arrow_reader(grouped):
    plan = grouped.plan()
    engine = read_exact(plan)
    assert engine is not None  # the one-read_parquet path is the one taken
    _same(engine, plan.to_arrow())
    _same(grouped.to_arrow(), plan.to_arrow())
    _same(grouped.to_arrow(["score", "id"]), grouped.plan(columns=["score", "id"]).to_arrow())
    got = grouped.to_arrow(["id", "score"])
    assert sorted(zip(*got.to_pydict().values(), strict=True)) == _duckdb_all_files(grouped)


def test_split_plans_are_not_read_by_duckdb(grouped):
    """DuckDB reads whole files: a plan cut into row groups goes through Arrow."""
    plan = grouped.plan().split(10)
    assert any(t.row_range is not None for t in plan.tasks)
    assert read_exact(plan) is None


def test_unfiltered_to_arrow_of_a_damaged_fragment_is_named(grouped, tmp_path):
    path = f"{grouped.uri}/{grouped.fragments()[1].path}"
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x01
    with open(path, "wb") as f:
        f.write(bytes(data))
    fresh = lv.open_dataset(grouped.uri)
    import lakever.integrity as integrity

    integrity._VERIFIED.clear()
    with pytest.raises(lv.CorruptData, match="damaged or replaced"):
        fresh.to_arrow()
    with pytest.raises(lv.CorruptData):
        next(iter(fresh.to_batches(readahead=3)))


# ----------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("readahead", [0, 1, 3])
@pytest.mark.parametrize("where", [None, "id % 3 = 0", "score > 0.5"])
def test_to_batches_equals_the_arrow_reader_at_every_readahead(grouped, readahead, where):
    want = grouped.plan(filter=where).to_arrow()
    batches = list(grouped.to_batches(batch_size=7, filter=where, readahead=readahead))
    assert [b.num_rows for b in batches[:-1]] == [7] * (len(batches) - 1)
    got = pa.Table.from_batches(batches, schema=want.schema)
    _same(got, want)


def _lead_of(ds: lv.Dataset, monkeypatch, readahead: int) -> list[int]:
    """Batches decoded ahead of the caller, seen after each batch it takes."""
    made = [0]
    real = reader._file_batches

    def counted(*args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        for b in real(*args, **kwargs):  # type: ignore[arg-type]
            made[0] += 1
            yield b

    monkeypatch.setattr(reader, "_file_batches", counted)
    leads = []
    # Row groups of 10 rows and batches of 10: one decoded batch per batch taken.
    for taken, _ in enumerate(ds.to_batches(batch_size=10, columns=["id"], readahead=readahead)):
        time.sleep(0.02)  # give the reading thread time to run as far ahead as it may
        leads.append(made[0] - (taken + 1))
    return leads


@pytest.mark.parametrize("readahead", [0, 1, 4])
def test_readahead_bounds_the_batches_decoded_ahead(local_location, monkeypatch, readahead):
    monkeypatch.setattr("lakever.fragments.ROW_GROUP_ROWS", 10)
    ds = lv.create_dataset(local_location, events(0, 200), max_rows_per_fragment=50)
    leads = _lead_of(ds, monkeypatch, readahead)
    assert len(leads) == 20
    # At most `readahead` batches wait in the queue and one more may be decoded, blocked.
    assert max(leads) <= readahead + 1, leads
    if readahead == 0:
        assert max(leads) == 0  # nothing is decoded before it is asked for
    else:
        assert max(leads) >= 1  # the background thread does read ahead


def test_prefetch_bounds_the_lead_and_keeps_order():
    made = [0]

    def items() -> Iterator[int]:
        for i in range(50):
            made[0] += 1
            yield i

    got = []
    for i in prefetch(items(), 3):
        time.sleep(0.002)
        assert made[0] - (i + 1) <= 4
        got.append(i)
    assert got == list(range(50))


def test_prefetch_raises_the_producers_error_in_the_caller():
    def items() -> Iterator[int]:
        yield 1
        raise lv.CorruptData("bad file", path="x", snapshot_id="s")

    it = prefetch(items(), 2)
    assert next(it) == 1
    with pytest.raises(lv.CorruptData, match="bad file"):
        next(it)


def test_stopping_a_stream_early_stops_its_reading_thread(grouped):
    before = {t.ident for t in threading.enumerate() if t.name == "lakever-read"}
    stream = grouped.to_batches(batch_size=5, readahead=2)
    next(stream)
    stream.close()
    time.sleep(0.1)
    alive = {t.ident for t in threading.enumerate() if t.name == "lakever-read"}
    assert alive <= before


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2", None])
def test_readahead_is_checked(grouped, bad):
    with pytest.raises(lv.InvalidArgument, match="readahead"):
        grouped.to_batches(readahead=bad)
    with pytest.raises(lv.InvalidArgument, match="readahead"):
        grouped.plan().to_batches(readahead=bad)


@given(
    n=st.integers(1, 120),
    rpf=st.integers(5, 60),
    row_group=st.integers(1, 25),
    modulus=st.integers(2, 7),
    batch_size=st.integers(1, 40),
    readahead=st.integers(0, 5),
)
@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=20,
    deadline=None,
)
def test_streams_and_engine_reads_agree_with_duckdb_over_all_files(
    tmp_path_factory, n, rpf, row_group, modulus, batch_size, readahead
):
    from unittest import mock

    root = tmp_path_factory.mktemp("stream")
    with mock.patch("lakever.fragments.ROW_GROUP_ROWS", row_group):
        ds = lv.create_dataset(str(root / "t"), events(0, n), max_rows_per_fragment=rpf)
    ds = ds.delete(where=f"id % {modulus} = 1")
    files = [f"{ds.uri}/{f.path}" for f in ds.fragments()]
    want = [
        r[0]
        for r in duckdb.sql(
            f"SELECT id FROM read_parquet($files) WHERE id % {modulus} <> 1",
            params={"files": files},
        ).fetchall()
    ]
    stream = [
        i
        for b in ds.to_batches(batch_size=batch_size, readahead=readahead)
        for i in b.column("id").to_pylist()
    ]
    assert sorted(stream) == sorted(want)
    assert stream == ds.to_arrow().column("id").to_pylist()  # same order on both paths
    _same(ds.to_arrow(), ds.plan().to_arrow())


def test_streaming_a_local_file_does_not_hold_its_row_group(local_location):
    # 24 MB of incompressible rows in one fragment of one row group (as a file written
    # before row groups were bounded by bytes, or by another writer). Streamed in batches
    # of 64 rows (~256 KB), Arrow's allocations stay far below the row group: pyarrow's
    # default pre-buffers every column chunk of the row group first (all 24 MB).
    rng = np.random.default_rng(5)
    rows = pa.table(
        {
            "id": pa.array(range(6000), pa.int64()),
            "blob": pa.array([rng.bytes(4000) for _ in range(6000)], pa.binary()),
        }
    )
    ds = lv.create_dataset(local_location, rows)
    (frag,) = ds.fragments()
    assert pq.ParquetFile(frag.uri).metadata.num_row_groups == 1
    before = pa.total_allocated_bytes()
    peak = 0
    ids = []
    for batch in ds.to_batches(64, readahead=0):
        peak = max(peak, pa.total_allocated_bytes() - before)
        ids.extend(batch.column("id").to_pylist())
    assert ids == list(range(6000))
    assert peak < 12 << 20, f"{peak >> 20} MiB held while streaming a 24 MB row group"
