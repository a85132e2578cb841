"""Manifest version 2 (typed statistics columns) and reading datasets written in version 1.

`tests/fixtures/lake-v1` was written by lakever 0.2 (format version 1: JSON statistics
in every manifest; `tests/fixtures/make_lake_v1.py`), with every version's rows saved
beside it by that release (`lake-v1.expected/v<N>.parquet`). It holds manifest files and
inlined entries, a widened int and float, a deletion vector, partitioned and unpartitioned
fragments, NaNs, nulls, a timestamp, a decimal, a renamed and an added column.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever import manifests
from lakever.format import FragmentEntry
from lakever.manifests import MANIFEST_VERSION, manifest_table, parse_manifest_data

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
V1 = os.path.join(FIXTURES, "lake-v1")
LAST = 8


def _expected(version: int) -> pa.Table:
    return pq.read_table(os.path.join(FIXTURES, "lake-v1.expected", f"v{version}.parquet"))


def _manifest_versions(root: str) -> list[bytes | None]:
    d = os.path.join(root, "_lakever", "manifests")
    return [
        (pq.read_schema(os.path.join(d, f)).metadata or {}).get(b"lakever.manifest_version")
        for f in sorted(os.listdir(d))
    ]


@pytest.fixture
def v1_lake(tmp_path) -> str:
    """A private copy of the version-1 lake (tests may write to it)."""
    manifests._CACHE.clear()  # as in a new process
    path = str(tmp_path / "lake-v1")
    shutil.copytree(V1, path)
    return path


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and values, NaN equal to NaN (Arrow's `equals` says it is not)."""

    def rows(t: pa.Table) -> list[dict[str, object]]:
        return [
            {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in t.to_pylist()
        ]

    return a.schema == b.schema and rows(a) == rows(b)


def _unpruned(version: int, where: str) -> pa.Table:
    """DuckDB over the release's own rows: what a filtered read must return."""
    t = _expected(version)  # noqa: F841 - read by DuckDB by name
    return duckdb.sql(f"SELECT * FROM t WHERE {where}").to_arrow_table().sort_by("id")


def test_the_fixture_is_format_version_1(v1_lake):
    assert _manifest_versions(v1_lake) and set(_manifest_versions(v1_lake)) == {None}
    for v in range(LAST + 1):
        assert lv.open_dataset(v1_lake, version=v).history(limit=1)[0].version == v
    with open(os.path.join(v1_lake, "_lakever", "log", "main", f"{LAST:020d}.json")) as f:
        assert json.load(f)["format_version"] == 1


@pytest.mark.parametrize("version", range(LAST + 1))
def test_every_version_1_snapshot_reads_back(v1_lake, version):
    got = lv.open_dataset(v1_lake, version=version).to_arrow().sort_by("id")
    assert _same(got, _expected(version))


FILTERS = [
    "id < 50",
    "id BETWEEN 130 AND 170",
    "id >= 590",
    "value > 40",
    "value IS NULL",
    "isnan(value)",
    "label = 'name-00123'",
    "label IS NULL",
    "label > 'name-00500'",
    "ts < TIMESTAMP '2026-01-03 00:00:00'",
    "price >= 5.50 AND price < 5.60",
    "region = 'apac'",
    "region = 'eu' AND id > 450",
    "score > 280",
    "score IS NULL",
    "id < 10 OR id > 580",
]


@pytest.mark.parametrize("where", FILTERS)
def test_filtered_reads_of_version_1_agree_with_an_unpruned_engine(v1_lake, where):
    ds = lv.open_dataset(v1_lake)
    got = ds.to_arrow(filter=where).sort_by("id")
    assert _same(got, _unpruned(LAST, where)), where
    assert ds.sql(f"SELECT count(*) FROM self WHERE {where}").fetchall()[0][0] == got.num_rows
    if where == "id >= 590":
        plan = ds.explain(filter=where)
        assert plan.fragments_total == 17 and plan.fragments_after_stats_pruning < 5  # stats used


def test_new_commits_on_a_version_1_dataset_write_version_2(v1_lake):
    ds = lv.open_dataset(v1_lake)
    old = set(os.listdir(os.path.join(v1_lake, "_lakever", "manifests")))
    extra = _expected(LAST).slice(0, 0)
    rows = pa.table(
        {
            c: pa.array([None] * 40, extra.schema.field(c).type)
            for c in extra.column_names
            if c != "id"
        }
    )
    rows = rows.add_column(0, "id", pa.array(range(1000, 1040), pa.int64()))
    rows = rows.select(extra.column_names).cast(ds.schema)
    ds = ds.append(rows, max_rows_per_fragment=5, message="new code")
    with open(os.path.join(v1_lake, "_lakever", "log", "main", f"{ds.version:020d}.json")) as f:
        assert json.load(f)["format_version"] == lv.FORMAT_VERSION == 2
    new = set(os.listdir(os.path.join(v1_lake, "_lakever", "manifests"))) - old
    assert new
    for name in new:
        meta = pq.read_schema(os.path.join(v1_lake, "_lakever", "manifests", name)).metadata
        assert meta[b"lakever.manifest_version"] == str(MANIFEST_VERSION).encode()
    manifests._CACHE.clear()
    # Mixed manifests: the old rows and the new ones, pruned by the same filters.
    t = pa.concat_tables([_expected(LAST), rows.cast(_expected(LAST).schema)])  # noqa: F841
    for where in ("id >= 1030", "id < 50", "region IS NULL", "label IS NULL"):
        got = lv.open_dataset(v1_lake).to_arrow(filter=where).sort_by("id")
        exp = duckdb.sql(f"SELECT * FROM t WHERE {where}").to_arrow_table().sort_by("id")
        assert _same(got, exp), where
    # Compaction rewrites everything into version-2 manifests; contents unchanged.
    before = lv.open_dataset(v1_lake).to_arrow().sort_by("id")
    compacted = lv.open_dataset(v1_lake).compact()
    assert _same(compacted.to_arrow().sort_by("id"), before)
    assert _same(lv.open_dataset(v1_lake, version=LAST).to_arrow().sort_by("id"), _expected(LAST))
    assert lv.open_dataset(v1_lake).verify().ok


# ------------------------------------------------------------------ round trip


_stat_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@st.composite
def _stats(draw: st.DrawFn) -> dict[int, dict[str, object]]:
    out: dict[int, dict[str, object]] = {}
    for fid in draw(st.lists(st.integers(1, 6), unique=True, max_size=4)):
        s: dict[str, object] = {"nulls": draw(st.integers(0, 1000))}
        if draw(st.booleans()):
            s["nans"] = draw(st.integers(0, 10))
        if draw(st.booleans()):
            s["min"], s["max"] = draw(_stat_values), draw(_stat_values)
        out[fid] = s
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(_stats(), max_size=6))
def test_typed_statistics_round_trip_exactly(all_stats):
    entries = [
        FragmentEntry(
            path=f"data/{i:032x}.parquet",
            num_rows=10,
            size_bytes=100 + i,
            content_hash=f"sha256:{i:064x}",
            stats=s,
            schema_id=f"{i % 2:032x}",
            partition=None if i % 3 else ({"field_id": 1, "transform": "identity", "value": i},),
        )
        for i, s in enumerate(all_stats)
    ]
    table = manifest_table(entries)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    parsed = parse_manifest_data(sink.getvalue().to_pybytes(), "m")
    back = parsed.entries()
    assert back == entries
    rows = list(range(0, len(entries), 2))
    again = parse_manifest_data(sink.getvalue().to_pybytes(), "m")
    assert again.take(rows) == [entries[i] for i in rows]
    for e, b in zip(entries, back, strict=True):  # same types too (True is not 1)
        for fid, s in e.stats.items():
            for k, v in s.items():
                got = b.stats[fid][k]
                assert type(got) is type(v) and (got == v or (math.isnan(got) and math.isnan(v)))


# ------------------------------------------------------------------ damage


def _entry(path: str = "data/" + "a" * 32 + ".parquet") -> FragmentEntry:
    return FragmentEntry(
        path=path,
        num_rows=3,
        size_bytes=10,
        content_hash="sha256:" + "0" * 64,
        stats={1: {"nulls": 0, "min": 1, "max": 3}},
        schema_id="b" * 32,
    )


def _bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.set_column(0, "path", pa.array(["../../etc/passwd"])), "not a plain path"),
        (lambda t: t.set_column(0, "path", pa.array(["data/x\x01.parquet"])), "not a plain path"),
        (lambda t: t.set_column(4, "schema_id", pa.array(["../x"])), "not 32 hex digits"),
        (lambda t: t.set_column(1, "num_rows", pa.array([3.0])), "has type double"),
        (lambda t: t.append_column("stats.1.median.i", pa.array([2])), "unknown manifest column"),
        (lambda t: t.append_column("stats.x.min.i", pa.array([2])), "unknown manifest column"),
        (
            lambda t: t.set_column(
                t.column_names.index("stats.1.min.i"), "stats.1.min.i", pa.array(["1"])
            ),
            "has type string",
        ),
        (
            lambda t: t.set_column(
                6,
                "deletion_vector",
                pa.array(
                    [{"path": "_lakever/deletions/x.parquet", "content_hash": "h", "count": 4}],
                    manifests._DV_TYPE,
                ),
            ),
            "deletes more rows",
        ),
        (
            lambda t: t.replace_schema_metadata({b"lakever.manifest_version": b"3"}),
            "does not read",
        ),
        (lambda t: t.drop_columns(["partition"]), "are not"),
    ],
)
def test_a_damaged_version_2_manifest_is_a_named_error(change, message):
    table = manifest_table([_entry()])
    damaged = change(table)
    if b"lakever.manifest_version" not in (damaged.schema.metadata or {}):
        damaged = damaged.replace_schema_metadata(table.schema.metadata)
    with pytest.raises(lv.CorruptMetadata, match=message) as info:
        # Names and types are checked on opening, values as they are decoded.
        parse_manifest_data(_bytes(damaged), "_lakever/manifests/m.parquet").entries()
    assert info.value.path


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 9), st.data())
def test_take_reads_the_right_rows_across_row_groups(n, group, data):
    entries = [
        FragmentEntry(
            path=f"data/{i:032x}.parquet",
            num_rows=i + 1,
            size_bytes=i,
            content_hash=f"sha256:{i:064x}",
            stats={1: {"nulls": i, "min": -i, "max": i}},
            schema_id="c" * 32,
        )
        for i in range(n)
    ]
    sink = pa.BufferOutputStream()
    pq.write_table(manifest_table(entries), sink, row_group_size=group)
    rows = sorted(data.draw(st.sets(st.integers(0, n - 1))))
    parsed = parse_manifest_data(sink.getvalue().to_pybytes(), "m")
    assert parsed.take(rows) == [entries[i] for i in rows]
    assert parsed.column("num_rows").to_pylist() == [e.num_rows for e in entries]


def test_a_bad_schema_id_stops_pruning_before_it_names_a_file():
    table = manifest_table([_entry()])
    damaged = table.set_column(4, "schema_id", pa.array(["../../x"]))
    parsed = parse_manifest_data(_bytes(damaged), "_lakever/manifests/m.parquet")
    with pytest.raises(lv.CorruptMetadata, match="not 32 hex digits"):
        parsed.column("schema_id")


def test_statistics_no_column_can_hold_are_unknown_when_pruning_and_refused_when_writing():
    from lakever.manifests import stats_columns

    odd = [{1: {"nulls": "3", "min": [1], "max": 5}}, {1: {"nulls": 0, "nans": True}}]
    cols = stats_columns(odd, lenient=True)
    assert cols["stats.1.max.i"].to_pylist() == [5, None]
    assert cols["stats.1.nulls"].to_pylist() == [None, 0]
    assert "stats.1.min.i" not in cols and "stats.1.nans" not in cols
    with pytest.raises(ValueError, match=r"not an integer|not a number"):
        stats_columns(odd)


@pytest.mark.parametrize(
    "where",
    [
        "id < 35",
        "id >= 150 AND id < 180",
        "value > 50.5",
        "value <= 2",
        "id > 9999",
        "region = 'apac' AND id < 100",
        # After the widening: ids past int32 and values float32 cannot tell apart, so
        # statistics decoded under the older schema's types would prune wrongly.
        "id >= 3000000210 AND id < 3000000230",
        "value >= 10000000305 AND value < 10000000312",
        "value > 10000000395",
    ],
)
def test_pruning_manifest_files_with_several_physical_schemas_agrees_with_duckdb(tmp_path, where):
    """A level-1 manifest file holding fragments written before and after a widening
    (two schema ids in one file), pruned from the file as a new process would."""
    from lakever import planner

    def rows(lo: int, hi: int, int_type: pa.DataType, float_type: pa.DataType) -> pa.Table:
        ids = list(range(lo, hi))
        wide = int_type == pa.int64()
        return pa.table(
            {
                "id": pa.array([i + 3_000_000_000 * wide for i in ids], int_type),
                "value": pa.array([1e10 + i if wide else i / 7 for i in ids], float_type),
                "region": pa.array([["eu", "us", "apac"][i % 3] for i in ids], pa.string()),
            }
        )

    ds = lv.create_dataset(str(tmp_path / "t"), rows(0, 0, pa.int32(), pa.float32()))
    at = 0
    for _ in range(4):  # level-0 manifest files (more fragments than are inlined)
        ds = ds.append(rows(at, at + 50, pa.int32(), pa.float32()), max_rows_per_fragment=10)
        at += 50
    ds = ds.evolve(widen={"id": pa.int64(), "value": pa.float64()})
    for _ in range(4):  # the 8th level-0 manifest merges them all into one level-1 file
        ds = ds.append(rows(at, at + 50, pa.int64(), pa.float64()), max_rows_per_fragment=10)
        at += 50
    levels = [m.level for m in ds._state.snap.manifests]
    assert 1 in levels, levels
    manifests._CACHE.clear()
    planner._PRUNED.clear()
    fresh = lv.open_dataset(str(tmp_path / "t"))
    t = fresh.to_arrow()  # noqa: F841 - read by DuckDB by name
    want = duckdb.sql(f"SELECT * FROM t WHERE {where}").to_arrow_table().sort_by("id")
    manifests._CACHE.clear()
    planner._PRUNED.clear()
    fresh = lv.open_dataset(str(tmp_path / "t"))
    assert fresh.to_arrow(filter=where).sort_by("id").equals(want)
    plan = fresh.explain(filter=where)
    if where != "region = 'apac' AND id < 100":
        assert plan.fragments_after_stats_pruning < plan.fragments_total
    assert len(want) or where == "id > 9999", "each filter selects rows"


def test_pages_that_do_not_decode_are_a_named_error_when_read_lazily():
    table = manifest_table([_entry(), _entry("data/" + "b" * 32 + ".parquet")])
    data = bytearray(_bytes(table))
    data[4:68] = b"\xff" * 64  # the first column chunks; the footer still parses
    parsed = parse_manifest_data(bytes(data), "_lakever/manifests/m.parquet")
    with pytest.raises(lv.CorruptMetadata, match="cannot be parsed"):
        parsed.entries()
