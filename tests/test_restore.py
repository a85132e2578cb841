"""Restore: a new commit equal to an older snapshot; history kept, no data copied."""

from __future__ import annotations

import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events
from tests.test_cli import run


def _same(a: lv.Dataset, b: lv.Dataset) -> None:
    """Same rows, same schema with field ids, same fragments (by reference)."""
    assert a.to_arrow().equals(b.to_arrow())
    assert a._state.schema.equals(b._state.schema, check_metadata=True)
    assert a.field_ids == b.field_ids
    assert a._snap.manifests == b._snap.manifests
    assert (a._snap.contract, a._snap.partitioning, a._snap.primary_key) == (
        b._snap.contract,
        b._snap.partitioning,
        b._snap.primary_key,
    )


def _busy_history(location: str) -> list[lv.Dataset]:
    """create, append, delete (deletion vector), evolve (add + rename), append, overwrite."""
    v0 = lv.create_dataset(location, events(0, 10), max_rows_per_fragment=4)
    v1 = v0.append(events(10, 5))
    v2 = v1.delete(where="id IN (1, 11)")
    v3 = v2.evolve(add={"extra": pa.int32()}, rename={"value": "score"})
    wider = events(20, 3).rename_columns(["id", "score", "category"])
    v4 = v3.append(wider.append_column("extra", pa.array([1, 2, 3], pa.int32())))
    v5 = v4.overwrite(
        wider.append_column("extra", pa.array([7, 8, 9], pa.int32())), message="replace"
    )
    return [v0, v1, v2, v3, v4, v5]


@pytest.mark.parametrize("target", [0, 1, 2, 3, 4])
def test_restore_reads_back_the_old_version(location, target):
    versions = _busy_history(location)
    head = versions[-1]
    before = {v.version: (v.snapshot_id, v.to_arrow()) for v in versions}
    restored = head.restore(target)
    old = lv.open_dataset(location, version=target)
    assert restored.version == head.version + 1
    _same(restored, old)
    assert lv.open_dataset(location).snapshot_id == restored.snapshot_id
    # field ids never go back: nothing is claimed, nothing reused
    assert restored._snap.last_field_id == head._snap.last_field_id
    commit = restored.history()[0]
    assert commit.operation == "restore"
    assert commit.parameters["version"] == target
    assert commit.parameters["snapshot_id"] == old.snapshot_id
    assert [c.version for c in restored.history()] == list(range(head.version + 1, -1, -1))
    for v, (sid, rows) in before.items():  # time travel to earlier versions is unchanged
        again = lv.open_dataset(location, version=v)
        assert again.snapshot_id == sid and again.to_arrow().equals(rows)
    assert restored.verify().ok


def test_restore_across_a_schema_change_does_not_mix_schemas(location):
    versions = _busy_history(location)
    restored = versions[-1].restore(1)
    assert restored.schema.names == ["id", "value", "category"]
    assert "extra" not in restored.field_ids
    # writes continue under the restored schema; the dropped column's id is not reused
    more = restored.append(events(100, 2))
    assert more.num_rows == 17
    grown = more.evolve(add={"again": pa.int8()})
    assert grown.field_ids["again"] > max(versions[-1].field_ids.values())


def test_diff_shows_what_the_restore_changed(location):
    v0 = lv.create_dataset(location, events(0, 5))
    v1 = v0.append(events(5, 3))
    restored = v1.restore(0)
    d = v1.diff(restored)
    assert (d.summary.rows_added, d.summary.rows_removed) == (0, 3)
    c = restored.commit
    assert (c.rows_added, c.rows_removed, c.total_rows) == (0, 3, 5)
    again = restored.restore(1)  # a restore of a restore: forward again
    _same(again, v1)
    assert again.commit.rows_added == 3


def test_restore_to_a_tag_and_to_another_branch(location):
    v0 = lv.create_dataset(location, events(0, 3))
    v0.tag("good")
    v1 = v0.append(events(3, 3))
    exp = v1.branch("exp").delete(where="id < 2")
    restored = v1.restore("good")
    _same(restored, v0)
    onto = restored.restore("exp")  # another branch's head, by name
    _same(onto, exp)
    by_id = onto.restore(v1.snapshot_id[:12])
    _same(by_id, v1)


def test_restore_on_a_branch_leaves_main_alone(location):
    v0 = lv.create_dataset(location, events(0, 3))
    v1 = v0.append(events(3, 3))
    exp = v1.branch("exp").append(events(6, 1))
    restored = exp.restore(0)
    assert restored.branch_name == "exp" and restored.version == 3
    _same(restored, v0)
    assert lv.open_dataset(location).snapshot_id == v1.snapshot_id
    assert lv.open_dataset(location, branch="exp").snapshot_id == restored.snapshot_id


def test_restore_conflicts_with_a_concurrent_commit(location):
    v0 = lv.create_dataset(location, events(0, 3))
    stale = v0.append(events(3, 1))
    lv.open_dataset(location).append(events(4, 1))
    with pytest.raises(lv.CommitConflict, match=r"'restore'"):
        stale.restore(0)
    assert lv.open_dataset(location).num_rows == 5


def test_restore_refuses_misuse(location):
    v0 = lv.create_dataset(location, events(0, 3))
    v0.append(events(3, 1))
    with pytest.raises(lv.ReadOnlyDataset, match="cannot restore"):
        lv.open_dataset(location, version=0).restore(0)
    head = lv.open_dataset(location)
    with pytest.raises(lv.VersionNotFound):
        head.restore(7)
    with pytest.raises(lv.InvalidArgument):
        head.restore(1.5)  # type: ignore[arg-type]
    with pytest.raises(lv.VersionNotFound):
        head.restore("no-such-tag")
    assert lv.open_dataset(location).version == 1


def test_cli_restore(tmp_path):
    path = str(tmp_path / "lake")
    v0 = lv.create_dataset(path, events(0, 3))
    v0.append(events(3, 3)).branch("exp").append(events(6, 1))
    code, out = run("restore", path, "0", "-m", "undo")
    assert code == 0 and "version 2" in out and "-3 rows" in out
    head = lv.open_dataset(path)
    assert head.commit.message == "undo" and head.to_arrow().equals(v0.to_arrow())
    code, out = run("restore", path, "1", "--branch", "exp")
    assert code == 0 and lv.open_dataset(path, branch="exp").num_rows == 6


def test_restore_brings_back_contract_and_partitioning(location):
    import pandera.polars as pap
    import polars as pl

    v0 = lv.create_dataset(location, events(0, 6))
    v1 = v0.set_contract(pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check.ge(0))}))
    v2 = v1.set_partitioning(["category"]).append(events(6, 3))
    back = v2.restore(0)
    _same(back, v0)
    assert back.contract is None and back.partitioning == []
    forward = back.restore(v2.version)
    _same(forward, v2)
    assert forward.contract is not None and forward.partitioning == v2.partitioning != []
    with pytest.raises(lv.ContractViolation):  # the restored contract is in force again
        forward.append(events(-5, 1))
