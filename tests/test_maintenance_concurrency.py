"""Maintenance racing writers and readers: appends, compaction, expiry, vacuum, tags,
retained pins and reads, each in its own OS process, on one dataset at once.

The oracle: every appender adds rows with ids no one else uses, and compaction changes
no row, so what version ``v`` of a branch must hold is known exactly -- the seed rows
plus every batch acknowledged on that branch (or before its fork) at a version up to
``v``. After the race, every acknowledged version still retained must read back
byte-identical to that (a SHA-256 over the sorted Arrow IPC), and so must every read a
worker made while the race ran (right after each commit, tag and retain, and the
reader's); every other version must refuse to open with `VersionExpired`, never with
missing files or other rows. Tags, retained pins, branch heads and the fork point (the
merge base of the two live branches) must always read back.

Two interleavings the race found are replayed deterministically first: a ref made
while an expiry runs, and a reader that opened a version while an expiry ran.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _data import events
from _maint_workers import MAINT_WORKERS_PY, digest

import lakever as lv


def test_ref_made_while_an_expiry_runs_keeps_its_snapshot_readable(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refs made after an expiry read the roots but before it published: each ref's own
    check (it re-reads the expiry after writing the ref) sees nothing expired, then the
    expiry lists the snapshot. Vacuum keeps what a root names, so each snapshot stays
    readable: by its pin, tag or branch, by its number and by its id."""
    import lakever.maintenance.expire as expire_module

    ds = lv.create_dataset(location, events(0, 3))
    for i in range(5):
        ds = ds.append(events(10 * (i + 1), 2))
    views = {v: lv.open_dataset(location, version=v) for v in (1, 2, 3)}
    want = {v: digest(view.to_arrow()) for v, view in views.items()}
    made: dict[str, str] = {}
    roots = expire_module.roots

    def roots_then_refs(storage: Any) -> Any:
        held = roots(storage)
        if not made:  # another process, between this expiry's roots and its publish
            made["pin"] = views[1].retain(reason="race").pin
            made["tag"] = views[2].tag("kept").name
            made["branch"] = views[3].branch("b").branch_name
        return held

    monkeypatch.setattr(expire_module, "roots", roots_then_refs)
    report = ds.expire(keep_last=1, dry_run=False)
    monkeypatch.undo()
    assert [(r.first, r.last) for r in report.expired] == [(0, 4)]  # 1, 2, 3 included
    ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)

    by_ref = {
        1: lambda: lv.open_dataset(made["pin"]),
        2: lambda: lv.open_dataset(location, version="tag:kept"),
        3: lambda: lv.open_dataset(location, branch="b"),
    }
    for v, view in views.items():
        for opened in (
            by_ref[v](),
            lv.open_dataset(location, version=v),
            lv.open_dataset(location, version=view.snapshot_id),
        ):
            assert (opened.snapshot_id, digest(opened.to_arrow())) == (view.snapshot_id, want[v])
    for v in (0, 4):
        with pytest.raises(lv.VersionExpired):
            lv.open_dataset(location, version=v)
    assert ds.verify(full=True, all_refs=True).ok

    # Without its ref, each is expired like its neighbours.
    ds.release(made["pin"])
    ds.delete_tag("kept")
    ds.delete_branch("b")
    for v in (1, 2, 3):
        with pytest.raises(lv.VersionExpired):
            lv.open_dataset(location, version=v)


def test_grace_starts_when_the_expiry_is_published(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader opens a version while a slow expiry (a big lake, a slow store) runs;
    the expiry then publishes, expiring it, and a vacuum follows at once. The reader
    still has the whole grace: a version counts as expired from when its expiry was
    published, not from when that expiry started."""
    import lakever.maintenance.expire as expire_module

    ds = lv.create_dataset(location, events(0, 3))
    for i in range(3):
        ds = ds.append(events(10 * (i + 1), 2))
    ds = ds.compact()  # version 4: versions 0-3 alone reference the small fragments
    want = digest(lv.open_dataset(location, version=2).to_arrow())
    readers: dict[int, lv.Dataset] = {}
    roots = expire_module.roots

    def slow_roots(storage: Any) -> Any:
        held = roots(storage)
        if not readers:
            readers[2] = lv.open_dataset(location, version=2)  # not expired yet
            time.sleep(3)
        return held

    monkeypatch.setattr(expire_module, "roots", slow_roots)
    report = ds.expire(keep_last=1, dry_run=False)
    monkeypatch.undo()
    assert [(r.first, r.last) for r in report.expired] == [(0, 3)]
    with pytest.raises(lv.VersionExpired):
        lv.open_dataset(location, version=2)
    vacuumed = ds.vacuum(dry_run=False, grace=timedelta(seconds=2), allow_short_grace=True)
    assert vacuumed.files == ()  # expired (published) less than the grace ago
    assert digest(readers[2].to_arrow()) == want
    assert ds.vacuum(dry_run=True, grace=timedelta(0), allow_short_grace=True).files  # later


# ----------------------------------------------------------------- the race

SEED = [(0, 10), (100, 5)]  # main: version 0 creates, version 1 appends; dev forks at 1
FORK = 1


def _start(argvs: list[list[str]], logs: Path) -> list[subprocess.Popen[str]]:
    procs = []
    try:
        for i, argv in enumerate(argvs):
            err = open(logs / f"w{i}.stderr", "w", encoding="utf-8")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, MAINT_WORKERS_PY, *argv],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            )
            err.close()
        for i, p in enumerate(procs):  # imports done everywhere: the race starts on `go`
            assert p.stdout is not None
            line = p.stdout.readline()
            if "ready" not in line:
                p.kill()
                p.wait()
                err = (logs / f"w{i}.stderr").read_text()
                pytest.fail(f"worker {argvs[i][0]} did not start: {line!r}\n{err}")
    except BaseException:
        _kill(procs)
        raise
    return procs


def _kill(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pipe in (p.stdin, p.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _race(
    uri: str, tmp_path: Path, roles: list[tuple[str, list[str]]], seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, int]]]:
    """Run the workers for ``seconds``; return every record and each worker's counts."""
    logs = tmp_path / "logs"
    logs.mkdir()
    argvs = [
        [role, uri, str(logs / f"w{i}.jsonl"), str(1000 + i), *args]
        for i, (role, args) in enumerate(roles)
    ]
    procs = _start(argvs, logs)
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"go {seconds}\n")
            p.stdin.flush()
        done, failures = [], []
        for i, p in enumerate(procs):
            out, _ = p.communicate(timeout=seconds + 120)
            records = [json.loads(x) for x in (logs / f"w{i}.jsonl").read_text().splitlines()]
            errors = [r["error"] for r in records if r["kind"] == "error"]
            if p.returncode != 0 or errors:
                err = (logs / f"w{i}.stderr").read_text()
                failures.append(f"worker {i} {argvs[i][0]} rc={p.returncode}:\n{err}")
                continue
            done.append(json.loads(out.splitlines()[-1])["done"])
    finally:
        _kill(procs)
    if failures:
        pytest.fail("\n\n".join(failures))
    records = []
    for i in range(len(procs)):
        for line in (logs / f"w{i}.jsonl").read_text().splitlines():
            records.append({**json.loads(line), "worker": i})
    return records, done


class Expected:
    """What each version of each branch must hold, from the acknowledged commits."""

    def __init__(self, uri: str, records: list[dict[str, Any]], note: str) -> None:
        self.note = note  # added to every failure: how long commits, expiries, reads took
        oldest_first = lv.open_dataset(uri).history()[::-1]
        self.sid: dict[tuple[str, int], str] = {
            ("main", v): oldest_first[v].snapshot_id for v in range(len(SEED))
        }
        batches: dict[tuple[str, int], list[tuple[int, int]]] = {
            ("main", v): [b] for v, b in enumerate(SEED)
        }
        self.acked: dict[tuple[str, int], dict[str, Any]] = {}
        for r in records:
            if r["kind"] in ("append", "compact"):
                key = (r["branch"], r["version"])
                assert key not in self.acked, f"{key} acknowledged twice: {self.acked[key]}, {r}"
                self.acked[key] = r
                self.sid[key] = r["snapshot_id"]
                batches[key] = [(r["start"], r["n"])] if r["kind"] == "append" else []
        self.heads = {b: lv.open_dataset(uri, branch=b).version for b in ("main", "dev")}
        self.digest: dict[tuple[str, int], str] = {}
        tables: dict[str, list[pa.Table]] = {"main": [], "dev": []}
        for branch in ("main", "dev"):
            first = 0 if branch == "main" else FORK + 1
            if branch == "dev":
                tables["dev"] = [events(*b) for b in SEED]
                for v in range(FORK + 1):
                    self.digest["dev", v] = self.digest["main", v]
                    self.sid["dev", v] = self.sid["main", v]
            for v in range(first, self.heads[branch] + 1):
                # Every version is an acknowledged append or compaction: none unaccounted.
                assert (branch, v) in batches, f"{branch}@{v} was committed but never acknowledged"
                tables[branch] += [events(s, n) for s, n in batches[branch, v]]
                self.digest[branch, v] = digest(pa.concat_tables(tables[branch]))
        self.versions = sorted(self.digest)

    def check(self, where: str, branch: str, version: int, sid: str, got: str) -> None:
        """``got`` (a digest) is what ``branch@version`` must hold, and ``sid`` its id."""
        at = f"{where}: {branch}@{version}"
        assert sid == self.sid[branch, version], f"{at} is another snapshot ({self.note})"
        assert got == self.digest[branch, version], f"{at} holds other rows ({self.note})"


def _run(uri: str, tmp_path: Path, *, seconds: float, grace: float, pause: float) -> dict[str, Any]:
    seed = lv.create_dataset(uri, events(*SEED[0]), message="seed")
    seed.append(events(*SEED[1]), message="seed 2").branch("dev")
    both = "main,dev"
    roles = [  # each in its own process
        ("append", ["main", "0", str(pause)]),
        ("append", [both, "1", str(pause)]),
        ("compact", [both, str(4 * pause)]),
        ("expire", ["3", str(2 * pause)]),
        ("vacuum", [str(grace), str(3 * pause)]),
        ("refs", [both, "0", str(pause)]),
    ]
    started = time.monotonic()
    records, done = _race(uri, tmp_path, roles, seconds)
    raced = time.monotonic() - started
    # The race is meaningful only if grace outlasts every commit in flight and every
    # read of a snapshot expired meanwhile; shown with any failure below.
    slowest = {
        kind: max((r[key] for r in records if key in r and r["kind"] == kind), default=0)
        for kind, key in (("append", "took"), ("expire", "took"), ("read", "held"))
    }
    note = f"grace {grace} s; slowest append, expire, read: {slowest}"

    # Every worker made progress, and maintenance really expired and deleted things.
    main_appender, both_appender, compactor, expirer, vacuumer, refs_reader = done
    assert main_appender.get("commits", 0) >= 5, done
    assert both_appender.get("commits", 0) >= 5, done
    assert compactor.get("commits", 0) >= 1, done
    assert expirer.get("versions", 0) >= 10, done
    # Vacuum deleted files while the others wrote. Which kind depends on timing (an
    # expired snapshot's files must outlive the grace first), so any reason counts here;
    # that expired snapshots' files were deleted is checked after the final pass.
    assert sum(n for k, n in vacuumer.items() if k.startswith("deleted_")) >= 1, done
    assert refs_reader.get("tags", 0) >= 1, done
    assert refs_reader.get("retained", 0) >= 1, done
    assert refs_reader.get("reads", 0) >= 10, done

    # Nothing runs any more: vacuum away everything no retained snapshot needs.
    ds = lv.open_dataset(uri)
    final = ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    again = ds.vacuum(dry_run=True, grace=timedelta(0), allow_short_grace=True)
    assert again.files == (), again.files
    # Expiry really freed data: expired snapshots' files were deleted, in the race or now.
    freed = vacuumer.get("deleted_expired", 0) + sum(f.reason == "expired" for f in final.files)
    assert freed >= 1, (done, final.files)

    exp = Expected(uri, records, note)

    # What the workers saw while the race ran: after each commit, tag and retain, reads.
    for r in records:
        if r["kind"] in ("append", "compact", "read"):
            exp.check(f"{r['kind']} by worker {r['worker']}", r["branch"], r["version"],
                      r["snapshot_id"], r["digest"])  # fmt: skip

    # Tags: exactly the ones acknowledged exist, and each reads back.
    tags = {r["name"]: r for r in records if r["kind"] == "tag"}
    assert sorted(t.name for t in ds.tags()) == sorted(tags)
    for name, r in tags.items():
        got = lv.open_dataset(uri, version=f"tag:{name}")
        exp.check(f"tag {name}", r["branch"], r["version"], got.snapshot_id, digest(got.to_arrow()))
        assert got.snapshot_id == r["snapshot_id"]

    # Retained pins: the ones acknowledged and not released, each readable by its pin.
    pins: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["kind"] == "retain":
            pins[r["snapshot_id"]] = r
        elif r["kind"] == "release":
            del pins[r["snapshot_id"]]
    assert sorted(x.snapshot_id for x in ds.retained()) == sorted(pins)
    for sid, r in pins.items():
        got = lv.open_dataset(r["pin"])
        exp.check(f"pin {r['pin']}", r["branch"], r["version"], sid, digest(got.to_arrow()))

    # Every version: readable and identical to what was acknowledged, or expired. A root
    # (tag, retained pin, head, the fork point) always reads back, even one a racing
    # expiry lists (it was made after that expiry read the roots).
    roots = {(r["branch"], r["version"]) for r in (*tags.values(), *pins.values())}
    roots |= {("main", FORK), *exp.heads.items()}
    roots |= {(b, v) for _, v in roots if v <= FORK for b in ("main", "dev")}
    listed = {
        (branch, c.version): c.expired
        for branch in ("main", "dev")
        for c in lv.open_dataset(uri, branch=branch).history()
    }
    assert sorted(listed) == exp.versions
    for branch, version in exp.versions:
        if not listed[branch, version] or (branch, version) in roots:
            got = lv.open_dataset(uri, branch=branch, version=version)
            exp.check("after the race", branch, version, got.snapshot_id, digest(got.to_arrow()))
    for branch, head in exp.heads.items():
        got = lv.open_dataset(uri, branch=branch)
        exp.check(f"head of {branch}", branch, head, got.snapshot_id, digest(got.to_arrow()))
    # The expired ones refuse to open, with VersionExpired (not missing files).
    expired = [k for k in exp.versions if listed[k] and k not in roots]
    assert len(expired) >= 10
    for branch, version in expired:
        with pytest.raises(lv.VersionExpired):
            lv.open_dataset(uri, branch=branch, version=version)

    report = ds.verify(full=True, all_refs=True)
    assert report.ok, report.problems
    return {
        "seconds": round(raced, 1),
        "versions": len(exp.versions),
        "expired": len(expired),
        "deleted_in_race": {k: v for k, v in vacuumer.items() if k.startswith("deleted")},
        "deleted_after": len(final.files),
        "tags": len(tags),
        "retained": len(pins),
        "slowest": slowest,
        "workers": done,
    }


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_writers_compaction_expiry_vacuum_race_local(tmp_path: Path) -> None:
    stats = _run(str(tmp_path / "events"), tmp_path, seconds=10, grace=4, pause=0.15)
    print(stats)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_writers_compaction_expiry_vacuum_race_s3(s3_bucket: str, tmp_path: Path) -> None:
    stats = _run(s3_bucket + "/events", tmp_path, seconds=16, grace=4, pause=0.25)
    print(stats)
