"""Shared pieces of the benchmark script: results, timing, data, output, workers.

Nothing here asserts a timing: a `Result` records a measurement, the baseline it
was compared with in the same run, and whether it met its target.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CATEGORIES",
    "Result",
    "Target",
    "append_worker",
    "worker_main",
    "cold_open_worker",
    "compare",
    "fanout_manifests",
    "format_table",
    "linked_entry",
    "make_table",
    "markdown_table",
    "median",
    "percentile",
    "report",
    "run_in_workdir",
    "source_digest",
    "spawn_worker",
    "time_call",
    "write_json",
]

CATEGORIES = ("alpha", "beta", "gamma", "delta", "epsilon")
_TS_BASE_US = 1_790_000_000_000_000  # 2026-09-21, in microseconds since the epoch


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Target:
    """A goal on one number of a result: ``<on> <op> <value>``."""

    on: Literal["lakever", "ratio"]
    op: Literal["<=", ">=", "=="]
    value: float

    def check(self, x: float | None) -> bool | None:
        if x is None or math.isnan(x):
            return None
        if self.op == "<=":
            return x <= self.value
        if self.op == ">=":
            return x >= self.value
        return x == self.value

    def __str__(self) -> str:
        return f"{self.on} {self.op} {self.value:g}"


@dataclass(slots=True)
class Result:
    """One measured number, with what it is compared to.

    ``ratio`` is always ``lakever / baseline`` and ``delta_ratio`` is
    ``lakever / delta_rs``; ``better`` says which direction is good for the metric.
    """

    workload: str
    metric: str
    unit: str
    lakever: float | None
    baseline: float | None = None
    baseline_name: str | None = None
    target: Target | None = None
    delta_rs: float | None = None
    better: Literal["lower", "higher", "n/a"] = "lower"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return _div(self.lakever, self.baseline)

    @property
    def delta_ratio(self) -> float | None:
        return _div(self.lakever, self.delta_rs)

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.check(self.lakever if self.target.on == "lakever" else self.ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "metric": self.metric,
            "unit": self.unit,
            "lakever": _finite(self.lakever),
            "baseline": _finite(self.baseline),
            "baseline_name": self.baseline_name,
            "ratio": _finite(self.ratio),
            "target": str(self.target) if self.target else None,
            "meets_target": self.meets_target,
            "delta_rs": _finite(self.delta_rs),
            "delta_ratio": _finite(self.delta_ratio),
            "better": self.better,
            "notes": self.notes,
            **({"extra": self.extra} if self.extra else {}),
        }


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _finite(x: float | None) -> float | None:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return round(x, 6)


# ----------------------------------------------------------------------------- timing


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation."""
    if not xs:
        raise ValueError("percentile of an empty sequence")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    fns: Mapping[str, Callable[[], object]],
    *,
    repeat: int,
    warmup: int = 1,
    setups: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in interleaved rounds.

    Every round calls each function once, starting with a different one each
    round, so a change in background load hits all of them alike. ``setups[name]``
    (untimed) runs before each call of ``fns[name]``.
    """
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if setups is not None and name in setups:
                setups[name]()
            t = time_call(fns[name])
            if r >= warmup:
                out[name].append(t)
    return out


# ----------------------------------------------------------------------------- data


def make_table(n: int, *, start_id: int = 0, seed: int = 0) -> pa.Table:
    """``n`` rows of (id int64, value float64 in [0, 1), category string, ts timestamp[us]).

    Deterministic for a given ``seed``; ids are ``start_id .. start_id + n - 1``.
    """
    ids = pa.array(range(start_id, start_id + n), pa.int64())
    values = pc.random(n, initializer=seed)
    picks = pc.cast(
        pc.floor(pc.multiply(pc.random(n, initializer=seed + 1), len(CATEGORIES))), pa.int32()
    )
    category = pa.array(CATEGORIES, pa.string()).take(picks)
    ts = pc.cast(pc.add(pc.multiply(ids, 1000), _TS_BASE_US), pa.timestamp("us"))
    return pa.table({"id": ids, "value": values, "category": category, "ts": ts})


# ----------------------------------------------------------------------------- synthetic metadata
#
# Large snapshots are built through lakever's internal manifest writer instead of through
# that many commits: data bytes do not matter for planning, so every synthetic fragment is
# a hard link to one real fragment, with its own made-up min/max for one column.


_LINKS_PER_FILE = 50_000


def linked_entry(storage: Any, src: Any, i: int, field_id: int, width: int = 10) -> Any:
    """A `FragmentEntry` for a hard link ``link-<i>.parquet`` next to ``src``'s file.

    The link holds ``src``'s bytes (so hash, size and schema id stay true); its stats say
    column ``field_id`` spans ``i*width .. i*width + width - 1`` (synthetic: planning
    only reads the manifest, never the file).
    """
    import dataclasses
    import shutil

    directory = src.path.rsplit("/", 1)[0]
    rel = f"{directory}/link-{i:07d}.parquet"
    seed = storage.full_path(src.path)
    if i >= _LINKS_PER_FILE:  # ext4 allows 65,000 links to a file: link to copies beyond
        copy = storage.full_path(f"{directory}/seed-{i // _LINKS_PER_FILE}.parquet")
        if not os.path.exists(copy):
            shutil.copyfile(seed, copy)
        seed = copy
    os.link(seed, storage.full_path(rel))
    stats = dict(src.stats)
    stats[field_id] = {"nulls": 0, "min": i * width, "max": i * width + width - 1}
    return dataclasses.replace(src, path=rel, stats=stats)


def fanout_manifests(storage: Any, entries: Sequence[Any], per_append: int) -> list[Any]:
    """Write ``entries`` as the manifests appends of ``per_append`` fragments would leave.

    Runs of ``FANOUT`` same-level manifests are merged into the next level, so ``k``
    appends leave one manifest of ``per_append * FANOUT**level`` entries per unit of each
    base-FANOUT digit of ``k``, highest level first. ``len(entries)`` must be a multiple
    of ``per_append``. Returns the `ManifestRef` list, in order.
    """
    from lakever.manifest_list import FANOUT
    from lakever.manifests import write_manifest

    n = len(entries)
    if n % per_append:
        raise ValueError(f"{n} entries are not a whole number of {per_append}-fragment appends")
    appends = n // per_append
    digits = []
    while appends:
        digits.append(appends % FANOUT)
        appends //= FANOUT
    refs = []
    pos = 0
    for level in range(len(digits) - 1, -1, -1):
        size = per_append * FANOUT**level
        for _ in range(digits[level]):
            refs.append(write_manifest(storage, entries[pos : pos + size], level=level))
            pos += size
    return refs


# ----------------------------------------------------------------------------- output


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None or math.isnan(x):
        return "-"
    if unit == "count" or (float(x).is_integer() and abs(x) >= 1000):
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.2g}"


def format_table(results: Sequence[Result]) -> str:
    """Render results as an aligned plain-text table."""
    header = [
        "workload",
        "metric",
        "unit",
        "lakever",
        "baseline",
        "ratio",
        "delta-rs",
        "target",
        "ok",
    ]
    rows = [header]
    for r in results:
        ok = {True: "yes", False: "MISS", None: ""}[r.meets_target]
        base = _fmt(r.baseline, r.unit)
        if r.baseline is not None and r.baseline_name:
            base = f"{base} ({r.baseline_name})"
        rows.append(
            [
                r.workload,
                r.metric,
                r.unit,
                _fmt(r.lakever, r.unit),
                base,
                _fmt(r.ratio),
                _fmt(r.delta_rs, r.unit),
                str(r.target) if r.target else "",
                ok,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = {3, 5, 6}
    lines = []
    for j, row in enumerate(rows):
        cells = [
            cell.rjust(w) if (i in numeric and j > 0) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Render the ``results`` list of a JSON report as a Markdown table."""
    out = [
        "| workload | metric | unit | lakever | baseline | ratio | delta-rs | target | met |",
        "|---|---|---|--:|---|--:|--:|---|---|",
    ]
    for r in rows:
        unit = r.get("unit", "")
        base = _fmt(r.get("baseline"), unit)
        if r.get("baseline") is not None and r.get("baseline_name"):
            base = f"{base} ({r['baseline_name']})"
        met = {True: "yes", False: "**no**", None: ""}[r.get("meets_target")]
        cells = [
            r["workload"],
            r["metric"],
            unit,
            _fmt(r.get("lakever"), unit),
            base,
            _fmt(r.get("ratio")),
            _fmt(r.get("delta_rs"), unit),
            r.get("target") or "",
            met,
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (temp file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- workers


def append_worker(
    uri: str,
    worker: int,
    commits: int,
    rows: int,
    id_base: int,
    barrier: Any,
    queue: Any,
) -> None:
    """Process body for the concurrent-append workload (started with 'spawn').

    Appends ``commits`` tables of ``rows`` rows to ``uri`` through the returned
    Dataset, after every worker is ready. Lost races are counted by wrapping
    ``LocalStorage.put_if_absent`` (the only call that publishes a log entry):
    a False return is a lost race, after which lakever retries internally.
    """
    report: dict[str, Any] = {"worker": worker, "error": None}
    try:
        import lakever as lv

        counts = {"attempts": 0, "lost": 0}
        instrumented = False
        try:
            from lakever.storage import LocalStorage

            original = LocalStorage.put_if_absent

            def counting(self: Any, rel: str, data: bytes) -> bool:
                won: bool = original(self, rel, data)
                counts["attempts"] += 1
                if not won:
                    counts["lost"] += 1
                return won

            LocalStorage.put_if_absent = counting
            instrumented = True
        except (ImportError, AttributeError):
            pass

        tables = [
            make_table(rows, start_id=id_base + i * rows, seed=worker * 1_000_003 + i)
            for i in range(commits)
        ]
        ds = lv.open_dataset(uri)
        barrier.wait(timeout=300)
        latencies: list[float] = []
        per_append: list[int] = []
        failures: list[str] = []
        committed = 0
        start = time.monotonic()
        for t in tables:
            before = counts["attempts"]
            t0 = time.perf_counter()
            try:
                ds = ds.append(t, message=f"worker {worker}")
                committed += 1
            except lv.LakeverError as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                ds = lv.open_dataset(uri)
            latencies.append(time.perf_counter() - t0)
            per_append.append(counts["attempts"] - before)
        end = time.monotonic()
        report.update(
            start=start,
            end=end,
            committed=committed,
            failures=failures,
            latencies=latencies,
            instrumented=instrumented,
            attempts=counts["attempts"],
            attempts_per_append=per_append,
            lost=counts["lost"],
        )
    except BaseException:
        report["error"] = traceback.format_exc(limit=5)
    queue.put(report)


def cold_open_worker(uri: str, queue: Any) -> None:
    """Process body: time ``open_dataset(uri).fragments()`` as the first call in a new process.

    ``lakever`` is imported before the clock starts; what is timed is what a
    fresh reader pays with no in-process caches: the log probe, the snapshot
    record, and reading and verifying every manifest.
    """
    report: dict[str, Any] = {"error": None}
    try:
        import lakever as lv

        t0 = time.perf_counter()
        ds = lv.open_dataset(uri)
        t1 = time.perf_counter()
        n = len(ds.fragments())
        t2 = time.perf_counter()
        report.update(open_s=t1 - t0, fragments_s=t2 - t1, total_s=t2 - t0, fragments=n)
    except BaseException:
        report["error"] = traceback.format_exc(limit=5)
    queue.put(report)


def source_digest(package_dir: str) -> str:
    """SHA-256 over the package's .py files (names and bytes), to tie results to code."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, package_dir).encode())
                with open(path, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def git_state(repo: str) -> dict[str, Any] | None:
    """The commit and dirty flag of the checkout lakever was imported from, if any."""
    try:
        head = subprocess.run(
            ["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--", "lakever"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "lakever_dirty": bool(status.stdout.strip())}


def run_meta(
    *, quick: bool, started: Any, elapsed: float, load_before: Any, versions: Any
) -> dict[str, Any]:
    """The fields every benchmark report's ``meta`` starts with: mode, when, how long,
    load before and after, the machine and the package versions."""
    import platform

    return {
        "mode": "quick" if quick else "full",
        "started_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "loadavg_1_5_15_before": load_before,
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions,
    }


def run_in_workdir(
    prefix: str,
    parent: str | None,
    quick: bool,  # noqa: FBT001 - every script passes its --quick flag
    run: Callable[[str], tuple[list[Result], dict[str, Any]]],
    versions: Mapping[str, str] | None = None,
) -> tuple[list[Result], dict[str, Any], dict[str, Any]]:
    """Call ``run(workdir)`` in a new temporary directory under ``parent`` (removed
    afterwards); its results and info, and the report's ``meta`` (`run_meta`, with
    ``meta["dataset"] = info``). ``versions`` defaults to lakever's and pyarrow's."""
    import shutil
    import tempfile
    from datetime import UTC, datetime

    started = datetime.now(UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    workdir = tempfile.mkdtemp(prefix=prefix, dir=parent)
    t0 = time.perf_counter()
    try:
        results, info = run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if versions is None:
        import lakever

        versions = {"lakever": lakever.__version__, "pyarrow": pa.__version__}
    meta = run_meta(
        quick=quick,
        started=started,
        elapsed=time.perf_counter() - t0,
        load_before=load_before,
        versions=dict(versions),
    )
    meta["dataset"] = info
    return results, info, meta


def report(path: str, meta: dict[str, Any], results: Sequence[Result]) -> None:
    """Print ``results`` as a table and write them with ``meta`` as JSON to ``path``."""
    print(format_table(results))
    write_json(path, {"meta": meta, "results": [r.to_json() for r in results]})
    print(f"wrote {path}")


def spawn_worker(script: str, *args: str) -> dict[str, Any]:
    """Run ``python script --worker *args`` in a fresh process (the lakever this process
    imported first on its path, the script's directory next); the JSON object its last
    line of output holds."""
    import sys

    import lakever

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(lakever.__file__)))
    here = os.path.dirname(os.path.abspath(script))
    env["PYTHONPATH"] = os.pathsep.join([root, here, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, os.path.abspath(script), "--worker", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def worker_main(
    argv: list[str] | None,
    *,
    doc: str | None,
    output: str,
    quick: str,
    worker: Callable[[str, str], dict[str, Any]],
) -> Any:
    """Parse the options of a benchmark that measures in fresh processes (`spawn_worker`):
    ``--quick`` (``quick`` says what it changes), ``--reps``, ``--output`` (default
    ``output``), ``--workdir``. Run as a worker (``--worker MODE URI``), print what
    ``worker(MODE, URI)`` returns as JSON and return None; else return the options."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--reps", type=int, default=None, help="repetitions of each measurement")
    p.add_argument("--output", default=output, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    p.add_argument("--worker", nargs=2, metavar=("MODE", "URI"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return None
    return args
