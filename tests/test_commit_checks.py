"""Every commit path enforces the contract and the primary key (issue 9 §3).

Every operation that makes rows reachable on a branch checks them against the
contract and the key in force before anything is committed. A merge does it
for the rows it brings onto the target, against the contract and key of the
result, with key uniqueness across the whole result. The schema, contract,
partitioning and sort of a three-way merge come from the side that changed them;
both sides changing one differently is a conflict.
"""

from __future__ import annotations

import pandera.polars as pap
import polars as pl
import pyarrow as pa
import pytest

import lakever as lv
from lakever.commit import Change, SetSortOrder
from lakever.manifest_list import ManifestFiles


def orders(ids: list[int], amounts: list[float]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "status": pa.array(["new"] * len(ids), pa.string()),
        }
    )


CONTRACT = pap.DataFrameSchema(
    {
        "id": pap.Column(pl.Int64, nullable=False),
        "amount": pap.Column(pl.Float64, pap.Check.in_range(0, 1000)),
    }
)
STRICTER = pap.DataFrameSchema(
    {
        "id": pap.Column(pl.Int64, nullable=False),
        "amount": pap.Column(pl.Float64, pap.Check.in_range(0, 100)),
    }
)


def ids(ds: lv.Dataset) -> list[int]:
    return ds.to_arrow()["id"].to_pylist()


# ------------------------------------------------------------------ every commit path


def _branch_commits(ds: lv.Dataset, rows: pa.Table, *, main_too: bool) -> lv.Dataset:
    """Commit ``rows`` on a new branch (unchecked), and a harmless row on main if asked."""
    ds.branch("b").append(rows, validate="skip")
    main = lv.open_dataset(ds.uri)
    return main.append(orders([50], [50.0])) if main_too else main


#: operation -> (commit a row breaking the contract, commit a repeated key); None: no way to.
PATHS = {
    "append": (
        lambda ds: ds.append(orders([3], [5000.0])),
        lambda ds: ds.append(orders([1], [5.0])),
    ),
    "overwrite": (
        lambda ds: ds.overwrite(orders([3], [5000.0])),
        lambda ds: ds.overwrite(orders([7, 7], [1.0, 2.0])),
    ),
    "write_dataset": (
        lambda ds: lv.write_dataset(ds.uri, orders([3], [5000.0]), mode="append"),
        lambda ds: lv.write_dataset(ds.uri, orders([2], [5.0]), mode="append"),
    ),
    "update": (
        lambda ds: ds.update(set={"amount": "5000.0"}, where="id = 1"),
        lambda ds: ds.update(set={"id": "2"}, where="id = 1"),
    ),
    "upsert": (
        lambda ds: ds.upsert(orders([3], [5000.0])),
        lambda ds: ds.upsert(orders([3, 3], [1.0, 2.0])),
    ),
    "merge (three-way)": (
        lambda ds: _branch_commits(ds, orders([3], [5000.0]), main_too=True).merge("b"),
        lambda ds: _branch_commits(ds, orders([50], [5.0]), main_too=True).merge("b"),
    ),
    "merge (fast-forward)": (
        lambda ds: _branch_commits(ds, orders([3], [5000.0]), main_too=False).merge("b"),
        None,  # a branch cannot commit a repeated key, and main did not move
    ),
}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (p, k)
        for p, c in PATHS.items()
        for k, f in zip(("contract", "key"), c, strict=True)
        if f is not None
    ],
)
def test_every_commit_path_enforces_the_contract_and_the_key(location, path, kind):
    ds = lv.create_dataset(
        location, orders([1, 2], [10.0, 20.0]), contract=CONTRACT, primary_key=["id"]
    )
    commit = PATHS[path][0 if kind == "contract" else 1]
    assert commit is not None
    error = lv.ContractViolation if kind == "contract" else lv.PrimaryKeyViolation
    before = lv.open_dataset(location, branch="main")
    with pytest.raises(error):
        commit(ds)
    after = lv.open_dataset(location)
    assert after.version <= before.version + 1  # at most the harmless row on main
    assert after.validate() == after.num_rows
    assert len(set(ids(after))) == after.num_rows


# --------------------------------------------------------------------------- contracts


def test_rows_from_a_branch_are_checked_against_the_targets_later_contract(location):
    ds = lv.create_dataset(location, orders([1], [10.0]))
    ds.branch("b").append(orders([2], [5000.0]))  # no contract on the branch yet: accepted
    main = lv.open_dataset(location).set_contract(CONTRACT).append(orders([3], [20.0]))
    with pytest.raises(lv.ContractViolation) as ei:
        main.merge("b")
    msg = str(ei.value)
    assert msg.startswith("the merge of 'b' violates the dataset's contract")
    assert "The failing rows come from 'b'" in msg
    assert "5000.0" in msg
    assert ei.value.failure_cases.to_pylist()[0]["column"] == "amount"
    assert lv.open_dataset(location).version == main.version  # nothing committed
    assert main.validate() == 2  # and validate has nothing to blame


def test_fast_forward_checks_rows_the_branch_skipped(location):
    ds = lv.create_dataset(location, orders([1], [10.0]), contract=CONTRACT)
    ds.branch("b").append(orders([2], [5000.0]), validate="skip")
    with pytest.raises(lv.ContractViolation, match=r"the merge of 'b' violates"):
        lv.open_dataset(location).merge("b")
    assert lv.open_dataset(location).version == 0


def test_strategy_theirs_checks_the_rows_it_takes(location):
    ds = lv.create_dataset(location, orders([1], [10.0]), contract=CONTRACT)
    ds.branch("b").overwrite(orders([2], [5000.0]), validate="skip")
    main = lv.open_dataset(location).overwrite(orders([3], [30.0]))
    with pytest.raises(lv.ContractViolation, match=r"the merge of 'b' violates"):
        main.merge("b", strategy="theirs")
    assert ids(main.merge("b", strategy="ours")) == [3]


def test_rows_of_fragments_whose_deletion_vector_changes_are_checked(location):
    ds = lv.create_dataset(location, orders([1, 2, 3], [10.0, 2000.0, 30.0]))
    ds.branch("b").delete(where="id = 1")
    main = lv.open_dataset(location).set_contract(CONTRACT).append(orders([4], [40.0]))
    with pytest.raises(lv.ContractViolation, match=r"the merge of 'b' violates") as ei:
        main.merge("b")
    assert ei.value.failure_cases.to_pylist()[0]["failure_case"] == "2000.0"


def test_a_clean_merge_under_a_contract_commits(location):
    ds = lv.create_dataset(location, orders([1], [10.0]))
    ds.branch("b").append(orders([2], [50.0]))
    main = lv.open_dataset(location).set_contract(CONTRACT).append(orders([3], [20.0]))
    merged = main.merge("b")
    assert ids(merged) == [1, 3, 2]
    assert merged.contract.to_json() == CONTRACT.to_json()


# -------------------------------------------------------------------------- primary key


def test_primary_key_is_unique_across_the_result(location):
    ds = lv.create_dataset(location, orders([1, 2], [1.0, 2.0]), primary_key=["id"])
    ds.branch("b").append(orders([10], [3.0]))
    main = lv.open_dataset(location).append(orders([10], [4.0]))
    with pytest.raises(lv.PrimaryKeyViolation, match=r"the rows the merge of 'b' adds") as ei:
        main.merge("b")
    assert ei.value.examples == [{"id": 10}]
    assert lv.open_dataset(location).version == main.version
    # once the target deleted its row with that key, the branch's may come in
    lv.open_dataset(location, branch="b").append(orders([11], [5.0]))
    main = main.delete(where="id = 10")
    assert sorted(ids(main.merge("b"))) == [1, 2, 10, 11]


# ----------------------------------------------------------------- which side's settings


def _set_sort(ds: lv.Dataset, column: str) -> lv.Dataset:
    """Commit a new default sort (no public API changes it after the creation)."""
    change = Change(
        operation="set_sort",
        author="t",
        message="",
        properties={},
        updates=(SetSortOrder(({"field_id": ds.field_ids[column], "descending": False},)),),
    )
    ds._log.commit(ds._snap, change, io=ManifestFiles(ds._storage))
    return lv.open_dataset(ds.uri, branch=ds.branch_name)


#: setting -> (change it to variant 1 or 2, read it back)
SETTINGS = {
    "contract": (
        lambda ds, k: ds.set_contract(CONTRACT if k == 1 else STRICTER),
        lambda ds: None if ds.contract is None else ds.contract.to_json(),
        {1: CONTRACT.to_json(), 2: STRICTER.to_json(), 0: None},
    ),
    "partitioning": (
        lambda ds, k: ds.set_partitioning(["id" if k == 1 else "status"]),
        lambda ds: [t.column for t in ds.partitioning],
        {1: ["id"], 2: ["status"], 0: []},
    ),
    "sort_by": (
        lambda ds, k: _set_sort(ds, "id" if k == 1 else "amount"),
        lambda ds: ds.sort_by,
        {1: ["id"], 2: ["amount"], 0: []},
    ),
}
#: who changed the setting -> (ours' variant, theirs' variant, expected result variant or None
#: for a conflict); 0 is "unchanged".
WHO = {
    "ours": (1, 0, 1),
    "theirs": (0, 2, 2),
    "both, alike": (1, 1, 1),
    "both, differently": (1, 2, None),
}


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_three_way_takes_each_setting_from_the_side_that_changed_it(location, setting, who):
    change, read, variants = SETTINGS[setting]
    ours_k, theirs_k, expected = WHO[who]
    ds = lv.create_dataset(location, orders([1], [1.0]))
    b = ds.branch("b").append(orders([2], [2.0]))
    if theirs_k:
        change(b, theirs_k)
    main = lv.open_dataset(location).append(orders([3], [3.0]))
    if ours_k:
        main = change(main, ours_k)
    if expected is None:
        with pytest.raises(lv.MergeConflict) as ei:
            main.merge("b")
        assert [(c["kind"], c["item"]) for c in ei.value.conflicts] == [("setting", setting)]
        assert f"setting {setting}: ours changed to" in str(ei.value)
        for strategy, k in (("ours", ours_k), ("theirs", theirs_k)):
            target = main.branch(f"try-{strategy}")  # a copy of main for each strategy
            assert read(target.merge("b", strategy=strategy)) == variants[k]
        return
    merged = main.merge("b")
    assert merged.commit.parameters["kind"] == "three-way"
    assert read(merged) == variants[expected]
    assert sorted(ids(merged)) == [1, 2, 3]


@pytest.mark.parametrize("sorted_on", ["ours", "theirs", "both"])
@pytest.mark.parametrize("strategy", ["ours", "theirs"])
def test_a_strategy_takes_every_setting_from_its_side(location, strategy, sorted_on):
    ds = lv.create_dataset(location, orders([1], [1.0]))
    b = ds.branch("b").overwrite(orders([2], [2.0])).set_partitioning(["status"])
    main = lv.open_dataset(location).overwrite(orders([3], [3.0])).set_contract(CONTRACT)
    if sorted_on != "ours":
        b = _set_sort(b, "amount")
    if sorted_on != "theirs":
        main = _set_sort(main, "id")
    merged = main.merge("b", strategy=strategy)
    side = main if strategy == "ours" else b
    assert merged._snap.schema == side._snap.schema
    assert merged._snap.contract == side._snap.contract
    assert merged.partitioning == side.partitioning
    assert merged.sort_by == side.sort_by
    assert ids(merged) == ids(side)


@pytest.mark.parametrize("who", ["ours", "theirs"])
def test_three_way_takes_the_schema_from_the_side_that_changed_it(location, who):
    ds = lv.create_dataset(location, orders([1], [1.0]))
    b = ds.branch("b").append(orders([2], [2.0]))
    main = lv.open_dataset(location).append(orders([3], [3.0]))
    if who == "ours":
        main = main.evolve(add={"note": pa.string()}, rename={"amount": "total"})
    else:
        b = b.evolve(add={"note": pa.string()}, rename={"amount": "total"})
    merged = main.merge("b")
    assert merged.schema.names == ["id", "total", "status", "note"]
    assert merged.to_arrow(["id", "total", "note"]).to_pylist() == [
        {"id": 1, "total": 1.0, "note": None},
        {"id": 3, "total": 3.0, "note": None},
        {"id": 2, "total": 2.0, "note": None},
    ]


def test_schema_changed_on_both_sides_is_a_conflict(location):
    ds = lv.create_dataset(location, orders([1], [1.0]))
    ds.branch("b").evolve(add={"note": pa.string()})
    main = lv.open_dataset(location).evolve(add={"note": pa.string()})
    with pytest.raises(lv.MergeConflict) as ei:
        main.merge("b")
    assert {c["kind"] for c in ei.value.conflicts} == {"schema"}


@pytest.mark.parametrize("contract_side", ["ours", "theirs"])
def test_contract_from_one_side_must_accept_the_schema_from_the_other(location, contract_side):
    ds = lv.create_dataset(location, orders([1], [1.0]))
    b = ds.branch("b")
    main = lv.open_dataset(location)
    if contract_side == "ours":
        main = main.set_contract(CONTRACT)
        b.evolve(rename={"amount": "total"})
    else:
        b.set_contract(CONTRACT)
        main = main.evolve(rename={"amount": "total"})
    with pytest.raises(lv.MergeConflict, match=r"rejects the merged schema") as ei:
        main.merge("b")
    (conflict,) = ei.value.conflicts
    assert (conflict["kind"], conflict["item"]) == ("setting", "contract")
    assert "columns ['amount']" in conflict[contract_side]
    assert conflict["theirs" if contract_side == "ours" else "ours"] == "changed the schema"


def test_a_setting_removed_on_one_side_and_changed_on_the_other_names_both(location):
    ds = lv.create_dataset(location, orders([1], [1.0]), partition_by=["id"])
    ds.branch("b").append(orders([2], [2.0])).set_partitioning(["status"])
    main = lv.open_dataset(location).set_partitioning([])
    with pytest.raises(lv.MergeConflict) as ei:
        main.merge("b")
    assert ei.value.conflicts == [
        {
            "kind": "setting",
            "item": "partitioning",
            "ours": "changed to none",
            "theirs": "changed to [status]",
        }
    ]
