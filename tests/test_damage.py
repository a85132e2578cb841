"""Damage is always detected and always named.

A bit flip anywhere in a fragment, two swapped fragments, a truncated or missing
fragment, and a deletion vector replaced by another valid one: every read path
raises a `lakever.LakeverError` naming the file and the snapshot, and never
returns a wrong row.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events

READS: dict[str, Callable[[lv.Dataset], object]] = {
    "to_arrow": lambda ds: ds.to_arrow(),
    "to_arrow(filter)": lambda ds: ds.to_arrow(filter="id >= 0"),
    "to_arrow(columns)": lambda ds: ds.to_arrow(["id"]),
    "to_batches": lambda ds: list(ds.to_batches(batch_size=7)),
    "to_batches(filter)": lambda ds: list(ds.to_batches(batch_size=7, filter="value < 2")),
    "scan": lambda ds: ds.scan().collect(),
    "scan(filter)": lambda ds: ds.scan(filter="id >= 0").collect(),
    "to_polars": lambda ds: ds.to_polars(),
    "sql": lambda ds: ds.sql("SELECT sum(id) FROM self").fetchall(),
    "sql(where)": lambda ds: ds.sql("SELECT * FROM self WHERE id > 3").fetchall(),
    "to_duckdb": lambda ds: ds.to_duckdb().to_arrow_table(),
    "lake.sql": lambda ds: (
        lv.connect(str(Path(ds.uri).parent)).sql("SELECT * FROM events").fetchall()
    ),
    "delete": lambda ds: ds.delete(where="id = 3"),
    "update": lambda ds: ds.update(set={"category": "'z'"}, where="id = 3"),
    "plan.read": lambda ds: [ds.plan().read(t) for t in ds.plan().tasks],
}


@pytest.fixture
def ds(tmp_path: Path) -> lv.Dataset:
    return lv.create_dataset(str(tmp_path / "events"), events(0, 40), max_rows_per_fragment=10)


def _file(ds: lv.Dataset, i: int = 0) -> Path:
    return Path(ds.fragments()[i].uri)


def _fresh(ds: lv.Dataset) -> lv.Dataset:
    return lv.open_dataset(ds.uri)


def _assert_every_read_names_the_damage(ds: lv.Dataset, path: Path | None) -> None:
    for name, read in READS.items():
        with pytest.raises(lv.LakeverError) as info:  # noqa: PT012
            read(_fresh(ds))
            pytest.fail(f"{name} read a damaged dataset")
        err = info.value
        assert isinstance(err, lv.CorruptData | lv.CorruptMetadata), (name, err)
        if path is not None:
            assert str(path) in str(err) or path.name in str(err), (name, err)
        if isinstance(err, lv.CorruptData):
            assert err.snapshot_id == ds.snapshot_id, (name, err.snapshot_id)


def test_a_bit_flip_anywhere_is_detected(ds):
    path = _file(ds, 1)
    original = path.read_bytes()
    rng = random.Random(7)
    positions = sorted({rng.randrange(len(original)) for _ in range(12)} | {0, len(original) - 1})
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        for name in ("to_arrow", "to_arrow(filter)", "sql", "scan"):
            with pytest.raises(lv.CorruptData, match=path.name):
                READS[name](_fresh(ds))
    path.write_bytes(original)
    assert _fresh(ds).to_arrow().equals(events(0, 40))


def test_every_path_detects_a_flip(ds):
    path = _file(ds, 0)  # holds id 3, which the row changes touch
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    _assert_every_read_names_the_damage(ds, path)


def test_swapped_fragments_are_detected(ds):
    a, b = _file(ds, 0), _file(ds, 1)
    tmp = a.with_suffix(".tmp")
    shutil.move(a, tmp)
    shutil.move(b, a)
    shutil.move(tmp, b)
    _assert_every_read_names_the_damage(ds, None)


def test_truncated_and_missing_fragments_are_named(ds):
    path = _file(ds, 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_every_read_names_the_damage(ds, path)
    os.unlink(path)
    with pytest.raises(lv.CorruptData, match=r"is missing"):
        _fresh(ds).to_arrow()
    _assert_every_read_names_the_damage(ds, path)


def test_a_verified_file_changed_later_is_detected_again(ds):
    assert ds.to_arrow().num_rows == 40  # verified and remembered
    path = _file(ds, 0)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(lv.CorruptData):
        _fresh(ds).to_arrow()


def test_a_deletion_vector_replaced_by_another_valid_one_is_detected(ds):
    v1 = ds.delete(where="id = 1")  # fragment 0: positions [1]
    v2 = v1.delete(where="id IN (11, 12)")  # fragment 1: positions [1, 2]
    mine = Path(v2.uri) / v2.fragments()[0].deletion_vector
    valid = Path(v2.uri) / v2.fragments()[1].deletion_vector
    shutil.copyfile(valid, mine)  # a valid DV file, but not the one the manifest names
    from lakever.deletion import _CACHE

    _CACHE.clear()
    for name, read in READS.items():
        with pytest.raises(lv.CorruptMetadata, match=r"deletion vector"):  # noqa: PT012
            read(_fresh(v2))
            pytest.fail(f"{name} read a damaged deletion vector")


def test_a_diff_reading_a_damaged_fragment_names_it(ds):
    v1 = ds.delete(where="id = 3")
    path = _file(ds, 0)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 8
    path.write_bytes(bytes(data))
    with pytest.raises(lv.CorruptData, match=path.name):
        lv.diff(ds.uri, 0, v1.version)
    with pytest.raises(lv.CorruptData, match=path.name):
        list(v1.changes(since=0))


def test_damage_in_memory_storage_is_detected_too():
    ds = lv.create_dataset("memory://damage/events", events(0, 20), max_rows_per_fragment=10)
    fs = ds._state.storage.fsspec_filesystem()
    path = ds.fragments()[0].uri.removeprefix("memory://")
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 4
    fs.pipe_file(path, bytes(data))
    with pytest.raises(lv.CorruptData):
        ds.to_arrow()
    with pytest.raises(lv.CorruptData):
        ds.sql("SELECT * FROM self").fetchall()


def test_the_cli_prints_one_line(ds, tmp_path):
    import subprocess
    import sys

    path = _file(ds, 0)
    data = bytearray(path.read_bytes())
    data[50] ^= 2
    path.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "cat", ds.uri, "--limit", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: fragment ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_unreadable_tables_round_trip(tmp_path):
    # A healthy dataset reads back identically through every path after verification.
    t = pa.table({"id": pa.array(range(30), pa.int64()), "x": [float(i) for i in range(30)]})
    ds = lv.create_dataset(str(tmp_path / "ok"), t, max_rows_per_fragment=7)
    assert ds.to_arrow().equals(t)
    assert ds.to_arrow().equals(ds.to_arrow())


def test_diffs_and_change_feeds_name_the_snapshot_of_a_damaged_fragment(ds):
    newer = ds.append(events(40, 5))
    added = next(f for f in newer.fragments() if f.uri not in {g.uri for g in ds.fragments()})
    Path(added.uri).write_bytes(b"PAR1 not a fragment")
    reads = {
        "diff": lambda: newer.diff(0).summary(),
        "changes": lambda: list(newer.changes(since=0)),
    }
    for name, read in reads.items():
        with pytest.raises(lv.CorruptData, match=Path(added.uri).name) as info:
            read()
        assert info.value.snapshot_id == newer.snapshot_id, name


@pytest.mark.parametrize("how", ["truncate", "overwrite"])
@pytest.mark.parametrize("readahead", [0, 2])
def test_a_fragment_damaged_during_a_stream_is_named(tmp_path, how, readahead):
    # Streams read a file's pages as the batches need them, after it was verified: damage
    # done meanwhile surfaces as a Parquet decode error, which must still be CorruptData
    # naming the file (it was a StorageError naming only the snapshot).
    import numpy as np

    rng = np.random.default_rng(3)
    blobs = pa.array([rng.bytes(4000) for _ in range(6000)], pa.binary())
    ds = lv.create_dataset(str(tmp_path / "d"), pa.table({"id": range(6000), "blob": blobs}))
    (frag,) = ds.fragments()
    stream = ds.to_batches(64, readahead=readahead)
    next(stream)
    with open(frag.uri, "r+b") as f:
        if how == "truncate":
            f.truncate(frag.size_bytes // 2)
        else:  # 4 MB of garbage over the second half: page headers included
            f.seek(frag.size_bytes // 2)
            f.write(b"\xff" * (4 << 20))
    with pytest.raises(lv.CorruptData, match=os.path.basename(frag.uri)):
        for _ in stream:
            pass


def _rot(path: str) -> None:
    """Flip a byte in the middle of ``path`` as bit rot does: the file keeps the stat
    signature this process verified it with (emulated: the new one is recorded)."""
    from lakever import integrity

    (key,) = [k for k in integrity._VERIFIED._items if k[0] == path]
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    integrity._VERIFIED.put(key, integrity._signature(os.stat(path)))


@pytest.mark.parametrize(
    "read",
    [
        lambda ds: list(ds.to_batches(batch_size=1000)),
        lambda ds: list(ds.to_batches(batch_size=1000, readahead=0)),
        lambda ds: [ds.plan().read(t) for t in ds.plan().tasks],
        lambda ds: ds.compact(target_size=1 << 30),
        lambda ds: ds.update(set={"x": "x + 1"}, where="id = 7", mode="copy-on-write"),
    ],
    ids=["to_batches", "to_batches(readahead=0)", "plan.read", "compact", "update"],
)
def test_rot_that_still_decodes_is_caught_by_the_page_checksums(tmp_path, read):
    # A file changed after this process verified it, without a new stat signature, is
    # not hashed again; a flip in a page of incompressible doubles still decodes (to
    # other values). Pages carry a CRC32 that pyarrow readers check: CorruptData naming
    # the file, and the file is hashed again on the next read. Compaction and
    # copy-on-write would otherwise write the changed rows into a new file with a new,
    # valid hash. (DuckDB does not check page CRCs: its reads are not covered.)
    import numpy as np
    import pyarrow.parquet as pq

    table = pa.table({"id": range(200_000), "x": np.random.default_rng(5).random(200_000)})
    ds = lv.create_dataset(str(tmp_path / "d"), table, max_rows_per_fragment=100_000)
    ds.to_arrow()  # verified (the writer's own hash), remembered by stat signature
    frag = ds.fragments()[0]
    _rot(frag.uri)
    rotten = pq.read_table(frag.uri)  # pyarrow's default does not check the CRC
    assert not rotten.equals(table.slice(0, 100_000)), "the flip must decode, to other rows"
    with pytest.raises(lv.CorruptData, match=os.path.basename(frag.uri)) as info:
        read(_fresh(ds))
    assert "does not match the hash" in str(info.value)
    with pytest.raises(lv.CorruptData, match=os.path.basename(frag.uri)):
        _fresh(ds).to_arrow()  # forgotten: every read hashes it again
