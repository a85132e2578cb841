"""Page checksums: what the CRC32 in every page costs to write and to check (2026-12-03).

Usage::

    python benchmarks/page_checksums.py            # 1,048,576 rows, 9 reps
    python benchmarks/page_checksums.py --quick    # 131,072 rows, 3 reps
    python benchmarks/page_checksums.py --output FILE  # default: results/page_checksums.json

The rows are `_harness.make_table` (id, timestamp, float, category, text; what the other
benchmarks write). CPU seconds of this process (`time.process_time`), medians of
interleaved repetitions, so the ratio holds on a busy machine:

* **encode**: `fragments._encode` of the rows into memory, as a write encodes a fragment,
  with ``fragments.PAGE_CHECKSUMS`` on (lakever's default) against off;
* **stream**: reading the file so written back in batches of 65,536 rows as `to_batches`
  reads it (``pre_buffer=False``, 1 MiB buffer), pages checked against not checked.

Nothing is asserted; the table and JSON report.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
from _harness import Result, make_table, median, report, run_in_workdir

from lakever import fragments

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "page_checksums.json")


def _encode_cpu(table: pa.Table, crc: bool) -> tuple[float, pa.Buffer]:  # noqa: FBT001
    saved = fragments.PAGE_CHECKSUMS
    fragments.PAGE_CHECKSUMS = crc
    try:
        out = pa.BufferOutputStream()
        t0 = time.process_time()
        fragments._encode(table, out)
        return time.process_time() - t0, out.getvalue()
    finally:
        fragments.PAGE_CHECKSUMS = saved


def _stream_cpu(path: str, verify: bool) -> float:  # noqa: FBT001
    t0 = time.process_time()
    with pq.ParquetFile(
        path, pre_buffer=False, buffer_size=1 << 20, page_checksum_verification=verify
    ) as pf:
        for _ in pf.iter_batches(65_536):
            pass
    return time.process_time() - t0


def run(rows: int, reps: int, workdir: str) -> tuple[list[Result], dict[str, object]]:
    table = make_table(rows)
    encode: dict[bool, list[float]] = {True: [], False: []}
    sizes: dict[bool, int] = {}
    for rep in range(reps):
        for crc in (True, False) if rep % 2 == 0 else (False, True):
            seconds, data = _encode_cpu(table, crc)
            encode[crc].append(seconds)
            sizes[crc] = data.size
    path = os.path.join(workdir, "crc.parquet")
    with open(path, "wb") as f:
        f.write(_encode_cpu(table, True)[1])
    stream: dict[bool, list[float]] = {True: [], False: []}
    _stream_cpu(path, True)  # warm the page cache and the allocator first, untimed
    for rep in range(reps):
        for verify in (True, False) if rep % 2 == 0 else (False, True):
            stream[verify].append(_stream_cpu(path, verify))
    timed = (
        (f"encode {rows:,} rows (CPU), CRC32 per page", encode, "no checksums"),
        (f"stream {rows:,} rows (CPU), pages checked", stream, "not checked"),
    )
    results = [
        Result(
            "page checksums",
            metric,
            "s",
            median(runs[True]),
            median(runs[False]),
            baseline,
            notes=f"CPU s, median of {reps}, interleaved",
            extra={"runs": runs[True], "baseline_runs": runs[False]},
        )
        for metric, runs, baseline in timed
    ]
    results.append(
        Result(
            "page checksums",
            "file size, with checksums",
            "bytes",
            float(sizes[True]),
            float(sizes[False]),
            "without",
        )
    )
    return results, {"rows": rows, "reps": reps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="131,072 rows, 3 reps")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--output", default=DEFAULT_OUTPUT)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    rows, reps = (131_072, 3) if args.quick else (1_048_576, 9)
    reps = args.reps or reps
    results, _, meta = run_in_workdir(
        "lakever-crc-", args.workdir, args.quick, lambda d: run(rows, reps, d)
    )
    report(args.output, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
