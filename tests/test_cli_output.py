"""What the CLI prints: no value cut, capped lists that say how many more, branch names."""

from __future__ import annotations

import json
import re
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


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_long_values_wrap_instead_of_being_cut(tmp_path):
    path = str(tmp_path / "events")
    long, longer = "Q" * 90 + "Z", "W" * 150 + "Z"
    lv.create_dataset(path, pa.table({"id": [1], "a": [long], "b": [longer], "c": ["short"]}))
    out = run("cat", path)
    assert "…" not in out and "..." not in out
    # Wrapped over several lines, but every character is there.
    assert (out.count("Q"), out.count("W"), out.count("Z")) == (90, 150, 2)
    assert len(out.splitlines()) > 6 and "short" in out


def test_too_many_columns_print_one_field_per_line(tmp_path):
    path = str(tmp_path / "events")
    lv.create_dataset(path, pa.table({f"column_{i}": [f"value-{i}-" * 3] for i in range(40)}))
    out = run("cat", path)
    assert "…" not in out
    assert "-[ row 1 ]-" in out
    for i in range(40):
        assert re.search(rf"column_{i}\s+(value-{i}-){{3}}", out), i


def test_table_values_print_as_they_are(tmp_path):
    path = str(tmp_path / "events")
    lv.create_dataset(path, pa.table({"markup": ["[bold]not bold[/bold]"], "n": [1]}))
    assert "[bold]not bold[/bold]" in run("cat", path)


@pytest.fixture
def contract_lake(tmp_path) -> str:
    path = str(tmp_path / "events")
    contract = pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check.ge(0))})
    ds = lv.create_dataset(path, events(0, 3), contract=contract)
    ds.append(events(-30, 30), validate="skip")  # 30 distinct failing ids
    return path


def test_validate_caps_the_failure_cases(contract_lake):
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "validate", contract_lake],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "failure cases (first 20 of 30)" in proc.stdout
    assert proc.stdout.rstrip().endswith(
        "... and 10 more failure cases; use --limit N, or --json for all"
    )
    assert proc.stderr == (
        f"error: version 1 of {contract_lake} violates its contract: 30 failing value(s) in 30 "
        "failure case(s) (listed on stdout). Rows committed before the contract was set, or "
        "with validation skipped, were not checked; correct them with 'lakever update', "
        f"'lakever delete' or 'lakever overwrite {contract_lake} FILE'\n"
    )
    result = runner.invoke(app, ["validate", contract_lake, "--json"])
    cases = json.loads(result.stdout)
    assert len(cases) == 30 and {c["check"] for c in cases} == {"greater_than_or_equal_to(0)"}
    assert isinstance(result.exception, lv.ContractViolation)
    result = runner.invoke(app, ["validate", contract_lake, "--limit", "30"])
    assert "first 30 of 30" in result.stdout and "more failure cases" not in result.stdout


def test_diff_says_how_many_rows_it_did_not_show(tmp_path):
    path = str(tmp_path / "events")
    ds = lv.create_dataset(path, events(0, 10), primary_key=["id"])
    ds.append(events(10, 5)).delete(where="id < 3").update(set={"value": "0"}, where="id > 5")
    out = run("diff", path, "0", "3", "--rows", "2")
    assert "added (first 2 of 5)" in out
    assert "... and 3 more added rows; use --rows N to show more (with --json too)" in out
    assert "removed (first 2 of 3)" in out and "... and 1 more removed rows" in out
    assert "changed (first 2 of 4)" in out and "... and 2 more changed rows" in out
    out = run("diff", path, "0", "3", "--rows", "5")
    assert "more added rows" not in out and "... and" not in out


# ------------------------------------------------------------------ branch names in JSON


def test_json_names_branches_never_ids(tmp_path):
    path = str(tmp_path / "events")
    ds = lv.create_dataset(path, events(0, 3))
    exp = ds.branch("exp").append(events(10, 1))
    branch_id = exp.commit.branch_id
    assert re.fullmatch(r"[0-9a-f]{32}", branch_id)
    log = json.loads(run("log", path, "--branch", "exp", "--json"))
    assert [c["branch"] for c in log] == ["exp", "main"]
    assert all("branch_name" not in c for c in log)
    every = json.loads(run("log", path, "--all", "--json"))
    assert {c["branch"] for c in every} == {"exp", "main"}
    shown = json.loads(run("show", path, "--branch", "exp", "--json"))
    assert shown["commit"]["branch"] == "exp"
    diffed = json.loads(run("diff", path, "main", "exp", "--json"))
    assert (diffed["a"]["branch"], diffed["b"]["branch"]) == ("main", "exp")
    lv.open_dataset(path).delete_branch("exp")
    shown = json.loads(run("show", path, exp.snapshot_id, "--json"))
    assert shown["commit"]["branch"] == "exp"
    for out in (
        run("log", path, "--all", "--json"),
        run("show", path, exp.snapshot_id, "--json"),  # the pin too names the branch
        run("diff", path, "0", exp.snapshot_id, "--json"),
        run("tag", path, "--list", "--json"),
        run("branch", path, "--list", "--json"),
    ):
        assert branch_id not in out
