"""Racing merges and appends on main from several OS processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter

import pyarrow as pa
import pytest

import lakever as lv

WORKER = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    import lakever as lv

    uri, role, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    print("ready", flush=True)
    sys.stdin.readline()
    done = []
    if role == "append":
        start = int(arg)
        for i in range(8):
            ds = lv.open_dataset(uri).append(
                pa.table({"id": pa.array(range(start + 10 * i, start + 10 * i + 10), pa.int64())})
            )
            done.append(ds.version)
    else:
        for source in arg.split(","):
            ds = lv.open_dataset(uri).merge(source, message=f"merge {source}")
            done.append(ds.version)
    print(json.dumps(done), flush=True)
    """
)


def _ids(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


@pytest.mark.slow
def test_racing_merges_and_appends(local_location):
    ds = lv.create_dataset(local_location, _ids(0, 5))
    expected = list(range(5))
    for b in range(4):
        branch = ds.branch(f"b{b}")
        for k in range(2):
            start = 100_000 * (b + 1) + 10 * k
            branch = branch.append(_ids(start, 10))
            expected += range(start, start + 10)
    workers = [("append", "1000"), ("append", "2000"), ("merge", "b0,b1"), ("merge", "b2,b3")]
    for role, arg in workers:
        if role == "append":
            expected += range(int(arg), int(arg) + 80)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, local_location, role, arg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role, arg in workers
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    final = lv.open_dataset(local_location)
    got = final.to_arrow()["id"].to_pylist()
    assert Counter(got) == Counter(expected)  # every row exactly once
    history = final.history()
    assert [c.version for c in history] == list(range(final.version, -1, -1))
    merges = [c for c in history if c.operation == "merge"]
    assert len(merges) == 4
    assert all(c.merge_parent_id for c in merges)
    acknowledged = [v for r in results for v in r]
    assert len(set(acknowledged)) == len(acknowledged) == 20
