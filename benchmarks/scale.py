"""Scale: open, plan and commit as the dataset grows to 1M fragments and 100k commits.

Usage::

    python benchmarks/scale.py            # 1k, 10k, 100k, 1M fragments (history: N / 10 commits)
    python benchmarks/scale.py --quick    # 1k and 10k fragments (a smoke test, < 60 s)
    python benchmarks/scale.py --output FILE   # default benchmarks/results/scale.json
    python benchmarks/scale.py --sizes 1000,10000 --history-budget 60

Each size is its own dataset of ``N`` one-row fragments (every one a hard link to one real
Parquet file, with its own synthetic min/max of ``id``: data bytes do not matter, planning
reads manifests only). Its history is built through lakever's internal log API, not through
``N / 10`` public appends: ``H`` commits of 10 fragments each, every one a real `Line.commit`
(log entry, level-0 manifest, merges at ``FANOUT``), on top of one commit of a *bulk*
snapshot holding the fragments the history does not add (written as the manifests that
10-fragment appends would have left, see ``_harness.fanout_manifests``). ``H = N / 10`` when
it fits the time budget (``--history-budget`` seconds per size, estimated from the rate of
the previous size); else as many commits as fit, and the table says how many.

Measured at each size (cold = a fresh interpreter, lakever and pyarrow imported before the
clock, page cache warm; warm = in this process, parsed manifests cached):

* ``open_dataset(uri)`` (latest) and ``explain(filter)`` right after it: the cold
  open + plan of a selective read (``id BETWEEN ...``, 1% of the fragments);
* ``explain`` again on the same Dataset (pruning only) and open + explain with the manifest
  cache warm;
* ``len(ds.fragments())`` after a cold open;
* opening an old version by number (the middle of the history), cold and warm;
* one more commit: ``ds.append`` of 1 row, cold (open + append) and warm.

Baselines from the same run: the physical floor of planning (``pq.read_table`` of every
manifest file of the snapshot, in a fresh interpreter) and ``os.stat`` of one file for an
open; plain ``pq.write_table`` of the same 1-row table for a commit. Growth against the
previous size is printed in a second table and stored in each result's ``extra``. At the
largest size the cold plan is profiled (cProfile) and the top functions are printed and
stored in the report. Targets (issue 13) are reported, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from _harness import (
    Result,
    Target,
    fanout_manifests,
    format_table,
    linked_entry,
    median,
    run_meta,
    write_json,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Benchmark the checkout this script belongs to.
sys.path.insert(0, ROOT)

import lakever as lv  # noqa: E402

# Internal API: only to build the synthetic metadata (manifests, log entries) cheaply.
from lakever import manifests as lv_manifests  # noqa: E402
from lakever.commit import (  # noqa: E402
    AddFragments,
    Change,
    ContractUnchanged,
    NoConcurrentCommit,
    SchemaUnchanged,
    SetManifests,
)
from lakever.format import MAIN_BRANCH, Summary, log_path  # noqa: E402
from lakever.log import Line  # noqa: E402
from lakever.manifest_list import ManifestFiles  # noqa: E402
from lakever.storage import open_storage  # noqa: E402

DEFAULT_OUTPUT = os.path.join(HERE, "results", "scale.json")
PER_COMMIT = 10  # fragments each history commit adds
WIDTH = 10  # ids per synthetic fragment (its min/max span)

# Issue 13's targets: open + plan of a filtered read, cold and with the manifests cached.
COLD_PLAN_TARGET = {
    100_000: Target("lakever", "<=", 300.0),
    1_000_000: Target("lakever", "<=", 3000.0),
}
WARM_PLAN_TARGET = {100_000: Target("lakever", "<=", 50.0)}


@dataclass(frozen=True, slots=True)
class Sizes:
    fragments: tuple[int, ...]
    history_budget_s: float  # seconds of history commits per size, at most
    repeat: int  # warm repetitions (median)
    cold_repeat: int  # fresh interpreters per cold measurement (1 at >= 1M)


FULL = Sizes(
    fragments=(1_000, 10_000, 100_000, 1_000_000), history_budget_s=300, repeat=5, cold_repeat=3
)
QUICK = Sizes(fragments=(1_000, 10_000), history_budget_s=60, repeat=3, cold_repeat=1)


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def id_filter(n: int) -> tuple[str, int]:
    """A selective filter keeping 1% of ``n`` fragments (at least one), and that count."""
    keep = max(1, n // 100)
    lo = (n // 2) * WIDTH
    return f"id BETWEEN {lo} AND {lo + keep * WIDTH - 1}", keep


def one_row(i: int) -> pa.Table:
    """The row a measured commit appends: a negative id, outside every filter's range."""
    return pa.table({"id": pa.array([-1 - i], pa.int64()), "value": [float(i)]})


def clear_caches() -> None:
    """Forget parsed manifests and decoded log entries, as a new process would."""
    from lakever import integrity
    from lakever import log as lvlog

    integrity.forget()
    lv_manifests._CACHE.clear()
    lvlog._DECODED.clear()


# ----------------------------------------------------------------------------- building


def build(uri: str, n: int, history: int) -> dict[str, Any]:
    """A dataset of ``n`` fragments: a bulk commit, then ``history`` 10-fragment commits.

    Version 0 is the create (one real fragment, id 0); version 1, when ``n - 1 -
    10 * history > 0``, the bulk; the rest are the history. Returns build facts.
    """
    t0 = time.perf_counter()
    ds = lv.create_dataset(uri, pa.table({"id": pa.array([0], pa.int64()), "value": [0.0]}))
    id_field = ds.field_ids["id"]
    storage = open_storage(uri)
    line = Line(storage, MAIN_BRANCH)
    io_ = ManifestFiles(storage)
    head = line.head()
    assert head is not None
    (src,) = [e for m in head.manifests for e in lv_manifests.read_manifest(storage, m)]
    bulk = n - 1 - PER_COMMIT * history
    if bulk < 0 or (bulk + 1) % PER_COMMIT:
        raise ValueError(f"{n} fragments cannot hold {history} commits of {PER_COMMIT}")
    # The create's fragment stands for the first append: bulk + 1 fragments are fanned out.
    next_id = 1
    if bulk:
        entries = [src] + [
            linked_entry(storage, src, i, id_field, WIDTH) for i in range(1, bulk + 1)
        ]
        next_id = bulk + 1
        refs = fanout_manifests(storage, entries, PER_COMMIT)
        added = entries[1:]
        change = Change(
            operation="append",
            author="benchmark",
            message=f"synthetic bulk: {bulk} hard-linked fragments",
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
        head = line.commit(head, change, io=io_)
    bulk_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    requirements = (
        SchemaUnchanged(head.schema, head.last_field_id),
        ContractUnchanged(head.contract),
    )
    for _ in range(history):
        entries = [
            linked_entry(storage, src, i, id_field, WIDTH)
            for i in range(next_id, next_id + PER_COMMIT)
        ]
        next_id += PER_COMMIT
        change = Change(
            operation="append",
            author="benchmark",
            message="",
            properties={},
            updates=(AddFragments(lv_manifests.make_manifest(storage, entries, level=0)),),
            requirements=requirements,
        )
        head = line.commit(head, change, io=io_)
    history_s = time.perf_counter() - t1
    clear_caches()
    # The count from the snapshot record here; the cold fragments() run checks the list.
    got = head.summary.total_fragments
    if got != n or lv.open_dataset(uri).version != head.version:
        raise AssertionError(f"built {got} fragments at v{head.version}, expected {n}")
    files = [m for m in head.manifests if m.inline is None]
    return {
        "fragments": n,
        "history_commits": history,
        "bulk_fragments": bulk,
        "versions": head.version + 1,
        "bulk_s": round(bulk_s, 2),
        "history_s": round(history_s, 2),
        "ms_per_history_commit": round(ms(history_s / history), 3) if history else None,
        "manifests": len(head.manifests),
        "manifest_files": len(files),
        "manifest_levels": [m.level for m in head.manifests],
        "manifest_bytes": sum(os.path.getsize(storage.full_path(str(m.path))) for m in files),
    }


# ----------------------------------------------------------------------------- workers


def warm_up_code() -> float:
    """Run every measured call once on a throwaway dataset, then forget its metadata.

    Loads the modules lakever and pyarrow import lazily (filter parsing, pyarrow.dataset,
    the Parquet writer): a cold measurement is of metadata not yet read, not of imports.
    Returns the seconds it took.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        uri = os.path.join(tmp, "warmup")
        ds = lv.create_dataset(uri, one_row(0))
        ds = ds.append(one_row(1))
        ds = lv.open_dataset(uri)
        ds.explain(id_filter(1_000)[0])
        len(ds.fragments())
        lv.open_dataset(uri, version=0)
        for f in ds.fragments():
            pq.read_table(f.uri)
        os.stat(uri)
    clear_caches()
    return time.perf_counter() - t0


def worker(mode: str, uri: str, arg: str) -> dict[str, Any]:
    """One cold measurement in this (fresh) process; lakever is imported already."""
    out: dict[str, Any] = {"warmup_s": warm_up_code()}
    if mode == "plan":
        t0 = time.perf_counter()
        ds = lv.open_dataset(uri)
        t1 = time.perf_counter()
        rep = ds.explain(arg)
        t2 = time.perf_counter()
        ds.explain(arg)
        t3 = time.perf_counter()
        lv.open_dataset(uri).explain(arg)
        t4 = time.perf_counter()
        out.update(
            open_s=t1 - t0,
            explain_s=t2 - t1,
            open_explain_s=t2 - t0,
            explain_again_s=t3 - t2,
            open_explain_cached_s=t4 - t3,
            kept=rep.fragments_after_stats_pruning,
        )
    elif mode == "fragments":
        t0 = time.perf_counter()
        ds = lv.open_dataset(uri)
        n = len(ds.fragments())
        out.update(s=time.perf_counter() - t0, fragments=n)
    elif mode == "old":
        t0 = time.perf_counter()
        ds = lv.open_dataset(uri, version=int(arg))
        out.update(open_s=time.perf_counter() - t0, version=ds.version)
    elif mode == "append":
        t0 = time.perf_counter()
        ds = lv.open_dataset(uri)
        t1 = time.perf_counter()
        ds = ds.append(one_row(int(arg)))
        out.update(open_s=t1 - t0, append_s=time.perf_counter() - t1, version=ds.version)
    elif mode == "floor":
        # Which files to read is looked up before the clock; then only pyarrow and os.
        storage = open_storage(uri)
        head = Line(storage, MAIN_BRANCH).head()
        assert head is not None
        paths = [storage.full_path(m.path) for m in head.manifests if m.inline is None]
        entry = storage.full_path(log_path(MAIN_BRANCH, head.version))
        t0 = time.perf_counter()
        rows = sum(pq.read_table(p).num_rows for p in paths)
        t1 = time.perf_counter()
        os.stat(entry)
        out.update(read_s=t1 - t0, stat_s=time.perf_counter() - t1, files=len(paths), rows=rows)
    elif mode == "profile":
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        lv.open_dataset(uri).explain(arg)
        prof.disable()
        out["s"] = time.perf_counter() - t0
        texts = {}
        for key in ("cumulative", "tottime"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(25)
            texts[key] = buf.getvalue()
        out["profile"] = texts
        st = pstats.Stats(prof)
        top = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
        out["top_tottime"] = [
            {
                "function": f"{os.path.basename(f)}:{line}({name})",
                "calls": nc,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
            }
            for (f, line, name), (_cc, nc, tt, ct, _callers) in top
        ]
    else:
        raise ValueError(mode)
    return out


def cold(mode: str, uri: str, arg: object = "") -> dict[str, Any]:
    """Run ``worker(mode, uri, arg)`` in a fresh interpreter and return its report."""
    path = [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", mode, uri, str(arg)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cold {mode} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- measuring


class Bench:
    def __init__(self, sizes: Sizes, workdir: str) -> None:
        self.s = sizes
        self.root = workdir
        self.results: list[Result] = []
        self.errors: list[dict[str, str]] = []
        self.info: dict[str, Any] = {}
        self.profile: dict[str, Any] = {}
        self.rate_s: float | None = None  # seconds per history commit, from the last size

    def history_for(self, n: int) -> int:
        want = (n - 1) // PER_COMMIT
        if self.rate_s is None:
            return want
        # The per-commit cost grows a little with history: leave 25% headroom.
        fit = int(self.s.history_budget_s / (self.rate_s * 1.25))
        return max(0, min(want, fit))

    def run(self) -> None:
        for n in self.s.fragments:
            try:
                self.size(n, profile=n == self.s.fragments[-1])
            except Exception:
                err = traceback.format_exc(limit=8)
                log(f"size {n} failed:\n{err}")
                self.errors.append({"workload": short(n), "error": err})

    def add(self, n: int, key: str, metric: str, unit: str, value: float, **kw: Any) -> None:
        """One result; ``key`` names the measurement across sizes (for the growth table)."""
        r = Result(f"{short(n)} fragments", metric, unit, value, **kw)
        r.extra["key"] = key
        self.results.append(r)

    def size(self, n: int, *, profile: bool) -> None:
        s = self.s
        uri = os.path.join(self.root, f"n{n}")
        history = self.history_for(n)
        log(f"{short(n)} fragments: building ({history:,} history commits) ...")
        info = build(uri, n, history)
        if history:
            self.rate_s = info["history_s"] / history
        log(
            f"{short(n)} built: bulk {info['bulk_s']:.1f} s, {history:,} commits "
            f"{info['history_s']:.1f} s, {info['manifests']} manifests"
        )
        self.info[short(n)] = info
        flt, keep = id_filter(n)
        info["filter"] = flt
        versions = info["versions"]
        old = versions // 2
        reps = s.cold_repeat if n < 1_000_000 else 1

        def med(rs: Sequence[dict[str, Any]], key: str) -> float:
            return median([r[key] for r in rs])

        # Cold, each measurement in its own fresh interpreters.
        plan = [cold("plan", uri, flt) for _ in range(reps)]
        if any(r["kept"] != keep for r in plan):
            raise AssertionError(f"explain({flt!r}) kept {plan}, expected {keep}")
        floor = [cold("floor", uri) for _ in range(reps)]
        frags = [cold("fragments", uri) for _ in range(reps)]
        if any(r["fragments"] != n for r in frags):
            raise AssertionError(f"fragments() gave {frags}, expected {n}")
        olds = [cold("old", uri, old) for _ in range(reps)]
        if any(r["version"] != old for r in olds):
            raise AssertionError(f"open_dataset(version={old}) opened {olds}")
        floor_s = med(floor, "read_s")
        stat_s = med(floor, "stat_s")
        floor_name = f"pq.read_table x {floor[0]['files']} manifests"
        cold_note = f"median of {reps} fresh interpreters (imports before the clock)"
        self.add(
            n,
            "open",
            "cold: open_dataset (latest)",
            "ms",
            ms(med(plan, "open_s")),
            baseline=ms(stat_s),
            baseline_name="os.stat",
            notes=cold_note,
            extra={"runs": plan},
        )
        self.add(
            n,
            "open+plan",
            "cold: open_dataset + explain(1% id range)",
            "ms",
            ms(med(plan, "open_explain_s")),
            baseline=ms(floor_s),
            baseline_name=floor_name,
            target=COLD_PLAN_TARGET.get(n),
            notes=f"{cold_note}; {flt}; baseline: plain pyarrow reading every manifest file",
            extra={"explain_only_ms": ms(med(plan, "explain_s")), "floor_runs": floor},
        )
        self.add(
            n,
            "plan again",
            "explain again, same Dataset (pruning only)",
            "ms",
            ms(med(plan, "explain_again_s")),
            notes="second explain in the cold interpreter",
        )
        self.add(
            n,
            "open+plan cached",
            "open_dataset + explain, manifests cached",
            "ms",
            ms(med(plan, "open_explain_cached_s")),
            target=WARM_PLAN_TARGET.get(n),
            notes="a new open + explain in the cold interpreter, after the first",
        )
        self.add(
            n,
            "fragments",
            "cold: open_dataset + len(fragments())",
            "ms",
            ms(med(frags, "s")),
            baseline=ms(floor_s),
            baseline_name=floor_name,
            notes=cold_note,
            extra={"runs": frags},
        )
        self.add(
            n,
            "open old",
            f"cold: open_dataset(version={old}) (of {versions})",
            "ms",
            ms(med(olds, "open_s")),
            baseline=ms(stat_s),
            baseline_name="os.stat",
            notes=f"{cold_note}; the version's record only (no manifest read)",
            extra={"runs": olds},
        )
        # Warm, in this process.
        warm = []
        old_warm = []
        lv.open_dataset(uri).explain(flt)
        lv.open_dataset(uri, version=old)
        for _ in range(s.repeat):
            t0 = time.perf_counter()
            lv.open_dataset(uri).explain(flt)
            warm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lv.open_dataset(uri, version=old)
            old_warm.append(time.perf_counter() - t0)
        self.add(
            n,
            "warm open+plan",
            "warm: open_dataset + explain (same process, repeated)",
            "ms",
            ms(median(warm)),
            target=WARM_PLAN_TARGET.get(n),
            notes=f"median of {s.repeat}",
            extra={"runs_s": warm},
        )
        self.add(
            n,
            "warm open old",
            f"warm: open_dataset(version={old})",
            "ms",
            ms(median(old_warm)),
            notes=f"median of {s.repeat}",
            extra={"runs_s": old_warm},
        )
        if profile:
            log(f"{short(n)}: profiling the cold open + explain")
            prof = cold("profile", uri, flt)
            self.profile = {"fragments": n, "filter": flt, **prof}
            print(prof["profile"]["tottime"], file=sys.stderr)
        # Commits last: they add versions (and one fragment each).
        appends = [cold("append", uri, i) for i in range(reps)]
        tmp = os.path.join(self.root, "floor.parquet")
        ds = lv.open_dataset(uri)
        ds = ds.append(one_row(reps))
        warm_app = []
        floor_w = []
        for i in range(s.repeat):
            t0 = time.perf_counter()
            ds = ds.append(one_row(reps + 1 + i))
            warm_app.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pq.write_table(one_row(i), tmp)
            floor_w.append(time.perf_counter() - t0)
        self.add(
            n,
            "cold append",
            f"cold: open_dataset + append(1 row), {versions:,} versions",
            "ms",
            ms(med(appends, "open_s") + med(appends, "append_s")),
            notes=f"{cold_note}; append alone: {ms(med(appends, 'append_s')):.0f} ms",
            extra={"runs": appends},
        )
        self.add(
            n,
            "warm append",
            "warm: append(1 row) on an open Dataset",
            "ms",
            ms(median(warm_app)),
            baseline=ms(median(floor_w)),
            baseline_name="pq.write_table, 1 row",
            notes=f"median of {s.repeat}",
            extra={"runs_s": warm_app},
        )
        clear_caches()
        shutil.rmtree(uri, ignore_errors=True)


def add_growth(results: list[Result]) -> list[list[str]]:
    """Set ``extra['growth']`` (value / value at the previous size) on every result that
    has one at the previous size; return rows of the growth table."""
    by_metric: dict[str, list[Result]] = {}
    for r in results:
        by_metric.setdefault(r.extra.get("key", r.metric), []).append(r)
    rows = [["ms", *[r.workload for r in next(iter(by_metric.values()), [])]]]
    for key, rs in by_metric.items():
        cells = [key]
        prev = None
        for r in rs:
            if prev is not None and prev.lakever and r.lakever is not None:
                r.extra["growth"] = round(r.lakever / prev.lakever, 3)
                cells.append(f"{r.lakever:,.1f} (x{r.lakever / prev.lakever:.1f})")
            else:
                cells.append(f"{r.lakever:,.1f}" if r.lakever is not None else "-")
            prev = r
        rows.append(cells)
    return rows


def plain_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="1k and 10k fragments (a smoke test)")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    p.add_argument("--sizes", default=None, help="comma-separated fragment counts")
    p.add_argument(
        "--history-budget",
        type=float,
        default=None,
        help="seconds of history commits per size, at most (default 300; quick 60)",
    )
    p.add_argument("--worker", nargs=3, metavar=("MODE", "URI", "ARG"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    sizes = QUICK if args.quick else FULL
    if args.sizes:
        sizes = Sizes(
            tuple(int(x) for x in args.sizes.split(",")),
            sizes.history_budget_s,
            sizes.repeat,
            sizes.cold_repeat,
        )
    if args.history_budget is not None:
        sizes = Sizes(sizes.fragments, args.history_budget, sizes.repeat, sizes.cold_repeat)
    workdir = tempfile.mkdtemp(prefix="lakever-scale-", dir=args.workdir)
    bench = Bench(sizes, workdir)
    started = datetime.now(UTC)
    load_before = _loadavg()
    t0 = time.perf_counter()
    try:
        bench.run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    growth = add_growth(bench.results)
    results = [r.to_json() for r in bench.results]
    meta = run_meta(
        quick=args.quick,
        started=started,
        elapsed=elapsed,
        load_before=load_before,
        versions={
            "python": platform.python_version(),
            "lakever": lv.__version__,
            "pyarrow": pa.__version__,
        },
    )
    meta.update(
        sizes=asdict(sizes),
        datasets=bench.info,
        profile=bench.profile,
        ratio="lakever / baseline; growth (extra.growth) = value / value at the previous size",
    )
    payload = {"meta": meta, "results": results, "errors": bench.errors}
    print(format_table(bench.results))
    print("\ngrowth with the dataset (ms, and x the previous size):")
    print(plain_table(growth))
    print("\nbuilds:")
    for name, info in bench.info.items():
        print(
            f"  {name}: {info['history_commits']:,} history commits in {info['history_s']:.1f} s"
            f" ({info['ms_per_history_commit']} ms each), bulk {info['bulk_fragments']:,} "
            f"fragments in {info['bulk_s']:.1f} s; {info['manifests']} manifests "
            f"({info['manifest_files']} files)"
        )
    misses = [r for r in results if r["meets_target"] is False]
    print(
        f"\n{len(results)} results, {len(misses)} missed target, "
        f"{len(bench.errors)} errors, {elapsed:.0f} s"
    )
    for e in bench.errors:
        print(f"ERROR at {e['workload']}: {e['error']}", file=sys.stderr)
    write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
