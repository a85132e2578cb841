"""SQL, partitioning and data skipping: pruned reads against DuckDB reading every file.

Usage::

    python benchmarks/sql_pruning.py            # full run: 10M rows, 100k-fragment snapshot
    python benchmarks/sql_pruning.py --quick    # 1M rows, 10k-fragment snapshot, < 60 s
    python benchmarks/sql_pruning.py --output FILE   # default benchmarks/results/sql_pruning.json
    python benchmarks/sql_pruning.py --markdown benchmarks/results/sql_pruning.json

Workloads:

1. selective reads of a partitioned (``category``, 100 values) and clustered (``sort_by id``)
   dataset of 200 fragments: a 1% filter on the partition column and a 1% ``id BETWEEN``
   range, through ``lake.sql(...)`` and ``ds.to_arrow(filter=...)``, against DuckDB
   ``read_parquet`` over *all* the dataset's files with the same WHERE (target >= 5x faster),
   with ``ds.explain`` counts; the same range on a copy whose categories do not follow ``id``.
2. full scan: ``lake.sql("SELECT count(*), sum(value) ...")`` and ``ds.to_arrow()`` against
   DuckDB on the same files (target ratio <= 1.10).
3. planning on a snapshot of 100,000 fragments (hard links to real fragments, committed
   through lakever's manifest and log modules): ``open_dataset`` + ``explain``, and building
   the ``lake.sql`` relation (not executing it), warm and in a fresh process.

Every number is a median of interleaved repetitions; ratios are ``lakever / baseline`` against
baselines measured in the same run. Targets are reported, never asserted: the exit status is
1 only if a workload raised (for example lakever and DuckDB disagreed on a result).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from _harness import (
    Result,
    Target,
    compare,
    fanout_manifests,
    git_state,
    linked_entry,
    median,
    source_digest,
    write_json,
)

try:
    import lakever as lv
except ImportError:  # a checkout without an install: use the package next to benchmarks/
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import lakever as lv

# Internal API, used only to build the large synthetic snapshot of workload 3 and to empty
# the process-wide cache of parsed manifests between repetitions.
from lakever import manifests as lv_manifests
from lakever.commit import Change, NoConcurrentCommit, SetManifests
from lakever.format import MAIN_BRANCH, FragmentEntry, Summary
from lakever.log import Line
from lakever.manifest_list import ManifestFiles
from lakever.storage import open_storage

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "sql_pruning.json")

W1, W2, W3 = "1 selective", "2 full scan", "3 planning"
CATEGORIES = 100
TS_BASE_US = 1_790_000_000_000_000  # 2026-09-21 UTC, in microseconds since the epoch
FASTER_5X = Target("ratio", "<=", 0.2)  # lakever at least 5x faster than the baseline
AT_PAR = Target("ratio", "<=", 1.10)
AGG = "count(*), sum(value)"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Everything that differs between the quick and the full run."""

    rows: int
    rows_per_fragment: int
    repeat: int
    plan_fragments: int
    plan_repeat: int
    cold_repeat: int


FULL = Sizes(
    rows=10_000_000,
    rows_per_fragment=50_000,
    repeat=9,
    plan_fragments=100_000,
    plan_repeat=3,
    cold_repeat=3,
)
QUICK = Sizes(
    rows=1_000_000,
    rows_per_fragment=5_000,
    repeat=5,
    plan_fragments=10_000,
    plan_repeat=3,
    cold_repeat=1,
)


def log(msg: str) -> None:
    print(f"[sql_pruning {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def read_all(paths: Sequence[str], *, hive: bool) -> str:
    """``read_parquet`` over ``paths``; ``hive=False`` turns off DuckDB's path-based pruning."""
    option = "" if hive else ", hive_partitioning = false"
    return f"read_parquet({sql_list(paths)}{option})"


def clear_manifest_cache() -> None:
    """Forget lakever's in-process parsed manifests (a new process has none)."""
    cache = getattr(lv_manifests, "_CACHE", None)
    if cache is not None:
        cache.clear()


def same_result(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    (ca, sa), (cb, sb) = a[0], b[0]
    if ca != cb:
        return False
    if sa is None or sb is None:
        return sa is sb
    return math.isclose(sa, sb, rel_tol=1e-9, abs_tol=1e-6)


# ----------------------------------------------------------------------------- data


def make_events(n: int, *, clustered: bool, seed: int = 0) -> pa.Table:
    """``n`` rows of (id int64, category string, ts timestamp[us, UTC], value float64).

    Ids are 0..n-1 and arrive shuffled (``sort_by=["id"]`` clusters them). With
    ``clustered``, each of the 100 categories owns one contiguous block of 1% of the ids
    (as when data is loaded tenant by tenant, or a partition key follows time), so both a
    category and a 1% id range select 1% of the rows *and* of the fragments. Otherwise
    categories are drawn independently of ids.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    if clustered:
        codes = rng.permutation(CATEGORIES)[ids * CATEGORIES // n]
    else:
        codes = rng.integers(0, CATEGORIES, n)
    order = rng.permutation(n)
    ids, codes = ids[order], codes[order]
    names = pa.array([f"c{i:03d}" for i in range(CATEGORIES)], pa.string())
    return pa.table(
        {
            "id": pa.array(ids),
            "category": names.take(pa.array(codes)),
            "ts": pa.array(TS_BASE_US + ids * 1000, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.random(n)),
        }
    )


# ----------------------------------------------------------------------------- workers

#: Body of a fresh process for the cold rows of workload 3 (run with ``python -c``).
COLD_WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
import duckdb, sqlglot, sqlglot.dialects.duckdb, pyarrow.dataset
import lakever as lv
imports = time.perf_counter() - t0
kind, root, name, arg = sys.argv[1:5]
t0 = time.perf_counter()
if kind == "explain":
    ds = lv.open_dataset(root + "/" + name)
    t1 = time.perf_counter()
    out = ds.explain(arg).fragments_after_stats_pruning
else:
    lake = lv.connect(root)
    t1 = time.perf_counter()
    lake.sql(arg)
    out = None
t2 = time.perf_counter()
print(json.dumps({"imports_s": imports, "s": t2 - t0, "first_s": t1 - t0, "out": out}))
"""


def cold_run(kind: str, root: str, name: str, arg: str) -> dict[str, Any]:
    """Run one cold measurement in a new interpreter (imports are done before the clock)."""
    env = dict(os.environ)
    lakever_parent = os.path.dirname(os.path.dirname(os.path.abspath(lv.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [lakever_parent, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", COLD_WORKER, kind, root, name, arg],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cold {kind} worker failed:\n{proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


# ----------------------------------------------------------------------------- bench


class Bench:
    def __init__(self, sizes: Sizes, workdir: str) -> None:
        self.s = sizes
        self.root = os.path.join(workdir, "lake")
        self.results: list[Result] = []
        self.errors: list[dict[str, str]] = []
        self.info: dict[str, Any] = {}

    def add(self, r: Result) -> None:
        self.results.append(r)

    def run(self) -> None:
        for name, fn in (
            ("create datasets", self.create),
            (W1, self.selective),
            (W2, self.full_scan),
            (W3, self.planning),
        ):
            log(f"{name} ...")
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as exc:
                log(f"{name} FAILED: {exc!r}")
                self.errors.append({"workload": name, "error": traceback.format_exc()})
                if name == "create datasets":
                    return
            log(f"{name} done in {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------------ datasets

    def create(self) -> None:
        s = self.s
        lake = lv.connect(self.root)
        for name, clustered in (("events", True), ("events_random", False)):
            table = make_events(s.rows, clustered=clustered)
            t0 = time.perf_counter()
            ds = lake.create_dataset(
                name,
                table,
                partition_by=["category"],
                sort_by=["id"],
                max_rows_per_fragment=s.rows_per_fragment,
            )
            took = time.perf_counter() - t0
            del table
            frags = ds.fragments()
            if ds.num_rows != s.rows or sum(f.num_rows for f in frags) != s.rows:
                raise AssertionError(f"{name}: {ds.num_rows} rows, expected {s.rows}")
            self.info[name] = {
                "rows": ds.num_rows,
                "fragments": len(frags),
                "bytes": sum(f.size_bytes for f in frags),
                "create_s": round(took, 2),
            }
            log(f"{name}: {len(frags)} fragments, {took:.1f} s to create")

    def _paths(self, ds: lv.Dataset) -> list[str]:
        return [f.uri for f in ds.fragments()]

    # ------------------------------------------------------------------ workload 1

    def selective(self) -> None:
        s = self.s
        lake = lv.connect(self.root)
        ds = lake.open("events")
        files = self._paths(ds)
        con = duckdb.connect()
        a = int(s.rows * 0.4237)
        b = a + s.rows // 100 - 1
        label = f"{short(s.rows)} rows, {len(files)} fragments"

        def in_range(f: lv.Fragment) -> bool:
            st = f.stats["id"]
            return bool(st["min"] <= b and st["max"] >= a)

        def in_category(f: lv.Fragment) -> bool:
            st = f.stats["category"]
            return bool(st["min"] <= "c042" <= st["max"])

        cases = [
            ("partition filter", "category = 'c042'", in_category),
            ("clustered range", f"id BETWEEN {a} AND {b}", in_range),
        ]
        for what, filt, may_match in cases:
            kept = [f.uri for f in ds.fragments() if may_match(f)]
            self._selective_case(
                lake, ds, con, files, kept, "events", what, filt, label, to_arrow=True
            )
        rnd = lake.open("events_random")
        rnd_files = self._paths(rnd)
        self._selective_case(
            lake,
            rnd,
            con,
            rnd_files,
            [f.uri for f in rnd.fragments() if in_range(f)],
            "events_random",
            "range, categories independent of id",
            f"id BETWEEN {a} AND {b}",
            f"{short(s.rows)} rows, {len(rnd_files)} fragments",
            to_arrow=False,
        )
        con.close()

    def _selective_case(
        self,
        lake: lv.Lake,
        ds: lv.Dataset,
        con: duckdb.DuckDBPyConnection,
        files: list[str],
        kept: list[str],
        table: str,
        what: str,
        filt: str,
        label: str,
        *,
        to_arrow: bool,
    ) -> None:
        reps = self.s.repeat
        q_lake = f"SELECT {AGG} FROM {table} WHERE {filt}"
        q_all = f"SELECT {AGG} FROM {read_all(files, hive=False)} WHERE {filt}"
        q_hive = f"SELECT {AGG} FROM {read_all(files, hive=True)} WHERE {filt}"
        q_kept = f"SELECT {AGG} FROM {read_all(kept, hive=False)} WHERE {filt}"

        # Correctness first: every side must agree, or the timing means nothing.
        got, want, hive = (
            lake.sql(q_lake).fetchall(),
            con.sql(q_all).fetchall(),
            con.sql(q_hive).fetchall(),
        )
        if not (same_result(got, want) and same_result(hive, want)):
            raise AssertionError(f"{filt!r}: lakever {got}, duckdb {want}, duckdb hive {hive}")
        plan = ds.explain(filt)
        if len(kept) != plan.fragments_after_stats_pruning:
            raise AssertionError(f"{filt!r}: explain kept {plan}, fragment stats say {len(kept)}")
        extra = {"filter": filt, "explain": plan.to_dict(), "matching_rows": want[0][0]}
        w = f"{W1}: {what}"
        self.add(
            Result(
                w,
                "fragments after partition pruning (explain)",
                "count",
                float(plan.fragments_after_partition_pruning),
                float(plan.fragments_total),
                "all fragments",
                better="lower",
                notes=filt,
                extra=extra,
            )
        )
        self.add(
            Result(
                w,
                "fragments after stats pruning (explain)",
                "count",
                float(plan.fragments_after_stats_pruning),
                float(plan.fragments_total),
                "all fragments",
                better="lower",
                notes=f"{plan.rows_after_pruning:,} of {plan.rows_total:,} rows in them; "
                f"{want[0][0]:,} match",
            )
        )

        times = compare(
            {
                "lakever": lambda: lake.sql(q_lake).fetchall(),
                "all": lambda: con.sql(q_all).fetchall(),
                "hive": lambda: con.sql(q_hive).fetchall(),
                "kept": lambda: con.sql(q_kept).fetchall(),
            },
            repeat=reps,
        )
        note = f"median of {reps}, interleaved; Lake and connection reused; {filt}"
        self.add(
            Result(
                w,
                f"lake.sql count/sum, {label}",
                "s",
                median(times["lakever"]),
                median(times["all"]),
                "duckdb all files",
                FASTER_5X,
                notes=note,
                extra={"runs": times},
            )
        )
        self.add(
            Result(
                w,
                f"lake.sql count/sum vs DuckDB's hive pruning, {label}",
                "s",
                median(times["lakever"]),
                median(times["hive"]),
                "duckdb hive paths",
                notes="baseline: read_parquet with DuckDB's defaults, which detect the "
                "category=... directories and skip files by path; no target",
            )
        )
        self.add(
            Result(
                w,
                f"lake.sql count/sum vs DuckDB on the kept fragments only, {label}",
                "s",
                median(times["lakever"]),
                median(times["kept"]),
                f"duckdb {len(kept)} files",
                notes="the floor: DuckDB given exactly the fragments lakever keeps; the ratio "
                "is lakever's per-query overhead (parse, rewrite, open, bind); no target",
            )
        )

        if to_arrow:
            q_rows = f"SELECT * FROM {read_all(files, hive=False)} WHERE {filt}"
            q_rows_kept = f"SELECT * FROM {read_all(kept, hive=False)} WHERE {filt}"
            n = ds.to_arrow(filter=filt).num_rows
            if n != want[0][0]:
                raise AssertionError(f"to_arrow(filter={filt!r}) gave {n} rows, not {want[0][0]}")
            times = compare(
                {
                    "lakever": lambda: ds.to_arrow(filter=filt),
                    "all": lambda: con.sql(q_rows).to_arrow_table(),
                    "kept": lambda: con.sql(q_rows_kept).to_arrow_table(),
                },
                repeat=reps,
            )
            self.add(
                Result(
                    w,
                    f"to_arrow(filter=...), {label}",
                    "s",
                    median(times["lakever"]),
                    median(times["all"]),
                    "duckdb all files",
                    FASTER_5X,
                    notes=f"median of {reps}, interleaved; Dataset reused; baseline "
                    "SELECT * ... WHERE, .to_arrow_table()",
                    extra={"runs": times},
                )
            )
            self.add(
                Result(
                    w,
                    f"to_arrow(filter=...) vs DuckDB on the kept fragments only, {label}",
                    "s",
                    median(times["lakever"]),
                    median(times["kept"]),
                    f"duckdb {len(kept)} files",
                    notes=f"the floor: {want[0][0]:,} rows x 4 columns to Arrow from the kept "
                    "fragments; no target",
                )
            )

            # A fresh Lake: its DuckDB connection, the manifest read and the view are paid.
            def fresh_lake() -> None:
                lv.connect(self.root).sql(q_lake).fetchall()

            def fresh_duck() -> None:
                c = duckdb.connect()
                c.sql(q_all).fetchall()
                c.close()

            times = compare(
                {"lakever": fresh_lake, "all": fresh_duck},
                repeat=reps,
                setups={"lakever": clear_manifest_cache},
            )
            self.add(
                Result(
                    w,
                    f"first lake.sql on a fresh lv.connect(), {label}",
                    "s",
                    median(times["lakever"]),
                    median(times["all"]),
                    "duckdb connect+query",
                    notes="includes creating the DuckDB connection, reading the manifest "
                    "(cache emptied before each run) and the pruned view; no target",
                )
            )

    # ------------------------------------------------------------------ workload 2

    def full_scan(self) -> None:
        reps = self.s.repeat
        lake = lv.connect(self.root)
        ds = lake.open("events")
        files = self._paths(ds)
        con = duckdb.connect()
        label = f"{short(self.s.rows)} rows, {len(files)} fragments"
        q_lake = f"SELECT {AGG} FROM events"
        q_all = f"SELECT {AGG} FROM {read_all(files, hive=False)}"
        q_hive = f"SELECT {AGG} FROM {read_all(files, hive=True)}"
        got, want = lake.sql(q_lake).fetchall(), con.sql(q_all).fetchall()
        if not same_result(got, want) or want[0][0] != self.s.rows:
            raise AssertionError(f"full scan: lakever {got}, duckdb {want}")
        t = ds.to_arrow()
        if t.num_rows != self.s.rows:
            raise AssertionError(f"to_arrow() gave {t.num_rows} rows")
        del t

        times = compare(
            {
                "lakever": lambda: lake.sql(q_lake).fetchall(),
                "all": lambda: con.sql(q_all).fetchall(),
                "hive": lambda: con.sql(q_hive).fetchall(),
            },
            repeat=reps,
        )
        note = f"median of {reps}, interleaved; Lake/Dataset and connection reused"
        for key, name, tgt in (
            ("all", "duckdb read_parquet", AT_PAR),
            ("hive", "duckdb hive paths", None),
        ):
            self.add(
                Result(
                    W2,
                    f"lake.sql count/sum, {label}" + ("" if key == "all" else " (DuckDB defaults)"),
                    "s",
                    median(times["lakever"]),
                    median(times[key]),
                    name,
                    tgt,
                    notes=note,
                    extra={"runs": times} if key == "all" else {},
                )
            )

        rows_all = f"SELECT * FROM {read_all(files, hive=False)}"
        rows_hive = f"SELECT * FROM {read_all(files, hive=True)}"
        times = compare(
            {
                "lakever": ds.to_arrow,
                "all": lambda: con.sql(rows_all).to_arrow_table(),
                "hive": lambda: con.sql(rows_hive).to_arrow_table(),
                "relation": lambda: ds.to_duckdb().to_arrow_table(),
            },
            repeat=reps,
        )
        for key, name, tgt in (
            ("all", "duckdb read_parquet", AT_PAR),
            ("hive", "duckdb hive paths", None),
        ):
            self.add(
                Result(
                    W2,
                    f"to_arrow(), {label}" + ("" if key == "all" else " (DuckDB defaults)"),
                    "s",
                    median(times["lakever"]),
                    median(times[key]),
                    name,
                    tgt,
                    notes=note + "; baseline SELECT * ... .to_arrow_table()",
                    extra={"runs": times} if key == "all" else {},
                )
            )
        self.add(
            Result(
                W2,
                f"ds.to_duckdb().to_arrow_table(), {label}",
                "s",
                median(times["relation"]),
                median(times["all"]),
                "duckdb read_parquet",
                notes=note + "; lakever's own DuckDB relation of the snapshot, read to Arrow "
                "(to_arrow() itself reads through pyarrow.dataset); no target",
            )
        )
        con.close()

    # ------------------------------------------------------------------ workload 3

    def build_big(self, name: str) -> tuple[str, int]:
        """A snapshot of ``plan_fragments`` fragments, built without that many commits.

        One real dataset of 100 one-row fragments (one per category) is created through
        the library; every further fragment is a hard link to one of them under data/,
        with its own min/max for ``id`` (``i*10 .. i*10+9``: synthetic, the file holds
        one id), the real file's hash, size, partition and schema id. The entries are
        grouped into manifests the way 100-fragment appends merged at lakever's fan-out
        would leave them, and committed as one "append" through `Line.commit`.
        """
        n = self.s.plan_fragments
        uri = os.path.join(self.root, name)
        t = pa.table(
            {
                "id": pa.array(range(CATEGORIES), pa.int64()),
                "category": pa.array([f"c{i:03d}" for i in range(CATEGORIES)], pa.string()),
                "ts": pa.array(
                    [TS_BASE_US + i for i in range(CATEGORIES)], pa.timestamp("us", tz="UTC")
                ),
                "value": pa.array([float(i) for i in range(CATEGORIES)]),
            }
        )
        ds = lv.create_dataset(uri, t, partition_by=["category"], sort_by=["id"])
        id_field = ds.field_ids["id"]
        storage = open_storage(uri)
        log_ = Line(storage, MAIN_BRANCH)
        head = log_.head()
        assert head is not None
        base = [e for m in head.manifests for e in lv_manifests.read_manifest(storage, m)]
        if len(base) != CATEGORIES:
            raise AssertionError(f"expected {CATEGORIES} real fragments, got {len(base)}")

        entries: list[FragmentEntry] = list(base)
        entries += [
            linked_entry(storage, base[i % len(base)], i, id_field) for i in range(len(base), n)
        ]
        # 100-fragment appends, merged in runs of MANIFEST_FANOUT.
        refs = fanout_manifests(storage, entries, CATEGORIES)
        added = entries[len(base) :]
        change = Change(
            operation="append",
            author="benchmark",
            message=f"synthetic: {len(added)} hard-linked fragments",
            properties={},
            updates=(
                SetManifests(
                    tuple(refs),
                    Summary(
                        rows_added=sum(e.num_rows for e in added),
                        bytes_added=sum(e.size_bytes for e in added),
                        fragments_added=len(added),
                    ),
                ),
            ),
            requirements=(NoConcurrentCommit(),),
        )
        log_.commit(head, change, io=ManifestFiles(storage))
        clear_manifest_cache()
        check = lv.open_dataset(uri)
        if check.num_rows != n or len(check.fragments()) != n:
            raise AssertionError(
                f"synthetic snapshot: {check.num_rows} rows, {len(check.fragments())} fragments"
            )
        self.info[name] = {
            "fragments": n,
            "rows": check.num_rows,
            "manifests": [{"level": r.level, "fragments": r.fragments} for r in refs],
        }
        return uri, id_field

    def planning(self) -> None:
        s = self.s
        n = s.plan_fragments
        reps = s.plan_repeat
        name = "big"
        t0 = time.perf_counter()
        uri, _ = self.build_big(name)
        log(f"{short(n)}-fragment snapshot built in {time.perf_counter() - t0:.1f} s")
        lo = (n // 2) * 10
        rng = f"id BETWEEN {lo} AND {lo + (n // 100) * 10 - 1}"  # 1% of the fragments
        part = "category = 'c042'"
        label = f"{short(n)} fragments"
        w = W3
        ds0 = lv.open_dataset(uri)
        for f, expect in ((rng, n // 100), (part, n // CATEGORIES)):
            got = ds0.explain(f).fragments_after_stats_pruning
            if got != expect:
                raise AssertionError(f"explain({f!r}) kept {got} fragments, expected {expect}")

        # (a) open + explain: manifest read and pruning.
        holder: dict[str, lv.Dataset] = {}

        def open_explain(f: str) -> Callable[[], object]:
            def run() -> object:
                d = lv.open_dataset(uri)
                holder["ds"] = d
                return d.explain(f)

            return run

        times = compare(
            {
                "range": open_explain(rng),
                "partition": open_explain(part),
                "again": lambda: holder["ds"].explain(rng),
            },
            repeat=reps,
            setups={"range": clear_manifest_cache, "partition": clear_manifest_cache},
        )
        times_warm = compare({"warm": open_explain(rng)}, repeat=reps)
        note = f"median of {reps}; manifest cache emptied before each run"
        for key, metric, notes in (
            ("range", f"open_dataset + explain({rng!r})", note),
            ("partition", f"open_dataset + explain({part!r})", note),
            (
                "again",
                "explain(range) again on the same Dataset (pruning only)",
                f"median of {reps}; fragment list already loaded",
            ),
        ):
            self.add(
                Result(
                    w,
                    f"{metric}, {label}",
                    "ms",
                    ms(median(times[key])),
                    notes=notes,
                    extra={"runs_s": times[key]},
                )
            )
        self.add(
            Result(
                w,
                f"open_dataset + explain(range), warm manifest cache, {label}",
                "ms",
                ms(median(times_warm["warm"])),
                notes=f"median of {reps}; parsed manifests reused from the process cache",
            )
        )

        # (b) lake.sql relation creation (not executed).
        q_sel = f"SELECT {AGG} FROM {name} WHERE {rng}"
        q_full = f"SELECT {AGG} FROM {name}"
        frags = ds0.fragments()
        files = [f.uri for f in frags]
        hi = lo + (n // 100) * 10 - 1
        kept = [f.uri for f in frags if lo <= f.stats["id"]["min"] and f.stats["id"]["max"] <= hi]
        if len(kept) != n // 100:
            raise AssertionError(f"{len(kept)} fragments in {rng}, expected {n // 100}")
        lakes: dict[str, lv.Lake] = {}

        def fresh_lake() -> None:
            clear_manifest_cache()
            lake = lv.connect(self.root)
            lake.connection  # noqa: B018 - create the DuckDB connection untimed
            lakes["lake"] = lake

        con = duckdb.connect()
        duck_full = f"SELECT {AGG} FROM {read_all(files, hive=False)}"
        duck_sel = f"SELECT {AGG} FROM {read_all(kept, hive=False)} WHERE {rng}"
        times = compare(
            {
                "sel": lambda: lakes["lake"].sql(q_sel),
                "full": lambda: lakes["lake"].sql(q_full),
                "duck_full": lambda: con.sql(duck_full),
                "duck_sel": lambda: con.sql(duck_sel),
            },
            repeat=reps,
            setups={"sel": fresh_lake, "full": fresh_lake},
        )
        lake = lv.connect(self.root)
        lake.sql(q_sel)
        lake.sql(q_full)
        times_warm = compare(
            {"sel": lambda: lake.sql(q_sel), "full": lambda: lake.sql(q_full)}, repeat=reps
        )
        note = (
            f"median of {reps}; fresh lv.connect() (DuckDB connection created untimed), "
            "manifest cache emptied: open, manifest read, pruning, view, bind; not executed"
        )
        self.add(
            Result(
                w,
                f"lake.sql(selective) relation, first on a Lake, {label}",
                "ms",
                ms(median(times["sel"])),
                ms(median(times["duck_sel"])),
                f"duckdb bind, {len(kept)} files",
                notes=note + f"; {rng}; baseline: DuckDB binding the same query over the "
                "kept files only (what lakever hands it)",
            )
        )
        self.add(
            Result(
                w,
                f"lake.sql(full) relation, first on a Lake, {label}",
                "ms",
                ms(median(times["full"])),
                ms(median(times["duck_full"])),
                f"duckdb bind, {n} files",
                notes=note + "; baseline: DuckDB binding read_parquet over all files",
            )
        )
        for key in ("sel", "full"):
            self.add(
                Result(
                    w,
                    f"lake.sql({'selective' if key == 'sel' else 'full'}) relation, "
                    f"repeated on the same Lake, {label}",
                    "ms",
                    ms(median(times_warm[key])),
                    notes=f"median of {reps}; view already registered (Lake caches it per "
                    "snapshot and filter): listing, open, parse, bind",
                )
            )
        con.close()

        # Cold: a new process, first open; page cache warm, imports done before the clock.
        cold: dict[str, list[dict[str, Any]]] = {"explain": [], "sel": [], "full": []}
        for _ in range(s.cold_repeat):
            cold["explain"].append(cold_run("explain", self.root, name, rng))
            cold["sel"].append(cold_run("sql", self.root, name, q_sel))
            cold["full"].append(cold_run("sql", self.root, name, q_full))
        if any(r["out"] != n // 100 for r in cold["explain"]):
            raise AssertionError(f"cold explain kept {cold['explain']}")
        imports = median([r["imports_s"] for rs in cold.values() for r in rs])
        for key, metric in (
            ("explain", "open_dataset + explain(range)"),
            ("sel", "lv.connect + lake.sql(selective) relation"),
            ("full", "lv.connect + lake.sql(full) relation"),
        ):
            self.add(
                Result(
                    w,
                    f"cold: {metric}, new process, {label}",
                    "ms",
                    ms(median([r["s"] for r in cold[key]])),
                    notes=f"median of {s.cold_repeat} fresh interpreters (page cache warm); "
                    f"imports of duckdb, sqlglot, pyarrow.dataset and lakever done first "
                    f"({ms(imports):.0f} ms, not included)",
                    extra={"runs": cold[key]},
                )
            )
        if len(files) <= 20_000:
            count = lv.connect(self.root).sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            if count != n:
                raise AssertionError(f"count(*) over the synthetic snapshot: {count}, not {n}")


# ----------------------------------------------------------------------------- output


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None or math.isnan(x):
        return "-"
    if unit == "count":
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2g}"


def _speedup(r: dict[str, Any]) -> str:
    ratio = r.get("ratio")
    if not ratio or r.get("unit") not in ("s", "ms"):
        return ""
    return f"{1 / ratio:.1f}x" if ratio < 1 else f"1/{ratio:.2f}"


def _rows(results: Sequence[dict[str, Any]], ok: dict[Any, str]) -> list[list[str]]:
    out = []
    for r in results:
        unit = r.get("unit", "")
        base = _fmt(r.get("baseline"), unit)
        if r.get("baseline") is not None and r.get("baseline_name"):
            base = f"{base} ({r['baseline_name']})"
        out.append(
            [
                r["workload"],
                r["metric"],
                unit,
                _fmt(r.get("lakever"), unit),
                base,
                _fmt(r.get("ratio")),
                _speedup(r),
                r.get("target") or "",
                ok[r.get("meets_target")],
            ]
        )
    return out


HEADER = ["workload", "metric", "unit", "lakever", "baseline", "ratio", "faster", "target", "met"]


def format_table(results: Sequence[dict[str, Any]]) -> str:
    rows = [HEADER, *_rows(results, {True: "yes", False: "MISS", None: ""})]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.rjust(wd) if (i in (3, 5, 6) and j > 0) else c.ljust(wd)
            for i, (c, wd) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|---|---|---|--:|---|--:|--:|---|---|"]
    for row in _rows(results, {True: "yes", False: "**no**", None: ""}):
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(out)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _versions() -> dict[str, str]:
    import sqlglot

    return {
        "python": platform.python_version(),
        "lakever": lv.__version__,
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
        "sqlglot": sqlglot.__version__,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes (finishes in < 60 s)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    p.add_argument(
        "--markdown",
        metavar="JSON",
        default=None,
        help="print the results of an earlier run (a JSON report) as a Markdown table and exit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown is not None:
        with open(args.markdown, encoding="utf-8") as f:
            print(markdown_table(json.load(f)["results"]))
        return 0
    sizes = QUICK if args.quick else FULL
    src_dir = os.path.dirname(os.path.abspath(lv.__file__))
    digest_before = source_digest(src_dir)
    git_before = git_state(os.path.dirname(HERE))
    workdir = tempfile.mkdtemp(prefix="lakever-sqlprune-", dir=args.workdir)
    bench = Bench(sizes, workdir)
    started = datetime.now(UTC)
    load_before = _loadavg()
    t0 = time.perf_counter()
    try:
        bench.run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    load_after = _loadavg()
    digest_after = source_digest(src_dir)
    if digest_after != digest_before:
        log("WARNING: lakever's sources changed during the run; results may mix versions")
    results = [r.to_json() for r in bench.results]
    payload: dict[str, Any] = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "started_utc": started.isoformat(timespec="seconds"),
            "elapsed_s": round(elapsed, 1),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": load_after,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": _versions(),
            "lakever_path": src_dir,
            "repo_git": git_before,
            "lakever_source_sha256": digest_before,
            "lakever_source_changed_during_run": digest_after != digest_before,
            "sizes": asdict(sizes),
            "datasets": bench.info,
            "ratio": "lakever / baseline; a target 'ratio <= 0.2' means at least 5x faster",
        },
        "results": results,
        "errors": bench.errors,
    }
    print(format_table(results))
    misses = [r for r in results if r["meets_target"] is False]
    print(f"load average (1, 5, 15 min) before/after: {load_before} / {load_after}")
    print(
        f"\n{len(results)} results, {len(misses)} missed target, "
        f"{len(bench.errors)} errors, {elapsed:.0f} s"
    )
    for e in bench.errors:
        print(f"ERROR in {e['workload']}: {e['error']}", file=sys.stderr)
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
