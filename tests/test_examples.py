"""Every script in examples/ runs, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_quickstart_tells_the_story(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES[0].parent / "quickstart.py"), str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = proc.stdout
    assert "created" in out and "version 0 with 4 rows" in out
    assert "appended: version 1, 6 rows" in out
    assert "overwrote: version 2, 4 rows" in out
    assert "the pin reopens version 1 with 6 rows" in out
    assert "v2 overwrite" in out and "v0 create" in out
