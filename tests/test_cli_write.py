"""What a daily user does without Python: init options, overwrite, evolve, contracts,
--schema-mode, --author and --message on every write, CSV read with the dataset's types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from tests._data import events

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str) -> lv.LakeverError:
    """Run a command that must fail with a LakeverError (main() prints it as one line)."""
    result = runner.invoke(app, list(args))
    assert isinstance(result.exception, lv.LakeverError), result.output
    return result.exception


@pytest.fixture
def csv(tmp_path) -> Path:
    path = tmp_path / "first.csv"
    ts = pa.array([1_767_225_600_000_000 + i * 3_600_000_000 for i in range(4)], pa.timestamp("us"))
    pacsv.write_csv(events(0, 4).append_column("ts", ts.cast(pa.timestamp("us", tz="UTC"))), path)
    return path


def test_init_with_key_partitioning_sort_contract_author(tmp_path, csv):
    contract = tmp_path / "contract.yaml"
    contract.write_text("columns:\n  id:\n    dtype: Int64\n    greater_than_or_equal_to: 0\n")
    path = str(tmp_path / "events")
    out = run(
        "init",
        path,
        "--from",
        str(csv),
        "--primary-key",
        "id",
        "--partition-by",
        "category",
        "--partition-by",
        "day(ts)",
        "--sort-by",
        "-value",
        "--contract",
        str(contract),
        "-m",
        "first",
        "--author",
        "alice",
    )
    assert out.startswith(f"committed version 0 of {path}")
    ds = lv.open_dataset(path)
    assert ds.primary_key == ["id"]
    assert [repr(t) for t in ds.partitioning] == ["identity('category')", "day('ts')"]
    assert ds.sort_by == ["-value"]
    assert ds.contract is not None and list(ds.contract.columns) == ["id"]
    assert (ds.commit.author, ds.commit.message) == ("alice", "first")


def test_author_on_every_write(tmp_path, csv):
    path = str(tmp_path / "events")
    more = tmp_path / "more.parquet"
    run("init", path, "--from", str(csv), "--primary-key", "id", "--author", "a0")
    pq.write_table(lv.open_dataset(path).to_arrow().slice(0, 1).set_column(0, "id", [[9]]), more)
    contract = tmp_path / "c.json"
    contract.write_text('{"columns": {"id": {"dtype": "Int64"}}}')
    steps = [
        ("append", [str(more)]),
        ("overwrite", [str(more)]),
        ("delete", ["--where", "id = 9"]),
        ("upsert", [str(more)]),
        ("update", ["--set", "value = value + 1"]),
        ("evolve", ["--add", "note:string"]),
        ("contract", []),
    ]
    for i, (command, args) in enumerate(steps, 1):
        if command == "contract":
            run("contract", "set", path, str(contract), "--author", f"a{i}", "-m", f"m{i}")
        else:
            run(command, path, *args, "--author", f"a{i}", "-m", f"m{i}")
    run("contract", "remove", path, "--author", "a8", "-m", "m8")
    history = lv.open_dataset(path).history()
    assert [(c.author, c.message) for c in history] == [
        (f"a{i}", f"m{i}") for i in range(8, 0, -1)
    ] + [("a0", "")]
    run("tag", path, "t1", "--author", "tagger")
    run("branch", path, "b1", "--author", "brancher")
    run("merge", path, "b1", "--author", "merger")
    assert lv.open_dataset(path).tags()[0].author == "tagger"
    # LAKEVER_AUTHOR is the documented default of --author.
    run("delete", path, "--where", "id = 9", env={"LAKEVER_AUTHOR": "from-env"})
    assert lv.open_dataset(path).commit.author == "from-env"


def test_overwrite_and_schema_mode(tmp_path, csv):
    path = str(tmp_path / "events")
    run("init", path, "--from", str(csv))
    wider = tmp_path / "wider.csv"
    pacsv.write_csv(events(10, 2).append_column("score", pa.array([1.5, 2.5])), wider)
    error = fails("append", path, str(wider))
    assert isinstance(error, lv.SchemaMismatch)
    out = run("append", path, str(wider), "--schema-mode", "add")
    assert "committed version 1" in out
    assert lv.open_dataset(path).schema.field("score").type == pa.float64()
    out = run("overwrite", path, str(wider), "--schema-mode", "add", "-m", "redo")
    assert out.strip().endswith("6 rows replaced by 2")
    ds = lv.open_dataset(path)
    assert ds.num_rows == 2 and ds.commit.operation == "overwrite" and ds.commit.message == "redo"


def test_evolve(tmp_path, csv):
    path = str(tmp_path / "events")
    run("init", path, "--from", str(csv))
    out = run(
        "evolve",
        path,
        "--add",
        "score:double",
        "--add",
        "seen:timestamp[ms, tz=UTC]",
        "--add",
        "price:decimal128(10, 2)",
        "--rename",
        "value=amount",
        "--drop",
        "category",
        "-m",
        "v2",
    )
    assert out.splitlines() == [
        f"committed version 1 of {path} (snapshot {lv.open_dataset(path).snapshot_id[:12]}):",
        "  drop 'category' string (field id 3)",
        "  rename 'value' -> 'amount' (field id 2)",
        "  add 'score' double (field id 5)",
        "  add 'seen' timestamp[ms, tz=UTC] (field id 6)",
        "  add 'price' decimal128(10, 2) (field id 7)",
    ]
    schema = lv.open_dataset(path).schema
    assert schema.names == ["id", "amount", "ts", "score", "seen", "price"]
    assert lv.open_dataset(path).commit.message == "v2"
    run("evolve", path, "--widen", "score:float64")  # same type: accepted
    error = fails("evolve", path, "--widen", "id:int8")
    assert isinstance(error, lv.SchemaEvolutionError)


def test_contract_set_show_remove(tmp_path, csv):
    path = str(tmp_path / "events")
    run("init", path, "--from", str(csv))
    spec = tmp_path / "contract.yaml"
    spec.write_text(
        "columns:\n  id:\n    dtype: Int64\n    greater_than_or_equal_to: 0\n"
        "  category:\n    dtype: String\n    isin: [a, b, c]\n"
    )
    out = run("contract", "set", path, str(spec), "-m", "contract v1")
    assert out.startswith(f"committed version 1 of {path}") and "contract set" in out
    shown = json.loads(run("contract", "show", path))
    assert shown["columns"]["id"] == {"dtype": "Int64", "greater_than_or_equal_to": 0}
    assert "isin:" in run("contract", "show", path, "--yaml")
    # What 'contract show' prints is a contract file again.
    again = tmp_path / "again.json"
    again.write_text(run("contract", "show", path))
    run("contract", "set", path, str(again))
    error = fails("contract", "show", path, "0")
    assert str(error) == (
        f"version 0 of {path} has no contract; set one with 'lakever contract set {path} FILE'"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  id:\n    dtype: Int64\n    greater_than_zero: 0\n")
    error = fails("contract", "set", path, str(bad))
    assert str(error).startswith(
        f"contract file {str(bad)!r}: the contract names checks pandera does not know: "
        "id.greater_than_zero"
    )
    error = fails("contract", "set", path, str(tmp_path / "nope.yaml"))
    assert str(error) == (
        f"cannot read contract file {str(tmp_path / 'nope.yaml')!r}: No such file or directory"
    )
    out = run("contract", "remove", path)
    assert "contract removed" in out and lv.open_dataset(path).contract is None
    assert "nothing committed" in run("contract", "remove", path)


def test_csv_append_uses_the_dataset_schema(tmp_path):
    path = str(tmp_path / "events")
    table = pa.table(
        {
            "id": pa.array([1], pa.int32()),
            "value": pa.array([0.5], pa.float32()),
            "day": pa.array([0], pa.date32()),
            "code": pa.array(["007"], pa.string()),
        }
    )
    lv.create_dataset(path, table)
    more = tmp_path / "more.csv"
    # Fresh inference would read int64, double, a timestamp and an int: all refused.
    more.write_text("id,value,day,code\n2,1,2026-01-02,008\n")
    run("append", path, str(more))
    ds = lv.open_dataset(path)
    assert ds.schema == table.schema
    assert ds.to_arrow().column("code").to_pylist() == ["007", "008"]


@pytest.mark.parametrize(
    ("text", "line", "column", "value", "type_"),
    [
        ("id,note,value\n1,a,0.5\n2,b,oops\n", 3, "value", "oops", "double"),
        (
            "id,note,value\n1,a,0.5\n\n\n2,b,0.25\n99999999999,c,1\n",
            6,
            "id",
            "99999999999",
            "int32",
        ),
        ('id,note,value\n1,"two\nlines",0.5\n2,"x\ny",z\n', 5, "value", "z", "double"),
        (
            "value,note,id\n0.5,a,1\n" + "0.5,a,2\n" * 70_000 + "0.5,a,x\n",
            70_003,
            "id",
            "x",
            "int32",
        ),
    ],
    ids=["value", "overflow-after-empty-lines", "line-breaks-in-values", "many-rows"],
)
def test_csv_value_that_does_not_fit_names_line_and_column(
    tmp_path, text, line, column, value, type_
):
    path = str(tmp_path / "events")
    schema = {"id": pa.array([0], pa.int32()), "note": ["n"], "value": [0.0]}
    lv.create_dataset(path, pa.table(schema))
    file = tmp_path / "more.csv"
    file.write_text(text)
    error = fails("append", path, str(file))
    assert str(error) == (
        f"cannot read {str(file)!r}: line {line}, column {column!r}: value {value!r} does not "
        f"fit {type_}, the type of column {column!r} in the dataset"
    )
    assert lv.open_dataset(path).version == 0


def test_csv_other_conversion_reasons_are_kept(tmp_path):
    path = str(tmp_path / "events")
    lv.create_dataset(path, pa.table({"ts": pa.array([0], pa.timestamp("us"))}))
    file = tmp_path / "more.csv"
    file.write_text("ts\n2026-01-01 00:00:00\n2026-01-01T00:00:00+01:00\n")
    error = fails("append", path, str(file))
    assert str(error) == (
        f"cannot read {str(file)!r}: line 3, column 'ts': value '2026-01-01T00:00:00+01:00' does "
        "not fit timestamp[us], the type of column 'ts' in the dataset (expected no zone offset "
        "in '2026-01-01T00:00:00+01:00')"
    )


def test_csv_errors_are_one_line_in_a_real_process(tmp_path):
    path = str(tmp_path / "events")
    lv.create_dataset(path, pa.table({"id": pa.array([0], pa.int32()), "value": [0.0]}))
    file = tmp_path / "more.csv"
    file.write_text('id,value\n1,"a\nb"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "append", path, str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == (
        f"error: cannot read {str(file)!r}: line 2, column 'value': value 'a\\nb' does not fit "
        "double, the type of column 'value' in the dataset\n"
    )
