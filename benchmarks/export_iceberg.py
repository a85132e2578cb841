"""Export to Apache Iceberg: time and bytes of exporting a long history, then incrementally.

Usage::

    python benchmarks/export_iceberg.py            # 1,000 versions, then 10 more
    python benchmarks/export_iceberg.py --quick    # 100 versions, then 10 more (a smoke test)
    python benchmarks/export_iceberg.py --output FILE  # default: results/export_iceberg.json

A dataset of ``versions`` commits (a create and small appends of ``rows`` rows each, one
fragment per commit) is exported with ``ds.export_iceberg(target)``; then 10 more appends
are committed and exported again (incremental: only the new snapshots), and the export is
run once more with nothing new (a no-op). Measured: wall time of each export, bytes and
files written to the target, against the bytes of the dataset's data (its fragments: what
a copying export would write at least) and against the time lakever took to commit the
same history. Every Iceberg snapshot's row count is checked against lakever's (pyiceberg's
scan planning, not timed), and the head is read back through pyiceberg and through lakever.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
from _harness import Result, format_table, run_in_workdir, write_json

import lakever as lv

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "export_iceberg.json")


def _rows(start: int, n: int) -> pa.Table:
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.table({"id": ids, "value": pa.array([i * 0.5 for i in range(start, start + n)]),
                     "label": pa.array([f"row-{i}" for i in range(start, start + n)])})  # fmt: skip


def _bytes(root: Path, sub: str = "") -> tuple[int, int]:
    files = [p for p in (root / sub).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(versions: int, rows: int, more: int, workdir: str) -> tuple[list[Result], dict]:  # type: ignore[type-arg]
    from pyiceberg.table import StaticTable

    uri, target = os.path.join(workdir, "ds"), os.path.join(workdir, "ice")
    t0 = time.perf_counter()
    ds = lv.create_dataset(uri, _rows(0, rows))
    for v in range(1, versions):
        ds = ds.append(_rows(v * rows, rows))
    commit_s = time.perf_counter() - t0
    data_bytes, fragments = _bytes(Path(uri), "data")
    dataset_bytes, _ = _bytes(Path(uri))

    full, full_s = _timed(lambda: ds.export_iceberg(target))
    for v in range(versions, versions + more):
        ds = ds.append(_rows(v * rows, rows))
    incremental, incremental_s = _timed(lambda: ds.export_iceberg(target))
    noop, noop_s = _timed(lambda: ds.export_iceberg(target))
    target_bytes, target_files = _bytes(Path(target))

    table = StaticTable.from_metadata(incremental.metadata_location)
    for snap in table.metadata.snapshots:  # every snapshot plans to lakever's row count
        v = int(snap.summary["lakever.version"]) if snap.summary else -1
        planned = sum(
            t.file.record_count for t in table.scan(snapshot_id=snap.snapshot_id).plan_files()
        )
        if planned != (v + 1) * rows:
            raise AssertionError(f"snapshot of version {v} plans {planned} rows")
    head, iceberg_read_s = _timed(lambda: table.scan().to_arrow())
    mine, lakever_read_s = _timed(lambda: lv.open_dataset(uri).to_arrow())
    if head.num_rows != mine.num_rows:
        raise AssertionError("the head differs")

    n = f"{versions:,} versions"
    results = [
        Result("export, full", f"export_iceberg() of {n}", "s", full_s, commit_s,
               f"committing the {n}", notes=f"{full.files_written:,} files written"),
        Result("export, full", f"bytes written for {n}", "bytes", full.bytes_written,
               data_bytes, "the dataset's data bytes",
               notes="metadata, manifest lists, manifests; no data file"),
        Result("export, incremental", f"export_iceberg() of {more} new versions", "s",
               incremental_s, full_s, "the full export",
               notes=f"{incremental.files_written:,} files written"),
        Result("export, incremental", f"bytes written for {more} new versions", "bytes",
               incremental.bytes_written, full.bytes_written, "the full export"),
        Result("export, no-op", "export_iceberg() with nothing new", "s", noop_s, full_s,
               "the full export", notes=f"{noop.bytes_written} bytes written"),
        Result("read back", f"head ({head.num_rows:,} rows, {fragments + more:,} files)", "s",
               iceberg_read_s, lakever_read_s, "lakever to_arrow()", better="n/a",
               notes="pyiceberg StaticTable.scan().to_arrow()"),
    ]  # fmt: skip
    info = {
        "versions": versions,
        "rows_per_version": rows,
        "more_versions": more,
        "commit_s": round(commit_s, 2),
        "data_bytes": data_bytes,
        "dataset_bytes": dataset_bytes,
        "fragments": fragments,
        "target_bytes": target_bytes,
        "target_files": target_files,
        "full": full.to_dict(),
        "incremental": incremental.to_dict(),
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="100 versions instead of 1,000")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    args = p.parse_args(argv)
    versions, rows, more = (100, 100, 10) if args.quick else (1000, 100, 10)
    results, info, meta = run_in_workdir(
        "lakever-export-iceberg-", args.workdir, args.quick, lambda d: run(versions, rows, more, d)
    )
    meta["ratio"] = "lakever / baseline (see each row's baseline)"
    print(format_table(results))
    print(
        f"\n{versions:,} versions committed in {info['commit_s']:.1f} s; data "
        f"{info['data_bytes'] / 1e6:.2f} MB in {info['fragments']:,} fragments; target "
        f"{info['target_bytes'] / 1e6:.2f} MB in {info['target_files']:,} files"
    )
    write_json(args.output, {"meta": meta, "results": [r.to_json() for r in results]})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
