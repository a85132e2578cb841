"""Peak memory of streaming a large snapshot with ``ds.to_batches()`` (issue 13).

Usage::

    python benchmarks/memory.py            # ~1 GB snapshot (15M rows, 30 fragments)
    python benchmarks/memory.py --quick    # 2M rows (a few seconds)
    python benchmarks/memory.py --output FILE   # default benchmarks/results/memory.json

The snapshot is written once: appends of 1M rows (two fragments of one row group each) of
``id int64, value float64, category string, ts timestamp[us]`` and a 32-character
``payload`` string, about 70 bytes a row decoded. Then every reader streams all of it,
each in a **fresh subprocess** (so nothing is cached or already allocated), batches of
65,536 rows, counting rows and dropping each batch:

* ``lakever``: ``ds.to_batches(readahead=R)`` for R = 0, 1, 2 (the default) and 8, and
  R = 2 with the fragments verified (hashed) before the measurement;
* the baseline: plain pyarrow streaming the same files one after another
  (``pq.ParquetFile(f).iter_batches()``);
* for reference, ``pyarrow.dataset`` with its default readahead (how lakever streamed
  before issue 13).

Memory is the peak resident set size during the stream minus the resident size just
before it (the kernel's high-water mark ``VmHWM``, reset through ``/proc/self/clear_refs``
before the stream; ``ru_maxrss`` where that is not available), in MiB. The fragments are
verified (SHA-256) inside the lakever stream, as on any first read in a process. Each
reader runs ``reps`` times, interleaved; the table shows the largest peak of its runs
(every run is in ``extra``). Targets are reported, never asserted.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
from _harness import (
    Result,
    Target,
    make_table,
    report,
    run_in_workdir,
    spawn_worker,
    worker_main,
)

try:
    import lakever as lv
except ImportError:  # a checkout without an install: use the package next to benchmarks/
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lakever as lv

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "memory.json")
BATCH = 65_536
FRAGMENT_ROWS = 1_000_000
#: Peak RSS above the start of the stream the default ``to_batches()`` may reach (MiB).
TARGET_MIB = 256


# ----------------------------------------------------------------------------- worker


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_kib(*, reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def worker(mode: str, uri: str) -> dict[str, Any]:
    """Stream the snapshot at ``uri`` as ``mode`` says; return peak RSS growth and time."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    ds = lv.open_dataset(uri)
    files = [os.path.join(uri, f.path) for f in ds.fragments()]
    if mode.startswith("lakever:"):
        readahead = int(mode.split(":")[1])
        if mode.endswith(":verified"):  # hash the fragments first, outside the measurement
            from lakever.integrity import verify

            verify(ds._storage, ds.plan().tasks, snapshot=ds.snapshot_id)

        def batches() -> Any:
            return ds.to_batches(BATCH, readahead=readahead)
    elif mode == "pyarrow":

        def batches() -> Any:
            for f in files:
                yield from pq.ParquetFile(f).iter_batches(batch_size=BATCH)
    elif mode == "pyarrow.dataset":

        def batches() -> Any:
            return pads.dataset(files, format="parquet").to_batches(batch_size=BATCH)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    reset = _reset_peak()
    before = _rss_kib()
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    for b in batches():
        rows += b.num_rows
        del b
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_kib(reset=reset)
    return {
        "mode": mode,
        "rows": rows,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "rss_before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "peak_above_start_mib": (peak - before) / 1024,
        "hwm_reset": reset,
    }


# ----------------------------------------------------------------------------- driver


def _payload(n: int, seed: int) -> pa.Array:
    rng = np.random.default_rng(seed)
    chars = rng.integers(97, 123, n * 32, dtype=np.uint8)
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())]
    )


def build(uri: str, rows: int) -> tuple[lv.Dataset, float]:
    ds = None
    for i, start in enumerate(range(0, rows, FRAGMENT_ROWS)):
        n = min(FRAGMENT_ROWS, rows - start)
        t = make_table(n, start_id=start, seed=i)
        t = t.append_column("payload", _payload(n, i))
        ds = lv.create_dataset(uri, t) if ds is None else ds.append(t)
    assert ds is not None
    decoded = ds.to_arrow().nbytes if rows <= 2_000_000 else None
    return ds, float(decoded or 0)


def run(rows: int, reps: int, workdir: str) -> tuple[list[Result], dict[str, Any]]:
    uri = os.path.join(workdir, "lake")
    t0 = time.perf_counter()
    ds, _ = build(uri, rows)
    build_s = time.perf_counter() - t0
    on_disk = sum(f.size_bytes for f in ds.fragments())
    modes = [
        "pyarrow",
        "lakever:2",
        "lakever:0",
        "lakever:1",
        "lakever:8",
        "lakever:2:verified",
        "pyarrow.dataset",
    ]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for rep in range(reps):  # interleaved, a different order each round
        for m in modes if rep % 2 == 0 else modes[::-1]:
            r = spawn_worker(__file__, m, uri)
            if r["rows"] != rows:
                raise AssertionError(f"{m} streamed {r['rows']} rows, expected {rows}")
            runs[m].append(r)

    def peak(m: str) -> float:
        return max(r["peak_above_start_mib"] for r in runs[m])

    def secs(m: str, key: str = "seconds") -> float:
        return float(np.median([r[key] for r in runs[m]]))

    base, base_name = peak("pyarrow"), "pyarrow ParquetFile.iter_batches"
    label = f"{rows:,} rows, {len(ds.fragments())} fragments, {on_disk / 2**20:,.0f} MiB on disk"
    results = []
    for m in modes[1:]:
        name = (
            f"to_batches(readahead={m.split(':')[1]})"
            + (" (default)" if m == "lakever:2" else "")
            + (", fragments verified before" if m.endswith(":verified") else "")
            if m.startswith("lakever:")
            else "pyarrow.dataset to_batches() defaults (the reader before issue 13)"
        )
        results.append(
            Result(
                "stream memory",
                f"peak RSS above start, {name}, {label}",
                "MiB",
                peak(m),
                base,
                base_name,
                target=Target("lakever", "<=", TARGET_MIB) if m == "lakever:2" else None,
                notes=f"largest of {reps} fresh processes",
                extra={"runs": runs[m]},
            )
        )
    for m in modes[1:]:
        results.append(
            Result(
                "stream time",
                f"seconds to stream, {m}, {label}",
                "s",
                secs(m),
                secs("pyarrow"),
                base_name,
                notes=f"median of {reps}; lakever's first read in a process hashes every fragment",
            )
        )
        results.append(
            Result(
                "stream time",
                f"CPU seconds (all threads) to stream, {m}, {label}",
                "s",
                secs(m, "cpu_seconds"),
                secs("pyarrow", "cpu_seconds"),
                base_name,
                notes=f"median of {reps}",
            )
        )
    info = {
        "rows": rows,
        "fragments": len(ds.fragments()),
        "bytes_on_disk": on_disk,
        "batch_size": BATCH,
        "build_s": round(build_s, 1),
        "baseline_runs": runs["pyarrow"],
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    args = worker_main(
        argv, doc=__doc__, output=DEFAULT_OUTPUT, quick="2M rows instead of 15M", worker=worker
    )
    if args is None:
        return 0
    rows, reps = (2_000_000, 1) if args.quick else (15_000_000, 2)
    reps = args.reps or reps
    results, _, meta = run_in_workdir(
        "lakever-memory-", args.workdir, args.quick, lambda d: run(rows, reps, d)
    )
    meta["measure"] = "peak RSS (VmHWM) minus RSS just before the stream, fresh process, MiB"
    report(args.output, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
