"""The CLI: exit codes, exact messages, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from tests._data import events

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """Invoke the CLI in-process; errors are tested through a real process below."""
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


@pytest.fixture
def files(tmp_path):
    csv = tmp_path / "first.csv"
    pacsv.write_csv(events(0, 3), csv)
    parquet = tmp_path / "more.parquet"
    pq.write_table(events(3, 2), parquet)
    return csv, parquet


def test_init_append_log_show_cat(tmp_path, files):
    csv, parquet = files
    path = str(tmp_path / "lake")
    code, out = run("init", path, "--from", str(csv), "-m", "first")
    assert code == 0 and "committed version 0" in out and "3 rows added, 3 rows total" in out
    code, out = run("append", path, str(parquet), "-m", "more")
    assert code == 0 and "committed version 1" in out and "5 rows total" in out
    code, out = run("log", path, "--json")
    log = json.loads(out)
    assert [c["version"] for c in log] == [1, 0] and log[1]["message"] == "first"
    code, out = run("log", path)
    assert code == 0 and "append" in out and "create" in out
    code, out = run("show", path, "0", "--json")
    shown = json.loads(out)
    assert shown["num_rows"] == 3 and shown["commit"]["operation"] == "create"
    assert [f["name"] for f in shown["schema"]] == ["id", "value", "category"]
    assert shown["schema"][0]["field_id"] == 1 and len(shown["fragments"]) == 1
    code, out = run("show", path)
    assert code == 0 and "schema" in out and "fragments" in out
    code, out = run("cat", path, "--limit", "4", "--json")
    assert [r["id"] for r in json.loads(out)] == [0, 1, 2, 3]
    code, out = run("cat", path, "0")
    assert code == 0 and "3 of 3 rows" in out
    when = lv.open_dataset(path, version=0).commit.timestamp.isoformat()
    code, out = run("cat", path, when, "--json")
    assert len(json.loads(out)) == 3
    pin = lv.open_dataset(path).pin()
    code, out = run("cat", pin, "--limit", "1", "--json")
    assert code == 0 and len(json.loads(out)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log", "{missing}"], "error: no lakever dataset at"),
        (["show", "{lake}", "9"], "error: version 9 not found"),
        (["show", "{lake}", "yesterday"], "error: no tag, branch or snapshot id 'yesterday'"),
        (
            ["show", "{lake}", "2026-13-45T00:00"],
            "error: version '2026-13-45T00:00' looks like a time",
        ),
        (["cat", "{lake}", "2026-01-01"], "error: time '2026-01-01' has no timezone"),
        (["init", "{lake}", "--from", "{csv}"], "error: a dataset already exists"),
        (["append", "{lake}", "{nofile}"], "error: input file"),
        (["append", "{lake}", "{bad}"], "error: append to"),
    ],
)
def test_errors_are_one_line(tmp_path, files, args, message):
    csv, _ = files
    lake = str(tmp_path / "lake")
    lv.create_dataset(lake, events(0, 1))
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": [1]}), bad)
    subst = {
        "missing": str(tmp_path / "missing"),
        "lake": lake,
        "csv": str(csv),
        "nofile": str(tmp_path / "nope.csv"),
        "bad": str(bad),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", *(a.format(**subst) for a in args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(message)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_usage_error_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "cat"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2


def test_version_flag():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"lakever {lv.__version__}"
