"""Scan plans: what a read touches, as a frozen value that pickles and reads anywhere."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import pickle  # noqa: TID251 - pickling is what these tests check

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakever as lv
from lakever.reader import read_positions
from tests._data import events


@pytest.fixture
def ds(local_location) -> lv.Dataset:
    ds = lv.create_dataset(local_location, events(0, 50), max_rows_per_fragment=10)
    ds = ds.evolve(rename={"value": "score"}, add={"note": pa.string()})
    ds = ds.append(events(50, 10).rename_columns(["id", "score", "category"]), schema_mode="add")
    return ds.delete(where="id IN (3, 55)")


def test_a_plan_lists_the_tasks_pruning_keeps(ds):
    plan = ds.plan(filter="id >= 40", columns=["id", "score"])
    assert plan.columns == ("id", "score") and plan.filter == '"id" >= 40'
    assert len(plan.tasks) == 2 and plan.fragments_total == 6
    assert all(t.content_hash.startswith("sha256:") and t.size_bytes > 0 for t in plan.tasks)
    # fragments written under the first schema carry it along, for a worker to map by id
    assert set(plan.schemas) == {t.schema_id for t in plan.tasks} - {plan.schema_id}
    assert plan.tasks[-1].deletion is not None and plan.tasks[-1].live_rows == 9
    assert plan.to_arrow().equals(ds.to_arrow(["id", "score"], filter="id >= 40"))
    report = plan.explain()
    assert report == ds.explain("id >= 40")
    assert (report.fragments_after_stats_pruning, report.rows_after_pruning) == (2, 20)


def test_plans_and_tasks_pickle_and_read_the_same(ds):
    plan = ds.plan(filter="score > 0.2 AND category <> 'b'")
    again = pickle.loads(pickle.dumps(plan))
    assert again.tasks == plan.tasks and again.filter == plan.filter
    whole = pa.concat_tables([again.read(t) for t in again.tasks])
    assert whole.equals(plan.to_arrow())
    assert whole.equals(ds.to_arrow(filter="score > 0.2 AND category <> 'b'"))


def _read_in_worker(args: tuple[bytes, int]) -> bytes:
    plan_bytes, i = args
    plan = pickle.loads(plan_bytes)
    table = plan.read(plan.tasks[i])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_tasks_read_in_other_processes(ds):
    plan = ds.plan(columns=["id", "note", "score"], filter="id % 2 = 0")
    blob = pickle.dumps(plan)
    with mp.get_context("spawn").Pool(2) as pool:
        parts = pool.map(_read_in_worker, [(blob, i) for i in range(len(plan.tasks))])
    tables = [pa.ipc.open_stream(p).read_all() for p in parts]
    assert pa.concat_tables(tables).equals(plan.to_arrow())


def test_datasets_pickle_to_the_same_snapshot(ds):
    again = pickle.loads(pickle.dumps(ds))
    assert (again.snapshot_id, again.version, again.read_only) == (
        ds.snapshot_id,
        ds.version,
        False,
    )
    assert again.to_arrow().equals(ds.to_arrow())
    old = lv.open_dataset(ds.uri, version=1)
    old_again = pickle.loads(pickle.dumps(old))
    assert old_again.read_only and old_again.snapshot_id == old.snapshot_id
    with pytest.raises(lv.ReadOnlyDataset):
        old_again.append(events(99, 1).rename_columns(["id", "score", "category"]))
    newer = again.append(
        pa.table(
            {"id": [1000], "score": [0.5], "category": ["x"], "note": pa.array([None], pa.string())}
        )
    )
    assert newer.version == ds.version + 1


def test_a_pickled_dataset_refuses_a_rewritten_history(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "a"), events(0, 3))
    blob = pickle.dumps(ds)
    import shutil

    shutil.rmtree(tmp_path / "a")
    lv.create_dataset(str(tmp_path / "a"), events(10, 3))
    with pytest.raises(lv.VersionNotFound, match=r"no longer in"):
        pickle.loads(blob)


def test_plan_arguments_are_checked(ds):
    with pytest.raises(lv.InvalidArgument, match=r"unknown column"):
        ds.plan(columns=["nope"])
    with pytest.raises(lv.InvalidArgument, match=r"names a column twice"):
        ds.plan(columns=["id", "id"])
    with pytest.raises(lv.InvalidArgument, match=r"list of column names"):
        ds.plan(columns="id")
    with pytest.raises(lv.InvalidArgument, match=r"names unknown column 'nope'"):
        ds.plan(filter="nope > 1")


@pytest.fixture
def grouped(local_location, monkeypatch) -> lv.Dataset:
    """Fragments of 40 rows in row groups of 7, two schemas, deletions in some."""
    monkeypatch.setattr("lakever.fragments.ROW_GROUP_ROWS", 7)
    ds = lv.create_dataset(local_location, events(0, 100), max_rows_per_fragment=40)
    ds = ds.evolve(rename={"value": "score"})
    ds = ds.append(events(100, 45).rename_columns(["id", "score", "category"]))
    return ds.delete(where=f"id IN {GROUPED_DELETED}")


@given(
    max_rows=st.integers(1, 60),
    where=st.sampled_from([None, "id % 3 = 0", "score > 0.5", "id BETWEEN 5 AND 20"]),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
def test_split_plans_read_the_same_rows_task_by_task(grouped, max_rows, where):
    plan = grouped.plan(filter=where)
    split = plan.split(max_rows)
    # every file is covered once, by consecutive whole row groups, in order
    for path in {t.path for t in plan.tasks}:
        parts = [t for t in split.tasks if t.path == path]
        assert parts[0].start == 0 and parts[-1].stop == parts[0].num_rows
        assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
        if parts[0].row_groups is None:  # not cut: the whole file is one task
            assert len(parts) == 1
            continue
        groups = [g for t in parts for g in t.row_groups or ()]
        assert groups == list(range(len(groups)))
        assert all(t.task_rows <= max(max_rows, 7) for t in parts)
    expected = plan.to_arrow()
    again = pickle.loads(pickle.dumps(split))
    tasks_read = [again.read(t) for t in again.tasks]
    assert pa.concat_tables(tasks_read).equals(expected)
    # the filtered reads of the dataset (DuckDB's Parquet reader where it can) in the same order
    assert grouped.to_arrow(filter=where).equals(expected)
    # the split read against DuckDB over the same rows in memory, unpruned
    assert sorted(pa.concat_tables(tasks_read)["id"].to_pylist()) == _reference_ids(where)
    assert pa.Table.from_batches(list(split.to_batches(11)), expected.schema).equals(expected)
    assert split.explain().rows_after_pruning == plan.explain().rows_after_pruning
    whole = [(t.path, list(pos)) for t, pos, _ in read_positions(plan)]
    parts = {}
    for t, pos, _ in read_positions(split):
        parts.setdefault(t.path, []).extend(pos)
    assert whole == list(parts.items())


GROUPED_DELETED = (0, 6, 7, 13, 50, 101, 139)


def _reference_ids(where: str | None) -> list[int]:
    """The ids of the `grouped` rows matching ``where``, by DuckDB over the rows in memory."""
    rows = events(0, 145).rename_columns(["id", "score", "category"])
    con = duckdb.connect()
    con.register("t", rows)
    deleted = ", ".join(map(str, GROUPED_DELETED))
    cond = f"id NOT IN ({deleted})" + (f" AND ({where})" if where else "")
    return sorted(r[0] for r in con.sql(f"SELECT id FROM t WHERE {cond}").fetchall())


def test_a_split_plan_of_small_files_is_the_plan(ds):
    plan = ds.plan(filter="id > 3")
    assert plan.split(1000).tasks == plan.tasks
    with pytest.raises(lv.InvalidArgument, match="max_rows must be a positive int, got 0"):
        plan.split(0)


def test_splitting_a_replaced_file_is_named_damage(grouped, tmp_path):
    plan = grouped.plan()
    task = plan.tasks[0]
    target = plan.storage.full_path(task.path)
    pq.write_table(pa.table({"id": pa.array(range(5), pa.int64())}), target)
    with pytest.raises(lv.CorruptData, match=r"instead of|does not match the hash"):
        plan.split(10)
