"""Training reads: `Dataset.to_batches` with shards, shuffling, ``drop_last``, ``even``
and output formats (docs/training.md holds the contract; this is how it is met).

Without ``shard``, ``worker`` (or a PyTorch DataLoader worker) and ``shuffle`` the read
is exactly `ScanPlan.to_batches`: the plan's rows, in plan order, streamed.

Otherwise:

1. **Units.** The plan's tasks are cut into one task per row group (`split_tasks`; this
   reads the footers of files with more than one row). Their *physical* rows (deleted
   and filtered-out rows included, so the layout needs no data read) are laid end to
   end: in plan order, or with ``shuffle`` in the order of
   ``permutation(units)`` of a generator seeded by ``(seed, epoch)`` (`_rng`). Every process
   computes the same global order from the same snapshot, filter, seed and epoch.
2. **Parts.** ``shard=(rank, world_size)`` and ``worker=(worker_id, num_workers)``
   compose into part ``rank * num_workers + worker_id`` of ``world_size * num_workers``.
   Part ``p`` of ``P`` reads the physical rows ``[p * N // P, (p + 1) * N // P)`` of the
   global order (``N``: all physical rows), so parts are disjoint, cover every row, and
   differ by at most one physical row. A boundary inside a row group cuts it: that row
   group is read by both parts, each keeping its own rows (by file position).
3. **Shuffle buffer.** With ``shuffle``, a part's rows are cut into consecutive blocks
   of ``shuffle_buffer`` rows and each block is permuted by the part's own generator,
   generator, seeded by ``(seed, epoch, P, p)``. The rows' order therefore
   depends on the snapshot, filter, columns, seed, epoch, part and ``shuffle_buffer``,
   never on ``batch_size`` or ``readahead``.
4. **even.** Every part's live matching rows are counted (from the deletion vectors;
   with a filter, by reading the filter's columns), and every part keeps only the first
   ``min(counts)`` of its rows, so all parts yield the same number of batches.
5. Batches of ``batch_size`` rows; ``drop_last`` drops a part's final short batch;
   then the output format.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from lakever.deletion import positions_of
from lakever.errors import InvalidArgument
from lakever.reader import (
    READAHEAD,
    ScanPlan,
    check_readahead,
    iter_plan,
    prefetch,
    read_positions,
    rebatch,
)
from lakever.tasks import ReadTask, split_tasks

__all__ = [
    "FORMATS",
    "SHUFFLE_BUFFER",
    "Options",
    "Unit",
    "iter_batches",
    "layout",
    "options",
    "to_numpy",
    "torch_worker",
]

#: Rows permuted together by ``shuffle=True`` (the default ``shuffle_buffer=``).
SHUFFLE_BUFFER = 1 << 16
#: The output formats of ``to_batches(format=...)``.
FORMATS = ("arrow", "numpy", "dict")


@dataclass(frozen=True, slots=True)
class Options:
    """The validated arguments of a training read."""

    batch_size: int
    readahead: int = READAHEAD
    #: This reader's part and the number of parts (rank and worker composed).
    part: int = 0
    parts: int = 1
    shuffle: bool = False
    seed: int = 0
    epoch: int = 0
    shuffle_buffer: int = SHUFFLE_BUFFER
    drop_last: bool = False
    even: bool = False
    format: str = "arrow"


@dataclass(frozen=True, slots=True)
class Unit:
    """Rows ``[lo, hi)`` (counted from the task's first row) of one read task."""

    task: ReadTask
    lo: int
    hi: int

    @property
    def whole(self) -> bool:
        """Whether the unit is its whole task."""
        return self.lo == 0 and self.hi == self.task.task_rows


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        what = "a positive int" if minimum == 1 else "a non-negative int"
        raise InvalidArgument(f"{name} must be {what}, got {value!r}")
    return int(value)


def _word(name: str, value: Any) -> int:
    """A seed or an epoch: an int in ``[0, 2**64)``."""
    if _int(name, value, 0) >= 1 << 64:
        raise InvalidArgument(f"{name} must be below 2**64, got {value!r}")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be True or False, got {value!r}")
    return value


def _pair(name: str, value: Any, what: str) -> tuple[int, int]:
    """Validate ``(index, count)``: ints with ``0 <= index < count``."""
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 0 <= value[0] < value[1]:
        raise InvalidArgument(
            f"{name} must be a pair ({what}) of ints with 0 <= {what.split(',')[0]} < "
            f"{what.split(', ')[1]}, got {value!r}"
        )
    return int(value[0]), int(value[1])


def torch_worker() -> tuple[int, int] | None:
    """``(worker_id, num_workers)`` of the PyTorch DataLoader worker this code runs in, or
    None (not in a worker, or torch not imported: torch is never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    data = sys.modules.get("torch.utils.data")
    if data is None:
        data = getattr(getattr(torch, "utils", None), "data", None)
    get_info = getattr(data, "get_worker_info", None)
    info = get_info() if callable(get_info) else None
    if info is None:
        return None
    return _pair("the DataLoader worker info", (info.id, info.num_workers), "id, num_workers")


def options(
    batch_size: Any,
    *,
    readahead: Any = READAHEAD,
    shard: Any = None,
    worker: Any = None,
    shuffle: Any = False,
    seed: Any = 0,
    epoch: Any = 0,
    shuffle_buffer: Any = SHUFFLE_BUFFER,
    drop_last: Any = False,
    even: Any = False,
    format: Any = "arrow",
) -> Options:
    """Validate the arguments of a training read (``worker=None``: a PyTorch DataLoader
    worker's own, when torch is imported and this runs in one).

    Raises:
        InvalidArgument: naming the argument and the value.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
    check_readahead(readahead)
    rank, world = (0, 1) if shard is None else _pair("shard", shard, "rank, world_size")
    wid, workers = (
        (torch_worker() or (0, 1))
        if worker is None
        else _pair("worker", worker, "worker_id, num_workers")
    )
    if format not in FORMATS:
        raise InvalidArgument(f"format must be one of {list(FORMATS)}, got {format!r}")
    return Options(
        batch_size=batch_size,
        readahead=readahead,
        part=rank * workers + wid,
        parts=world * workers,
        shuffle=_bool("shuffle", shuffle),
        seed=_word("seed", seed),
        epoch=_word("epoch", epoch),
        shuffle_buffer=_int("shuffle_buffer", shuffle_buffer, 1),
        drop_last=_bool("drop_last", drop_last),
        even=_bool("even", even),
        format=format,
    )


def iter_batches(plan: ScanPlan, opts: Options) -> Iterator[Any]:
    """The batches of ``plan`` this reader's part yields, in ``opts.format``.

    Raises:
        InvalidArgument: ``format="numpy"`` and a column numpy cannot hold (checked now).
        CorruptData: a fragment is missing or damaged (raised by the first batch).
    """
    if opts.format == "numpy":
        check_numpy(plan.output_schema)
    return _batches(plan, opts)


def _batches(plan: ScanPlan, opts: Options) -> Iterator[Any]:
    size = opts.batch_size
    if opts.parts == 1 and not opts.shuffle:
        base = rows = iter_plan(plan, size, opts.readahead)
    else:
        tasks, total = _ordered_tasks(plan, opts)
        target: int | None = None
        if not opts.even:
            units = _units_of(tasks, total, opts.parts, opts.part)  # this part only: O(tasks)
        elif opts.parts > total:
            units, target = [], 0  # some part holds no stored row, so none yields any
        else:
            parts = layout(plan, opts)
            units, target = parts[opts.part], min(_counts(plan, parts))
        base = rows = prefetch(_read_units(plan, units, size), opts.readahead)
        if opts.shuffle:
            rows = _block_shuffle(rows, opts)
        if target is not None:
            rows = _head(rows, target)
    convert = _CONVERT[opts.format]
    out = rebatch(rows, size)
    try:
        for batch in out:
            if opts.drop_last and batch.num_rows < size:
                return
            yield convert(batch)
    finally:
        # Stopping early (drop_last, even, or the caller closing this generator) stops
        # the reader and its read-ahead thread now, not when the garbage is collected.
        for it in (out, rows, base):
            close = getattr(it, "close", None)
            if close is not None:
                close()


#: The purposes a generator is seeded for (the first word of its key).
_ORDER, _BLOCKS = 1, 2


def _rng(purpose: int, *key: int) -> np.random.Generator:
    """A generator seeded by ``(purpose, *key)``, each value as two 32-bit words.

    The fixed width matters: `SeedSequence` reads a list of ints as the concatenation
    of their 32-bit words and ignores trailing zero words, so ``[2**32, 0]`` and
    ``[0, 1]`` (or ``[7, 0]`` and ``[7]``) would seed the same stream.
    """
    words = [purpose] + [w for k in key for w in (k & 0xFFFFFFFF, k >> 32)]
    entropy = np.array(words, dtype=np.uint32)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def _ordered_tasks(plan: ScanPlan, opts: Options) -> tuple[list[ReadTask], int]:
    """The plan's row-group tasks in read order (permuted when shuffling), and their rows."""
    tasks: list[ReadTask] = []
    if plan.tasks:
        tasks = list(split_tasks(plan.storage, plan.tasks, 1, snapshot=plan.snapshot_id))
    if opts.shuffle:
        order = _rng(_ORDER, opts.seed, opts.epoch).permutation(len(tasks))
        tasks = [tasks[int(i)] for i in order]
    return tasks, sum(t.task_rows for t in tasks)


def _units_of(tasks: list[ReadTask], total: int, parts: int, part: int) -> list[Unit]:
    """The units of one part: the rows ``[part * total // parts, (part + 1) * total //
    parts)`` of the tasks laid end to end (what `layout` gives that part)."""
    lo, hi = part * total // parts, (part + 1) * total // parts
    out, start = [], 0
    for t in tasks:
        stop = start + t.task_rows
        if min(stop, hi) > max(start, lo):
            out.append(Unit(t, max(start, lo) - start, min(stop, hi) - start))
        start = stop
    return out


def layout(plan: ScanPlan, opts: Options) -> list[list[Unit]]:
    """The units of every part, in the order each part reads them (module doc, 1-2)."""
    tasks, total = _ordered_tasks(plan, opts)
    bounds = [p * total // opts.parts for p in range(opts.parts + 1)]
    out: list[list[Unit]] = [[] for _ in range(opts.parts)]
    start, p = 0, 0
    for t in tasks:
        stop = start + t.task_rows
        while p < opts.parts and bounds[p + 1] <= start:
            p += 1
        q = p
        while q < opts.parts and bounds[q] < stop:
            lo, hi = max(start, bounds[q]), min(stop, bounds[q + 1])
            if hi > lo:
                out[q].append(Unit(t, lo - start, hi - start))
            q += 1
        start = stop
    return out


def _read_units(plan: ScanPlan, units: list[Unit], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The live matching rows of ``units``, in order: runs of whole units streamed by the
    plan's reader, a cut unit read by file position."""
    i = 0
    while i < len(units):
        if not units[i].whole:
            yield from _cut(plan, units[i])
            i += 1
            continue
        j = i
        while j < len(units) and units[j].whole:
            j += 1
        run = replace(plan, tasks=tuple(u.task for u in units[i:j]))
        yield from iter_plan(run, batch_size, 0)
        i = j


def _cut(plan: ScanPlan, unit: Unit) -> Iterator[pa.RecordBatch]:
    """The live matching rows of a unit that is part of its task (one row group)."""
    lo, hi = unit.task.start + unit.lo, unit.task.start + unit.hi
    for _, positions, rows in read_positions(plan, [unit.task]):
        keep = (positions >= lo) & (positions < hi)
        if keep.any():
            yield from rows.filter(pa.array(keep, pa.bool_())).to_batches()


def _counts(plan: ScanPlan, parts: list[list[Unit]]) -> list[int]:
    """Live rows (matching the filter) of each part."""
    tasks = {(u.task.path, u.task.start): u.task for units in parts for u in units}
    live: dict[tuple[str, int], np.ndarray[Any, Any]] = {}
    if plan.filter is None:
        for key, t in tasks.items():
            if t.deletion is not None:
                deleted = positions_of(plan.storage, t).to_numpy(zero_copy_only=False)
                every = np.arange(t.start, t.stop, dtype=np.int64)
                live[key] = np.setdiff1d(every, deleted, assume_unique=True)
    else:
        for t, positions, _ in read_positions(replace(plan, columns=()), list(tasks.values())):
            live[(t.path, t.start)] = positions

    def count(u: Unit) -> int:
        t = u.task
        if plan.filter is None and t.deletion is None:
            return u.hi - u.lo
        pos = live.get((t.path, t.start))
        if pos is None:
            return 0
        lo, hi = np.searchsorted(pos, [t.start + u.lo, t.start + u.hi])
        return int(hi - lo)

    return [sum(count(u) for u in units) for units in parts]


def _block_shuffle(rows: Iterator[pa.RecordBatch], opts: Options) -> Iterator[pa.RecordBatch]:
    """``rows`` in blocks of ``shuffle_buffer`` rows, each block permuted."""
    rng = _rng(_BLOCKS, opts.seed, opts.epoch, opts.parts, opts.part)
    for block in rebatch(rows, opts.shuffle_buffer):
        yield block.take(pa.array(rng.permutation(block.num_rows), pa.int64()))


def _head(rows: Iterable[pa.RecordBatch], n: int) -> Iterator[pa.RecordBatch]:
    """The first ``n`` rows of ``rows``."""
    left = n
    for batch in rows:
        if left <= 0:
            return
        if batch.num_rows > left:
            batch = batch.slice(0, left)
        left -= batch.num_rows
        yield batch


# ----------------------------------------------------------------------------- formats


def _records(t: pa.DataType) -> bool:
    """Whether ``t`` is or holds a struct, map or union (no numpy array of them)."""
    if pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_union(t):
        return True
    if pa.types.is_dictionary(t):
        return _records(t.value_type)
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        return _records(t.value_type)
    return False


def check_numpy(schema: pa.Schema) -> None:
    """Refuse columns numpy cannot hold as arrays (structs, maps, unions, anywhere).

    Raises:
        InvalidArgument: naming the columns and their types.
    """
    bad = [f"{f.name} ({f.type})" for f in schema if _records(f.type)]
    if bad:
        raise InvalidArgument(
            f"format='numpy' cannot hold column(s) {', '.join(bad)}: numpy has no array of "
            "records or maps; use format='arrow' or format='dict', or read other columns "
            "(columns=[...])"
        )


def _dense_shape(t: pa.DataType) -> tuple[int, ...] | None:
    """The element shape of nested fixed-size lists of numbers (None: not such a type)."""
    shape: list[int] = []
    while isinstance(t, pa.FixedSizeListType):
        shape.append(t.list_size)
        t = t.value_type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    return tuple(shape) if shape and numeric else None


def _column(col: Any) -> np.ndarray[Any, Any]:
    shape = _dense_shape(col.type)
    if shape is not None:
        values = col
        dense = True
        for _ in shape:
            if values.null_count:
                dense = False
                break
            values = values.flatten()
        if dense and not values.null_count:
            flat: np.ndarray[Any, Any] = values.to_numpy(zero_copy_only=False)
            return flat.reshape((len(col), *shape))
    out: np.ndarray[Any, Any] = col.to_numpy(zero_copy_only=False)
    return out


def to_numpy(batch: pa.RecordBatch) -> dict[str, np.ndarray[Any, Any]]:
    """A batch as column name -> numpy array (Arrow's rules, see docs/training.md)."""
    return {n: _column(c) for n, c in zip(batch.schema.names, batch.columns, strict=True)}


def _to_dict(batch: pa.RecordBatch) -> dict[str, list[Any]]:
    return batch.to_pydict()


def _to_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch


_CONVERT: dict[str, Any] = {"arrow": _to_arrow, "numpy": to_numpy, "dict": _to_dict}
