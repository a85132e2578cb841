"""S3 specifics: conditional writes, ambiguous creates, retries, the local cache, secrets.

The behaviour every backend shares (commits, time travel, refs, merges, row
changes, SQL) is the conformance suite: every test taking the ``location``
fixture runs on local disk, memory and S3. This file covers what only an object
store has, against the local S3-protocol server (moto) and a proxy in front of it
that injects latency and faults (tests/_s3.py).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from _data import events

import lakever as lv
from lakever import integrity
from lakever.storage import ObjectStorage, open_storage
from lakever.storage.cache import ObjectCache

# ---------------------------------------------------------------- helpers


@pytest.fixture
def proxy(s3_server):
    """A latency/fault proxy in front of the test server (tests/_s3.py, `Proxy`)."""
    from tests._s3 import Proxy

    p = Proxy(s3_server)
    yield p
    p.stop()


def via(proxy, **extra) -> dict[str, object]:
    """Storage options that send every request through ``proxy`` with fast retries."""
    return {"aws_endpoint": proxy.endpoint, **extra}


def fresh_process_caches() -> None:
    """Forget what this process verified or cached in memory (as a new process would)."""
    from lakever import log, manifests

    integrity.forget()
    manifests._CACHE.clear()
    log._DECODED.clear()


def data_gets(proxy) -> int:
    return sum(1 for method, path in proxy.log if method == "GET" and "/data/" in path)


# ---------------------------------------------------------------- conditional writes


def test_put_if_absent_has_exactly_one_winner_per_round(s3_bucket):
    store = open_storage(s3_bucket + "/race")

    def race(i: int, round_: int, barrier: threading.Barrier, wins: list[int]) -> None:
        barrier.wait()
        if store.put_if_absent(f"k/{round_}.json", f"writer {i}".encode()):
            wins.append(i)

    for round_ in range(5):
        wins: list[int] = []
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=race, args=(i, round_, barrier, wins)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
        assert store.read_bytes(f"k/{round_}.json") == f"writer {wins[0]}".encode()


def test_write_new_refuses_a_taken_name(s3_bucket):
    store = open_storage(s3_bucket + "/ds")
    store.write_new("data/a.parquet", b"one")
    with pytest.raises(FileExistsError):
        store.write_new("data/a.parquet", b"two")
    assert store.read_bytes("data/a.parquet") == b"one"
    # The same bytes again (a retry of our own write that landed) is not an error.
    store.write_new("data/a.parquet", b"one")


def test_write_new_stream_creates_the_object_and_caches_a_fragment(s3_bucket):
    store = open_storage(s3_bucket + "/ds")
    assert isinstance(store, ObjectStorage)
    part = os.urandom(1 << 20)

    def produce(sink) -> None:
        sink.write(b"PAR1")
        sink.write(memoryview(part))
        sink.write(b"PAR1")

    store.write_new_stream("data/a.parquet", produce)
    data = b"PAR1" + part + b"PAR1"
    assert store.read_bytes("data/a.parquet") == data
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.cache.get("data/a.parquet", digest) == data  # as write_new caches it
    with pytest.raises(FileExistsError):
        store.write_new_stream("data/a.parquet", lambda sink: sink.write(b"other"))

    def fails(sink) -> None:
        sink.write(b"partial")
        raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        store.write_new_stream("data/b.parquet", fails)
    assert not store.exists("data/b.parquet")


def test_delete_many_batches_and_ignores_absent_keys(s3_bucket, proxy):
    store = open_storage(s3_bucket + "/ds", via(proxy))
    rels = [f"data/{i:05d}.bin" for i in range(1203)]
    for rel in rels[:40]:
        store.write_new(rel, b"x")
    before = sum(proxy.requests.values())
    store.delete_many(rels)  # 40 present, 1,163 absent
    assert sum(proxy.requests.values()) - before == 2  # one DeleteObjects per 1,000 keys
    assert store.walk("data") == []


def test_ambiguous_create_is_resolved_by_reading_back(s3_bucket, proxy):
    store = open_storage(s3_bucket + "/ds", via(proxy))
    # The server stores the entry, the client never hears: obstore retries, finds the
    # name taken by its own first attempt, and lakever reads the bytes back.
    proxy.drop_after_send("/ds/_lakever/x.json")
    assert store.put_if_absent("_lakever/x.json", b"mine") is True
    assert store.read_bytes("_lakever/x.json") == b"mine"
    # Someone else's entry under that name is a lost race, not a win.
    other = open_storage(s3_bucket + "/ds")
    assert other.put_if_absent("_lakever/y.json", b"theirs")
    assert store.put_if_absent("_lakever/y.json", b"mine") is False


def test_commit_survives_a_timeout_after_send(s3_bucket, proxy):
    uri = s3_bucket + "/ds"
    lv.create_dataset(uri, events(0, 5))
    ds = lv.open_dataset(uri, storage_options=via(proxy))
    proxy.drop_after_send("/_lakever/log/main/00000000000000000001.json")
    after = ds.append(events(5, 5))
    assert after.version == 1
    fresh_process_caches()
    again = lv.open_dataset(uri)
    assert again.version == 1 and again.snapshot_id == after.snapshot_id
    assert again.to_arrow().equals(events(0, 10))


def test_transient_errors_are_retried(s3_bucket, proxy):
    uri = s3_bucket + "/ds"
    ds = lv.create_dataset(uri, events(0, 5), storage_options=via(proxy))
    proxy.fail(3)  # three 503 SlowDown answers, then the server again
    ds = ds.append(events(5, 5))
    fresh_process_caches()
    assert lv.open_dataset(uri, storage_options=via(proxy)).to_arrow().equals(events(0, 10))
    assert ds.version == 1


def test_backend_without_conditional_create_is_refused(tmp_path):
    from lakever.storage import ReadOnlyFsspecStorage

    store = open_storage("memory://x")  # sanity: memory commits
    assert store.put_if_absent("a", b"1")
    import fsspec

    ro = ReadOnlyFsspecStorage(fsspec.filesystem("file"), str(tmp_path), "dirfs")
    with pytest.raises(lv.StorageError, match="atomic put-if-absent"):
        ro.put_if_absent("a", b"1")


# ---------------------------------------------------------------- the cache


def test_second_epoch_makes_no_data_requests(s3_bucket, proxy, tmp_path):
    uri = s3_bucket + "/ds"
    ds = lv.create_dataset(uri, events(0, 10))
    for i in range(1, 6):
        ds = ds.append(events(10 * i, 10))
    opts = via(proxy, cache_dir=str(tmp_path / "cache"))
    fresh_process_caches()
    first = lv.open_dataset(uri, storage_options=opts).to_arrow()
    assert first.equals(events(0, 60))
    assert data_gets(proxy) == 6  # one request per fragment, fetched concurrently
    proxy.reset_counts()
    fresh_process_caches()  # a new process: only the disk cache remains
    again = lv.open_dataset(uri, storage_options=opts)
    assert again.to_arrow().equals(first)
    assert list(again.to_batches(batch_size=7))  # a training epoch
    assert again.sql("SELECT count(*) FROM self").fetchall() == [(60,)]
    assert data_gets(proxy) == 0


def test_cache_refetches_a_damaged_copy(s3_bucket, tmp_path):
    uri = s3_bucket + "/ds"
    lv.create_dataset(uri, events(0, 10))
    opts = {"cache_dir": str(tmp_path / "cache")}
    ds = lv.open_dataset(uri, storage_options=opts)
    assert ds.to_arrow().equals(events(0, 10))
    frag = ds.fragments()[0].path
    cached = Path(open_storage(uri, opts).engine_view().full_path(frag))
    assert cached.is_file()
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))  # bit rot in the cache
    fresh_process_caches()
    assert lv.open_dataset(uri, storage_options=opts).to_arrow().equals(events(0, 10))
    assert cached.read_bytes() != bytes(data)  # replaced by a verified copy


def test_damaged_remote_fragment_is_named(s3_bucket, s3_server, tmp_path):
    import boto3

    uri = s3_bucket + "/ds"
    ds = lv.create_dataset(uri, events(0, 10))
    frag = ds.fragments()[0].path
    bucket = s3_bucket.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=s3_server)
    client.put_object(Bucket=bucket, Key=f"ds/{frag}", Body=b"PAR1 not parquet PAR1")
    fresh_process_caches()
    opts = {"cache_dir": str(tmp_path / "cold")}
    with pytest.raises(lv.CorruptData) as info:
        lv.open_dataset(uri, storage_options=opts).to_arrow()
    assert f"{uri}/{frag}" in str(info.value)
    assert "instead of" in str(info.value) or "hash" in str(info.value)
    assert not Path(open_storage(uri, opts).engine_view().full_path(frag)).exists()


def test_cache_evicts_least_recently_used_files(tmp_path, monkeypatch):
    import lakever.storage.cache as cache_mod

    monkeypatch.setattr(cache_mod, "GRACE_SECONDS", 0.0)
    cache = ObjectCache(str(tmp_path), 3000, "k")
    for i in range(5):
        cache.put(f"data/{i}.parquet", bytes([i]) * 1000)
        os.utime(cache.path(f"data/{i}.parquet"), (1000 + i, 1000 + i))
    cache.evict()
    left = sorted(p.name for p in Path(cache.dir, "data").iterdir())
    assert left == ["2.parquet", "3.parquet", "4.parquet"]
    assert cache.usage() <= 3000
    # A use makes a file recent: it outlives older ones.
    import hashlib

    assert cache.get("data/2.parquet", "sha256:" + hashlib.sha256(b"\x02" * 1000).hexdigest())
    cache.put("data/9.parquet", b"9" * 1000)
    assert not Path(cache.path("data/3.parquet")).exists()
    assert Path(cache.path("data/2.parquet")).exists()


def test_recently_used_files_are_not_evicted(tmp_path):
    cache = ObjectCache(str(tmp_path), 1000, "k")
    for i in range(3):
        cache.put(f"data/{i}.parquet", b"x" * 1000)
    # Over its size, but every file is in use (a scan may be about to open it).
    assert cache.usage() == 3000
    assert cache.evict() == 0


def test_cache_size_option_is_validated(s3_bucket):
    with pytest.raises(lv.InvalidArgument, match="cache_size"):
        open_storage(s3_bucket + "/ds", {"cache_size": "lots"})
    assert open_storage(s3_bucket + "/ds", {"cache_size": "2G"}).cache.max_bytes == 2 << 30


def test_processes_share_a_cold_cache(s3_bucket, tmp_path):
    uri = s3_bucket + "/ds"
    ds = lv.create_dataset(uri, events(0, 20))
    for i in range(1, 8):
        ds = ds.append(events(20 * i, 20))
    cache = str(tmp_path / "shared")
    code = (
        "import lakever as lv, sys\n"
        f"t = lv.open_dataset({uri!r}, storage_options={{'cache_dir': {cache!r}}}).to_arrow()\n"
        "assert t.column('id').to_pylist() == list(range(160)), t\n"
        "print('ok')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert all(o.strip() == "ok" for o in outs)
    left = [p for p in Path(cache).rglob("*") if ".tmp-" in p.name]
    assert left == []


# ---------------------------------------------------------------- SQL and lakes


def test_lake_sql_with_time_travel_on_s3(s3_bucket):
    lake = lv.connect(s3_bucket + "/lake")
    assert lake.datasets() == []
    a = lake.create_dataset("a", events(0, 5))
    a.append(events(5, 5))
    lake.create_dataset("b", pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    assert lake.datasets() == ["a", "b"]
    got = lake.sql("SELECT count(*) FROM a VERSION AS OF 0 JOIN b USING (id)").fetchall()
    assert got == [(3,)]
    assert lake.sql("SELECT count(*) FROM a").fetchall() == [(10,)]


def test_cli_reads_and_writes_s3(s3_bucket, tmp_path):
    from typer.testing import CliRunner

    from lakever.cli import app

    uri = s3_bucket + "/ds"
    csv = tmp_path / "rows.csv"
    csv.write_text("id,name\n1,a\n2,b\n")
    runner = CliRunner()
    res = runner.invoke(app, ["init", uri, "--from", str(csv)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["tag", uri, "v1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["sql", "--lake", s3_bucket, "SELECT sum(id) AS s FROM ds"])
    assert res.exit_code == 0, res.output
    assert "3" in res.output
    assert lv.open_dataset(uri, version="v1").num_rows == 2


def test_unknown_option_is_a_storage_error_without_values(s3_bucket):
    with pytest.raises(lv.StorageError) as info:
        open_storage(s3_bucket + "/ds", {"no_such_option": "hunter2-secret-value"})
    assert "hunter2-secret-value" not in str(info.value)


def test_storage_pickles_with_its_options(s3_bucket):
    import pickle  # noqa: TID251 - pickling is what this test checks

    store = open_storage(s3_bucket + "/ds", {"cache_size": 12345})
    again = pickle.loads(pickle.dumps(store))
    assert isinstance(again, ObjectStorage)
    assert (again.uri, again.cache.max_bytes) == (store.uri, 12345)
    view = pickle.loads(pickle.dumps(store.engine_view()))
    assert view.uri == store.uri and view.is_local


# ---------------------------------------------------------------- secrets


SECRET_KEY_ID = "AKIALEAKCHECK7Q2W9E1R"
SECRET = "leak-check-secret-9f3a7c21b8d4"


def test_credentials_never_appear_anywhere(s3_bucket, tmp_path, caplog, monkeypatch):
    import logging

    caplog.set_level(logging.DEBUG)
    opts = {
        "aws_access_key_id": SECRET_KEY_ID,
        "aws_secret_access_key": SECRET,
        "cache_dir": str(tmp_path / "cache"),
    }
    uri = s3_bucket + "/ds"
    said: list[str] = []
    ds = lv.create_dataset(uri, events(0, 10), storage_options=opts)
    ds = ds.append(events(10, 5), message="more")
    ds = ds.delete("id < 3")
    ds.tag("v1")
    dev = ds.branch("dev")
    dev.append(events(100, 2))
    ds = lv.open_dataset(uri, storage_options=opts)
    said += [repr(ds), str(ds), ds.pin(), repr(ds.history()), repr(ds.fragments())]
    said += [repr(open_storage(uri, opts)), repr(open_storage(uri, opts).engine_view())]
    said += [str(ds.explain("id > 5")), repr(lv.diff(uri, "v1", "dev", storage_options=opts))]
    failures = [
        lambda: lv.open_dataset(uri, version=99, storage_options=opts),
        lambda: lv.open_dataset("s3://no-such-bucket-lakever/ds", storage_options=opts),
        lambda: ds.to_arrow(filter="nope > 1"),
        lambda: open_storage(uri, {**opts, "bogus_option": SECRET}),
        lambda: lv.create_dataset(uri, events(0, 1), storage_options=opts),
    ]
    for fail in failures:
        with pytest.raises(lv.LakeverError) as info:
            fail()
        said += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    # Through the CLI, with the credentials in the environment.
    from typer.testing import CliRunner

    from lakever.cli import app

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    runner = CliRunner()
    for argv in (["log", uri], ["show", uri], ["log", "s3://no-such-bucket-lakever/x"]):
        said.append(runner.invoke(app, argv).output)
    said += [r.getMessage() for r in caplog.records]

    store = open_storage(uri)
    written = [store.read_bytes(rel) for rel in (f.path for f in store.walk(""))]
    cached = [p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert written and cached
    for secret in (SECRET_KEY_ID, SECRET):
        assert not [s for s in said if secret in s], secret
        assert not [b for b in written + cached if secret.encode() in b], secret


def test_aws_profile_supplies_the_credentials(s3_bucket, proxy, tmp_path, monkeypatch):
    uri = s3_bucket + "/ds"
    lv.create_dataset(uri, events(0, 3))
    creds = tmp_path / "credentials"
    creds.write_text(
        "[training]\naws_access_key_id = AKIAPROFILEKEY000001\n"
        "aws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "training")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    fresh_process_caches()
    ds = lv.open_dataset(uri, storage_options=via(proxy))
    assert ds.to_arrow().equals(events(0, 3))
    assert proxy.key_ids == {"AKIAPROFILEKEY000001"}
    # The same through the option, whatever AWS_PROFILE says.
    monkeypatch.setenv("AWS_PROFILE", "nonexistent")
    proxy.key_ids.clear()
    lv.open_dataset(uri, storage_options=via(proxy, profile="training"))
    assert proxy.key_ids == {"AKIAPROFILEKEY000001"}
