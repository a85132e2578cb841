"""CPU per small commit, split by phase: where a 10-row append spends its time.

Each append goes through the Dataset the previous append returned (the peer
harness's many-small-commits workload). The machine this runs on is shared and
noisy, so the number that matters is CPU time (``time.process_time``, which also
counts the fsync threads), not wall time: the median per commit over ``--commits``
commits, and per phase, measured by wrapping the functions of the commit path.
Wall-clock commits/s of the same run is printed too (it includes the disk waits).

Usage: python benchmarks/commit_cpu.py [--commits N] [--rows R] [--no-fsync]
Prints a table and writes benchmarks/results/commit_cpu.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from _harness import write_json

import lakever as lv
from lakever import _chain, _writeplan, _writer, dataset, log
from lakever.storage import local

RESULTS = Path(__file__).parent / "results" / "commit_cpu.json"

#: (phase, owner object, attribute): each is wrapped to add its CPU time to the phase.
#: Phases nest (publish runs inside commit); `_report` subtracts children from parents.
PHASES: list[tuple[str, Any, str]] = [
    ("prepare (schema, contract, layout)", _writer, "prepare_data"),
    ("write fragment (parquet, stats, hash)", _writeplan.WritePlan, "write"),
    ("manifest (inline)", _writer, "make_manifest"),
    ("log: build record + seal", log, "_build"),
    ("log: put-if-absent (incl. fsync waits)", local.LocalStorage, "put_if_absent"),
    ("log: check successor", _chain, "check_successor"),
    ("log: LATEST hint", log.Line, "_write_hint"),
    ("log: snapshot index", log.Line, "_index"),
    ("log.commit", log.Line, "commit"),
    ("new Dataset", dataset.Dataset, "_child"),
    ("append (total)", dataset.Dataset, "append"),
]
PARENTS = {
    "log.commit": [
        "log: build record + seal",
        "log: put-if-absent (incl. fsync waits)",
        "log: check successor",
        "log: LATEST hint",
        "log: snapshot index",
    ],
}


@contextlib.contextmanager
def phase_timers(acc: dict[str, float]) -> Iterator[None]:
    """Wrap every phase function so each call adds its process CPU time to ``acc``."""
    saved: list[tuple[Any, str, Any]] = []

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] = acc.get(name, 0.0) + time.process_time() - t0

        return run

    for name, owner, attr in PHASES:
        fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        saved.append((owner, attr, fn))
        setattr(owner, attr, timed(name, fn))
    try:
        yield
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def small_table(i: int, rows: int) -> pa.Table:
    ids = pa.array(range(i * rows, (i + 1) * rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "value": pa.array([float(x) * 0.5 for x in range(rows)]),
            "name": pa.array([f"row-{i}-{x}" for x in range(rows)]),
        }
    )


def run(commits: int, rows: int, *, fsync: bool, warmup: int = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="commit-cpu-") as tmp:
        opts = None if fsync else {"fsync": False}
        ds = lv.create_dataset(os.path.join(tmp, "ds"), small_table(0, rows), storage_options=opts)
        tables = [small_table(i + 1, rows) for i in range(warmup + commits)]
        for t in tables[:warmup]:
            ds = ds.append(t)
        per_commit: list[float] = []
        per_phase: list[dict[str, float]] = []
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        for t in tables[warmup:]:
            acc: dict[str, float] = {}
            with phase_timers(acc):
                c0 = time.process_time()
                ds = ds.append(t)
                per_commit.append(time.process_time() - c0)
            per_phase.append(acc)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        assert ds.version == warmup + commits, ds.version
        assert ds.to_arrow().num_rows == rows * (warmup + commits + 1)
    return _report(per_commit, per_phase, wall, cpu, commits, rows, fsync=fsync)


def _report(
    per_commit: list[float],
    per_phase: list[dict[str, float]],
    wall: float,
    cpu: float,
    commits: int,
    rows: int,
    *,
    fsync: bool,
) -> dict[str, Any]:
    phases: dict[str, float] = {}
    for name, _, _ in PHASES:
        xs = [p.get(name, 0.0) for p in per_phase]
        if name in PARENTS:
            xs = [p.get(name, 0.0) - sum(p.get(c, 0.0) for c in PARENTS[name]) for p in per_phase]
            name = f"{name} (other)"
        phases[name] = statistics.median(xs) * 1e3
    tenth = max(1, commits // 10)
    return {
        "commits": commits,
        "rows_per_commit": rows,
        "fsync": fsync,
        "cpu_ms_per_commit_median": statistics.median(per_commit) * 1e3,
        "cpu_ms_per_commit_mean": cpu / commits * 1e3,
        "cpu_ms_first_tenth_median": statistics.median(per_commit[:tenth]) * 1e3,
        "cpu_ms_last_tenth_median": statistics.median(per_commit[-tenth:]) * 1e3,
        "wall_commits_per_s": commits / wall,
        "phase_cpu_ms_median": phases,
        "note": "phase timers add ~0.01 ms each; medians of phases need not sum to the total",
    }


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['commits']} commits of {r['rows_per_commit']} rows, fsync={r['fsync']}",
        f"  CPU ms/commit: median {r['cpu_ms_per_commit_median']:.3f}, "
        f"mean {r['cpu_ms_per_commit_mean']:.3f} "
        f"(first tenth {r['cpu_ms_first_tenth_median']:.3f}, "
        f"last tenth {r['cpu_ms_last_tenth_median']:.3f})",
        f"  wall: {r['wall_commits_per_s']:.0f} commits/s (noisy machine: CPU is the number)",
        "  phase (median CPU ms per commit):",
    ]
    for name, ms in r["phase_cpu_ms_median"].items():
        lines.append(f"    {name:<42} {ms:7.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commits", type=int, default=500)
    ap.add_argument("--rows", type=int, default=10)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    report = run(args.commits, args.rows, fsync=not args.no_fsync)
    print(f"lakever from {os.path.dirname(lv.__file__)}")
    print(format_report(report))
    report["lakever_path"] = os.path.dirname(lv.__file__)
    report["python"] = platform.python_version()
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cpus"
    write_json(args.out, report)


if __name__ == "__main__":
    main()
