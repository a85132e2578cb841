"""Wide rows (embeddings): write time and streaming memory (issue 13).

Usage::

    python benchmarks/wide_rows.py            # 200,000 rows x 1,536 float32 (1.2 GB)
    python benchmarks/wide_rows.py --quick    # 50,000 rows (300 MB)
    python benchmarks/wide_rows.py --output FILE   # default benchmarks/results/wide_rows.json

The table is ``id int64`` and ``emb fixed_size_list<float32>[1536]`` of random floats,
about 6 KB a row (incompressible, as real embeddings are). It is written three ways,
interleaved, ``reps`` times each:

* ``lakever``: ``create_dataset`` with the defaults (fragments of at most about 512 MiB
  and row groups of about 128 MiB, both cut evenly);
* ``lakever, one file``: the same with the byte limits lifted (``MAX_FRAGMENT_BYTES`` and
  ``ROW_GROUP_BYTES`` patched to 1 TiB), i.e. what lakever wrote before: one fragment of
  one row group;
* the baseline: ``pq.write_table`` of the rows plus one ``fsync`` of the file.

Then each layout is streamed in batches of 1,024 rows in **fresh subprocesses**, peak
RSS above the RSS just before the stream (``VmHWM`` reset through ``/proc/self/clear_refs``),
the largest of ``reps`` runs: ``ds.to_batches(1024)`` (readahead 2), and plain pyarrow
``ParquetFile(f).iter_batches(1024)`` with its defaults (``pre_buffer=True``: how lakever
streamed before) as the baseline. Nothing is asserted; the table and JSON report.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _harness import Result, Target, median, report, run_in_workdir, spawn_worker, worker_main
from memory import HERE, _peak_kib, _reset_peak, _rss_kib, lv  # lv: lakever, found as memory does

from lakever import fragments

DEFAULT_OUTPUT = os.path.join(HERE, "results", "wide_rows.json")
DIM = 1536
BATCH = 1024
TARGET_MIB = 256


def make_rows(n: int) -> pa.Table:
    values = np.random.default_rng(0).random(n * DIM, dtype=np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(values), DIM)
    return pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), "emb": emb})


def worker(mode: str, uri: str) -> dict[str, Any]:
    """Stream the dataset at ``uri`` as ``mode`` says; peak RSS growth and time."""
    ds = lv.open_dataset(uri)
    files = [os.path.join(uri, f.path) for f in ds.fragments()]
    ds.plan()  # open and plan outside the measurement

    def pyarrow_default() -> Any:
        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=BATCH)

    batches = pyarrow_default if mode == "pyarrow" else (lambda: ds.to_batches(BATCH))
    reset = _reset_peak()
    before = _rss_kib()
    t0 = time.perf_counter()
    rows = 0
    for b in batches():
        rows += b.num_rows
        del b
    elapsed = time.perf_counter() - t0
    peak = _peak_kib(reset=reset)
    return {
        "mode": mode,
        "rows": rows,
        "seconds": elapsed,
        "peak_above_start_mib": (peak - before) / 1024,
    }


def _layout(uri: str) -> dict[str, Any]:
    ds = lv.open_dataset(uri)
    groups = [
        pq.ParquetFile(os.path.join(uri, f.path)).metadata.num_row_groups for f in ds.fragments()
    ]
    return {
        "fragments": len(groups),
        "row_groups": groups,
        "mib_on_disk": round(sum(f.size_bytes for f in ds.fragments()) / 2**20),
    }


def run(rows: int, reps: int, workdir: str) -> tuple[list[Result], dict[str, Any]]:
    table = make_rows(rows)
    new, old, raw = (os.path.join(workdir, n) for n in ("new", "old", "raw.parquet"))

    def write_new() -> None:
        lv.create_dataset(new, table)

    def write_old() -> None:
        saved = fragments.MAX_FRAGMENT_BYTES, fragments.ROW_GROUP_BYTES
        fragments.MAX_FRAGMENT_BYTES = fragments.ROW_GROUP_BYTES = 1 << 40
        try:
            lv.create_dataset(old, table)
        finally:
            fragments.MAX_FRAGMENT_BYTES, fragments.ROW_GROUP_BYTES = saved

    def write_raw() -> None:
        pq.write_table(table, raw)
        fd = os.open(raw, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    writers = {
        "lakever": (write_new, new),
        "lakever, one file": (write_old, old),
        "raw": (write_raw, raw),
    }
    times: dict[str, list[float]] = {k: [] for k in writers}
    for rep in range(reps):
        for name in writers if rep % 2 == 0 else list(writers)[::-1]:
            write, target = writers[name]
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
            t0 = time.perf_counter()
            write()
            times[name].append(time.perf_counter() - t0)
    layouts = {"new": _layout(new), "old": _layout(old)}
    label = f"{rows:,} rows x {DIM} float32 ({table.nbytes / 2**20:,.0f} MiB)"
    results = [
        Result(
            "wide write",
            f"create_dataset, {label}: {layouts[k]['fragments']} fragment(s), "
            f"row groups {layouts[k]['row_groups']}",
            "s",
            median(times[name]),
            median(times["raw"]),
            "pq.write_table + fsync",
            notes=f"median of {reps}, interleaved",
            extra={"runs": times[name], "baseline_runs": times["raw"]},
        )
        for name, k in (("lakever", "new"), ("lakever, one file", "old"))
    ]
    streams = [("lakever", new), ("lakever", old), ("pyarrow", new), ("pyarrow", old)]
    peaks: dict[tuple[str, str], list[dict[str, Any]]] = {s: [] for s in streams}
    for rep in range(reps):
        for mode, uri in streams if rep % 2 == 0 else streams[::-1]:
            r = spawn_worker(__file__, mode, uri)
            if r["rows"] != rows:
                raise AssertionError(f"{mode} streamed {r['rows']} rows, expected {rows}")
            peaks[(mode, uri)].append(r)

    def peak(mode: str, uri: str) -> float:
        return max(r["peak_above_start_mib"] for r in peaks[(mode, uri)])

    def secs(mode: str, uri: str) -> float:
        return median([r["seconds"] for r in peaks[(mode, uri)]])

    for uri, what in ((new, "new"), (old, "old")):
        shape = (
            f"{layouts[what]['fragments']} fragment(s) of {layouts[what]['row_groups']} row groups"
        )
        results.append(
            Result(
                "wide stream memory",
                f"peak RSS above start, to_batches({BATCH}), {shape}",
                "MiB",
                peak("lakever", uri),
                peak("pyarrow", uri),
                "pyarrow iter_batches, pre-buffered (lakever before)",
                target=Target("lakever", "<=", TARGET_MIB),
                notes=f"largest of {reps} fresh processes",
                extra={"runs": peaks[("lakever", uri)], "baseline_runs": peaks[("pyarrow", uri)]},
            )
        )
        results.append(
            Result(
                "wide stream time",
                f"seconds to stream, to_batches({BATCH}), {shape}",
                "s",
                secs("lakever", uri),
                secs("pyarrow", uri),
                "pyarrow iter_batches, pre-buffered",
                notes=f"median of {reps}; lakever's first read in a process hashes every fragment",
            )
        )
    return results, {"rows": rows, "dim": DIM, "batch_size": BATCH, "layouts": layouts}


def main(argv: list[str] | None = None) -> int:
    args = worker_main(
        argv,
        doc=__doc__,
        output=DEFAULT_OUTPUT,
        quick="50,000 rows instead of 200,000",
        worker=worker,
    )
    if args is None:
        return 0
    rows, reps = (50_000, 1) if args.quick else (200_000, 3)
    reps = args.reps or reps
    results, _, meta = run_in_workdir(
        "lakever-wide-", args.workdir, args.quick, lambda d: run(rows, reps, d)
    )
    report(args.output, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
