"""The slow tier's mutation sample: the suite kills at least 90% of a seeded sample of mutants.

A small deterministic sample (same seed, same mutants, derandomised hypothesis) of a few
core modules, run through scripts/mutation.py exactly as a developer runs it. A drop
below 90% means new code went in without tests that notice when it breaks: run
``bash scripts/mutation.sh <module>`` and read the survivors (docs/testing.md).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
#: Modules whose mutants run against quick tests: the sample size and the tests of each
#: (the module's own test file, so the sample stays within a few minutes).
SAMPLE = {
    "sql": (10, "tests/test_sql.py"),
    "deletion": (10, "tests/test_deletion.py"),
    "format": (10, "tests/test_format.py"),
}
SEED = 20261201


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_seeded_sample_of_mutants_is_killed(tmp_path):
    if importlib.util.find_spec("mutmut") is None:
        pytest.fail("mutmut is missing: install the dev extra (pip install -e '.[dev]')")
    report = tmp_path / "mutation.json"
    rates = {}
    for module, (size, tests) in SAMPLE.items():
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "mutation.py"),
                module,
                "--sample",
                str(size),
                "--seed",
                str(SEED),
                "--jobs",
                "1",
                "--work",
                str(tmp_path / "work"),
                "--json",
                str(report),
                "--tests",
                tests,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        result = json.loads(report.read_text())["modules"][module]
        assert result["sample"]["size"] == size
        assert result["suspicious"] == 0 and result["not_checked"] == 0, result
        rates[module] = result
    killed = sum(r["killed"] + r["timeout"] for r in rates.values())
    tried = sum(r["killed"] + r["timeout"] + r["survived"] + r["no_tests"] for r in rates.values())
    survivors = [name for r in rates.values() for name in r["not_killed"]]
    assert killed / tried >= 0.9, f"{killed}/{tried} killed; survivors: {survivors}"
