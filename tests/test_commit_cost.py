"""What a small commit costs on local disk, and in which order its durability steps run.

Counts, never timings: a regression that adds an fsync, a directory sync or chain
probes to every commit, or that reorders the steps so a log entry can become visible
before the data it references is durable, fails here.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

import lakever as lv
from lakever import integrity
from lakever.format import (
    compute_snapshot_id,
    encode_snapshot,
    latest_hint_path,
    log_path,
    seal_snapshot,
)
from lakever.snapshot_codec import decode_snapshot
from lakever.storage import local as local_mod
from lakever.storage import open_storage
from tests._data import events

linux_only = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="names file descriptors through /proc"
)


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class _Recorder:
    """Records fsyncs (by path), links and existence probes made while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self.probes = 0
        real_fsync, real_link, real_exists = os.fsync, os.link, local_mod.LocalStorage.exists

        def fsync(fd: int) -> None:
            path = _fd_path(fd)
            real_fsync(fd)
            self.events.append(("dir" if os.path.isdir(path) else "file", path))

        def link(src: str, dst: str) -> None:
            real_link(src, dst)
            self.events.append(("link", dst))

        def exists(store: local_mod.LocalStorage, rel: str) -> bool:
            self.probes += 1
            result: bool = real_exists(store, rel)
            return result

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "link", link)
        monkeypatch.setattr(local_mod.LocalStorage, "exists", exists)

    def kinds(self) -> Counter[str]:
        return Counter(kind for kind, _ in self.events)


def _small_history(path: str) -> lv.Dataset:
    ds = lv.create_dataset(path, events(0, 100))
    return ds.append(events(100, 100))  # every directory a commit writes to now exists


@linux_only
def test_a_small_append_makes_two_file_fsyncs_and_two_directory_syncs(tmp_path, monkeypatch):
    ds = _small_history(str(tmp_path / "ds"))
    rec = _Recorder(monkeypatch)
    ds = ds.append(events(200, 100))
    # The fragment and the log entry's bytes; the data directory and the log directory.
    # Nothing for the LATEST hint or the snapshot index (advisory, never synced).
    assert rec.kinds() == Counter({"file": 2, "dir": 2, "link": 1}), rec.events
    # Chain probes: the window beyond the new entry (docs/format.md §8 step 5), and no
    # probe before it when the hint names the base.
    assert rec.probes == 8
    assert lv.open_dataset(str(tmp_path / "ds")).to_arrow().num_rows == 300


@linux_only
def test_data_and_entry_are_durable_before_the_link_and_the_log_directory_after(
    tmp_path, monkeypatch
):
    root = tmp_path / "ds"
    ds = _small_history(str(root))
    rec = _Recorder(monkeypatch)
    ds.append(events(200, 100))
    linked = [i for i, (kind, _) in enumerate(rec.events) if kind == "link"]
    assert len(linked) == 1
    before, after = rec.events[: linked[0]], rec.events[linked[0] + 1 :]
    entry = rec.events[linked[0]][1]
    assert entry == str(root / log_path("main", 2))
    # Before the entry exists: the new fragment, its directory and the entry's bytes.
    assert ("dir", str(root / "data")) in before
    assert any(k == "file" and p.startswith(str(root / "data")) for k, p in before)
    assert any(k == "file" and ".tmp-" in p for k, p in before)  # the entry, under its temp name
    # After: the log directory, so the entry itself is durable before append returns.
    assert after == [("dir", str(root / "_lakever" / "log" / "main"))]


@linux_only
def test_a_failed_background_fsync_fails_the_commit(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    ds = _small_history(str(root))
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if f"{os.sep}data{os.sep}" in _fd_path(fd):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(lv.StorageError, match="Input/output error"):
        ds.append(events(200, 100))
    monkeypatch.setattr(os, "fsync", real_fsync)
    # Nothing became visible, and the next commit is not blocked by the failed one.
    assert not (root / log_path("main", 2)).exists()
    again = lv.open_dataset(str(root)).append(events(200, 100))
    assert again.version == 2 and again.to_arrow().num_rows == 300


def test_flush_waits_for_every_file_written_before(tmp_path, monkeypatch):
    store = open_storage(str(tmp_path / "s"))
    synced: list[int] = []
    real_fsync = os.fsync

    def slow(fd: int) -> None:
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fsync", slow)
    for i in range(5):
        store.write_new(f"d/{i}.bin", b"x" * 10)
    store.flush()
    # five files and the directories that gained entries (d, and the root that gained d)
    assert len(synced) >= 5 + 1
    assert sorted(os.listdir(tmp_path / "s" / "d")) == [f"{i}.bin" for i in range(5)]


@linux_only
def test_flush_does_not_return_before_a_background_fsync_finished(tmp_path, monkeypatch):
    store = open_storage(str(tmp_path / "s"))
    store.write_new("d/0.bin", b"0")
    store.flush()  # the directories exist and are synced
    release, started = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def blocked(fd: int) -> None:
        if _fd_path(fd).endswith("1.bin"):
            started.set()
            release.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", blocked)
    store.write_new("d/1.bin", b"1")
    assert started.wait(30)
    done = threading.Event()
    flusher = threading.Thread(target=lambda: (store.flush(), done.set()))
    flusher.start()
    assert not done.wait(0.3)  # still waiting for the file's fsync
    release.set()
    flusher.join(30)
    assert done.is_set()


def test_a_bulk_write_holds_a_bounded_number_of_files_open(tmp_path, monkeypatch):
    store = open_storage(str(tmp_path / "s"))
    release = threading.Event()
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (release.wait(30), real_fsync(fd))[1])
    writer = threading.Thread(
        target=lambda: [store.write_new(f"d/{i}.bin", b"x") for i in range(200)]
    )
    writer.start()
    writer.join(0.5)
    assert writer.is_alive()  # blocked: no more than _MAX_RUNNING files wait for fsync
    assert sum(1 for _ in os.scandir(tmp_path / "s" / "d")) <= local_mod._MAX_RUNNING + 1
    release.set()
    writer.join(30)
    store.flush()
    assert len(os.listdir(tmp_path / "s" / "d")) == 200


@linux_only
def test_a_delete_syncs_its_vector_with_the_commit(tmp_path, monkeypatch):
    """Vector bytes, then {its directory + the entry bytes} together, link, log directory:
    three waits for the disk in all, two before the entry is linked."""
    root = tmp_path / "ds"
    ds = _small_history(str(root)).delete(where="id < 5")  # creates _lakever/deletions
    rec = _Recorder(monkeypatch)
    ds = ds.delete(where="id < 10")
    linked = [i for i, (kind, _) in enumerate(rec.events) if kind == "link"]
    dv_link, entry_link = linked  # the deletion vector's name, then the log entry's
    assert "/_lakever/deletions/" in rec.events[dv_link][1]
    before_entry = rec.events[:entry_link]
    assert ("dir", str(root / "_lakever" / "deletions")) in before_entry
    assert any(k == "file" and "/_lakever/deletions/" in p for k, p in rec.events[:dv_link])
    assert rec.events[entry_link + 1 :] == [("dir", str(root / "_lakever" / "log" / "main"))]
    assert rec.kinds()["dir"] == 2 and rec.kinds()["file"] == 2
    assert lv.open_dataset(str(root)).to_arrow().num_rows == 190


def test_a_deletion_vector_already_stored_is_reused(tmp_path):
    store = open_storage(str(tmp_path / "s"))
    assert store.publish_content("_lakever/deletions/x.parquet", b"abc")
    assert not store.publish_content("_lakever/deletions/x.parquet", b"abc")
    store.flush()
    assert os.listdir(tmp_path / "s" / "_lakever" / "deletions") == ["x.parquet"]


def test_commit_on_a_stale_hint_into_a_gap_is_not_acknowledged(local_location):
    """The hint names the base, so the commit skips the probe before creating its entry:
    the check after it must still refuse to acknowledge an entry that filled a gap."""
    ds = lv.create_dataset(local_location, events(0, 1))
    handles = [ds]
    for i in range(1, 6):
        handles.append(handles[-1].append(events(i, 1)))
    store = open_storage(local_location)
    store.delete(log_path("main", 3))
    store.write_hint(latest_hint_path("main"), b"%020d\n" % 2)
    with pytest.raises(lv.BrokenHistory, match="NOT acknowledged"):
        handles[2].append(events(100, 1))


def test_advisory_directories_are_never_synced(tmp_path, monkeypatch):
    store = open_storage(str(tmp_path / "s"))
    dirs: list[str] = []
    real = local_mod._fsync_dir
    monkeypatch.setattr(local_mod, "_fsync_dir", lambda p: (dirs.append(p), real(p))[1])
    store.write_hint("a/b/LATEST", b"1")
    store.flush()
    assert dirs == []
    store.write_new("c/x", b"1")
    store.flush()
    assert str(tmp_path / "s" / "c") in dirs


@pytest.mark.parametrize(
    "properties",
    [{}, {"a": "b"}, {"zz": "ü€", "snapshot_id": "x", "": "empty key"}],
)
def test_sealed_record_is_the_encoded_record(tmp_path, properties):
    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 3))
    ds = ds.append(events(3, 3), message='m\n"q"', properties=properties)
    store = open_storage(str(tmp_path / "ds"))
    snap = decode_snapshot(store.read_bytes(log_path("main", 1)), path="v1")
    sealed, record = seal_snapshot(snap)
    assert sealed.snapshot_id == compute_snapshot_id(snap.body()) == snap.snapshot_id
    assert record == encode_snapshot(snap) == store.read_bytes(log_path("main", 1))


def test_records_sealed_on_carried_manifests_are_the_encoded_records(tmp_path):
    """A small commit carries its parent's inline manifests over and seals them from
    their remembered encoding: every stored record must still be exactly the canonical
    encoding of its own content (through level merges, deletes and an evolution)."""
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, events(0, 3))
    for i in range(1, 20):
        ds = ds.append(events(i * 3, 3), properties={"i": str(i)})
        if i == 9:
            ds = ds.delete(where="id = 4")
    ds = ds.evolve(add={"extra": pa.int64()})
    for i in range(3):
        ds = ds.append(events(100 + 2 * i, 2).append_column("extra", pa.array([i, None])))
    store = open_storage(uri)
    for v in range(ds.version + 1):
        data = store.read_bytes(log_path("main", v))
        snap = decode_snapshot(data, path=f"v{v}")
        assert encode_snapshot(snap) == data
        assert seal_snapshot(snap) == (snap, data)


def test_written_fragments_are_not_hashed_again_but_changes_are_found(tmp_path, monkeypatch):
    hashed: list[str] = []
    real = integrity._hash_file
    monkeypatch.setattr(integrity, "_hash_file", lambda p: (hashed.append(p), real(p))[1])
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, events(0, 1000)).append(events(1000, 1000))
    ds = ds.delete(where="id < 10")
    assert ds.to_arrow().num_rows == 1990
    assert hashed == []  # this process wrote them: the writer's hash is the verification
    # A file changed after it was written (same size, other bytes) is still caught.
    frag = next(p for p in (tmp_path / "ds" / "data").iterdir() if p.suffix == ".parquet")
    data = bytearray(frag.read_bytes())
    data[len(data) // 2] ^= 0xFF
    frag.write_bytes(bytes(data))
    with pytest.raises(lv.CorruptData):
        lv.open_dataset(uri).to_arrow()


def test_pool_is_recreated_in_a_forked_child(tmp_path):
    if sys.platform == "win32" or not hasattr(os, "fork"):
        pytest.skip("needs fork")
    store = open_storage(str(tmp_path / "s"))
    store.write_new("a.bin", b"1")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            store.write_new("b.bin", b"2")
            store.flush()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    store.flush()
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / "s" / "b.bin").read_bytes() == b"2"


def test_column_values_survive(tmp_path):
    """Appends through the returned handle keep every row (a sanity check of the fast path)."""
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, pa.table({"id": pa.array([0], pa.int64())}))
    for i in range(1, 20):
        ds = ds.append(pa.table({"id": pa.array([i], pa.int64())}))
    assert sorted(lv.open_dataset(uri).to_arrow().column("id").to_pylist()) == list(range(20))
