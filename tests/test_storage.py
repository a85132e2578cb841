"""The storage seam: the same guarantees on every backend."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import wait

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.format import check_relative
from lakever.storage import LocalStorage, MemoryStorage, Storage, open_storage


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(str(tmp_path / "root"))
    return MemoryStorage(f"lakever-tests/{uuid.uuid4().hex}")


def test_put_if_absent_once(store):
    assert store.put_if_absent("_lakever/log/main/x.json", b"first")
    assert not store.put_if_absent("_lakever/log/main/x.json", b"second")
    assert store.read_bytes("_lakever/log/main/x.json") == b"first"


def test_put_if_absent_empty_payload(store):
    assert store.put_if_absent("a/empty", b"")
    assert not store.put_if_absent("a/empty", b"x")
    assert store.read_bytes("a/empty") == b""


def test_put_if_absent_race_has_one_winner(store):
    def attempt(i: int, round_: int, barrier: threading.Barrier, winners: list[int]) -> None:
        barrier.wait()
        if store.put_if_absent(f"race/{round_}", str(i).encode()):
            winners.append(i)

    for round_ in range(20):
        winners: list[int] = []
        barrier = threading.Barrier(8)
        threads = [
            threading.Thread(target=attempt, args=(i, round_, barrier, winners)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1
        assert store.read_bytes(f"race/{round_}") == str(winners[0]).encode()


def test_write_new_refuses_existing(store):
    store.write_new("data/f.parquet", b"abc")
    with pytest.raises(FileExistsError):
        store.write_new("data/f.parquet", b"def")
    store.flush()
    assert store.read_bytes("data/f.parquet") == b"abc"


def test_hint_list_exists_delete(store):
    store.write_new("h/a", b"")
    store.write_hint("h/LATEST", b"1")
    store.write_hint("h/LATEST", b"2")
    assert store.read_bytes("h/LATEST") == b"2"
    assert store.list("h") == ["LATEST", "a"]
    assert store.list("nope") == []
    assert store.exists("h/a")
    store.delete("h/a")
    store.delete("h/a")  # deleting twice is fine
    assert not store.exists("h/a")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("h/a")


def test_local_put_if_absent_leaves_no_temp_files(tmp_path):
    store = LocalStorage(str(tmp_path))
    store.put_if_absent("d/x", b"1")
    store.put_if_absent("d/x", b"2")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["x"]


@pytest.mark.parametrize(
    "rel",
    [
        "../etc/passwd",
        "/etc/passwd",
        "data/../../x",
        "a//b",
        "a\\b",
        "data/\x00x",
        "",
        "c:/x",
        "./a",
    ],
)
def test_check_relative_refuses_escapes(rel):
    with pytest.raises(lv.CorruptMetadata, match="not a plain path inside the dataset root"):
        check_relative(rel)


def test_check_relative_accepts_plain():
    assert check_relative("data/ab12.parquet") == "data/ab12.parquet"


def test_open_storage_forms(tmp_path):
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    s = open_storage(f"file://{tmp_path}")
    assert isinstance(s, LocalStorage) and s.uri == str(tmp_path)
    m = open_storage("memory://bucket/ds")
    assert isinstance(m, MemoryStorage) and m.uri == "memory://bucket/ds"
    with pytest.raises(lv.InvalidArgument, match="empty or contains control characters"):
        open_storage("a\nb")
    with pytest.raises(lv.InvalidArgument, match="must be a path or URI string"):
        open_storage(3)  # type: ignore[arg-type]


def test_remote_backend_without_atomic_create_is_refused(tmp_path):
    # fsspec's "dir" wrapper has no atomic create: reading works, committing is refused.
    import fsspec

    from lakever.storage import ReadOnlyFsspecStorage

    store = ReadOnlyFsspecStorage(fsspec.filesystem("file"), str(tmp_path), "dirfs")
    with pytest.raises(lv.StorageError, match="only commits where it has an atomic put-if-absent"):
        store.put_if_absent("x", b"1")
    with pytest.raises(lv.StorageError):
        store.write_new("x", b"1")


def test_fsync_can_be_turned_off_but_commits_stay_atomic(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, pa.table({"id": [1]}), storage_options={"fsync": False})
    ds = ds.append(pa.table({"id": [2]}))
    assert calls == []
    assert lv.open_dataset(uri).to_arrow()["id"].to_pylist() == [1, 2]
    lv.open_dataset(uri).append(pa.table({"id": [3]}))  # default: durable
    assert calls
    with pytest.raises(lv.InvalidArgument, match=r"one storage option, fsync=True\|False"):
        lv.open_dataset(uri, storage_options={"fsync": "no"})
    with pytest.raises(lv.InvalidArgument, match=r"one storage option"):
        lv.open_dataset(uri, storage_options={"anon": True})


# ----------------------------------------------------------------- local disk failures


def test_local_read_failures(tmp_path):
    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("a/file", b"x")
    # A file where a directory of the path should be: the object is absent.
    with pytest.raises(FileNotFoundError):
        store.read_bytes("a/file/below")
    assert store.list("a/file") == []
    (tmp_path / "root" / "dir").mkdir()
    with pytest.raises(lv.StorageError) as info:
        store.read_bytes("dir")
    assert str(info.value) == f"cannot read {tmp_path}/root/dir: it is a directory, not a file"
    assert info.value.path == f"{tmp_path}/root/dir"


def test_local_root_that_is_a_file(tmp_path):
    (tmp_path / "plain").write_text("x")
    store = LocalStorage(str(tmp_path / "plain"))
    with pytest.raises(FileNotFoundError):
        store.read_bytes("_lakever/log/main/LATEST")
    for write in (store.write_new, store.put_if_absent):
        with pytest.raises(lv.StorageError) as info:
            write("data/f.parquet", b"x")
        assert str(info.value) == (
            f"cannot create directory {tmp_path}/plain/data: {tmp_path}/plain is a file, "
            "not a directory"
        )
    with pytest.raises(lv.StorageError, match="plain is a file, not a directory"):
        lv.create_dataset(str(tmp_path / "plain"), pa.table({"id": [1]}))
    with pytest.raises(lv.DatasetNotFound, match=f"no lakever dataset at {tmp_path}/plain;"):
        lv.open_dataset(str(tmp_path / "plain"))


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError(30, "Read-only file system"), "Read-only file system"),
    ],
    ids=["permission", "no-space", "read-only"],
)
@pytest.mark.parametrize("operation", ["write_new", "put_if_absent", "mkdir", "delete", "list"])
def test_local_write_failures_are_storage_errors(tmp_path, monkeypatch, error, reason, operation):
    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("existing/f", b"x")
    store.flush()

    def fail(*args, **kwargs):
        raise error

    if operation in ("write_new", "put_if_absent"):
        monkeypatch.setattr(os, "open", fail)
        action, target = "write", f"{tmp_path}/root/existing/g"
        call = lambda: getattr(store, operation)("existing/g", b"y")  # noqa: E731
    elif operation == "mkdir":
        monkeypatch.setattr(os, "makedirs", fail)
        action, target = "create directory", f"{tmp_path}/root/new"
        call = lambda: store.write_new("new/g", b"y")  # noqa: E731
    elif operation == "delete":
        monkeypatch.setattr(os, "unlink", fail)
        action, target = "delete", f"{tmp_path}/root/existing/f"
        call = lambda: store.delete("existing/f")  # noqa: E731
    else:
        monkeypatch.setattr(os, "listdir", fail)
        action, target = "list", f"{tmp_path}/root/existing"
        call = lambda: store.list("existing")  # noqa: E731
    with pytest.raises(lv.StorageError) as info:
        call()
    assert str(info.value) == f"cannot {action} {target}: {reason}"


def test_file_system_without_hard_links(tmp_path, monkeypatch):
    store = LocalStorage(str(tmp_path / "root"))

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with pytest.raises(lv.StorageError, match="this file system does not support hard links"):
        store.put_if_absent("_lakever/log/main/x.json", b"x")
    assert os.listdir(tmp_path / "root" / "_lakever" / "log" / "main") == []  # no temp file left


@pytest.mark.parametrize(
    ("uri", "extra"),
    [
        ("s3://bucket/ds", "s3"),
        ("gs://bucket/ds", "gcs"),
        ("gcs://bucket/ds", "gcs"),
        ("az://container/ds", "azure"),
        ("abfs://container/ds", "azure"),
        ("abfss://container/ds", "azure"),
    ],
)
def test_install_hint_names_the_extra_of_the_scheme(monkeypatch, uri, extra):
    import sys

    # Object stores go through obstore: without it, the error names the extra to install.
    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.setitem(sys.modules, "obstore.store", None)
    scheme = uri.split("://")[0]
    with pytest.raises(lv.StorageError) as info:
        open_storage(uri)
    assert str(info.value) == (
        f"cannot open {uri}: {scheme}:// needs obstore; install the extra for "
        f"{scheme}://: pip install 'lakever[{extra}]'"
    )


def test_install_hint_without_an_extra(monkeypatch):
    import fsspec

    def broken(url, **kwargs):
        raise OSError("libjvm.so: cannot open shared object file")

    monkeypatch.setattr(fsspec.core, "url_to_fs", broken)
    with pytest.raises(lv.StorageError, match="lakever has no extra for hdfs://; install the"):
        open_storage("hdfs://namenode/ds")


# ------------------------------------------------------------ one backend at a time


def test_nested_writes_land_where_named_and_list_sorted(store):
    store.write_new("a/b/c/f2", b"2")
    store.write_new("a/b/c/f10", b"10")
    store.write_new("a/b/top", memoryview(b"mv"))
    store.flush()
    assert store.read_bytes("a/b/c/f10") == b"10"
    assert store.read_bytes("a/b/top") == b"mv"
    assert store.list("a/b/c") == ["f10", "f2"]
    assert store.exists("a/b/c/f2") and not store.exists("a/b/c/f3")


def test_a_hint_is_rewritten_in_place(store):
    store.write_hint("log/LATEST", b"9")
    store.write_hint("log/LATEST", b"10")  # versions only grow: the text never shrinks
    assert store.read_bytes("log/LATEST") == b"10"
    assert store.list("log") == ["LATEST"]


def test_paths_and_reprs(store, tmp_path):
    full = store.full_path("data/x.parquet")
    if isinstance(store, LocalStorage):
        assert full == os.path.join(str(tmp_path / "root"), "data", "x.parquet")
        assert store.is_local and store.arrow_filesystem() is None
    else:
        # fsspec's own spelling of an in-memory path (root-relative, three slashes).
        assert full == "memory:///" + store.uri.removeprefix("memory://") + "/data/x.parquet"
        assert not store.is_local and store.arrow_filesystem() is not None
    assert store.fsspec_filesystem() is not None
    assert repr(store) == f"<{type(store).__name__} {store.uri!r}>"


def test_storages_pickle_to_the_same_place(store):
    import pickle  # noqa: TID251 - pickling is what this test checks

    store.write_new("p/x", b"1")
    copy = pickle.loads(pickle.dumps(store))
    assert (type(copy), copy.uri) == (type(store), store.uri)
    assert copy.read_bytes("p/x") == b"1"


def test_local_storage_syncs_every_directory_it_creates(tmp_path, monkeypatch):
    import lakever.storage.local as local

    synced: list[str] = []
    monkeypatch.setattr(local, "_fsync_dir", synced.append)
    root = tmp_path / "root"
    store = LocalStorage(str(root))
    store.write_new("a/b/f", b"1")
    store.flush()
    assert set(synced) >= {str(tmp_path), str(root), str(root / "a"), str(root / "a" / "b")}
    synced.clear()
    store.flush()
    assert synced == []  # synced directories are forgotten
    store.write_new("a/b/g", b"2")
    store.flush()
    assert synced == [str(root / "a" / "b")]
    synced.clear()
    assert store.put_if_absent("a/c/h", b"3")
    assert str(root / "a" / "c") in synced and str(root / "a") in synced
    nosync = LocalStorage(str(tmp_path / "other"), fsync=False)
    synced.clear()
    nosync.write_new("x/y", b"1")
    nosync.put_if_absent("x/z", b"1")
    nosync.flush()
    assert synced == []


def test_local_storage_writes_large_payloads_whole(tmp_path):
    store = LocalStorage(str(tmp_path))
    data = os.urandom(3 << 20)
    store.write_new("big", data)
    assert store.put_if_absent("big2", data)
    assert store.read_bytes("big") == data and store.read_bytes("big2") == data


def test_memory_exists_is_about_objects_not_directories():
    store = MemoryStorage(f"lakever-tests/{uuid.uuid4().hex}")
    store.write_new("dir/obj", b"1")
    assert store.exists("dir/obj") and not store.exists("dir")
    with pytest.raises(FileExistsError):
        store.write_new("dir/obj", b"2")


def test_read_only_backends_read_and_refuse_every_write(tmp_path):
    import fsspec

    from lakever.storage import ReadOnlyFsspecStorage

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"B")
    (tmp_path / "d" / "a").write_bytes(b"A")
    store = ReadOnlyFsspecStorage(fsspec.filesystem("file"), str(tmp_path) + "/", "dirfs")
    assert store.uri == "dirfs://" + str(tmp_path).lstrip("/")
    assert store.read_bytes("d/a") == b"A"
    assert store.list("d") == ["a", "b"] and store.list("nope") == []
    assert store.exists("d/b") and not store.exists("d/c")
    assert store.full_path("d/a") == "dirfs://" + str(tmp_path / "d" / "a").lstrip("/")
    for write in (store.put_if_absent, store.write_new, store.write_hint):
        with pytest.raises(lv.StorageError, match="dirfs:// storage is not supported") as info:
            write("d/new", b"x")
        assert info.value.path == store.full_path("d/new")
    assert not (tmp_path / "d" / "new").exists()
    for delete in (store.delete, lambda rel: store.delete_many([rel])):
        with pytest.raises(lv.StorageError, match="dirfs:// storage is not supported"):
            delete("d/a")
    assert store.list("d") == ["a", "b"]


def test_open_storage_resolves_every_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_storage("rel/ds").uri == str(tmp_path / "rel" / "ds")
    assert open_storage(tmp_path / "p").uri == str(tmp_path / "p")  # a PathLike
    assert open_storage("local:///x/y").uri == "/x/y"
    assert open_storage("file://x/y").uri == "/x/y"
    local = open_storage(str(tmp_path), {"fsync": False})
    assert isinstance(local, LocalStorage) and local._fsync is False
    with pytest.raises(lv.InvalidArgument, match="empty or contains control characters"):
        open_storage("")
    with pytest.raises(lv.StorageError, match=r"cannot open storage for .*install") as info:
        open_storage("nosuchprotocol://bucket/ds")
    assert info.value.path == "nosuchprotocol://bucket/ds"


def test_read_only_storages_pickle_with_their_options(tmp_path):
    """A read-only backend is reopened from its URI and storage options (here the zip file
    a zip:// location reads from)."""
    import pickle  # noqa: TID251 - pickling is what this test checks
    import zipfile

    archive = tmp_path / "lake.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ds/d/a", b"A")
    store = open_storage("zip://ds", {"fo": str(archive)})
    copy = pickle.loads(pickle.dumps(store))
    assert (type(copy), copy.uri, copy.options) == (type(store), "zip://ds", {"fo": str(archive)})
    assert copy.read_bytes("d/a") == b"A"


def test_local_paths_with_spaces(tmp_path):
    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("a dir/f g", b"1")
    assert (tmp_path / "root" / "a dir" / "f g").read_bytes() == b"1"
    assert store.put_if_absent("a dir/h i", b"2")
    assert store.list("a dir") == ["f g", "h i"]
    assert store.read_bytes("a dir/h i") == b"2"


def test_local_sync_failures_are_storage_errors(tmp_path, monkeypatch):
    import lakever.storage.local as local

    def fail(path):
        raise OSError(5, "Input/output error")

    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("existing/f", b"x")
    store.flush()
    # a new directory is synced on flush
    store.write_new("new/f", b"x")
    monkeypatch.setattr(local, "_fsync_dir", fail)
    with pytest.raises(lv.StorageError) as info:
        store.flush()
    assert str(info.value).startswith("cannot sync directory ")
    assert str(info.value).endswith(": Input/output error")
    assert info.value.path in (str(tmp_path / "root"), str(tmp_path / "root" / "new"))
    # the directory of a committed entry is synced after the link
    store = LocalStorage(str(tmp_path / "root"))
    with pytest.raises(lv.StorageError) as info:
        store.put_if_absent("existing/g", b"y")
    assert str(info.value) == f"cannot sync directory {tmp_path}/root/existing: Input/output error"
    assert info.value.path == f"{tmp_path}/root/existing"


def test_local_link_failure_is_a_storage_error(tmp_path, monkeypatch):
    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("log/f", b"x")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    with pytest.raises(lv.StorageError) as info:
        store.put_if_absent("log/g", b"y")
    assert str(info.value) == f"cannot write {tmp_path}/root/log/g: No space left on device"
    assert os.listdir(tmp_path / "root" / "log") == ["f"]  # no temp file left


# ---------------------------------------------------------------- streamed writes


def _producing(*chunks: bytes | memoryview):
    def produce(sink) -> None:
        for chunk in chunks:
            sink.write(chunk)

    return produce


def test_write_new_stream_stores_the_bytes_written_in_order(store):
    big = os.urandom(3 << 20)
    store.write_new_stream(
        "data/s.parquet", _producing(b"head", b"", memoryview(big)[1:], bytearray(b"tail"))
    )
    store.flush()
    assert store.read_bytes("data/s.parquet") == b"head" + big[1:] + b"tail"
    store.write_new_stream("data/empty", _producing())
    assert store.read_bytes("data/empty") == b""


def test_write_new_stream_refuses_a_taken_name(store):
    store.write_new("data/f.parquet", b"abc")
    with pytest.raises(FileExistsError):
        store.write_new_stream("data/f.parquet", _producing(b"def"))
    store.write_new_stream("data/g.parquet", _producing(b"1"))
    with pytest.raises(FileExistsError):
        store.write_new("data/g.parquet", b"2")
    assert store.read_bytes("data/f.parquet") == b"abc"
    assert store.read_bytes("data/g.parquet") == b"1"


def test_write_new_stream_leaves_nothing_when_the_producer_fails(store):
    def produce(sink) -> None:
        sink.write(b"x" * 100_000)
        raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        store.write_new_stream("data/f.parquet", produce)
    assert not store.exists("data/f.parquet")
    store.write_new_stream("data/f.parquet", _producing(b"retried"))  # the name is free
    assert store.read_bytes("data/f.parquet") == b"retried"


def test_local_write_new_stream_writes_as_bytes_come_and_syncs(tmp_path, monkeypatch):
    import lakever.storage.local as local

    store = LocalStorage(str(tmp_path / "root"))
    path = tmp_path / "root" / "data" / "f"
    seen: list[int] = []

    def produce(sink) -> None:
        sink.write(b"a" * 1000)
        seen.append(path.stat().st_size)  # already in the file: nothing buffers it whole
        sink.write(b"b" * 10)

    synced_files: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced_files.append(fd), real_fsync(fd)))
    synced_dirs: list[str] = []
    monkeypatch.setattr(local, "_fsync_dir", synced_dirs.append)
    store.write_new_stream("data/f", produce)
    assert seen == [1000] and path.read_bytes() == b"a" * 1000 + b"b" * 10
    assert len(synced_files) == 1  # the file, before write_new_stream returned
    store.flush()
    assert str(tmp_path / "root" / "data") in synced_dirs


def test_local_write_new_stream_disk_failure_is_a_storage_error(tmp_path, monkeypatch):
    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("data/keep", b"x")
    real_write = os.write

    def full(fd, data):
        if len(data) > 10:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(lv.StorageError) as info:
        store.write_new_stream("data/f", _producing(b"small", b"x" * 100))
    assert str(info.value) == f"cannot write {tmp_path}/root/data/f: No space left on device"
    assert store.list("data") == ["keep"]  # no partial file


@given(sizes=st.lists(st.integers(0, 3000), max_size=12), every=st.integers(1, 4000))
@settings(max_examples=30, deadline=None)
def test_local_stream_syncs_as_it_goes_and_keeps_every_byte(tmp_path_factory, sizes, every):
    """A streamed file is flushed to disk in the background every so many bytes (one
    sync at a time, none left running when the write returns); its bytes are exact."""
    import lakever.storage.local as local

    root = tmp_path_factory.mktemp("s")
    store = LocalStorage(str(root))
    chunks = [os.urandom(n) for n in sizes]
    synced: list[int] = []
    running: list[int] = []

    def datasync(fd: int) -> None:
        running.append(fd)
        assert len(running) == 1  # one at a time
        os.fsync(fd)
        synced.append(fd)
        running.pop()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(local, "_EARLY_SYNC_BYTES", every)
        mp.setattr(local, "_datasync", datasync)
        store.write_new_stream("data/f", _producing(*chunks))
    assert running == []
    assert (root / "data" / "f").read_bytes() == b"".join(chunks)
    assert len(synced) <= sum(sizes) // every
    if sizes and max(sizes) >= every:
        assert synced  # a chunk of that many bytes starts one at least


def test_local_stream_reports_a_failed_background_sync(tmp_path, monkeypatch):
    """A sync that failed in the background fails the write (the final fsync may not
    report an error an earlier sync of the file returned), and no file is left."""
    import errno

    import lakever.storage.local as local

    store = LocalStorage(str(tmp_path / "root"))
    store.write_new("data/keep", b"x")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(local, "_EARLY_SYNC_BYTES", 100)
    monkeypatch.setattr(local, "_datasync", failing)
    with pytest.raises(lv.StorageError) as info:
        store.write_new_stream("data/f", _producing(b"x" * 150, b"y" * 10))
    assert str(info.value) == f"cannot sync {tmp_path}/root/data/f: Input/output error"
    assert store.list("data") == ["keep"]
    # The kernel reports a writeback error once: a producer that catches it and writes
    # on still fails, though the later syncs succeed.
    failures = [OSError(errno.EIO, "Input/output error")]

    def once(fd: int) -> None:
        if failures:
            raise failures.pop()

    caught: list[str] = []

    def stubborn(sink) -> None:
        for _ in range(5):
            try:
                sink.write(b"x" * 150)
            except lv.StorageError as exc:
                caught.append(str(exc))
            if sink._syncing is not None:
                wait([sink._syncing])  # the next write finds it done: it reports it

    monkeypatch.setattr(local, "_datasync", once)
    with pytest.raises(lv.StorageError, match="cannot sync"):
        store.write_new_stream("data/h", stubborn)
    assert len(caught) == 4  # the second write reported it, and every later one
    assert store.list("data") == ["keep"]
    # A producer that fails while a sync runs: the sync ends before the file is removed.
    started, release = threading.Event(), threading.Event()

    still_open: list[bool] = []

    def slow(fd: int) -> None:
        started.set()
        release.wait(5)
        os.fstat(fd)  # raises if the descriptor was closed meanwhile
        still_open.append(True)

    monkeypatch.setattr(local, "_datasync", slow)

    def produce(sink) -> None:
        sink.write(b"z" * 150)
        started.wait(5)
        threading.Timer(0.05, release.set).start()
        raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        store.write_new_stream("data/g", produce)
    assert release.is_set() and still_open == [True]  # it waited before closing the file
    assert store.list("data") == ["keep"]


def test_read_only_storage_refuses_a_stream_before_producing(tmp_path):
    from lakever.storage import ReadOnlyFsspecStorage

    store = open_storage(f"file://{tmp_path}")
    ro = ReadOnlyFsspecStorage(store.fsspec_filesystem(), str(tmp_path), "file")
    called: list[bool] = []
    with pytest.raises(lv.StorageError, match="not supported"):
        ro.write_new_stream("data/f", lambda sink: called.append(True))
    assert called == []


@given(data=st.binary(max_size=200_000))
@settings(max_examples=40, deadline=None)
def test_local_read_returns_every_byte(tmp_path_factory, data):
    """The local read (one stat, reads up to the end) returns the file exactly, empty
    files and files longer than its read size included."""
    root = tmp_path_factory.mktemp("r")
    (root / "f").write_bytes(data)
    assert open_storage(str(root)).read_bytes("f") == data


def test_local_read_of_a_file_that_grows_after_the_stat(tmp_path, monkeypatch):
    """Bytes appended between the stat and the reads are read too (no silent truncation)."""
    from lakever.storage import local as local_mod

    (tmp_path / "f").write_bytes(b"x" * 10)
    real = os.fstat

    def fstat(fd):
        result = real(fd)
        with open(tmp_path / "f", "ab") as f:  # grows once the size was taken
            f.write(b"y" * 70_000)
        return result

    monkeypatch.setattr(local_mod.os, "fstat", fstat)
    assert open_storage(str(tmp_path)).read_bytes("f") == b"x" * 10 + b"y" * 70_000
