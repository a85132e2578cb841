"""Crash safety: SIGKILL a writer at random moments, many times, and check the dataset.

The writer (tests/_workers.py crash-writer) appends batches of consecutive ids
in a loop, so version ``v`` must hold exactly ids ``0 .. num_rows(v) - 1`` in
order, and each version adds one batch to the previous one. Before each append
it fsyncs an ``intent`` line and after the append returns an ``ack`` line with
the version and snapshot id: acknowledged versions must survive with the same
snapshot id, and at most the one in-flight commit per kill may have landed
unacknowledged, in which case it must be exactly its intent's batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _data import events
from _workers import WORKERS_PY

import lakever as lv
from lakever.storage import ObjectStorage, Storage, open_storage

SEED = 20_261_127
KILLS = 24
MAX_DELAY = 0.3

#: The log of the main branch, as documented in lakever/format.py.
LOG_DIR = "_lakever/log/main"


def _spawn(uri: str, ack_path: Path, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, WORKERS_PY, "crash-writer", uri, str(ack_path), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"crash writer did not start (rc={proc.returncode}):\n{err}")


def _wait_for_next_entry(uri: str, known: int, timeout: float = 2.0) -> None:
    """Return as soon as a log entry past every one that exists now appears."""
    storage = open_storage(uri)
    target = known + 1
    while storage.exists(f"{LOG_DIR}/{target:020d}.json"):
        target += 1
    deadline = time.monotonic() + timeout
    while not storage.exists(f"{LOG_DIR}/{target:020d}.json") and time.monotonic() < deadline:
        time.sleep(0.0001)


def _all_files(storage: Storage) -> set[str]:
    """Every object of a dataset, as paths relative to its root."""
    if isinstance(storage, ObjectStorage):
        return {f.path for f in storage.walk("")}
    root = Path(storage.uri)
    return {
        str(Path(d, f).relative_to(root)).replace(os.sep, "/")
        for d, _, files in os.walk(root)
        for f in files
    }


def _trim_torn_line(ack_path: Path) -> None:
    """Drop a line the killed writer did not finish, so the next writer starts clean."""
    if ack_path.exists():
        data = ack_path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(ack_path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


def _read_log(ack_path: Path) -> list[dict[str, Any]]:
    """The complete (newline-terminated) lines of the writer's intent/ack log."""
    if not ack_path.exists():
        return []
    text = ack_path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]


class Checker:
    """What has been verified so far, version by version."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.storage = open_storage(uri)
        self.sids: list[str] = []
        self.rows: list[int] = []
        self.fragments: list[list[str]] = []  # fragment paths of each version, in read order
        self.manifests: set[str] = set()
        self.acked: dict[int, str] = {}
        self.fragment_ids: dict[str, list[int]] = {}
        self.unacked_landed = 0
        self.killed_mid_append = 0
        self.leftovers = 0
        self.history_checked = 0

    @property
    def latest(self) -> int:
        return len(self.sids) - 1

    def verify_new_version(self, v: int, start: int, n: int, sid: str | None) -> None:
        """Version ``v`` must be version ``v - 1`` plus the batch ``start .. start+n-1``."""
        assert v == len(self.sids)
        view = lv.open_dataset(self.uri, version=v)
        if sid is not None:
            assert view.snapshot_id == sid, f"acknowledged version {v} changed"
        prev_rows = self.rows[-1] if self.rows else 0
        assert start == prev_rows, f"version {v} does not continue version {v - 1}"
        assert view.num_rows == start + n
        commit = view.commit
        if v == 0:
            assert commit.operation == "create"
            assert commit.parent_id is None
        else:
            assert commit.operation == "append"
            assert commit.parent_id == self.sids[v - 1]
            assert commit.message == f"rows {start}+{n}"
            assert commit.properties == {"start": str(start), "n": str(n)}
            assert (commit.rows_added, commit.rows_removed) == (n, 0)
        # Fragments: the previous version's, in order, then new ones holding the batch,
        # each complete (its bytes match the hash the manifest recorded).
        frags = view.fragments()
        paths = [f.path for f in frags]
        prev_paths = self.fragments[-1] if self.fragments else []
        assert paths[: len(prev_paths)] == prev_paths
        new_ids: list[int] = []
        for f in frags[len(prev_paths) :]:
            assert f.path not in self.fragment_ids, f"fragment {f.path} listed twice"
            data = self.storage.read_bytes(f.path)
            assert f.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()
            ids = pq.read_table(pa.BufferReader(data), columns=["id"]).column("id").to_pylist()
            assert len(ids) == f.num_rows
            self.fragment_ids[f.path] = ids
            new_ids += ids
        assert new_ids == list(range(start, start + n))
        # Manifest files this version's record references (small ones may be inlined).
        record = json.loads(self.storage.read_bytes(f"{LOG_DIR}/{v:020d}.json"))
        self.manifests.update(m["path"] for m in record["manifests"] if m.get("path"))
        self.sids.append(view.snapshot_id)
        self.rows.append(start + n)
        self.fragments.append(paths)

    def read_back(self, v: int) -> None:
        """Read version ``v`` through the public read path: ids 0 .. rows-1, in order."""
        view = lv.open_dataset(self.uri, version=v)
        assert view.to_arrow().equals(events(0, self.rows[v])), f"version {v} reads wrong rows"

    def check_whole_dataset(self, *, full_history: bool) -> None:
        ds = lv.open_dataset(self.uri)
        assert ds.version == self.latest
        # The history (all of it now and then: it parses every log entry) is exactly the
        # versions verified so far.
        limit = None if full_history else self.latest + 1 - self.history_checked
        history = ds.history(limit)
        first = 0 if full_history else self.history_checked
        assert [c.version for c in history] == list(range(self.latest, first - 1, -1))
        assert [c.snapshot_id for c in reversed(history)] == self.sids[first:]
        assert [c.total_rows for c in reversed(history)] == self.rows[first:]
        self.history_checked = self.latest
        for v, sid in self.acked.items():
            assert self.sids[v] == sid, f"acknowledged version {v} lost or changed"
        # Fragments seen by every version, cached content: each version reads 0..rows-1.
        for v, paths in enumerate(self.fragments):
            assert sum(len(self.fragment_ids[p]) for p in paths) == self.rows[v]
        # Nothing referenced is missing; everything else is an unreferenced leftover.
        existing = _all_files(self.storage)
        log_files = {f"{LOG_DIR}/{v:020d}.json" for v in range(self.latest + 1)}
        referenced = log_files | self.manifests | set(self.fragment_ids)
        missing = referenced - existing
        assert not missing, f"referenced files are missing: {sorted(missing)}"
        leftover = existing - referenced
        # No log entry past the head (a version readers would skip or trip over) ...
        ghosts = [p for p in leftover if re.fullmatch(rf"{LOG_DIR}/\d{{20}}\.json", p)]
        assert not ghosts, f"log entries past version {self.latest}: {ghosts}"
        # ... and no data outside the dataset's own directories. Other files under
        # _lakever/ are advisory (hints, indexes) or temporary and not modelled here.
        stray = [p for p in leftover if not p.startswith(("data/", "_lakever/"))]
        assert not stray, f"unexpected files: {stray}"
        self.leftovers = sum(p.startswith(("data/", "_lakever/manifests/")) for p in leftover)
        with contextlib.suppress(FileNotFoundError, ValueError):
            # advisory: never ahead of the head
            hint = int(self.storage.read_bytes(f"{LOG_DIR}/LATEST").decode())
            assert 0 <= hint <= self.latest


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_sigkill_writer_at_random_moments(tmp_path: Path, backend: str, request) -> None:
    # On S3 (the local test server) a commit is a dozen requests: the same kill loop,
    # with delays long enough to land kills inside commits rather than between them.
    if backend == "s3":
        uri = request.getfixturevalue("s3_bucket") + "/ds"
    else:
        uri = str(tmp_path / "ds")
    kills, max_delay = (KILLS, MAX_DELAY) if backend == "local" else (12, 2.0)
    ack_path = tmp_path / "acks.jsonl"
    rng = random.Random(SEED)
    lv.create_dataset(uri, events(0, 5), message="rows 0+5")
    checker = Checker(uri)
    checker.verify_new_version(0, 0, 5, None)

    pending = _spawn(uri, ack_path, rng.randrange(2**32))
    try:
        for kill in range(kills):
            proc = pending
            _wait_ready(proc)
            done = len(_read_log(ack_path))
            delay = rng.uniform(0, max_delay)
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            time.sleep(delay)
            if kill % 3 == 2:
                # Aim at the window between a commit landing and its acknowledgement:
                # kill as soon as the next log entry appears.
                _wait_for_next_entry(uri, checker.latest)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL, f"writer died on its own:\n{err}"
            lines = _read_log(ack_path)[done:]
            _trim_torn_line(ack_path)
            # The next writer imports while this one's aftermath is checked; it
            # touches the dataset only after `go`.
            if kill < kills - 1:
                pending = _spawn(uri, ack_path, rng.randrange(2**32))

            base = checker.latest
            acks = [e for e in lines if e["kind"] == "ack"]
            assert [a["version"] for a in acks] == list(range(base + 1, base + 1 + len(acks)))
            ds = lv.open_dataset(uri)  # it opens
            last_acked = acks[-1]["version"] if acks else base
            assert ds.version in (last_acked, last_acked + 1), (ds.version, last_acked)
            for a in acks:
                checker.verify_new_version(a["version"], a["start"], a["n"], a["snapshot_id"])
                checker.acked[a["version"]] = a["snapshot_id"]
            if ds.version == last_acked + 1:
                # The in-flight commit landed before the kill, unacknowledged: it must
                # be exactly the batch the writer announced last.
                intent = lines[-1]
                assert intent["kind"] == "intent"
                assert intent["base"] == last_acked
                checker.verify_new_version(ds.version, intent["start"], intent["n"], None)
                checker.unacked_landed += 1
            elif lines and lines[-1]["kind"] == "intent":
                checker.killed_mid_append += 1
            checker.check_whole_dataset(full_history=kill % 6 == 5)
            checker.read_back(checker.latest)
            checker.read_back(rng.randint(0, checker.latest))
    finally:
        if pending.poll() is None:
            pending.kill()
            pending.communicate(timeout=30)

    # The dataset still takes writes after all of this, continuing the same history.
    ds = lv.open_dataset(uri)
    n = ds.num_rows
    after = ds.append(events(n, 3), message=f"rows {n}+3", properties={"start": str(n), "n": "3"})
    checker.verify_new_version(after.version, n, 3, after.snapshot_id)
    checker.check_whole_dataset(full_history=True)
    # Every version, read through the public path (sampled: old versions are many).
    for v in sorted(
        {
            0,
            1,
            checker.latest // 2,
            checker.latest,
            *rng.sample(range(checker.latest), min(5, checker.latest)),
        }
    ):
        checker.read_back(v)
    assert len(checker.acked) > 0, "the writer never got to append before being killed"
    print(
        f"{kills} kills, {checker.latest} versions, {len(checker.acked)} acknowledged, "
        f"{checker.killed_mid_append} kills mid-append left no version, "
        f"{checker.unacked_landed} landed unacknowledged, {checker.leftovers} leftover files"
    )


# ----------------------------------------------------------------- torn advisory files
#
# Hints and indexes are written in place, without fsync (lakever/storage/local.py,
# write_hint): a writer killed between creating such a file and writing it, or
# a power loss, leaves it empty or garbled. Readers must fall back, not fail.
# (A well-formed hint ahead of the log is no torn write but deleted entries:
# tests/test_log_integrity.py.)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 21, b"garbage\n", b"99\n", b"-1\n", b"0000000000", b"000000000000000000099\n"],
    ids=["empty", "zeros", "garbage", "short-ahead", "negative", "torn", "too-long"],
)
def test_torn_latest_hint_is_ignored(local_location: str, content: bytes) -> None:
    ds = lv.create_dataset(local_location, events(0, 2))
    for i in range(3):
        ds = ds.append(events(2 + i, 1))
    Path(local_location, LOG_DIR, "LATEST").write_bytes(content)
    assert lv.open_dataset(local_location).version == 3
    after = lv.open_dataset(local_location).append(events(5, 1))
    assert after.version == 4
    assert lv.open_dataset(local_location).to_arrow().equals(events(0, 6))


def test_torn_snapshot_index_falls_back_to_the_log(location: str) -> None:
    """Where storage appends (local disk) the index is one appended shard per id prefix;
    elsewhere one small file per snapshot. Either, torn, is a miss the log scan covers."""
    from lakever import format as fmt
    from lakever.storage import open_storage

    lv.create_dataset(location, events(0, 2))
    ds = lv.open_dataset(location).append(events(2, 2))
    store = open_storage(location)
    sid = ds.snapshot_id
    shard, single = fmt.snapshot_index_log_path(sid, 1), fmt.snapshot_index_path(sid)
    rel = shard if store.exists(shard) else single
    assert (rel == shard) == (location.startswith("/"))  # only local disk appends
    assert sid.encode() in store.read_bytes(rel) or rel == single
    store.write_hint(rel, b"")  # what a kill between creating and writing the file leaves
    assert lv.open_dataset(location, version=sid).version == 1
    store.write_hint(rel, b'{"branch": "main", "version": "x", "id": "' + sid.encode() + b'"}')
    assert lv.open_dataset(location, version=sid[:8]).version == 1


def test_the_appended_index_finds_old_snapshots_past_a_torn_record(local_location: str) -> None:
    """A snapshot older than the newest versions the fallback scans is found through the
    appended index, also when its record comes after a torn one (a power loss's zero
    tail without a newline) and garbage lines in its shard."""
    from lakever import format as fmt
    from lakever.storage import open_storage

    ds = lv.create_dataset(local_location, events(0, 1))
    ids = [ds.snapshot_id]
    for i in range(1, 70):
        ds = ds.append(events(i, 1))
        ids.append(ds.snapshot_id)
    rel = fmt.snapshot_index_log_path(ids[1], 1)
    assert not Path(local_location, fmt.snapshot_index_path(ids[1])).exists()
    shard = Path(local_location, rel)
    assert shard.read_bytes().startswith(b"\n{")  # each record starts a line of its own
    lines = shard.read_bytes().split(b"\n")
    mine = next(line for line in lines if ids[1].encode() in line)
    others = [line for line in lines if line and line != mine]
    shard.write_bytes(b"\n".join([*others, b"not json", b'{"id": 5}']) + b"\x00" * 17)
    open_storage(local_location).append_hint(rel, b"\n" + mine + b"\n")  # as a writer does
    wrong = mine.replace(b'"version":1', b'"version":50')  # a stray record for the same id
    assert wrong != mine
    open_storage(local_location).append_hint(rel, b"\n" + wrong + b"\n")
    assert lv.open_dataset(local_location, version=ids[1]).version == 1
    assert lv.open_dataset(local_location, version=ids[1][:8]).version == 1
    for v in (0, 2, 3):  # other shards and other records are untouched
        assert lv.open_dataset(local_location, version=ids[v]).version == v


def test_the_appended_index_shards_by_more_digits_as_history_grows(
    local_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record goes to the shard of the first 1, 2, then 3 hex digits of its id as
    versions grow (here after 2 and 4 versions instead of 4,096 and 65,536); every
    level is read, and so is a record where earlier development builds put every one (2 digits)."""
    from lakever import format as fmt

    monkeypatch.setattr(fmt, "INDEX_LEVELS", ((2, 1), (4, 2), (None, 3)))
    ds = lv.create_dataset(local_location, events(0, 1))
    ids = [ds.snapshot_id]
    for i in range(1, 70):  # the fallback scans the newest 64: versions 0-5 need the index
        ds = ds.append(events(i, 1))
        ids.append(ds.snapshot_id)
    root = Path(local_location, "_lakever", "snapshots")
    for v, digits in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (69, 3)]:
        shard = root / f"{ids[v][:digits]}.jsonl"
        assert f'"id":"{ids[v]}"'.encode() in shard.read_bytes(), v
    for v in range(6):
        assert lv.open_dataset(local_location, version=ids[v]).version == v
        assert lv.open_dataset(local_location, version=ids[v][:8]).version == v
    # As earlier development builds wrote it: version 1's record in the 2-digit shard only.
    one = root / f"{ids[1][:1]}.jsonl"
    mine = next(x for x in one.read_bytes().split(b"\n") if ids[1].encode() in x)
    one.write_bytes(one.read_bytes().replace(mine, b""))
    with (root / f"{ids[1][:2]}.jsonl").open("ab") as f:
        f.write(b"\n" + mine + b"\n")
    assert lv.open_dataset(local_location, version=ids[1]).version == 1
