"""Subprocess entry points for tests/test_maintenance_concurrency.py.

Run as ``python tests/_maint_workers.py ROLE URI OUT SEED ARGS...``. A worker imports
lakever (and does each operation once elsewhere, for the lazy imports), prints
``ready``, waits for ``go SECONDS`` on stdin and then plays its role (`ROLES`:
appender, compactor, expirer, vacuumer, refs-and-reader) against the dataset at URI
until SECONDS have passed; SEED seeds its random choices. SIGUSR1 dumps its stacks
to stderr (a hung worker). Everything it observes goes to the JSON-lines file OUT
(never to a pipe the parent might not drain while the race runs); its counters go
to stdout as one ``{"done": ...}`` line at the end. An unexpected exception is
written to OUT as ``{"error": traceback}`` and the worker exits with status 1:
expected outcomes of the race (a commit conflict, opening or naming a version an
expiry just expired) are counted, never raised.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
from _data import events

import lakever as lv

MAINT_WORKERS_PY = str(Path(__file__).resolve())


def digest(table: pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of ``table`` sorted by id, in one record batch
    (so neither row order nor chunking changes it; every byte of every value does)."""
    table = table.sort_by("id").combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def batch_of(worker: int, seq: int, rng: random.Random) -> tuple[int, int]:
    """The (first id, row count) appender ``worker`` appends as its ``seq``-th commit:
    id ranges of different appenders and commits never overlap."""
    return 1_000_000 * (worker + 1) + 1_000 * seq, rng.randint(1, 40)


def _warm_up() -> None:
    """Do each operation once on a throw-away dataset, so the lazy imports of a fresh
    process (seconds of CPU on a loaded machine) are paid before the race, not in it."""
    scratch = tempfile.mkdtemp(prefix="lakever-warm-")
    try:
        ds = lv.create_dataset(os.path.join(scratch, "ds"), events(0, 2))
        ds = ds.append(events(2, 2)).append(events(4, 2)).compact()
        ds.tag("warm")
        digest(lv.open_dataset(ds.pin()).to_arrow())
        ds.expire(keep_last=1, dry_run=False)
        ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class Worker:
    """One worker process: its dataset, random choices, records and counters."""

    def __init__(self, uri: str, out: str, seed: str) -> None:
        self.uri = uri
        self.rng = random.Random(int(seed))
        self.out: TextIO = open(out, "a", encoding="utf-8")  # noqa: SIM115 (closed in run)
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()

    def record(self, **obj: Any) -> None:
        """Write ``obj`` to OUT, with ``t``: seconds since the race started."""
        obj["t"] = round(time.monotonic() - self.started, 3)
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def read(self, ds: lv.Dataset, how: str, since: float) -> None:
        """Read ``ds`` (opened at ``since``) in full right away; record what it showed,
        and for how long the snapshot was held (``held``: from opening to the end)."""
        got = digest(ds.to_arrow())
        self.record(
            kind="read",
            how=how,
            branch=ds.branch_name,
            version=ds.version,
            snapshot_id=ds.snapshot_id,
            digest=got,
            held=round(time.monotonic() - since, 3),
        )
        self.count("reads")

    def run(self, loop: Callable[[float], None]) -> None:
        _warm_up()
        print(json.dumps({"ready": True}), flush=True)
        line = sys.stdin.readline().split()
        if not line or line[0] != "go":
            sys.exit(3)  # the parent went away
        self.started = time.monotonic()
        deadline = self.started + float(line[1])
        try:
            loop(deadline)
        except BaseException:
            self.record(kind="error", error=traceback.format_exc())
            self.out.close()
            traceback.print_exc()
            sys.exit(1)
        self.out.close()
        print(json.dumps({"done": self.counts}), flush=True)


def appender(w: Worker, branches: str, worker: str, pause: str) -> None:
    """Append batches with unique ids, to each of ``branches`` in turn; after each
    acknowledged commit record its version, snapshot id, batch, and what the new
    version reads back."""
    names, wid, rest = branches.split(","), int(worker), float(pause)

    def loop(deadline: float) -> None:
        handles = {b: lv.open_dataset(w.uri, branch=b) for b in names}
        seq = 0
        while time.monotonic() < deadline:
            branch = names[seq % len(names)]
            start, n = batch_of(wid, seq, w.rng)
            if w.rng.random() < 0.3:  # mostly a stale handle (rebases), sometimes fresh
                handles[branch] = lv.open_dataset(w.uri, branch=branch)
            since = time.monotonic()
            try:
                ds = handles[branch].append(events(start, n), message=f"a{wid}-{seq}")
            except lv.CommitConflict:
                w.count("conflicts")
                handles[branch] = lv.open_dataset(w.uri, branch=branch)
                continue
            handles[branch] = ds
            w.record(
                kind="append",
                branch=branch,
                version=ds.version,
                snapshot_id=ds.snapshot_id,
                start=start,
                n=n,
                digest=digest(ds.to_arrow()),
                took=round(time.monotonic() - since, 3),
            )
            w.count("commits")
            seq += 1
            time.sleep(w.rng.uniform(0, rest))

    w.run(loop)


def compactor(w: Worker, branches: str, pause: str) -> None:
    """Compact the head of each branch in turn; record every compaction committed."""
    names, rest = branches.split(","), float(pause)

    def loop(deadline: float) -> None:
        i = 0
        while time.monotonic() < deadline:
            branch = names[i % len(names)]
            i += 1
            ds = lv.open_dataset(w.uri, branch=branch)
            try:
                new = ds.compact(min_fragments=2)
            except lv.CommitConflict:
                w.count("conflicts")
                continue
            if new.version != ds.version:
                w.record(
                    kind="compact",
                    branch=branch,
                    version=new.version,
                    snapshot_id=new.snapshot_id,
                    digest=digest(new.to_arrow()),
                    fragments=(new.commit.fragments_removed, new.commit.fragments_added),
                )
                w.count("commits")
            time.sleep(w.rng.uniform(0, rest))

    w.run(loop)


def expirer(w: Worker, keep_last: str, pause: str) -> None:
    """Expire old versions on every branch: alternately ``keep_last`` alone, and one
    version kept plus ``older_than`` a second (the time-based policy's search)."""
    keep, rest = int(keep_last), float(pause)

    def loop(deadline: float) -> None:
        ds = lv.open_dataset(w.uri)
        i = 0
        while time.monotonic() < deadline:
            policy: dict[str, Any] = {"keep_last": keep}
            if i % 2:
                policy = {"keep_last": 1, "older_than": timedelta(seconds=1)}
            i += 1
            since = time.monotonic()
            try:
                report = ds.expire(dry_run=False, **policy)
            except lv.CommitConflict:
                w.count("conflicts")
                continue
            if report.versions:
                took = round(time.monotonic() - since, 3)
                w.record(kind="expire", ranges=[r.to_dict() for r in report.expired], took=took)
                w.count("versions", report.versions)
                w.count("records")
            time.sleep(w.rng.uniform(0, rest))

    w.run(loop)


def vacuumer(w: Worker, grace: str, pause: str) -> None:
    """Vacuum with a short grace (the test's processes never hold a file that long)."""
    seconds, rest = float(grace), float(pause)

    def loop(deadline: float) -> None:
        ds = lv.open_dataset(w.uri)
        while time.monotonic() < deadline:
            report = ds.vacuum(
                dry_run=False, grace=timedelta(seconds=seconds), allow_short_grace=True
            )
            w.count("runs")
            if report.files:
                w.record(kind="vacuum", files=[f.to_dict() for f in report.files])
                for f in report.files:
                    w.count(f"deleted_{f.reason}")
            time.sleep(w.rng.uniform(0, rest))

    w.run(loop)


def refs_reader(w: Worker, branches: str, worker: str, pause: str) -> None:
    """Read, and make refs on, what the expirer is about to expire: open branch heads,
    recent versions and snapshot ids and read them in full at once (opening may raise
    VersionExpired; reading what was opened must never fail); tag or retain a recent
    version, read the ref back at once, and release some retained pins."""
    names, wid, rest = branches.split(","), int(worker), float(pause)

    def opened(how: str, **where: Any) -> lv.Dataset | None:
        since = time.monotonic()
        try:
            ds = lv.open_dataset(w.uri, **where)
        except lv.VersionExpired:
            w.count("open_expired")
            return None
        w.read(ds, how, since)
        return ds

    def loop(deadline: float) -> None:
        held: list[tuple[str, str]] = []  # (pin, snapshot id) retained and not released
        seen: list[str] = []
        i = 0
        while time.monotonic() < deadline:
            i += 1
            branch = w.rng.choice(names)
            since = time.monotonic()
            head = lv.open_dataset(w.uri, branch=branch)
            w.read(head, "head", since)
            seen.append(head.snapshot_id)
            sid = w.rng.choice(seen[-20:])
            opened("snapshot_id", version=sid)
            version = w.rng.randint(max(0, head.version - 6), head.version)
            ds = opened("version", branch=branch, version=version)
            if ds is None or w.rng.random() < 0.25:
                time.sleep(w.rng.uniform(0, rest))
                continue
            where = {"branch": branch, "version": version, "snapshot_id": ds.snapshot_id}
            tagging = w.rng.random() < 0.5 or any(s == ds.snapshot_id for _, s in held)
            name = f"t{wid}-{i}"
            try:
                pin = ds.tag(name).name if tagging else ds.retain(reason=f"test {i}").pin
            except lv.VersionExpired:
                w.count("ref_expired")  # expired between the open and the ref: backed out
                continue
            if tagging:
                w.record(kind="tag", name=name, **where)
                w.count("tags")
                since = time.monotonic()
                w.read(lv.open_dataset(w.uri, version=f"tag:{name}"), "tag", since)
            else:
                w.record(kind="retain", pin=pin, **where)
                w.count("retained")
                held.append((pin, ds.snapshot_id))
                since = time.monotonic()
                w.read(lv.open_dataset(pin), "pin", since)
            if held and w.rng.random() < 0.3:
                pin, snapshot_id = held.pop(w.rng.randrange(len(held)))
                ds.release(pin)
                w.record(kind="release", pin=pin, snapshot_id=snapshot_id)
                w.count("released")
            time.sleep(w.rng.uniform(0, rest))

    w.run(loop)


ROLES: dict[str, Callable[..., None]] = {
    "append": appender,
    "compact": compactor,
    "expire": expirer,
    "vacuum": vacuumer,
    "refs": refs_reader,
}

if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stack dump on demand
    role, uri, out, seed, *args = sys.argv[1:]
    ROLES[role](Worker(uri, out, seed), *args)
