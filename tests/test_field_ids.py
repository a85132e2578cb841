"""Field ids are never reused, across branches too (issue 9 §2).

Every id a commit assigns after the creation is claimed dataset-wide first
(`lakever._fieldids`); merges refuse what datasets written before that can hold:
one field id given to a different column on each side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pyarrow as pa
import pytest

import lakever as lv
from lakever import _writer


def rows(ds: lv.Dataset) -> list[dict[str, object]]:
    return ds.to_arrow().to_pylist()


def all_ids(ds: lv.Dataset) -> dict[int, str]:
    """Every field id of the snapshot's schema (nested ones too) -> its column path."""
    out: dict[int, str] = {}

    def visit(f: dict, prefix: str) -> None:
        out[f["id"]] = prefix + f["name"]
        t = f["type"]
        if isinstance(t, dict):
            for child in (*t.get("fields", ()), t.get("element"), t.get("key"), t.get("value")):
                if child is not None:
                    visit(child, f"{prefix}{f['name']}.")

    for f in ds._snap.schema["fields"]:
        visit(f, "")
    return out


@pytest.fixture
def per_branch_ids(monkeypatch):
    """Hand out field ids as lakever did before claims: the base's last_field_id + 1.

    Stands in for a dataset written by an older lakever.
    """
    monkeypatch.setattr(
        _writer, "claim_field_ids", lambda storage, count, *, floor, **_: floor + 1, raising=False
    )
    return monkeypatch


def _x_then_y(location: str) -> tuple[lv.Dataset, lv.Dataset]:
    """Main adds x, writes a row, drops x; branch b adds y and writes a row."""
    main = lv.create_dataset(location, pa.table({"id": [1, 2]}))
    branch = main.branch("b")
    main = main.evolve(add={"x": pa.int64()})
    main = main.append(pa.table({"id": [3], "x": [333]}))
    main = main.evolve(drop=["x"])
    branch = branch.evolve(add={"y": pa.int64()})
    branch = branch.append(pa.table({"id": [4], "y": [44]}))
    return main, branch


def test_dropped_column_never_reappears_under_a_branch_column(location):
    _, branch = _x_then_y(location)
    x_id = lv.open_dataset(location, version=2).field_ids["x"]
    assert branch.field_ids["y"] != x_id
    merged = lv.open_dataset(location).merge("b")
    assert merged.commit.parameters["kind"] == "three-way"
    assert rows(merged) == [
        {"id": 1, "y": None},
        {"id": 2, "y": None},
        {"id": 3, "y": None},  # main's x value (333) must not show as y
        {"id": 4, "y": 44},
    ]
    assert merged.to_arrow(filter="y IS NOT NULL")["id"].to_pylist() == [4]
    assert merged.sql("SELECT sum(y) FROM self").fetchall() == [(44,)]
    # old snapshots still show x exactly as written
    assert rows(lv.open_dataset(location, version=2))[-1] == {"id": 3, "x": 333}


def test_every_branch_gets_its_own_field_ids(location):
    ds = lv.create_dataset(location, pa.table({"id": [0]}))
    owner: dict[int, tuple[str, str]] = {fid: ("main", col) for fid, col in all_ids(ds).items()}
    for b in range(3):
        br = ds.branch(f"b{b}")
        br = br.evolve(add={f"e{b}": pa.int64()})
        br = br.append(pa.table({"id": [1], f"a{b}": [1.5]}), schema_mode="add")  # implicit add
        nested = pa.table({"id": [2], f"s{b}": pa.array([{"p": 1}], pa.struct([("p", pa.int8())]))})
        br = br.append(nested, schema_mode="add")
        wider = pa.struct([("p", pa.int8()), ("q", pa.string())])
        br = br.append(
            pa.table({"id": [3], f"s{b}": pa.array([{"p": 2, "q": "z"}], wider)}),
            schema_mode="merge",
        )
        for fid, col in all_ids(br).items():
            assert owner.setdefault(fid, (f"b{b}", col)) in {(f"b{b}", col), ("main", col)}
    ds = ds.evolve(add={"m": pa.int64()})
    for fid, col in all_ids(ds).items():
        assert owner.setdefault(fid, ("main", col)) == ("main", col)
    assert len(owner) == 1 + 3 * 5 + 1


def test_concurrent_evolutions_on_two_branches_in_threads(location):
    ds = lv.create_dataset(location, pa.table({"id": [0]}))
    branches = [ds.branch(f"t{t}") for t in range(2)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            br = branches[t]
            for i in range(8):
                br = br.evolve(add={f"t{t}_{i}": pa.int64()})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    ids = [set(lv.open_dataset(location, branch=f"t{t}").field_ids.values()) - {1} for t in (0, 1)]
    assert len(ids[0]) == len(ids[1]) == 8
    assert not ids[0] & ids[1]


# ------------------------------------------------------------- datasets written before


def test_merge_refuses_a_field_id_both_sides_assigned(location, per_branch_ids):
    _, branch = _x_then_y(location)
    assert branch.field_ids["y"] == lv.open_dataset(location, version=2).field_ids["x"]
    head = lv.open_dataset(location)
    with pytest.raises(lv.MergeConflict) as ei:
        head.merge("b")
    (conflict,) = ei.value.conflicts
    fid = branch.field_ids["y"]
    assert conflict == {
        "kind": "field id",
        "item": str(fid),
        "ours": "assigned it to column 'x' in version 1",
        "theirs": "assigned it to column 'y' in version 1",
    }
    msg = str(ei.value)
    assert f"field id {fid}: ours assigned it to column 'x'" in msg
    assert "theirs assigned it to column 'y'" in msg
    assert "strategy='ours'" in msg
    assert lv.open_dataset(location).version == head.version  # nothing committed
    # a strategy takes one side's snapshot as it is: nothing is misread
    assert rows(head.merge("b", strategy="ours")) == [{"id": 1}, {"id": 2}, {"id": 3}]
    theirs = lv.open_dataset(location, branch="b").merge("main", strategy="theirs")
    assert rows(theirs) == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_merge_refuses_the_collision_in_either_direction(location, per_branch_ids):
    """The side that dropped its column is the source: its rows must not show as ours' column."""
    _x_then_y(location)
    with pytest.raises(lv.MergeConflict, match=r"field id 2: ours assigned it to column 'y'"):
        lv.open_dataset(location, branch="b").merge("main")


def test_a_column_both_sides_merged_from_a_third_branch_is_no_collision(location):
    """Criss-cross: the newest common ancestor (main's append) predates neither side's copy
    of column z, which both got from the same commit on branch c."""
    ds = lv.create_dataset(location, pa.table({"id": [1]}))
    ds.branch("b")
    third = ds.branch("c").evolve(add={"z": pa.int64()}).append(pa.table({"id": [2], "z": [22]}))
    lv.open_dataset(location).append(pa.table({"id": [3]}))
    lv.open_dataset(location, branch="b").merge("main")
    b = lv.open_dataset(location, branch="b").merge("c").append(pa.table({"id": [4], "z": [44]}))
    main = lv.open_dataset(location).merge("c").append(pa.table({"id": [5], "z": [55]}))
    merged = main.merge("b")
    assert merged.commit.parameters["kind"] == "three-way"
    assert merged.field_ids["z"] == third.field_ids["z"] == b.field_ids["z"]
    got = {r["id"]: r["z"] for r in rows(merged)}
    assert got == {1: None, 2: 22, 3: None, 4: 44, 5: 55}


def test_first_claim_starts_above_every_branch_of_an_older_dataset(location, per_branch_ids):
    ds = lv.create_dataset(location, pa.table({"id": [1]}))
    b = ds.branch("b")
    ds.evolve(add={"p": pa.int64(), "q": pa.int64(), "r": pa.int64()})  # ids 2, 3, 4
    b = b.evolve(add={"s": pa.int64()})  # id 2 again, as before claims existed
    per_branch_ids.undo()
    b = b.evolve(add={"t": pa.int64()})
    assert b.field_ids["t"] == 5  # above main's 4, not b's own 2 + 1
    main = lv.open_dataset(location).evolve(add={"u": pa.int64()})
    assert main.field_ids["u"] == 6


# --------------------------------------------------------------------- claims on disk


def _claims(root: str) -> list[str]:
    return sorted(os.listdir(os.path.join(root, "_lakever", "field-ids")))


def test_claims_are_found_without_the_hint_and_damage_is_named(local_location):
    ds = lv.create_dataset(local_location, pa.table({"id": [1]}))
    for i in range(5):
        ds = ds.evolve(add={f"c{i}": pa.int64()})
    names = _claims(local_location)
    assert names == [f"{i:020d}.json" for i in range(5)] + ["LATEST"]
    claim_dir = os.path.join(local_location, "_lakever", "field-ids")
    with open(os.path.join(claim_dir, names[4])) as f:
        claim = json.load(f)
    assert (claim["first"], claim["last"], claim["branch"]) == (6, 6, "main")
    os.remove(os.path.join(claim_dir, "LATEST"))
    ds = ds.evolve(add={"c5": pa.int64()})
    assert ds.field_ids["c5"] == 7
    with open(os.path.join(claim_dir, "LATEST"), "w") as f:
        f.write("garbage")
    ds = ds.evolve(add={"c6": pa.int64()})
    assert ds.field_ids["c6"] == 8
    newest = os.path.join(claim_dir, f"{6:020d}.json")
    with open(newest, "w") as f:
        f.write('{"first": 8')
    with pytest.raises(lv.CorruptMetadata, match=r"field id claim .* is truncated") as ei:
        ds.evolve(add={"c7": pa.int64()})
    assert ei.value.path.endswith(f"{6:020d}.json")


def test_field_ids_stay_within_the_parquet_limit(local_location):
    ds = lv.create_dataset(local_location, pa.table({"id": [1]}))
    claim_dir = os.path.join(local_location, "_lakever", "field-ids")
    os.makedirs(claim_dir)
    with open(os.path.join(claim_dir, f"{0:020d}.json"), "w") as f:
        json.dump({"first": 2, "last": 2**31 - 2, "branch": "main"}, f)
    ds = ds.evolve(add={"last": pa.int64()})
    assert ds.field_ids["last"] == 2**31 - 1
    with pytest.raises(lv.SchemaEvolutionError, match=r"cannot add 'more'.*32-bit"):
        ds.evolve(add={"more": pa.int64()})


# ------------------------------------------------------------------ several processes


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_concurrent_evolutions_on_two_branches_in_processes(local_location):
    from _workers import WORKERS_PY

    lv.create_dataset(local_location, pa.table({"id": pa.array([0], pa.int64())}))
    for w in range(2):
        lv.open_dataset(local_location).branch(f"p{w}")
    procs = [
        subprocess.Popen(
            [sys.executable, WORKERS_PY, "evolve", local_location, f"p{w}", str(w), "12"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and "ready" in p.stdout.readline()
        for p in procs:  # both start at once: the claims race
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            reports.append([json.loads(line) for line in out.splitlines()])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    ids = [r["field_id"] for lines in reports for r in lines]
    assert len(ids) == 24 and len(set(ids)) == 24  # no id handed out twice
    for w, lines in enumerate(reports):
        ds = lv.open_dataset(local_location, branch=f"p{w}")
        assert {r["column"]: r["field_id"] for r in lines} == {
            c: fid for c, fid in ds.field_ids.items() if c != "id"
        }
        for row in rows(ds)[1:]:
            (written,) = [r for r in lines if r["row"] == row["id"]]
            assert {c: v for c, v in row.items() if v is not None} == {
                "id": row["id"],
                written["column"]: row["id"] * 10,
            }
    merged = lv.open_dataset(local_location).merge("p1")
    assert rows(merged) == rows(lv.open_dataset(local_location, branch="p1"))
