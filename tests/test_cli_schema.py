"""The schema commands: schema [--history], schema-diff, validate."""

from __future__ import annotations

import json
import subprocess
import sys

import pandera.polars as pap
import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from tests._data import events

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


@pytest.fixture
def lake(tmp_path) -> str:
    """Version 0 created, 1 appended, 2 evolved (rename, add, widen), 3 contract attached."""
    path = str(tmp_path / "lake")
    t = events(0, 2).set_column(0, "id", pa.array([0, 1], pa.int32()))
    ds = lv.create_dataset(path, t)
    ds = ds.append(events(2, 1).set_column(0, "id", pa.array([2], pa.int32())))
    ds = ds.evolve(
        rename={"value": "amount"},
        add={"ts": pa.timestamp("us")},
        widen={"id": pa.int64()},
        message="v2 schema",
    )
    ds.set_contract(pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check.ge(0))}))
    return path


def test_schema_table_and_json(lake):
    code, out = run("schema", lake)
    assert code == 0
    assert "timestamp[us]" in out and "amount" in out
    assert 'contract: {"schema_type": "polars_dataframe"' in out
    code, out = run("schema", lake, "0", "--json")
    shown = json.loads(out)
    assert shown["version"] == 0 and shown["contract"] is None
    assert shown["schema"] == [
        {"name": "id", "type": "int32", "nullable": True, "field_id": 1},
        {"name": "value", "type": "double", "nullable": True, "field_id": 2},
        {"name": "category", "type": "string", "nullable": True, "field_id": 3},
    ]
    code, out = run("schema", lake, "--json")
    assert json.loads(out)["contract"]["api"] == "polars"  # pandera's JSON, as an object


def test_schema_history(lake):
    code, out = run("schema", lake, "--history", "--json")
    history = json.loads(out)
    assert [(h["version"], h["operation"]) for h in history] == [(0, "create"), (2, "evolve")]
    assert [c["kind"] for c in history[1]["changes"]] == ["rename", "widen", "add"]
    assert history[1]["message"] == "v2 schema"
    code, out = run("schema", lake, "--history")
    assert code == 0
    assert "rename 'value' -> 'amount' (field id 2)" in out
    assert "widen 'id' int32 -> int64" in out
    assert "first schema: id int32, value double, category string" in out


def test_schema_diff(lake):
    code, out = run("schema-diff", lake, "0", "3", "--json")
    assert [(c["kind"], c["column"]) for c in json.loads(out)] == [
        ("rename", "amount"),
        ("widen", "id"),
        ("add", "ts"),
    ]
    code, out = run("schema-diff", lake, "0", "2")
    assert code == 0 and "schema changes from version 0 to version 2" in out
    assert "rename" in out and "value" in out and "timestamp[us]" in out
    code, out = run("schema-diff", lake, "2", "3")
    assert out.strip() == "no schema changes from version 2 to version 3"


def _lakever(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakever", *args], capture_output=True, text=True, check=False
    )


def test_validate(lake):
    result = runner.invoke(app, ["validate", lake, "0"])  # main() turns this into exit 1
    assert isinstance(result.exception, lv.InvalidArgument)
    assert "has no contract to validate against" in str(result.exception)
    ds = lv.open_dataset(lake)
    row = {"id": [5], "amount": [0.5], "category": ["a"], "ts": pa.nulls(1, pa.timestamp("us"))}
    ds = ds.append(pa.table(row))
    code, out = run("validate", lake)
    assert code == 0
    assert out.strip() == f"version 4 of {ds.uri} satisfies its contract (4 rows checked)"
    ds.append(pa.table({**row, "id": [-1]}), validate="skip")
    proc = _lakever("validate", lake)
    assert proc.returncode == 1
    assert "failure cases" in proc.stdout and "greater_than_or_equal_to(0)" in proc.stdout
    assert proc.stderr.startswith(
        f"error: version 5 of {ds.uri} violates its contract: 1 failing value(s) in 1 failure "
        "case(s) (listed on stdout)"
    )
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert run("validate", lake, "4")[0] == 0
