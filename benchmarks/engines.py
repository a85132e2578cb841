"""Distributed writes and scans through Ray Data and Dask against local lakever calls.

For each engine and worker count (default 1, 2 and 4): the same N rows, split into
one part per worker and already held by the engine (materialised / persisted, so the
time is the write, not building the input), are written with one
``lv.write_dataset(uri, engine_data)`` (one commit), against a single local
``lv.write_dataset(uri, table)`` of the same rows measured in the same run. Then a
full scan of the written dataset through the engine (``to_ray()`` gathered as Arrow,
``to_dask().compute()``) against ``to_arrow()``, and the same read left on the workers
(``to_ray().materialize()``, ``to_dask().map_partitions(len).compute()``), which tells
the engine's read from the cost of gathering every row into one process. Each number
is the median of ``--repeat`` runs; the engine's start-up is not timed; the JSON's
``meta`` records the load average before and after.

Usage: python benchmarks/engines.py [--rows N] [--workers 1,2,4] [--repeat K]
Prints a table and writes benchmarks/results/engines.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from _harness import make_table, run_meta, write_json

import lakever as lv

RESULTS = Path(__file__).parent / "results" / "engines.json"


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parts_of(table: pa.Table, k: int) -> list[pa.Table]:
    size = -(-table.num_rows // k)
    return [table.slice(i * size, size) for i in range(k)]


@contextmanager
def ray_engine(workers: int) -> Iterator[Callable[[pa.Table], Any]]:
    import ray
    import ray.data

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        yield lambda t: ray.data.from_arrow(parts_of(t, workers)).materialize()
    finally:
        ray.shutdown()


@contextmanager
def dask_engine(workers: int) -> Iterator[Callable[[pa.Table], Any]]:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster, wait

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):

        def hold(t: pa.Table) -> Any:
            frame = t.to_pandas(types_mapper=pd.ArrowDtype)
            df = client.persist(dd.from_pandas(frame, npartitions=workers, sort=False))
            wait(df)
            return df

        yield hold


def scan(engine: str, view: lv.Dataset) -> pa.Table:
    if engine == "ray":
        import ray

        return pa.concat_tables(ray.get(view.to_ray().to_arrow_refs()))
    return pa.Table.from_pandas(view.to_dask().compute(), preserve_index=False)


def read_on_workers(engine: str, view: lv.Dataset) -> int:
    if engine == "ray":
        return int(view.to_ray().materialize().count())
    return int(sum(view.to_dask().map_partitions(len).compute()))


def run(rows: int, workers: list[int], repeat: int, root: Path) -> list[dict[str, Any]]:
    table = make_table(rows)
    counter = iter(range(1_000_000))

    def fresh() -> str:
        return str(root / f"ds{next(counter)}")

    lv.write_dataset(fresh(), table)  # warm (imports, thread pools, page cache)
    local_write = median_time(lambda: lv.write_dataset(fresh(), table), repeat)
    local_view = lv.write_dataset(fresh(), table)
    to_arrow = median_time(local_view.to_arrow, repeat)
    out: list[dict[str, Any]] = []
    for engine, start in (("ray", ray_engine), ("dask", dask_engine)):
        for k in workers:
            with start(k) as hold:
                data = hold(table)
                lv.write_dataset(fresh(), data)  # warm the workers (imports, caches)
                write = median_time(lambda data=data: lv.write_dataset(fresh(), data), repeat)
                view = lv.write_dataset(fresh(), data)
                assert view.num_rows == rows
                assert len(view.history()) == 1
                scan(engine, view)  # warm
                read = median_time(lambda view=view, engine=engine: scan(engine, view), repeat)
                assert scan(engine, view).num_rows == rows
                assert read_on_workers(engine, view) == rows
                on_workers = median_time(
                    lambda view=view, engine=engine: read_on_workers(engine, view), repeat
                )
            out.append(
                {
                    "engine": engine,
                    "workers": k,
                    "rows": rows,
                    "fragments": len(view.fragments()),
                    "write_seconds": write,
                    "local_write_seconds": local_write,
                    "write_ratio": write / local_write,
                    "scan_seconds": read,
                    "to_arrow_seconds": to_arrow,
                    "scan_ratio": read / to_arrow,
                    "read_on_workers_seconds": on_workers,
                    "read_on_workers_ratio": on_workers / to_arrow,
                }
            )
            print(_row(out[-1]), flush=True)
    return out


_HEADER = (
    f"{'engine':<6} {'workers':>7} {'write s':>9} {'local s':>9} {'ratio':>7} "
    f"{'scan s':>9} {'to_arrow s':>10} {'ratio':>7} {'workers s':>9} {'ratio':>7}"
)


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['engine']:<6} {r['workers']:>7} {r['write_seconds']:>9.3f} "
        f"{r['local_write_seconds']:>9.3f} {r['write_ratio']:>7.2f} {r['scan_seconds']:>9.3f} "
        f"{r['to_arrow_seconds']:>10.3f} {r['scan_ratio']:>7.2f} "
        f"{r['read_on_workers_seconds']:>9.3f} {r['read_on_workers_ratio']:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{args.rows} rows, {os.cpu_count()} CPUs; medians of {args.repeat} runs")
    print(_HEADER, flush=True)
    root = Path(tempfile.mkdtemp(prefix="lakever-engines-"))
    started, load_before, t0 = (
        datetime.now(UTC),
        [round(x, 2) for x in os.getloadavg()],
        time.time(),
    )
    try:
        results = run(args.rows, workers, args.repeat, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_json(
        str(args.output),
        {
            "benchmark": "engines",
            "rows": args.rows,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "meta": run_meta(
                quick=False,
                started=started,
                elapsed=time.time() - t0,
                load_before=load_before,
                versions={"lakever": lv.__version__, "pyarrow": pa.__version__},
            ),
            "results": results,
        },
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
