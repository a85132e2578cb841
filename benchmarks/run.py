"""Benchmarks for lakever, each against a baseline measured in the same run.

Usage::

    python benchmarks/run.py                 # full run (about 5-10 minutes on 2 cores)
    python benchmarks/run.py --quick         # small sizes, well under a minute
    python benchmarks/run.py --output FILE   # JSON path (default benchmarks/results/latest.json)

Workloads:

1. bulk append of a large table to a small dataset vs ``pyarrow.parquet.write_table``
2. many 100-row commits through the returned Dataset: commits/s and p50 latency drift
3. open latest / open an old version after a short and a long history
4. full scan to Arrow and an aggregate SQL query vs DuckDB ``read_parquet`` on the same files
5. concurrent appends from several OS processes: throughput, failures, lost races

delta-rs (if importable) runs workloads 2-4 side by side. Targets are reported,
never asserted: the exit status is 0 unless a workload raised an error.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import platform
import queue as queue_mod
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from _harness import (
    Result,
    Target,
    append_worker,
    cold_open_worker,
    compare,
    format_table,
    git_state,
    make_table,
    markdown_table,
    median,
    percentile,
    source_digest,
    time_call,
    write_json,
)

try:
    import lakever as lv
except ImportError:  # a checkout without an install: use the package next to benchmarks/
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lakever as lv

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "latest.json")

W1, W2, W3, W4, W5 = "1 bulk append", "2 commits", "3 open", "4 scan", "5 concurrent"
#: Workloads whose datasets others reuse: 3 and 4 need the history of 2, 4 the table of 1.
DEPENDS = {1: set(), 2: set(), 3: {2}, 4: {1, 2}, 5: set()}

SQL_QUERY = "SELECT count(*), sum(value) FROM {src} WHERE value > 0.5"
FILTER = "value > 0.5"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Everything that differs between the quick and the full run."""

    bulk_rows: int
    bulk_repeat: int
    small_rows: int
    commit_rows: int
    history_short: int
    history_long: int
    old_version: int
    open_repeat: int
    scan_repeat: int
    cold_repeat: int
    commit_runs: int
    concurrent_runs: int
    processes: int
    process_commits: int


FULL = Sizes(
    bulk_rows=5_000_000,
    bulk_repeat=3,
    small_rows=1_000,
    commit_rows=100,
    history_short=1_000,
    history_long=10_000,
    old_version=500,
    open_repeat=200,
    scan_repeat=9,
    cold_repeat=3,
    commit_runs=3,
    concurrent_runs=3,
    processes=4,
    process_commits=75,
)
QUICK = Sizes(
    bulk_rows=200_000,
    bulk_repeat=3,
    small_rows=1_000,
    commit_rows=100,
    history_short=100,
    history_long=1_000,
    old_version=50,
    open_repeat=100,
    scan_repeat=3,
    cold_repeat=1,
    commit_runs=1,
    concurrent_runs=1,
    processes=4,
    process_commits=15,
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def short(n: int) -> str:
    """1000 -> '1k', 10000 -> '10k', 5000000 -> '5M', 5001000 -> '5,001,000'."""
    if n >= 1_000_000:
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


class Prerequisite(Exception):
    """A workload cannot run because one it builds on failed."""


class DeltaSide:
    """delta-rs, driven through its public Python API (absent: every call returns None)."""

    def __init__(self, module: ModuleType | None) -> None:
        self.dl = module
        self.notes: list[str] = []

    @property
    def available(self) -> bool:
        return self.dl is not None

    def guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a delta-rs step; on error note it and return None (delta is not under test)."""
        if self.dl is None:
            return None
        try:
            return fn()
        except Exception as exc:
            self.notes.append(f"delta-rs {what} failed: {type(exc).__name__}: {exc}")
            log(self.notes[-1])
            return None


class Bench:
    def __init__(self, sizes: Sizes, workdir: str, delta: DeltaSide, *, delta_long: bool) -> None:
        self.s = sizes
        self.dir = workdir
        self.delta = delta
        self.delta_long = delta_long
        self.results: list[Result] = []
        self.errors: list[dict[str, str]] = []
        self.bulk_uri: str | None = None
        self.bulk_delta: str | None = None
        self.hist_uri: str | None = None
        self.hist_delta: str | None = None
        self.hist_pool: pa.Table | None = None
        self.single_process_rate: float | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def add(self, result: Result) -> None:
        self.results.append(result)

    def run(self, workloads: list[int]) -> None:
        steps: list[tuple[int, str, Callable[[], None]]] = [
            (1, W1, self.bulk_append),
            (4, W4 + " (large fragments)", self.scan_large),
            (2, W2, self.commits),
            (4, W4 + " (small fragments)", self.scan_small),
            (3, W3, self.opens),
            (5, W5, self.concurrent),
        ]
        for number, name, step in steps:
            if number not in workloads:
                continue
            log(f"workload {name} ...")
            start = time.perf_counter()
            try:
                step()
            except Exception as exc:
                log(f"workload {name} raised {type(exc).__name__}: {exc}")
                self.errors.append(
                    {
                        "workload": name,
                        "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=8),
                    }
                )
            log(f"workload {name} done in {time.perf_counter() - start:.1f} s")

    # ------------------------------------------------------------------ 1: bulk append

    def bulk_append(self) -> None:
        s = self.s
        small = make_table(s.small_rows, seed=1)
        big = make_table(s.bulk_rows, start_id=s.small_rows, seed=2)
        # Warm up both writers (thread pools, allocator, page cache of the directory).
        warm = make_table(min(s.bulk_rows, 100_000), start_id=s.small_rows, seed=3)
        pq.write_table(warm, self.path("warm.parquet"))
        lv.create_dataset(self.path("warm"), small).append(warm)
        shutil.rmtree(self.path("warm"))
        os.unlink(self.path("warm.parquet"))

        lake_t: list[float] = []
        base_t: list[float] = []
        lake_cpu: list[float] = []
        base_cpu: list[float] = []
        fsync_t: list[float] = []
        # pyarrow's own multi-threaded writer (pyarrow.dataset.write_dataset, defaults).
        mt_t: list[float] = []
        mt_cpu: list[float] = []
        mt_fsync_t: list[float] = []
        for rep in range(s.bulk_repeat):
            uri = self.path(f"bulk-{rep}")
            file = self.path(f"bulk-{rep}.parquet")
            mt_dir = self.path(f"bulk-{rep}-write_dataset")
            ds = lv.create_dataset(uri, small, message="small start")

            def lake(ds: lv.Dataset = ds) -> None:
                ds.append(big, message="bulk")

            def base(file: str = file) -> None:
                pq.write_table(big, file)

            def mt(mt_dir: str = mt_dir) -> None:
                pds.write_dataset(big, mt_dir, format="parquet")

            # Alternate the order so no side always runs on a warmer machine.
            order = [(lake, lake_t, lake_cpu), (base, base_t, base_cpu), (mt, mt_t, mt_cpu)]
            for fn, wall, cpu in order if rep % 2 == 0 else order[::-1]:
                c0 = time.process_time()
                wall.append(time_call(fn))
                cpu.append(time.process_time() - c0)
            fsync_t.append(time_call(functools.partial(_fsync_file, file)))
            mt_files = [os.path.join(mt_dir, name) for name in sorted(os.listdir(mt_dir))]
            mt_fsync_t.append(time_call(lambda files=mt_files: [_fsync_file(f) for f in files]))
            os.unlink(file)
            shutil.rmtree(mt_dir)
            if rep == 0:
                self.bulk_uri = uri
            else:
                shutil.rmtree(uri)

        assert self.bulk_uri is not None
        got = lv.open_dataset(self.bulk_uri).num_rows
        if got != s.small_rows + s.bulk_rows:
            raise AssertionError(
                f"bulk dataset has {got} rows, expected {s.small_rows + s.bulk_rows}"
            )

        delta_t = None
        if self.delta.available:
            dpath = self.path("bulk-delta")

            def delta_bulk() -> float:
                dl = self.delta.dl
                assert dl is not None
                dl.write_deltalake(dpath, small)
                return time_call(lambda: dl.write_deltalake(dpath, big, mode="append"))

            delta_t = self.delta.guard("bulk append", delta_bulk)
            self.bulk_delta = dpath if delta_t is not None else None

        lake_m, base_m = median(lake_t), median(base_t)
        n = short(s.bulk_rows)
        self.add(
            Result(
                W1,
                f"append {n} rows to a {short(s.small_rows)}-row dataset",
                "s",
                lake_m,
                base_m,
                "pq.write_table",
                Target("ratio", "<=", 1.10),
                delta_rs=delta_t,
                notes=f"median of {s.bulk_repeat}; lakever fsyncs, the baseline does not; "
                "delta-rs: 1 run of write_deltalake(mode='append')",
                extra={"lakever_runs": lake_t, "baseline_runs": base_t},
            )
        )
        self.add(
            Result(
                W1,
                f"append {n} rows vs write_table + fsync",
                "s",
                lake_m,
                median([b + f for b, f in zip(base_t, fsync_t, strict=True)]),
                "write_table+fsync",
                notes="same runs; baseline plus one fsync of its file",
            )
        )
        self.add(
            Result(
                W1,
                f"CPU time of the {n}-row append (process, all threads)",
                "s",
                median(lake_cpu),
                median(base_cpu),
                "pq.write_table",
                notes="same runs; CPU seconds include the writer threads and are less affected "
                "by other load than wall time (though not immune on shared cores)",
                extra={"lakever_runs": lake_cpu, "baseline_runs": base_cpu},
            )
        )
        self.add(
            Result(
                W1,
                f"append {n} rows vs pyarrow write_dataset + fsync",
                "s",
                lake_m,
                median([b + f for b, f in zip(mt_t, mt_fsync_t, strict=True)]),
                "write_dataset+fsync",
                notes="same runs; pyarrow.dataset.write_dataset (multi-threaded, default "
                "options) plus one fsync of each file it wrote",
                extra={"lakever_runs": lake_t, "baseline_runs": mt_t, "fsync_runs": mt_fsync_t},
            )
        )
        self.add(
            Result(
                W1,
                f"CPU time of the {n}-row append vs write_dataset",
                "s",
                median(lake_cpu),
                median(mt_cpu),
                "write_dataset",
                notes="same runs (process CPU, all threads)",
                extra={"lakever_runs": lake_cpu, "baseline_runs": mt_cpu},
            )
        )

    # ------------------------------------------------------------------ 4: scans

    def scan_large(self) -> None:
        if self.bulk_uri is None:
            raise Prerequisite("needs the dataset of workload 1, which failed")
        self._scan(
            f"{short(self.s.small_rows + self.s.bulk_rows)} rows",
            self.bulk_uri,
            self.bulk_delta,
            target=True,
        )

    def scan_small(self) -> None:
        if self.hist_uri is None:
            raise Prerequisite("needs the history of workload 2, which failed")
        commits = self.s.history_short
        self._scan(
            f"{short(commits)} x {self.s.commit_rows}-row fragments",
            self.hist_uri,
            self.hist_delta,
            target=True,
        )

    def _scan(self, shape: str, uri: str, delta_path: str | None, *, target: bool) -> None:
        reps = self.s.scan_repeat
        ds = lv.open_dataset(uri)
        files = [f.uri for f in ds.fragments()]
        con = duckdb.connect()
        duck_sql = SQL_QUERY.format(src=f"read_parquet({sql_list(files)})")
        lake_sql = SQL_QUERY.format(src="self")
        tgt = Target("ratio", "<=", 1.10) if target else None
        label = f"{shape}, {len(files)} files"

        # Correctness first: both sides must agree, or the timing means nothing.
        a = ds.sql(lake_sql).fetchall()
        b = con.sql(duck_sql).fetchall()
        if a[0][0] != b[0][0] or abs(a[0][1] - b[0][1]) > 1e-6 * max(1.0, abs(b[0][1])):
            raise AssertionError(f"lakever sql {a} != duckdb {b} on {label}")
        full = ds.to_arrow()
        if full.num_rows != ds.num_rows:
            raise AssertionError(f"to_arrow returned {full.num_rows} rows, expected {ds.num_rows}")
        del full

        dl = self.delta.dl
        dt = None
        if delta_path is not None and dl is not None:
            dt = self.delta.guard("open for scan", lambda: dl.DeltaTable(delta_path))

        def measure(
            lake: Callable[[], object],
            base: Callable[[], object],
            delta: Callable[[Any], object] | None,
            what: str,
        ) -> tuple[float, float, float | None]:
            fns: dict[str, Callable[[], object]] = {"lakever": lake, "baseline": base}
            # One untimed call decides whether delta-rs takes part at all.
            if (
                dt is not None
                and delta is not None
                and self.delta.guard(what, lambda: delta(dt)) is not None
            ):
                fns["delta"] = lambda: delta(dt)
            times = compare(fns, repeat=reps, warmup=1)
            d = times.get("delta")
            return median(times["lakever"]), median(times["baseline"]), median(d) if d else None

        note = f"median of {reps}, interleaved; Dataset and connection reused"

        # to_arrow
        lake, base, delta = measure(
            ds.to_arrow,
            lambda: con.read_parquet(files).to_arrow_table(),
            lambda t: t.to_pyarrow_table(),
            "to_pyarrow_table",
        )
        self.add(
            Result(
                W4,
                f"to_arrow(), {label}",
                "s",
                lake,
                base,
                "duckdb read_parquet",
                tgt,
                delta_rs=delta,
                notes=note + "; delta-rs: DeltaTable.to_pyarrow_table()",
            )
        )

        # damage detection: every fragment is hashed before its first read in a process
        from lakever.integrity import forget, verify

        plan = ds.plan()
        times = compare(
            {
                "lakever": lambda: verify(plan.storage, plan.tasks, snapshot=plan.snapshot_id),
                "baseline": ds.to_arrow,
            },
            repeat=reps,
            warmup=1,
            setups={"lakever": forget},
        )
        self.add(
            Result(
                W4,
                f"damage detection: hash every fragment / warm to_arrow(), {label}",
                "s",
                median(times["lakever"]),
                median(times["baseline"]),
                "lakever to_arrow() (fragments already verified)",
                Target("ratio", "<=", 0.10) if target else None,
                notes="SHA-256 of every fragment once per process (later reads only stat the "
                "files); the ratio is the cost added to a process's first full scan",
            )
        )
        times = compare(
            {"lakever": ds.to_arrow, "baseline": lambda: con.read_parquet(files).to_arrow_table()},
            repeat=reps,
            warmup=1,
            setups={"lakever": forget},
        )
        self.add(
            Result(
                W4,
                f"to_arrow(), first read in a process (fragments hashed), {label}",
                "s",
                median(times["lakever"]),
                median(times["baseline"]),
                "duckdb read_parquet (no verification)",
                notes="verification cache cleared before each lakever call",
            )
        )

        # sql aggregate
        def delta_sql(t: Any) -> object:
            assert dl is not None
            return dl.QueryBuilder().register("self", t).execute(lake_sql).read_all()

        lake, base, delta = measure(
            lambda: ds.sql(lake_sql).to_arrow_table(),
            lambda: con.sql(duck_sql).to_arrow_table(),
            delta_sql,
            "QueryBuilder sql",
        )
        self.add(
            Result(
                W4,
                f"sql count/sum where value > 0.5, {label}",
                "s",
                lake,
                base,
                "duckdb read_parquet",
                tgt,
                delta_rs=delta,
                notes=note + "; delta-rs: QueryBuilder (DataFusion)",
            )
        )

        # filtered read (no target in the issue; same baseline engine)
        lake, base, delta = measure(
            lambda: ds.to_arrow(filter=FILTER),
            lambda: con.read_parquet(files).filter(FILTER).to_arrow_table(),
            lambda t: t.to_pyarrow_table(filters=[("value", ">", 0.5)]),
            "filtered read",
        )
        self.add(
            Result(
                W4,
                f"to_arrow(filter='{FILTER}'), {label}",
                "s",
                lake,
                base,
                "duckdb read_parquet",
                delta_rs=delta,
                notes=note + "; no target in the issue",
            )
        )

        # A freshly opened Dataset creates its DuckDB connection on first use.
        holder: dict[str, lv.Dataset] = {}

        def fresh() -> None:
            holder["ds"] = lv.open_dataset(uri)

        def duck_fresh() -> None:
            c = duckdb.connect()
            c.sql(duck_sql).to_arrow_table()
            c.close()

        times = compare(
            {
                "lakever": lambda: holder["ds"].sql(lake_sql).to_arrow_table(),
                "baseline": duck_fresh,
            },
            repeat=reps,
            warmup=1,
            setups={"lakever": fresh},
        )
        self.add(
            Result(
                W4,
                f"first sql on a freshly opened Dataset, {label}",
                "s",
                median(times["lakever"]),
                median(times["baseline"]),
                "duckdb connect+query",
                notes="open untimed; includes the Dataset's DuckDB connection (manifests may come "
                "from lakever's in-process cache); no target in the issue",
            )
        )
        con.close()

    # ------------------------------------------------------------------ 2: commits

    def _pool(self) -> pa.Table:
        if self.hist_pool is None:
            n = (self.s.history_long + 1) * self.s.commit_rows
            self.hist_pool = make_table(n, start_id=0, seed=7)
        return self.hist_pool

    def _slice(self, i: int) -> pa.Table:
        r = self.s.commit_rows
        return self._pool().slice(i * r, r)

    def _lake_commits(
        self, ds: lv.Dataset, first: int, count: int
    ) -> tuple[lv.Dataset, list[float], float, float]:
        """Append ``count`` slices; return the Dataset, latencies, wall and CPU seconds."""
        lat: list[float] = []
        cpu = time.process_time()
        start = time.perf_counter()
        for i in range(first, first + count):
            t = self._slice(i)
            t0 = time.perf_counter()
            ds = ds.append(t)
            lat.append(time.perf_counter() - t0)
        return ds, lat, time.perf_counter() - start, time.process_time() - cpu

    def _delta_commits(self, path: str, first: int, count: int) -> tuple[list[float], float, float]:
        assert self.delta.dl is not None
        write = self.delta.dl.write_deltalake
        lat: list[float] = []
        cpu = time.process_time()
        start = time.perf_counter()
        for i in range(first, first + count):
            t = self._slice(i)
            t0 = time.perf_counter()
            write(path, t, mode="append")
            lat.append(time.perf_counter() - t0)
        return lat, time.perf_counter() - start, time.process_time() - cpu

    def commits(self) -> None:
        s = self.s
        n = s.history_short
        tenth = max(1, n // 10)
        first, last = slice(0, tenth), slice(n - tenth, n)
        rates: list[float] = []
        p50_first: list[float] = []
        p50_last: list[float] = []
        all_lat: list[float] = []
        cpus: list[float] = []
        for run in range(s.commit_runs):
            uri = self.path(f"history-{run}")
            ds = lv.create_dataset(uri, self._slice(0), message="start")
            ds, lat, wall, cpu = self._lake_commits(ds, 1, n)
            if ds.version != n or ds.num_rows != (n + 1) * s.commit_rows:
                raise AssertionError(f"history has version {ds.version}, rows {ds.num_rows}")
            rates.append(n / wall)
            cpus.append(ms(cpu / n))
            p50_first.append(ms(median(lat[first])))
            p50_last.append(ms(median(lat[last])))
            all_lat.extend(lat)
            if run == 0:
                self.hist_uri = uri
            else:
                shutil.rmtree(uri)
        rate = median(rates)
        self.single_process_rate = rate

        d_lat: list[float] | None = None
        d_rate = None
        d_cpu = None
        if self.delta.available:
            dpath = self.path("history-delta")

            def run_delta() -> tuple[list[float], float, float]:
                assert self.delta.dl is not None
                self.delta.dl.write_deltalake(dpath, self._slice(0))
                return self._delta_commits(dpath, 1, n)

            out = self.delta.guard("commits", run_delta)
            if out is not None:
                d_lat, d_wall, d_cpu_s = out
                d_rate = n / d_wall
                d_cpu = ms(d_cpu_s / n)
                self.hist_delta = dpath

        runs = f"median of {s.commit_runs} runs" if s.commit_runs > 1 else "1 run"
        d_first = ms(median(d_lat[first])) if d_lat else None
        d_last = ms(median(d_lat[last])) if d_lat else None
        f_l, l_l = median(p50_first), median(p50_last)
        label = f"{short(n)} commits x {s.commit_rows} rows"
        self.add(
            Result(
                W2,
                f"commits/s, {label}",
                "1/s",
                rate,
                target=Target("lakever", ">=", 200),
                delta_rs=d_rate,
                better="higher",
                notes=f"lakever: {runs}, appends through the returned Dataset; delta-rs: 1 run of "
                "write_deltalake(path, t, mode='append')",
                extra={"lakever_runs": rates},
            )
        )
        self.add(
            Result(
                W2,
                f"p50 latency, first {tenth} commits",
                "ms",
                f_l,
                delta_rs=d_first,
                notes=runs,
                extra={"lakever_runs": p50_first},
            )
        )
        self.add(
            Result(
                W2,
                f"p50 latency, last {tenth} commits",
                "ms",
                l_l,
                delta_rs=d_last,
                notes=runs,
                extra={"lakever_runs": p50_last},
            )
        )
        self.add(
            Result(
                W2,
                "p50 latency ratio last/first",
                "x",
                l_l / f_l,
                target=Target("lakever", "<=", 1.3),
                delta_rs=(d_last / d_first) if (d_last and d_first) else None,
                notes="ratio of the medians above",
            )
        )
        self.add(
            Result(
                W2,
                "p99 latency, all commits",
                "ms",
                ms(percentile(all_lat, 99)),
                delta_rs=ms(percentile(d_lat, 99)) if d_lat else None,
                notes="lakever: all runs pooled",
            )
        )
        self.add(
            Result(
                W2,
                "CPU time per commit (process)",
                "ms",
                median(cpus),
                delta_rs=d_cpu,
                notes=f"lakever: {runs}; all threads of the process; less affected by other "
                "load than wall time, though not immune on shared cores",
                extra={"lakever_runs": cpus},
            )
        )

    # ------------------------------------------------------------------ 3: opens

    def _interleaved_opens(
        self,
        opener: Callable[[str, int | None], object],
        paths: dict[str, str],
        version: int,
        reps: int,
    ) -> dict[tuple[str, str], float]:
        """Median ms of ``opener(path, None)`` and ``opener(path, version)`` for each path.

        The paths are measured in alternating rounds, so drift in the machine's
        load affects each path alike and their ratio stays meaningful.
        """
        rounds = 10
        per_round = max(1, reps // rounds)
        times: dict[tuple[str, str], list[float]] = {
            (name, kind): [] for name in paths for kind in ("latest", "old")
        }
        for path in paths.values():
            for _ in range(3):
                opener(path, None)
                opener(path, version)
        for _ in range(rounds):
            for name, path in paths.items():
                for kind, v in (("latest", None), ("old", version)):
                    for _ in range(per_round):
                        times[(name, kind)].append(time_call(functools.partial(opener, path, v)))
        return {k: ms(median(v)) for k, v in times.items()}

    def _cold_list_time(self, uri: str) -> float:
        """Median over fresh processes of the first open + fragments() (no warm caches)."""
        ctx = mp.get_context("spawn")
        times = []
        for _ in range(self.s.cold_repeat):
            q = ctx.Queue()
            p = ctx.Process(target=cold_open_worker, args=(uri, q), name="lakever-bench-open")
            p.start()
            try:
                report = q.get(timeout=300)
            finally:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=10)
            if report.get("error"):
                raise RuntimeError(f"cold open worker failed: {report['error']}")
            times.append(report["total_s"])
        return ms(median(times))

    def opens(self) -> None:
        s = self.s
        if self.hist_uri is None:
            raise Prerequisite("needs the history of workload 2, which failed")
        v = s.old_version
        short_n, long_n = s.history_short, s.history_long
        a, b = short(short_n), short(long_n)

        # Keep a copy of each short history, then grow the originals with the same
        # 100-row commits; opens of both lengths are then measured side by side.
        lake_short = self.path("history-short-copy")
        shutil.copytree(self.hist_uri, lake_short)
        delta_short = None
        if self.hist_delta is not None:
            delta_short = self.path("history-delta-short-copy")
            shutil.copytree(self.hist_delta, delta_short)

        ds = lv.open_dataset(self.hist_uri)
        ds, grow_lat, grow_wall, _ = self._lake_commits(ds, short_n + 1, long_n - short_n)
        if ds.version != long_n:
            raise AssertionError(f"long history ends at version {ds.version}, expected {long_n}")
        delta_long = None
        d_grow_rate = None
        if self.hist_delta is not None and self.delta_long:
            hist_delta = self.hist_delta
            out = self.delta.guard(
                "grow history",
                lambda: self._delta_commits(hist_delta, short_n + 1, long_n - short_n),
            )
            if out is not None:
                delta_long = hist_delta
                d_grow_rate = (long_n - short_n) / out[1]

        lake = self._interleaved_opens(
            lambda p, ver: lv.open_dataset(p, version=ver),
            {"short": lake_short, "long": self.hist_uri},
            v,
            s.open_repeat,
        )
        d: dict[tuple[str, str], float] = {}
        if delta_short is not None:
            dl = self.delta.dl
            assert dl is not None
            d_paths = {"short": delta_short}
            if delta_long is not None:
                d_paths["long"] = delta_long
            d = (
                self.delta.guard(
                    "open",
                    lambda: self._interleaved_opens(
                        lambda p, ver: dl.DeltaTable(p, version=ver),
                        d_paths,
                        v,
                        max(10, s.open_repeat // 4),
                    ),
                )
                or {}
            )
        list_s = self._cold_list_time(lake_short)
        list_l = self._cold_list_time(self.hist_uri)

        note = (
            f"median of {s.open_repeat} opens, {a} and {b} interleaved (warm page cache); "
            "delta-rs: DeltaTable(path[, version])"
        )
        skipped = "" if delta_long else "; delta-rs long history not built (--delta-long)"
        le3 = Target("lakever", "<=", 3.0)
        le13 = Target("lakever", "<=", 1.3)
        for kind, what in (("latest", "open latest"), ("old", f"open version {v}")):
            self.add(
                Result(
                    W3,
                    f"{what}, {a} commits",
                    "ms",
                    lake[("short", kind)],
                    target=le3,
                    delta_rs=d.get(("short", kind)),
                    notes=note,
                )
            )
        for kind, what in (("latest", "open latest"), ("old", f"open version {v}")):
            self.add(
                Result(
                    W3,
                    f"{what}, {b} commits",
                    "ms",
                    lake[("long", kind)],
                    target=le3,
                    delta_rs=d.get(("long", kind)),
                    notes=note + skipped,
                )
            )
        for kind, what in (("latest", "open latest"), ("old", f"open version {v}")):
            d_long, d_short = d.get(("long", kind)), d.get(("short", kind))
            self.add(
                Result(
                    W3,
                    f"{what} {b}/{a}",
                    "x",
                    lake[("long", kind)] / lake[("short", kind)],
                    target=le13,
                    delta_rs=(d_long / d_short) if (d_long and d_short) else None,
                )
            )
        for n, value in ((a, list_s), (b, list_l)):
            self.add(
                Result(
                    W3,
                    f"first open + fragments() in a new process, {n} commits",
                    "ms",
                    value,
                    notes=f"median of {s.cold_repeat} fresh processes; reads every manifest, like "
                    "delta-rs's eager open; no target in the issue",
                )
            )
        tenth = max(1, (long_n - short_n) // 10)
        self.add(
            Result(
                W2,
                f"commits/s growing {a} -> {b}",
                "1/s",
                (long_n - short_n) / grow_wall,
                delta_rs=d_grow_rate,
                better="higher",
                notes="history build for workload 3; no target in the issue",
            )
        )
        self.add(
            Result(
                W2,
                f"p50 latency, last {tenth} commits of {b}",
                "ms",
                ms(median(grow_lat[-tenth:])),
                notes="compare with the first commits of workload 2",
            )
        )

    # ------------------------------------------------------------------ 5: concurrency

    def _concurrent_run(self, run: int) -> dict[str, Any]:
        s = self.s
        uri = self.path(f"concurrent-{run}")
        initial = lv.create_dataset(uri, make_table(s.small_rows, seed=11), message="start")
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(s.processes + 1)
        q = ctx.Queue()
        procs = []
        for w in range(s.processes):
            id_base = 100_000_000 + w * s.process_commits * s.commit_rows
            p = ctx.Process(
                target=append_worker,
                args=(uri, w, s.process_commits, s.commit_rows, id_base, barrier, q),
                name=f"lakever-bench-append-{w}",
            )
            p.start()
            procs.append(p)
        reports: list[dict[str, Any]] = []
        try:
            try:
                barrier.wait(timeout=300)
            except threading.BrokenBarrierError:
                log("a worker did not reach the start barrier")
            deadline = time.monotonic() + 600
            while len(reports) < len(procs) and time.monotonic() < deadline:
                try:
                    reports.append(q.get(timeout=1.0))
                except queue_mod.Empty:
                    if all(not p.is_alive() for p in procs) and q.empty():
                        break
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=10)

        broken = [r for r in reports if r.get("error")]
        if broken or len(reports) != len(procs):
            details = "; ".join(str(r.get("error"))[-300:] for r in broken)
            raise RuntimeError(
                f"{len(reports)}/{len(procs)} workers reported, {len(broken)} crashed: {details}"
            )
        final = lv.open_dataset(uri)
        ((rows_read, distinct_ids),) = final.sql(
            "SELECT count(*), count(DISTINCT id) FROM self"
        ).fetchall()
        out = {
            "committed": sum(r["committed"] for r in reports),
            "failures": [f for r in reports for f in r["failures"]],
            "wall": max(r["end"] for r in reports) - min(r["start"] for r in reports),
            "latencies": [x for r in reports for x in r["latencies"]],
            "instrumented": all(r["instrumented"] for r in reports),
            "attempts": sum(r["attempts"] for r in reports),
            "lost": sum(r["lost"] for r in reports),
            "attempts_per_append": [a for r in reports for a in r["attempts_per_append"]],
            "num_rows": final.num_rows,
            "rows_read": rows_read,
            "distinct_ids": distinct_ids,
            "version": final.version,
            "start_version": initial.version,
        }
        shutil.rmtree(uri)
        return out

    def concurrent(self) -> None:
        s = self.s
        expected_rows = s.small_rows + s.processes * s.process_commits * s.commit_rows
        expected_commits = s.processes * s.process_commits
        runs = [self._concurrent_run(r) for r in range(s.concurrent_runs)]
        rates = [r["committed"] / r["wall"] for r in runs]
        failures = [f for r in runs for f in r["failures"]]
        lat = [x for r in runs for x in r["latencies"]]
        lost = [r["lost"] for r in runs]
        n_runs = f"{len(runs)} run{'s' if len(runs) > 1 else ''}"
        label = f"{s.processes} procs x {s.process_commits} appends"
        self.add(
            Result(
                W5,
                f"total commits/s, {label}",
                "1/s",
                median(rates),
                self.single_process_rate,
                "1 process (W2)",
                better="higher",
                notes=f"median of {n_runs}; wall time from a shared start barrier to the "
                "last commit",
                extra={"runs": rates},
            )
        )
        self.add(
            Result(
                W5,
                "failed appends",
                "count",
                float(len(failures)),
                target=Target("lakever", "==", 0),
                notes=f"total over {n_runs}" + "".join(f"; {f}" for f in failures[:3]),
            )
        )
        if all(r["instrumented"] for r in runs):
            histogram: dict[int, int] = {}
            for r in runs:
                for a in r["attempts_per_append"]:
                    histogram[a] = histogram.get(a, 0) + 1
            self.add(
                Result(
                    W5,
                    "retries per run (lost races = attempts - commits)",
                    "count",
                    float(median(lost)),
                    better="n/a",
                    notes=f"median of {n_runs} ({expected_commits} commits each); counted by "
                    "wrapping LocalStorage.put_if_absent in the workers; attempts per append: "
                    + ", ".join(f"{k}: {v}" for k, v in sorted(histogram.items())),
                    extra={
                        "lost_per_run": lost,
                        "attempts_per_run": [r["attempts"] for r in runs],
                        "attempts_per_append_histogram": histogram,
                    },
                )
            )
        else:
            self.add(
                Result(
                    W5,
                    "retries per run",
                    "count",
                    None,
                    better="n/a",
                    notes="not measured: LocalStorage.put_if_absent not found",
                )
            )
        self.add(
            Result(
                W5,
                "commit latency p50 under contention",
                "ms",
                ms(median(lat)),
                notes=f"{n_runs} pooled",
            )
        )
        self.add(
            Result(
                W5,
                "commit latency p99 under contention",
                "ms",
                ms(percentile(lat, 99)),
                notes=f"{n_runs} pooled",
            )
        )
        bad = [
            r
            for r in runs
            if not (
                r["num_rows"] == r["rows_read"] == r["distinct_ids"] == expected_rows
                and r["version"] == r["start_version"] + expected_commits
            )
        ]
        worst = bad[0] if bad else runs[-1]
        self.add(
            Result(
                W5,
                "final num_rows vs initial + commits x rows",
                "count",
                float(worst["num_rows"]),
                float(expected_rows),
                "expected",
                Target("ratio", "==", 1.0),
                better="n/a",
                notes=f"{len(runs) - len(bad)}/{len(runs)} runs exact; rows read "
                f"{worst['rows_read']}, distinct ids {worst['distinct_ids']}, final version "
                f"{worst['version']} (expected {worst['start_version'] + expected_commits})",
                extra={k: worst[k] for k in ("rows_read", "distinct_ids", "version")},
            )
        )
        if bad:
            raise AssertionError(
                f"concurrent appends lost or duplicated data in {len(bad)} run(s): {worst}"
            )


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "lakever": lv.__version__,
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
    }
    try:
        import deltalake

        out["deltalake"] = deltalake.__version__
    except ImportError:
        pass
    return out


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes (finishes in < 60 s)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument(
        "--only",
        default="1,2,3,4,5",
        help="comma-separated workload numbers (dependencies are added)",
    )
    p.add_argument("--no-delta", action="store_true", help="skip the delta-rs comparisons")
    p.add_argument(
        "--delta-long",
        action="store_true",
        help="also grow the delta-rs history to the long length (full: 10k commits, "
        "about 10 more minutes)",
    )
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    p.add_argument(
        "--markdown",
        metavar="JSON",
        default=None,
        help="print the results of an earlier run (a JSON report) as a Markdown table and exit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown is not None:
        with open(args.markdown, encoding="utf-8") as f:
            print(markdown_table(json.load(f)["results"]))
        return 0
    sizes = QUICK if args.quick else FULL
    try:
        wanted = {int(x) for x in args.only.split(",") if x.strip()}
    except ValueError:
        print(f"--only takes workload numbers like 1,3,5, got {args.only!r}", file=sys.stderr)
        return 2
    if not wanted <= set(DEPENDS):
        print(f"unknown workload(s) {sorted(wanted - set(DEPENDS))}", file=sys.stderr)
        return 2
    selected = set(wanted)
    for w in wanted:
        selected |= DEPENDS[w]

    dl: ModuleType | None = None
    if not args.no_delta:
        try:
            import deltalake

            dl = deltalake
        except ImportError:
            log("deltalake not importable: delta-rs columns stay empty")
    delta = DeltaSide(dl)

    src_dir = os.path.dirname(os.path.abspath(lv.__file__))
    digest_before = source_digest(src_dir)
    workdir = tempfile.mkdtemp(prefix="lakever-bench-", dir=args.workdir)
    bench = Bench(sizes, workdir, delta, delta_long=args.delta_long)
    started = datetime.now(UTC)
    load_before = _loadavg()
    t0 = time.perf_counter()
    try:
        bench.run(sorted(selected))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    load_after = _loadavg()
    digest_after = source_digest(src_dir)
    if digest_after != digest_before:
        log("WARNING: lakever's sources changed during the run; results may mix versions")

    # Workload order, keeping each workload's rows in the order they were measured.
    bench.results.sort(key=lambda r: r.workload.split(" ", 1)[0])
    payload: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "started_utc": started.isoformat(timespec="seconds"),
            "elapsed_s": round(elapsed, 1),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": load_after,
            "workloads": sorted(selected),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": _versions(),
            "lakever_path": src_dir,
            "lakever_git": git_state(os.path.dirname(src_dir)),
            "lakever_source_sha256": digest_before,
            "lakever_source_changed_during_run": digest_after != digest_before,
            "sizes": asdict(sizes),
            "ratio": "lakever / baseline (and delta_ratio = lakever / delta_rs)",
            "delta_notes": delta.notes,
        },
        "results": [r.to_json() for r in bench.results],
        "errors": bench.errors,
    }
    print(format_table(bench.results))
    misses = [r for r in bench.results if r.meets_target is False]
    print(f"load average (1, 5, 15 min) before/after: {load_before} / {load_after}")
    print(
        f"\n{len(bench.results)} results, {len(misses)} missed target, "
        f"{len(bench.errors)} errors, {elapsed:.0f} s"
    )
    for e in bench.errors:
        print(f"ERROR in {e['workload']}: {e['error']}", file=sys.stderr)
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
