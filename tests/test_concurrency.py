"""Concurrent writers: several OS processes, racing threads and stale Dataset handles.

Invariants checked everywhere: versions are contiguous from 0, an acknowledged
commit is never lost (its version keeps its snapshot id and rows), appends
rebase over concurrent commits, overwrites based on a stale version raise
`CommitConflict` naming the version that beat them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from _data import events
from _workers import WORKERS_PY, append_batch

import lakever as lv


def ids_of(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow(["id"]).column("id").to_pylist()


class Workers:
    """A group of worker processes running one command of tests/_workers.py."""

    def __init__(self, argvs: list[list[str]]) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, WORKERS_PY, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for argv in argvs
        ]
        try:
            for p in self.procs:  # all imports done: the race starts on `go`
                assert "ready" in self.read(p), self.fail_text(p)
        except BaseException:
            self.kill()
            raise

    def read(self, p: subprocess.Popen[str]) -> dict[str, Any]:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            pytest.fail(f"worker exited early: {self.fail_text(p)}")
        return json.loads(line)

    def fail_text(self, p: subprocess.Popen[str]) -> str:
        p.kill()
        _, err = p.communicate(timeout=30)
        return f"rc={p.returncode} stderr:\n{err}"

    def send_all(self, line: str) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()

    def finish(self, timeout: float = 120) -> list[list[dict[str, Any]]]:
        """Close stdin, wait for every worker, return each one's remaining output lines."""
        out = []
        for p in self.procs:
            stdout, stderr = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"worker failed (rc={p.returncode}):\n{stderr}"
            out.append([json.loads(line) for line in stdout.splitlines()])
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# ----------------------------------------------------------------- multi-process


N_PROCS = 4
N_APPENDS = 25


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_concurrent_appends_from_processes(backend: str, request) -> None:
    # Put-if-absent races between processes: on local disk (link) and on S3
    # (If-None-Match on the local test server), fewer appends there (requests are slow).
    if backend == "s3":
        local_location, appends = request.getfixturevalue("s3_bucket") + "/events", 8
    else:
        local_location, appends = request.getfixturevalue("local_location"), N_APPENDS
    base = lv.create_dataset(local_location, events(0, 10), message="seed")
    workers = Workers([["append", local_location, str(w), str(appends)] for w in range(N_PROCS)])
    try:
        workers.send_all("go")
        acks = workers.finish()
    finally:
        workers.kill()

    total = N_PROCS * appends
    ds = lv.open_dataset(local_location)
    assert ds.version == total
    history = ds.history()
    assert [c.version for c in history] == list(range(total, -1, -1))
    assert history[-1].snapshot_id == base.snapshot_id
    assert history[-1].operation == "create"

    # Each commit carries its own message and properties, and added exactly its batch.
    by_version = {c.version: c for c in history}
    seen: set[tuple[int, int]] = set()
    expected_ids = list(range(10))
    for v in range(1, total + 1):
        c = by_version[v]
        w, seq = int(c.properties["worker"]), int(c.properties["seq"])
        start, n = append_batch(w, seq)
        assert c.operation == "append"
        assert c.message == f"w{w}-{seq}"
        assert c.properties == {
            "worker": str(w),
            "seq": str(seq),
            "start": str(start),
            "n": str(n),
        }
        assert c.rows_added == n
        assert c.rows_removed == 0
        assert c.parent_id == by_version[v - 1].snapshot_id
        assert c.timestamp > by_version[v - 1].timestamp
        assert (w, seq) not in seen
        seen.add((w, seq))
        expected_ids += range(start, start + n)
        assert c.total_rows == len(expected_ids)
    assert seen == {(w, s) for w in range(N_PROCS) for s in range(appends)}

    # Every row present exactly once, in commit order (appends add rows at the end).
    assert ids_of(ds) == expected_ids
    assert ds.num_rows == len(expected_ids)
    assert ds.sql("SELECT count(DISTINCT id) FROM self").fetchall() == [(len(expected_ids),)]

    # Every acknowledged commit is the version it was acknowledged as.
    for w, lines in enumerate(acks):
        assert [a["seq"] for a in lines] == list(range(appends))
        versions = [a["version"] for a in lines]
        assert versions == sorted(versions)  # one process's commits land in its order
        for a in lines:
            c = by_version[a["version"]]
            assert (c.snapshot_id, c.message) == (a["snapshot_id"], f"w{w}-{a['seq']}")

    # Time travel by commit time still finds each version after the race.
    for v in (0, 1, total // 2, total - 1, total):
        assert lv.open_dataset(local_location, version=by_version[v].timestamp).version == v
    some = lv.open_dataset(local_location, version=total // 2)
    assert ids_of(some) == expected_ids[: by_version[total // 2].total_rows]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_racing_create_dataset_exactly_one_wins(tmp_path) -> None:
    rounds = 6
    workers = Workers([["create", str(w), "create"] for w in range(N_PROCS)])
    try:
        results = []
        for r in range(rounds):
            uri = str(tmp_path / f"race{r}")
            workers.send_all(f"go {uri}")
            results.append((uri, [workers.read(p) for p in workers.procs]))
        workers.send_all("exit")
        workers.finish()
    finally:
        workers.kill()

    for uri, outcome in results:
        winners = [o for o in outcome if o["result"] == "ok"]
        assert len(winners) == 1, outcome
        assert sorted(o["result"] for o in outcome) == ["exists"] * (N_PROCS - 1) + ["ok"]
        w = winners[0]["worker"]
        ds = lv.open_dataset(uri)
        assert (ds.version, ds.snapshot_id) == (0, winners[0]["snapshot_id"])
        assert ids_of(ds) == list(range(1000 * (w + 1), 1000 * (w + 1) + 3 + w))
        [commit] = ds.history()
        assert commit.message == f"created by {w}"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_racing_write_dataset_append_on_missing_dataset(tmp_path) -> None:
    """mode='append' creates the dataset when missing; racing ones all land, in some order."""
    rounds = 4
    workers = Workers([["create", str(w), "append"] for w in range(N_PROCS)])
    try:
        results = []
        for r in range(rounds):
            uri = str(tmp_path / f"race{r}")
            workers.send_all(f"go {uri}")
            results.append((uri, [workers.read(p) for p in workers.procs]))
        workers.send_all("exit")
        workers.finish()
    finally:
        workers.kill()

    for uri, outcome in results:
        assert all(o["result"] == "ok" for o in outcome), outcome
        assert sorted(o["version"] for o in outcome) == list(range(N_PROCS))
        ds = lv.open_dataset(uri)
        assert ds.version == N_PROCS - 1
        history = ds.history()[::-1]
        assert [c.operation for c in history] == ["create"] + ["append"] * (N_PROCS - 1)
        expected: list[int] = []
        for c in history:
            w = int(c.message.removeprefix("written by "))
            mine = next(o for o in outcome if o["worker"] == w)
            assert (mine["version"], mine["snapshot_id"]) == (c.version, c.snapshot_id)
            expected += range(1000 * (w + 1), 1000 * (w + 1) + 3 + w)
        assert ids_of(ds) == expected


# ----------------------------------------------------------------- threads


def _race(
    first: Callable[[], lv.Dataset], second: Callable[[], lv.Dataset], delay: float
) -> tuple[Any, Any]:
    """Run two writes in two threads released together; ``first`` gets a head start."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(i: int, fn: Callable[[], lv.Dataset], pause: float) -> None:
        barrier.wait()
        if pause:
            time.sleep(pause)
        try:
            results[i] = fn()
        except lv.CommitConflict as exc:
            results[i] = exc
        except BaseException as exc:  # reported by the assertions below
            results[i] = exc

    threads = [
        threading.Thread(target=run, args=(0, first, 0.0)),
        threading.Thread(target=run, args=(1, second, delay)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results[0], results[1]


def test_overwrite_races_append_threads(location: str) -> None:
    lv.create_dataset(location, events(0, 5))
    expected: dict[int, list[int]] = {0: list(range(5))}
    acknowledged: list[tuple[int, str]] = []
    outcomes = {"overwrite won": 0, "append won": 0}
    next_id = 5
    for r in range(24):
        base = lv.open_dataset(location)
        k = base.version
        over_ids = list(range(next_id, next_id + 2 + r % 3))
        next_id += len(over_ids)
        app_ids = list(range(next_id, next_id + 1 + r % 4))
        next_id += len(app_ids)

        def overwrite(b: lv.Dataset = base, ids: list[int] = over_ids) -> lv.Dataset:
            return b.overwrite(events(ids[0], len(ids)), message="overwrite")

        def append(b: lv.Dataset = base, ids: list[int] = app_ids) -> lv.Dataset:
            return b.append(events(ids[0], len(ids)), message="append")

        # Vary who gets the head start so both orders of the race happen.
        delay = (r % 4) * 0.0005
        if r % 2:
            over, app = _race(overwrite, append, delay)
        else:
            app, over = _race(append, overwrite, delay)

        assert isinstance(app, lv.Dataset), f"append must never fail: {app!r}"
        if isinstance(over, lv.Dataset):
            # The overwrite won version k+1; the append rebased on top of it.
            outcomes["overwrite won"] += 1
            assert over.version == k + 1
            assert app.version == k + 2
            expected[k + 1] = over_ids
            expected[k + 2] = over_ids + app_ids
            assert ids_of(over) == over_ids
        else:
            assert isinstance(over, lv.CommitConflict), f"unexpected: {over!r}"
            outcomes["append won"] += 1
            assert app.version == k + 1
            assert over.winning_version == k + 1
            expected[k + 1] = expected[k] + app_ids
        assert ids_of(app) == expected[app.version]
        acknowledged.append((app.version, app.snapshot_id))
        latest = lv.open_dataset(location)
        assert latest.version == app.version
        assert ids_of(latest) == expected[latest.version]

    # No acknowledged commit was lost: every version still shows what it showed.
    latest = lv.open_dataset(location)
    assert latest.version == max(expected)
    for v, ids in expected.items():
        assert ids_of(lv.open_dataset(location, version=v)) == ids, v
    for v, sid in acknowledged:
        assert lv.open_dataset(location, version=v).snapshot_id == sid
    assert sum(outcomes.values()) == 24
    print(outcomes)


def test_racing_appends_threads_share_one_handle(location: str) -> None:
    """Many threads appending through the same (soon stale) Dataset all land."""
    base = lv.create_dataset(location, events(0, 3))
    results: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def run(t: int) -> None:
        barrier.wait()
        ds = base
        for i in range(5):
            try:
                ds = ds.append(events(1000 * (t + 1) + 10 * i, 2), message=f"{t}-{i}")
                got: Any = (t, i, ds.version, ds.snapshot_id)
            except BaseException as exc:  # reported below
                got = exc
            with lock:
                results.append(got)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    ds = lv.open_dataset(location)
    assert ds.version == 30
    assert sorted(r[2] for r in results) == list(range(1, 31))
    by_version = {c.version: c for c in ds.history()}
    expected = list(range(3))
    for v in range(1, 31):
        t, i = map(int, by_version[v].message.split("-"))
        expected += [1000 * (t + 1) + 10 * i, 1000 * (t + 1) + 10 * i + 1]
    assert ids_of(ds) == expected
    for t, i, v, sid in results:
        assert by_version[v].snapshot_id == sid
        assert by_version[v].message == f"{t}-{i}"


# ----------------------------------------------------------------- stale handles


def test_stale_dataset_appends_rebase_and_overwrites_conflict(location: str) -> None:
    stale = lv.create_dataset(location, events(0, 4))
    other = lv.open_dataset(location)
    other = other.append(events(4, 2), message="other 1")
    lv.write_dataset(location, events(6, 3), mode="append", message="other 2")
    assert lv.open_dataset(location).version == 2

    # The stale view keeps showing its own snapshot.
    assert stale.version == 0
    assert ids_of(stale) == list(range(4))

    # Its overwrite conflicts with the first commit after its base.
    with pytest.raises(lv.CommitConflict) as info:
        stale.overwrite(events(100, 1), message="lost")
    assert info.value.winning_version == 1
    assert lv.open_dataset(location).version == 2  # nothing committed

    # Its append rebases on top of version 2.
    rebased = stale.append(events(9, 2), message="stale append", properties={"k": "v"})
    assert rebased.version == 3
    assert ids_of(rebased) == list(range(11))
    commit = rebased.history(limit=1)[0]
    assert (commit.message, commit.properties, commit.operation) == (
        "stale append",
        {"k": "v"},
        "append",
    )
    assert commit.parent_id == lv.open_dataset(location, version=2).snapshot_id

    # `other` (version 1) is stale too now.
    with pytest.raises(lv.CommitConflict) as info:
        other.overwrite(events(100, 1))
    assert info.value.winning_version == 2

    # The rebased Dataset is at the latest version: its overwrite succeeds ...
    over = rebased.overwrite(events(50, 3), message="replace")
    assert over.version == 4
    assert ids_of(over) == [50, 51, 52]
    # ... which makes `rebased` stale: its append lands on top of the overwrite,
    rebased2 = rebased.append(events(60, 1))
    assert rebased2.version == 5
    assert ids_of(rebased2) == [50, 51, 52, 60]
    # and its overwrite conflicts with the overwrite at version 4.
    with pytest.raises(lv.CommitConflict) as info:
        rebased.overwrite(events(70, 1))
    assert info.value.winning_version == 4
    assert "version 4" in str(info.value)

    # History is intact; every version reads back what it showed when committed.
    expected = {
        0: list(range(4)),
        1: list(range(6)),
        2: list(range(9)),
        3: list(range(11)),
        4: [50, 51, 52],
        5: [50, 51, 52, 60],
    }
    latest = lv.open_dataset(location)
    assert [c.version for c in latest.history()] == [5, 4, 3, 2, 1, 0]
    for v, ids in expected.items():
        assert ids_of(lv.open_dataset(location, version=v)) == ids


def test_views_at_explicit_versions_are_read_only(location: str) -> None:
    lv.create_dataset(location, events(0, 2)).append(events(2, 2))
    for version in (0, 1):
        view = lv.open_dataset(location, version=version)
        assert view.read_only
        with pytest.raises(lv.ReadOnlyDataset):
            view.append(events(10, 1))
        with pytest.raises(lv.ReadOnlyDataset):
            view.overwrite(events(10, 1))
    assert lv.open_dataset(location).version == 1
