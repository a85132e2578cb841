"""Training reads (issue 15): `Dataset.to_batches` with shard, worker, shuffle, drop_last,
even and formats (`lakever.ml.batches`).

The contract is checked differentially: over random datasets (several fragments, small
row groups, an evolved schema, deleted rows) and random reads (filter, columns, world
size, workers, batch size, seed, epoch), the parts of all ranks and workers together are
exactly the rows plain pyarrow finds in the unpruned ``to_arrow()`` with the same filter:
each once, none twice (a unique id column), and the same on every call.
"""

from __future__ import annotations

import sys
import types
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
import lakever.fragments
from lakever.ml import batches as mlb

# --------------------------------------------------------------------------- helpers

#: Filters as lakever SQL and as the same predicate in pyarrow (over the unpruned table).
FILTERS: dict[str | None, Callable[[pa.Table], Any] | None] = {
    None: None,
    "x > 0.5": lambda t: pc.greater(t["x"], 0.5),
    "id % 3 <> 0": lambda t: pc.not_equal(
        pc.subtract(t["id"], pc.multiply(pc.divide(t["id"], 3), 3)), 0
    ),
    "cat = 'b' OR id < 10": lambda t: pc.or_(pc.equal(t["cat"], "b"), pc.less(t["id"], 10)),
}


def _table(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + n, dtype=np.int64)
    return pa.table(
        {
            "id": ids,
            "x": pa.array(rng.random(n), pa.float64()),
            "cat": pa.array([["a", "b", "c"][i % 3] for i in ids], pa.string()),
        }
    )


def _build(location: str, chunks: list[int], frag: int, evolve: bool, delete: int) -> lv.Dataset:
    """Appends of ``chunks`` rows (fragments of ``frag`` rows), optionally an added column
    between them, and every ``delete``-th id deleted (0: none)."""
    ds = lv.create_dataset(location, _table(0, chunks[0], 0), max_rows_per_fragment=frag)
    start = chunks[0]
    for i, n in enumerate(chunks[1:], 1):
        if evolve and i == 1:
            ds = ds.evolve(add={"note": pa.string()})
        data = _table(start, n, i)
        if evolve:
            data = data.append_column("note", pa.array([f"n{j}" for j in range(n)], pa.string()))
        ds = lv.write_dataset(location, data, mode="append", max_rows_per_fragment=frag)
        start += n
    if delete:
        ds = ds.delete(where=f"id % {delete} = 1")
    return ds


def _reference(ds: lv.Dataset, filter: str | None, columns: list[str] | None) -> pa.Table:
    """Plain pyarrow over the unpruned read: the rows the filter keeps, in read order."""
    table = ds.to_arrow()
    predicate = FILTERS[filter]
    if predicate is not None:
        table = table.filter(predicate(table))
    return table if columns is None else table.select(columns)


def _rows(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches(batches, schema=schema)


def _read(ds: lv.Dataset, **kw: Any) -> list[pa.RecordBatch]:
    return list(ds.to_batches(**kw))


def _parts(ds: lv.Dataset, world: int, workers: int, **kw: Any) -> list[list[pa.RecordBatch]]:
    return [
        _read(ds, shard=(r, world), worker=(w, workers), **kw)
        for r in range(world)
        for w in range(workers)
    ]


def _same_rows(got: pa.Table, want: pa.Table) -> None:
    """Equal as multisets of rows (sorted by the unique id), with equal types."""
    assert got.schema == want.schema
    assert got.sort_by("id").equals(want.sort_by("id"))


@pytest.fixture
def small_row_groups(monkeypatch):
    monkeypatch.setattr(lakever.fragments, "ROW_GROUP_ROWS", 7)


@pytest.fixture
def events(tmp_path, small_row_groups) -> lv.Dataset:
    """130 rows: fragments of 40 rows in row groups of 7, a column added, deletions."""
    return _build(str(tmp_path / "events"), [60, 45, 25], 40, True, 5)


# --------------------------------------------------------------------------- properties


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "chunks": draw(st.lists(st.integers(0, 40), min_size=1, max_size=4)),
        "frag": draw(st.integers(3, 30)),
        "evolve": draw(st.booleans()),
        "delete": draw(st.sampled_from([0, 2, 4, 7])),
        "filter": draw(st.sampled_from(list(FILTERS))),
        "columns": draw(st.sampled_from([None, ["id"], ["cat", "id"], ["id", "x"]])),
        "world": draw(st.integers(1, 5)),
        "workers": draw(st.integers(1, 3)),
        "batch_size": draw(st.integers(1, 17)),
        "seed": draw(st.integers(0, 2**32)),
        "epoch": draw(st.integers(0, 3)),
        "shuffle": draw(st.booleans()),
        "buffer": draw(st.sampled_from([1, 5, 64, mlb.SHUFFLE_BUFFER])),
    }


@settings(max_examples=40)
@given(case=cases())
def test_parts_are_disjoint_cover_the_rows_once_and_repeat_bit_for_bit(case, small_row_groups):
    location = f"memory://lakever-tests/{uuid.uuid4().hex}/events"
    ds = _build(location, case["chunks"], case["frag"], case["evolve"], case["delete"])
    want = _reference(ds, case["filter"], case["columns"])
    kw = {
        "batch_size": case["batch_size"], "filter": case["filter"], "columns": case["columns"],
        "shuffle": case["shuffle"], "seed": case["seed"], "epoch": case["epoch"],
        "shuffle_buffer": case["buffer"],
    }  # fmt: skip
    world, workers = case["world"], case["workers"]
    parts = _parts(ds, world, workers, **kw)

    # Every batch has batch_size rows, but a part's last; the schema is the read's.
    for part in parts:
        assert all(b.num_rows == case["batch_size"] for b in part[:-1])
        assert all(0 < b.num_rows <= case["batch_size"] for b in part)
        assert all(b.schema == want.schema for b in part)

    # Union: every matching live row exactly once (no id in two parts, none missed).
    ids = Counter(i for part in parts for b in part for i in b.column("id").to_pylist())
    assert all(n == 1 for n in ids.values())
    got = _rows([b for part in parts for b in part], want.schema)
    _same_rows(got, want)

    # Unshuffled, the parts in order are the snapshot's read order.
    if not case["shuffle"]:
        assert got.equals(want)

    # Bit-for-bit repeatable (also with another readahead), per part.
    again = _read(ds, shard=(world - 1, world), worker=(workers - 1, workers), readahead=0, **kw)
    assert [b.equals(a) for b, a in zip(again, parts[-1], strict=True)] == [True] * len(again)

    # The rows' order does not depend on batch_size: only how they are cut.
    other = dict(kw, batch_size=case["batch_size"] + 3)
    rebatched = _read(ds, shard=(0, world), worker=(0, workers), **other)
    assert _rows(rebatched, want.schema).equals(_rows(parts[0], want.schema))

    # drop_last: each part loses only its final short batch.
    dropped = _parts(ds, world, workers, drop_last=True, **kw)
    for full, cut in zip(parts, dropped, strict=True):
        assert all(b.num_rows == case["batch_size"] for b in cut)
        keep = len(full) - (1 if full and full[-1].num_rows < case["batch_size"] else 0)
        assert [b.equals(a) for b, a in zip(cut, full[:keep], strict=True)] == [True] * keep
        assert len(cut) == keep

    # even: the same number of rows in every part (the fewest any part has), each a
    # prefix of the part's uneven rows, so every part yields the same number of batches.
    evened = _parts(ds, world, workers, even=True, drop_last=True, **kw)
    fewest = min(sum(b.num_rows for b in p) for p in parts)
    for full, ev in zip(parts, evened, strict=True):
        assert len(ev) == fewest // case["batch_size"]
        head = _rows(full, want.schema).slice(0, len(ev) * case["batch_size"])
        assert _rows(ev, want.schema).equals(head)


@settings(max_examples=15)
@given(
    world=st.integers(1, 4),
    seed=st.integers(0, 1000),
    epoch=st.integers(0, 5),
    buffer=st.sampled_from([4, 16, 1000]),
)
def test_shuffled_order_is_a_function_of_seed_epoch_and_shard(events, world, seed, epoch, buffer):
    kw = {"batch_size": 8, "shuffle": True, "seed": seed, "shuffle_buffer": buffer}

    def order(epoch: int, rank: int) -> list[int]:
        batches = _read(events, shard=(rank, world), epoch=epoch, **kw)
        return [i for b in batches for i in b.column("id").to_pylist()]

    everything = sorted(events.to_arrow(["id"]).column("id").to_pylist())
    this = [order(epoch, r) for r in range(world)]
    assert sorted(i for ids in this for i in ids) == everything
    assert this == [order(epoch, r) for r in range(world)]  # same inputs, same order
    following = [order(epoch + 1, r) for r in range(world)]
    assert sorted(i for ids in following for i in ids) == everything
    assert following != this  # another epoch, another order (130 rows: never equal)
    assert this != [sorted(ids) for ids in this]  # and actually shuffled


def test_the_shuffled_order_is_pinned(tmp_path):
    """The order is part of the reproducibility contract: this golden order changes only
    if lakever's algorithm (or numpy's Generator.permutation) does (docs/training.md)."""
    ds = lv.create_dataset(str(tmp_path / "e"), _table(0, 12, 0), max_rows_per_fragment=4)
    got = [b.column("id").to_pylist() for b in ds.to_batches(4, shuffle=True, seed=7)]
    assert got == GOLDEN_SEED_7
    rank1 = [
        b.column("id").to_pylist() for b in ds.to_batches(4, shuffle=True, seed=7, shard=(1, 2))
    ]
    assert rank1 == GOLDEN_SEED_7_RANK_1


GOLDEN_SEED_7 = [[1, 4, 0, 10], [9, 7, 8, 11], [2, 5, 6, 3]]
GOLDEN_SEED_7_RANK_1 = [[3, 2, 8, 9], [11, 10]]


def test_seeds_and_epochs_never_alias(events):
    """(seed, epoch) pairs that a plain SeedSequence([seed, epoch]) would confuse (it reads
    ints as 32-bit words and ignores trailing zero words) give different orders."""

    def order(seed: int, epoch: int, **kw: Any) -> list[int]:
        batches = events.to_batches(200, shuffle=True, seed=seed, epoch=epoch, **kw)
        return [i for b in batches for i in b.column("id").to_pylist()]

    pairs = [(0, 0), (0, 1), (1, 0), (2**32, 0), (1, 2**32), (2**64 - 1, 2**64 - 1)]
    orders = [order(s, e) for s, e in pairs]
    assert len({tuple(o) for o in orders}) == len(pairs)
    # and the generators themselves: every key its own stream
    keys = [(1, s, e) for s, e in pairs] + [(2, s, e, 1, 0) for s, e in pairs]
    draws = {tuple(mlb._rng(*k).integers(0, 2**62, 4)) for k in keys}
    assert len(draws) == len(keys)
    # the part's own generator is keyed apart from the global order's
    assert order(3, 0, shard=(0, 1)) == order(3, 0)


def test_more_parts_than_fragments_and_row_groups_cut_row_groups(tmp_path):
    """One fragment of one row group read by 5 ranks x 2 workers: each gets 2 rows."""
    ds = lv.create_dataset(str(tmp_path / "e"), _table(0, 20, 0))
    assert len(ds.fragments()) == 1
    parts = _parts(ds, 5, 2, batch_size=64)
    assert [[i for b in p for i in b.column("id").to_pylist()] for p in parts] == [
        [2 * k, 2 * k + 1] for k in range(10)
    ]


def test_more_parts_than_rows(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), _table(0, 3, 0))
    parts = _parts(ds, 7, 1, batch_size=2)
    assert sorted(i for p in parts for b in p for i in b.column("id").to_pylist()) == [0, 1, 2]
    assert sum(1 for p in parts if not p) == 4
    assert _parts(ds, 7, 1, batch_size=2, even=True) == [[]] * 7


def test_parts_are_balanced_by_physical_rows(events):
    """Parts differ by at most one physical row (live rows: by the deletions they hold)."""
    layout = mlb.layout(events.plan(), mlb.options(8, shard=(0, 6)))
    sizes = [sum(u.hi - u.lo for u in units) for units in layout]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == sum(f.num_rows for f in events.fragments())


@pytest.mark.parametrize("shuffle", [False, True])
def test_one_part_is_laid_out_alone_exactly_as_in_the_whole_layout(events, shuffle):
    """A reader lays out only its own part (cost independent of the number of parts)."""
    plan = events.plan()
    for parts in (1, 3, 7, 50):
        opts = mlb.options(8, shard=(0, parts), shuffle=shuffle, seed=5)
        tasks, total = mlb._ordered_tasks(plan, opts)
        whole = mlb.layout(plan, opts)
        assert [mlb._units_of(tasks, total, parts, p) for p in range(parts)] == whole


def test_a_huge_world_size_costs_nothing_for_one_reader(events):
    rows = [i for b in events.to_batches(4, shard=(3, 10**12)) for i in b.column("id").to_pylist()]
    assert rows == []
    assert list(events.to_batches(4, shard=(3, 10**12), even=True)) == []


def test_an_empty_snapshot_and_a_filter_matching_nothing(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), _table(0, 0, 0))
    assert _parts(ds, 3, 2, batch_size=4, shuffle=True, even=True) == [[]] * 6
    ds = ds.append(_table(0, 30, 1))
    assert _parts(ds, 2, 1, batch_size=4, filter="id < 0", shuffle=True) == [[], []]


def test_default_call_is_the_plan_stream(events):
    """No training argument: exactly ScanPlan.to_batches (order, sizes, types)."""
    plan = events.plan(filter="x > 0.2", columns=["id", "note"])
    want = list(plan.to_batches(9))
    got = _read(events, batch_size=9, filter="x > 0.2", columns=["id", "note"])
    assert len(got) == len(want)
    assert all(g.equals(w) for g, w in zip(got, want, strict=True))
    one = _read(events, batch_size=9, filter="x > 0.2", columns=["id", "note"], shard=(0, 1))
    assert all(g.equals(w) for g, w in zip(one, want, strict=True))


@pytest.mark.parametrize(
    "kw",
    [
        {"shard": (1, 2)},
        {"shuffle": True},
        {"shard": (0, 3), "even": True, "filter": "x > 0.1"},
        {"shard": (0, 3), "even": True},
    ],
)
def test_a_damaged_fragment_is_named(events, kw):
    """A bit flipped in a fragment's file: every training read raises CorruptData."""
    import lakever.integrity as integrity

    path = f"{events.uri}/{events.fragments()[0].path}"
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x01
    with open(path, "wb") as f:
        f.write(bytes(data))
    integrity._VERIFIED.clear()
    with pytest.raises(lv.CorruptData, match="damaged or replaced"):
        list(lv.open_dataset(events.uri).to_batches(8, **kw))


# --------------------------------------------------------------------------- PyTorch workers


def _fake_torch(monkeypatch, info: Any) -> None:
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch.utils")
    data = types.ModuleType("torch.utils.data")
    data.get_worker_info = lambda: info  # type: ignore[attr-defined]
    utils.data = data  # type: ignore[attr-defined]
    torch.utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)


def test_a_dataloader_worker_is_detected_and_composes_with_the_shard(events, monkeypatch):
    explicit = _read(events, batch_size=8, shard=(1, 2), worker=(2, 3), shuffle=True, seed=4)
    _fake_torch(monkeypatch, types.SimpleNamespace(id=2, num_workers=3, seed=123))
    detected = _read(events, batch_size=8, shard=(1, 2), shuffle=True, seed=4)
    assert detected and all(a.equals(b) for a, b in zip(detected, explicit, strict=True))
    assert len(detected) == len(explicit)
    # an explicit worker= wins over the detected one
    mine = _read(events, batch_size=8, shard=(1, 2), worker=(0, 1), shuffle=True, seed=4)
    assert sum(b.num_rows for b in mine) > sum(b.num_rows for b in explicit)


def test_outside_a_dataloader_worker_everything_is_read(events, monkeypatch):
    _fake_torch(monkeypatch, None)  # the main process: get_worker_info() is None
    assert _rows(_read(events, batch_size=8), events.schema).equals(events.to_arrow())


def test_torch_is_never_imported(events, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    _read(events, batch_size=8, shard=(0, 2))
    assert "torch" not in sys.modules


def test_a_broken_worker_info_is_refused(events, monkeypatch):
    _fake_torch(monkeypatch, types.SimpleNamespace(id=3, num_workers=3))
    with pytest.raises(lv.InvalidArgument, match=r"\(3, 3\)"):
        events.to_batches(8)


# --------------------------------------------------------------------------- formats


def test_numpy_and_dict_formats_hold_the_arrow_values(tmp_path):
    table = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "f": pa.array([0.5, None, 1.5, 2.0, 3.0, 4.0], pa.float32()),
            "i": pa.array([1, None, 3, 4, 5, 6], pa.int32()),
            "emb": pa.array([[float(i), -float(i)] for i in range(6)], pa.list_(pa.float32(), 2)),
            "grid": pa.array(
                [[[i, i], [0, 1]] for i in range(6)], pa.list_(pa.list_(pa.int16(), 2), 2)
            ),
            "toks": pa.array([[1], [2, 3], [], None, [4], [5]], pa.list_(pa.int64())),
            "s": pa.array(["a", None, "c", "d", "e", "f"]),
        }
    )
    ds = lv.create_dataset(str(tmp_path / "e"), table)
    arrow = _read(ds, batch_size=4)
    as_numpy = _read(ds, batch_size=4, format="numpy")
    as_dict = _read(ds, batch_size=4, format="dict")
    assert [len(b) for b in (arrow, as_numpy, as_dict)] == [2, 2, 2]
    for a, n, d in zip(arrow, as_numpy, as_dict, strict=True):
        assert d == a.to_pydict()
        assert list(n) == a.schema.names
        assert n["id"].dtype == np.int64 and n["id"].tolist() == a["id"].to_pylist()
        assert n["emb"].dtype == np.float32 and n["emb"].shape == (a.num_rows, 2)
        assert n["emb"].tolist() == a["emb"].to_pylist()
        assert n["grid"].dtype == np.int16 and n["grid"].shape == (a.num_rows, 2, 2)
        assert n["grid"].tolist() == a["grid"].to_pylist()
        assert n["toks"].dtype == object  # ragged: Arrow's rule, an array per row
        assert [None if v is None else v.tolist() for v in n["toks"]] == a["toks"].to_pylist()
        assert n["s"].dtype == object and n["s"].tolist() == a["s"].to_pylist()
    # Arrow's rules for nulls: an int column with a null becomes float64 with NaN
    first = as_numpy[0]
    assert first["i"].dtype == np.float64 and np.isnan(first["i"][1])
    assert first["f"].dtype == np.float32 and np.isnan(first["f"][1])


def test_numpy_refuses_records_and_maps_when_called(tmp_path):
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "rec": pa.array([{"a": 1}, {"a": 2}]),
            "tags": pa.array([[{"k": 1}], []], pa.list_(pa.struct([("k", pa.int64())]))),
        }
    )
    ds = lv.create_dataset(str(tmp_path / "e"), table)
    with pytest.raises(lv.InvalidArgument, match=r"rec \(struct<a: int64>\).*tags") as info:
        ds.to_batches(2, format="numpy")  # raised by the call, before any batch
    assert "format='arrow'" in str(info.value)
    (only,) = _read(ds, batch_size=2, format="numpy", columns=["id"])
    assert only["id"].tolist() == [1, 2]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shard": (2, 2)}, r"shard .*\(2, 2\)"),
        ({"shard": (-1, 2)}, r"shard .*\(-1, 2\)"),
        ({"shard": (0, 0)}, r"shard .*\(0, 0\)"),
        ({"shard": 3}, r"shard .*3"),
        ({"shard": (0, 2, 1)}, r"shard"),
        ({"shard": (True, 2)}, r"shard"),
        ({"shard": "0/2"}, r"shard .*'0/2'"),
        ({"worker": (1, 1)}, r"worker .*\(1, 1\)"),
        ({"worker": (0.0, 2)}, r"worker .*\(0.0, 2\)"),
        ({"seed": -1}, r"seed .*-1"),
        ({"seed": 1.5}, r"seed .*1.5"),
        ({"seed": None}, r"seed .*None"),
        ({"seed": 2**64}, r"seed must be below 2\*\*64, got 18446744073709551616"),
        ({"epoch": -2}, r"epoch .*-2"),
        ({"shuffle_buffer": 0}, r"shuffle_buffer .*0"),
        ({"format": "torch"}, r"format .*'torch'"),
        ({"shuffle": 1}, r"shuffle .*1"),
        ({"drop_last": "yes"}, r"drop_last .*'yes'"),
        ({"even": None}, r"even .*None"),
        ({"batch_size": 0}, r"batch_size .*0"),
        ({"readahead": -1}, r"readahead .*-1"),
    ],
)
def test_bad_arguments_are_named(events, kwargs, match):
    with pytest.raises(lv.InvalidArgument, match=match):
        events.to_batches(**{"batch_size": 8, **kwargs})


# --------------------------------------------------------------------------- streaming


def test_a_sharded_shuffled_read_streams_and_stops_its_reader(events, monkeypatch):
    """The first batch comes after a few decoded batches, not after the whole part."""
    import lakever.reader as reader

    decoded: list[int] = []
    real = reader._file_batches

    def counting(*args: Any, **kwargs: Any):
        for batch in real(*args, **kwargs):
            decoded.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(reader, "_file_batches", counting)
    kw: dict[str, Any] = {"shard": (0, 2), "shuffle": True, "shuffle_buffer": 4, "seed": 1}
    stream = events.to_batches(4, readahead=0, **kw)
    assert next(stream).num_rows == 4
    early = sum(decoded)
    stream.close()
    decoded.clear()
    assert sum(b.num_rows for b in events.to_batches(4, readahead=0, **kw)) > 40
    assert early <= 8 < sum(decoded)


@pytest.mark.parametrize(
    "kw", [{"shard": (0, 2), "shuffle": True, "shuffle_buffer": 4}, {"shard": (1, 2)}]
)
def test_closing_a_training_stream_stops_its_read_ahead_thread(events, kw):
    import threading

    stream = events.to_batches(4, readahead=2, **kw)
    next(stream)
    assert any(t.name == "lakever-read" for t in threading.enumerate())
    stream.close()
    assert not any(t.name == "lakever-read" for t in threading.enumerate())
