"""The SQL surface is closed: caller SQL sees the lake's datasets and nothing else.

Each class of escape the hardening review found has a test here: reading files
through table functions or replacement scans, writing with COPY, ATTACH, INSTALL
and SET, statements smuggled into filters, and one caller's SQL changing what
another reads. ``trusted=True`` is the documented way to lift the limits.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events

SECRET = "/etc/hostname"


@pytest.fixture
def lake(tmp_path: Path) -> lv.Lake:
    lake = lv.connect(str(tmp_path / "lake"))
    lake.create_dataset("events", events(0, 20), max_rows_per_fragment=5)
    lake.create_dataset("users", pa.table({"id": pa.array(range(5), pa.int64())}))
    return lake


ESCAPES = [
    f"SELECT * FROM read_csv('{SECRET}')",
    f"SELECT * FROM read_text('{SECRET}')",
    f"SELECT * FROM '{SECRET}'",
    f"SELECT * FROM glob('{SECRET}')",
    f"SELECT * FROM parquet_metadata('{SECRET}')",
    "SELECT * FROM query('SELECT 42')",
    "SELECT * FROM duckdb_settings()",
    f"COPY (SELECT 1) TO '{'/tmp/lakever-escape.csv'}'",
    "ATTACH '/tmp/lakever-escape.db' AS x",
    "INSTALL httpfs",
    "LOAD parquet",
    "SET threads = 1",
    "PRAGMA threads = 1",
    "CREATE OR REPLACE VIEW events AS SELECT 42 AS id",
    "CREATE MACRO get_bit(a, b) AS 0",
    "DROP VIEW events",
    "SELECT 1; SELECT 2",
    "SELECT setseed(0.5)",
    "SELECT * FROM events, other_db.main.t",
]


@pytest.mark.parametrize("query", ESCAPES)
def test_lake_sql_refuses_what_is_not_a_read_of_the_lake(lake, query):
    with pytest.raises(lv.LakeverError):
        lake.sql(query).fetchall()
    assert lake.sql("SELECT count(*) FROM events").fetchall() == [(20,)]
    assert not Path("/tmp/lakever-escape.csv").exists()
    assert not Path("/tmp/lakever-escape.db").exists()


@pytest.mark.parametrize("query", ESCAPES)
def test_dataset_sql_refuses_them_too(lake, query):
    ds = lake.open("events")
    with pytest.raises(lv.LakeverError):
        ds.sql(query.replace("events", "self")).fetchall()
    assert ds.sql("SELECT count(*) FROM self").fetchall() == [(20,)]


def test_the_lock_holds_below_the_parser(lake):
    # Relations handed out live on a locked database: even their own query method
    # (which bypasses lakever's parser) cannot read files or change settings.
    rel = lake.sql("SELECT count(*) AS n FROM events")
    with pytest.raises(duckdb.Error, match=r"disabled by configuration|Permission"):
        rel.query("r", f"SELECT * FROM read_text('{SECRET}')").fetchall()
    with pytest.raises(duckdb.Error):
        rel.query("r", "SET enable_external_access = true").fetchall()
    other = lake.open("events").to_duckdb()
    with pytest.raises(duckdb.Error, match=r"disabled by configuration|Permission"):
        other.query("r", f"SELECT * FROM read_csv('{SECRET}')").fetchall()


def test_one_callers_sql_cannot_change_what_another_reads(lake):
    ds = lake.open("events").delete(where="id < 3")
    live = ds.to_arrow().num_rows
    rel = ds.sql("SELECT count(*) FROM self")
    # Through a returned relation's own methods, nothing persistent can be created...
    with pytest.raises(duckdb.Error, match=r"read-only|Cannot execute"):
        rel.query("r", "CREATE OR REPLACE MACRO get_bit(a, b) AS 0").fetchall()
    with pytest.raises(duckdb.Error, match=r"read-only|Cannot execute"):
        rel.query("r", "CREATE TABLE events AS SELECT 42 AS id").fetchall()
    # ...and what is temporary stays on that caller's own cursor:
    rel.query("r", "CREATE OR REPLACE TEMP MACRO get_bit(a, b) AS 0").fetchall()
    rel.query("r", "CREATE OR REPLACE TEMP VIEW events AS SELECT 42 AS id").fetchall()
    # deletion vectors still apply, names still resolve.
    assert ds.sql("SELECT count(*) FROM self").fetchall() == [(live,)]
    assert lake.sql("SELECT count(*) FROM events").fetchall() == [(live,)]
    assert lake.sql("SELECT max(id) FROM events").fetchall() == [(19,)]


def test_concurrent_queries_see_their_own_snapshots(lake):
    ds = lake.open("events")
    v0 = ds
    v1 = ds.delete(where="id >= 10")
    errors: list[BaseException] = []

    def run(d: lv.Dataset, expected: int) -> None:
        try:
            for _ in range(20):
                assert d.sql("SELECT count(*) FROM self").fetchall() == [(expected,)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d, n)) for d, n in [(v0, 20), (v1, 10)] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize(
    "bad",
    [
        "id IN (SELECT id FROM users)",
        "id = (SELECT 1)",
        "EXISTS (SELECT 1)",
        f"length(read_text('{SECRET}')) > 0",
        f"id IN (SELECT 1 FROM read_csv('{SECRET}'))",
        "id > 1; DROP TABLE x",
        "id > ?",
        "nextval('s') > 0",
    ],
)
def test_expressions_are_expressions(lake, bad):
    ds = lake.open("events")
    with pytest.raises(lv.InvalidArgument):
        ds.to_arrow(filter=bad)
    with pytest.raises(lv.InvalidArgument):
        ds.delete(where=bad)
    with pytest.raises(lv.InvalidArgument):
        ds.update(set={"category": bad}, where="id = 1")
    with pytest.raises(lv.InvalidArgument):
        ds.scan(filter=bad)
    assert lv.open_dataset(ds.uri).version == ds.version


def test_trusted_opts_in_to_everything(lake, tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("a\n1\n2\n")
    assert lake.sql(f"SELECT count(*) FROM read_csv('{path}')", trusted=True).fetchall() == [(2,)]
    ds = lake.open("events")
    q = f"SELECT count(*) FROM self JOIN read_csv('{path}') c ON self.id = c.a"
    assert ds.sql(q, trusted=True).fetchall() == [(2,)]
    with pytest.raises(lv.LakeverError):
        ds.sql(q)
