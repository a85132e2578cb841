"""CLI: tag, branch, merge, log --graph / --all, --branch options."""

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
    lv.create_dataset(path, events(0, 3)).append(events(3, 2))
    return path


def test_tag_list_delete(lake):
    assert "tagged version 1" in run("tag", lake, "v1", "-m", "model v3")
    assert "tagged version 0" in run("tag", lake, "v0", "--version", "0")
    tags = json.loads(run("tag", lake, "--list", "--json"))
    assert [(t["name"], t["version"], t["message"]) for t in tags] == [
        ("v0", 0, ""),
        ("v1", 1, "model v3"),
    ]
    assert "v1" in run("tag", lake, "--list")
    assert "deleted tag 'v0'" in run("tag", lake, "--delete", "v0")
    assert [t["name"] for t in json.loads(run("tag", lake, "-l", "--json"))] == ["v1"]
    out = json.loads(run("cat", lake, "v1", "--json"))
    assert len(out) == 5


def test_branch_append_merge_graph(lake, tmp_path):
    assert "created branch 'exp' at version 1" in run("branch", lake, "exp")
    more = tmp_path / "more.parquet"
    pq.write_table(events(100, 2), more)
    assert "committed version 2" in run("append", lake, str(more), "--branch", "exp")
    listed = json.loads(run("branch", lake, "--list", "--json"))
    assert [(b["name"], b["head_version"]) for b in listed] == [("main", 1), ("exp", 2)]
    log = json.loads(run("log", lake, "--branch", "exp", "--json"))
    assert [c["version"] for c in log] == [2, 1, 0]
    pq.write_table(events(200, 1), more)
    run("append", lake, str(more))
    out = run("merge", lake, "exp", "-m", "bring exp in")
    assert "merged 'exp' into 'main' (three-way): version 3, +2 -0 rows" in out
    assert "already up to date" in run("merge", lake, "exp")
    graph = run("log", lake, "--graph", "--all")
    assert graph.splitlines()[0].startswith("*  v3")
    assert "merge (main)" in graph
    assert "|\\" in graph
    assert "(exp)" in graph
    every = json.loads(run("log", lake, "--all", "--json"))
    assert len(every) == 5  # v0, v1, main v2, exp v2, merge v3
    shown = json.loads(run("show", lake, "exp", "--json"))
    assert shown["num_rows"] == 7
    assert "deleted branch 'exp'" in run("branch", lake, "--delete", "exp")


def test_branch_from_a_tag_and_merge_into(lake, tmp_path):
    run("tag", lake, "base", "--version", "0")
    assert "created branch 'fix' at version 0" in run("branch", lake, "fix", "--from", "base")
    out = run("merge", lake, "main", "--into", "fix")
    assert "merged 'main' into 'fix' (fast-forward)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tag", "{lake}", "bad..name"], "error: invalid tag name 'bad..name'"),
        (["tag", "{lake}", "v1"], "error: tag 'v1' already exists"),
        (["tag", "{lake}"], "error: give a tag name to create"),
        (["branch", "{lake}", "--delete", "main"], "error: the default branch 'main' cannot"),
        (["merge", "{lake}", "ghost"], "error: no tag, branch or snapshot id 'ghost'"),
        (["cat", "{lake}", "--branch", "ghost"], "error: branch 'ghost' not found"),
    ],
)
def test_ref_errors_are_one_line(lake, args, message):
    lv.open_dataset(lake).tag("v1")
    lv.open_dataset(lake).branch("b")
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", *(a.format(lake=lake) for a in args)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert proc.stderr.count("\n") == 1


def test_merge_conflict_cli(lake):
    lv.open_dataset(lake).branch("b").overwrite(events(10, 1))
    lv.open_dataset(lake).overwrite(events(20, 1))
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "merge", lake, "b"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "conflicts against their common ancestor" in proc.stderr
    assert "merged 'b' into 'main' (theirs)" in run("merge", lake, "b", "--strategy", "theirs")
