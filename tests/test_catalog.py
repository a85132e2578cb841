"""A lake of datasets queried with DuckDB SQL and lakehouse time-travel syntax."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import lakever as lv
from lakever.cli import app
from tests._data import events


@pytest.fixture(params=["local", "memory"])
def lake(request, tmp_path) -> lv.Lake:
    root = (
        str(tmp_path / "lake") if request.param == "local" else f"memory://lakes/{uuid.uuid4().hex}"
    )
    lake = lv.connect(root)
    ev = lake.create_dataset("events", events(0, 10))
    ev = ev.append(events(10, 5), message="v1")
    ev.tag("train-v3")
    ev.append(events(100, 1))
    lake.create_dataset(
        "users",
        pa.table({"id": pa.array(range(20), pa.int64()), "name": [f"u{i}" for i in range(20)]}),
    )
    return lake


def count(lake: lv.Lake, query: str) -> int:
    return lake.sql(query).fetchall()[0][0]


def test_datasets_and_latest(lake):
    assert lake.datasets() == ["events", "users"]
    assert count(lake, "SELECT count(*) FROM events") == 16


@pytest.mark.parametrize(
    ("clause", "rows"),
    [
        ("VERSION AS OF 0", 10),
        ("FOR VERSION AS OF 1", 15),
        ("AT (VERSION => 0)", 10),
        ("FOR VERSION AS OF 'train-v3'", 15),
        ("VERSION AS OF 'main'", 16),
    ],
)
def test_version_syntax(lake, clause, rows):
    assert count(lake, f"SELECT count(*) FROM events {clause}") == rows
    assert count(lake, f"SELECT count(*) FROM events {clause} AS e WHERE e.id >= 0") == rows


def test_timestamp_syntax(lake):
    v0 = lake.open("events", version=0).timestamp
    naive_utc = v0.replace(tzinfo=None).isoformat()
    for clause in (
        f"TIMESTAMP AS OF '{naive_utc}'",
        f"FOR TIMESTAMP AS OF '{naive_utc}'",
        f"FOR TIMESTAMP AS OF TIMESTAMP '{naive_utc}'",
        f"AT (TIMESTAMP => '{v0.isoformat()}')",
    ):
        assert count(lake, f"SELECT count(*) FROM events {clause}") == 10, clause
    before = (v0 - timedelta(days=1)).isoformat()
    with pytest.raises(lv.VersionNotFound, match=r"no version of .*events existed"):
        lake.sql(f"SELECT * FROM events FOR TIMESTAMP AS OF '{before}'")


def test_join_across_versions_and_datasets(lake):
    rows = lake.sql(
        """
        SELECT e.category, count(*) AS n
        FROM events VERSION AS OF 1 AS e
        JOIN users FOR VERSION AS OF 0 u USING (id)
        JOIN events VERSION AS OF 0 AS old ON old.id = e.id
        GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    assert rows == [("a", 4), ("b", 3), ("c", 3)]


def test_subqueries_and_ctes(lake):
    q = """
        WITH recent AS (SELECT id FROM events VERSION AS OF 1 WHERE id >= 10)
        SELECT count(*) FROM events WHERE id IN (SELECT id FROM recent)
    """
    assert count(lake, q) == 5
    # a CTE shadows a dataset of the same name
    assert count(lake, "WITH events AS (SELECT 1 AS x) SELECT count(*) FROM events") == 1


def test_results_equal_to_arrow(lake):
    for version in (0, 1, 2):
        expected = lake.open("events", version=version).to_arrow()
        got = lake.sql(f"SELECT * FROM events VERSION AS OF {version}").to_arrow_table()
        assert got.cast(expected.schema).equals(expected)


def test_dataset_sql_uses_the_same_machinery(lake):
    ds = lake.open("events")
    assert ds.sql("SELECT count(*) FROM self VERSION AS OF 0").fetchall() == [(10,)]
    assert ds.sql("SELECT count(*) FROM self FOR VERSION AS OF 'train-v3'").fetchall() == [(15,)]
    with pytest.raises(lv.DatasetNotFound, match=r"Dataset.sql knows only 'self'"):
        ds.sql("SELECT * FROM users VERSION AS OF 0")


def test_errors_name_what_is_wrong(lake):
    with pytest.raises(
        lv.DatasetNotFound, match=r"no dataset 'nope' in lake .* \['events', 'users'\]"
    ):
        lake.sql("SELECT * FROM nope VERSION AS OF 1")
    with pytest.raises(lv.VersionNotFound, match=r"version 99 not found"):
        lake.sql("SELECT * FROM events VERSION AS OF 99")
    with pytest.raises(lv.VersionNotFound, match=r"no tag, branch or snapshot id 'ghost'"):
        lake.sql("SELECT * FROM events FOR VERSION AS OF 'ghost'")
    with pytest.raises(lv.DatasetNotFound, match=r"no dataset 'nope' in lake"):
        lake.sql("SELECT * FROM nope")
    with pytest.raises(lv.InvalidArgument, match=r"cannot parse SQL with time travel"):
        lake.sql("SELECT * FROM (events VERSION AS OF 1")
    with pytest.raises(lv.InvalidArgument, match=r"cannot parse this SQL"):
        lake.sql("SELEKT * FROM events")
    with pytest.raises(lv.InvalidArgument, match=r"failed in DuckDB: Parser Error"):
        lake.sql("SELEKT * FROM events", trusted=True)
    with pytest.raises(
        lv.InvalidArgument, match=r"must be a literal number or string, got 'nothing'"
    ):
        lake.sql("SELECT * FROM events VERSION AS OF")
    with pytest.raises(lv.InvalidArgument, match=r"must be a literal"):
        lake.sql("SELECT * FROM events VERSION AS OF (SELECT 1)")


@pytest.mark.parametrize(
    "hostile",
    [
        "x'; DROP TABLE users; --",
        "'; SELECT 1; --",
        "train-v3' OR '1'='1",
        'a"b',
        "../../etc/passwd",
    ],
)
def test_hostile_values_are_never_pasted(lake, hostile):
    escaped = hostile.replace("'", "''")
    with pytest.raises((lv.VersionNotFound, lv.InvalidArgument)):
        lake.sql(f"SELECT * FROM events FOR VERSION AS OF '{escaped}'")
    assert lake.datasets() == ["events", "users"]
    assert count(lake, "SELECT count(*) FROM users") == 20


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 200, "a\nb", 'q"uote', ".."])
def test_hostile_dataset_names(lake, name):
    with pytest.raises(lv.InvalidArgument, match=r"invalid dataset name"):
        lake.open(name)
    with pytest.raises(lv.InvalidArgument, match=r"invalid dataset name"):
        lake.create_dataset(name, events(0, 1))


def test_duckdb_only_syntax_still_runs(lake):
    # sqlglot cannot parse every DuckDB extension; without time travel DuckDB parses it.
    rows = lake.sql("FROM events SELECT count(*)").fetchall()
    assert rows == [(16,)]
    assert lake.open("events").sql("FROM self SELECT max(id)").fetchall() == [(100,)]


def test_quoted_identifier_for_odd_names(tmp_path):
    lake = lv.connect(str(tmp_path))
    lake.create_dataset("user-events.v2", events(0, 3)).append(events(3, 1))
    assert count(lake, 'SELECT count(*) FROM "user-events.v2" VERSION AS OF 0') == 3
    assert count(lake, 'SELECT count(*) FROM "user-events.v2"') == 4


def test_cli_sql(tmp_path):
    lake = lv.connect(str(tmp_path))
    lake.create_dataset("events", events(0, 5)).append(events(5, 5))
    runner = CliRunner()
    q = "SELECT id FROM events VERSION AS OF 0 ORDER BY id"
    out = runner.invoke(app, ["sql", q, "--lake", str(tmp_path), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert [r["id"] for r in json.loads(out.stdout)] == [0, 1, 2, 3, 4]
    out = runner.invoke(app, ["sql", q, "--lake", str(tmp_path), "-f", "csv"])
    assert out.stdout.splitlines() == ['"id"', "0", "1", "2", "3", "4"]
    target = tmp_path / "out.parquet"
    out = runner.invoke(
        app, ["sql", q, "--lake", str(tmp_path), "-f", "parquet", "-o", str(target)]
    )
    assert out.exit_code == 0 and "wrote 5 rows" in out.stdout
    import pyarrow.parquet as pq

    assert pq.read_table(target).num_rows == 5
    out = runner.invoke(app, ["sql", "SELECT 1 AS one", "--lake", str(tmp_path)])
    assert out.exit_code == 0 and "one" in out.stdout


def test_sql_after_evolution_and_partitioning(tmp_path):
    """lake.sql equals to_arrow row for row on an evolved, partitioned dataset, at any version."""
    lake = lv.connect(str(tmp_path))
    ds = lake.create_dataset("events", events(0, 30), partition_by=["category"])
    ds = ds.evolve(rename={"value": "score"}, add={"note": pa.string()})
    ds = ds.append(
        events(30, 10)
        .rename_columns(["id", "score", "category"])
        .append_column("note", pa.array(["n"] * 10)),
        message="after evolution",
    )
    ds = ds.set_partitioning([])
    ds = ds.append(
        events(40, 5)
        .rename_columns(["id", "score", "category"])
        .append_column("note", pa.array([None] * 5, pa.string()))
    )
    for version in (0, 2, ds.version):
        expected = lake.open("events", version=version).to_arrow()
        got = lake.sql(f"SELECT * FROM events VERSION AS OF {version}").to_arrow_table()
        assert got.cast(expected.schema).equals(expected), version
    rows = lake.sql(
        "SELECT count(*), count(note), sum(score) FILTER (WHERE category = 'a') "
        "FROM events WHERE category = 'a'"
    ).fetchall()
    assert rows[0][0] == sum(1 for i in range(45) if i % 3 == 0)
    plan = lake.open("events").explain("category = 'a'")
    # one "a" fragment from each partitioned write, plus the unpartitioned one (kept)
    assert plan.fragments_after_partition_pruning == 3
    assert plan.fragments_after_stats_pruning == 3  # its min/max (a..c) include "a"


def test_dataset_names_that_differ_only_by_case_are_refused(lake):
    with pytest.raises(lv.DatasetExists, match=r"has a dataset 'events', whose name differs") as ei:
        lake.create_dataset("Events", events(0, 1))
    assert ei.value.uri == lake.open("events").uri
    assert lake.datasets() == ["events", "users"]
    assert count(lake, "SELECT count(*) FROM events") == 16


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_a_wrong_lake_path_is_an_error_naming_it(tmp_path, backend):
    root = str(tmp_path / "nope") if backend == "local" else f"memory://lakes/{uuid.uuid4().hex}"
    lake = lv.connect(root)  # a lake may be created by its first dataset...
    for call in (lake.datasets, lambda: lake.sql("SELECT 1"), lambda: lake.open("events")):
        with pytest.raises(lv.DatasetNotFound, match=r"no lake at .*: the path does not exist"):
            call()
    lake.create_dataset("events", events(0, 2))
    assert lake.datasets() == ["events"] and count(lake, "SELECT count(*) FROM events") == 2


def test_a_lake_path_that_is_a_file_or_a_dataset_is_refused(tmp_path):
    file = tmp_path / "lake.csv"
    file.write_text("id\n1\n")
    with pytest.raises(
        lv.DatasetNotFound, match=r"lake\.csv: the path is a file, not a folder"
    ) as ei:
        lv.connect(str(file))
    assert ei.value.uri == str(file)
    ds = lv.create_dataset(str(tmp_path / "events"), events(0, 1))
    with pytest.raises(lv.InvalidArgument, match=r"is a dataset, not a lake .* connect to the"):
        lv.connect(ds.uri)
    assert lv.connect(str(tmp_path)).datasets() == ["events"]


def test_case_twins_made_outside_the_lake_are_queried_by_exact_name(tmp_path):
    lv.create_dataset(str(tmp_path / "events"), events(0, 3))
    lv.create_dataset(str(tmp_path / "Events"), events(0, 1))  # not through the lake
    lake = lv.connect(str(tmp_path))
    assert lake.datasets() == ["Events", "events"]
    assert count(lake, "SELECT count(*) FROM events") == 3
    assert count(lake, 'SELECT count(*) FROM "Events"') == 1
    assert count(lake, "SELECT count(*) FROM Events VERSION AS OF 0") == 1
