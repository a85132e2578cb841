"""Subprocess entry points for the multi-process and crash tests.

Run as ``python tests/_workers.py COMMAND ARGS...`` (the script's directory is
then on ``sys.path``, so ``_data`` imports). Every worker imports lakever first,
prints ``ready`` and then waits for a line on stdin before touching the dataset,
so the parent can start all workers at once and not pay for imports in the race.
Results go to stdout as one JSON object per line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from _data import events

import lakever as lv

WORKERS_PY = str(Path(__file__).resolve())


def _say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _warm_up() -> None:
    """Do one throw-away write so lazy imports do not skew the race that follows."""
    scratch = tempfile.mkdtemp(prefix="lakever-warm-")
    try:
        lv.create_dataset(os.path.join(scratch, "ds"), events(0, 1)).append(events(1, 1))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait() -> str:
    line = sys.stdin.readline()
    if not line:
        sys.exit(3)  # the parent went away
    return line.strip()


def append_batch(worker: int, seq: int) -> tuple[int, int]:
    """The (start, n) of the batch worker ``worker`` appends as its ``seq``-th commit."""
    return 10_000 * (worker + 1) + 100 * seq, 1 + (3 * worker + seq) % 7


def cmd_append(uri: str, worker: str, count: str) -> None:
    """Append ``count`` batches; even workers chain on the returned Dataset (stale after
    anyone else commits, so every commit rebases), odd ones use write_dataset(mode=append)."""
    w, n_commits = int(worker), int(count)
    _warm_up()
    _say({"ready": w})
    _wait()
    ds = lv.open_dataset(uri)
    for seq in range(n_commits):
        start, n = append_batch(w, seq)
        kwargs = {
            "message": f"w{w}-{seq}",
            "properties": {"worker": str(w), "seq": str(seq), "start": str(start), "n": str(n)},
        }
        if w % 2 == 0:
            ds = ds.append(events(start, n), **kwargs)
        else:
            ds = lv.write_dataset(uri, events(start, n), mode="append", **kwargs)
        _say({"worker": w, "seq": seq, "version": ds.version, "snapshot_id": ds.snapshot_id})


def cmd_create(worker: str, mode: str) -> None:
    """For each ``go URI`` line: create the dataset at URI (create_dataset, or
    write_dataset with ``mode``) and report what happened."""
    w = int(worker)
    _warm_up()
    _say({"ready": w})
    while (line := _wait()) != "exit":
        uri = line.split(" ", 1)[1]
        data = events(1000 * (w + 1), 3 + w)
        try:
            if mode == "create":
                ds = lv.create_dataset(uri, data, message=f"created by {w}")
            else:
                ds = lv.write_dataset(uri, data, mode=mode, message=f"written by {w}")
        except lv.DatasetExists:
            _say({"worker": w, "result": "exists"})
        else:
            _say(
                {"worker": w, "result": "ok", "version": ds.version, "snapshot_id": ds.snapshot_id}
            )


def _log_line(f, obj: object) -> None:
    f.write(json.dumps(obj) + "\n")
    f.flush()
    os.fsync(f.fileno())


def cmd_crash_writer(uri: str, ack_path: str, seed: str) -> None:
    """Append forever (until killed). Rows ids stay 0..num_rows-1 in order: each batch
    starts at the current row count. Before each append an ``intent`` line, after it
    returns an ``ack`` line, both fsynced, so the parent knows what was acknowledged."""
    rng = random.Random(int(seed))
    _warm_up()
    _say({"ready": True})
    _wait()
    ds = lv.open_dataset(uri)
    with open(ack_path, "a", encoding="utf-8") as f:
        while True:
            start, n = ds.num_rows, rng.randint(1, 20)
            props = {"start": str(start), "n": str(n)}
            _log_line(f, {"kind": "intent", "base": ds.version, "start": start, "n": n})
            ds = ds.append(events(start, n), message=f"rows {start}+{n}", properties=props)
            _log_line(
                f,
                {
                    "kind": "ack",
                    "version": ds.version,
                    "snapshot_id": ds.snapshot_id,
                    "start": start,
                    "n": n,
                },
            )


def cmd_delete(uri: str, worker: str, ids: str) -> None:
    """Delete each id of the comma-separated ``ids`` in its own commit (a GDPR request
    each). A delete that loses against another delete of the same fragment re-opens the
    latest version and retries, as an application would."""
    w = int(worker)
    _warm_up()
    _say({"ready": w})
    _wait()
    ds = lv.open_dataset(uri)
    for k in ids.split(","):
        conflicts = 0
        while True:
            try:
                ds = ds.delete(where=f"id = {k}", message=f"gdpr {k}")
                break
            except lv.CommitConflict:
                conflicts += 1
                ds = lv.open_dataset(uri)
        _say({"worker": w, "id": int(k), "version": ds.version, "conflicts": conflicts})


def cmd_evolve(uri: str, branch: str, worker: str, count: str) -> None:
    """On ``branch``, add ``count`` columns ``w<worker>_<i>``, each with one row holding
    ``<row id> * 10`` in it: even ``i`` by evolve then append, odd ``i`` by an append in
    schema_mode="add". Reports each column's field id."""
    import pyarrow as pa

    w = int(worker)
    _warm_up()
    _say({"ready": w})
    _wait()
    ds = lv.open_dataset(uri, branch=branch)
    for i in range(int(count)):
        column, row = f"w{w}_{i}", 1000 * (w + 1) + i
        if i % 2 == 0:
            ds = ds.evolve(add={column: pa.int64()})
        table = pa.table({"id": pa.array([row], pa.int64()), column: pa.array([row * 10])})
        ds = ds.append(table, schema_mode="add")
        _say({"worker": w, "column": column, "row": row, "field_id": ds.field_ids[column]})


COMMANDS = {
    "append": cmd_append,
    "create": cmd_create,
    "crash-writer": cmd_crash_writer,
    "delete": cmd_delete,
    "evolve": cmd_evolve,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
