"""push / pull / clone between two datasets: history copied exactly, verified, refs last."""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import lakever as lv
import lakever.remote as remote
from lakever.errors import StorageError
from lakever.format import FIELD_ID_DIR, field_id_claim_path
from lakever.storage import ObjectStorage, Storage, StoredFile, open_storage
from lakever.storage.base import ByteSink
from tests._data import events

#: Files that are not immutable objects (hints, index, refs, events): not counted as copied.
_ADVISORY = ("LATEST", "_lakever/snapshots/", "_lakever/refs/")


@pytest.fixture(params=["local", "memory", "s3"])
def remote_uri(request: pytest.FixtureRequest, tmp_path) -> str:
    """Where the remote dataset lives: every test runs on each backend."""
    if request.param == "local":
        return str(tmp_path / "remote")
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket") + "/remote"
    return f"memory://lakever-remote-tests/{uuid.uuid4().hex}/remote"


@pytest.fixture
def local(tmp_path) -> str:
    return str(tmp_path / "local")


def _objects(uri: str) -> dict[str, int]:
    """Every immutable object of a dataset: relative path -> size."""
    storage = open_storage(uri)
    fs = storage.fsspec_filesystem()
    root = storage.full_path("").rstrip("/")
    if isinstance(storage, ObjectStorage):
        out = {f.path: f.size for f in storage.walk("")}
    elif storage.is_local:
        out = {
            os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"): os.path.getsize(
                os.path.join(d, f)
            )
            for d, _, files in os.walk(root)
            for f in files
        }
    else:
        prefix = root.split("://", 1)[1]
        out = {p[len(prefix) + 1 :]: fs.size(p) for p in fs.find(prefix)}
    return {p: n for p, n in out.items() if not any(a in p for a in _ADVISORY)}


def _assert_same(a: str, b: str, *, tags: bool = True) -> None:
    """Every branch version and tag of ``a`` reads the same in ``b`` (rows and snapshot ids)."""
    src = lv.open_dataset(a)
    for br in src.branches():
        for v in range(br.head_version + 1):
            x = lv.open_dataset(a, branch=br.name, version=v)
            y = lv.open_dataset(b, branch=br.name, version=v)
            assert x.snapshot_id == y.snapshot_id, (br.name, v)
            assert x.to_arrow().equals(y.to_arrow()), (br.name, v)
        ys = lv.open_dataset(b, branch=br.name)
        assert ys.version == br.head_version
        assert [c.snapshot_id for c in ys.history()] == [
            c.snapshot_id for c in lv.open_dataset(a, branch=br.name).history()
        ]
    if tags:
        for t in src.tags():
            assert lv.open_dataset(b, version=f"tag:{t.name}").snapshot_id == t.snapshot_id
            assert (
                lv.open_dataset(b, version=f"tag:{t.name}")
                .to_arrow()
                .equals(lv.open_dataset(a, version=f"tag:{t.name}").to_arrow())
            )


def _rich(uri: str) -> None:
    """A dataset with appends, a tag, a schema change, deletes, a branch and a merge."""
    ds = lv.create_dataset(uri, events(0, 20), primary_key=["id"])
    ds = ds.append(events(20, 5))
    ds.tag("v1", message="first")
    ds = ds.evolve(add={"score": pa.float64()})
    exp = ds.branch("exp").append(events(100, 3).append_column("score", pa.array([1.0] * 3)))
    exp = exp.delete(where="id = 101")
    ds = ds.delete(where="id < 3")
    ds = ds.merge("exp")
    ds.update(set={"score": "2.5"}, where="id = 10")
    lv.open_dataset(uri).branch("side").append(
        events(200, 1).append_column("score", pa.array([0.5]))
    )


# ---------------------------------------------------------------------------- basics


def test_clone_reads_every_version_branch_and_tag_equal(local, remote_uri):
    _rich(local)
    result = lv.clone(local, remote_uri)
    assert {(u.name, u.kind) for u in result.updated} == {
        ("main", "branch"),
        ("exp", "branch"),
        ("side", "branch"),
        ("v1", "tag"),
    }
    assert result.objects_skipped == 0
    _assert_same(local, remote_uri)
    copied = _objects(remote_uri)
    assert result.objects_copied == len(copied)
    assert result.bytes_copied == sum(copied.values())
    # Everything the source holds is needed by some ref: the copy is the same set of files.
    assert copied == _objects(local)
    # Cloning into a dataset is refused; an identical push is a no-op.
    with pytest.raises(lv.DatasetExists, match="pull into it instead"):
        lv.clone(local, remote_uri)
    again = lv.push(local, remote_uri)
    assert again.updated == ()
    assert again.objects_copied == 0
    assert len(again.up_to_date) == 4


def test_clone_one_tag_copies_only_its_history(local, remote_uri):
    _rich(local)
    result = lv.clone(local, remote_uri, ref="v1")
    assert [(u.name, u.kind) for u in result.updated] == [("v1", "tag")]
    tagged = lv.open_dataset(remote_uri, version="tag:v1")
    assert tagged.to_arrow().equals(lv.open_dataset(local, version="tag:v1").to_arrow())
    # The line up to the tag only: main shows version 1, no other branch exists.
    assert lv.open_dataset(remote_uri).version == 1
    assert [b.name for b in lv.open_dataset(remote_uri).branches()] == ["main"]
    assert not any(p.startswith("_lakever/deletions/") for p in _objects(remote_uri))


def test_pull_brings_evolution_deletes_and_merges(local, remote_uri, tmp_path):
    _rich(remote_uri)
    result = lv.pull(remote_uri, local)
    assert {u.name for u in result.updated} == {"main", "exp", "side", "v1"}
    _assert_same(remote_uri, local)
    # The pulled copy is a full dataset: it can be written and read back.
    ds = lv.open_dataset(local).append(
        events(300, 1).append_column("score", pa.array([None], pa.float64()))
    )
    assert ds.num_rows == lv.open_dataset(remote_uri).num_rows + 1
    assert [c.operation for c in ds.history()][:4] == ["append", "update", "merge", "delete"]


def test_refs_subset_and_name_validation(local, remote_uri):
    _rich(local)
    result = lv.push(local, remote_uri, ["exp"])
    assert [u.name for u in result.updated] == ["exp"]
    # exp's history includes main up to its base: main is readable up to there, not beyond.
    assert (
        lv.open_dataset(remote_uri, branch="exp")
        .to_arrow()
        .equals(lv.open_dataset(local, branch="exp").to_arrow())
    )
    base = {b.name: b.base_version for b in lv.open_dataset(local).branches()}["exp"]
    assert lv.open_dataset(remote_uri).version == base
    with pytest.raises(lv.RefNotFound, match="'nope' is not a branch or tag"):
        lv.push(local, remote_uri, ["nope"])
    with pytest.raises(lv.InvalidRefName):
        lv.push(local, remote_uri, ["../escape"])
    with pytest.raises(lv.InvalidRefName):
        lv.push(local, remote_uri, ["bad\x01name"])


# ----------------------------------------------------------------- incremental, ff


def test_incremental_push_copies_only_new_objects(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 10))
    lv.push(local, remote_uri)
    before = _objects(remote_uri)
    ds = ds.append(events(10, 5)).append(events(15, 5))
    result = lv.push(local, remote_uri)
    after = _objects(remote_uri)
    new = {p: n for p, n in after.items() if p not in before}
    assert result.objects_copied == len(new) == 4  # two fragments, two log entries
    assert result.bytes_copied == sum(new.values())
    assert [(u.name, u.old_version, u.new_version) for u in result.updated] == [("main", 0, 2)]
    assert lv.open_dataset(remote_uri).to_arrow().equals(ds.to_arrow())
    assert open_storage(remote_uri).read_bytes("_lakever/log/main/LATEST") == b"%020d\n" % 2


def test_incremental_push_costs_do_not_grow_with_history(local, remote_uri):
    # What a push of 3 new commits asks the destination must not depend on how much
    # history it already holds: a few new objects are probed one by one, the head is
    # found from the hint (with one listing after it on object stores).
    ds = lv.create_dataset(local, events(0, 10))
    costs = []
    for history in (10, 40):
        while ds.version < history:
            ds = ds.append(events(10 + ds.version, 1))
        lv.push(local, remote_uri)
        for i in range(3):
            ds = ds.append(events(1000 + 10 * history + i, 1))
        calls: dict[str, int] = {"exists": 0, "list": 0}
        dst = _Counting(open_storage(remote_uri), calls)
        result = remote.sync(open_storage(local), dst)
        assert result.updated[0].new_version == ds.version
        costs.append(dict(calls))
    # Only the head search on disks (galloping probes, logarithmic in history) may grow.
    assert costs[0]["list"] == costs[1]["list"] <= 5, costs
    assert costs[0]["exists"] <= costs[1]["exists"] <= costs[0]["exists"] + 3 <= 24, costs


def test_push_refused_when_remote_is_ahead_then_pull_fast_forwards(local, remote_uri, tmp_path):
    lv.create_dataset(local, events(0, 5))
    lv.push(local, remote_uri)
    other = str(tmp_path / "other")
    lv.clone(remote_uri, other)
    lv.open_dataset(other).append(events(5, 5))
    lv.push(other, remote_uri)
    with pytest.raises(lv.RemoteConflict, match=r"branch 'main' in .* is ahead.*Pull first") as ei:
        lv.push(local, remote_uri)
    assert (ei.value.source_version, ei.value.destination_version) == (0, 1)
    with pytest.raises(lv.RemoteConflict, match="is ahead"):
        lv.push(local, remote_uri, force=True)
    result = lv.pull(remote_uri, local)
    assert [(u.name, u.old_version, u.new_version) for u in result.updated] == [("main", 0, 1)]
    assert lv.open_dataset(local).num_rows == 10


def test_same_id_divergence_is_refused_even_with_force(local, remote_uri, tmp_path):
    lv.create_dataset(local, events(0, 5))
    lv.clone(local, remote_uri)
    other = str(tmp_path / "other")
    lv.clone(remote_uri, other)
    lv.open_dataset(other).append(events(5, 1))
    lv.push(other, remote_uri)
    lv.open_dataset(local).append(events(50, 1))
    for force in (False, True):
        with pytest.raises(
            lv.RemoteConflict, match=r"branch 'main' has diverged.*cannot be forced"
        ):
            lv.push(local, remote_uri, force=force)
    # Nothing of the refused push landed: the remote still shows the other clone's rows.
    assert lv.open_dataset(remote_uri).to_arrow().equals(lv.open_dataset(other).to_arrow())


def test_force_repoints_a_branch_name_to_another_line(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 5))
    ds.branch("exp").append(events(10, 1))
    lv.push(local, remote_uri)
    ds.delete_branch("exp")
    ds.branch("exp").append(events(20, 2))  # the same name, a new line (another branch id)
    with pytest.raises(lv.RemoteConflict, match=r"branch 'exp' in .* is another line") as ei:
        lv.push(local, remote_uri, ["exp"])
    assert ei.value.name == "exp"
    assert lv.open_dataset(remote_uri, branch="exp").num_rows == 6
    result = lv.push(local, remote_uri, ["exp"], force=True)
    assert [(u.name, u.forced) for u in result.updated] == [("exp", True)]
    assert (
        lv.open_dataset(remote_uri, branch="exp")
        .to_arrow()
        .equals(lv.open_dataset(local, branch="exp").to_arrow())
    )
    assert lv.push(local, remote_uri, ["exp"]).updated == ()
    events_log = [
        json.loads(open_storage(remote_uri).read_bytes(f"_lakever/refs/events/{n}"))
        for n in open_storage(remote_uri).list("_lakever/refs/events")
    ]
    assert "force-push" in {e["action"] for e in events_log}


def test_tags_never_move(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 5))
    ds.tag("release")
    lv.push(local, remote_uri)
    ds = ds.append(events(5, 1))
    ds.delete_tag("release")
    ds.tag("release")
    for force in (False, True):
        with pytest.raises(lv.RemoteConflict, match="tags never move, not even with force"):
            lv.push(local, remote_uri, force=force)
    assert lv.open_dataset(remote_uri, version="tag:release").version == 0
    assert lv.open_dataset(remote_uri).version == 0  # refused before anything was published


# ---------------------------------------------------------------- failure, resume


class _Wrapped(Storage):
    """A storage that forwards every call to another one."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.protocol = inner.protocol

    def read_bytes(self, rel: str) -> bytes:
        return self.inner.read_bytes(rel)

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        self.inner.write_new(rel, data)

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        self.inner.write_new_stream(rel, produce)

    def exists(self, rel: str) -> bool:
        return self.inner.exists(rel)

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        return self.inner.walk(rel_dir)

    def list(self, rel_dir: str) -> list[str]:
        return self.inner.list(rel_dir)

    def delete(self, rel: str) -> None:
        self.inner.delete(rel)

    def flush(self) -> None:
        self.inner.flush()

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        return self.inner.put_if_absent(rel, data)

    def write_hint(self, rel: str, data: bytes) -> None:
        self.inner.write_hint(rel, data)

    def full_path(self, rel: str) -> str:
        return self.inner.full_path(rel)

    def arrow_filesystem(self) -> Any:
        return self.inner.arrow_filesystem()

    def fsspec_filesystem(self) -> Any:
        return self.inner.fsspec_filesystem()


class _Counting(_Wrapped):
    def __init__(self, inner: Storage, calls: dict[str, int]) -> None:
        super().__init__(inner)
        self.calls = calls

    def exists(self, rel: str) -> bool:
        self.calls["exists"] += 1
        return super().exists(rel)

    def list(self, rel_dir: str) -> list[str]:
        self.calls["list"] += 1
        return super().list(rel_dir)


class _Failing(_Wrapped):
    """Raises StorageError once ``budget`` objects were written."""

    def __init__(self, inner: Storage, budget: int) -> None:
        super().__init__(inner)
        self.budget = budget
        self.lock = threading.Lock()

    def _spend(self, rel: str) -> None:
        with self.lock:
            if self.budget <= 0:
                raise StorageError(f"injected failure writing {rel}", path=rel)
            self.budget -= 1

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        self._spend(rel)
        super().write_new(rel, data)

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        self._spend(rel)
        super().write_new_stream(rel, produce)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        self._spend(rel)
        return super().put_if_absent(rel, data)


def _visible_refs_are_complete(local: str, remote_uri: str) -> None:
    """Whatever the remote shows is whole: every visible version reads as on the source."""
    try:
        shown = lv.open_dataset(remote_uri)
    except lv.DatasetNotFound:
        return
    for br in shown.branches():
        head = lv.open_dataset(remote_uri, branch=br.name)
        for v in range(br.head_version + 1):
            y = lv.open_dataset(remote_uri, branch=br.name, version=v)
            x = lv.open_dataset(local, branch=br.name, version=v)
            assert x.snapshot_id == y.snapshot_id
            assert x.to_arrow().equals(y.to_arrow())
        assert head.version <= lv.open_dataset(local, branch=br.name).version
    for t in shown.tags():
        lv.open_dataset(remote_uri, version=f"tag:{t.name}").to_arrow()


def test_interrupted_push_never_shows_missing_data_and_resumes(local, remote_uri, monkeypatch):
    _rich(local)
    total = lv.clone(local, f"memory://count/{uuid.uuid4().hex}").objects_copied
    # Each run dies after 3 more writes; the next one resumes where it stopped.
    failures = 0
    while True:
        dst = _Failing(open_storage(remote_uri), 3)
        try:
            remote.sync(open_storage(local), dst)
        except StorageError:
            assert dst.budget == 0  # the injected failure, not another one
            failures += 1
            _visible_refs_are_complete(local, remote_uri)
            continue
        break
    assert failures > total // 3 - 2
    _assert_same(local, remote_uri)
    # Through the public API too: push opens storage with open_storage.
    lv.open_dataset(local).append(events(500, 2).append_column("score", pa.array([1.0, 2.0])))
    real = remote.open_storage
    monkeypatch.setattr(remote, "open_storage", lambda uri, opts=None: _Failing(real(uri, opts), 1))
    with pytest.raises(StorageError):
        lv.push(local, remote_uri)
    monkeypatch.setattr(remote, "open_storage", real)
    assert lv.open_dataset(remote_uri).version < lv.open_dataset(local).version
    result = lv.push(local, remote_uri)
    assert result.objects_skipped > 0
    assert 0 < result.objects_copied < total
    _assert_same(local, remote_uri)


def test_two_concurrent_pushes_of_different_branches_both_succeed(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 5))
    ds.branch("a").append(events(10, 2)).evolve(add={"x": pa.int64()})
    ds.branch("b").append(events(20, 3)).evolve(add={"y": pa.int64()})
    results: dict[str, remote.SyncResult] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        try:
            barrier.wait()
            results[name] = lv.push(local, remote_uri, [name])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {u.name for r in results.values() for u in r.updated} == {"a", "b"}
    for name in ("a", "b"):
        assert (
            lv.open_dataset(remote_uri, branch=name)
            .to_arrow()
            .equals(lv.open_dataset(local, branch=name).to_arrow())
        )
    # Both claims arrived, numbered contiguously, ranges increasing.
    claims = _claims(remote_uri)
    assert [c["seq"] for c in claims] == list(range(len(claims)))
    assert all(a["last"] < b["first"] for a, b in itertools.pairwise(claims))


def test_damaged_source_fragment_raises_corrupt_data_and_publishes_nothing(local, remote_uri):
    lv.create_dataset(local, events(0, 10)).append(events(10, 10))
    frag = sorted(Path(local, "data").glob("*.parquet"))[0]
    raw = bytearray(frag.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    frag.write_bytes(bytes(raw))
    with pytest.raises(lv.CorruptData, match=rf"fragment .*{frag.name}.*SHA-256") as ei:
        lv.push(local, remote_uri)
    assert ei.value.path.endswith(frag.name)
    with pytest.raises(lv.DatasetNotFound):
        lv.open_dataset(remote_uri)
    assert not any(p.startswith("_lakever/log/") for p in _objects(remote_uri))
    assert f"data/{frag.name}" not in _objects(remote_uri)


def test_damaged_destination_copy_is_reported(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 10))
    frag = sorted(Path(local, "data").glob("*.parquet"))[0]
    dst = open_storage(remote_uri)
    dst.write_new(f"data/{frag.name}", b"not the fragment")
    # Listed as present, so it is not copied again: names of immutable objects are trusted.
    lv.push(local, remote_uri)
    with pytest.raises(lv.CorruptData):
        lv.open_dataset(remote_uri).to_arrow()
    assert ds.version == 0


# ------------------------------------------------------------------ field-id claims


def _claims(uri: str) -> list[dict[str, Any]]:
    storage = open_storage(uri)
    out = []
    for name in sorted(storage.list(FIELD_ID_DIR)):
        if name.endswith(".json"):
            out.append(
                {"seq": int(name[:20]), **json.loads(storage.read_bytes(f"{FIELD_ID_DIR}/{name}"))}
            )
    return out


def test_claims_are_rehomed_when_their_number_is_taken(local, remote_uri):
    ds = lv.create_dataset(local, events(0, 3))
    lv.clone(local, remote_uri)
    # Locally: a branch that is never pushed claims three ids, then main claims one above.
    ds.branch("junk").evolve(add={"j1": pa.int64(), "j2": pa.int64(), "j3": pa.int64()})
    ds = lv.open_dataset(local).evolve(add={"m": pa.int64()})
    mine = _claims(local)
    assert [(c["first"], c["last"]) for c in mine] == [(4, 6), (7, 7)]
    # On the remote: two claims of one id each took numbers 0 and 1.
    lv.open_dataset(remote_uri).branch("r").evolve(add={"r1": pa.int64()}).evolve(
        add={"r2": pa.int64()}
    )
    assert [(c["seq"], c["first"]) for c in _claims(remote_uri)] == [(0, 4), (1, 5)]
    result = lv.push(local, remote_uri, ["main"])
    assert [u.name for u in result.updated] == ["main"]
    theirs = _claims(remote_uri)
    assert [(c["seq"], c["first"], c["last"]) for c in theirs] == [(0, 4, 4), (1, 5, 5), (2, 7, 7)]
    assert {k: v for k, v in theirs[2].items() if k != "seq"} == {
        k: v for k, v in mine[1].items() if k != "seq"
    }
    # Pushing again re-homes nothing twice; a new remote column gets an id above all of them.
    lv.push(local, remote_uri, ["main"])
    assert len(_claims(remote_uri)) == 3
    after = lv.open_dataset(remote_uri).evolve(add={"later": pa.int64()})
    assert after.field_ids["later"] == 8
    assert open_storage(remote_uri).exists(field_id_claim_path(3))


def test_overlapping_field_ids_are_refused(local, remote_uri):
    lv.create_dataset(local, events(0, 3))
    lv.clone(local, remote_uri)
    lv.open_dataset(local).evolve(add={"mine": pa.int64()})
    lv.open_dataset(remote_uri).branch("r").evolve(add={"theirs": pa.string()})
    with pytest.raises(lv.RemoteConflict, match=r"field ids 4 to 4 were handed out in both") as ei:
        lv.push(local, remote_uri, force=True)
    assert ei.value.kind == "field ids"
    assert lv.open_dataset(remote_uri).version == 0  # main did not move


# ----------------------------------------------------------------------------- CLI


def test_cli_push_pull_clone(local, remote_uri, tmp_path, monkeypatch, capsys):
    from lakever import cli
    from lakever.cli import app

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    ds = lv.create_dataset(local, events(0, 5))
    ds.tag("v0")
    out = run("push", local, remote_uri)
    assert "branch main: created at version 0" in out
    assert "tag v0: created at version 0" in out
    assert "objects copied" in out
    ds.append(events(5, 1))
    out = json.loads(run("push", local, remote_uri, "main", "--json"))
    assert [(u["name"], u["old_version"], u["new_version"]) for u in out["updated"]] == [
        ("main", 0, 1)
    ]
    assert out["objects_copied"] == 2
    copy = str(tmp_path / "copy")
    assert "branch main: created at version 1" in run("clone", remote_uri, copy)
    assert "tag v0: created at version 0" in run(
        "clone", remote_uri, str(tmp_path / "c2"), "--ref", "v0"
    )
    assert "up to date" in run("pull", remote_uri, copy)
    lv.open_dataset(copy).append(events(9, 1))
    lv.open_dataset(local).append(events(50, 1))
    lv.push(copy, remote_uri)
    codes: list[int] = []
    monkeypatch.setattr(cli, "_exit", codes.append)
    monkeypatch.setattr(sys, "argv", ["lakever", "push", local, remote_uri, "--force"])
    cli.main()
    assert codes == [1]
    assert capsys.readouterr().err.startswith("error: branch 'main' has diverged")
