"""The benchmark scripts run end to end in quick mode and write their JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/<script>`` with ``args`` in a fresh process."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "run.py",
        "contract_overhead.py",
        "row_changes.py",
        "sql_pruning.py",
        "compaction.py",
        "memory.py",
        "wide_rows.py",
        "page_checksums.py",
        "export_iceberg.py",
        "drift.py",
    ],
)
def test_benchmark_quick(script, tmp_path):
    out = tmp_path / "report.json"
    if not (ROOT / "benchmarks" / script).exists():
        pytest.fail(f"benchmarks/{script} is missing")
    proc = _run(script, "--quick", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["results"], report


@pytest.mark.slow
def test_compare_runs_two_trees_interleaved(tmp_path):
    out = tmp_path / "compare.json"
    args = ("--before", str(ROOT), "--rounds", "1", "--quick", "--output", str(out))
    proc = _run("compare.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (round_,) = json.loads(out.read_text())["rounds"]
    assert set(round_["before"]) == set(round_["after"])
    assert all(v > 0 for v in round_["after"].values())
    assert "to_arrow(filter)" in proc.stdout and "after/before" in proc.stdout


@pytest.mark.slow
def test_s3_benchmark_quick_counts_requests(tmp_path):
    pytest.importorskip("moto")
    pytest.importorskip("obstore")
    out = tmp_path / "s3.json"
    proc = _run("s3.py", "--quick", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["requests"]
    lake = {(r["op"], r["latency_ms"]): r for r in rows if r["system"] == "lakever"}
    assert {lat for _, lat in lake} == {0, 20}
    second = [r for (op, _), r in lake.items() if op.startswith("5 second scan")]
    assert second and all(r["requests"]["data_GET"] == 0 for r in second)
    first = [r for (op, _), r in lake.items() if op.startswith("4 scan")]
    assert first and all(r["requests"]["data_GET"] > 0 for r in first)
    assert all(r["requests_total"] > 0 for (op, _), r in lake.items() if op.startswith("7 push"))
    assert "data GET" in proc.stdout


@pytest.mark.slow
def test_compaction_benchmark_reports_fewer_fragments_and_a_faster_scan(tmp_path):
    out = tmp_path / "compaction.json"
    proc = _run("compaction.py", "--quick", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    info = report["meta"]["dataset"]
    assert info["fragments_before"] == 200 and info["fragments_after"] < 10
    assert info["deletion_vectors_before"] > 0
    before, after, _ = report["results"]
    assert before["baseline"] == after["baseline"] > 0
    assert after["lakever"] < before["lakever"]
    assert "pyarrow, one file" in proc.stdout


@pytest.mark.slow
def test_maintenance_benchmark_quick_vacuums_and_verifies(tmp_path):
    out = tmp_path / "maintenance.json"
    proc = _run("maintenance.py", "--quick", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    local = report["meta"]["info"]["local"]
    assert local["collectable"] > local["orphans"] > 0
    assert local["files_after"] == local["files_before"] - local["collectable"]
    assert report["meta"]["info"]["verify"]["verify_bytes_read"] > 0
    assert {r["workload"] for r in report["results"]} >= {"vacuum, local", "verify"}
    if "s3" in report["meta"]["info"]:
        s3 = report["meta"]["info"]["s3"]
        apply = next(r for r in report["requests"] if r["op"] == "vacuum apply")
        deletes = apply["requests"]["DELETE"] + apply["requests"]["POST"]
        assert s3["collectable"] > 0
        assert deletes == -(-s3["collectable"] // 1000)  # one DeleteObjects per 1,000 keys
    assert "scandir+stat" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_scale_benchmark_quick_reports_every_size(tmp_path):
    out = tmp_path / "scale.json"
    proc = _run("scale.py", "--quick", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["errors"] == []
    datasets = report["meta"]["datasets"]
    assert {d["fragments"] for d in datasets.values()} == {1_000, 10_000}
    assert all(d["history_commits"] > 0 and d["versions"] > 2 for d in datasets.values())
    rows = report["results"]
    assert {r["workload"] for r in rows} == {"1k fragments", "10k fragments"}
    keys = {r["extra"]["key"] for r in rows}
    assert {"open", "open+plan", "fragments", "open old", "cold append", "warm append"} <= keys
    assert all(r["lakever"] is not None and r["lakever"] > 0 for r in rows)
    plan = [r for r in rows if r["extra"]["key"] == "open+plan"]
    assert all(r["baseline"] and "manifests" in r["baseline_name"] for r in plan)
    assert any("growth" in r["extra"] for r in rows)
    assert report["meta"]["profile"]["fragments"] == 10_000
    assert "growth with the dataset" in proc.stdout
