"""Table properties and automatic compaction after commits."""

from __future__ import annotations

import pytest
from _data import events

import lakever as lv


def test_table_properties_are_checked_and_carried_forward(location):
    ds = lv.create_dataset(location, events(0, 5))
    assert ds.table_properties == {}
    ds = ds.set_properties({"compact.min_small_fragments": "4", "compact.target_size": "1M"})
    assert ds.commit.operation == "set_properties" and ds.num_rows == 5
    ds = ds.append(events(5, 5)).delete(where="id = 1")
    reopened = lv.open_dataset(location)
    assert reopened.table_properties == {
        "compact.min_small_fragments": "4",
        "compact.target_size": "1M",
    }
    assert lv.open_dataset(location, version=0).table_properties == {}
    removed = reopened.set_properties({"compact.target_size": None})
    assert removed.table_properties == {"compact.min_small_fragments": "4"}
    for bad in (
        {"compact.autp": "true"},
        {"compact.auto": "yes"},
        {"compact.min_small_fragments": "1"},
        {"compact.max_deleted_fraction": "1.5"},
        {"compact.target_size": "big"},
        {"compact.auto": True},
        {},
    ):
        with pytest.raises(lv.InvalidArgument):
            removed.set_properties(bad)  # type: ignore[arg-type]
    assert lv.open_dataset(location).version == removed.version


def test_automatic_compaction_after_small_fragments(location):
    ds = lv.create_dataset(location, events(0, 5))
    ds = ds.set_properties({"compact.auto": "true", "compact.min_small_fragments": "4"})
    ds = ds.append(events(5, 5)).append(events(10, 5))
    assert ds.commit.operation == "append" and len(ds.fragments()) == 3
    ds = ds.append(events(15, 5))  # the 4th small fragment: compacted right after
    assert ds.commit.operation == "compact" and ds.commit.message == "automatic compaction"
    assert [c.operation for c in ds.history(limit=2)] == ["compact", "append"]
    assert len(ds.fragments()) == 1 and ds.to_arrow()["id"].to_pylist() == list(range(20))
    assert lv.open_dataset(location).version == ds.version


def test_automatic_compaction_after_deletes_pass_the_fraction(location):
    ds = lv.create_dataset(location, events(0, 100), max_rows_per_fragment=50)
    ds = ds.set_properties({"compact.auto": "true", "compact.max_deleted_fraction": "0.2"})
    ds = ds.delete(where="id < 10")  # 10%: not yet
    assert ds.commit.operation == "delete" and ds.fragments()[0].deleted_rows == 10
    ds = ds.delete(where="id >= 10 AND id < 30")  # 30%: compacted
    assert ds.commit.operation == "compact"
    assert not any(f.deleted_rows for f in ds.fragments())
    assert ds.to_arrow()["id"].to_pylist() == list(range(30, 100))


def test_off_by_default_and_a_failure_never_fails_the_commit(tmp_path, monkeypatch, caplog):
    ds = lv.create_dataset(str(tmp_path / "t"), events(0, 5))
    for i in range(1, 20):
        ds = ds.append(events(5 * i, 5))
    assert ds.commit.operation == "append" and len(ds.fragments()) == 20
    ds = ds.set_properties({"compact.auto": "true"})
    assert ds.commit.operation == "compact"  # 20 small fragments: due at once

    def lose(*args: object, **kwargs: object) -> None:
        raise lv.CommitConflict("lost", winning_version=0)

    monkeypatch.setattr("lakever.maintenance.auto.compact", lose)
    ds = ds.delete(where="id < 3")  # 3% deleted, and 2 small fragments: not due
    assert ds.commit.operation == "delete"
    ds = ds.set_properties({"compact.max_deleted_fraction": "0.01"})
    assert ds.commit.operation == "set_properties"  # due, failed, logged: the commit stands
    assert "automatic compaction" in caplog.text and "failed" in caplog.text
