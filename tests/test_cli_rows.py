"""CLI: diff, changes, delete, update, upsert."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
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


@pytest.fixture
def lake(tmp_path) -> str:
    path = str(tmp_path / "lake")
    lv.create_dataset(path, events(0, 30), primary_key=["id"], max_rows_per_fragment=10).tag("v0")
    return path


def test_delete_update_upsert(lake, tmp_path):
    out = run("delete", lake, "--where", "id % 7 = 0", "-m", "gdpr")
    assert out.startswith(f"committed version 1 of {lake} (merge-on-read): 5 rows deleted, 0 ")
    assert "3 fragments touched; 25 rows total" in out
    out = run("delete", lake, "--where", "id > 999")
    assert out.strip() == f"no rows match 'id > 999': nothing committed ({lake} stays at version 1)"
    out = run("update", lake, "--set", "category='zz'", "--set", "value=value*2", "-w", "id = 1")
    assert "2 rows" not in out and "1 rows deleted, 1 written, 1 fragment touched" in out
    file = tmp_path / "late.parquet"
    pq.write_table(events(29, 2), file)
    out = run("upsert", lake, str(file), "--mode", "copy-on-write")
    assert "(copy-on-write): 1 rows deleted, 2 written" in out and "26 rows total" in out
    ds = lv.open_dataset(lake)
    assert ds.commit.message == "" and ds.version == 3
    shown = run("show", lake, "1")
    assert "8 (+2 deleted)" in shown and "9 (+1 deleted)" in shown
    assert lv.open_dataset(lake, version=1).commit.message == "gdpr"


def test_diff_table_json_and_rows(lake):
    run("delete", lake, "--where", "id IN (3, 4)")
    run("update", lake, "--set", "category='zz'", "--where", "id = 12")
    out = run("diff", lake, "v0", "main", "--rows", "5")
    assert "version 0" in out and "-> version 2" in out and "key: id" in out
    assert "shared (not read)" in out and "changed (first 1 of 1)" in out
    assert "a -> zz" in out and "removed (first 2 of 2)" in out
    summary = json.loads(run("diff", lake, "0", "2", "--json", "--rows", "1"))
    assert (summary["rows_removed"], summary["rows_changed"], summary["rows_added"]) == (2, 1, 0)
    assert summary["fragments_shared"] == 1 and summary["key"] == ["id"]
    assert summary["rows"]["changed"][0]["_new"] == {"category": "zz"}
    assert len(summary["rows"]["removed"]) == 1
    keyless = json.loads(run("diff", lake, "0", "2", "--json", "--key", "id", "--key", "value"))
    assert keyless["key"] == ["id", "value"]


def test_changes(lake):
    run("delete", lake, "--where", "id = 3")
    run("update", lake, "--set", "value=0", "--where", "id = 4")
    rows = json.loads(run("changes", lake, "--since", "0", "--json"))
    assert [(r["_commit_version"], r["_change_type"], r["id"]) for r in rows] == [
        (1, "delete", 3),
        (2, "update_preimage", 4),
        (2, "update_postimage", 4),
    ]
    assert len(json.loads(run("changes", lake, "--since", "v0", "--json", "--limit", "2"))) == 2
    out = run("changes", lake, "--since", "1")
    assert "update_postimage" in out and "delete" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["delete", "{lake}", "--where", "nope = 1"],
            "error: --where 'nope = 1' names unknown column 'nope'",
        ),
        (["update", "{lake}", "--set", "value"], "error: --set 'value' must be COLUMN="),
        (["diff", "{lake}", "0", "0", "--key", "nope"], "error: --key 'nope' is not a column of"),
    ],
)
def test_errors_are_one_line(lake, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", *(a.format(lake=lake) for a in args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(message)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_bad_mode_is_a_usage_error(lake):
    result = runner.invoke(app, ["delete", lake, "--where", "id = 1", "--mode", "bogus"])
    assert result.exit_code == 2


def test_diff_limits_columns_and_upsert_evolves(tmp_path):
    path = str(tmp_path / "events")
    ds = lv.create_dataset(path, events(0, 5), primary_key=["id"])
    ds.update(set={"category": "'zz'"}, where="id = 1")
    runner = CliRunner()
    out = runner.invoke(app, ["diff", path, "0", "1", "--column", "value", "--json"])
    assert out.exit_code == 0, out.output
    assert '"rows_changed": 0' in out.output  # only category changed
    out = runner.invoke(app, ["diff", path, "0", "1", "--column", "category", "--json"])
    assert '"rows_changed": 1' in out.output
    out = runner.invoke(app, ["diff", path, "0", "1", "--column", "nope"])
    assert "--column 'nope' is not a column" in str(out.exception)
    rows = tmp_path / "new.csv"
    rows.write_text("id,value,category,score\n7,0.5,a,9\n")
    out = runner.invoke(app, ["upsert", path, str(rows), "--schema-mode", "add"])
    assert out.exit_code == 0, out.output
    assert lv.open_dataset(path).schema.names == ["id", "value", "category", "score"]
