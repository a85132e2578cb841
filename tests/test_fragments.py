"""Fragments on disk: plain Parquet with field ids, hashes that match the bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lakever as lv
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
