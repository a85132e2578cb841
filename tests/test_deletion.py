"""Deletion vectors: the file, its verification, and the position arithmetic."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakever as lv
from lakever.deletion import (
    _CACHE,
    difference,
    encode,
    keep_mask,
    positions_of,
    union,
    write_deletion_vector,
)
from lakever.format import FragmentEntry
from lakever.storage import open_storage


def positions(*ps: int) -> pa.Array:
    return pa.array(ps, pa.int64())


def entry(num_rows: int = 10, **kw) -> FragmentEntry:
    return FragmentEntry("data/a.parquet", num_rows, 1, "sha256:0", {}, "0" * 32, **kw)


def test_the_file_is_plain_parquet_and_content_addressed(tmp_path):
    storage = open_storage(str(tmp_path / "ds"))
    dv = write_deletion_vector(storage, positions(1, 2, 3, 7))
    assert dv.count == 4 and dv.path.startswith("_lakever/deletions/")
    table = pq.read_table(tmp_path / "ds" / dv.path)
    assert table.schema.names == ["position"] and table["position"].to_pylist() == [1, 2, 3, 7]
    again = write_deletion_vector(storage, positions(1, 2, 3, 7))
    assert again == dv  # same bytes, same name: written once
    assert positions_of(storage, entry(deletion=dv)).to_pylist() == [1, 2, 3, 7]
    assert positions_of(storage, entry()).to_pylist() == []
    # a long run of positions costs almost nothing
    assert len(encode(pa.array(range(10_000, 20_000), pa.int64()))) < 1024


def test_tampered_missing_or_impossible_vectors_are_corrupt(tmp_path):
    storage = open_storage(str(tmp_path / "ds"))
    dv = write_deletion_vector(storage, positions(4, 5))
    _CACHE.clear()  # forget what the writer cached
    path = tmp_path / "ds" / dv.path
    path.write_bytes(encode(positions(4, 6)))
    with pytest.raises(lv.CorruptMetadata, match="does not match the hash"):
        positions_of(storage, entry(deletion=dv))
    path.unlink()
    with pytest.raises(lv.CorruptMetadata, match="is missing"):
        positions_of(storage, entry(deletion=dv))
    bad = write_deletion_vector(storage, positions(3, 3, 12))
    _CACHE.clear()
    with pytest.raises(lv.CorruptMetadata, match="sorted, unique positions below 10"):
        positions_of(storage, entry(deletion=bad))
    short = write_deletion_vector(storage, positions(1, 2))
    with pytest.raises(lv.CorruptMetadata, match="does not hold 3"):
        positions_of(storage, entry(deletion=dataclasses.replace(short, count=3)))


def test_position_arithmetic():
    assert union(positions(5, 1), positions(3, 5)).to_pylist() == [1, 3, 5]
    assert difference(positions(1, 3, 5), positions(3)).to_pylist() == [1, 5]
    assert difference(positions(1), positions()).to_pylist() == [1]
    mask = keep_mask(10, positions(0, 7, 9))
    assert mask.to_pylist() == [False, True, True, True, True, True, True, False, True, False]
    assert keep_mask(3, positions()).to_pylist() == [True, True, True]
