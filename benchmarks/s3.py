"""Object storage (S3): requests per operation and wall time, against a local S3 server.

Usage::

    python benchmarks/s3.py             # full run: 1,000 commits, 200 fragments (~10 minutes)
    python benchmarks/s3.py --quick     # small sizes, under a minute (a smoke test)
    python benchmarks/s3.py --markdown benchmarks/results/s3.json   # the tables as Markdown

A moto S3 server runs on 127.0.0.1 (``python -m moto.server`` in a subprocess by
default, so the server does not share the GIL with the client; ``--server thread``
uses the in-process server of tests/_s3.py). Every measured request goes through
the `Proxy` of tests/_s3.py, which adds a fixed latency per request (0 ms, and
20 ms standing in for a real S3 round trip) and counts requests by method. Data
is written on local disk and copied to the server without the proxy (unmeasured).

Operations, each at every latency:

1. open the latest version after N commits (full 1,000, quick 20): cold (in-process
   caches cleared as in a new process, empty local cache dir) and warm (the same
   process again); also open + ``fragments()`` (reads the manifests);
2. open version 10, cold;
3. commit a small append through the Dataset the last commit returned;
4. ``to_arrow()`` of a 200-fragment snapshot with an empty local cache dir, against a
   floor: the same files fetched with 16 concurrent ``obstore.get`` and decoded
   with pyarrow (no verification, file list given);
5. a second scan of that snapshot in a "new process" (in-process caches cleared,
   local cache dir kept): it must make no data request;
6. ``ds.sql("SELECT count(*), sum(value) FROM self")`` cold and warm, against DuckDB
   reading the same files through ``register_filesystem(obstore FsspecStore)``;
7. push of 1 new commit from a local dataset to a remote holding N commits (and, for
   scale, the initial push of the whole history);
8. delta-rs on the same server and proxy: open latest after N commits, open
   version 10, append, scan of a table with the same number of files (written
   as one append per file, so its log has that many commits and a checkpoint).

Requests are the numbers that matter on real S3 (each one is a round trip, and is
billed); wall times on a shared 2-core machine move by 25% or more between runs.
Times are medians of ``--repeat`` runs; request counts are the per-method medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from _harness import (
    Result,
    format_table,
    git_state,
    make_table,
    markdown_table,
    run_meta,
    source_digest,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
# Benchmark the checkout this script belongs to; tests/_s3.py has the server and proxy.
sys.path.insert(0, str(ROOT))

import lakever as lv  # noqa: E402
from tests._s3 import Proxy, make_bucket  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "s3.json"
METHODS = ("GET", "PUT", "HEAD", "LIST", "DELETE", "POST")
CREDS = {
    "AWS_ACCESS_KEY_ID": "lakever-test-key",
    "AWS_SECRET_ACCESS_KEY": "lakever-test-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SQL = "SELECT count(*), sum(value) FROM {src}"


@dataclass(frozen=True, slots=True)
class Sizes:
    commits: int  # history length for open / commit / push
    old_version: int
    fragments: int  # files in the scanned snapshot
    fragment_rows: int
    repeat: int
    latencies_ms: tuple[int, ...] = (0, 20)


FULL = Sizes(commits=1_000, old_version=10, fragments=200, fragment_rows=5_000, repeat=5)
QUICK = Sizes(commits=20, old_version=10, fragments=30, fragment_rows=500, repeat=1)


def log(msg: str) -> None:
    print(f"[s3 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(endpoint: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"moto server exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server at {endpoint} did not answer within 60 s")


@contextlib.contextmanager
def moto_server(kind: str) -> Any:
    """Yield the endpoint of a moto S3 server on 127.0.0.1 (subprocess or thread)."""
    if kind == "thread":
        from tests._s3 import start_server

        server, endpoint = start_server()
        try:
            yield endpoint
        finally:
            server.stop()
        return
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(endpoint, proc)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- proxy


# ----------------------------------------------------------------------------- counting


def classify(entries: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Requests by kind: GET/PUT/HEAD/LIST (GET with list-type)/DELETE/POST, and data GETs."""
    out = dict.fromkeys((*METHODS, "data_GET"), 0)
    for method, path in entries:
        kind = "LIST" if method == "GET" and "list-type" in path else method
        out[kind] = out.get(kind, 0) + 1
        key = path.split("?", 1)[0]
        if (
            kind == "GET"
            and key.endswith(".parquet")
            and "/_lakever/" not in key
            and "/_delta_log/" not in key
        ):
            out["data_GET"] += 1
    return out


def fresh_process_caches() -> None:
    """Forget what this process verified or cached in memory (as a new process would).

    The same three caches tests/test_object_storage.py clears.
    """
    from lakever import integrity, manifests
    from lakever import log as lvlog

    integrity.forget()
    manifests._CACHE.clear()
    lvlog._DECODED.clear()


@dataclass(slots=True)
class Row:
    """One operation at one latency by one system: requests and times of every run."""

    op: str
    system: str
    latency_ms: int
    seconds: list[float] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)
    note: str = ""
    error: str | None = None

    @property
    def ms(self) -> float | None:
        return statistics.median(self.seconds) * 1000 if self.seconds else None

    @property
    def requests(self) -> dict[str, int]:
        """Per-kind median over runs (counts are nearly always identical run to run)."""
        if not self.counts:
            return {}
        keys = self.counts[0].keys()
        return {k: round(statistics.median(c.get(k, 0) for c in self.counts)) for k in keys}

    @property
    def total(self) -> int | None:
        r = self.requests
        return sum(r[m] for m in METHODS) if r else None

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "system": self.system,
            "latency_ms": self.latency_ms,
            "requests_total": self.total,
            "requests": self.requests,
            "ms": None if self.ms is None else round(self.ms, 3),
            "runs_ms": [round(s * 1000, 3) for s in self.seconds],
            "runs_requests": self.counts,
            "note": self.note,
            "error": self.error,
        }


def _cell(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def request_table(rows: Sequence[dict[str, Any]], *, markdown: bool = False) -> str:
    """Render ``to_json`` rows: operation, system, latency, requests by method, ms."""
    header = ["operation", "system", "lat ms", "GET", "PUT", "HEAD", "LIST", "DEL", "total"]
    header += ["data GET", "wall ms"]
    body = []
    for r in rows:
        q = r["requests"] or {}
        cells = [r["op"], r["system"], str(r["latency_ms"])]
        cells += [str(q.get(m, "-")) for m in ("GET", "PUT", "HEAD", "LIST")]
        cells.append(str(q.get("DELETE", 0) + q.get("POST", 0)) if q else "-")
        cells += [str(r["requests_total"] if r["requests_total"] is not None else "-")]
        cells += [str(q.get("data_GET", "-")), _cell(r["ms"])]
        if r.get("error"):
            cells[-1] = "error"
        body.append(cells)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|---|---|" + "--:|" * (len(header) - 2)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(out)
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = []
    for j, row in enumerate([header, *body]):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- bench


class Bench:
    def __init__(self, sizes: Sizes, endpoint: str, work: str, *, delta: Any) -> None:
        self.s = sizes
        self.endpoint = endpoint
        self.work = work
        self.dl = delta
        self.rows: list[Row] = []
        self.results: list[Result] = []
        self.errors: list[dict[str, str]] = []
        self.notes: list[str] = []
        self.info: dict[str, Any] = {}
        self.proxy: Proxy | None = None
        self._dirs = 0
        self.bucket = make_bucket(endpoint)
        self.hist = f"{self.bucket}/history"
        self.scan = f"{self.bucket}/scan"
        self.remote = f"{self.bucket}/remote"
        self.delta_hist = f"{self.bucket}/delta-history"
        self.delta_scan = f"{self.bucket}/delta-scan"

    # -- helpers -----------------------------------------------------------------------

    def cache_dir(self) -> str:
        self._dirs += 1
        return os.path.join(self.work, f"cache-{self._dirs}")

    def direct(self) -> dict[str, Any]:
        return {"aws_endpoint": self.endpoint, "cache_dir": os.path.join(self.work, "writer")}

    def via(self, cache_dir: str | None = None) -> dict[str, Any]:
        assert self.proxy is not None
        return {"aws_endpoint": self.proxy.endpoint, "cache_dir": cache_dir or self.cache_dir()}

    def delta_options(self, endpoint: str) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": CREDS["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": CREDS["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": CREDS["AWS_REGION"],
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }

    def measure(
        self,
        op: str,
        system: str,
        fn: Callable[[], object],
        *,
        setup: Callable[[], object] | None = None,
        repeat: int | None = None,
        note: str = "",
    ) -> Row:
        """Run ``setup`` (untimed, uncounted) then ``fn`` (timed, requests counted)."""
        assert self.proxy is not None
        row = Row(op, system, round(self.proxy.latency * 1000), note=note)
        self.rows.append(row)
        try:
            for _ in range(repeat or self.s.repeat):
                if setup is not None:
                    setup()
                self.proxy.reset_counts()
                t0 = time.perf_counter()
                fn()
                row.seconds.append(time.perf_counter() - t0)
                row.counts.append(classify(list(self.proxy.log)))
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log(f"{op} / {system}: {row.error}")
            if system != "delta-rs":
                self.errors.append({"workload": op, "error": traceback.format_exc(limit=6)})
        return row

    # -- data ----------------------------------------------------------------------------

    def build(self) -> None:
        """The datasets, written on local disk and copied to the server (fast, unmeasured).

        lakever's history is pushed (`lakever.push` copies log entries byte for byte,
        then the hints: the same objects N appends on S3 would leave); the Delta
        tables are uploaded file by file (their log holds relative paths).
        """
        s = self.s
        small = [make_table(10, start_id=10 * i, seed=i) for i in range(s.commits)]
        big = make_table(s.fragments * s.fragment_rows, seed=7)
        log(f"building {s.commits} commits locally, copying them to the server (no proxy)")
        self.local = os.path.join(self.work, "local")
        t0 = time.perf_counter()
        ds = lv.create_dataset(self.local, small[0])
        for t in small[1:]:
            ds = ds.append(t)
        self.info["local_commits_per_s"] = round(s.commits / (time.perf_counter() - t0), 1)
        t0 = time.perf_counter()
        lv.push(self.local, self.hist, remote_options=self.direct())
        self.info["history_push_s_direct"] = round(time.perf_counter() - t0, 2)

        lv.create_dataset(
            self.scan, big, storage_options=self.direct(), max_rows_per_fragment=s.fragment_rows
        )
        scan = lv.open_dataset(self.scan, storage_options=self.direct())
        self.scan_paths = [f.path for f in scan.fragments()]
        self.scan_bytes = sum(f.size_bytes for f in scan.fragments())
        self.info["scan_fragments"] = len(self.scan_paths)
        self.info["scan_rows"] = big.num_rows
        self.info["scan_bytes"] = self.scan_bytes
        log(f"  scan snapshot: {len(self.scan_paths)} fragments, {self.scan_bytes:,} bytes")
        if self.dl is not None:
            self._build_delta(small, big)

    def upload(self, local_dir: str, prefix: str) -> int:
        """Copy every file under ``local_dir`` to ``<bucket>/<prefix>/`` (16 at a time)."""
        import obstore
        import obstore.store

        store = obstore.store.S3Store(
            self.bucket.removeprefix("s3://"),
            config={"aws_endpoint": self.endpoint},
            client_options={"allow_http": True},
        )
        files = [os.path.join(d, f) for d, _, names in os.walk(local_dir) for f in names]

        def one(path: str) -> None:
            rel = os.path.relpath(path, local_dir).replace(os.sep, "/")
            obstore.put(store, f"{prefix}/{rel}", Path(path).read_bytes())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, files))
        return len(files)

    def _build_delta(self, small: list[pa.Table], big: pa.Table) -> None:
        w = self.dl.write_deltalake
        hist = os.path.join(self.work, "delta-history")
        scan = os.path.join(self.work, "delta-scan")
        try:
            t0 = time.perf_counter()
            w(hist, small[0])
            for t in small[1:]:
                w(hist, t, mode="append")
            self.info["delta_local_commits_per_s"] = round(
                len(small) / (time.perf_counter() - t0), 1
            )
            # One file per fragment (one append each: a single write sizes files itself).
            rows = self.s.fragment_rows
            for i in range(self.s.fragments):
                w(scan, big.slice(i * rows, rows), mode="append")
            self.upload(hist, self.delta_hist.split("/", 3)[3])
            self.upload(scan, self.delta_scan.split("/", 3)[3])
            opts = self.delta_options(self.endpoint)
            table = self.dl.DeltaTable(self.delta_hist, storage_options=opts)
            if table.version() != len(small) - 1:
                raise RuntimeError(f"uploaded Delta table is at version {table.version()}")
            files = self.dl.DeltaTable(self.delta_scan, storage_options=opts).file_uris()
            self.info["delta_scan_files"] = len(files)
            # One commit on the server itself: appends work against moto.
            w(self.delta_hist, small[0], mode="append", storage_options=opts)
        except Exception as exc:
            msg = f"delta-rs does not run against the moto server: {type(exc).__name__}: {exc}"
            self.notes.append(msg[:500])
            log(msg)
            self.dl = None

    # -- operations ----------------------------------------------------------------------

    def opens(self) -> None:
        uri, n = self.hist, self.s.commits
        cold = {"dir": ""}

        def reset() -> None:
            fresh_process_caches()
            cold["dir"] = self.cache_dir()

        def open_latest() -> lv.Dataset:
            return lv.open_dataset(uri, storage_options=self.via(cold["dir"]))

        self.measure(f"1 open latest, {n} commits, cold", "lakever", open_latest, setup=reset)
        open_latest()
        self.measure(f"1 open latest, {n} commits, warm", "lakever", open_latest)
        self.measure(
            f"1 open latest + fragments(), {n} commits, cold",
            "lakever",
            lambda: open_latest().fragments(),
            setup=reset,
        )
        v = self.s.old_version
        self.measure(
            f"2 open version {v}, {n} commits, cold",
            "lakever",
            lambda: lv.open_dataset(uri, version=v, storage_options=self.via(cold["dir"])),
            setup=reset,
        )
        if self.dl is not None:
            opts = self.delta_options(self.proxy_endpoint)
            dt = self.dl.DeltaTable
            self.measure(
                f"1 open latest, {n} commits, cold",
                "delta-rs",
                lambda: dt(self.delta_hist, storage_options=opts),
            )
            self.measure(
                f"1 open latest + fragments(), {n} commits, cold",
                "delta-rs",
                lambda: dt(self.delta_hist, storage_options=opts).file_uris(),
            )
            self.measure(
                f"2 open version {v}, {n} commits, cold",
                "delta-rs",
                lambda: dt(self.delta_hist, version=v, storage_options=opts),
            )

    def commits(self) -> None:
        state: dict[str, Any] = {"ds": lv.open_dataset(self.hist, storage_options=self.via())}
        counter = {"i": 0}

        def append() -> None:
            counter["i"] += 1
            t = make_table(10, start_id=10_000_000 + 10 * counter["i"], seed=counter["i"])
            state["ds"] = state["ds"].append(t)

        self.measure("3 commit a 10-row append", "lakever", append)
        if self.dl is not None:
            opts = self.delta_options(self.proxy_endpoint)
            table = self.dl.DeltaTable(self.delta_hist, storage_options=opts)
            small = make_table(10, start_id=20_000_000)

            def delta_append() -> None:
                self.dl.write_deltalake(table, small, mode="append", storage_options=opts)

            self.measure("3 commit a 10-row append", "delta-rs", delta_append)

    def scans(self) -> None:
        k = len(self.scan_paths)
        state: dict[str, Any] = {}

        def cold_open() -> None:
            fresh_process_caches()
            state["dir"] = self.cache_dir()
            state["ds"] = lv.open_dataset(self.scan, storage_options=self.via(state["dir"]))

        def scan() -> None:
            state["rows"] = state["ds"].to_arrow().num_rows

        lake = self.measure(
            f"4 scan to_arrow(), {k} fragments, cold cache dir", "lakever", scan, setup=cold_open
        )

        def new_process() -> None:
            fresh_process_caches()  # keep state["dir"]: only the disk cache remains
            state["ds"] = lv.open_dataset(self.scan, storage_options=self.via(state["dir"]))

        self.measure(
            f"5 second scan, {k} fragments, new process, warm cache dir",
            "lakever",
            scan,
            setup=new_process,
        )
        self.measure(f"5 second scan, {k} fragments, same Dataset", "lakever", scan)

        import obstore
        import obstore.store

        bucket = self.bucket.removeprefix("s3://")
        keys = [f"scan/{p}" for p in self.scan_paths]

        def floor_store() -> None:
            assert self.proxy is not None
            state["store"] = obstore.store.S3Store(
                bucket,
                config={"aws_endpoint": self.proxy.endpoint},
                client_options={"allow_http": True},
            )

        def floor() -> None:
            store = state["store"]

            def one(key: str) -> pa.Table:
                data = obstore.get(store, key).bytes()
                return pq.read_table(pa.BufferReader(memoryview(data)))

            with ThreadPoolExecutor(16) as pool:
                state["rows"] = pa.concat_tables(pool.map(one, keys)).num_rows

        base = self.measure(
            f"4 scan to_arrow(), {k} fragments, cold cache dir",
            "floor: 16x obstore.get + pq",
            floor,
            setup=floor_store,
        )
        self._ratio("4 scan", f"to_arrow(), {k} fragments, cold", lake, base, "floor")
        if self.dl is not None:
            opts = self.delta_options(self.proxy_endpoint)
            self.measure(
                f"4 scan to_arrow(), {k} fragments, cold cache dir",
                "delta-rs",
                lambda: self.dl.DeltaTable(
                    self.delta_scan, storage_options=opts
                ).to_pyarrow_table(),
                note="DeltaTable(...).to_pyarrow_table(), open included",
            )

    def sql(self) -> None:
        k = len(self.scan_paths)
        q = SQL.format(src="self")
        state: dict[str, Any] = {}

        def cold_open() -> None:
            fresh_process_caches()
            state["ds"] = lv.open_dataset(self.scan, storage_options=self.via())

        def lake() -> None:
            state["out"] = state["ds"].sql(q).fetchall()

        cold = self.measure(
            f"6 sql count/sum, {k} fragments, cold", "lakever", lake, setup=cold_open
        )
        warm = self.measure(f"6 sql count/sum, {k} fragments, warm", "lakever", lake)

        from obstore.fsspec import FsspecStore

        assert self.proxy is not None
        paths = "[" + ", ".join(f"'{self.scan}/{p}'" for p in self.scan_paths) + "]"
        dq = SQL.format(src=f"read_parquet({paths})")

        def duck_connect() -> None:
            assert self.proxy is not None
            fs = FsspecStore(
                "s3",
                config={"aws_endpoint": self.proxy.endpoint},
                client_options={"allow_http": True},
            )
            con = duckdb.connect()
            con.register_filesystem(fs)
            state["con"] = con

        def duck() -> None:
            state["duck"] = state["con"].sql(dq).fetchall()

        system = "duckdb + fsspec (obstore)"
        dcold = self.measure(
            f"6 sql count/sum, {k} fragments, cold", system, duck, setup=duck_connect
        )
        dwarm = self.measure(f"6 sql count/sum, {k} fragments, warm", system, duck)
        out, dout = state.get("out"), state.get("duck")
        if out and dout and (out[0][0] != dout[0][0] or not math.isclose(out[0][1], dout[0][1])):
            self.notes.append(f"sql results differ: lakever {out} duckdb {dout}")
        self._ratio("6 sql", f"count/sum, {k} fragments, cold", cold, dcold, "duckdb+fsspec")
        self._ratio("6 sql", f"count/sum, {k} fragments, warm", warm, dwarm, "duckdb+fsspec")

    def pushes(self) -> None:
        n = self.s.commits
        lat = round(self.proxy.latency * 1000) if self.proxy else 0
        remote = f"{self.remote}-{lat}"
        local = os.path.join(self.work, f"local-{lat}")
        shutil.copytree(self.local, local)  # the N-commit history, untouched by other runs
        state: dict[str, Any] = {"i": 0, "result": None, "ds": lv.open_dataset(local)}

        def first() -> None:
            state["result"] = lv.push(local, remote, remote_options=self.via())

        self.measure(f"7 initial push of {n} commits", "lakever", first, repeat=1)

        def commit() -> None:
            state["i"] += 1
            t = make_table(10, start_id=30_000_000 + 10 * state["i"])
            state["ds"] = state["ds"].append(t)

        def push() -> None:
            state["result"] = lv.push(local, remote, remote_options=self.via())

        row = self.measure(
            f"7 push 1 new commit to a remote with {n}", "lakever", push, setup=commit
        )
        if state["result"] is not None:
            r = state["result"]
            row.note = f"objects copied {r.objects_copied}, skipped {r.objects_skipped}"

    # -- results -------------------------------------------------------------------------

    def _ratio(self, workload: str, metric: str, lake: Row, base: Row, name: str) -> None:
        lat = lake.latency_ms
        self.results.append(
            Result(
                workload=workload,
                metric=f"{metric}, wall, {lat} ms latency",
                unit="ms",
                lakever=lake.ms,
                baseline=base.ms,
                baseline_name=name,
            )
        )
        self.results.append(
            Result(
                workload=workload,
                metric=f"{metric}, requests, {lat} ms latency",
                unit="count",
                lakever=lake.total,
                baseline=base.total,
                baseline_name=name,
            )
        )

    def run(self) -> None:
        self.build()
        for lat in self.s.latencies_ms:
            self.proxy = Proxy(self.endpoint, latency=lat / 1000)
            self.proxy_endpoint = self.proxy.endpoint
            log(f"latency {lat} ms")
            try:
                for step in (self.opens, self.commits, self.scans, self.sql, self.pushes):
                    try:
                        step()
                    except Exception:
                        self.errors.append(
                            {"workload": step.__name__, "error": traceback.format_exc(limit=6)}
                        )
                        log(f"{step.__name__} failed:\n{self.errors[-1]['error']}")
            finally:
                self.proxy.stop()
        self.rows.sort(key=lambda r: (r.op.split(" ", 1)[0], r.latency_ms))


# ----------------------------------------------------------------------------- main


def _versions(delta: Any) -> dict[str, str]:
    import moto
    import obstore

    out = {
        "python": platform.python_version(),
        "lakever": lv.__version__,
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
        "obstore": obstore.__version__,
        "moto": moto.__version__,
    }
    if delta is not None:
        out["deltalake"] = delta.__version__
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes (finishes in < 60 s)")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON output path")
    p.add_argument(
        "--server",
        choices=("subprocess", "thread"),
        default="subprocess",
        help="moto in a subprocess (default) or a thread of this process",
    )
    p.add_argument("--repeat", type=int, default=None, help="runs per measurement")
    p.add_argument("--commits", type=int, default=None, help="history length (default 1,000)")
    p.add_argument("--no-delta", action="store_true", help="skip delta-rs")
    p.add_argument("--workdir", default=None, help="parent of the temp dir (caches, local data)")
    p.add_argument(
        "--markdown",
        metavar="JSON",
        default=None,
        help="print the tables of an earlier run (a JSON report) as Markdown and exit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown is not None:
        with open(args.markdown, encoding="utf-8") as f:
            report = json.load(f)
        print(request_table(report["requests"], markdown=True))
        print()
        print(markdown_table(report["results"]))
        return 0
    sizes = QUICK if args.quick else FULL
    if args.repeat:
        sizes = Sizes(**{**asdict(sizes), "repeat": args.repeat})
    if args.commits:
        sizes = Sizes(**{**asdict(sizes), "commits": args.commits})
    # A SIGTERM ends the run through the `finally`s: the server subprocess is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for k, v in CREDS.items():
        os.environ[k] = v  # test credentials for the local server, this process only
    delta = None
    if not args.no_delta:
        try:
            import deltalake

            delta = deltalake
        except ImportError:
            log("deltalake not importable: no delta-rs rows")

    src_dir = os.path.dirname(os.path.abspath(lv.__file__))
    digest = source_digest(src_dir)
    work = tempfile.mkdtemp(prefix="lakever-s3-bench-", dir=args.workdir)
    started = datetime.now(UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    bench: Bench | None = None
    try:
        with moto_server(args.server) as endpoint:
            log(f"moto server ({args.server}) at {endpoint}")
            bench = Bench(sizes, endpoint, work, delta=delta)
            bench.run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    assert bench is not None
    rows = [r.to_json() for r in bench.rows]
    payload: dict[str, Any] = {
        "meta": {
            **run_meta(
                quick=args.quick,
                started=started,
                elapsed=elapsed,
                load_before=load_before,
                versions=_versions(delta),
            ),
            "server": args.server,
            "lakever_path": src_dir,
            "lakever_git": git_state(os.path.dirname(src_dir)),
            "lakever_source_sha256": digest,
            "lakever_source_changed_during_run": source_digest(src_dir) != digest,
            "sizes": asdict(sizes),
            "info": bench.info,
            "notes": bench.notes,
            "requests": "per-method median over runs; LIST = GET with list-type; "
            "data_GET = GETs of data files (.parquet outside _lakever/ and _delta_log/)",
        },
        "requests": rows,
        "results": [r.to_json() for r in bench.results],
        "errors": bench.errors,
    }
    print(request_table(rows))
    print()
    print(format_table(bench.results))
    for note in bench.notes:
        print(f"note: {note}")
    print(f"\n{len(rows)} rows, {len(bench.errors)} errors, {elapsed:.0f} s")
    for e in bench.errors:
        print(f"ERROR in {e['workload']}: {e['error']}", file=sys.stderr)
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
