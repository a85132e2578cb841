"""Compaction: a full scan after many small commits, before and after ``ds.compact()``.

Usage::

    python benchmarks/compaction.py            # 2,000 commits of 100 rows, then compact
    python benchmarks/compaction.py --quick    # 200 commits (a few seconds)
    python benchmarks/compaction.py --output FILE   # default benchmarks/results/compaction.json

The dataset gets ``commits`` appends of ``rows`` rows each (one small fragment each), then a
delete of 1% of the rows (deletion vectors on the fragments it touches). Measured, each a
median of interleaved repetitions:

* ``to_arrow()`` of the whole snapshot before compaction and after it;
* the floor: pyarrow reading the same rows written as one Parquet file (``pq.read_table``);
* the time ``ds.compact()`` takes (once: it commits).

Ratios are ``lakever / floor``. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
from _harness import Result, Target, format_table, make_table, median, write_json

try:
    import lakever as lv
except ImportError:  # a checkout without an install: use the package next to benchmarks/
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lakever as lv

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "compaction.json")


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(commits: int, rows: int, reps: int, workdir: str) -> tuple[list[Result], dict[str, Any]]:
    uri = os.path.join(workdir, "lake")
    t0 = time.perf_counter()
    ds = lv.create_dataset(uri, make_table(rows, seed=0))
    for i in range(1, commits):
        ds = ds.append(make_table(rows, start_id=i * rows, seed=i))
    ds = ds.delete(where="hash(id) % 100 = 0")
    commit_s = time.perf_counter() - t0
    before = lv.open_dataset(uri)
    expected = before.to_arrow()
    floor_path = os.path.join(workdir, "floor.parquet")
    pq.write_table(expected, floor_path)

    t0 = time.perf_counter()
    after = before.compact()
    compact_s = time.perf_counter() - t0
    if not after.to_arrow().equals(expected):
        raise AssertionError("compaction changed the rows")

    scans: dict[str, list[float]] = {"before": [], "after": [], "floor": []}
    for _ in range(reps):  # interleaved, each on a freshly opened dataset
        scans["before"].append(_timed(lambda: lv.open_dataset(uri, version=before.version)
                                      .to_arrow()))  # fmt: skip
        scans["after"].append(_timed(lambda: lv.open_dataset(uri).to_arrow()))
        scans["floor"].append(_timed(lambda: pq.read_table(floor_path)))
    floor = median(scans["floor"])
    n = f"{expected.num_rows:,} rows"
    results = [
        Result(
            "full scan, before compaction",
            f"to_arrow(), {len(before.fragments()):,} fragments, {n}",
            "s",
            median(scans["before"]),
            floor,
            "pyarrow, one file",
        ),
        Result(
            "full scan, after compaction",
            f"to_arrow(), {len(after.fragments()):,} fragment(s), {n}",
            "s",
            median(scans["after"]),
            floor,
            "pyarrow, one file",
            target=Target("ratio", "<=", 2.0),
        ),
        Result(
            "compaction",
            f"ds.compact() of {len(before.fragments()):,} fragments",
            "s",
            compact_s,
            notes="once (it commits)",
        ),
    ]
    info = {
        "commits": commits,
        "rows_per_commit": rows,
        "rows": expected.num_rows,
        "fragments_before": len(before.fragments()),
        "fragments_after": len(after.fragments()),
        "deletion_vectors_before": sum(1 for f in before.fragments() if f.deletion_vector),
        "commit_s": round(commit_s, 2),
        "compact_parameters": after.commit.parameters,
        "scans_s": scans,
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="200 commits instead of 2,000")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    args = p.parse_args(argv)
    commits, rows, reps = (200, 100, 3) if args.quick else (2000, 100, 5)
    started = datetime.now(UTC)
    workdir = tempfile.mkdtemp(prefix="lakever-compaction-", dir=args.workdir)
    t0 = time.perf_counter()
    try:
        results, info = run(commits, rows, reps, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    payload = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "started_utc": started.isoformat(timespec="seconds"),
            "elapsed_s": round(time.perf_counter() - t0, 1),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "lakever_version": lv.__version__,
            "dataset": info,
            "ratio": "lakever / baseline (pyarrow reading the same rows as one file)",
        },
        "results": [r.to_json() for r in results],
    }
    print(format_table(results))
    print(
        f"\n{info['commits']:,} commits in {info['commit_s']:.1f} s; "
        f"{info['fragments_before']:,} fragments -> {info['fragments_after']:,}"
    )
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
