"""Fragments on disk: plain Parquet with field ids, hashes that match the bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakever as lv
from lakever import fragments
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


def test_a_failed_fragment_write_leaves_no_file(tmp_path, monkeypatch):
    """An error in the middle of encoding reaches the caller as a LakeverError and the
    partial file is removed."""
    real_write = os.write
    calls = iter(range(10**9))

    def failing(fd, data):
        if next(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 10))
    before = sorted(os.listdir(tmp_path / "ds" / "data"))
    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(lv.StorageError, match="No space left on device"):
        ds.append(events(10, 5000))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "ds" / "data")) == before
    assert lv.open_dataset(str(tmp_path / "ds")).num_rows == 10
