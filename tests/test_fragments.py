"""Fragments on disk: plain Parquet with field ids, hashes that match the bytes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever import fragments
from lakever.schema import assign_field_ids
from lakever.storage import LocalStorage, open_storage
from tests._data import events


def test_fragments_are_parquet_with_field_ids(local_location):
    t = pa.table({"id": [1], "s": pa.array([{"x": 1}], pa.struct([("x", pa.int64())]))})
    ds = lv.create_dataset(local_location, t)
    (frag,) = ds.fragments()
    schema = pq.read_schema(frag.uri)
    assert schema.field("id").metadata[b"PARQUET:field_id"] == b"1"
    assert schema.field("s").type.field("x").metadata[b"PARQUET:field_id"] == b"3"
    parquet_schema = pq.ParquetFile(frag.uri).schema
    assert [parquet_schema.column(i).path for i in range(2)] == ["id", "s.x"]


def test_content_hash_matches_bytes(local_location):
    ds = lv.create_dataset(local_location, events(0, 100))
    for frag in ds.fragments():
        digest = hashlib.sha256(Path(frag.uri).read_bytes()).hexdigest()
        assert frag.content_hash == f"sha256:{digest}"
        assert frag.size_bytes == Path(frag.uri).stat().st_size


def test_fragments_are_never_rewritten(local_location):
    ds = lv.create_dataset(local_location, events(0, 10))
    first = {f.uri: Path(f.uri).read_bytes() for f in ds.fragments()}
    ds = ds.append(events(10, 10))
    ds = ds.overwrite(events(0, 1))
    for uri, data in first.items():
        assert Path(uri).read_bytes() == data
    assert lv.open_dataset(local_location, version=0).to_arrow().equals(events(0, 10))


# ---------------------------------------------------------------- streamed writes


def test_streamed_hash_is_the_sha256_of_the_stored_bytes(location):
    """Fragments are encoded straight into storage; the hash and size recorded are those
    of the bytes the backend stored (several fragments, written by parallel threads)."""
    ds = lv.create_dataset(location, events(0, 50))
    ds = ds.append(events(50, 1000), max_rows_per_fragment=300)
    store = open_storage(location)
    frags = ds.fragments()
    assert len(frags) == 5
    for frag in frags:
        data = store.read_bytes(frag.path)
        assert frag.content_hash == f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert frag.size_bytes == len(data)
        assert pq.read_table(pa.BufferReader(data)).num_rows == frag.num_rows
    assert ds.verify().problems == ()
    assert ds.to_arrow().sort_by("id").equals(events(0, 1050))


def test_fragment_bytes_are_streamed_not_buffered(tmp_path):
    """The Parquet writer's output reaches storage in pieces as it is produced."""
    writes: list[int] = []

    class Counting(LocalStorage):
        def write_new_stream(self, rel, produce):
            def counted(sink):
                class Sink:
                    def write(self, data):
                        writes.append(len(data))
                        sink.write(data)

                produce(Sink())

            super().write_new_stream(rel, counted)

    store = Counting(str(tmp_path / "ds"))
    table = pa.table({"id": pa.array(range(200_000), pa.int64())})
    (entry,) = fragments.write_fragments(store, [table], schema_id="s")
    data = store.read_bytes(entry.path)
    assert len(writes) > 3 and max(writes) < len(data) == sum(writes) == entry.size_bytes
    assert entry.content_hash == f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.mark.parametrize(
    ("rows", "fail_at"),
    [
        (5_000, 0),  # <= 1 MiB: encoded in memory, written in one call; that call fails
        (100_000, 2),  # > 1 MiB: streamed; a write in the middle of the stream fails
    ],
)
def test_a_failed_fragment_write_leaves_no_file(tmp_path, monkeypatch, rows, fail_at):
    """An error while writing a fragment (in one piece or in the middle of a stream)
    reaches the caller as a LakeverError and the partial file is removed."""
    assert (events(10, rows).nbytes > fragments._BUFFERED_MAX) == (fail_at > 0)
    real_write = os.write
    calls = iter(range(10**9))

    def failing(fd, data):
        if next(calls) == fail_at:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 10))
    before = sorted(os.listdir(tmp_path / "ds" / "data"))
    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(lv.StorageError, match="No space left on device"):
        ds.append(events(10, rows))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "ds" / "data")) == before
    assert lv.open_dataset(str(tmp_path / "ds")).num_rows == 10


# ---------------------------------------------------------------- statistics from the footer

_ZEROS = [0.0, -0.0]
_SPECIAL = [*_ZEROS, math.nan, math.inf, -math.inf, 5e-324, 1.0, -1.5]
_SECONDS = st.integers(-5 * 86_400, 5 * 86_400)


def _column(t: pa.DataType, values: list[object]) -> pa.Array:
    if pa.types.is_temporal(t):  # drawn as integer ticks
        storage = pa.int32() if t.bit_width == 32 else pa.int64()
        return pa.array(values, storage).cast(t)
    return pa.array(values, t)


#: type -> values of it (temporal ones as ticks), each column also gets nulls.
_STAT_TYPES: dict[str, tuple[pa.DataType, st.SearchStrategy[object]]] = {
    "i8": (pa.int8(), st.integers(-128, 127)),
    "i64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "u16": (pa.uint16(), st.integers(0, 2**16 - 1)),
    "u32": (pa.uint32(), st.integers(0, 2**32 - 1)),
    "u64": (pa.uint64(), st.one_of(st.integers(0, 3), st.integers(2**63 - 2, 2**64 - 1))),
    "f32": (pa.float32(), st.one_of(st.sampled_from(_SPECIAL), st.floats(width=32))),
    "f64": (pa.float64(), st.one_of(st.sampled_from(_SPECIAL), st.floats())),
    "b": (pa.bool_(), st.booleans()),
    "s": (pa.string(), st.one_of(st.text(max_size=4), st.text(min_size=60, max_size=70))),
    "ls": (pa.large_string(), st.text("aé日😀", max_size=66)),
    "dec": (pa.decimal128(9, 2), st.decimals(-999, 999, places=2, allow_nan=False)),
    "d32": (pa.date32(), st.integers(-800, 800)),
    "d64": (pa.date64(), st.integers(-800, 800).map(lambda d: d * 86_400_000)),
    "ts_s": (pa.timestamp("s"), _SECONDS),
    "ts_ms": (pa.timestamp("ms", tz="+05:30"), _SECONDS.map(lambda s: s * 1000 + 7)),
    "ts_us": (pa.timestamp("us", tz="UTC"), st.integers(-(2**50), 2**50)),
    "ts_ns": (pa.timestamp("ns"), st.integers(-(2**62), 2**62)),
    "t32s": (pa.time32("s"), st.integers(0, 86_399)),
    "t32ms": (pa.time32("ms"), st.integers(0, 86_399_999)),
    "t64us": (pa.time64("us"), st.integers(0, 86_399_999_999)),
    "t64ns": (pa.time64("ns"), st.integers(0, 86_399_999_999_999)),
    "dur": (pa.duration("us"), st.integers(-(10**9), 10**9)),
}


@st.composite
def _stat_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 30))
    names = draw(st.lists(st.sampled_from(sorted(_STAT_TYPES)), min_size=1, unique=True))
    cols = {}
    for name in names:
        t, values = _STAT_TYPES[name]
        cells = st.one_of(st.none(), values) if draw(st.booleans()) else values
        cols[name] = _column(t, draw(st.lists(cells, min_size=n, max_size=n)))
    cols["a.b"] = pa.array(range(n), pa.int64())  # a dotted name: computed, not looked up
    cols["nested"] = pa.array([{"x": i} for i in range(n)])
    table = pa.table(cols)
    return table.cast(assign_field_ids(table.schema)[0])


@given(table=_stat_tables(), rows_per_group=st.integers(1, 12))
def test_statistics_from_the_footer_equal_the_computed_ones(table, rows_per_group):
    """Bounds read from the Parquet footer are exactly what computing them from the rows
    records (same values, same JSON: -0.0 stays -0.0, unsigned stays unsigned, temporal
    columns are ticks of the Arrow unit), over any number of row groups."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table, row_group_size=rows_per_group)
    from_footer = fragments._stats_for(table, writer.writer.metadata)
    computed = fragments._stats_for(table, None)
    assert repr(from_footer) == repr(computed)
    assert json.dumps(from_footer, sort_keys=True) == json.dumps(computed, sort_keys=True)


def test_footer_statistics_are_not_computed_again(monkeypatch):
    """Where the footer has the exact bounds, no min/max pass runs over the rows."""
    table = pa.table(
        {
            "i": pa.array([3, None, -7], pa.int64()),
            "u": pa.array([2**64 - 1, 0, 5], pa.uint64()),
            "f": pa.array([0.5, math.nan, -2.0]),
            "s": pa.array(["b", "a", None]),
            "ts": pa.array([5, 1, 9], pa.timestamp("ns", tz="UTC")),
            "d": pa.array([1, 2, None], pa.date32()),
            "zero": pa.array([-0.0, 1.0, 0.0]),
            "secs": pa.array([4, 2, None], pa.timestamp("s")),
        }
    )
    table = table.cast(assign_field_ids(table.schema)[0])
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table)
    computed_for: list[pa.DataType] = []
    real = fragments.pc.min_max
    monkeypatch.setattr(
        fragments.pc,
        "min_max",
        lambda col, *a, **k: (computed_for.append(col.type), real(col, *a, **k))[1],
    )
    stats = fragments._stats_for(table, writer.writer.metadata)
    # Only the zero bound (sign) and the seconds (stored as milliseconds) are computed.
    assert computed_for == [pa.float64(), pa.timestamp("s")]
    assert stats[2] == {"nulls": 0, "min": 0, "max": 2**64 - 1}
    assert stats[3] == {"nulls": 0, "nans": 1, "min": -2.0, "max": 0.5}
    assert stats[5] == {"nulls": 0, "min": 1, "max": 9}
    assert repr(stats[7]) == "{'nulls': 0, 'nans': 0, 'min': -0.0, 'max': 1.0}"
    assert stats[8] == {"nulls": 1, "min": 2, "max": 4}


def test_only_columns_with_few_distinct_values_get_a_dictionary(tmp_path):
    import pyarrow.parquet as pq

    from lakever.fragments import dictionary_columns

    n = 50_000
    t = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "cat": pa.array([["a", "b", "c"][i % 3] for i in range(n)]),
            "text": pa.array([f"row {i}" for i in range(n)]),
            "flag": pa.array([i % 2 == 0 for i in range(n)]),
            "half": pa.array([i % 5000 for i in range(n)], pa.int32()),
        }
    )
    assert dictionary_columns(t) == ["cat", "flag", "half"]
    assert dictionary_columns(t.slice(0, 500)) is True  # too few rows to judge
    assert dictionary_columns(t.slice(0, 100)) is False  # a small commit: plain encoding
    nested = t.append_column("s", pa.array([{"x": i} for i in range(n)]))
    assert dictionary_columns(nested) is True
    # A type Arrow cannot count distinct values of keeps the writer's default.
    assert "none" in dictionary_columns(t.append_column("none", pa.nulls(n)))
    ds = lv.create_dataset(str(tmp_path / "t"), t)
    assert ds.to_arrow().equals(t)
    (frag,) = ds.fragments()
    meta = pq.ParquetFile(ds._state.storage.full_path(frag.path)).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(5)}
    assert any("DICTIONARY" in e for e in encodings["cat"])
    assert not any("DICTIONARY" in e for e in encodings["id"]), encodings["id"]


def test_a_null_typed_column_is_written_and_read_back(tmp_path):
    t = pa.table({"id": pa.array(range(5000), pa.int64()), "none": pa.nulls(5000)})
    ds = lv.create_dataset(str(tmp_path / "t"), t)
    assert ds.to_arrow().equals(t)


def test_a_million_row_write_is_two_fragments(tmp_path):
    # The default fragment size splits a 1M-row append in two, which the write threads
    # encode at once (docs/benchmarks.md, "fourth pass"); the rows read back in order.
    rows = pa.table({"id": pa.array(range(1_000_000), pa.int64())})
    ds = lv.create_dataset(str(tmp_path / "d"), rows.schema.empty_table()).append(rows)
    assert [f.num_rows for f in ds.fragments()] == [524_288, 475_712]
    assert ds.to_arrow().equals(rows)


def _wide(rows: int, width: int | list[int], start: int = 0) -> pa.Table:
    """``rows`` rows of ``width`` bytes of payload each (or the row's own width from a
    list), plus an 8-byte id."""
    widths = width if isinstance(width, list) else [width] * rows
    payload = [
        bytes([i % 251]) * w for i, w in zip(range(start, start + rows), widths, strict=True)
    ]
    return pa.table(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "blob": pa.array(payload, pa.binary()),
        }
    )


def _row_groups(frag: lv.Fragment) -> list[int]:
    meta = pq.ParquetFile(frag.uri).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def test_wide_rows_split_into_even_fragments_and_row_groups_by_bytes(tmp_path, monkeypatch):
    # 1,000 rows of ~1 KB: ~1.0 MB in memory. With fragments of at most 300 KB and row
    # groups of at most 100 KB, the rows make 4 fragments of 250 rows (not 3 full ones
    # and a remainder), each in 3 row groups of 84/83 rows -- where the row limits
    # alone (524,288 / 1,048,576) made one file of one row group.
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 300_000)
    monkeypatch.setattr(fragments, "ROW_GROUP_BYTES", 100_000)
    rows = _wide(1000, 1000)
    assert 1_000_000 < rows.nbytes < 1_200_000
    ds = lv.create_dataset(str(tmp_path / "d"), rows)
    assert [f.num_rows for f in ds.fragments()] == [250] * 4
    assert [_row_groups(f) for f in ds.fragments()] == [[84, 83, 83]] * 4
    assert ds.to_arrow().equals(rows)
    # The row limit still decides first; then each part is cut by bytes.
    ds = ds.append(_wide(1000, 1000, 1000), max_rows_per_fragment=400)
    assert [f.num_rows for f in ds.fragments()][4:] == [200, 200, 200, 200, 200]


@given(
    widths=st.lists(st.integers(0, 400), min_size=1, max_size=300),
    skewed=st.booleans(),
    max_rows=st.integers(1, 400),
    max_bytes=st.integers(1, 40_000),
    group_bytes=st.integers(1, 20_000),
)
def test_fragments_respect_both_limits_and_keep_the_rows(
    widths, skewed, max_rows, max_bytes, group_bytes
):
    # Uniform rows are cut evenly; skewed ones (a run of wide rows after narrow ones, as a
    # sort by size makes) by their bytes. Either way no fragment or row group holds more
    # than about its byte limit (an eighth over at most), unless it is a single row.
    rows = len(widths)
    if skewed:
        widths = sorted(w * w // 40 for w in widths)  # up to 4,000 bytes, wide ones last
    else:
        widths = [widths[0]] * rows
    schema, _ = assign_field_ids(_wide(1, 1).schema)
    table = _wide(rows, widths).cast(schema)
    with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as mp:
        mp.setattr(fragments, "ROW_GROUP_BYTES", group_bytes)
        mp.setattr(fragments, "MAX_FRAGMENT_BYTES", max_bytes)
        storage = LocalStorage(root, fsync=False)
        entries = fragments.write_fragments(storage, [table], schema_id="s", max_rows=max_rows)
        files = [pq.ParquetFile(storage.full_path(e.path)) for e in entries]
        back = pa.concat_tables(f.read() for f in files)
        groups = [
            [f.metadata.row_group(i).num_rows for i in range(f.metadata.num_row_groups)]
            for f in files
        ]
    assert back.column("id").to_pylist() == list(range(rows))
    assert back.column("blob").equals(table.column("blob"))

    def within(part: pa.Table, limit: int) -> bool:
        return part.num_rows == 1 or part.nbytes <= limit + limit // 8

    start = 0
    for e, sizes in zip(entries, groups, strict=True):
        part = table.slice(start, e.num_rows)
        assert e.num_rows <= max_rows
        assert within(part, max_bytes), (e.num_rows, part.nbytes)
        assert sum(sizes) == e.num_rows
        offset = 0
        for n in sizes:
            assert within(part.slice(offset, n), group_bytes), (n, part.slice(offset, n).nbytes)
            offset += n
        if not skewed:
            assert max(sizes) - min(sizes) <= 1  # row groups cut evenly
        start += e.num_rows
    if not skewed:
        # The fewest fragments the limits need: the row cut, then each part by bytes (a
        # slice's offsets count one 4-byte entry more than its share of the whole) --
        # or one row each, where no two rows fit in the limit together.
        by_rows = math.ceil(rows / max_rows)
        bound = by_rows + math.ceil((table.nbytes + 8 * by_rows) / max_bytes)
        assert len(entries) <= bound or max(e.num_rows for e in entries) == 1


def test_a_run_of_wide_rows_is_cut_by_bytes(tmp_path, monkeypatch):
    # 990 one-byte rows then 10 rows of 40 KB (a sort by size does this): an even cut by
    # rows made eight tiny fragments and one of 400 KB; cut by bytes, the narrow rows are
    # one fragment and each 40 KB row one of its own (two do not fit in 50 KB).
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 50_000)
    monkeypatch.setattr(fragments, "ROW_GROUP_BYTES", 20_000)
    rows = _wide(1000, [1] * 990 + [40_000] * 10)
    ds = lv.create_dataset(str(tmp_path / "d"), rows)
    assert [f.num_rows for f in ds.fragments()] == [990] + [1] * 10
    assert max(f.size_bytes for f in ds.fragments()) < 50_000
    assert ds.to_arrow().equals(rows)


def test_compaction_writes_a_group_as_one_fragment_whatever_its_bytes(tmp_path, monkeypatch):
    # The write's byte limit does not apply to compaction: a group of small fragments
    # becomes one fragment, and compacting again commits nothing (no churn).
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 30_000)
    ds = lv.create_dataset(str(tmp_path / "d"), _wide(20, 1000))
    for i in range(1, 6):
        ds = ds.append(_wide(20, 1000, 20 * i))
    assert len(ds.fragments()) == 6
    compacted = ds.compact()
    assert [f.num_rows for f in compacted.fragments()] == [120]
    assert compacted.to_arrow().equals(_wide(120, 1000))
    assert compacted.compact().version == compacted.version


def test_a_stream_of_wide_rows_is_written_as_it_comes(tmp_path, monkeypatch):
    # A RecordBatchReader of wide rows is cut by bytes as it is read: the first fragment
    # is written after about MAX_FRAGMENT_BYTES of rows were pulled, not after the row
    # limits (1M rows gathered, then 524,288 per fragment) pulled the whole stream.
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 50_000)
    monkeypatch.setattr("lakever._convert._STREAM_BYTES", 20_000)
    pulled = []
    first_write: list[int] = []
    write_one = fragments._write_one

    def counting(*args, **kwargs):
        first_write.append(len(pulled)) if not first_write else None
        return write_one(*args, **kwargs)

    monkeypatch.setattr(fragments, "_write_one", counting)
    schema = _wide(1, 1000).schema

    def batches():
        for i in range(100):  # 100 batches of 10 rows of ~1 KB: ~1 MB in all
            pulled.append(i)
            yield pa.RecordBatch.from_pydict(_wide(10, 1000, 10 * i).to_pydict(), schema=schema)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    ds = lv.create_dataset(str(tmp_path / "d"), reader)
    assert ds.num_rows == 1000
    assert first_write and first_write[0] <= 10, first_write  # ~80 KB pulled, not all 1 MB
    assert ds.to_arrow().equals(_wide(1000, 1000))


def test_a_stream_of_slices_of_one_table_is_measured_by_what_they_hold(tmp_path, monkeypatch):
    # Batches that are slices of one large table each report the whole buffers'
    # size; the byte limit counts what each slice holds (nbytes), so 30 batches of
    # 1,000 narrow rows still make fragments of max_rows rows, not one per batch.
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 300_000)
    monkeypatch.setattr("lakever._convert._STREAM_BYTES", 300_000)
    big = pa.table({"id": pa.array(range(30_000), pa.int64()), "v": pa.array([0.5] * 30_000)})
    assert big.get_total_buffer_size() > 300_000 > big.slice(0, 10_000).nbytes
    reader = pa.RecordBatchReader.from_batches(big.schema, big.to_batches(max_chunksize=1000))
    ds = lv.create_dataset(str(tmp_path / "d"), reader, max_rows_per_fragment=10_000)
    assert [f.num_rows for f in ds.fragments()] == [10_000] * 3
    assert ds.to_arrow().equals(big)


def test_a_stream_of_wide_rows_fills_its_fragments(tmp_path, monkeypatch):
    # Pieces of a stream end before the batch that would pass the byte limit, so the
    # fragments are close to MAX_FRAGMENT_BYTES; ending them just past it made every
    # piece too big by a little, and each was then cut in two halves.
    monkeypatch.setattr(fragments, "MAX_FRAGMENT_BYTES", 512_000)
    monkeypatch.setattr("lakever._convert._STREAM_BYTES", 64_000)
    rows = _wide(10_000, 1000)
    reader = pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches(max_chunksize=10))
    ds = lv.create_dataset(str(tmp_path / "d"), reader)
    sizes = [rows.slice(0, f.num_rows).nbytes for f in ds.fragments()]
    assert all(384_000 < s <= 512_000 for s in sizes[:-1]), sizes
    assert ds.to_arrow().equals(rows)
