"""Fault injection: fail every storage call of every commit kind, one at a time.

For each commit kind, a fault-free run under a counting `FaultyStorage` (tests/_faults.py)
learns how many storage calls the operation makes; then, for each call N, a fresh
dataset with a known history (three versions on main, a tag, a branch with its own
commit) runs the operation with call N failing (``raise``: a `StorageError` or an
``OSError``; ``crash``: the process dies there; ``ambiguous``: a write lands, then
fails). Afterwards, from a fresh plain storage and empty caches:

(a) the dataset opens;
(b) every version, tag and branch head acknowledged before reads back byte-identical
    (same snapshot id, equal rows);
(c) nothing half-written shows: the head is either unchanged or the new version,
    complete, with the rows the fault-free run produced; a new ref either does not
    exist or resolves to the right snapshot;
(d) the operation, retried on a fresh storage when it did not land, succeeds with the
    expected rows, and the dataset takes one more commit.

A raise must reach the caller as a `lakever.LakeverError`, never a raw ``OSError``.
Another storage kind joins the walk by adding one entry to `STORAGE_KINDS`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle  # noqa: TID251 - the wrapper's pickling is checked
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from _data import events
from _faults import WRITES, Crash, FaultPlan, FaultyStorage, Mode, forget_caches, inject
from _memory import keep
from _s3 import make_bucket

import lakever as lv
from lakever.storage import LocalStorage, ObjectStorage, open_storage

# --------------------------------------------------------------------------- storage kinds

#: name -> a function of the test's tmp_path returning a fresh dataset URI. Add a kind
#: (e.g. "s3" through a local moto server) here, with the marks it needs.
STORAGE_KINDS: dict[str, Callable[[Path], str]] = {
    "local": lambda tmp: str(tmp / f"ds-{uuid.uuid4().hex[:8]}"),
    "memory": lambda tmp: f"memory://lakever-faults/{uuid.uuid4().hex}/ds",
    # A fresh bucket on the local S3 server (tests/conftest.py, `s3_server`).
    "s3": lambda tmp: make_bucket(os.environ["AWS_ENDPOINT_URL"]) + "/ds",
}


@pytest.fixture(autouse=True)
def _s3_server_when_needed(request: pytest.FixtureRequest) -> None:
    """Start the S3 server for the cases that run on it."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("storage") == "s3":
        request.getfixturevalue("s3_server")


#: The normal tier fails every K-th call (and the last), each mode from another offset
#: so that together they cover more calls; the slow tier fails every call.
SAMPLE_EVERY = 8
#: On S3 (the local server) a case costs ~30x more than on disk: the normal tier samples
#: sparser there; LAKEVER_FAULTS_S3_EVERY=1 walks every call (docs/testing.md).
SAMPLE_EVERY_S3 = int(os.environ.get("LAKEVER_FAULTS_S3_EVERY", "24"))

# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class History:
    """What was acknowledged before the operation ran."""

    versions: list[tuple[str, pa.Table]]  # main's versions: (snapshot id, rows)
    tag: str  # snapshot id of tag "t1"
    exp: tuple[int, str, pa.Table]  # branch "exp": head version, snapshot id, rows


def _setup(uri: str) -> History:
    """Main v0..v2 (v0 with primary key id), tag t1 at v1, branch exp from v1 with v2."""
    ds = lv.create_dataset(uri, events(0, 6), primary_key=["id"])
    ds = ds.append(events(6, 3))
    ds.tag("t1")
    exp = ds.branch("exp").append(events(100, 2))
    ds = ds.append(events(9, 3))
    versions = [
        (v.snapshot_id, v.to_arrow())
        for v in (lv.open_dataset(uri, version=i) for i in range(ds.version + 1))
    ]
    return History(versions, versions[1][0], (exp.version, exp.snapshot_id, exp.to_arrow()))


#: kind -> what it does to the main head (a Dataset) and returns.
Op = Callable[[Any], Any]
OPERATIONS: dict[str, Op] = {
    "append": lambda ds: ds.append(events(12, 2)),
    "overwrite": lambda ds: ds.overwrite(events(50, 4)),
    "delete": lambda ds: ds.delete("id < 3 OR id = 10"),
    "update": lambda ds: ds.update(set={"category": "'z'"}, where="id IN (1, 7)"),
    "upsert": lambda ds: ds.upsert(events(10, 4)),
    "evolve": lambda ds: ds.evolve(add={"score": pa.float64()}),
    "tag": lambda ds: ds.tag("t-new"),
    "branch": lambda ds: ds.branch("b-new"),
    "merge": lambda ds: ds.merge("exp"),
}
REF_KINDS = {"tag": "t-new", "branch": "b-new"}


@dataclass(frozen=True)
class Expected:
    """The outcome of the fault-free run: storage calls made and the rows it produced."""

    calls: list[tuple[str, str]]
    rows: pa.Table


def _reopen(uri: str, **kwargs: Any) -> lv.Dataset:
    """Open as a new process would: plain storage, no cached state."""
    forget_caches()
    return lv.open_dataset(uri, **kwargs)


def _outcome_rows(kind: str, result: Any, uri: str) -> pa.Table:
    if kind == "tag":
        return _reopen(uri, version=REF_KINDS["tag"]).to_arrow()
    assert isinstance(result, lv.Dataset)
    return _reopen(uri, version=result.snapshot_id).to_arrow()


@dataclass(frozen=True)
class Template:
    """A dataset with the known history, copied afresh for every case (cheaper than
    committing the history again: on local disk each commit pays for its fsyncs)."""

    uri: str
    history: History

    def fresh_copy(self, storage: str, tmp_path: Path) -> str:
        uri = STORAGE_KINDS[storage](tmp_path)
        src, dst = open_storage(self.uri), open_storage(uri)
        if isinstance(src, ObjectStorage):
            with ThreadPoolExecutor(16) as pool:
                rels = [f.path for f in src.walk("")]
                list(pool.map(lambda rel: dst.write_new(rel, src.read_bytes(rel)), rels))
            return uri
        fs = src.fsspec_filesystem()
        fs.copy(src.full_path("").rstrip("/"), dst.full_path("").rstrip("/"), recursive=True)
        return uri


_TEMPLATES: dict[str, Template] = {}
_EXPECTED: dict[tuple[str, str], Expected] = {}


def _template(storage: str, tmp_path_factory: pytest.TempPathFactory) -> Template:
    if storage not in _TEMPLATES:
        uri = STORAGE_KINDS[storage](tmp_path_factory.mktemp("template"))
        if storage == "memory":
            keep(uri)  # the template serves every later test of the module
        _TEMPLATES[storage] = Template(uri, _setup(uri))
    return _TEMPLATES[storage]


def _expected(kind: str, storage: str, template: Template, tmp_path: Path) -> Expected:
    """Run ``kind`` once without faults (cached per storage kind) to count its calls."""
    key = (kind, storage)
    if key not in _EXPECTED:
        uri = template.fresh_copy(storage, tmp_path)
        forget_caches()
        with inject(FaultPlan()) as plan:
            ds = lv.open_dataset(uri)
            assert isinstance(ds._state.storage, FaultyStorage)
            plan.arm()
            result = OPERATIONS[kind](ds)
            calls = list(plan.calls)
        _EXPECTED[key] = Expected(calls, _outcome_rows(kind, result, uri))
    return _EXPECTED[key]


# --------------------------------------------------------------------------- the checks


def _run_with_fault(
    kind: str, uri: str, mode: Mode, at: int, error: str
) -> tuple[Any, BaseException | None, FaultPlan]:
    plan = FaultPlan(error=error)  # type: ignore[arg-type]
    forget_caches()
    with inject(plan):
        ds = lv.open_dataset(uri)
        plan.arm(mode, at)
        try:
            return OPERATIONS[kind](ds), None, plan
        except (Exception, Crash) as exc:
            return None, exc, plan


def _check_history(uri: str, before: History) -> None:
    """(a) and (b): it opens; everything acknowledged before reads back identical."""
    _reopen(uri)
    for v, (sid, rows) in enumerate(before.versions):
        view = _reopen(uri, version=v)
        assert view.snapshot_id == sid, f"version {v} changed"
        assert view.to_arrow().equals(rows), f"version {v} reads other rows"
        assert _reopen(uri, version=sid).version == v
    assert _reopen(uri, version="t1").snapshot_id == before.tag
    exp = _reopen(uri, branch="exp")
    assert (exp.version, exp.snapshot_id) == before.exp[:2]
    assert exp.to_arrow().equals(before.exp[2])


def _landed(kind: str, uri: str, before: History, expected: Expected) -> bool:
    """(c): whether the operation's effect is visible -- and if so, that it is complete."""
    head_sid = before.versions[-1][0]
    if kind in REF_KINDS:
        head = _reopen(uri)
        assert head.snapshot_id == head_sid, "a ref operation moved the head"
        try:
            view = _reopen(uri, version="t-new") if kind == "tag" else _reopen(uri, branch="b-new")
        except lv.VersionNotFound:
            assert REF_KINDS[kind] not in {
                *(t.name for t in head.tags()),
                *(b.name for b in head.branches()),
            }
            return False
        assert view.snapshot_id == head_sid
        assert view.to_arrow().equals(expected.rows)
        return True
    head = _reopen(uri)
    if head.snapshot_id == head_sid:
        return False
    assert head.version == len(before.versions), "the head moved by more than one version"
    assert head.commit.parent_id == head_sid
    # Reading verifies every fragment against its manifest entry: all of it was written.
    assert head.to_arrow().equals(expected.rows), "the new version is not the operation's"
    return True


def _retry_and_continue(kind: str, uri: str, landed: bool, expected: Expected) -> None:
    """(d): a retry (when nothing landed) succeeds; the dataset still takes commits."""
    if not landed:
        result = OPERATIONS[kind](_reopen(uri))
        assert _outcome_rows(kind, result, uri).equals(expected.rows)
    head = _reopen(uri)
    row = head.to_arrow().slice(0, 1)
    row = row.set_column(0, "id", pa.array([1000], pa.int64()))  # a new key, any schema
    after = head.append(row)
    assert _reopen(uri).snapshot_id == after.snapshot_id
    assert _reopen(uri).num_rows == head.num_rows + 1
    # A schema change claims field ids above any a failed commit claimed and left behind.
    used = {*after.field_ids.values(), *_reopen(uri, branch="exp").field_ids.values()}
    evolved = after.evolve(add={"after_fault": pa.int32()})
    assert evolved.field_ids["after_fault"] > max(used)
    assert _reopen(uri).snapshot_id == evolved.snapshot_id
    if kind == "branch":
        b = _reopen(uri, branch="b-new").append(events(2000, 1))
        assert _reopen(uri, branch="b-new").snapshot_id == b.snapshot_id


def check_fault(
    kind: str, storage: str, mode: Mode, at: int, error: str, template: Template, tmp_path: Path
) -> None:
    expected = _expected(kind, storage, template, tmp_path)
    uri = template.fresh_copy(storage, tmp_path)
    before = template.history
    result, exc, plan = _run_with_fault(kind, uri, mode, at, error)
    where = f"{kind}: {mode} at call {at} {plan.fired}"
    assert plan.fired is not None, f"{where}: the fault never fired"
    if mode == "crash":
        assert isinstance(exc, Crash), f"{where}: {exc!r}"
    elif exc is not None:
        assert isinstance(exc, lv.LakeverError), f"{where}: raw {type(exc).__name__}: {exc}"
        if isinstance(exc, lv.StorageError):
            assert exc.path and exc.path in str(exc), f"{where}: {exc} does not name the path"
    method = plan.fired[0]
    if mode != "crash" and method == "write_hint":
        # Hints are advisory: a failure to write one never fails the operation.
        assert exc is None, f"{where}: a hint failure failed the operation: {exc!r}"
    if mode == "ambiguous" and method == "put_if_absent":
        # The create landed: read back, it is this writer's, so the operation succeeds.
        assert exc is None, f"{where}: a create that landed was reported failed: {exc!r}"
    _check_history(uri, before)
    landed = _landed(kind, uri, before, expected)
    if exc is not None and at < _publish_call(expected.calls):
        # Failed before the one step that makes it visible: nothing may show.
        assert not landed, f"{where}: failed before publishing, yet it landed"
    if result is not None:
        assert landed, f"{where}: the operation returned but its effect is not visible"
        assert _outcome_rows(kind, result, uri).equals(expected.rows)
    _retry_and_continue(kind, uri, landed, expected)


def _publish_call(calls: list[tuple[str, str]]) -> int:
    """The number of the call that makes the operation visible: the create of its log
    entry, or of its tag or branch name."""
    return next(
        i + 1
        for i, (method, rel) in enumerate(calls)
        if method == "put_if_absent" and rel.startswith(("_lakever/log/", "_lakever/refs/"))
    )


def _points(calls: list[tuple[str, str]], mode: Mode, *, every: int, offset: int = 0) -> list[int]:
    """The call numbers to fail: every ``every``-th from ``offset``, and the last one.

    An ambiguous fault on a read is a plain raise, so only writes are walked for it.
    """
    numbers = [
        i + 1 for i, (method, _) in enumerate(calls) if mode != "ambiguous" or method in WRITES
    ]
    return sorted({*numbers[offset % every :: every], *numbers[-1:]})


# --------------------------------------------------------------------------- the tests

MODES: list[tuple[Mode, str]] = [
    ("raise", "storage"),
    ("raise", "oserror"),
    ("crash", "storage"),
    ("ambiguous", "storage"),
]
MODE_IDS = ["raise", "raise-oserror", "crash", "ambiguous"]


@pytest.mark.parametrize("storage", list(STORAGE_KINDS))
@pytest.mark.parametrize(("mode", "error"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("kind", list(OPERATIONS))
def test_fault_at_sampled_calls(kind, mode, error, storage, tmp_path, tmp_path_factory):
    template = _template(storage, tmp_path_factory)
    calls = _expected(kind, storage, template, tmp_path).calls
    offset = MODES.index((mode, error))
    every = 2 if mode == "ambiguous" else SAMPLE_EVERY
    if storage == "s3":
        every = SAMPLE_EVERY_S3 // (4 if mode == "ambiguous" else 1) or 1
    for at in _points(calls, mode, every=every, offset=offset):
        check_fault(kind, storage, mode, at, error, template, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize(
    "storage",
    # Every call on S3 is ~1,700 cases of ~1 s: run on demand (LAKEVER_FAULTS_S3_EVERY=1).
    [k for k in STORAGE_KINDS if k != "s3" or SAMPLE_EVERY_S3 == 1],
)
@pytest.mark.parametrize(("mode", "error"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("kind", list(OPERATIONS))
def test_fault_at_every_call(kind, mode, error, storage, tmp_path, tmp_path_factory):
    template = _template(storage, tmp_path_factory)
    calls = _expected(kind, storage, template, tmp_path).calls
    for at in _points(calls, mode, every=1):
        check_fault(kind, storage, mode, at, error, template, tmp_path)


# --------------------------------------------------------------------------- the wrapper itself


def _log_entry_call(calls: list[tuple[str, str]]) -> int:
    """The number of the call that publishes a commit's log entry."""
    return _publish_call(calls)


@pytest.mark.parametrize("storage", list(STORAGE_KINDS))
def test_the_wrapper_injects(storage, tmp_path, tmp_path_factory):
    """Without a fault the append lands; failing its log entry's create, it does not."""
    template = _template(storage, tmp_path_factory)
    expected = _expected("append", storage, template, tmp_path)
    at = _log_entry_call(expected.calls)
    head = template.history.versions[-1][0]

    uri = template.fresh_copy(storage, tmp_path)
    result, exc, plan = _run_with_fault("append", uri, "raise", len(expected.calls) + 1, "storage")
    assert exc is None and plan.fired is None and len(plan.calls) == len(expected.calls)
    assert _reopen(uri).snapshot_id == result.snapshot_id != head

    uri = template.fresh_copy(storage, tmp_path)
    result, exc, plan = _run_with_fault("append", uri, "raise", at, "storage")
    assert plan.fired == ("put_if_absent", expected.calls[at - 1][1])
    assert isinstance(exc, lv.StorageError) and result is None
    assert _reopen(uri).snapshot_id == head  # the new version is absent

    uri = template.fresh_copy(storage, tmp_path)
    result, exc, plan = _run_with_fault("append", uri, "crash", at, "storage")
    assert isinstance(exc, Crash) and plan.dead
    assert len(plan.calls) == at  # nothing reached storage after the crash
    assert _reopen(uri).snapshot_id == head


@pytest.mark.parametrize("storage", list(STORAGE_KINDS))
def test_an_ambiguous_log_entry_create_is_resolved_by_reading_back(
    storage, tmp_path, tmp_path_factory
):
    """The entry landed, the put raised: the commit returns the version that landed."""
    template = _template(storage, tmp_path_factory)
    expected = _expected("append", storage, template, tmp_path)
    uri = template.fresh_copy(storage, tmp_path)
    at = _log_entry_call(expected.calls)
    result, exc, plan = _run_with_fault("append", uri, "ambiguous", at, "storage")
    assert exc is None, repr(exc)
    assert plan.calls[at] == ("read_bytes", plan.fired[1])  # the read-back
    assert _reopen(uri).snapshot_id == result.snapshot_id
    assert result.version == len(template.history.versions)
    assert _reopen(uri).to_arrow().equals(expected.rows)


def test_faulty_storage_forwards_every_role(tmp_path):
    plan = FaultPlan()
    inner = open_storage(str(tmp_path / "ds"))
    store = FaultyStorage(inner, plan)
    assert (store.uri, store.protocol, store.is_local) == (inner.uri, "file", True)
    assert store.full_path("a/b") == inner.full_path("a/b")
    assert store.arrow_filesystem() is None
    assert store.fsspec_filesystem().protocol == inner.fsspec_filesystem().protocol
    assert store.put_if_absent("x", b"1") and not store.put_if_absent("x", b"2")
    store.write_new("y", b"2")
    store.write_new_stream("z", lambda sink: sink.write(b"4"))
    store.write_hint("h", b"3")
    store.flush()
    assert store.read_bytes("x") == b"1" and store.exists("y") and store.list("") == [
        "h", "x", "y", "z",
    ]  # fmt: skip
    assert inner.read_bytes("z") == b"4"
    store.delete("y")
    assert not inner.exists("y")
    assert [f.path for f in store.walk("")] == ["h", "x", "z"]
    store.delete_many(["h", "x", "z"])
    assert inner.list("") == []
    assert [m for m, _ in plan.calls] == [
        "put_if_absent", "put_if_absent", "write_new", "write_new_stream", "write_hint", "flush",
        "read_bytes", "exists", "list", "delete", "walk", "delete_many",
    ]  # fmt: skip
    copy = pickle.loads(pickle.dumps(store))  # a worker gets the plain inner storage
    assert type(copy) is type(inner) and copy.uri == inner.uri


def test_inject_reaches_every_open_storage(tmp_path):
    uri = str(tmp_path / "lake" / "ds")
    lv.create_dataset(uri, events(0, 2))
    with inject(FaultPlan()) as plan:
        plan.arm()
        assert isinstance(lv.open_dataset(uri)._state.storage, FaultyStorage)
        w = lv.write_dataset(uri, events(2, 1), mode="append")
        assert isinstance(w._state.storage, FaultyStorage)
        assert isinstance(lv.connect(str(tmp_path / "lake"))._storage, FaultyStorage)
        assert plan.calls
    assert not isinstance(lv.open_dataset(uri)._state.storage, FaultyStorage)


class _RawOSErrors(LocalStorage):
    """A backend that lets its client's errors through, as fsspec-based ones do."""

    def read_bytes(self, rel: str) -> bytes:
        if rel == "absent":
            raise FileNotFoundError(rel)
        raise OSError(errno.EIO, "Input/output error")

    def list(self, rel_dir: str) -> list[str]:
        raise TimeoutError("read timed out")


def test_the_seam_turns_a_backend_oserror_into_a_storage_error(tmp_path):
    store = _RawOSErrors(str(tmp_path))
    with pytest.raises(lv.StorageError, match=r"cannot read .*/x: Input/output error") as info:
        store.read_bytes("x")
    assert info.value.path == store.full_path("x")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(FileNotFoundError):  # "absent" stays a signal
        store.read_bytes("absent")
    with pytest.raises(lv.StorageError, match=r"cannot list .*/d: read timed out"):
        store.list("d")
    store.write_new("y", b"1")
    with pytest.raises(FileExistsError):  # "name taken" stays a signal
        store.write_new("y", b"1")


def test_publish_resolves_an_ambiguous_create_by_reading_back(tmp_path):
    plan = FaultPlan()
    store, other = FaultyStorage(open_storage(str(tmp_path)), plan), open_storage(str(tmp_path))
    plan.arm("ambiguous", 1)
    assert store.publish("a", b"mine")  # it landed, then the call failed: ours
    assert plan.calls == [("put_if_absent", "a"), ("read_bytes", "a")]
    other.put_if_absent("b", b"theirs")
    plan.arm("ambiguous", 1)
    assert not store.publish("b", b"mine")  # another writer's bytes: a lost race
    plan.arm("raise", 1)
    with pytest.raises(lv.StorageError, match=r"cannot put_if_absent .*/c: injected") as info:
        store.publish("c", b"mine")  # absent: the failure stands
    assert info.value.path == other.full_path("c") and not other.exists("c")


# --------------------------------------------------------------------------- push


def _check_remote(src: str, dst: str) -> None:
    """Whatever the destination shows is the source's, whole: refs are published last."""
    try:
        head = _reopen(dst)
    except lv.DatasetNotFound:
        return  # nothing published yet
    for v in range(head.version + 1):
        there, here = _reopen(dst, version=v), _reopen(src, version=v)
        assert there.snapshot_id == here.snapshot_id, f"version {v} differs"
        assert there.to_arrow().equals(here.to_arrow()), f"version {v} reads other rows"
    for tag in head.tags():
        assert tag.snapshot_id == _reopen(src, version=tag.name).snapshot_id
        _reopen(dst, version=tag.name).to_arrow()
    for b in head.branches():
        view = _reopen(dst, branch=b.name)
        assert view.to_arrow().equals(
            _reopen(src, branch=b.name, version=b.head_version).to_arrow()
        ), f"branch {b.name} reads other rows"


def _push_with_fault(
    src: str, dst: str, mode: Mode | None, at: int | None, error: str
) -> tuple[Any, BaseException | None, FaultPlan]:
    plan = FaultPlan(error=error)  # type: ignore[arg-type]
    forget_caches()
    with inject(plan):
        plan.arm(mode, at)
        try:
            return lv.push(src, dst), None, plan
        except (Exception, Crash) as exc:
            return None, exc, plan


@pytest.mark.parametrize("storage", list(STORAGE_KINDS))
@pytest.mark.parametrize(("mode", "error"), MODES, ids=MODE_IDS)
def test_push_fault_at_sampled_calls(mode, error, storage, tmp_path, tmp_path_factory):
    """A push failing or dying at any storage call (either side) never shows a ref whose
    data is missing on the destination, and running it again completes it."""
    every = SAMPLE_EVERY_S3 if storage == "s3" else 3
    _walk_push(mode, error, storage, every, tmp_path, tmp_path_factory)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("storage", [k for k in STORAGE_KINDS if k != "s3" or SAMPLE_EVERY_S3 == 1])
@pytest.mark.parametrize(("mode", "error"), MODES, ids=MODE_IDS)
def test_push_fault_at_every_call(mode, error, storage, tmp_path, tmp_path_factory):
    _walk_push(mode, error, storage, 1, tmp_path, tmp_path_factory)


def _walk_push(
    mode: Mode, error: str, storage: str, every: int, tmp_path: Path, factory: Any
) -> None:
    template = _template(storage, factory)
    src = template.fresh_copy(storage, tmp_path)
    _, exc, plan = _push_with_fault(src, STORAGE_KINDS[storage](tmp_path), None, None, error)
    assert exc is None, exc
    calls = list(plan.calls)
    offset = MODES.index((mode, error)) % every
    for at in _points(calls, mode, every=every, offset=offset):
        dst = STORAGE_KINDS[storage](tmp_path)
        _, exc, plan = _push_with_fault(src, dst, mode, at, error)
        where = f"push: {mode} at call {at} {plan.fired}"
        assert plan.fired is not None, f"{where}: the fault never fired"
        if mode == "crash":
            assert isinstance(exc, Crash), f"{where}: {exc!r}"
        elif exc is not None:
            assert isinstance(exc, lv.LakeverError), f"{where}: raw {type(exc).__name__}: {exc}"
        _check_remote(src, dst)
        # Resume: running it again completes the push.
        forget_caches()
        lv.push(src, dst)
        _check_remote(src, dst)
        assert _reopen(dst).snapshot_id == _reopen(src).snapshot_id, where
        assert {t.name for t in _reopen(dst).tags()} == {"t1"}
        assert {b.name for b in _reopen(dst).branches()} == {"main", "exp"}


# --------------------------------------------------------------------------- maintenance

SHORT_GRACE = {"grace": timedelta(0), "allow_short_grace": True}


def _maintenance_setup(uri: str) -> dict[str, pa.Table]:
    """Five appends, a tag on version 2, a compaction: what the roots must keep showing."""
    ds = lv.create_dataset(uri, events(0, 3))
    for i in range(1, 5):
        ds = ds.append(events(3 * i, 3))
    lv.open_dataset(uri, version=2).tag("keep")
    ds = ds.compact()
    return {"keep": lv.open_dataset(uri, version="keep").to_arrow(), "head": ds.to_arrow()}


def _expire_and_vacuum(uri: str) -> None:
    ds = lv.open_dataset(uri)
    ds.expire(keep_last=1, dry_run=False)
    ds.vacuum(dry_run=False, **SHORT_GRACE)


@pytest.mark.parametrize(("mode", "error"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("storage", ["local", "memory"])
def test_fault_during_expire_and_vacuum(mode, error, storage, tmp_path):
    """A failure at any storage call of an expiry followed by a vacuum: only a
    LakeverError reaches the caller (or the simulated crash), the tag and the head read
    back identical, every version either reads back or says VersionExpired, and running
    both again finishes the job (nothing a root needs is ever deleted)."""
    template = STORAGE_KINDS[storage](tmp_path / "template")
    want = _maintenance_setup(template)
    tmpl = Template(template, History([], "", (0, "", pa.table({}))))
    forget_caches()
    with inject(FaultPlan()) as plan:
        plan.arm()
        _expire_and_vacuum(tmpl.fresh_copy(storage, tmp_path / "count"))
        calls = list(plan.calls)
    assert any(m == "delete_many" for m, _ in calls)
    for i, at in enumerate(_points(calls, mode, every=1 if storage == "memory" else 3)):
        uri = tmpl.fresh_copy(storage, tmp_path / f"case{i}")
        forget_caches()
        with inject(FaultPlan(error=error)) as faulty:  # type: ignore[arg-type]
            faulty.arm(mode, at)
            try:
                _expire_and_vacuum(uri)
            except Crash:
                pass
            except lv.LakeverError:
                assert mode != "ambiguous" or faulty.fired is not None
        assert faulty.fired is not None
        for _ in range(2):  # as found, then after a retry
            assert _reopen(uri, version="keep").to_arrow().equals(want["keep"])
            assert _reopen(uri).to_arrow().equals(want["head"])
            for v in range(_reopen(uri).version + 1):
                with contextlib.suppress(lv.VersionExpired):
                    _reopen(uri, version=v).to_arrow()
            _expire_and_vacuum(uri)
        assert _reopen(uri).verify(full=True, all_refs=True).ok
        assert _reopen(uri).vacuum(**SHORT_GRACE).files == ()
