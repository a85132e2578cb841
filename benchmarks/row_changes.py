"""Row-level changes and diffs: what deletes, updates and diffs cost at 5M rows.

Workloads, each against a baseline measured in the same run:

1. delete 1% of the rows by id range: lakever merge-on-read (a deletion vector)
   and copy-on-write (a rewritten fragment), against delta-rs DeltaTable.delete;
2. 100 scattered single-row deletes, one commit each (the GDPR case), likewise;
3. the cost of a full scan after those deletes, against the scan before them;
4. update 1% of the rows (clustered by id, and scattered over every fragment),
   then diff the two versions: by key, as a multiset, and as a change feed,
   against the naive full-table ``EXCEPT ALL`` both ways in DuckDB over the same
   two snapshots, and against just reading the fragments the diff has to read.

Every lakever variant runs on its own branch from the same base snapshot, so all
start from identical data. delta-rs runs on a fresh copy of a Delta table of the
same rows. Times are medians of ``--runs`` runs unless noted.

Usage: python benchmarks/row_changes.py [--quick] [--rows N] [--runs K] [--no-delta]
Prints a table and writes benchmarks/results/row_changes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Benchmark the checkout this script belongs to, not whichever lakever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lakever as lv

RESULTS = Path(__file__).parent / "results" / "row_changes.json"


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    labels = np.array(["ham", "spam", "eggs", None], dtype=object)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "user_id": pa.array(rng.integers(0, rows // 10 + 1, rows)),
            "value": pa.array(rng.normal(0, 1, rows)),
            "category": pa.array(rng.choice(["a", "b", "c", "d"], rows)),
            "label": pa.array(labels[rng.integers(0, 4, rows)], pa.string()),
        }
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median_of(runs: int, fn: Callable[[int], float]) -> tuple[float, list[float]]:
    times = [fn(i) for i in range(runs)]
    return statistics.median(times), times


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.results: list[dict[str, Any]] = []
        self.branches = 0

    def record(
        self,
        workload: str,
        metric: str,
        lakever: float,
        baseline: float | None,
        baseline_name: str | None,
        **extra: Any,
    ) -> None:
        self.results.append(
            {
                "workload": workload,
                "metric": metric,
                "unit": "s",
                "lakever": lakever,
                "baseline": baseline,
                "baseline_name": baseline_name,
                "ratio": None if not baseline else lakever / baseline,
                **extra,
            }
        )

    def branch(self, base: lv.Dataset) -> lv.Dataset:
        self.branches += 1
        return base.branch(f"bench-{self.branches}")


def delta_copy(src: str, dst: str) -> Any:
    from deltalake import DeltaTable

    shutil.copytree(src, dst)
    return DeltaTable(dst)


def bench_deletes(b: Bench, base: lv.Dataset, delta_src: str | None) -> dict[str, lv.Dataset]:
    rows, runs = base.num_rows, b.args.runs
    lo = rows // 2
    hi = lo + rows // 100 - 1
    where = f"id BETWEEN {lo} AND {hi}"
    after: dict[str, lv.Dataset] = {}
    for mode in ("merge-on-read", "copy-on-write"):

        def one(_i: int, mode: str = mode) -> float:
            ds = b.branch(base)
            seconds, done = timed(lambda: ds.delete(where=where, mode=mode))
            after[mode] = done
            return seconds

        med, times = median_of(runs, one)
        b.record("delete 1% by id range", mode, med, None, None, runs=times)
    delta = None
    if delta_src is not None:

        def one_delta(i: int) -> float:
            dt = delta_copy(delta_src, str(b.work / f"delta-range-{i}"))
            seconds, _ = timed(lambda: dt.delete(f"id >= {lo} and id <= {hi}"))
            return seconds

        delta, times = median_of(runs, one_delta)
        b.record("delete 1% by id range", "delta-rs", delta, None, None, runs=times)
    for r in b.results[-3:]:
        if r["metric"] != "delta-rs" and delta:
            r.update(baseline=delta, baseline_name="delta-rs", ratio=r["lakever"] / delta)

    rng = np.random.default_rng(1)
    doomed = [int(x) for x in rng.choice(rows, b.args.gdpr, replace=False)]
    for mode in ("merge-on-read", "copy-on-write"):
        ds = b.branch(base)
        times = []
        for k in doomed:
            seconds, ds = timed(
                lambda ds=ds, k=k, mode=mode: ds.delete(where=f"id = {k}", mode=mode)
            )
            times.append(seconds)
        after[f"gdpr {mode}"] = ds
        b.record(
            f"{len(doomed)} single-row deletes",
            f"{mode}: median per delete",
            statistics.median(times),
            None,
            None,
            total=sum(times),
        )
    if delta_src is not None:
        dt = delta_copy(delta_src, str(b.work / "delta-gdpr"))
        times = [timed(lambda k=k: dt.delete(f"id = {k}"))[0] for k in doomed[: b.args.gdpr_delta]]
        d = statistics.median(times)
        b.record(
            f"{len(doomed)} single-row deletes",
            f"delta-rs: median per delete ({len(times)} deletes)",
            d,
            None,
            None,
            total=sum(times),
        )
        for r in b.results[-3:-1]:
            r.update(baseline=d, baseline_name="delta-rs", ratio=r["lakever"] / d)
    return after


def bench_scans(b: Bench, base: lv.Dataset, after: dict[str, lv.Dataset]) -> None:
    def scan(ds: lv.Dataset) -> float:
        return median_of(b.args.runs, lambda _i: timed(ds.to_arrow)[0])[0]

    def duck(ds: lv.Dataset) -> float:
        def one(_i: int) -> float:
            return timed(lambda: ds.to_duckdb().aggregate("count(*), sum(value)").fetchall())[0]

        return median_of(b.args.runs, one)[0]

    before, before_duck = scan(base), duck(base)
    b.record("full scan (to_arrow)", "no deletes", before, before, "itself")
    for name, ds in after.items():
        b.record("full scan (to_arrow)", f"after {name}", scan(ds), before, "scan before deletes")
    b.record("SQL count+sum (to_duckdb)", "no deletes", before_duck, before_duck, "itself")
    for name in ("merge-on-read", "gdpr merge-on-read"):
        b.record(
            "SQL count+sum (to_duckdb)",
            f"after {name}",
            duck(after[name]),
            before_duck,
            "SQL before deletes",
        )


def naive_except_all(a: lv.Dataset, b: lv.Dataset) -> tuple[float, int]:
    from lakever.sql import connect

    con = connect()
    a.to_duckdb(con).create_view("va")
    b.to_duckdb(con).create_view("vb")
    query = (
        "SELECT count(*) FROM ((SELECT * FROM va EXCEPT ALL SELECT * FROM vb) "
        "UNION ALL (SELECT * FROM vb EXCEPT ALL SELECT * FROM va))"
    )
    seconds, out = timed(lambda: con.sql(query).fetchall())
    con.close()
    return seconds, int(out[0][0])


def read_touched(base: lv.Dataset, after: lv.Dataset) -> float:
    """Seconds to read just the data files a diff of the two must read."""
    before = {(f.path, f.deletion_vector) for f in base.fragments()}
    now = {(f.path, f.deletion_vector) for f in after.fragments()}
    paths = sorted({p for p, _ in before ^ now})
    return timed(lambda: pq.read_table([f"{base.uri}/{p}" for p in paths]))[0]


def bench_diff(b: Bench, base: lv.Dataset, shape: str, where: str) -> None:
    updated = b.branch(base).update(set={"label": "'fixed'", "value": "value + 1"}, where=where)
    workload = f"diff after updating 1% ({shape})"
    naive, _ = median_of(b.args.runs, lambda _i: naive_except_all(base, updated)[0])
    _, naive_rows = naive_except_all(base, updated)
    touched = median_of(b.args.runs, lambda _i: read_touched(base, updated))[0]
    variants: list[tuple[str, Callable[[], Any]]] = [
        ("keyed diff (on=id)", lambda: base.diff(updated)),
        ("multiset diff (on=[])", lambda: base.diff(updated, on=[])),
        ("change feed (changes)", lambda: list(updated.changes(since=base.snapshot_id))),
    ]
    for metric, fn in variants:
        med, runs = median_of(b.args.runs, lambda _i, fn=fn: timed(fn)[0])
        b.record(workload, metric, med, naive, "DuckDB EXCEPT ALL both ways", runs=runs)
    keyed = b.results[-3]
    keyed.update(target="ratio <= 0.1 (>= 10x faster)", meets_target=keyed["ratio"] <= 0.1)
    d = base.diff(updated)
    b.record(workload, "read only the touched fragments (pyarrow)", touched, None, None)
    b.record(
        workload,
        "naive EXCEPT ALL both ways",
        naive,
        None,
        None,
        rows=naive_rows,
        diff_rows=d.summary.rows_touched,
        fragments_shared=d.summary.fragments_shared,
        fragments_read=d.summary.fragments_modified + d.summary.fragments_added,
    )


def bench_diffs(b: Bench, base: lv.Dataset) -> None:
    rows = base.num_rows
    lo = rows // 4
    bench_diff(b, base, "clustered", f"id BETWEEN {lo} AND {lo + rows // 100 - 1}")
    bench_diff(b, base, "scattered", "id % 100 = 7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500k rows, 3 runs: under a minute")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--no-delta", action="store_true", help="skip delta-rs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.rows = args.rows or (500_000 if args.quick else 5_000_000)
    args.runs = args.runs or 3
    args.gdpr = 100
    args.gdpr_delta = 20 if args.quick else 100
    per_fragment = max(1, args.rows // 5)
    try:
        import deltalake
    except ImportError:
        deltalake = None
    use_delta = deltalake is not None and not args.no_delta

    started = time.time()
    load_before = os.getloadavg()
    table = make_table(args.rows)
    work = Path(tempfile.mkdtemp(prefix="lakever-rows-bench-"))
    try:
        b = Bench(args, work)
        base = lv.create_dataset(
            str(work / "events"), table, primary_key=["id"], max_rows_per_fragment=per_fragment
        )
        delta_src = None
        if use_delta:
            from deltalake import write_deltalake

            delta_src = str(work / "delta-src")
            for start in range(0, args.rows, per_fragment):  # one file per chunk, like ours
                write_deltalake(delta_src, table.slice(start, per_fragment), mode="append")
        after = bench_deletes(b, base, delta_src)
        bench_scans(b, base, after)
        bench_diffs(b, base)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = {
        "meta": {
            "rows": args.rows,
            "fragments": 5,
            "runs": args.runs,
            "quick": args.quick,
            "elapsed_seconds": time.time() - started,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "lakever": lv.__version__,
            "lakever_path": str(Path(lv.__file__).parent),
            "deltalake": getattr(deltalake, "__version__", None) if use_delta else None,
        },
        "results": b.results,
    }
    print(f"row-level changes and diffs, {args.rows:,} rows in 5 fragments, median of {args.runs}")
    width = max(len(f"{r['workload']}: {r['metric']}") for r in b.results)
    for r in b.results:
        ratio = f"{r['ratio']:.3g}x {r['baseline_name']}" if r["ratio"] is not None else ""
        label = f"{r['workload']}: {r['metric']}"
        print(f"  {label:<{width}}  {r['lakever'] * 1000:>10.1f} ms  {ratio}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
