"""User-space instructions per small commit, counted by valgrind (callgrind).

Wall and CPU time of a 2 ms commit move by 2x between runs on a shared machine (and by
more after many files were deleted: ext4 then scans recently freed inodes on every
file creation). Instruction counts of the same code repeat to about 3%, so this is
the measure a change to the commit path is judged by. It counts the appends of a
dataset through the Dataset each append returns (the peer harness's small-commit
workload: 100 rows of 5 columns per commit, fsync off so only lakever's own work is
counted): per commit = (instructions of W + N appends - those of W + M appends) / (N - M),
which cancels start-up, imports and the warm-up W.

``--tree DIR`` (repeatable) also measures another checkout (e.g. ``git worktree add
/tmp/base <rev>``) in the same run, so the table shows ratios against it.

Usage: python benchmarks/commit_instructions.py [--tree DIR ...] [--out FILE]
Needs valgrind; prints a table and writes benchmarks/results/commit_instructions.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import git_state, write_json

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "commit_instructions.json"
WARMUP, FEW, MANY = 30, 10, 66

#: The appends counted, run in a child process under valgrind (fsync off).
CHILD = """
import sys, tempfile
import pyarrow as pa, numpy as np
import lakever as lv

def rows(start, n):
    rng = np.random.default_rng([42, start, n])
    ids = np.arange(start, start + n, dtype=np.int64)
    cats = pa.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"])
    chars = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
    payload = chars[rng.integers(0, len(chars), n * 32)].tobytes()
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.table({
        "id": ids,
        "ts": pa.array(1_700_000_000_000_000 + ids * 1000, pa.timestamp("us", tz="UTC")),
        "category": cats.take(pa.array(rng.integers(0, len(cats), n, dtype=np.int32))),
        "value": rng.random(n),
        "payload": pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                          pa.py_buffer(payload)]),
    })

n, root = int(sys.argv[1]), sys.argv[2]
tables = [rows(i * 100, 100) for i in range(n)]
ds = lv.create_dataset(root + "/t", tables[0].schema.empty_table(),
                       storage_options={"fsync": False})
for t in tables:
    ds = ds.append(t)
"""


def _instructions(tree: Path, appends: int) -> int:
    """Instructions (callgrind ``Ir``) of a child process making ``appends`` appends."""
    work = Path(tempfile.mkdtemp(prefix="lakever-ir-"))
    try:
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={work}/callgrind.out",
                sys.executable,
                "-c",
                CHILD,
                str(appends),
                str(work),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,  # not the caller's directory: a checkout there would shadow ``tree``
            check=True,
        )
        found = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
        return int(found.group(1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(tree: Path) -> float:
    few = _instructions(tree, WARMUP + FEW)
    many = _instructions(tree, WARMUP + MANY)
    return (many - few) / (MANY - FEW)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], type=Path,
                        help="another checkout to measure in the same run")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 1
    started = dt.datetime.now(dt.UTC)
    trees = [HERE.parent, *args.tree]
    rows = []
    for tree in trees:
        per_commit = measure(tree.resolve())
        rows.append({"tree": str(tree), "git": git_state(str(tree)), "per_commit": per_commit})
    base = rows[0]["per_commit"]
    print(f"instructions per small commit (100 rows x 5 columns, fsync off, {MANY - FEW} commits)")
    for r in rows:
        print(f"  {r['per_commit']:>12,.0f}  {r['per_commit'] / base:5.2f}x  {r['tree']}")
    write_json(
        str(args.out),
        {
            "what": "user-space instructions per small commit (valgrind callgrind), "
            f"per commit = (Ir of {WARMUP}+{MANY} appends - Ir of {WARMUP}+{FEW}) / {MANY - FEW}",
            "started_utc": started.isoformat(timespec="seconds"),
            "python": sys.version.split()[0],
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
