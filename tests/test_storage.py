"""The storage seam: the same guarantees on every backend."""

from __future__ import annotations

import os
import threading
import uuid

import pyarrow as pa
import pytest

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
    import fsspec

    def missing(url, **kwargs):
        raise ImportError("Install the backend")

    monkeypatch.setattr(fsspec.core, "url_to_fs", missing)
    scheme = uri.split("://")[0]
    with pytest.raises(lv.StorageError) as info:
        open_storage(uri)
    assert str(info.value) == (
        f"cannot open storage for {uri!r}: Install the backend; install the extra for "
        f"{scheme}://: pip install 'lakever[{extra}]'"
    )


def test_install_hint_without_an_extra(monkeypatch):
    import fsspec

    def broken(url, **kwargs):
        raise OSError("libjvm.so: cannot open shared object file")

    monkeypatch.setattr(fsspec.core, "url_to_fs", broken)
    with pytest.raises(lv.StorageError, match="lakever has no extra for hdfs://; install the"):
        open_storage("hdfs://namenode/ds")
