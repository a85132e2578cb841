"""Row-level changes racing other commits: what rebases, what conflicts, nothing lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from _data import events
from _workers import append_batch
from test_concurrency import Workers

import lakever as lv


def ids_of(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow(["id"])["id"].to_pylist()


def race(*jobs: Callable[[], Any]) -> list[Any]:
    """Run the jobs in threads released together; return each result or exception."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except Exception as exc:  # collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_stale_deletes_rebase_unless_they_touch_the_same_fragment(location):
    base = lv.create_dataset(location, events(0, 40), max_rows_per_fragment=10)
    first = base.delete(where="id = 1")
    # another fragment: rebased on top of `first`, keeping its delete
    second = base.delete(where="id = 25")
    assert second.version == 2 and 1 not in ids_of(second) and 25 not in ids_of(second)
    # the same fragment as `first`: a conflict naming the winner, nothing committed
    with pytest.raises(lv.CommitConflict) as info:
        base.delete(where="id = 2")
    assert info.value.winning_version == 1
    assert "deleted rows from fragment" in str(info.value)
    assert lv.open_dataset(location).version == 2
    # updates and upserts follow the same rule; appends after a delete are kept
    with pytest.raises(lv.CommitConflict):
        base.update(set={"value": "0"}, where="id = 3")
    assert base.append(events(100, 1)).version == 3
    assert base.update(set={"value": "0"}, where="id = 33").version == 4
    assert ids_of(lv.open_dataset(location))[-2:] == [100, 33]
    assert first.version == 1


def test_delete_rebases_over_a_schema_change(location):
    base = lv.create_dataset(location, events(0, 10))
    base.evolve(rename={"value": "score"})
    after = base.delete(where="value > 0.05")  # evaluated on version 0's schema
    assert after.version == 2 and after.schema.names == ["id", "score", "category"]
    assert ids_of(after) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(lv.CommitConflict, match=r"changed the schema"):
        base.update(set={"value": "1"}, where="id = 1")


def test_delete_races_appends_and_keeps_them(location):
    ds = lv.create_dataset(location, events(0, 50), max_rows_per_fragment=10)
    writer = lv.open_dataset(location)
    appends = [lambda i=i: writer.append(events(1000 + 10 * i, 2)) for i in range(4)]
    results = race(lambda: ds.delete(where="id < 50 AND id % 2 = 0"), *appends)
    assert not [r for r in results if isinstance(r, BaseException)], results
    final = lv.open_dataset(location)
    assert final.version == 5
    expected = {i for i in range(50) if i % 2} | {
        1000 + 10 * i + k for i in range(4) for k in (0, 1)
    }
    assert set(ids_of(final)) == expected and final.num_rows == len(expected)


def test_two_deletes_of_one_fragment_race(location):
    ds = lv.create_dataset(location, events(0, 10))
    results = race(lambda: ds.delete(where="id = 1"), lambda: ds.delete(where="id = 2"))
    conflicts = [r for r in results if isinstance(r, lv.CommitConflict)]
    won = [r for r in results if isinstance(r, lv.Dataset)]
    assert len(conflicts) == 1 and len(won) == 1
    assert conflicts[0].winning_version == 1
    assert lv.open_dataset(location).num_rows == 9


def test_upserts_racing_on_a_new_key(location):
    ds = lv.create_dataset(location, events(0, 10), primary_key=["id"])
    results = race(lambda: ds.upsert(events(50, 1)), lambda: ds.upsert(events(50, 1)))
    assert sum(isinstance(r, lv.CommitConflict) for r in results) == 1, results
    assert ids_of(lv.open_dataset(location)).count(50) == 1
    # appends of one key from stale handles: the second conflicts instead of duplicating
    ds.append(events(60, 1))
    with pytest.raises(lv.CommitConflict, match=r"added rows with the same primary key"):
        ds.append(events(60, 1))


@pytest.mark.slow
def test_gdpr_deletes_from_processes_race_appends(local_location):
    lv.create_dataset(local_location, events(0, 200), max_rows_per_fragment=25)
    doomed = [[3, 40, 77, 120], [4, 41, 150, 199]]  # some share fragments: retried
    workers = Workers(
        [["delete", local_location, str(w), ",".join(map(str, ks))] for w, ks in enumerate(doomed)]
        + [["append", local_location, str(w), "3"] for w in range(2)]
    )
    workers.send_all("go")
    out = workers.finish()
    final = lv.open_dataset(local_location)
    appended = {
        start + k
        for w in range(2)
        for seq in range(3)
        for start, n in [append_batch(w, seq)]
        for k in range(n)
    }
    gone = {k for ks in doomed for k in ks}
    assert set(ids_of(final)) == (set(range(200)) - gone) | appended
    assert final.version == 8 + 6
    assert sorted(line["id"] for lines in out[:2] for line in lines) == sorted(gone)
