"""The shortcuts that make a small commit cheaper store exactly what the long way does.

Each test compares a fast path with the plain computation it replaces, on random
inputs: a small fragment encoded in memory and written in one piece against the
streamed write, the shared JSON encoder against ``json.dumps``, and the name check
that skips an unchanged schema against the full check. The last tests count the work
a chain of appends no longer repeats (parsing the schema, checking an accepted data
schema, re-encoding carried manifests) and check the faster time formatting.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever import fragments
from lakever.format import canonical_json
from lakever.schema import assign_field_ids, check_names, name_problems
from lakever.storage import open_storage
from tests._data import events

_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ----------------------------------------------------------------- small fragments

_values = st.one_of(st.none(), st.integers(-(2**40), 2**40))
_floats = st.one_of(st.none(), st.floats(allow_nan=True, width=64))
_texts = st.one_of(st.none(), st.text(max_size=12))


@st.composite
def _tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 40))
    table = pa.table(
        {
            "id": pa.array(draw(st.lists(_values, min_size=n, max_size=n)), pa.int64()),
            "x": pa.array(draw(st.lists(_floats, min_size=n, max_size=n)), pa.float64()),
            "s": pa.array(draw(st.lists(_texts, min_size=n, max_size=n)), pa.string()),
        }
    )
    schema, _ = assign_field_ids(table.schema)  # statistics are keyed by field id
    return table.cast(schema)


def _fragment_bytes(tmp: str, table: pa.Table, *, buffered: bool) -> tuple[Any, bytes]:
    """Write ``table`` as one fragment through the small (buffered) or streamed path."""
    store = open_storage(tmp)
    saved = fragments._BUFFERED_MAX
    fragments._BUFFERED_MAX = (1 << 40) if buffered else -1
    try:
        (entry,) = fragments.write_fragments(store, [table], schema_id="s" * 32)
    finally:
        fragments._BUFFERED_MAX = saved
    store.flush()
    with open(os.path.join(tmp, entry.path), "rb") as f:
        return entry, f.read()


def _rows(table: pa.Table) -> list[list[Any]]:
    """The values column by column, NaN made comparable."""
    return [[repr(v) for v in c.to_pylist()] for c in table.columns]


@_SETTINGS
@given(table=_tables())
def test_a_small_fragment_is_the_streamed_fragment_byte_for_byte(tmp_path_factory, table):
    fast, fast_bytes = _fragment_bytes(str(tmp_path_factory.mktemp("a")), table, buffered=True)
    slow, slow_bytes = _fragment_bytes(str(tmp_path_factory.mktemp("b")), table, buffered=False)
    assert fast_bytes == slow_bytes
    for entry, data in ((fast, fast_bytes), (slow, slow_bytes)):
        assert entry.size_bytes == len(data)
        assert entry.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()
        assert _rows(pq.read_table(pa.BufferReader(data))) == _rows(table)
    assert fast.stats == slow.stats
    assert sorted(fast.stats) == [1, 2, 3]
    nulls = {fid: s["nulls"] for fid, s in fast.stats.items()}
    assert nulls == {i + 1: c.null_count for i, c in enumerate(table.columns)}
    assert fast.num_rows == slow.num_rows == table.num_rows


def test_a_large_fragment_is_still_streamed(tmp_path, monkeypatch):
    """Rows above the threshold never build the whole file in memory."""
    buffered: list[int] = []
    real = pa.BufferOutputStream

    def spy() -> pa.BufferOutputStream:
        buffered.append(1)
        return real()

    monkeypatch.setattr(fragments.pa, "BufferOutputStream", spy)
    monkeypatch.setattr(fragments, "_BUFFERED_MAX", 1000)
    store = open_storage(str(tmp_path))
    (big,) = fragments.write_fragments(store, [events(0, 500)], schema_id="s" * 32)
    assert buffered == []
    (small,) = fragments.write_fragments(store, [events(0, 5)], schema_id="s" * 32)
    assert buffered == [1]
    store.flush()
    for entry in (big, small):
        data = (tmp_path / entry.path).read_bytes()
        assert entry.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_run_of_small_appends_reads_back_and_verifies(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 10))
    for i in range(1, 30):
        ds = ds.append(events(10 * i, 10))
    again = lv.open_dataset(str(tmp_path / "ds"))
    assert again.version == 29
    got = again.to_arrow().sort_by("id")
    assert got.column("id").to_pylist() == list(range(300))
    report = again.verify()  # every fragment's bytes match the recorded hash
    assert report.problems == () and report.snapshots == 30


# ----------------------------------------------------------------- canonical JSON

_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_canonical_json_is_json_dumps_with_the_canonical_options(value):
    expected = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
    assert canonical_json(value) == expected


def test_canonical_json_still_refuses_nan():
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("nan")})


# ----------------------------------------------------------------- name checks

_names = st.one_of(
    st.sampled_from(["a", "A", "b", "", "x\n", "__lakever_x", "id", "ID"]), st.text(max_size=4)
)


@st.composite
def _schemas(draw: st.DrawFn) -> pa.Schema:
    names = draw(st.lists(_names, min_size=1, max_size=4))
    fields = []
    for name in names:
        if draw(st.booleans()):
            inner = draw(st.lists(_names, min_size=0, max_size=3))
            t: pa.DataType = pa.struct([pa.field(n, pa.int64()) for n in inner])
        else:
            t = draw(st.sampled_from([pa.int64(), pa.string(), pa.float64()]))
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def _refused(schema: pa.Schema, before: pa.Schema | None) -> bool:
    try:
        check_names(schema, before=before, what="test")
    except lv.InvalidArgument:
        return True
    return False


@settings(max_examples=200, deadline=None)
@given(before=_schemas(), after=_schemas())
def test_the_name_check_refuses_exactly_the_new_problems(before, after):
    # The plain rule: refuse iff the new schema has a problem the old one had not.
    new = set(name_problems(after)) - set(name_problems(before))
    assert _refused(after, before) == bool(new)
    assert _refused(before, before) is False
    assert _refused(after, None) == bool(name_problems(after))


# ------------------------------------------------- work a chain of appends repeats


def test_appends_through_a_dataset_reuse_the_parsed_schema_and_carried_encodings(
    tmp_path, monkeypatch
):
    """Appends through the Dataset the previous append returned neither parse the schema
    record again, nor check an already accepted data schema again, nor re-encode the
    manifests and schema they carry over: each commit encodes only its own new manifest."""
    from lakever import format, projection, schema

    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 3)).append(events(3, 3))
    calls: dict[str, int] = {"parse": 0, "conform": 0, "encode": 0}

    def counting(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(schema, "schema_from_json", counting("parse", schema.schema_from_json))
    monkeypatch.setattr(projection, "conform", counting("conform", projection.conform))
    real_to_json = format.ManifestRef.to_json
    monkeypatch.setattr(format.ManifestRef, "to_json", counting("encode", real_to_json))
    merges = 0
    for i in range(2, 12):
        before = len(ds._state.snap.manifests)
        ds = ds.append(events(3 * i, 3))
        merges += len(ds._state.snap.manifests) <= before  # a level merge made a manifest
    assert calls["parse"] == 0 and calls["conform"] == 0
    assert merges >= 1
    # One new manifest per commit: its own inline one, or the level merge that took it in.
    assert calls["encode"] == 10
    assert lv.open_dataset(str(tmp_path / "ds")).to_arrow().equals(events(0, 36))


def test_a_different_data_schema_is_still_checked(tmp_path, monkeypatch):
    """The remembered acceptance is per data schema: another one is checked before any
    byte is written (and refused when it does not fit)."""
    from lakever import projection

    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 3)).append(events(3, 3))
    checked: list[pa.Schema] = []
    real = projection.conform

    def counting(table: pa.Table, *args: Any, **kwargs: Any) -> pa.Table:
        checked.append(table.schema)
        return real(table, *args, **kwargs)

    monkeypatch.setattr(projection, "conform", counting)
    ds = ds.append(events(6, 3))
    assert checked == []  # accepted before
    reordered = events(9, 3).select(["category", "value", "id"])
    ds = ds.append(reordered)
    assert len(checked) == 1 and checked[0].names == ["category", "value", "id"]
    bad = events(12, 3).set_column(0, "id", pa.array(["a", "b", "c"]))
    with pytest.raises(lv.SchemaMismatch):
        ds.append(bad)
    assert len(checked) == 2 and checked[1].field("id").type == pa.string()
    assert ds.to_arrow().num_rows == 12


@given(stamp=st.datetimes(timezones=st.timezones()))
@_SETTINGS
def test_snapshot_times_format_as_strftime_does(stamp):
    from datetime import UTC

    from lakever.format import format_time, parse_time

    text = format_time(stamp)
    assert text == stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if stamp.astimezone(UTC).year >= 1000:  # strftime does not pad earlier years
        assert parse_time(text) == stamp.astimezone(UTC)


@given(ahead=st.integers(1, 20_000), rows=st.integers(1, 3000))
@_SETTINGS
def test_streamed_fragments_hash_every_byte_in_order(tmp_path_factory, ahead, rows):
    """Hashing moves to a background thread in batches once the file passes a size:
    wherever that happens, the recorded hash is the file's."""
    root = tmp_path_factory.mktemp("h")
    store = open_storage(str(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fragments, "_HASH_AHEAD", ahead)
        mp.setattr(fragments, "_BUFFERED_MAX", 0)  # stream every fragment
        (entry,) = fragments.write_fragments(store, [events(0, rows)], schema_id="s" * 32)
    store.flush()
    data = (root / entry.path).read_bytes()
    assert entry.size_bytes == len(data)
    assert entry.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()


def test_streamed_hashing_keeps_at_most_one_batch_in_flight(tmp_path, monkeypatch):
    """A batch goes to the hashing thread only once the one before it is hashed, so a
    slow hash never makes the whole file wait in memory."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    store = open_storage(str(tmp_path))
    in_flight: list[int] = []
    running = [0]
    real = fragments._update_all

    def slow(sha: Any, chunks: list[bytes]) -> None:
        running[0] += 1
        time.sleep(0.01)
        real(sha, chunks)
        running[0] -= 1

    class Pool:
        pool = ThreadPoolExecutor(1)

        def get(self) -> ThreadPoolExecutor:
            in_flight.append(running[0])
            return self.pool

    monkeypatch.setattr(fragments, "_update_all", slow)
    monkeypatch.setattr(fragments, "_HASHER", Pool())
    monkeypatch.setattr(fragments, "_HASH_AHEAD", 500)
    monkeypatch.setattr(fragments, "_BUFFERED_MAX", 0)
    (entry,) = fragments.write_fragments(store, [events(0, 20_000)], schema_id="s" * 32)
    store.flush()
    assert len(in_flight) > 3 and max(in_flight) == 0  # the previous batch was done
    data = (tmp_path / entry.path).read_bytes()
    assert entry.content_hash == "sha256:" + hashlib.sha256(data).hexdigest()
