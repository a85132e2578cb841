"""Shared fixtures: a dataset location on every backend, hypothesis profiles."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles (docs/testing.md). HYPOTHESIS_PROFILE picks one; otherwise `ci`
# when CI is set, `dev` elsewhere.
#   ci        derandomised: the same examples on every run, so CI is reproducible;
#   explore   randomised: what a fixed seed never draws
#             (.ci/run runs the property tests again with it);
#   dev       randomised, local runs;
#   mutation  derandomised and small: one mutant's tests run in seconds.
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60, suppress_health_check=_QUIET
)
settings.register_profile("explore", deadline=None, max_examples=30, suppress_health_check=_QUIET)
settings.register_profile("dev", deadline=None, max_examples=30, suppress_health_check=_QUIET)
settings.register_profile(
    "mutation", derandomize=True, deadline=None, max_examples=12, suppress_health_check=_QUIET
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

# Subprocesses (workers, examples, the typer docs generator) must import the lakever
# under test, not whichever checkout the environment has installed (an editable
# install may point at another worktree).
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
)


@pytest.fixture(params=["local", "memory"])
def location(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh dataset URI on each storage backend lakever can commit to."""
    if request.param == "local":
        return str(tmp_path / "events")
    return f"memory://lakever-tests/{uuid.uuid4().hex}/events"


@pytest.fixture
def local_location(tmp_path) -> str:
    """A fresh dataset path on local disk (for tests that need several processes)."""
    return str(tmp_path / "events")


@pytest.fixture
def fragment_reads(monkeypatch) -> list[str]:
    """The paths of the fragments lakever verifies before reading them, in call order.

    Every read path verifies a fragment right before an engine reads it, so this
    is the list of fragments each operation reads.
    """
    import lakever.integrity as integrity

    seen: list[str] = []
    monkeypatch.setattr(integrity, "_note", lambda refs: seen.extend(r.path for r in refs))
    return seen
