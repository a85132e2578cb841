"""Before/after: the same reads and commits through two lakever trees, interleaved.

    python benchmarks/compare.py --before /path/to/old/checkout [--rounds 3] [--output F]

Each round runs one fresh process per tree (``PYTHONPATH`` picks the tree), before
then after, so both see the same machine load as nearly as a shared machine allows.
Each process builds its own datasets with its own lakever (5M rows in 5 large files;
1,001 fragments of 100 rows; ``--quick``: 50k rows, 21 fragments), times every read as
the median of 7 warm runs and commits as the median of 300 appends of 100 rows, and
times the same queries through plain DuckDB over the same files as the baseline of its
own run. The table shows the
medians over rounds and the after/before ratio per round; the JSON keeps every round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, statistics, sys, tempfile, time
import duckdb, numpy as np, pyarrow as pa
import lakever as lv

def timed(fn, n=7):
    fn()
    xs = []
    for _ in range(n):
        t = time.perf_counter(); fn(); xs.append(time.perf_counter() - t)
    return statistics.median(xs)

work = tempfile.mkdtemp(dir=sys.argv[1])
big_rows, small_files, commits = (int(x) for x in sys.argv[2:5])
rng = np.random.default_rng(0)
def rows(n, start=0):
    return pa.table({"id": np.arange(start, start + n), "value": rng.random(n),
                     "category": pa.array(rng.choice(["a", "b", "c"], n))})
big = lv.create_dataset(work + "/big", rows(big_rows))
small = lv.create_dataset(work + "/small", rows(100))
for i in range(1, small_files):
    small = small.append(rows(100, i * 100))
out = {}
for name, ds in ((f"{big_rows:,} rows", big), (f"{small_files:,} x 100-row files", small)):
    files = f"read_parquet('{ds.uri}/data/**/*.parquet')"
    con = duckdb.connect()
    q = "SELECT count(*), sum(value) FROM {} WHERE value > 0.5"
    out[f"{name}: to_arrow()"] = timed(lambda: ds.to_arrow())
    out[f"{name}: to_arrow(filter)"] = timed(lambda: ds.to_arrow(filter="value > 0.5"))
    out[f"{name}: sql count/sum where"] = timed(lambda: ds.sql(q.format("self")).fetchall())
    out[f"{name}: duckdb read (baseline)"] = timed(
        lambda: con.sql(f"SELECT * FROM {files}").to_arrow_table())
    out[f"{name}: duckdb filter (baseline)"] = timed(
        lambda: con.sql(f"SELECT * FROM {files} WHERE value > 0.5").to_arrow_table())
    out[f"{name}: duckdb sql (baseline)"] = timed(lambda: con.sql(q.format(files)).fetchall())
t = rows(100)
ds = lv.create_dataset(work + "/commits", t)
wall, cpu = [], []
for _ in range(commits):
    a, c = time.perf_counter(), time.process_time()
    ds = ds.append(t)
    wall.append(time.perf_counter() - a); cpu.append(time.process_time() - c)
out["commit of 100 rows: wall p50"] = statistics.median(wall)
out["commit of 100 rows: CPU p50"] = statistics.median(cpu)
print(json.dumps({"lakever": lv.__file__, "seconds": out}))
"""


def run_tree(tree: Path, workdir: str, sizes: tuple[int, int, int]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, workdir, *map(str, sizes)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=workdir,  # not a checkout: with -c, the working directory comes first on sys.path
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = str(tree / "lakever" / "__init__.py")
    assert report["lakever"] == expected, (report["lakever"], expected)
    return dict(report["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, type=Path, help="the older tree")
    parser.add_argument("--after", default=ROOT, type=Path, help="the newer tree (this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/compare.json")
    args = parser.parse_args()
    sizes = (50_000, 21, 20) if args.quick else (5_000_000, 1001, 300)
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(args.rounds):
            before = run_tree(args.before.resolve(), workdir, sizes)
            after = run_tree(args.after.resolve(), workdir, sizes)
            rounds.append({"before": before, "after": after})
            print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'metric':48} {'before ms':>10} {'after ms':>10} {'after/before':>13}")
    for metric in rounds[0]["before"]:
        b = statistics.median(r["before"][metric] for r in rounds)
        a = statistics.median(r["after"][metric] for r in rounds)
        ratio = statistics.median(r["after"][metric] / r["before"][metric] for r in rounds)
        print(f"{metric:48} {b * 1000:10.1f} {a * 1000:10.1f} {ratio:12.2f}x")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    meta = {"before": str(args.before), "after": str(args.after), "loadavg": os.getloadavg()}
    args.output.write_text(json.dumps({"meta": meta, "rounds": rounds}, indent=1) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
