"""Mutation testing of lakever's core modules with mutmut, one module at a time.

Usage (through scripts/mutation.sh, which sets up the environment)::

    python scripts/mutation.py                   # every module in the map
    python scripts/mutation.py sql deletion      # only these
    python scripts/mutation.py --sample 30 --seed 7 sql   # a seeded sample of mutants

The module -> tests map lives in pyproject.toml under ``[tool.lakever.mutation.modules]``;
the settings shared by every run under ``[tool.mutmut]``. Each module runs in its own
work directory ``.mutation/<module>/`` (so its mutants, its per-test statistics and its
cached results stay apart and a rerun only retests what changed), with a generated
``pyproject.toml`` whose ``[tool.mutmut]`` mutates only that module's files and selects
only its tests. mutmut then runs each mutant against the tests that call the mutated
function.

Prints killed/survived/timeout counts per module and writes a JSON summary
(``benchmarks/results/mutation.json`` unless ``--json`` says otherwise).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes per mutant (mutmut/stats.py), folded into the buckets we report.
_STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no_tests",
    33: "no_tests",
    34: "skipped",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    37: "killed",  # caught by the type checker (not configured, kept for completeness)
    -11: "segfault",
    -9: "segfault",
    None: "not_checked",
}


def load_config() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The shared ``[tool.mutmut]`` settings and the module map."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    tool = data["tool"]
    return dict(tool.get("mutmut", {})), dict(tool["lakever"]["mutation"]["modules"])


def _toml_value(v: Any) -> str:
    # Strings, numbers, booleans and lists of them: JSON spells them as TOML does.
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def _pyproject_for(shared: dict[str, Any], module: dict[str, Any]) -> str:
    """The root pyproject.toml with a ``[tool.mutmut]`` scoped to one module."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    # Drop the shared [tool.mutmut] table (and only it); it is rewritten below.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", text)
    settings = dict(shared)
    settings["only_mutate"] = list(module["files"])
    # A test file not written yet (or gone) is left out rather than failing the run.
    settings["pytest_add_cli_args_test_selection"] = [
        t for t in module["tests"] if (ROOT / t).exists()
    ]
    lines = ["", "[tool.mutmut]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    return text + "\n".join(lines) + "\n"


def prepare(root: Path, name: str, shared: dict[str, Any], module: dict[str, Any]) -> Path:
    """Create (or refresh) the module's work directory under ``root``."""
    work = root / name
    work.mkdir(parents=True, exist_ok=True)
    for link in ("lakever", "tests", "examples"):
        target = work / link
        if not target.is_symlink():
            target.symlink_to(ROOT / link, target_is_directory=True)
    (work / "pyproject.toml").write_text(_pyproject_for(shared, module), "utf-8")
    return work


def _globs(module: dict[str, Any]) -> list[str]:
    """mutmut name patterns of the mutants a module entry covers."""
    functions = module.get("functions")
    if not functions:
        return [f.removesuffix(".py").replace("/", ".") + ".*" for f in module["files"]]
    return [
        f"{f.removesuffix('.py').replace('/', '.')}.{fn}__mutmut_*"
        for f in module["files"]
        for fn in functions
    ]


def _codes(work: Path, module: dict[str, Any]) -> dict[str, int | None]:
    """mutmut's exit code per mutant of the module entry (None: not run yet)."""
    globs = _globs(module)
    codes: dict[str, int | None] = {}
    for pattern in module["files"]:
        for meta in sorted((work / "mutants").glob(pattern + ".meta")):
            for key, code in json.loads(meta.read_text("utf-8"))["exit_code_by_key"].items():
                if any(fnmatch.fnmatchcase(key, g) for g in globs):
                    codes[key] = code
    return codes


def results(work: Path, module: dict[str, Any], only: set[str] | None) -> dict[str, Any]:
    """Counts per status, and the names of the mutants that were not killed."""
    counts = dict.fromkeys(sorted({*_STATUS.values(), "suspicious"}), 0)
    survivors: list[str] = []
    for key, code in _codes(work, module).items():
        if only is not None and key not in only:
            continue
        status = _STATUS.get(code, "suspicious")
        counts[status] += 1
        if status in ("survived", "no_tests"):
            survivors.append(key)
    tested = counts["killed"] + counts["survived"] + counts["no_tests"] + counts["timeout"]
    # A timeout is a mutant the tests noticed (it hung a test), so it counts as caught.
    caught = counts["killed"] + counts["timeout"]
    return {
        **counts,
        "total": sum(counts.values()),
        "kill_rate": round(caught / tested, 4) if tested else None,
        "not_killed": sorted(survivors),
    }


def run_module(
    name: str,
    shared: dict[str, Any],
    module: dict[str, Any],
    *,
    sample: int | None,
    seed: int,
    jobs: int,
    root: Path,
) -> dict[str, Any]:
    work = prepare(root, name, shared, module)
    # Few derandomised hypothesis examples per mutant: every run draws the same ones.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HYPOTHESIS_PROFILE": "mutation"}
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.monotonic()
    only: set[str] | None = None
    if sample is None:
        argv = [*mutmut, "run", "--max-children", str(jobs), *_globs(module)]
    else:
        # Generate the mutants and the per-test statistics first (a run over a name
        # that matches nothing stops right after), then draw the sample.
        subprocess.run(
            [*mutmut, "run", "--max-children", str(jobs), "lakever.__no_such_mutant__"],
            cwd=work,
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        names = sorted(_codes(work, module))
        only = set(random.Random(seed).sample(names, min(sample, len(names))))
        argv = [*mutmut, "run", "--max-children", str(jobs), *sorted(only)]
    log = work / "mutmut.log"
    with log.open("w") as out:
        proc = subprocess.run(argv, cwd=work, env=env, check=False, stdout=out, stderr=out)
    summary = results(work, module, only)
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["exit_code"] = proc.returncode
    summary["log"] = str(log)
    if sample is not None:
        summary["sample"] = {"size": len(only or ()), "seed": seed}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names from the map (default: all)")
    parser.add_argument("--sample", type=int, help="run only this many mutants per module")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "mutation.json"))
    parser.add_argument("--work", default=str(ROOT / ".mutation"), help="work directories")
    parser.add_argument(
        "--tests", help="comma-separated test files to use instead of the map's (one module)"
    )
    args = parser.parse_args(argv)

    shared, modules = load_config()
    unknown = [m for m in args.modules if m not in modules]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {sorted(modules)}")
    chosen = args.modules or list(modules)
    if args.tests:
        if len(chosen) != 1:
            parser.error("--tests needs exactly one module")
        modules[chosen[0]] = {**modules[chosen[0]], "tests": args.tests.split(",")}

    report: dict[str, Any] = {}
    path = Path(args.json)
    if path.exists() and args.sample is None:
        report = json.loads(path.read_text("utf-8")).get("modules", {})
    print(f"{'module':<14}{'killed':>8}{'survived':>10}{'no tests':>10}{'timeout':>9}{'rate':>8}")
    for name in chosen:
        s = run_module(
            name,
            shared,
            modules[name],
            sample=args.sample,
            seed=args.seed,
            jobs=args.jobs,
            root=Path(args.work),
        )
        report[name] = s
        rate = "-" if s["kill_rate"] is None else f"{s['kill_rate']:.1%}"
        print(
            f"{name:<14}{s['killed']:>8}{s['survived']:>10}{s['no_tests']:>10}"
            f"{s['timeout']:>9}{rate:>8}   ({s['seconds']} s, log {s['log']})",
            flush=True,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    report = dict(sorted(report.items()))
    path.write_text(json.dumps({"tool": "mutmut", "modules": report}, indent=2) + "\n", "utf-8")
    print(f"summary written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
