"""Export to Apache Iceberg (lakever.interop.iceberg): every exported snapshot read back
by pyiceberg equals lakever's own read of that version; incremental exports, holds,
refusals and the CLI command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pyiceberg")

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual
from pyiceberg.table import StaticTable
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app

UTC_TS = pa.timestamp("us", tz="UTC")


def _rows(ids: range, region: str, *, day: int = 1) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int32()),
            "score": pa.array([i / 4 for i in ids], pa.float32()),
            "region": pa.array([region] * len(ids)),
            "ts": pa.array([datetime(2026, 1, day, i % 24, tzinfo=UTC) for i in ids], UTC_TS),
        }
    )


def _history(uri: str) -> lv.Dataset:
    """Appends, a delete (DVs), an update, an overwrite, schema evolution (add, widen,
    rename), a partitioning change, a compaction and tags."""
    ds = lv.create_dataset(uri, _rows(range(6), "eu"), partition_by=["region"])
    ds = ds.append(_rows(range(6, 12), "us"))
    ds.tag("first-model", message="the data model v3 trained on")
    ds = ds.delete("id IN (1, 7, 8)")  # deletion vectors in two fragments
    ds = ds.evolve(widen={"id": pa.int64(), "score": pa.float64()}, add={"note": pa.string()})
    late = {"id": [12, 13], "score": [1.0, None], "region": ["eu", "ap"],
            "ts": pa.array([None, None], UTC_TS), "note": ["n", None]}  # fmt: skip
    ds = ds.append(pa.table(late))
    ds = ds.evolve(rename={"score": "weight"})
    ds = ds.update({"note": "'updated'"}, where="id IN (2, 9)")  # more DVs, unioned
    ds.tag("renamed")
    ds = ds.set_partitioning([lv.day("ts")])
    ds = ds.append(pa.table({"id": [20, 21], "weight": [2.0, 3.0], "region": ["eu", "eu"],
                             "ts": pa.array([datetime(2026, 2, 3, tzinfo=UTC)] * 2, UTC_TS),
                             "note": [None, "x"]}))  # fmt: skip
    ds = ds.delete("id = 20")
    ds = ds.compact(target_size="1M")
    ds = ds.overwrite(ds.to_arrow().filter(pa.compute.field("id") < 10))
    return ds.append(ds.to_arrow().slice(0, 2).set_column(0, "id", pa.array([30, 31], pa.int64())))


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _same(got: pa.Table, expected: pa.Table, key: str = "id") -> None:
    """Equal rows (sorted by ``key``), in lakever's column names and types."""
    got = got.select(expected.schema.names).cast(expected.schema)
    assert got.schema == expected.schema
    assert _plain(got.sort_by(key).to_pylist()) == _plain(expected.sort_by(key).to_pylist())


def _check_all(metadata: str, uri: str, lows: tuple[int, ...] = (2, 9, 12)) -> StaticTable:
    """Every snapshot of the table, whole and filtered on ``id`` (pruned by the exported
    bounds: a wrong bound drops rows), equals lakever's unfiltered read of its version
    (filtered by pyarrow for the filtered scans)."""
    table = StaticTable.from_metadata(metadata)
    for snap in table.metadata.snapshots:
        assert snap.summary is not None
        version = lv.open_dataset(uri, version=int(snap.summary["lakever.version"]))
        unpruned = version.to_arrow()
        _same(table.scan(snapshot_id=snap.snapshot_id).to_arrow(), unpruned)
        for low in lows:
            scan = table.scan(
                snapshot_id=snap.snapshot_id, row_filter=GreaterThanOrEqual("id", low)
            )
            # The pruned Iceberg read against a plain filter over the unpruned rows.
            _same(scan.to_arrow(), unpruned.filter(pc.field("id") >= low))
    return table


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def lake(tmp_path: Path) -> tuple[lv.Dataset, Path]:
    return _history(str(tmp_path / "ds")), tmp_path / "ice"


def test_every_exported_snapshot_reads_back_as_lakever_reads_that_version(lake):
    ds, target = lake
    done = ds.export_iceberg(str(target))
    table = _check_all(done.metadata_location, ds.uri)
    history = ds.history()[::-1]
    snaps = table.metadata.snapshots
    assert [int(s.summary["lakever.version"]) for s in snaps] == [c.version for c in history]
    assert done.versions_added == tuple(c.version for c in history) == (*range(ds.version + 1),)
    assert [s.summary["lakever.snapshot-id"] for s in snaps] == [c.snapshot_id for c in history]
    assert [s.parent_snapshot_id for s in snaps] == [None] + [s.snapshot_id for s in snaps[:-1]]
    assert [s.sequence_number for s in snaps] == list(range(1, len(snaps) + 1))
    assert [s.timestamp_ms for s in snaps] == [int(c.timestamp.timestamp() * 1000) for c in history]
    ops = {c.operation: s.summary.operation.value for c, s in zip(history, snaps, strict=True)}
    assert ops["append"] == "append" and ops["delete"] == "delete"
    assert ops["compact"] == ops["evolve"] == "replace"
    assert ops["update"] == ops["overwrite"] == "overwrite"
    # Schemas by field id: the rename kept id 2, the widenings are Iceberg promotions.
    schema = table.schema()
    assert [(f.field_id, f.name, str(f.field_type)) for f in schema.fields] == [
        (1, "id", "long"), (2, "weight", "double"), (3, "region", "string"),
        (4, "ts", "timestamptz"), (5, "note", "string"),
    ]  # fmt: skip
    first = table.metadata.schema_by_id(snaps[0].schema_id)
    assert [(f.field_id, f.name, str(f.field_type)) for f in first.fields][:2] == [
        (1, "id", "int"), (2, "score", "float"),
    ]  # fmt: skip
    # Tags name exported snapshots; main is the head.
    refs = table.metadata.refs
    assert refs["main"].snapshot_id == snaps[-1].snapshot_id
    for tag in ds.tags():
        assert refs[tag.name].snapshot_ref_type.value == "tag"
        assert refs[tag.name].snapshot_id == snaps[tag.version].snapshot_id
    assert done.tags == ("first-model", "renamed")
    _same(table.scan(snapshot_id=refs["first-model"].snapshot_id).to_arrow(),
          lv.open_dataset(ds.uri, version="first-model").to_arrow())  # fmt: skip


def test_no_data_is_copied_only_positional_deletes_are_written(lake):
    ds, target = lake
    done = ds.export_iceberg(str(target))
    written = _files(target)
    assert sum(written.values()) == done.bytes_written
    data = {k: n for k, n in written.items() if not k.startswith("metadata/")}
    assert data and all(k.startswith("data/") and k.endswith("-deletes.parquet") for k in data)
    assert sum(data.values()) == done.delete_bytes_written > 0
    table = StaticTable.from_metadata(done.metadata_location)
    fragments = {
        f.uri for v in range(ds.version + 1) for f in lv.open_dataset(ds.uri, version=v).fragments()
    }
    tasks = [
        t
        for s in table.metadata.snapshots
        for t in table.scan(snapshot_id=s.snapshot_id).plan_files()
    ]
    assert {t.file.file_path for t in tasks} == fragments  # every data file is a fragment
    deletes = {d.file_path for t in tasks for d in t.delete_files}
    assert deletes and all(p.startswith(str(target)) for p in deletes)
    # Per-file statistics: rows, bytes, null counts and exact bounds by field id.
    head = {f.uri: f for f in ds.fragments()}
    for t in table.scan().plan_files():
        f = head[t.file.file_path]
        assert (t.file.record_count, t.file.file_size_in_bytes) == (f.num_rows, f.size_bytes)
        assert t.file.null_value_counts[1] == 0
    assert any(t.file.lower_bounds for t in tasks)


def test_pyiceberg_applies_the_deletion_vectors(lake):
    ds, target = lake
    done = ds.export_iceberg(str(target))
    table = StaticTable.from_metadata(done.metadata_location)
    after_delete = table.metadata.snapshots[2]
    ids = sorted(table.scan(snapshot_id=after_delete.snapshot_id).to_arrow()["id"].to_pylist())
    assert ids == [0, 2, 3, 4, 5, 6, 9, 10, 11]
    tasks = list(table.scan(snapshot_id=after_delete.snapshot_id).plan_files())
    assert sum(len(t.delete_files) for t in tasks) == 2


def test_partitions_map_to_identity_and_day_specs(lake):
    ds, target = lake
    done = ds.export_iceberg(str(target))
    table = StaticTable.from_metadata(done.metadata_location)
    specs = {s.spec_id: [(f.source_id, str(f.transform), f.name) for f in s.fields]
             for s in table.metadata.partition_specs}  # fmt: skip
    assert specs == {0: [], 1: [(3, "identity", "region")], 2: [(4, "day", "ts_day")]}
    assert table.metadata.default_spec_id == 2  # the head's partitioning
    v1 = table.metadata.snapshots[1].snapshot_id
    scan = table.scan(snapshot_id=v1, row_filter=EqualTo("region", "us"))
    files = list(scan.plan_files())
    assert len(files) == 1 and files[0].file.partition[0] == "us"  # pruned by partition
    assert sorted(scan.to_arrow()["id"].to_pylist()) == list(range(6, 12))


def test_a_sql_catalog_registers_and_reads_the_table(lake, tmp_path):
    ds, target = lake
    done = ds.export_iceberg(str(target))
    catalog = SqlCatalog(
        "lake", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path}"
    )
    catalog.create_namespace("lakever")
    table = catalog.register_table(("lakever", "events"), done.metadata_location)
    _same(catalog.load_table("lakever.events").scan().to_arrow(), ds.to_arrow())
    tag = table.metadata.refs["renamed"].snapshot_id
    _same(
        table.scan(snapshot_id=tag).to_arrow(),
        lv.open_dataset(ds.uri, version="renamed").to_arrow(),
    )


def test_incremental_export_appends_exactly_the_new_snapshots(tmp_path):
    uri, target = str(tmp_path / "ds"), str(tmp_path / "ice")
    ds = lv.create_dataset(uri, _rows(range(3), "eu"))
    ds = ds.append(_rows(range(3, 5), "eu"))
    first = ds.export_iceberg(target)
    assert (first.metadata_version, first.versions_added) == (1, (0, 1))
    before = StaticTable.from_metadata(first.metadata_location).metadata
    files = _files(Path(target))

    again = ds.export_iceberg(target)  # nothing changed: nothing written
    assert (again.metadata_version, again.versions_added, again.bytes_written) == (1, (), 0)
    assert _files(Path(target)) == files

    ds = ds.delete("id = 0").append(_rows(range(5, 7), "us"))
    second = ds.export_iceberg(target)
    assert (second.metadata_version, second.versions_added) == (2, (2, 3))
    table = _check_all(second.metadata_location, uri)
    meta = table.metadata
    assert meta.snapshots[:2] == before.snapshots  # the old snapshots are kept as they were
    assert meta.snapshots[2].parent_snapshot_id == before.current_snapshot_id
    assert meta.table_uuid == before.table_uuid
    assert [e.metadata_file for e in meta.metadata_log] == [first.metadata_location]
    assert (Path(target) / "metadata" / "version-hint.text").read_text() == "2"
    new = set(_files(Path(target))) - set(files)
    assert len([n for n in new if n.startswith("metadata/snap-")]) == 2  # one list per snapshot

    lv.open_dataset(uri, version=1).tag("late")  # a new tag on an exported version
    tagged = ds.export_iceberg(target)
    assert (tagged.metadata_version, tagged.versions_added, tagged.tags) == (3, (), ("late",))
    refs = StaticTable.from_metadata(tagged.metadata_location).metadata.refs
    assert refs["late"].snapshot_id == meta.snapshots[1].snapshot_id


def test_export_up_to_a_ref_then_onwards(lake):
    ds, target = lake
    done = lv.open_dataset(ds.uri, version="first-model").export_iceberg(str(target))
    assert done.versions_added == (0, 1) and done.tags == ("first-model",)
    rest = ds.export_iceberg(str(target))
    assert rest.versions_added == tuple(range(2, ds.version + 1))
    _check_all(rest.metadata_location, ds.uri)
    with pytest.raises(lv.ExportError, match="already holds versions up to"):
        lv.open_dataset(ds.uri, version=3).export_iceberg(str(target))


def test_expired_versions_are_not_exported(tmp_path):
    uri = str(tmp_path / "ds")
    ds = lv.create_dataset(uri, _rows(range(2), "eu"))
    for i in range(2, 8, 2):
        ds = ds.append(_rows(range(i, i + 2), "eu"))
    ds.expire(keep_last=2, older_than=timedelta(0), dry_run=False)
    done = ds.export_iceberg(str(tmp_path / "ice"))
    assert done.versions_added == (2, 3) and done.first_version == 2
    table = _check_all(done.metadata_location, uri)
    assert table.metadata.snapshots[0].parent_snapshot_id is None


def _expire_and_vacuum(ds: lv.Dataset) -> None:
    ds.expire(keep_last=1, older_than=timedelta(0), dry_run=False)
    ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)


def test_held_snapshots_survive_expiry_and_vacuum_until_the_export_is_dropped(lake):
    ds, target = lake
    expected = [lv.open_dataset(ds.uri, version=v).to_arrow() for v in range(ds.version + 1)]
    done = ds.export_iceberg(str(target))
    assert done.held == ds.version + 1
    assert sorted(r.version for r in ds.exports()) == list(range(ds.version + 1))
    _expire_and_vacuum(ds)
    table = StaticTable.from_metadata(done.metadata_location)
    for snap, rows in zip(table.metadata.snapshots, expected, strict=True):
        _same(table.scan(snapshot_id=snap.snapshot_id).to_arrow(), rows)

    assert ds.drop_export("iceberg", str(target)) == ds.version + 1
    again = ds.export_iceberg(str(target))  # exporting again holds them again
    assert (again.versions_added, again.held, again.bytes_written) == ((), ds.version + 1, 0)
    assert ds.drop_export("iceberg", str(target)) == ds.version + 1
    _expire_and_vacuum(lv.open_dataset(ds.uri))
    # Snapshots whose fragments lakever still keeps (the head's, the tags') stay readable;
    # the others name fragments vacuum deleted: the reader fails on the missing file.
    gone = []
    for snap, rows in zip(table.metadata.snapshots, expected, strict=True):
        paths = [t.file.file_path for t in table.scan(snapshot_id=snap.snapshot_id).plan_files()]
        if all(Path(p).exists() for p in paths):
            _same(table.scan(snapshot_id=snap.snapshot_id).to_arrow(), rows)
            continue
        gone.append(int(snap.summary["lakever.version"]))
        with pytest.raises(FileNotFoundError):
            table.scan(snapshot_id=snap.snapshot_id).to_arrow()
    assert gone == [8, 9, 10]  # the day-partitioned fragment, and what compaction wrote
    assert lv.open_dataset(ds.uri).verify(full=True).ok


def test_refusals_are_named_errors_and_write_nothing(tmp_path):
    uri, target = str(tmp_path / "ds"), tmp_path / "ice"
    ds = lv.create_dataset(uri, _rows(range(3), "eu"))
    with pytest.raises(lv.ExportError, match="inside the dataset"):
        ds.export_iceberg(str(tmp_path / "ds" / "iceberg"))
    in_memory = lv.create_dataset(f"memory://{tmp_path.name}/ds", _rows(range(3), "eu"))
    with pytest.raises(lv.ExportError, match="Iceberg readers cannot open"):
        in_memory.export_iceberg(str(target))
    other = lv.create_dataset(str(tmp_path / "other"), _rows(range(3), "eu"))
    other.export_iceberg(str(target))
    with pytest.raises(lv.ExportError, match="export of another dataset"):
        ds.export_iceberg(str(target))

    foreign = tmp_path / "foreign"
    (foreign / "metadata").mkdir(parents=True)
    meta = json.loads((target / "metadata" / "v1.metadata.json").read_text())
    meta["properties"] = {}
    (foreign / "metadata" / "v1.metadata.json").write_text(json.dumps(meta))
    with pytest.raises(lv.ExportError, match="that lakever did not export"):
        ds.export_iceberg(str(foreign))

    mine = tmp_path / "mine"
    ds.export_iceberg(str(mine))
    dev = ds.branch("dev").append(_rows(range(3, 4), "eu"))
    ds.append(_rows(range(4, 5), "eu")).export_iceberg(str(mine))
    with pytest.raises(lv.ExportError, match="diverged"):
        dev.export_iceberg(str(mine))

    wide = lv.create_dataset(str(tmp_path / "w"), pa.table({"id": pa.array([1], pa.int32())}))
    wide = wide.evolve(widen={"id": pa.float64()})
    with pytest.raises(lv.SchemaEvolutionError, match="promotion Apache Iceberg does not allow"):
        wide.export_iceberg(str(tmp_path / "w-ice"))
    odd = lv.create_dataset(str(tmp_path / "u"), pa.table({"id": pa.array([1], pa.uint64())}))
    with pytest.raises(lv.InvalidArgument, match="unsigned 64-bit"):
        odd.export_iceberg(str(tmp_path / "u-ice"))
    assert not (tmp_path / "w-ice").exists() and not (tmp_path / "u-ice").exists()
    assert wide.exports() == [] and odd.exports() == []


def test_types_map_to_iceberg_types_and_read_back(tmp_path):
    uri = str(tmp_path / "ds")
    t = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "i8": pa.array([1, -2, None], pa.int8()),
        "u8": pa.array([1, 200, 3], pa.uint8()),
        "u32": pa.array([1, 4_000_000_000, 3], pa.uint32()),
        "f": pa.array([1.5, float("nan"), None], pa.float32()),
        "dec": pa.array([Decimal("1.25"), None, Decimal("-3.50")], pa.decimal128(10, 2)),
        "d": pa.array([18262, -1, None], pa.date32()),
        "ms": pa.array([1, 2, 3], pa.timestamp("ms")),
        "tm": pa.array([1, 2, 3], pa.time64("us")),
        "b": pa.array([True, False, None]),
        "bin": pa.array([b"a", b"", None], pa.binary()),
        "fb": pa.array([b"ab", b"cd", None], pa.binary(2)),
        "l": pa.array([[1, 2], [], None], pa.list_(pa.int32())),
        "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}],
                       pa.struct([("a", pa.int32()), ("b", pa.string())])),
        "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
    })  # fmt: skip
    ds = lv.create_dataset(uri, t)
    ds = ds.evolve(widen={"f": pa.float64(), "i8": pa.int64(), "dec": pa.decimal128(20, 2)})
    ds = ds.append(ds.to_arrow().slice(0, 1).set_column(0, "id", pa.array([4], pa.int64())))
    done = ds.export_iceberg(str(tmp_path / "ice"))
    table = _check_all(done.metadata_location, uri)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert types == {
        "id": "long", "i8": "long", "u8": "int", "u32": "long", "f": "double",
        "dec": "decimal(20, 2)", "d": "date", "ms": "timestamp", "tm": "time", "b": "boolean",
        "bin": "binary", "fb": "fixed[2]", "l": "list<int>",
        "st": "struct<16: a: optional int, 17: b: optional string>", "m": "map<string, long>",
    }  # fmt: skip


def test_an_interrupted_export_leaves_the_current_metadata_readable(tmp_path, monkeypatch):
    from lakever.interop import _iceberg_table

    uri, target = str(tmp_path / "ds"), str(tmp_path / "ice")
    ds = lv.create_dataset(uri, _rows(range(3), "eu"))
    first = ds.export_iceberg(target)
    ds = ds.delete("id = 1").append(_rows(range(3, 5), "eu"))

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_iceberg_table, "_metadata", crash)  # after manifests, before metadata
    with pytest.raises(KeyboardInterrupt):
        ds.export_iceberg(target)
    monkeypatch.undo()
    assert not (Path(target) / "metadata" / "v2.metadata.json").exists()
    _check_all(first.metadata_location, uri)
    done = ds.export_iceberg(target)  # the next run completes it
    assert (done.metadata_version, done.versions_added) == (2, (1, 2))
    _check_all(done.metadata_location, uri)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("delete"), st.integers(2, 4)),
        st.tuples(st.just("update"), st.integers(2, 4)),
        st.tuples(st.just("compact"), st.just(0)),
        st.tuples(st.just("export"), st.just(0)),
    ),
    min_size=1,
    max_size=7,
)


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(ops=_OPS)
def test_random_histories_exported_incrementally_read_back_exactly(ops):
    """Random appends, deletes (DVs), updates and compactions, exported after any step:
    the final table holds every version once, each equal to lakever's read of it."""
    with tempfile.TemporaryDirectory() as tmp:
        uri, target = f"{tmp}/ds", f"{tmp}/ice"
        ds = lv.create_dataset(uri, _rows(range(3), "eu"))
        next_id = 3
        for op, k in ops:
            if op == "append":
                ds = ds.append(_rows(range(next_id, next_id + k), "us"))
                next_id += k
            elif op == "delete" and ds.num_rows:
                ds = ds.delete(f"id % {k} = 1")
            elif op == "update" and ds.num_rows:
                ds = ds.update({"region": "'upd'"}, where=f"id % {k} = 0")
            elif op == "compact":
                ds = ds.compact(min_fragments=1)
            elif op == "export":
                ds.export_iceberg(target)
        done = ds.export_iceberg(target)
        table = _check_all(done.metadata_location, uri, lows=(2,))
        versions = [int(s.summary["lakever.version"]) for s in table.metadata.snapshots]
        assert versions == list(range(ds.version + 1))


runner = CliRunner()


def test_cli_exports_up_to_a_ref_and_incrementally(lake):
    ds, target = lake
    out = runner.invoke(app, ["export", "iceberg", ds.uri, "renamed", str(target)])
    assert out.exit_code == 0, out.output
    assert "exported" in out.stdout and "v1.metadata.json" in out.stdout
    out = runner.invoke(app, ["export", "iceberg", ds.uri, str(target), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    renamed = lv.open_dataset(ds.uri, version="renamed").version
    assert report["versions_added"] == list(range(renamed + 1, ds.version + 1))
    assert report["metadata_version"] == 2
    _check_all(report["metadata_location"], ds.uri)
    out = runner.invoke(app, ["export", "iceberg", ds.uri, str(target)])
    assert "up to date" in out.stdout
    bad = runner.invoke(app, ["export", "iceberg", ds.uri, "a", "b", "c"])
    assert bad.exit_code == 2


def test_cli_refusal_is_one_error_line(tmp_path):
    uri = str(tmp_path / "ds")
    lv.create_dataset(uri, pa.table({"id": pa.array([1], pa.uint64())}))
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "export", "iceberg", uri, str(tmp_path / "ice")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: column 'id' has type uint64")


def test_import_lakever_does_not_load_pyiceberg():
    code = "import sys, lakever; print('pyiceberg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_missing_pyiceberg_names_the_extra(tmp_path, monkeypatch):
    ds = lv.create_dataset(str(tmp_path / "ds"), _rows(range(2), "eu"))
    monkeypatch.setitem(sys.modules, "pyiceberg.table", None)  # import raises ImportError
    with pytest.raises(lv.MissingDependency, match=r"pip install 'lakever\[iceberg\]'"):
        ds.export_iceberg(str(tmp_path / "ice"))
    assert ds.exports() == []


def test_a_dataset_and_a_table_on_an_object_store(s3_bucket, s3_server):
    """Fragments and the table named by s3:// URIs; pyiceberg reads them from the store."""
    uri, target = f"{s3_bucket}/ds", f"{s3_bucket}/ice"
    ds = lv.create_dataset(uri, _rows(range(4), "eu")).append(_rows(range(4, 6), "us"))
    ds = ds.delete("id = 1")
    done = ds.export_iceberg(target)
    assert done.metadata_location == f"{target}/metadata/v1.metadata.json"
    io = {"s3.endpoint": s3_server, "s3.access-key-id": "lakever-test-key",
          "s3.secret-access-key": "lakever-test-secret", "s3.region": "us-east-1"}  # fmt: skip
    table = StaticTable.from_metadata(done.metadata_location, properties=io)
    for snap in table.metadata.snapshots:
        version = lv.open_dataset(uri, version=int(snap.summary["lakever.version"]))
        files = [t.file.file_path for t in table.scan(snapshot_id=snap.snapshot_id).plan_files()]
        assert all(f.startswith(f"{uri}/data/") for f in files)
        _same(table.scan(snapshot_id=snap.snapshot_id).to_arrow(), version.to_arrow())


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_damaged_manifest_list_in_the_target_is_a_named_error(tmp_path, damage):
    uri, target = str(tmp_path / "ds"), str(tmp_path / "ice")
    ds = lv.create_dataset(uri, _rows(range(3), "eu"))
    done = ds.export_iceberg(target)
    current = StaticTable.from_metadata(done.metadata_location).metadata.current_snapshot()
    assert current is not None
    path = Path(current.manifest_list.removeprefix("file://"))
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(lv.CorruptMetadata, match="manifest list"):
        ds.append(_rows(range(3, 5), "eu")).export_iceberg(target)
