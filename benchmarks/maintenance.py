"""Maintenance: vacuum time and requests on many files; verify throughput vs raw SHA-256.

Usage::

    python benchmarks/maintenance.py            # full: ~100k files locally, ~5k on S3, 256 MB
    python benchmarks/maintenance.py --only verify   # one part (local, s3, verify; repeatable)
    python benchmarks/maintenance.py --quick    # a few thousand files, 32 MB (a smoke test)
    python benchmarks/maintenance.py --output FILE   # default benchmarks/results/maintenance.json
    python benchmarks/maintenance.py --profile  # also print cProfile's top functions of vacuum

Three parts, each against a raw baseline measured in the same run:

1. **Vacuum on local disk.** A history of ``commits`` appends of ``per_commit`` one-row
   fragments is compacted into one fragment, a tag is put on an early version, and
   ``ds.expire(keep_last=1)`` expires every other version; then ``orphans`` unreferenced
   files (copies of a fragment, modification time 30 days back) and leftovers of
   interrupted writes (``*.tmp-*``) are added. Measured: ``ds.vacuum(dry_run=True)``
   (median of interleaved runs, in-process caches cleared before each, as in a new
   process) against a raw listing of the same tree (``os.scandir`` recursion + ``stat``:
   path, size, mtime, which any vacuum needs); ``Storage.walk("")`` alone (vacuum's
   listing step); and ``ds.vacuum(dry_run=False)`` (once, on a copy of the tree) against
   ``os.unlink`` of the same files in another copy.
2. **Vacuum on S3.** The same kind of dataset, smaller, written locally and uploaded (three
   copies, without the proxy) to a moto server in a subprocess; every measured request
   goes through the counting `Proxy` of tests/_s3.py (20 ms added per request). Measured:
   requests and wall time of the dry run and of the apply, against one full listing
   (``obstore.list``) plus the deletes of the same keys, 16 at a time (one request each,
   as vacuum does), and against the listing plus one bulk ``obstore.delete(keys)``
   (S3 DeleteObjects, up to 1,000 keys a request).
3. **Verify throughput.** ``ds.verify(full=False)`` of a snapshot of incompressible
   fragments (random bytes) against reading and hashing (``hashlib.sha256``, 4 MiB
   chunks) the same files, sequentially and on a pool of as many threads as verify
   uses locally (``min(4, cpu_count)``). Page cache warm: this measures hashing, not disk.

Vacuum runs with ``grace=0`` (``allow_short_grace=True``): the versions were expired
seconds before, and on S3 the objects were uploaded seconds before; grace decides which
files qualify, not how the work is done. Ratios are ``lakever / baseline``; nothing is
asserted about time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import platform
import pstats
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pyarrow as pa
from _harness import (
    Result,
    compare,
    format_table,
    git_state,
    make_table,
    median,
    run_meta,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
# Benchmark the checkout this script belongs to (s3.py does the same).
sys.path.insert(0, str(ROOT))

from s3 import CREDS, Row, classify, fresh_process_caches, moto_server, request_table  # noqa: E402

import lakever as lv  # noqa: E402
from lakever.storage import LocalStorage  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "maintenance.json"
GRACE = timedelta(0)
OLD = 30 * 86_400  # orphans' modification time: 30 days back
MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Sizes:
    commits: int  # local vacuum: appends of per_commit one-row fragments
    per_commit: int
    orphans: int  # unreferenced files added to data/ (plus orphans // 100 *.tmp-* leftovers)
    repeat: int  # dry runs and listings, interleaved
    s3_commits: int
    s3_orphans: int
    s3_latency_ms: int
    verify_mb: int  # total fragment bytes (MB) of the verified snapshot
    verify_fragment_mb: int
    verify_repeat: int


FULL = Sizes(
    commits=1_000,
    per_commit=10,
    orphans=88_000,
    repeat=3,
    s3_commits=200,
    s3_orphans=2_500,
    s3_latency_ms=20,
    verify_mb=256,
    verify_fragment_mb=2,
    verify_repeat=5,
)
QUICK = Sizes(
    commits=100,
    per_commit=10,
    orphans=2_000,
    repeat=2,
    s3_commits=10,
    s3_orphans=200,
    s3_latency_ms=20,
    verify_mb=32,
    verify_fragment_mb=1,
    verify_repeat=3,
)


def log(msg: str) -> None:
    print(f"[maintenance {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def profile_top(fn: Callable[[], Any], n: int = 25) -> str:
    """cProfile's top ``n`` functions of ``fn`` by cumulative and by own time."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(n)
    stats.sort_stats("tottime").print_stats(n)
    return out.getvalue()


@contextlib.contextmanager
def delete_phase(cls: type) -> Iterator[dict[str, Any]]:
    """Time ``cls.delete`` calls while inside: from the first call's start to the last
    call's end (thread-safe), and count them."""
    span: dict[str, Any] = {"start": None, "end": None, "calls": 0}
    original = cls.delete
    lock = threading.Lock()

    def delete(self: Any, rel: str) -> None:
        t0 = time.perf_counter()
        try:
            original(self, rel)
        finally:
            t1 = time.perf_counter()
            with lock:
                span["start"] = t0 if span["start"] is None else min(span["start"], t0)
                span["end"] = t1 if span["end"] is None else max(span["end"], t1)
                span["calls"] += 1

    cls.delete = delete
    try:
        yield span
    finally:
        cls.delete = original


def seconds_of(span: dict[str, Any]) -> float:
    return 0.0 if span["start"] is None else float(span["end"] - span["start"])


def areas(entries: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Requests by kind and area of the dataset ("GET _lakever/log", "LIST data", ...);
    a DeleteObjects POST names no key ("DELETE (bulk)")."""
    out: Counter[str] = Counter()
    for method, path in entries:
        key, _, query = path.partition("?")
        kind = "LIST" if method == "GET" and "list-type" in query else method
        if kind == "POST" and "delete" in query:
            kind = "DELETE"
        if kind == "LIST":
            key = key.rstrip("/") + "/" + parse_qs(query).get("prefix", [""])[0]
        parts = [x for x in unquote(key).split("/") if x][2:]  # drop the bucket, the prefix
        if not parts:
            area = "(bulk)" if kind == "DELETE" else "(all)"
        elif parts[0] == "_lakever" and len(parts) > 2:
            area = "/".join(parts[:2])
        else:
            area = parts[0] if len(parts) > 1 else parts[0] + " (file)"
        out[f"{kind} {area}"] += 1
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- data


def build_history(uri: str, commits: int, per_commit: int) -> tuple[lv.Dataset, dict[str, Any]]:
    """``commits`` appends of ``per_commit`` one-row fragments, a tag at 10% of the history,
    compaction, and expiry of everything but the head and the tag (no fsync: setup only)."""
    t0 = time.perf_counter()
    opts = {"fsync": False}
    ds = lv.create_dataset(
        uri, make_table(per_commit, seed=0), max_rows_per_fragment=1, storage_options=opts
    )
    for i in range(1, commits):
        t = make_table(per_commit, start_id=i * per_commit, seed=i)
        ds = ds.append(t, max_rows_per_fragment=1)
    tagged = commits // 10
    lv.open_dataset(uri, version=tagged, storage_options=opts).tag("kept")
    commit_s = time.perf_counter() - t0
    ds = ds.compact()
    expired = ds.expire(keep_last=1, dry_run=False)
    info = {
        "commits": commits,
        "fragments_per_commit": per_commit,
        "build_s": round(commit_s, 1),
        "tag_at_version": tagged,
        "head_fragments": len(ds.fragments()),
        "expired_versions": expired.versions,
    }
    return ds, info


def add_orphans(root: str, n: int, *, age_s: float) -> dict[str, int]:
    """``n`` unreferenced copies of a fragment in data/ and ``n // 100`` leftovers of
    interrupted log writes, their modification time ``age_s`` back."""
    data = os.path.join(root, "data")
    sample = next(e.path for e in os.scandir(data) if e.name.endswith(".parquet"))
    body = Path(sample).read_bytes()
    when = time.time() - age_s
    log_dir = os.path.join(root, "_lakever", "log", "main")
    paths = [os.path.join(data, f"{uuid.uuid4().hex}.parquet") for _ in range(n)]
    paths += [
        os.path.join(log_dir, f"{v:020d}.json.tmp-{uuid.uuid4().hex}") for v in range(n // 100)
    ]
    for p in paths:
        with open(p, "wb") as f:
            f.write(body)
        os.utime(p, (when, when))
    return {"orphans": n, "tmp_leftovers": n // 100, "orphan_bytes": len(body)}


def raw_listing(root: str) -> list[tuple[str, int, float]]:
    """Every file under ``root`` with size and mtime: ``os.scandir`` recursion + ``stat``."""
    out: list[tuple[str, int, float]] = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    st = e.stat(follow_symlinks=False)
                    out.append((e.path, st.st_size, st.st_mtime))
    return out


def count_files(root: str) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def area_of(rel: str) -> str:
    parts = rel.split("/")
    return "/".join(parts[:2]) if parts[0] == "_lakever" and len(parts) > 2 else parts[0]


def by_area(root: str) -> dict[str, int]:
    """Files under ``root`` by area ("data", "_lakever/manifests", ...)."""
    out = Counter(
        area_of(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
        for d, _, files in os.walk(root)
        for f in files
    )
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- 1. local vacuum


def local_vacuum(
    s: Sizes, work: str, *, profile: bool
) -> tuple[list[Result], dict[str, Any], dict[str, str]]:
    uri = os.path.join(work, "vacuum")
    log(f"local: {s.commits:,} commits x {s.per_commit} fragments, then {s.orphans:,} orphans")
    ds, info = build_history(uri, s.commits, s.per_commit)
    info.update(add_orphans(uri, s.orphans, age_s=OLD))
    info["files_before"] = count_files(uri)
    info["files_by_area"] = by_area(uri)
    # Two identical copies: vacuum deletes in one, the raw baseline unlinks in the other.
    applied_uri, copy = os.path.join(work, "vacuum-apply"), os.path.join(work, "vacuum-raw")
    t0 = time.perf_counter()
    for target in (applied_uri, copy):
        shutil.copytree(uri, target)
    info["copy_s"] = round(time.perf_counter() - t0, 1)
    log(f"  {info['files_before']:,} files; two copies made in {info['copy_s']} s")
    storage = LocalStorage(uri, fsync=False)
    got: dict[str, Any] = {}

    def dry() -> None:
        got["dry"] = ds.vacuum(dry_run=True, grace=GRACE, allow_short_grace=True)

    def listing() -> None:
        got["raw"] = raw_listing(uri)

    def walk() -> None:
        got["walk"] = storage.walk("")

    runs = compare(  # no warm-up round: the copy just made has every inode cached
        {"dry": dry, "raw": listing, "walk": walk},
        repeat=s.repeat,
        warmup=0,
        setups={"dry": fresh_process_caches},
    )
    report = got["dry"]
    doomed = [f.path for f in report.files]
    listed = len(got["raw"])
    if len(got["walk"]) != listed:
        raise AssertionError(f"Storage.walk found {len(got['walk'])} files, scandir {listed}")
    reasons = {k: v.to_dict() for k, v in report.by_reason().items()}
    log(f"  dry run: {len(doomed):,} of {listed:,} files collectable {reasons}")
    profiles: dict[str, str] = {}
    if profile:
        fresh_process_caches()
        profiles["local dry run"] = profile_top(dry)

    fresh_process_caches()
    target_ds = lv.open_dataset(applied_uri)
    with delete_phase(LocalStorage) as span:
        apply_s, applied = timed(
            lambda: target_ds.vacuum(dry_run=False, grace=GRACE, allow_short_grace=True)
        )
    deletes_s = seconds_of(span)
    if span["calls"] != len(doomed):
        raise AssertionError(f"{span['calls']} deletes for {len(doomed)} files")
    if [f.path for f in applied.files] != doomed:
        raise AssertionError("vacuum deleted other files than its dry run listed")

    # The same deletes, in vacuum's order (fragments before manifests), on the other copy.
    order = sorted(doomed, key=lambda p: (p.startswith("_lakever/"), p))
    raw_paths = [os.path.join(copy, p) for p in order]
    unlink_s, _ = timed(lambda: [os.unlink(p) for p in raw_paths])

    after = lv.open_dataset(applied_uri)
    rows = after.to_arrow().num_rows
    if rows != s.commits * s.per_commit:
        raise AssertionError(f"{rows} rows after vacuum, expected {s.commits * s.per_commit}")
    if lv.open_dataset(applied_uri, version="kept").to_arrow().num_rows == 0:
        raise AssertionError("the tagged version lost its rows")
    again = after.vacuum(dry_run=True, grace=GRACE, allow_short_grace=True)
    if again.files:
        raise AssertionError(f"a second vacuum still finds {len(again.files)} files")

    dry_s, raw_s, walk_s = median(runs["dry"]), median(runs["raw"]), median(runs["walk"])
    n, mb = len(doomed), report.bytes / MB
    info.update(
        files_listed=listed,
        collectable=n,
        collectable_bytes=report.bytes,
        by_reason=reasons,
        kept={k: v.to_dict() for k, v in report.kept.items()},
        snapshots_surveyed=report.snapshots,
        files_after=count_files(applied_uri),
        runs_s={k: [round(x, 4) for x in v] for k, v in runs.items()},
        apply_s=round(apply_s, 3),
        apply_delete_phase_s=round(deletes_s, 3),
        unlink_s=round(unlink_s, 3),
    )
    where = f"{listed:,} files, {n:,} collectable ({mb:,.0f} MB)"
    results = [
        Result(
            "vacuum, local",
            f"dry run: {where}",
            "s",
            dry_s,
            raw_s,
            "scandir+stat",
            notes=f"median of {s.repeat}, caches cleared",
        ),
        Result(
            "vacuum, local",
            f"its listing step, Storage.walk(''), {listed:,} files",
            "s",
            walk_s,
            raw_s,
            "scandir+stat",
        ),
        Result(
            "vacuum, local",
            f"apply: delete {n:,} of {listed:,} files",
            "s",
            apply_s,
            unlink_s + raw_s,
            "scandir+stat + unlink",
            notes="once",
        ),
        Result(
            "vacuum, local",
            f"apply: its delete phase, {n:,} files",
            "s",
            deletes_s,
            unlink_s,
            "os.unlink",
            notes="first delete call to the end of the last",
        ),
        Result(
            "vacuum, local",
            "apply: files deleted per second",
            "files/s",
            n / apply_s,
            n / (unlink_s + raw_s),
            "scandir+stat + unlink",
            better="higher",
        ),
    ]
    return results, info, profiles


# ----------------------------------------------------------------------------- 2. S3 vacuum


def s3_vacuum(
    s: Sizes, work: str, *, profile: bool
) -> tuple[list[Result], list[Row], dict[str, Any], dict[str, str]]:
    import obstore
    import obstore.store

    from tests._s3 import Proxy, make_bucket

    local = os.path.join(work, "s3-local")
    log(f"s3: {s.s3_commits:,} commits x {s.per_commit} fragments, {s.s3_orphans:,} orphans")
    _, info = build_history(local, s.s3_commits, s.per_commit)
    info.update(add_orphans(local, s.s3_orphans, age_s=OLD))
    files = [
        os.path.relpath(os.path.join(d, f), local).replace(os.sep, "/")
        for d, _, names in os.walk(local)
        for f in names
    ]
    info["files"] = len(files)
    info["files_by_area"] = dict(sorted(Counter(area_of(f) for f in files).items()))
    rows: list[Row] = []
    results: list[Result] = []
    profiles: dict[str, str] = {}
    with moto_server("subprocess") as endpoint:
        bucket = make_bucket(endpoint)
        name = bucket.removeprefix("s3://")

        def store(ep: str) -> Any:
            cfg = {"aws_endpoint": ep}
            return obstore.store.S3Store(name, config=cfg, client_options={"allow_http": True})

        direct = store(endpoint)

        def upload(prefix: str) -> None:
            def one(rel: str) -> None:
                obstore.put(direct, f"{prefix}/{rel}", Path(local, rel).read_bytes())

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, files))

        t0 = time.perf_counter()
        for prefix in ("lake", "raw", "bulk"):
            upload(prefix)
        info["upload_s"] = round(time.perf_counter() - t0, 1)
        log(f"  uploaded 3 x {len(files):,} objects in {info['upload_s']} s (no proxy)")

        proxy = Proxy(endpoint, latency=s.s3_latency_ms / 1000)
        lat = s.s3_latency_ms
        caches = iter(range(1_000_000))

        def open_lake() -> lv.Dataset:
            fresh_process_caches()
            cache = os.path.join(work, f"cache-{next(caches)}")
            opts = {"aws_endpoint": proxy.endpoint, "cache_dir": cache}
            return lv.open_dataset(f"{bucket}/lake", storage_options=opts)

        def measure(op: str, system: str, fn: Callable[[], Any]) -> tuple[Row, Any]:
            row = Row(op, system, lat)
            rows.append(row)
            proxy.reset_counts()
            seconds, out = timed(fn)
            row.seconds.append(seconds)
            row.counts.append(classify(list(proxy.log)))
            info.setdefault("requests_by_area", {})[f"{op} / {system}"] = areas(proxy.log)
            gets = {p.split("?", 1)[0] for m, p in proxy.log if m == "GET" and "list-type" not in p}
            info.setdefault("distinct_keys_read", {})[f"{op} / {system}"] = len(gets)
            return row, out

        try:
            ds = open_lake()
            dry_row, dry = measure(
                "vacuum dry run",
                "lakever",
                lambda: ds.vacuum(dry_run=True, grace=GRACE, allow_short_grace=True),
            )
            doomed = [f.path for f in dry.files]
            n = len(doomed)
            log(f"  dry run: {n:,} of {len(files):,} objects collectable")
            if profile:
                ds = open_lake()
                profiles["s3 dry run"] = profile_top(
                    lambda: ds.vacuum(dry_run=True, grace=GRACE, allow_short_grace=True)
                )
            ds = open_lake()
            with delete_phase(type(ds._storage)) as span:
                apply_row, applied = measure(
                    "vacuum apply",
                    "lakever",
                    lambda: ds.vacuum(dry_run=False, grace=GRACE, allow_short_grace=True),
                )
            info["apply_delete_phase_s"] = round(seconds_of(span), 3)
            if [f.path for f in applied.files] != doomed:
                raise AssertionError("vacuum on S3 deleted other files than its dry run listed")
            via = store(proxy.endpoint)
            order = sorted(doomed, key=lambda p: (p.startswith("_lakever/"), p))

            def listing(prefix: str) -> list[str]:
                return [str(m["path"]) for c in obstore.list(via, prefix) for m in c]

            list_row, listed = measure("list", "raw: obstore.list", lambda: listing("raw/"))
            if len(listed) != len(files):
                raise AssertionError(f"listed {len(listed)} objects, uploaded {len(files)}")

            def per_key() -> None:
                listing("raw/")
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda p: obstore.delete(via, f"raw/{p}"), order))

            def bulk() -> None:
                listing("bulk/")
                obstore.delete(via, [f"bulk/{p}" for p in order])

            raw_row, _ = measure("list + delete", "raw: list + 16x delete of each key", per_key)
            bulk_row, _ = measure("list + delete", "raw: list + bulk delete", bulk)
            left = {
                p: len(listing(f"{p}/")) for p in ("lake", "raw", "bulk")
            }  # each copy keeps the same objects
            if len(set(left.values())) != 1:
                raise AssertionError(f"objects left differ between the copies: {left}")
            info["objects_left"] = left["lake"]
        finally:
            proxy.stop()

    info.update(collectable=n, collectable_bytes=dry.bytes, latency_ms=lat)
    what = f"{len(files):,} objects, {n:,} collectable, {lat} ms latency"
    for label, row, base, base_name in (
        ("dry run", dry_row, list_row, "obstore.list"),
        ("apply", apply_row, raw_row, "list + 16x delete"),
        ("apply", apply_row, bulk_row, "list + bulk delete"),
    ):
        results.append(
            Result("vacuum, S3", f"{label}, {what}", "requests", row.total, base.total, base_name)
        )
        results.append(Result("vacuum, S3", f"{label}, {what}", "ms", row.ms, base.ms, base_name))
    assert dry_row.total is not None
    assert apply_row.total is not None
    results.append(
        Result(
            "vacuum, S3",
            f"apply: requests per collectable file, {n:,} files",
            "req/file",
            apply_row.total / n,
            (raw_row.total or 0) / n,
            "list + 16x delete",
            notes=f"bulk delete: {(bulk_row.total or 0) / n:.4f}",
        )
    )
    return results, rows, info, profiles


# ----------------------------------------------------------------------------- 3. verify


def build_verify(uri: str, total_mb: int, fragment_mb: int) -> lv.Dataset:
    """One snapshot of incompressible rows (16 KB of random bytes each) in fragments of
    about ``fragment_mb`` MB."""
    row_bytes = 16_000
    n = total_mb * MB // row_bytes
    payload = os.urandom(n * row_bytes)
    offsets = array("i", range(0, (n + 1) * row_bytes, row_bytes))
    blobs = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(payload)]
    )
    table = pa.table({"id": pa.array(range(n), pa.int64()), "payload": blobs})
    return lv.create_dataset(
        uri,
        table,
        max_rows_per_fragment=fragment_mb * MB // row_bytes,
        storage_options={"fsync": False},
    )


def sha256_file(path: str) -> str:
    """What verify does per fragment: read in 4 MiB chunks, hash."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def verify_throughput(s: Sizes, work: str) -> tuple[list[Result], dict[str, Any]]:
    uri = os.path.join(work, "verify")
    log(f"verify: {s.verify_mb} MB in fragments of {s.verify_fragment_mb} MB")
    t0 = time.perf_counter()
    ds = build_verify(uri, s.verify_mb, s.verify_fragment_mb)
    build_s = time.perf_counter() - t0
    frags = ds.fragments()
    paths = [os.path.join(uri, f.path) for f in frags]
    frag_bytes = sum(f.size_bytes for f in frags)
    threads = min(4, os.cpu_count() or 1)  # what verify uses on local disk
    got: dict[str, Any] = {}

    def verify() -> None:
        got["report"] = ds.verify(full=False)

    def sequential() -> None:
        got["seq"] = [sha256_file(p) for p in paths]

    def pooled() -> None:
        with ThreadPoolExecutor(threads) as pool:
            got["pool"] = list(pool.map(sha256_file, paths))

    runs = compare({"verify": verify, "seq": sequential, "pool": pooled}, repeat=s.verify_repeat)
    report = got["report"]
    if not report.ok:
        raise AssertionError(f"verify found problems: {report.problems[:3]}")
    if [f"sha256:{h}" for h in got["seq"]] != [f.content_hash for f in frags]:
        raise AssertionError("raw hashes differ from the recorded ones")
    mbps = {k: report.bytes / MB / median(v) for k, v in runs.items() if k == "verify"}
    mbps |= {k: frag_bytes / MB / median(v) for k, v in runs.items() if k != "verify"}
    what = f"{len(frags)} fragments, {frag_bytes / MB:,.0f} MB"
    results = [
        Result(
            "verify",
            f"verify(full=False), {what}",
            "MB/s",
            mbps["verify"],
            mbps["seq"],
            "read+sha256, 1 thread",
            better="higher",
            notes=f"median of {s.verify_repeat}, page cache warm",
        ),
        Result(
            "verify",
            f"verify(full=False), {what}",
            "MB/s",
            mbps["verify"],
            mbps["pool"],
            f"read+sha256, {threads} threads",
            better="higher",
        ),
    ]
    info = {
        "fragments": len(frags),
        "fragment_bytes": frag_bytes,
        "verify_bytes_read": report.bytes,
        "verify_files_read": report.files,
        "threads": threads,
        "build_s": round(build_s, 1),
        "runs_s": {k: [round(x, 4) for x in v] for k, v in runs.items()},
    }
    return results, info


# ----------------------------------------------------------------------------- main


def _versions() -> dict[str, str]:
    out = {
        "python": platform.python_version(),
        "lakever": lv.__version__,
        "pyarrow": pa.__version__,
    }
    for name in ("obstore", "moto"):
        with contextlib.suppress(ImportError):
            out[name] = __import__(name).__version__
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    p.add_argument("--no-s3", action="store_true", help="skip the S3 part")
    p.add_argument(
        "--only",
        action="append",
        choices=("local", "s3", "verify"),
        help="run only this part (repeatable)",
    )
    p.add_argument("--profile", action="store_true", help="print cProfile tops of vacuum")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally clauses
    s3 = not args.no_s3
    if s3:
        try:
            import moto  # noqa: F401
            import obstore  # noqa: F401
        except ImportError as exc:
            log(f"no S3 part: {exc}")
            s3 = False
    for k, v in CREDS.items():
        os.environ[k] = v  # test credentials for the local server, this process only

    started = datetime.now(UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = tempfile.mkdtemp(prefix="lakever-maintenance-", dir=args.workdir)
    t0 = time.perf_counter()
    results: list[Result] = []
    rows: list[Row] = []
    info: dict[str, Any] = {}
    profiles: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    parts: list[tuple[str, Callable[[], None]]] = []

    def part_local() -> None:
        r, i, prof = local_vacuum(sizes, work, profile=args.profile)
        results.extend(r)
        info["local"] = i
        profiles.update(prof)

    def part_s3() -> None:
        r, rs, i, prof = s3_vacuum(sizes, work, profile=args.profile)
        results.extend(r)
        rows.extend(rs)
        info["s3"] = i
        profiles.update(prof)

    def part_verify() -> None:
        r, i = verify_throughput(sizes, work)
        results.extend(r)
        info["verify"] = i

    only = set(args.only or ("local", "s3", "verify"))
    if "local" in only:
        parts.append(("local vacuum", part_local))
    if s3 and "s3" in only:
        parts.append(("s3 vacuum", part_s3))
    if "verify" in only:
        parts.append(("verify", part_verify))
    try:
        for name, part in parts:
            t = time.perf_counter()
            try:
                part()
            except Exception:
                errors.append({"workload": name, "error": traceback.format_exc(limit=8)})
                log(f"{name} failed:\n{errors[-1]['error']}")
            log(f"{name}: {time.perf_counter() - t:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t0

    src = os.path.dirname(os.path.abspath(lv.__file__))
    payload = {
        "meta": {
            **run_meta(
                quick=args.quick,
                started=started,
                elapsed=elapsed,
                load_before=load_before,
                versions=_versions(),
            ),
            "lakever_path": src,
            "lakever_git": git_state(os.path.dirname(src)),
            "sizes": asdict(sizes),
            "grace_s": GRACE.total_seconds(),
            "info": info,
            "ratio": "lakever / baseline measured in the same run",
            "profiles": profiles,
        },
        "requests": [r.to_json() for r in rows],
        "results": [r.to_json() for r in results],
        "errors": errors,
    }
    for name, text in profiles.items():
        print(f"--- cProfile: {name}\n{text}")
    if rows:
        print(request_table([r.to_json() for r in rows]))
        print()
    print(format_table(results))
    print(f"\n{len(results)} results, {len(errors)} errors, {elapsed:.0f} s")
    for e in errors:
        print(f"ERROR in {e['workload']}: {e['error']}", file=sys.stderr)
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
