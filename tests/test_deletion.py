"""Deletion vectors: the file, its verification, and the position arithmetic."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever.deletion import (
    _CACHE,
    _new_cache,
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


# ------------------------------------------------------------ what a valid vector is


@pytest.mark.parametrize(
    ("stored", "num_rows"),
    [
        ((3, 3), 10),  # a duplicate position inside the fragment
        ((1, 4, 4, 6), 10),
        ((5, 3), 10),  # not sorted
        ((-1, 2), 10),  # negative
        ((2, 10), 10),  # one past the last row
        ((10,), 10),
    ],
)
def test_vectors_that_are_not_sorted_unique_positions_inside_the_fragment_are_corrupt(
    tmp_path, stored, num_rows
):
    storage = open_storage(str(tmp_path / "ds"))
    dv = write_deletion_vector(storage, positions(*stored))
    _CACHE.clear()  # as read by another process
    with pytest.raises(lv.CorruptMetadata, match=f"unique positions below {num_rows}"):
        positions_of(storage, entry(num_rows, deletion=dv))


@pytest.mark.parametrize(("stored", "num_rows"), [((0,), 1), ((9,), 10), ((0, 1, 9), 10), ((), 3)])
@pytest.mark.parametrize("cached", [False, True])
def test_vectors_at_the_edges_of_the_fragment_are_valid(tmp_path, stored, num_rows, cached):
    storage = open_storage(str(tmp_path / "ds"))
    dv = write_deletion_vector(storage, positions(*stored))
    if not cached:
        _CACHE.clear()
    assert positions_of(storage, entry(num_rows, deletion=dv)).to_pylist() == list(stored)


def test_a_cached_vector_is_checked_against_the_fragment_it_is_read_for(tmp_path):
    storage = open_storage(str(tmp_path / "ds"))
    dv = write_deletion_vector(storage, positions(2, 8))
    assert positions_of(storage, entry(10, deletion=dv)).to_pylist() == [2, 8]
    # The same file named by a fragment of 5 rows, or with another count: never valid.
    with pytest.raises(lv.CorruptMetadata, match="below 5"):
        positions_of(storage, entry(5, deletion=dv))
    with pytest.raises(lv.CorruptMetadata, match="does not hold 3"):
        positions_of(storage, entry(10, deletion=dataclasses.replace(dv, count=3)))
    last = write_deletion_vector(storage, positions(1, 5))  # cached by the writer
    with pytest.raises(lv.CorruptMetadata, match="below 5"):
        positions_of(storage, entry(5, deletion=last))  # position 5 is past a 5-row fragment
    assert positions_of(storage, entry(6, deletion=last)).to_pylist() == [1, 5]


def test_an_unparsable_vector_is_corrupt(tmp_path):
    storage = open_storage(str(tmp_path / "ds"))
    data = b"not parquet"
    rel = "_lakever/deletions/bad.parquet"
    storage.put_if_absent(rel, data)
    from lakever.format import DeletionVector, sha256_hex

    dv = DeletionVector(path=rel, content_hash=f"sha256:{sha256_hex(data)}", count=1)
    with pytest.raises(lv.CorruptMetadata, match="cannot be parsed"):
        positions_of(storage, entry(10, deletion=dv))


def test_the_cache_fills_its_budget_exactly():
    cache = _new_cache(4)
    cache.put(("s", "a"), positions(1, 2))
    cache.put(("s", "b"), positions(3, 4))
    assert cache.get(("s", "a")) is not None and cache.get(("s", "b")) is not None


def test_the_cache_keeps_the_most_recent_vectors_within_its_budget():
    cache = _new_cache(5)
    a, b, c = positions(1, 2), positions(3, 4), positions(5, 6)
    cache.put(("s", "a"), a)
    cache.put(("s", "b"), b)
    assert cache.get(("s", "a")) == a  # a is now the most recent
    cache.put(("s", "c"), c)  # 6 positions > 5: the least recent (b) goes
    assert cache.get(("s", "b")) is None
    assert cache.get(("s", "a")) == a and cache.get(("s", "c")) == c
    cache.put(("s", "big"), positions(*range(6)))  # larger than the whole budget: not kept
    assert cache.get(("s", "big")) is None and cache.get(("s", "a")) == a
    cache.put(("s", "a"), positions(9))  # a key is written once (its content is its hash)
    assert cache.get(("s", "a")) == a
    cache.clear()
    assert cache.get(("s", "a")) is None and cache.get(("s", "c")) is None
    cache.put(("s", "d"), positions(1, 2, 3, 4, 5))  # the budget is whole again after clear
    assert cache.get(("s", "d")) is not None


@given(
    st.integers(0, 60).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.integers(0, max(n - 1, 0)), max_size=n),
            st.sets(st.integers(0, max(n - 1, 0)), max_size=n),
        )
    )
)
def test_position_arithmetic_agrees_with_sets(case):
    n, a, b = case
    pa_a, pa_b = positions(*sorted(a)), positions(*sorted(b))
    assert union(pa_a, pa_b).to_pylist() == sorted(a | b)
    assert difference(pa_a, pa_b).to_pylist() == sorted(a - b)
    assert keep_mask(n, pa_a).to_pylist() == [i not in a for i in range(n)]
    decoded = pq.read_table(pa.BufferReader(encode(pa_a)))["position"].to_pylist()
    assert decoded == sorted(a)
