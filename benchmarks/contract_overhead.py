"""What a typical contract costs on a write: a 1M-row append with and without one.

The contract has 5 columns with range and null checks (pandera's polars API,
the form lakever validates through polars without pandas). Each append goes to
a fresh dataset; the two variants alternate. Appends to local disk are noisy
(fsync, page cache), so the same runs are repeated on memory:// (the CPU cost
alone), and the median and best run of each variant are reported, with the
time of validation alone and of the first pandera import.

Usage: python benchmarks/contract_overhead.py [--rows N] [--runs K]
Prints a table and writes benchmarks/results/contract_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

import lakever as lv

RESULTS = Path(__file__).parent / "results" / "contract_overhead.json"


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    discount = rng.random(rows)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "price": pa.array(rng.uniform(0, 1000, rows)),
            "quantity": pa.array(rng.integers(1, 100, rows, dtype=np.int32)),
            "discount": pa.array(discount, mask=discount < 0.1),
            "score": pa.array(rng.normal(0, 1, rows).clip(-5, 5)),
        }
    )


def make_contract() -> object:
    """The typical contract (pandera is imported here, at first use, as lakever does)."""
    import pandera.polars as pap
    import polars as pl

    return pap.DataFrameSchema(
        {
            "id": pap.Column(pl.Int64, pap.Check.ge(0), nullable=False),
            "price": pap.Column(pl.Float64, pap.Check.in_range(0, 1000), nullable=False),
            "quantity": pap.Column(pl.Int32, pap.Check.in_range(1, 99), nullable=False),
            "discount": pap.Column(pl.Float64, pap.Check.in_range(0, 1), nullable=True),
            "score": pap.Column(pl.Float64, pap.Check.in_range(-5, 5), nullable=False),
        },
        name="typical",
    )


def import_cost() -> float:
    """Seconds a fresh process spends on the first contract use (import pandera.polars)."""
    code = (
        "import time; t = time.perf_counter(); import pandera.polars; "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def timed_append(uri: str, table: pa.Table, contract: object | None) -> float:
    ds = lv.create_dataset(uri, table.slice(0, 10), contract=contract)
    start = time.perf_counter()
    ds.append(table)
    return time.perf_counter() - start


def measure(new_uri: Callable[[str], str], table: pa.Table, contract: object, runs: int) -> dict:
    """Median and best append times without and with the contract, alternating the order."""
    timed_append(new_uri("warm-plain"), table, None)  # warm caches, threads, imports
    timed_append(new_uri("warm-contract"), table, contract)
    plain: list[float] = []
    checked: list[float] = []
    for i in range(runs):
        order = [None, contract] if i % 2 == 0 else [contract, None]
        for c in order:
            seconds = timed_append(new_uri(f"{'plain' if c is None else 'contract'}-{i}"), table, c)
            (plain if c is None else checked).append(seconds)
    return {
        "append_seconds": statistics.median(plain),
        "append_with_contract_seconds": statistics.median(checked),
        "ratio": statistics.median(checked) / statistics.median(plain),
        "best_append_seconds": min(plain),
        "best_append_with_contract_seconds": min(checked),
        "best_ratio": min(checked) / min(plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="100k rows, 3 runs (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 100_000, 3

    from lakever import contract as contracts

    table = make_table(args.rows)
    contract = make_contract()
    api, text = contracts.to_json(contract)
    alone = []
    for _ in range(args.runs):
        start = time.perf_counter()
        assert contracts.failures(api, text, table) is None
        alone.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        local = measure(lambda name: str(Path(tmp) / name), table, contract, args.runs)
    run_id = uuid.uuid4().hex
    memory = measure(lambda name: f"memory://bench-{run_id}/{name}", table, contract, args.runs)

    result = {
        "rows": args.rows,
        "runs": args.runs,
        "columns": table.num_columns,
        "local": local,
        "memory": memory,
        "validation_only_seconds": statistics.median(alone),
        "first_use_import_seconds": import_cost(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "lakever": lv.__version__,
    }
    rows = []
    for where, r in (("local disk", local), ("memory://", memory)):
        rows += [
            (f"{where}: append, no contract", f"{r['append_seconds']:.3f} s"),
            (f"{where}: append, 5-column contract", f"{r['append_with_contract_seconds']:.3f} s"),
            (f"{where}: ratio, medians (best runs)", f"{r['ratio']:.2f}x ({r['best_ratio']:.2f}x)"),
        ]
    rows += [
        ("validation alone", f"{result['validation_only_seconds']:.3f} s"),
        ("first use: import pandera.polars", f"{result['first_use_import_seconds']:.2f} s"),
    ]
    print(f"contract overhead, {args.rows:,} rows, median of {args.runs} runs")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>16}")
    result["results"] = [
        {
            "workload": "contract overhead",
            "metric": f"{where}: {args.rows:,}-row append with / without a 5-column contract",
            "lakever": r["append_with_contract_seconds"],
            "baseline": r["append_seconds"],
            "baseline_name": "same append, no contract",
            "ratio": r["ratio"],
            "target": None,
            "meets_target": None,
        }
        for where, r in (("local disk", local), ("memory://", memory))
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
