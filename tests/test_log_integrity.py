"""The log never loses an acknowledged commit silently (issue 9 §6).

Each test damages the log the way an outside actor would (deleting entries,
re-parenting one and recomputing its snapshot id so it stays self-consistent,
editing a branch record) and checks that opening, walking history and committing
raise `BrokenHistory` naming the file, the branch and the version, and that no
commit is acknowledged on top of the damage.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakever as lv
from lakever import refs
from lakever.format import (
    branch_meta_path,
    canonical_json,
    compute_snapshot_id,
    latest_hint_path,
    log_path,
)
from lakever.storage import Storage, open_storage
from tests._data import events


def _store(location: str) -> Storage:
    return open_storage(location)


def _history(location: str, n: int) -> list[lv.Dataset]:
    """Versions 0..n-1, version i adding the row with id i; the handle of each version."""
    out = [lv.create_dataset(location, events(0, 1))]
    for i in range(1, n):
        out.append(out[-1].append(events(i, 1)))
    return out


def _ids(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow()["id"].to_pylist()


def _delete_entry(location: str, version: int, branch_id: str = "main") -> None:
    _store(location).delete(log_path(branch_id, version))


def _delete_hint(location: str, branch_id: str = "main") -> None:
    _store(location).delete(latest_hint_path(branch_id))


def _rewrite(store: Storage, rel: str, record: dict) -> None:
    store.delete(rel)
    assert store.put_if_absent(rel, canonical_json(record))


def _reparent(location: str, version: int, branch_id: str = "main") -> str:
    """Give an entry another parent_id, keeping it self-consistent; return its new id."""
    store = _store(location)
    rel = log_path(branch_id, version)
    record = json.loads(store.read_bytes(rel))
    del record["snapshot_id"]
    record["parent_id"] = uuid.uuid4().hex
    record["snapshot_id"] = compute_snapshot_id(record)
    _rewrite(store, rel, record)
    return record["snapshot_id"]


def _entry(location: str, version: int, branch_id: str = "main") -> str:
    return _store(location).full_path(log_path(branch_id, version))


# ------------------------------------------------------------------ deleted entries


def test_deleted_middle_entry_and_hint(location):
    """The probe finds version 2 before the gap: it must not show (or commit on) it."""
    _history(location, 6)
    _delete_entry(location, 3)
    _delete_hint(location)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location)
    err = ei.value
    assert (err.branch, err.version, err.path) == ("main", 3, _entry(location, 3))
    message = str(err)
    assert f"log entry {_entry(location, 3)} (version 3) is missing" in message
    assert "branch 'main'" in message and "Restore the file from a backup" in message
    assert "versions 0 to 2 come before the break and stay readable by version number" in message
    # the advice is code to paste: no branch argument for main
    uri = _store(location).uri
    assert f"(lakever.open_dataset({uri!r}, version=2))" in message
    assert isinstance(err, lv.CorruptMetadata)
    with pytest.raises(lv.BrokenHistory):
        lv.write_dataset(location, events(100, 1), mode="append")
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location, version=3)
    assert _ids(lv.open_dataset(location, version=2)) == [0, 1, 2]
    assert _ids(lv.open_dataset(location, version=5)) == [0, 1, 2, 3, 4, 5]


def test_stale_handle_refused_before_the_gap(location):
    handles = _history(location, 6)
    _delete_entry(location, 3)
    _delete_hint(location)
    with pytest.raises(lv.BrokenHistory, match=r"version 3\) is missing although version 4"):
        handles[2].append(events(100, 1))
    assert not _store(location).exists(log_path("main", 3))


def test_commit_into_a_gap_is_not_acknowledged(location):
    """The hint leads the probe past the gap at 3, so the head (5) is right; a handle from
    when version 2 was the head then lands in the gap: it must not be acknowledged."""
    handles = _history(location, 6)
    _delete_entry(location, 3)
    assert lv.open_dataset(location).version == 5
    with pytest.raises(lv.BrokenHistory, match=r"NOT acknowledged") as ei:
        handles[2].append(events(100, 1))
    assert (ei.value.version, ei.value.path) == (3, _entry(location, 3))
    assert "version 4 already existed" in str(ei.value)
    assert (
        "Move that entry aside and restore the deleted one from a backup, then redo the "
        "commit on the restored head" in str(ei.value)
    )
    # the entry it left is evidence, never read as version 3, never a head
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location, version=3)
    head = lv.open_dataset(location)
    assert head.version == 5
    with pytest.raises(lv.BrokenHistory):
        head.history()


def test_gap_of_several_entries_just_beyond_the_found_head(location):
    _history(location, 10)
    for v in (3, 4, 5):
        _delete_entry(location, v)
    _delete_hint(location)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location)
    assert ei.value.version == 3


def test_deleted_first_entry(location):
    """Without version 0 the dataset must not look absent (and be created again)."""
    _history(location, 4)
    _delete_entry(location, 0)
    _delete_hint(location)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location)
    assert ei.value.version == 0
    assert "no version comes before the break" in str(ei.value)
    with pytest.raises(lv.BrokenHistory):
        lv.create_dataset(location, events(0, 1))
    with pytest.raises(lv.BrokenHistory):
        lv.write_dataset(location, events(0, 1), mode="append")


def test_deleted_newest_entry(location):
    """The hint still records version 5: no silent roll-back, no reuse of number 5."""
    handles = _history(location, 6)
    _delete_entry(location, 5)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location)
    err = ei.value
    assert (err.branch, err.version, err.path) == ("main", 5, _entry(location, 5))
    assert "records version 5 as committed" in str(err)
    assert "deleting the hint accepts the loss" in str(err)
    with pytest.raises(lv.BrokenHistory):
        lv.write_dataset(location, events(100, 1), mode="append")
    with pytest.raises(lv.BrokenHistory, match=r"Nothing was committed|is missing"):
        handles[5].append(events(100, 1))
    with pytest.raises(lv.BrokenHistory):
        handles[4].append(events(100, 1))  # would land as version 5
    assert not _store(location).exists(log_path("main", 5))
    assert not _store(location).exists(log_path("main", 6))
    assert _ids(lv.open_dataset(location, version=4)) == [0, 1, 2, 3, 4]


def test_deleted_newest_entries(location):
    _history(location, 6)
    for v in (3, 4, 5):
        _delete_entry(location, v)
    with pytest.raises(lv.BrokenHistory, match=r"versions 3 to 5 \(or some of them\)") as ei:
        lv.open_dataset(location)
    assert ei.value.version == 3


# -------------------------------------------------------------- re-parented entries


@pytest.mark.parametrize("tampered", [5, 4, 2])
def test_reparented_entry(location, tampered):
    """An entry re-parented with a recomputed id passes its own hash check, not the chain."""
    handles = _history(location, 6)
    _reparent(location, tampered)
    if tampered >= 4:  # the head or its parent: found on open
        with pytest.raises(lv.BrokenHistory) as ei:
            lv.open_dataset(location)
        assert (ei.value.version, ei.value.path) == (4, _entry(location, 5))
        assert "(version 5) names parent snapshot" in str(ei.value)
        with pytest.raises(lv.BrokenHistory):
            lv.write_dataset(location, events(100, 1), mode="append")
    else:  # deeper: found by every walk that crosses it
        head = lv.open_dataset(location)
        assert head.version == 5
        assert head.history(limit=2)[-1].version == 4  # the part above the break reads
        feed = list(head.changes(since=3))  # and so does the change feed
        assert [t["_commit_version"].to_pylist() for t in feed] == [[4], [5]]
        with pytest.raises(lv.BrokenHistory) as ei:
            head.history()
        assert (ei.value.version, ei.value.path) == (2, _entry(location, 3))
        with pytest.raises(lv.BrokenHistory):
            head.schema_history()
        with pytest.raises(lv.BrokenHistory):
            list(head.changes(since=0))
        with pytest.raises(lv.BrokenHistory):
            lv.open_dataset(location, version=handles[tampered].timestamp)
        with pytest.raises(lv.BrokenHistory):
            head.append(events(100, 1)).history()
    # by number, a version is vouched for by the next one naming it as parent
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location, version=tampered - 1)
    assert _ids(lv.open_dataset(location, version=tampered - 2)) == list(range(tampered - 1))
    if tampered == 5:  # a handle holding the old head must not commit on a replaced one
        with pytest.raises(lv.BrokenHistory, match=r"was replaced outside lakever"):
            handles[5].append(events(100, 1))
        assert not _store(location).exists(log_path("main", 6))


def test_reparented_version_zero(location):
    _history(location, 1)
    _reparent(location, 0)
    with pytest.raises(lv.BrokenHistory, match=r"is version 0 but names parent snapshot"):
        lv.open_dataset(location)


# ------------------------------------------------------------------------ branches


def _branch_record(location: str, name: str) -> tuple[str, dict]:
    store = _store(location)
    info = refs.get_branch(store, name)
    assert info is not None
    return info.id, json.loads(store.read_bytes(branch_meta_path(info.id)))


@pytest.mark.parametrize("own_commits", [0, 2])
def test_branch_record_with_wrong_base_snapshot(location, own_commits):
    handles = _history(location, 3)
    exp = handles[2].branch("exp")
    for i in range(own_commits):
        exp = exp.append(events(10 + i, 1))
    branch_id, record = _branch_record(location, "exp")
    record["base"]["snapshot_id"] = handles[1].snapshot_id
    _rewrite(_store(location), branch_meta_path(branch_id), record)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location, branch="exp")
    err = ei.value
    assert (err.branch, err.version) == ("exp", 2)
    assert err.path == _store(location).full_path(branch_meta_path(branch_id))
    assert f"says it starts at version 2, snapshot {handles[1].snapshot_id}" in str(err)
    uri = _store(location).uri
    assert f"(lakever.open_dataset({uri!r}, branch='exp', version=1))" in str(err)
    # a handle opened before the edit: the record no longer says what it was built from
    with pytest.raises(lv.BrokenHistory) as ei:
        exp.append(events(99, 1))
    assert (
        f"now records version 2, snapshot {handles[1].snapshot_id}, but it was read as "
        f"version 2, snapshot {handles[2].snapshot_id}: the record was changed outside "
        "lakever. Nothing was committed" in str(ei.value)
    )
    assert lv.open_dataset(location).version == 2  # main is unaffected


def test_branch_first_own_entry_with_wrong_parent(location):
    handles = _history(location, 3)
    handles[2].branch("exp").append(events(10, 1))
    branch_id, _ = _branch_record(location, "exp")
    _reparent(location, 3, branch_id)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location, branch="exp")
    assert (ei.value.branch, ei.value.version) == ("exp", 2)
    assert ei.value.path == _store(location).full_path(log_path(branch_id, 3))


def test_branch_first_own_entry_rewritten_with_its_successor(location):
    """The branch's first own entry and the next were both rewritten (ids recomputed): the
    head names its parent, but the first own entry no longer names the base."""
    handles = _history(location, 3)
    handles[2].branch("exp").append(events(10, 1)).append(events(11, 1))
    branch_id, _ = _branch_record(location, "exp")
    new_first = _reparent(location, 3, branch_id)
    store = _store(location)
    rel = log_path(branch_id, 4)
    record = json.loads(store.read_bytes(rel))
    del record["snapshot_id"]
    record["parent_id"] = new_first
    record["snapshot_id"] = compute_snapshot_id(record)
    _rewrite(store, rel, record)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location, branch="exp")
    assert (ei.value.branch, ei.value.version) == ("exp", 2)
    assert ei.value.path == _store(location).full_path(log_path(branch_id, 3))
    assert "(version 3) names parent snapshot" in str(ei.value)


def test_branch_base_entry_replaced(location):
    """The base entry on main was re-parented: the branch's record no longer matches it."""
    handles = _history(location, 4)
    handles[2].branch("exp").append(events(10, 1))
    _reparent(location, 2)
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location, branch="exp")
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location)  # main's head (3) names the old version 2


def test_nested_branch_checks_every_base(location):
    handles = _history(location, 3)
    b = handles[2].branch("b").append(events(10, 1))
    b.branch("c").append(events(20, 1))
    b_id, record = _branch_record(location, "b")
    record["base"]["snapshot_id"] = handles[0].snapshot_id
    _rewrite(_store(location), branch_meta_path(b_id), record)
    with pytest.raises(lv.BrokenHistory) as ei:
        lv.open_dataset(location, branch="c")
    assert ei.value.branch == "b"


def test_merge_refuses_a_broken_source(location):
    handles = _history(location, 3)
    exp = handles[2].branch("exp").append(events(10, 1)).append(events(11, 1))
    handles[2].append(events(3, 1))
    branch_id, _ = _branch_record(location, "exp")
    _reparent(location, 4, branch_id)  # exp's head: its parent link is broken
    with pytest.raises(lv.BrokenHistory):
        lv.open_dataset(location).merge("exp")
    assert exp.version == 4


# --------------------------------------------------------------- time after the head


def test_time_after_the_newest_commit_is_an_error(location):
    handles = _history(location, 3)
    newest = handles[2].timestamp
    assert lv.open_dataset(location, version=newest).version == 2
    with pytest.raises(lv.VersionNotFound) as ei:
        lv.open_dataset(location, version=newest + timedelta(microseconds=1))
    assert "after the newest commit on branch 'main', version 2 at" in str(ei.value)
    assert newest.strftime("%Y-%m-%dT%H:%M:%S.%fZ") in str(ei.value)
    exp = handles[1].branch("exp")
    with pytest.raises(lv.VersionNotFound, match=r"newest commit on branch 'exp', version 1"):
        lv.open_dataset(location, branch="exp", version=handles[1].timestamp + timedelta(days=1))
    assert lv.open_dataset(location, branch="exp", version=exp.timestamp).version == 1


def test_sql_time_travel_agrees_with_the_api(tmp_path):
    lake = lv.connect(str(tmp_path / "lake"))
    ds = lake.create_dataset("events", events(0, 2)).append(events(2, 1))
    naive_utc = ds.timestamp.replace(tzinfo=None)
    query = "SELECT count(*) FROM events FOR TIMESTAMP AS OF '{}'"
    assert lake.sql(query.format(naive_utc.isoformat())).fetchall() == [(3,)]
    later = (naive_utc + timedelta(microseconds=1)).isoformat()
    with pytest.raises(lv.VersionNotFound, match=r"after the newest commit"):
        lake.sql(query.format(later))
    with pytest.raises(lv.InvalidArgument, match=r"naive"):
        lake.open("events", version=naive_utc)


# ---------------------------------------------------------------------------- pins


def test_pins_name_the_branch(location):
    ds = lv.create_dataset(location, events(0, 1))
    assert "?branch=main&version=0&" in ds.pin()
    name = "exp/a+b&c=%d#e"
    exp = ds.branch(name).append(events(1, 1))
    pin = exp.pin()
    assert "?branch=exp%2Fa%2Bb%26c%3D%25d%23e&version=1&" in pin
    assert refs.get_branch(_store(location), name).id not in pin
    again = lv.open_dataset(pin)
    assert (again.snapshot_id, again.branch_name) == (exp.snapshot_id, name)


def test_pin_survives_branch_deletion_and_recreation(location):
    main = _history(location, 3)[2]
    exp = main.branch("exp").append(events(10, 1))
    pin = exp.pin()
    main.delete_branch("exp")
    assert lv.open_dataset(pin).snapshot_id == exp.snapshot_id
    # the name comes back on another line, with another snapshot at version 3
    main.append(events(3, 1))
    lv.open_dataset(location).branch("exp")
    assert lv.open_dataset(location, branch="exp", version=3).snapshot_id != exp.snapshot_id
    again = lv.open_dataset(pin)
    assert (again.snapshot_id, again.version) == (exp.snapshot_id, 3)
    assert _ids(again) == [0, 1, 2, 10]
    # a pin of a snapshot the branch shares with main reopens on the branch
    shared = lv.open_dataset(location, branch="exp", version=1).pin()
    assert "branch=exp&version=1" in shared
    assert lv.open_dataset(shared).snapshot_id == main.history()[1].snapshot_id


def test_old_pins_holding_a_branch_id_still_open(location):
    exp = lv.create_dataset(location, events(0, 1)).branch("exp").append(events(1, 1))
    branch_id = refs.get_branch(_store(location), "exp").id
    old = f"lakever:{exp.uri}?branch={branch_id}&version=1&snapshot={exp.snapshot_id}"
    again = lv.open_dataset(old)
    assert (again.snapshot_id, again.branch_name) == (exp.snapshot_id, "exp")
    exp.delete_branch("exp")
    assert lv.open_dataset(old).snapshot_id == exp.snapshot_id
    wrong = old.replace(exp.snapshot_id, "0" * 32)
    with pytest.raises(lv.VersionNotFound, match=r"not in the log"):
        lv.open_dataset(wrong)
    with pytest.raises(lv.InvalidArgument, match=r"32 hex digits"):
        lv.open_dataset(old.replace(exp.snapshot_id, "abc"))


# ------------------------------------------------------------------------------ CLI


def test_cli_names_the_damage_in_one_line(local_location):
    import subprocess
    import sys

    _history(local_location, 4)
    _delete_entry(local_location, 3)
    proc = subprocess.run(
        [sys.executable, "-m", "lakever", "log", local_location],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: the history of branch 'main'")
    assert "00000000000000000003.json" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# -------------------------------------------------------------------- the property


def _check_line(
    uri: str, branch: str, committed: list[str], *, head_version: int, missing: int | None
) -> None:
    """Every read of ``branch`` that succeeds returns exactly what was committed there.

    ``head_version`` is the head a successful open must show; ``missing`` the version
    of the line whose entry is gone (None: none is).
    """
    try:
        head = lv.open_dataset(uri, branch=branch)
    except lv.LakeverError:
        head = None
    if head is not None:
        assert head.version == head_version, "a silently different head"
        assert head.snapshot_id == committed[head.version]
        try:
            history = head.history()
        except lv.LakeverError:
            assert missing is not None and missing < head.version
        else:
            assert missing is None or missing > head.version
            assert [c.snapshot_id for c in history] == committed[head.version :: -1]
        try:
            first = lv.open_dataset(uri, branch=branch, version=committed_time(head, 0))
        except lv.LakeverError:
            assert missing is not None
        else:
            assert first.snapshot_id == committed[0]
    for v in range(len(committed) + 1):
        try:
            ds = lv.open_dataset(uri, branch=branch, version=v)
        except lv.LakeverError:
            continue
        assert v != missing
        assert ds.snapshot_id == committed[v]


def committed_time(head: lv.Dataset, version: int):
    """The commit time of ``version``, read without walking history (for as-of reads)."""
    return lv.open_dataset(head.uri, version=version).timestamp


@given(
    n=st.integers(1, 6),
    own=st.integers(0, 3),
    data=st.data(),
    hint_kept=st.booleans(),
    memory=st.booleans(),
)
def test_deleting_any_entry_never_shows_a_different_head(
    tmp_path_factory, n, own, data, hint_kept, memory
):
    """Commits on main and on a branch, then one entry of either log deleted (and maybe
    that log's hint): every read either raises a LakeverError or returns exactly what
    was committed, and a commit is refused or shown by the head afterwards."""
    if memory:
        uri = f"memory://lakever-tests/{uuid.uuid4().hex}/events"
    else:
        uri = str(tmp_path_factory.mktemp("lake") / "events")
    base = data.draw(st.integers(0, n - 1), label="branch base")
    handles = _history(uri, base + 1)
    exp = handles[base].branch("exp")
    lines = {"main": [h.snapshot_id for h in handles]}
    lines["exp"] = lines["main"][:]
    main = handles[-1]
    for i in range(base + 1, n):
        main = main.append(events(i, 1))
        lines["main"].append(main.snapshot_id)
    for i in range(own):
        exp = exp.append(events(100 + i, 1))
        lines["exp"].append(exp.snapshot_id)
    store = _store(uri)
    exp_id = refs.get_branch(store, "exp").id
    where = data.draw(st.sampled_from(["main", "exp"] if own else ["main"]), label="log")
    log_id, first = ("main", 0) if where == "main" else (exp_id, base + 1)
    deleted = data.draw(st.integers(first, len(lines[where]) - 1), label="deleted")
    _delete_entry(uri, deleted, log_id)
    if not hint_kept:
        _delete_hint(uri, log_id)

    def expect(branch: str) -> tuple[int, int | None]:
        """(head a successful open shows, the line's missing version)."""
        newest = len(lines[branch]) - 1
        if where == "main" and (branch == "main" or deleted <= base):
            missing: int | None = deleted
        elif where == branch:
            missing = deleted
        else:
            missing = None
        # With the newest entry of a log and its hint both gone, nothing records that
        # the commit existed: indistinguishable from a log without it (docs/format.md).
        lost = where == branch and deleted == newest and not hint_kept
        return (newest - 1 if lost else newest), missing

    for branch in ("main", "exp"):
        head_version, missing = expect(branch)
        _check_line(uri, branch, lines[branch], head_version=head_version, missing=missing)
    branch = data.draw(st.sampled_from(["main", "exp"]), label="commit to")
    head_version, missing = expect(branch)
    try:
        ds = lv.open_dataset(uri, branch=branch).append(events(1000, 1))
    except lv.LakeverError:
        return
    assert ds.version == head_version + 1
    head = lv.open_dataset(uri, branch=branch)
    assert (head.version, head.snapshot_id) == (ds.version, ds.snapshot_id)
    if ds.version < len(lines[branch]):  # the undetectable loss: its number is reused
        lines[branch][ds.version] = ds.snapshot_id
        missing = None
    else:
        lines[branch].append(ds.snapshot_id)
    _check_line(uri, branch, lines[branch], head_version=ds.version, missing=missing)


# A record re-sealed with a valid id (another tool, or an edit with the id recomputed) is
# checked field by field: each case raised a raw Python error later, where the field was
# used (history, vacuum, append, changes, filters, export_delta).
RESEALED = {
    "merge_parent is a number": lambda j: j.update(merge_parent=5),
    "merge_parent lacks fields": lambda j: j.update(merge_parent={"snapshot_id": "x"}),
    "sort_by holds a number": lambda j: j.update(sort_by=[5]),
    "unknown partition transform": lambda j: j.update(
        partitioning=[{"field_id": 1, "transform": "bogus", "name": "x"}]
    ),
    "primary key names no column": lambda j: j.update(primary_key=[77]),
    "operation is a number": lambda j: j.update(operation=5),
    "statistics are not a mapping": lambda j: j["manifests"][0]["inline"][0].update(stats={"9": 5}),
    "row count past int64": lambda j: j["manifests"][0]["inline"][0].update(num_rows=10**20),
}


@pytest.mark.parametrize("case", list(RESEALED), ids=list(RESEALED))
def test_a_resealed_record_with_a_malformed_field_is_corrupt_metadata(local_location, case):
    ds = lv.create_dataset(local_location, events(0, 3)).append(events(3, 1))
    store = _store(local_location)
    rel = log_path("main", 1)
    record = json.loads(store.read_bytes(rel))
    del record["snapshot_id"]
    RESEALED[case](record)
    record["snapshot_id"] = compute_snapshot_id(record)
    _rewrite(store, rel, record)
    with pytest.raises(lv.CorruptMetadata) as info:
        lv.open_dataset(local_location).to_arrow()
    assert info.value.path == store.full_path(rel)
    assert lv.open_dataset(local_location, version=0).to_arrow().num_rows == 3
    assert ds.version == 1


def test_a_record_with_an_author_that_is_not_text_stays_readable(local_location):
    # lakever before 0.3.0 stored author=5 as given; such a record is valid, and must read
    # in any process (the field check refused it once, making the dataset unreadable).
    lv.create_dataset(local_location, events(0, 3)).append(events(3, 1))
    store = _store(local_location)
    rel = log_path("main", 1)
    record = json.loads(store.read_bytes(rel))
    del record["snapshot_id"]
    record["author"], record["message"] = 5, None
    record["snapshot_id"] = compute_snapshot_id(record)
    _rewrite(store, rel, record)
    code = (
        "import lakever as lv; "
        f"ds = lv.open_dataset({local_location!r}); "
        "print(ds.to_arrow().num_rows, [c.author for c in ds.history()])"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "4", out
