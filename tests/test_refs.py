"""Branches, tags and merges through the public API."""

from __future__ import annotations

import pyarrow as pa
import pytest

import lakever as lv
from tests._data import events


def ids(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow()["id"].to_pylist()


@pytest.fixture
def ds(location) -> lv.Dataset:
    return lv.create_dataset(location, events(0, 3)).append(events(3, 2))


# ------------------------------------------------------------------------- names

GOOD = ["v1", "train-2026-11", "exp/dedup", "a.b", "release_1.0", "ünïcode", "x" * 255]
BAD = [
    "",
    "..",
    "a..b",
    "-x",
    "/x",
    "x/",
    "x.",
    "a//b",
    ".hidden",
    "a/.b",
    "x.lock",
    "a/b.lock",
    "@",
    "a@{b",
    "a b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "x" * 256,
    "../../etc/passwd",
    "é" * 128,
]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(ds, name):
    ds.tag(name)
    assert lv.open_dataset(ds.uri, version=name).version == 1
    b = ds.branch(name)
    assert b.branch_name == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_refused_before_storage(ds, name, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("storage touched")

    monkeypatch.setattr(type(ds._storage), "put_if_absent", boom)
    with pytest.raises(lv.InvalidRefName, match=r"invalid tag name .*\(git's ref-name rules\)"):
        ds.tag(name)
    with pytest.raises(lv.InvalidRefName, match=r"invalid branch name"):
        ds.branch(name)
    assert issubclass(lv.InvalidRefName, lv.InvalidArgument)


def test_names_never_escape_the_root(local_location):
    import os

    ds = lv.create_dataset(local_location, events(0, 1))
    for name in ["a/b/c", "ÄÖ", "x" * 255, "UPPER", "upper"]:
        ds.tag(name)
        ds.branch(name)
    for dirpath, _, files in os.walk(local_location):
        assert os.path.realpath(dirpath).startswith(os.path.realpath(local_location))
        for f in files:
            assert "/" not in f
    # case-insensitive filesystems: UPPER and upper are distinct refs
    assert {t.name for t in ds.tags()} >= {"UPPER", "upper"}


# ------------------------------------------------------------------------- tags


def test_tag_reopens_snapshot_forever(ds):
    ds.tag("train-v3", message="model v3 training set", author="ml")
    later = ds.append(events(5, 5))
    tagged = lv.open_dataset(ds.uri, version="train-v3")
    assert tagged.snapshot_id == ds.snapshot_id
    assert tagged.read_only
    assert ids(tagged) == [0, 1, 2, 3, 4]
    assert later.num_rows == 10
    (tag,) = ds.tags()
    assert (tag.name, tag.version, tag.author, tag.message) == (
        "train-v3",
        1,
        "ml",
        "model v3 training set",
    )


def test_tag_is_immutable(ds):
    ds.tag("v1")
    newer = ds.append(events(5, 1))
    with pytest.raises(lv.RefExists, match=r"tag 'v1' already exists .* delete it first"):
        newer.tag("v1")
    ds.delete_tag("v1")
    newer.tag("v1")
    assert lv.open_dataset(ds.uri, version="v1").version == 2
    with pytest.raises(lv.RefNotFound, match=r"tag 'nope' does not exist"):
        ds.delete_tag("nope")


def test_tag_deletion_is_recorded(ds):
    from lakever.refs import list_events

    ds.tag("v1")
    ds.delete_tag("v1", author="alice")
    events_ = list_events(ds._storage)
    assert [(e["action"], e["kind"], e["name"]) for e in events_] == [
        ("create", "tag", "v1"),
        ("delete", "tag", "v1"),
    ]
    assert events_[1]["deleted_by"] == "alice"


def test_detached_views_are_read_only(ds):
    ds.tag("t")
    for view in (
        lv.open_dataset(ds.uri, version="t"),
        lv.open_dataset(ds.uri, version=0),
        lv.open_dataset(ds.uri, version=ds.snapshot_id[:8]),
    ):
        with pytest.raises(lv.ReadOnlyDataset, match=r"branch from this snapshot with .branch"):
            view.append(events(9, 1))
        with pytest.raises(lv.ReadOnlyDataset):
            view.merge("main")
    # ... but a branch can be made from any of them
    b = lv.open_dataset(ds.uri, version=0).branch("from-v0")
    assert ids(b.append(events(50, 1))) == [0, 1, 2, 50]


# ------------------------------------------------------------------------- branches


def test_branch_isolates_commits(ds):
    exp = ds.branch("dedup")
    assert (exp.version, exp.branch_name, exp.snapshot_id) == (1, "dedup", ds.snapshot_id)
    exp = exp.append(events(100, 1), message="on branch")
    assert exp.version == 2
    assert lv.open_dataset(ds.uri).version == 1  # main untouched
    assert ids(lv.open_dataset(ds.uri, branch="dedup")) == [0, 1, 2, 3, 4, 100]
    # versions count per branch: 0..1 are shared with main
    assert lv.open_dataset(ds.uri, branch="dedup", version=1).snapshot_id == ds.snapshot_id
    assert lv.open_dataset(ds.uri, branch="dedup", version=2).snapshot_id == exp.snapshot_id
    with pytest.raises(lv.VersionNotFound, match=r"version 3 not found"):
        lv.open_dataset(ds.uri, branch="dedup", version=3)
    assert [c.version for c in exp.history()] == [2, 1, 0]
    branches = {b.name: b for b in ds.branches()}
    assert branches["main"].head_version == 1
    assert (branches["dedup"].head_version, branches["dedup"].base_version) == (2, 1)


def test_branch_of_branch(ds):
    a = ds.branch("a").append(events(10, 1))
    b = a.branch("b").append(events(20, 1))
    assert b.version == 3
    assert ids(b) == [0, 1, 2, 3, 4, 10, 20]
    assert [c.version for c in b.history()] == [3, 2, 1, 0]
    assert lv.open_dataset(ds.uri, branch="b", version=2).snapshot_id == a.snapshot_id


def test_commits_name_their_branch(ds):
    a = ds.branch("a")
    assert a.commit.branch_name == "main"  # the head a branch starts at is main's commit
    a = a.append(events(10, 1))
    b = a.branch("b").append(events(20, 1))
    assert [(c.version, c.branch_name) for c in b.history()] == [
        (3, "b"),
        (2, "a"),
        (1, "main"),
        (0, "main"),
    ]
    assert b.commit.branch_name == "b" and b.commit.branch_id != "b"  # the id is internal
    assert b.commit.to_dict()["branch_name"] == "b"
    lv.open_dataset(ds.uri).delete_branch("b")
    old = lv.open_dataset(ds.uri, version=b.snapshot_id)
    assert old.commit.branch_name == "b"  # the name outlives the branch
    assert [c.branch_name for c in old.history(limit=2)] == ["b", "a"]


def test_branch_exists_and_delete(ds):
    ds.branch("x")
    with pytest.raises(lv.RefExists, match=r"branch 'x' already exists"):
        ds.branch("x")
    with pytest.raises(lv.RefExists):
        ds.branch("main")
    x = lv.open_dataset(ds.uri, branch="x").append(events(7, 1))
    ds.delete_branch("x")
    with pytest.raises(
        lv.VersionNotFound, match=r"branch 'x' not found .* branches are \['main'\]"
    ):
        lv.open_dataset(ds.uri, branch="x")
    with pytest.raises(lv.ReadOnlyDataset, match=r"branch 'x' of .* was deleted"):
        x.append(events(8, 1))
    # its commits stay readable by pin and snapshot id
    assert ids(lv.open_dataset(x.pin())) == [0, 1, 2, 3, 4, 7]
    assert lv.open_dataset(ds.uri, version=x.snapshot_id).version == 2
    # the name can be reused: a new, independent branch
    again = ds.branch("x")
    assert again.version == 1
    with pytest.raises(lv.InvalidArgument, match=r"'main' cannot be deleted"):
        ds.delete_branch("main")
    with pytest.raises(lv.RefNotFound):
        ds.delete_branch("nope")


def test_version_string_resolution(ds):
    ds.tag("same")
    ds.branch("same")
    with pytest.raises(
        lv.InvalidArgument, match=r"'same' is ambiguous: it names a tag and a branch"
    ):
        lv.open_dataset(ds.uri, version="same")
    assert lv.open_dataset(ds.uri, version="tag:same").read_only
    assert not lv.open_dataset(ds.uri, branch="same").read_only
    with pytest.raises(lv.VersionNotFound, match=r"no tag, branch or snapshot id 'ghost'"):
        lv.open_dataset(ds.uri, version="ghost")
    with pytest.raises(lv.InvalidArgument, match=r"do not combine a string version with branch="):
        lv.open_dataset(ds.uri, version="same", branch="same")


def test_snapshot_id_prefix(ds):
    full = ds.snapshot_id
    assert lv.open_dataset(ds.uri, version=full).version == 1
    assert lv.open_dataset(ds.uri, version=full[:8]).version == 1
    with pytest.raises(lv.VersionNotFound):
        lv.open_dataset(ds.uri, version="0123abcd")


def test_snapshot_found_without_index(local_location):
    import shutil
    from pathlib import Path

    ds = lv.create_dataset(local_location, events(0, 1)).append(events(1, 1))
    shutil.rmtree(Path(local_location) / "_lakever" / "snapshots")
    assert lv.open_dataset(local_location, version=ds.snapshot_id[:12]).version == 1


def test_time_travel_on_a_branch(ds):
    exp = ds.branch("e").append(events(9, 1))
    when = exp.timestamp
    ds.append(events(50, 1))
    assert lv.open_dataset(ds.uri, branch="e", version=when).snapshot_id == exp.snapshot_id
    assert lv.open_dataset(ds.uri, version=when).version == 1  # main had no commit yet


# ------------------------------------------------------------------------- merges


def test_fast_forward(ds):
    exp = ds.branch("dedup").append(events(100, 2))
    merged = lv.open_dataset(ds.uri).merge("dedup", message="promote")
    assert merged.commit.parameters["kind"] == "fast-forward"
    assert merged.version == 2 and merged.branch_name == "main"
    assert ids(merged) == ids(exp)
    assert merged.commit.merge_parent_id == exp.snapshot_id
    assert (merged.commit.rows_added, merged.commit.rows_removed) == (2, 0)


def test_three_way_keeps_both_sides(ds):
    lv.open_dataset(ds.uri).branch("b").append(events(100, 2))
    main = lv.open_dataset(ds.uri).append(events(200, 1))
    merged = main.merge("b")
    assert merged.commit.parameters["kind"] == "three-way"
    assert sorted(ids(merged)) == [0, 1, 2, 3, 4, 100, 101, 200]
    assert ids(merged)[:6] == [0, 1, 2, 3, 4, 200]  # ours first, then theirs' additions
    # merging again is a no-op; merging after more branch commits takes only the new ones
    assert merged.merge("b").version == merged.version
    lv.open_dataset(ds.uri, branch="b").append(events(300, 1))
    again = lv.open_dataset(ds.uri).merge("b")
    assert sorted(ids(again)) == [0, 1, 2, 3, 4, 100, 101, 200, 300]


def test_three_way_applies_removals_from_one_side(ds):
    lv.open_dataset(ds.uri).branch("clean").overwrite(events(0, 2), message="dedup")
    main = lv.open_dataset(ds.uri).append(events(500, 1))
    merged = main.merge("clean")
    # the branch replaced the base rows; main's append survives
    assert sorted(ids(merged)) == [0, 1, 500]
    assert merged.commit.rows_removed == 5


def test_conflict_raises_and_changes_nothing(ds):
    lv.open_dataset(ds.uri).branch("b").overwrite(events(10, 1))
    main = lv.open_dataset(ds.uri).overwrite(events(20, 1))
    with pytest.raises(lv.MergeConflict) as ei:
        main.merge("b")
    msg = str(ei.value)
    assert "merging 'b' (version 2) into version 2 conflicts" in msg
    assert "ours removed, theirs removed" in msg
    assert "strategy='ours'" in msg
    assert {c["kind"] for c in ei.value.conflicts} == {"fragment"}
    assert len(ei.value.conflicts) == 2  # the two base fragments
    assert lv.open_dataset(ds.uri).version == 2


@pytest.mark.parametrize(("strategy", "expected"), [("ours", [20]), ("theirs", [10])])
def test_conflict_resolved_by_strategy(ds, strategy, expected):
    lv.open_dataset(ds.uri).branch("b").overwrite(events(10, 1))
    main = lv.open_dataset(ds.uri).overwrite(events(20, 1))
    merged = main.merge("b", strategy=strategy)
    assert ids(merged) == expected
    assert merged.commit.parameters["kind"] == strategy
    assert merged.commit.merge_parent_id is not None


def test_merge_a_tag_and_bad_sources(ds):
    other = ds.branch("b").append(events(40, 1))
    other.tag("good")
    merged = lv.open_dataset(ds.uri).merge("good")
    assert ids(merged)[-1] == 40
    with pytest.raises(lv.RefNotFound, match=r"no tag, branch or snapshot id 'nope'"):
        merged.merge("nope")
    with pytest.raises(lv.InvalidArgument, match=r"strategy must be"):
        merged.merge("good", strategy="mine")  # type: ignore[arg-type]


def test_merge_into_a_branch(ds):
    feature = ds.branch("feature")
    lv.open_dataset(ds.uri).append(events(60, 1))
    updated = feature.merge("main", message="sync with main")
    assert updated.branch_name == "feature"
    assert ids(updated)[-1] == 60
    assert lv.open_dataset(ds.uri, branch="feature").version == updated.version


def test_history_shows_merge_parents(ds):
    lv.open_dataset(ds.uri).branch("b").append(events(100, 1))
    main = lv.open_dataset(ds.uri).append(events(200, 1)).merge("b")
    (last, *_rest) = main.history()
    assert last.operation == "merge" and last.merge_parent_id is not None
    assert last.parent_id == main.history()[1].snapshot_id


def test_schema_conflict(location):
    from lakever.commit import Change, SetSchema
    from lakever.manifest_list import ManifestFiles
    from lakever.schema import assign_field_ids, schema_to_json

    ds = lv.create_dataset(location, events(0, 1))
    b = ds.branch("b")

    def evolve(target: lv.Dataset, column: str) -> None:
        # stands in for schema evolution: commit a schema with one more column
        schema, last = assign_field_ids(events(0, 0).schema.append(pa.field(column, pa.int64())))
        change = Change(
            operation="evolve",
            author="t",
            message="",
            properties={},
            updates=(SetSchema(schema_to_json(schema), last),),
        )
        target._log.commit(target._snap, change, io=ManifestFiles(target._storage))

    evolve(lv.open_dataset(location), "x")
    evolve(lv.open_dataset(location, branch="b"), "y")
    with pytest.raises(lv.MergeConflict, match=r"schema column 'x' \(field id 4\)"):
        lv.open_dataset(location).merge("b")
    del b


# Ref files carry no hash: a damaged field must be CorruptMetadata naming the file (a
# review found raw KeyError / TypeError / RecursionError, and a branch reading main's rows).
def _ref_file(root, sub: str) -> str:
    import glob

    (path,) = glob.glob(f"{root}/_lakever/{sub}")
    return path


def _edit(path: str, change) -> None:
    import json

    with open(path) as f:
        j = json.load(f)
    change(j)
    with open(path, "w") as f:
        json.dump(j, f)


def _own_id(j) -> str:
    return j["id"]


REF_DAMAGE = {
    "name file without id": ("refs/branches/*.json", lambda j: j.pop("id")),
    "name file pointing at main": ("refs/branches/*.json", lambda j: j.update(id="main")),
    "record id is main": ("log/*/BRANCH.json", lambda j: j.update(id="main")),
    "record id is a number": ("log/*/BRANCH.json", lambda j: j.update(id=5)),
    "record base branch is a number": ("log/*/BRANCH.json", lambda j: j["base"].update(branch=5)),
    "record base is itself": ("log/*/BRANCH.json", lambda j: j["base"].update(branch=_own_id(j))),
    "record base version is text": ("log/*/BRANCH.json", lambda j: j["base"].update(version="a")),
    "tag branch is a number": ("refs/tags/*.json", lambda j: j.update(branch=5)),
    "tag name is a number": ("refs/tags/*.json", lambda j: j.update(name=5)),
    "tag snapshot is not an id": ("refs/tags/*.json", lambda j: j.update(snapshot_id="../x")),
    "tag version is negative": ("refs/tags/*.json", lambda j: j.update(version=-1)),
}


@pytest.mark.parametrize("case", list(REF_DAMAGE), ids=list(REF_DAMAGE))
def test_a_damaged_ref_file_is_corrupt_metadata_naming_it(local_location, case):
    where, change = REF_DAMAGE[case]
    main = lv.create_dataset(local_location, events(0, 3))
    main.tag("t1")
    main.branch("dev").append(events(3, 1))
    path = _ref_file(local_location, where)
    _edit(path, change)
    if where.startswith("refs/tags"):
        reads = [lambda: lv.open_dataset(local_location, version="t1"), main.tags]
    else:
        reads = [lambda: lv.open_dataset(local_location, branch="dev").to_arrow(), main.branches]
    for read in reads:
        with pytest.raises(lv.CorruptMetadata) as info:
            read()
        assert info.value.path == path, (case, info.value)
    # verify reports it (never raises on damage); main itself still reads.
    report = main.verify(all_refs=True)
    assert any(p.path == path for p in report.problems), report
    assert lv.open_dataset(local_location).to_arrow().num_rows == 3
