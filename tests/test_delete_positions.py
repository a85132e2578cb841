"""A delete finds its rows in DuckDB's Parquet scan (`rowops._positions_in_duckdb`):
the same fragments and positions as the Arrow path, deleted rows never counted twice."""

from __future__ import annotations

import pyarrow as pa
import pytest

import lakever as lv
from lakever import rowops
from tests._data import events


def _both(ds: lv.Dataset, where: str) -> tuple[list, list]:
    state = ds._state
    cands = rowops._candidates(state, where, [])
    fast = rowops._positions_in_duckdb(cands)
    assert fast is not None, "the DuckDB path declined a plan it should read"
    slow = [(h.entry, h.positions) for h in rowops._matches(cands)]
    return (
        [(e.path, p.to_pylist()) for e, p in fast],
        [(e.path, p.to_pylist()) for e, p in slow],
    )


@pytest.fixture
def history(tmp_path) -> lv.Dataset:
    """Three fragments, one with deleted rows, and a renamed column."""
    ds = lv.create_dataset(str(tmp_path / "ds"), events(0, 500))
    ds = ds.append(events(500, 500)).append(events(1000, 500))
    ds = ds.delete(where="id % 7 = 0 AND id < 800")
    return ds.evolve(rename={"value": "score"})


@pytest.mark.parametrize(
    "where",
    [
        "id < 10",
        "id >= 495 AND id < 505",
        "id % 3 = 0",
        "score > 0.5 AND id > 400",
        "category = 'b' OR id = 1499",
        "id IS NULL",
        "score IS NOT NULL AND id BETWEEN 690 AND 710",
    ],
)
def test_duckdb_positions_equal_the_arrow_path(history, where):
    fast, slow = _both(history, where)
    assert fast == slow


def test_delete_counts_each_row_once(history):
    before = history.to_arrow().num_rows
    after = history.delete(where="id < 800")
    deleted = before - after.to_arrow().num_rows
    assert after.commit.parameters["rows_deleted"] == deleted
    assert after.to_arrow().column("id").to_pylist() == list(range(800, 1500))


def test_delete_of_rows_already_deleted_commits_nothing(history):
    assert history.delete(where="id = 7") is None or history.delete(where="id = 7") == history


def test_types_duckdb_cannot_read_exactly_take_the_arrow_path(tmp_path):
    t = pa.table(
        {"id": pa.array([1, 2, 3], pa.int64()), "d": pa.array([1, 2, 3], pa.duration("s"))}
    )
    ds = lv.create_dataset(str(tmp_path / "ds"), t)
    cands = rowops._candidates(ds._state, "d > INTERVAL 1 SECOND", [])
    assert rowops._positions_in_duckdb(cands) is None
    after = ds.delete(where="d > INTERVAL 1 SECOND")
    assert after.to_arrow().column("id").to_pylist() == [1]


@pytest.mark.parametrize(
    ("where", "with_dv"),
    [("id < 10", True), ("score IS NOT NULL AND id BETWEEN 1100 AND 1110", False)],
)
def test_one_fragment_positions_carry_no_file_name_and_equal_the_arrow_path(
    history, where, with_dv
):
    """A plan of one fragment (with or without a deletion vector) returns positions only
    (`sqlplan.position_columns`); they are the Arrow path's."""
    from lakever.sqlplan import FILE_COLUMN, position_columns

    cands = rowops._candidates(history._state, where, [])
    assert len(cands.plan.tasks) == 1
    assert (cands.plan.tasks[0].deletion is not None) == with_dv
    assert FILE_COLUMN not in position_columns(cands.plan.tasks)
    fast, slow = _both(history, where)
    assert fast == slow and fast
