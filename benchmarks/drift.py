"""Drift between two versions: lakever.drift against plain DuckDB over the same files.

Usage::

    python benchmarks/drift.py            # 1,000,000 rows x 6 columns per version
    python benchmarks/drift.py --quick    # 100,000 rows (a smoke test)
    python benchmarks/drift.py --output FILE  # default: results/drift.json

Version 0 of a dataset holds ``rows`` rows of six columns (id int64, value float64,
amount float64 lognormal, category string of 5 values, country string of 40 values, ts
timestamp[us]), in 4 fragments; version 1 overwrites it with the same number of rows,
shifted (amounts larger, one country replaced, 5 % more nulls in ``value``). Measured,
in interleaved rounds after one warm-up (fragments are verified once per process, so
the warm-up pays the hashing; the first call is reported on its own):

- ``lv.drift(uri, 0, 1)``: everything (resolving both refs, pins, reading both
  snapshots through lakever's DuckDB read path, every aggregate);
- the same aggregates (`lakever.ml._drift_sql`, the very SQL lakever runs) on plain
  ``read_parquet(files)`` views of the two versions' files: what DuckDB alone costs;
- one plain DuckDB aggregate per version (``count``, ``count(col)``, ``min``, ``max``,
  ``avg`` of every column over ``read_parquet(files)``): the cost of one scan.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import pyarrow as pa
from _harness import Result, compare, median, report, run_in_workdir

import lakever as lv
from lakever.ml._drift_sql import Column, bin_counts, compare_categories, stats
from lakever.ml.drift import psi

DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "results", "drift.json")
_CATEGORIES = ["alpha", "beta", "gamma", "delta", "epsilon"]
_COUNTRIES = [f"c{i:02d}" for i in range(40)]


def _table(n: int, seed: int, *, shifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    value = rng.random(n)
    null_share = 0.10 if shifted else 0.05
    countries = [c for c in _COUNTRIES if not (shifted and c == "c07")] + (
        ["c99"] if shifted else []
    )
    ts0 = 1_790_000_000_000_000
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "value": pa.array(value, mask=rng.random(n) < null_share),
            "amount": pa.array(rng.lognormal(3.3 if shifted else 3.0, 1.0, n)),
            "category": pa.array(rng.choice(_CATEGORIES, n)),
            "country": pa.array(rng.choice(countries, n)),
            "ts": pa.array(ts0 + rng.integers(0, 86_400_000_000 * 30, n), pa.timestamp("us")),
        }
    )


def _write(uri: str, rows: int) -> lv.Dataset:
    parts = 4
    step = rows // parts
    ds = lv.create_dataset(uri, _table(step, 0, shifted=False))
    for p in range(1, parts):
        ds = ds.append(_table(step, p, shifted=False))
    batches = [_table(step, 100 + p, shifted=True) for p in range(parts)]
    ds = ds.overwrite(batches[0])
    for b in batches[1:]:
        ds = ds.append(b)
    return ds


def _plain_drift(files_a: list[str], files_b: list[str], schema: pa.Schema) -> float:
    """The aggregates lv.drift runs, on plain read_parquet views; returns amount's PSI."""
    import duckdb

    con = duckdb.connect()
    try:
        for name, files in (("a", files_a), ("b", files_b)):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r})")
        kinds = {
            "id": "numeric", "value": "numeric", "amount": "numeric", "ts": "numeric",
            "category": "categorical", "country": "categorical",
        }  # fmt: skip
        cols = [Column(n, schema.field(n).type, kinds[n]) for n in schema.names]
        _, sa = stats(con, "a", cols, 10)
        edges = {}
        for c in cols:
            s = sa[c.name]
            if c.kind == "numeric" and s.min is not None and s.max is not None:
                cuts = sorted({s.min, *(s.quantiles or []), math.nextafter(s.max, math.inf)})
                edges[c.name] = [-math.inf, *cuts, math.inf]
        numeric = [Column(c.name, c.type, c.kind, edges[c.name]) for c in cols if c.name in edges]
        counts_a = bin_counts(con, "a", numeric)
        _, sb = stats(con, "b", numeric, 10)
        for c in cols:
            if c.kind == "categorical":
                compare_categories(con, ("a", c.name), ("b", c.name), listed=50)
        result = psi(counts_a["amount"], sb["amount"].counts or [])
        return float(result or 0.0)
    finally:
        con.close()


def _plain_scan(files: list[str], schema: pa.Schema) -> None:
    import duckdb

    parts = ["count(*)"]
    for n in schema.names:
        q = f'"{n}"'
        parts += [f"count({q})", f"min({q})", f"max({q})"]
        if n in ("id", "value", "amount"):
            parts.append(f"avg({q})")
    con = duckdb.connect()
    try:
        con.execute(f"SELECT {', '.join(parts)} FROM read_parquet({files!r})").fetchall()
    finally:
        con.close()


def run(rows: int, repeat: int, workdir: str) -> tuple[list[Result], dict]:  # type: ignore[type-arg]
    uri = os.path.join(workdir, "events")
    t0 = time.perf_counter()
    ds = _write(uri, rows)
    write_s = time.perf_counter() - t0
    first_ds = lv.open_dataset(uri, version=3)  # the last version before the overwrite
    files_a = [f.uri for f in first_ds.fragments()]
    files_b = [f.uri for f in ds.fragments()]
    schema = ds.schema

    t0 = time.perf_counter()
    report = lv.drift(uri, 3, ds.version)
    first_s = time.perf_counter() - t0
    plain_psi = _plain_drift(files_a, files_b, schema)
    if not math.isclose(report.column("amount").psi or 0.0, plain_psi, rel_tol=1e-9):
        raise AssertionError("lakever and plain DuckDB disagree on amount's PSI")

    times = compare(
        {
            "lakever": lambda: lv.drift(uri, 3, ds.version),
            "plain": lambda: _plain_drift(files_a, files_b, schema),
            "scan": lambda: [_plain_scan(f, schema) for f in (files_a, files_b)],
        },
        repeat=repeat,
    )
    lk, plain, scan = (median(times[k]) for k in ("lakever", "plain", "scan"))
    n = f"{rows:,} rows x 6 columns, 2 versions"
    flagged = ", ".join(report.flagged_columns)
    results = [
        Result("drift", f"lv.drift() of {n}", "s", lk, plain,
               "the same aggregates on plain read_parquet views",
               notes=f"flagged: {flagged}"),
        Result("drift", f"lv.drift() of {n}", "s", lk, scan,
               "one plain DuckDB aggregate scan per version"),
        Result("drift", f"lv.drift() of {n}, first call", "s", first_s, lk,
               "later calls (fragments verified once per process)"),
    ]  # fmt: skip
    info = {
        "rows_per_version": rows,
        "fragments_per_version": len(files_a),
        "write_s": round(write_s, 2),
        "repeat": repeat,
        "seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "flagged_columns": report.flagged_columns,
        "psi_amount": report.column("amount").psi,
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON output path")
    p.add_argument("--workdir", default=None, help="parent of the temp data dir (local disk)")
    args = p.parse_args(argv)
    rows, repeat = (100_000, 3) if args.quick else (1_000_000, 5)
    import duckdb

    versions = {"lakever": lv.__version__, "pyarrow": pa.__version__, "duckdb": duckdb.__version__}
    results, _, meta = run_in_workdir(
        "lakever-drift-", args.workdir, args.quick, lambda d: run(rows, repeat, d), versions
    )
    meta["ratio"] = "lakever / baseline (see each row's baseline)"
    report(args.output, meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
