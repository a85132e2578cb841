"""Shared fixtures: a dataset location on every backend, hypothesis profiles."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[str]:
    """A local S3-protocol server (moto, which enforces conditional writes) on 127.0.0.1.

    Started once per test process and stopped at its end; the AWS environment
    variables point every client at it (``AWS_ENDPOINT_URL``, test credentials), and
    lakever's object cache lives in this session's temporary directory.
    """
    from tests._s3 import start_server

    server, endpoint = start_server()
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="lakever-test-key",
        AWS_SECRET_ACCESS_KEY="lakever-test-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        LAKEVER_CACHE_DIR=str(tmp_path_factory.mktemp("lakever-cache")),
    )
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


_S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "LAKEVER_CACHE_DIR",
)


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket on the test S3 server: ``s3://<bucket>``."""
    from tests._s3 import make_bucket

    return make_bucket(s3_server)


@pytest.fixture(params=["local", "memory", "s3"])
def location(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh dataset URI on each storage backend lakever can commit to.

    Every test taking it is the storage conformance suite: it runs on local disk,
    in memory and on S3 (a local S3-protocol server, `s3_server`).
    """
    if request.param == "local":
        return str(tmp_path / "events")
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket") + "/events"
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


@pytest.fixture(autouse=True)
def _forget_memory_objects() -> Iterator[None]:
    """Drop the ``memory://`` objects a test created when it ends.

    fsspec's memory filesystem is one dict per process, and listing a prefix scans all of
    it: without this, every ``memory://`` listing gets slower as a worker runs more tests
    (an expiry/vacuum fault test went from ~1 min to over 10 late in a full run). Objects
    made by wider-scoped fixtures exist before this runs and are kept, and so are those
    under a location a test module names with `_memory.keep`.
    """
    from _memory import KEPT
    from fsspec.implementations.memory import MemoryFileSystem

    store, dirs = MemoryFileSystem.store, MemoryFileSystem.pseudo_dirs
    before, before_dirs = set(store), set(dirs)
    yield
    kept = tuple(KEPT)
    for key in set(store) - before:
        if not key.startswith(kept):
            store.pop(key, None)
    dirs[:] = [d for d in dirs if d in before_dirs or (d + "/").startswith(kept)]
