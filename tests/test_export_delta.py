"""Delta Lake export (lakever.interop.delta): every exported Delta version reads back,
through delta-rs and polars, exactly as lakever reads the same version."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.interop import delta
from lakever.interop.delta import REWRITE_DIR

deltalake = pytest.importorskip("deltalake")
pl = pytest.importorskip("polars")


def rows(start: int, n: int, *, cats: tuple[str, ...] = ("a", "b c%")) -> pa.Table:
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "cat": pa.array([cats[i % len(cats)] for i in ids], pa.string()),
            "x": pa.array([i * 7 % 11 if i % 5 else None for i in ids], pa.int32()),
            "f": pa.array([i / 4 for i in ids], pa.float32()),
            "d": pa.array([date(2024, 1, 1) + timedelta(days=i) for i in ids], pa.date32()),
            "ts": pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def lakever_table(uri: str, version: int, branch: str | None = None) -> pa.Table:
    return lv.open_dataset(uri, version=version, branch=branch).to_arrow().sort_by("id")


def as_lakever(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A read-back table in lakever's column order and types (Delta has one string type,
    timestamps come back in UTC)."""
    assert table.column_names == schema.names or sorted(table.column_names) == sorted(schema.names)
    return table.select(schema.names).cast(schema).sort_by("id")


def check_version(target: str, uri: str, version: int, branch: str | None = None) -> None:
    want = lakever_table(uri, version, branch)
    dt = deltalake.DeltaTable(target, version=version)
    assert [f.name for f in dt.schema().fields] == want.schema.names
    got = as_lakever(dt.to_pyarrow_table(), want.schema)
    assert got.equals(want), (version, got.to_pydict(), want.to_pydict())
    for frame in (pl.read_delta(target, version=version), pl.scan_delta(target, version=version)):
        df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        assert df.columns == want.schema.names
        assert as_lakever(df.to_arrow(), want.schema).equals(want), version
    # Statistics prune files: a filter through them must keep exactly the matching rows.
    lazy = pl.scan_delta(target, version=version)
    picked = lazy.filter((pl.col("id") >= 12) & (pl.col("id") <= 20)).collect()
    expect = want.filter(pa.compute.is_in(want["id"], pa.array(range(12, 21), pa.int64())))
    assert as_lakever(picked.to_arrow(), want.schema).equals(expect), version
    if "d" in want.schema.names:
        day = date(2024, 1, 15)
        got_d = lazy.filter(pl.col("d") > day).collect()["id"].sort().to_list()
        assert got_d == [
            i
            for i, d in zip(want["id"].to_pylist(), want["d"].to_pylist(), strict=True)
            if d is not None and d > day
        ]


def check_all(target: str, uri: str, versions: range, branch: str | None = None) -> None:
    for v in versions:
        check_version(target, uri, v, branch)


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def dataset_files(root: Path) -> dict[str, str]:
    """The dataset's own files and their hashes (not the export's holds and their events)."""
    out = {}
    for p in root.rglob("*"):
        rel = str(p.relative_to(root))
        if not p.is_file() or rel.startswith(("_delta_log", REWRITE_DIR)):
            continue
        if rel.startswith(("_lakever/refs/exports", "_lakever/refs/events", "_lakever/snapshots")):
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def export_files(root: Path) -> dict[str, int]:
    return {k: v for k, v in files_under(root).items() if k.startswith(("_delta_log", REWRITE_DIR))}


def evolving(uri: str) -> lv.Dataset:
    """Appends, a delete (DVs), an update, schema evolution, compaction, an overwrite."""
    ds = lv.create_dataset(uri, rows(0, 10), partition_by=["cat"])  # 0
    ds = ds.append(rows(10, 10))  # 1
    ds = ds.delete("id % 3 = 0")  # 2: deletion vectors
    ds = ds.update({"x": "x + 100"}, where="id < 5")  # 3: DVs + a new fragment
    ds = ds.evolve(add={"note": pa.string()})  # 4: old files lack the column
    ds = ds.append(rows(20, 6).append_column("note", pa.array(["n"] * 6)))  # 5
    ds = ds.evolve(widen={"x": pa.int64(), "f": pa.float64()})  # 6
    ds = ds.evolve(rename={"note": "comment", "x": "y"})  # 7
    ds = ds.evolve(drop=["comment"])  # 8
    ds = ds.evolve(add={"comment": pa.string()})  # 9: a new column under an old name
    ds = ds.compact(target_size=1 << 20, min_fragments=1)  # 10
    ds = ds.delete("id = 7")  # 11
    new = rows(40, 5).rename_columns(["id", "cat", "y", "f", "d", "ts"])
    new = new.set_column(2, "y", new["y"].cast(pa.int64())).set_column(
        3, "f", new["f"].cast(pa.float64())
    )
    ds = ds.overwrite(new.append_column("comment", pa.array(list("pqrst"))))  # 12
    return ds.append(ds.to_arrow().slice(0, 2).set_column(0, "id", pa.array([50, 51])))  # 13


def test_every_version_of_an_evolving_history_reads_back_exactly(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = evolving(uri)
    before = dataset_files(Path(uri))
    report = ds.export_delta(uri)
    assert report.versions_written == tuple(range(ds.version + 1))
    assert (report.first_version, report.head_version) == (0, ds.version)
    check_all(uri, uri, range(ds.version + 1))
    # Zero copy: only the log and the documented rewrites were written, the dataset's
    # own files are untouched.
    assert dataset_files(Path(uri)) == before
    written = export_files(Path(uri))
    rewrites = {k: v for k, v in written.items() if k.startswith(REWRITE_DIR)}
    assert set(written) - set(rewrites) == {f"_delta_log/{v:020d}.json" for v in range(14)}
    assert sum(rewrites.values()) == report.bytes_rewritten
    assert len(rewrites) == report.files_rewritten
    assert sum(written.values()) == report.bytes_written
    assert report.rewrites["deletion_vector"] > 0
    assert report.rewrites["schema"] > 0
    # Delta's history names the lakever snapshots.
    hist = deltalake.DeltaTable(uri).history()
    assert [h["lakever"]["snapshot_id"] for h in reversed(hist)] == [
        lv.open_dataset(uri, version=v).snapshot_id for v in range(ds.version + 1)
    ]


def test_an_append_only_history_is_exported_without_writing_any_data(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 5))
    for i in range(1, 4):
        ds = ds.append(rows(i * 5, 5))
    ds = ds.evolve(add={"extra": pa.string()})  # old files read the new column as null
    report = ds.export_delta(uri)
    assert (report.files_rewritten, report.bytes_rewritten) == (0, 0)
    assert report.files_referenced == 4
    assert set(export_files(Path(uri))) == {f"_delta_log/{v:020d}.json" for v in range(5)}
    check_all(uri, uri, range(5))
    # By key, not by substring: a random id in another action may contain "add".
    actions = (Path(uri) / "_delta_log" / f"{0:020d}.json").read_text().splitlines()
    add = next(a["add"] for a in map(json.loads, actions) if "add" in a)
    stats = json.loads(add["stats"])
    assert stats["numRecords"] == 5
    assert (stats["minValues"]["id"], stats["maxValues"]["id"]) == (0, 4)
    assert stats["minValues"]["d"] == "2024-01-01"
    assert stats["nullCount"]["x"] == 1
    assert "ts" not in stats["minValues"]  # no bound is exported that could be misread


def test_incremental_export_appends_exactly_the_new_versions(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 5))
    ds = ds.append(rows(5, 5))
    first = lv.open_dataset(uri, version=0).export_delta(uri)  # REF: a version
    assert first.versions_written == (0,)
    assert ds.export_delta(uri).versions_written == (1,)
    again = ds.export_delta(uri)
    assert (again.versions_written, again.bytes_written, again.head_version) == ((), 0, 1)
    log = sorted((Path(uri) / "_delta_log").iterdir())
    ds = ds.delete("id < 3").append(rows(10, 3))
    ds.tag("t")
    ds = ds.append(rows(20, 1))
    assert lv.open_dataset(uri, version="t").export_delta(uri).versions_written == (2, 3)
    assert sorted((Path(uri) / "_delta_log").iterdir())[:2] == log  # never rewritten
    assert ds.export_delta(uri).versions_written == (4,)
    check_all(uri, uri, range(5))


def test_exported_versions_survive_expiry_and_vacuum_until_the_export_is_dropped(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 5))
    ds = ds.delete("id = 1").compact(min_fragments=1)  # version 2 drops version 0's file
    ds = ds.overwrite(rows(100, 20))
    report = ds.export_delta(uri)
    assert sorted(r.version for r in ds.exports()) == [0, 1, 2, 3]
    assert {r.pin for r in ds.exports()} == {report.export_id}
    ds.expire(keep_last=1, older_than=timedelta(0), dry_run=False)
    kept = ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    assert not [f for f in kept.files if f.path.startswith("data/")]
    check_all(uri, uri, range(4))

    assert ds.drop_export("delta", uri) == 4
    ds.expire(keep_last=1, older_than=timedelta(0), dry_run=False)
    gone = ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    assert [f for f in gone.files if f.path.startswith("data/")]
    check_version(uri, uri, 3)  # the head keeps its files
    # A Delta reader of an older version now fails loudly; it never shows other rows.
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        deltalake.DeltaTable(uri, version=0).to_pyarrow_table()
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        pl.read_delta(uri, version=0)


def test_expired_versions_are_not_exported_the_table_starts_later(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 3))
    for i in range(1, 5):
        ds = ds.append(rows(i * 3, 3))
    ds.expire(keep_last=2, older_than=timedelta(0), dry_run=False)
    report = ds.export_delta(uri)
    assert report.versions_written == (3, 4)
    assert report.first_version == 3
    check_all(uri, uri, range(3, 5))  # version 3 adds everything live at version 3
    with pytest.raises(Exception, match="No files in log segment"):
        deltalake.DeltaTable(uri, version=2)


def test_a_branch_exports_to_a_directory_above_the_dataset(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake" / "events")
    target = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 4))
    ds = ds.append(rows(4, 4))
    exp = ds.branch("exp").delete("id = 2").append(rows(10, 2))
    ds.append(rows(30, 1))  # main moves on: not in the branch's export
    report = exp.export_delta(target)
    assert report.versions_written == (0, 1, 2, 3)
    assert report.branch == "exp"
    check_all(target, uri, range(4), branch="exp")
    add = json.loads((Path(target) / "_delta_log" / f"{0:020d}.json").read_text().splitlines()[-1])
    assert add["add"]["path"].startswith("events/data/")
    # the partition directory's "%" and " " are percent-encoded in the action's path
    assert set(export_files(Path(target))) == {f"_delta_log/{v:020d}.json" for v in range(4)} | {
        k for k in export_files(Path(target)) if k.startswith(REWRITE_DIR)
    }


def test_a_target_the_fragments_are_not_under_is_refused(tmp_path: Path) -> None:
    ds = lv.create_dataset(str(tmp_path / "lake"), rows(0, 2))
    for target in (tmp_path / "elsewhere", tmp_path / "lake" / "inside"):
        with pytest.raises(lv.ExportError, match="without copying") as err:
            ds.export_delta(str(target))
        assert err.value.reason == "location"
    assert ds.exports() == []
    assert not (tmp_path / "elsewhere" / "_delta_log").exists()


def test_targets_holding_another_table_or_diverged_history_are_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake" / "a")
    a = lv.create_dataset(uri, rows(0, 2))
    b = lv.create_dataset(str(tmp_path / "lake" / "b"), rows(0, 2))
    target = str(tmp_path / "lake")
    a.export_delta(target)
    with pytest.raises(lv.ExportError, match="another dataset") as err:
        b.export_delta(target)
    assert err.value.reason == "not_an_export"
    # a branch deleted and created again under the same name is another line
    exp = a.branch("exp").append(rows(5, 1))
    exp.export_delta(uri)
    a.delete_branch("exp")
    again = a.append(rows(9, 1)).branch("exp").append(rows(7, 1))
    with pytest.raises(lv.ExportError, match="another branch") as err:
        again.export_delta(uri)
    assert err.value.reason == "diverged"


def test_a_rewritten_history_is_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 2)).append(rows(2, 2))
    ds.export_delta(uri)
    # docs/format.md §7.2 step 4: entries above version 0 deleted, the branch continues
    log = Path(uri) / "_lakever" / "log" / "main"
    for p in log.iterdir():
        if p.name != f"{0:020d}.json":
            p.unlink()
    other = lv.open_dataset(uri).append(rows(50, 1))
    with pytest.raises(lv.ExportError, match="rewritten") as err:
        other.export_delta(uri)
    assert err.value.reason == "diverged"


@pytest.mark.parametrize(
    "content",
    [
        b'{"commitInfo": {"operation": "WRITE"}}\n{"protocol": {"minReaderVersion": 1}}\n',
        b"not json\n",
    ],
)
def test_a_foreign_or_damaged_delta_log_is_refused(tmp_path: Path, content: bytes) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 2))
    (Path(uri) / "_delta_log").mkdir()
    (Path(uri) / "_delta_log" / f"{0:020d}.json").write_bytes(content)
    with pytest.raises(lv.ExportError, match="not hold a Delta table exported by lakever"):
        ds.export_delta(uri)
    assert ds.exports() == []


def test_types_delta_cannot_hold_are_refused_by_name(tmp_path: Path) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, pa.table({"id": [1], "u": pa.array([1], pa.uint32())}))
    with pytest.raises(lv.ExportError, match="'u' has type uint32") as err:
        ds.export_delta(uri)
    assert err.value.reason == "unsupported"
    assert not (Path(uri) / "_delta_log").exists()
    assert ds.exports() == []  # refused before anything was held


def test_an_interrupted_export_leaves_only_readable_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 6)).append(rows(6, 3)).delete("id = 1")
    real = delta._Run.rewrite
    calls = []

    def failing(self: delta._Run, *args: object) -> delta.DeltaFile:
        real(self, *args)  # type: ignore[arg-type]  # the file is written, then a crash
        calls.append(1)
        raise OSError("killed")

    monkeypatch.setattr(delta._Run, "rewrite", failing)
    with pytest.raises(OSError, match="killed"):
        ds.export_delta(uri)
    assert calls
    versions = sorted(p.name for p in (Path(uri) / "_delta_log").iterdir())
    assert versions == [f"{0:020d}.json", f"{1:020d}.json"]
    # a commit file whose write was cut short is a temp file Delta readers never list
    (Path(uri) / "_delta_log" / f"{2:020d}.json.tmp-0badc0de").write_text('{"add": ')
    check_all(uri, uri, range(2))
    monkeypatch.setattr(delta._Run, "rewrite", real)
    report = ds.export_delta(uri)  # continues, reusing the rewritten file left behind
    assert report.versions_written == (2,)
    assert report.files_rewritten == 0
    check_all(uri, uri, range(3))


def test_a_concurrent_export_of_the_same_version_is_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 2))
    real = delta._Run.actions

    def racing(self: delta._Run, *args: object) -> list[dict[str, object]]:
        out = real(self, *args)  # type: ignore[arg-type]
        (Path(uri) / "_delta_log").mkdir(exist_ok=True)
        (Path(uri) / "_delta_log" / f"{0:020d}.json").write_text("{}\n")  # the other writer
        return out

    monkeypatch.setattr(delta._Run, "actions", racing)
    with pytest.raises(lv.ExportError, match="another export meanwhile") as err:
        ds.export_delta(uri)
    assert err.value.reason == "conflict"


def test_cli_exports_lists_and_drops(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lakever.cli import app

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 4)).append(rows(4, 4))
    ds.delete("id = 0")
    out = run("export", "delta", uri, "1", uri)
    assert f"exported versions 0..1 of 'main' to {uri} as Delta versions 0..1" in out
    out = run("export", "delta", uri, uri, "--json")
    assert json.loads(out)["versions_written"] == [2]
    assert "is up to date" in run("export", "delta", uri, uri)
    check_all(uri, uri, range(3))
    listed = json.loads(run("export", "list", uri, "--json"))
    assert sorted(r["version"] for r in listed) == [0, 1, 2]
    assert "delta-" in run("export", "list", uri)
    assert "3 snapshot(s) no longer held" in run("export", "drop", uri, "delta", uri)
    assert json.loads(run("export", "list", uri, "--json")) == []
    bad = runner.invoke(app, ["export", "delta", uri, str(tmp_path / "elsewhere")])
    assert isinstance(bad.exception, lv.ExportError)  # main() prints it as one error line
    usage = runner.invoke(app, ["export", "delta", uri, "1", uri, "x"])
    assert usage.exit_code == 2 and "[REF] TARGET" in usage.output  # a usage error


def test_cli_reports_a_refused_export_as_one_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    uri = str(tmp_path / "lake")
    lv.create_dataset(uri, rows(0, 2))
    cmd = [sys.executable, "-m", "lakever", "export", "delta", uri, str(tmp_path / "x")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot export"), proc.stderr
    assert proc.stderr.count("\n") == 1


def conforming(ds: lv.Dataset, start: int, n: int) -> pa.Table:
    """``n`` rows with ids from ``start`` in the dataset's current schema."""
    cols = []
    for f in ds.schema:
        if f.name == "id":
            cols.append(pa.array(range(start, start + n), pa.int64()))
        elif pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
            cols.append(pa.array([i % 7 for i in range(start, start + n)]).cast(f.type))
        else:
            cols.append(pa.array([f"v{i}" for i in range(start, start + n)], f.type))
    return pa.Table.from_arrays(cols, schema=ds.schema)


OPS = ["append", "delete", "update", "add", "widen", "rename", "compact", "overwrite", "export"]


@pytest.mark.slow
@settings(max_examples=12, deadline=None)
@given(ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=8))
def test_any_history_exported_in_any_steps_reads_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, ops: list[str]
) -> None:
    uri = str(tmp_path_factory.mktemp("h") / "lake")
    ds = lv.create_dataset(
        uri, pa.table({"id": pa.array([0, 1, 2], pa.int64()), "x": pa.array([1, 2, 3], pa.int32()),
                       "s": ["a", "b", "c"]})
    )  # fmt: skip
    written: list[int] = []
    for k, op in enumerate(ops, start=1):
        if op == "append":
            ds = ds.append(conforming(ds, 10 * k, 3))
        elif op == "overwrite":
            ds = ds.overwrite(conforming(ds, 10 * k, 2))
        elif op == "delete":
            ds = ds.delete(f"id % 3 = {k % 3}")
        elif op == "update":
            ds = ds.update({"x": "x + 1"}, where="id % 2 = 0")
        elif op == "add":
            ds = ds.evolve(add={f"a{k}": pa.string()})
        elif op == "widen" and ds.schema.field("x").type == pa.int32():
            ds = ds.evolve(widen={"x": pa.int64()})
        elif op == "rename":
            old = next(n for n in ds.schema.names if n.startswith("s"))
            ds = ds.evolve(rename={old: f"s{k}"})
        elif op == "compact":
            ds = ds.compact(min_fragments=1)
        elif op == "export":
            written += ds.export_delta(uri).versions_written
    written += ds.export_delta(uri).versions_written
    assert written == list(range(ds.version + 1))  # each version exported exactly once
    for v in range(ds.version + 1):
        want = lakever_table(uri, v)
        got = deltalake.DeltaTable(uri, version=v).to_pyarrow_table()
        assert as_lakever(got, want.schema).equals(want), (ops, v)
        got_pl = pl.read_delta(uri, version=v).to_arrow()
        assert as_lakever(got_pl, want.schema).equals(want), (ops, v)


def test_nested_decimal_binary_and_timestamp_columns_and_an_empty_version(tmp_path: Path) -> None:
    import decimal

    uri = str(tmp_path / "lake")
    t = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "l": pa.array([[1, 2], None, [3]], pa.list_(pa.int32())),
            "st": pa.array(
                [{"a": 1, "b": "x"}, {"a": None, "b": "y"}, None],
                pa.struct([("a", pa.int32()), ("b", pa.string())]),
            ),
            "dec": pa.array(
                [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50")], pa.decimal128(10, 2)
            ),
            "ntz": pa.array(
                [datetime(2024, 1, 1), None, datetime(2025, 5, 5, 1, 2, 3, 4)], pa.timestamp("us")
            ),
            "tz": pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="Europe/Paris")
            ),
            "b": pa.array([b"x", b"", None], pa.binary()),
            "ok": [True, False, None],
            "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
        }
    )
    ds = lv.create_dataset(uri, t).delete("id = 2").delete("true").append(t)
    assert lv.open_dataset(uri, version=2).num_rows == 0
    ds.export_delta(uri)
    protocol = deltalake.DeltaTable(uri).protocol()
    assert protocol.reader_features == ["timestampNtz"]  # a timestamp without time zone
    for v in range(ds.version + 1):
        want = lv.open_dataset(uri, version=v).to_arrow().sort_by("id")
        got = deltalake.DeltaTable(uri, version=v).to_pyarrow_table()
        assert as_lakever(got, want.schema).equals(want), v
        assert as_lakever(pl.read_delta(uri, version=v).to_arrow(), want.schema).equals(want), v


def test_delta_writers_cannot_change_the_export_or_delete_the_datasets_files(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "lake")
    ds = lv.create_dataset(uri, rows(0, 3)).append(rows(3, 3)).compact(min_fragments=1)
    ds.export_delta(uri)
    before = dataset_files(Path(uri))
    dt = deltalake.DeltaTable(uri)
    assert dt.vacuum(dry_run=True) == []  # removed files are kept for 100 years
    attempts = [
        lambda: dt.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False),
        lambda: deltalake.write_deltalake(uri, rows(9, 1), mode="append"),
        lambda: dt.delete("id = 1"),
        lambda: dt.optimize.compact(),
    ]
    for attempt in attempts:
        with pytest.raises(Exception, match="lakeverExportReadOnly"):
            attempt()
    assert dataset_files(Path(uri)) == before
    assert lv.open_dataset(uri).verify(full=True).ok
    check_all(uri, uri, range(3))


@pytest.mark.slow
def test_the_export_benchmark_runs_and_reports(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).parent.parent / "benchmarks" / "export.py"
    out = tmp_path / "export_delta.json"
    cmd = [sys.executable, str(script), "--quick", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["meta"]["dataset"]["rewritten_bytes"] == 0
    assert {r["workload"] for r in report["results"]} >= {"delta export, full"}


def test_an_export_on_an_object_store(s3_server: str, s3_bucket: str) -> None:
    uri = f"{s3_bucket}/events"
    ds = lv.create_dataset(uri, rows(0, 6)).append(rows(6, 4)).delete("id = 3")
    report = ds.export_delta(uri)
    assert report.versions_written == (0, 1, 2)
    assert report.files_rewritten == 1
    assert ds.export_delta(uri).versions_written == ()
    options = {"AWS_ENDPOINT_URL": s3_server, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    for v in range(3):
        want = lakever_table(uri, v)
        got = deltalake.DeltaTable(uri, version=v, storage_options=options).to_pyarrow_table()
        assert as_lakever(got, want.schema).equals(want), v
        got_pl = pl.read_delta(uri, version=v, storage_options=options).to_arrow()
        assert as_lakever(got_pl, want.schema).equals(want), v


def test_float_bounds_are_not_exported_for_files_holding_nan(tmp_path: Path) -> None:
    """NaN sorts above every number in polars and DuckDB, but lakever's min/max leave NaN
    out: exported as Delta bounds they would let a reader skip the NaN rows of `f > 100`."""
    uri = str(tmp_path / "lake")
    nan = float("nan")
    ds = lv.create_dataset(uri, pa.table({"id": [1, 2, 3], "f": [1.0, nan, 2.0]}))
    ds = ds.append(pa.table({"id": [4, 5], "f": [3.0, 4.0]}))
    ds.export_delta(uri)
    want = sorted(ds.to_arrow(filter="f > 100")["id"].to_pylist())
    assert want == [2]
    got = pl.scan_delta(uri).filter(pl.col("f") > 100).collect()["id"].sort().to_list()
    assert got == want
    stats = [
        json.loads(a["add"]["stats"])
        for p in sorted((Path(uri) / "_delta_log").iterdir())
        for a in map(json.loads, p.read_text().splitlines())
        if "add" in a
    ]
    assert ["f" in s["maxValues"] for s in stats] == [False, True]
