"""Export to other table formats, part "Delta Lake": a long history of small appends.

Usage::

    python benchmarks/export.py            # 1,000 lakever versions (small appends)
    python benchmarks/export.py --quick    # 100 versions (a smoke test)
    python benchmarks/export.py --output FILE   # default benchmarks/results/export_delta.json

(benchmarks/export_iceberg.py is the Apache Iceberg part.)

A dataset of ``versions`` versions is built by appending ``rows`` rows per commit (one
fragment each). Measured:

1. **Full export**: ``ds.export_delta(root)`` of every version (Delta versions
   0..N-1 = lakever versions): wall time, and the bytes written under the target (the
   Delta log only: an append-only history needs no rewrite) against the dataset's data
   bytes (``data/``), i.e. what a copying export would at least write.
2. **Incremental export** of 10 more versions: time and bytes.
3. **Reading the head back** with delta-rs (``DeltaTable(root).to_pyarrow_table()``,
   which replays every commit file: no checkpoint is written) against lakever's own
   ``open_dataset(root).to_arrow()`` of the same version.

Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from _harness import Result, format_table, median, run_in_workdir, write_json

try:
    import lakever as lv
except ImportError:  # a checkout without an install: use the package next to benchmarks/
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lakever as lv

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "export_delta.json")
INCREMENT = 10


def _rows(start: int, n: int) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([i * 0.5 for i in ids], pa.float64()),
            "label": pa.array([f"row-{i}" for i in ids], pa.string()),
        }
    )


def _bytes(root: Path, prefix: str) -> int:
    top = root / prefix
    return sum(p.stat().st_size for p in top.rglob("*") if p.is_file()) if top.exists() else 0


def run(versions: int, rows: int, workdir: str) -> tuple[list[Result], dict[str, Any]]:
    root = Path(workdir) / "lake"
    uri = str(root)
    t0 = time.perf_counter()
    ds = lv.create_dataset(uri, _rows(0, rows))
    for v in range(1, versions):
        ds = ds.append(_rows(v * rows, rows))
    build_s = time.perf_counter() - t0
    data_bytes = _bytes(root, "data")

    t0 = time.perf_counter()
    full = ds.export_delta(uri)
    full_s = time.perf_counter() - t0
    log_bytes = _bytes(root, "_delta_log")
    assert full.versions_written == tuple(range(versions))
    assert full.bytes_written == log_bytes, (full.bytes_written, log_bytes)

    for v in range(versions, versions + INCREMENT):
        ds = ds.append(_rows(v * rows, rows))
    t0 = time.perf_counter()
    inc = ds.export_delta(uri)
    inc_s = time.perf_counter() - t0
    assert inc.versions_written == tuple(range(versions, versions + INCREMENT))

    import deltalake

    reads_delta, reads_lv = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        got = deltalake.DeltaTable(uri).to_pyarrow_table()
        reads_delta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        want = lv.open_dataset(uri).to_arrow()
        reads_lv.append(time.perf_counter() - t0)
    assert got.sort_by("id").select(want.schema.names).cast(want.schema).equals(want)

    n = versions + INCREMENT
    results = [
        Result(
            "delta export, full", f"export_delta(), {versions:,} versions", "s", full_s,
            notes=f"{full_s / versions * 1000:.2f} ms per version",
        ),
        Result(
            "delta export, full", "bytes written to the target", "bytes", full.bytes_written,
            baseline=data_bytes, baseline_name="the dataset's data bytes",
            notes=f"{full.files_rewritten} file(s) rewritten",
        ),
        Result(
            "delta export, incremental", f"export_delta(), {INCREMENT} new versions", "s", inc_s,
            baseline=full_s, baseline_name="full export",
        ),
        Result(
            "delta export, incremental", "bytes written to the target", "bytes",
            inc.bytes_written, baseline=data_bytes, baseline_name="the dataset's data bytes",
        ),
        Result(
            "read the head back", f"delta-rs to_pyarrow_table(), {n:,} commit files", "s",
            median(reads_delta), baseline=median(reads_lv),
            baseline_name="lakever to_arrow() of the same version", delta_rs=median(reads_delta),
        ),
    ]  # fmt: skip
    info = {
        "versions": versions,
        "rows_per_version": rows,
        "build_s": round(build_s, 2),
        "data_bytes": data_bytes,
        "log_bytes": _bytes(root, "_delta_log"),
        "rewritten_bytes": _bytes(root, "_delta_rewrites"),
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="100 versions instead of 1,000")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    args = p.parse_args(argv)
    versions, rows = (100, 10) if args.quick else (1000, 10)
    results, info, meta = run_in_workdir(
        "lakever-export-", args.workdir, args.quick, lambda d: run(versions, rows, d)
    )
    meta["ratio"] = "lakever / baseline"
    print(format_table(results))
    print(
        f"\n{versions:,} versions built in {info['build_s']:.1f} s; data {info['data_bytes']:,} "
        f"bytes, Delta log {info['log_bytes']:,} bytes, rewrites {info['rewritten_bytes']:,}"
    )
    write_json(args.output, {"meta": meta, "results": [r.to_json() for r in results]})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
