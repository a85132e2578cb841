"""Merge planning (lakever.merge) and what a merge commit takes from each side."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa
import pytest

import lakever as lv
from lakever.format import DeletionVector, FragmentEntry, Snapshot, Summary
from lakever.merge import merge_base, plan_merge
from tests._data import events

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snap(name: str, minute: int, schema: dict | None = None, last_field_id: int = 2) -> Snapshot:
    return Snapshot(
        snapshot_id=name,
        parent_id=None,
        branch_id="main",
        version=minute,
        timestamp=T0 + timedelta(minutes=minute),
        operation="append",
        parameters={},
        author="a",
        message="",
        properties={},
        schema=schema if schema is not None else SCHEMA,
        last_field_id=last_field_id,
        manifests=(),
        summary=Summary(),
    )


def field(fid: int, name: str, type_: str = "int64") -> dict:
    return {"id": fid, "name": name, "type": type_, "nullable": True}


SCHEMA = {"fields": [field(1, "id"), field(2, "x")]}


def frag(path: str, dv: str | None = None) -> FragmentEntry:
    deletion = None if dv is None else DeletionVector(f"_lakever/deletions/{dv}", "sha256:0", 1)
    return FragmentEntry(f"data/{path}", 10, 1, "sha256:0", {}, "0" * 32, deletion=deletion)


# ------------------------------------------------------------------ merge_base


def history(edges: dict[str, list[str]], minutes: dict[str, int]) -> tuple[dict, object]:
    snaps = {name: snap(name, m) for name, m in minutes.items()}

    def parents(s: Snapshot) -> Iterator[Snapshot]:
        return iter([snaps[p] for p in edges.get(s.snapshot_id, [])])

    return snaps, parents


def test_merge_base_is_the_newest_common_ancestor():
    # a - b - c - d (ours)
    #      \- e - f (theirs), and f also merged c in
    edges = {"b": ["a"], "c": ["b"], "d": ["c"], "e": ["b"], "f": ["e", "c"]}
    snaps, parents = history(edges, {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "f": 5})
    assert merge_base(snaps["d"], snaps["f"], parents).snapshot_id == "c"
    assert merge_base(snaps["f"], snaps["d"], parents).snapshot_id == "c"
    assert merge_base(snaps["d"], snaps["e"], parents).snapshot_id == "b"
    assert merge_base(snaps["d"], snaps["b"], parents).snapshot_id == "b"  # an ancestor
    assert merge_base(snaps["d"], snaps["d"], parents).snapshot_id == "d"


def test_merge_base_of_unrelated_histories_is_none():
    snaps, parents = history({"b": ["a"], "d": ["c"]}, {"a": 0, "b": 1, "c": 2, "d": 3})
    assert merge_base(snaps["b"], snaps["d"], parents) is None


def test_merge_base_with_clocks_skewed_across_writers():
    # theirs' side was committed with a clock behind: its commits look older than the base.
    edges = {"b": ["a"], "c": ["b"], "x": ["b"], "y": ["x"]}
    snaps, parents = history(edges, {"a": 10, "b": 20, "c": 30, "x": 5, "y": 6})
    assert merge_base(snaps["c"], snaps["y"], parents).snapshot_id == "b"
    assert merge_base(snaps["y"], snaps["c"], parents).snapshot_id == "b"


# ------------------------------------------------------------------ plan_merge


def plan(base, ours, theirs, *, strategy=None, snaps=None):
    b, o, t = snaps or (snap("b", 0), snap("o", 1), snap("t", 2))
    return plan_merge(
        b,
        o,
        t,
        base_fragments=base,
        ours_fragments=ours,
        theirs_fragments=theirs,
        strategy=strategy,
    )


def test_up_to_date_and_fast_forward():
    b, o = snap("b", 0), snap("o", 1)
    up = plan_merge(
        b, o, b, base_fragments=[], ours_fragments=[], theirs_fragments=[], strategy=None
    )
    assert up.kind == "up-to-date"
    ff = plan_merge(
        b, b, o, base_fragments=[], ours_fragments=[], theirs_fragments=[], strategy=None
    )
    assert ff.kind == "fast-forward"


def test_each_side_keeps_its_additions_and_takes_the_other_sides_changes():
    a, b, c = frag("a"), frag("b"), frag("c")
    ours = [a, frag("b", "dv-ours"), c, frag("o1")]  # ours deleted rows from b, added o1
    theirs = [b, frag("c", "dv-theirs"), frag("t1"), frag("t2")]  # removed a, changed c
    p = plan([a, b, c], ours, theirs)
    assert p.kind == "three-way" and not p.conflicts
    assert [f.path for f in p.fragments] == ["data/b", "data/c", "data/o1", "data/t1", "data/t2"]
    by_path = {f.path: f for f in p.fragments}
    assert by_path["data/b"].deletion.path.endswith("dv-ours")  # ours' change kept
    assert by_path["data/c"].deletion.path.endswith("dv-theirs")  # theirs' change taken
    assert [f.path for f in p.added] == ["data/t1", "data/t2"]
    assert [f.path for f in p.removed] == ["data/a"]
    assert [f.path for f in p.replaced] == ["data/c"]
    assert p.schema == SCHEMA


@pytest.mark.parametrize(
    ("ours", "theirs", "what"),
    [
        ([], [], ("removed", "removed")),
        ([frag("a", "o")], [], ("deleted rows", "removed")),
        ([], [frag("a", "t")], ("removed", "deleted rows")),
        ([frag("a", "o")], [frag("a", "t")], ("deleted rows", "deleted rows")),
    ],
)
@pytest.mark.parametrize("strategy", [None, "ours", "theirs"])
def test_a_fragment_changed_on_both_sides_conflicts(ours, theirs, what, strategy):
    p = plan([frag("a"), frag("z")], [*ours, frag("z")], [*theirs, frag("z")], strategy=strategy)
    assert p.conflicts == [
        {"kind": "fragment", "item": "data/a", "ours": what[0], "theirs": what[1]}
    ]
    assert p.kind == (strategy or "three-way")
    if strategy is None:
        assert p.fragments == [] and p.schema is None
    else:  # that side's snapshot, whole
        side = [*ours, frag("z")] if strategy == "ours" else [*theirs, frag("z")]
        assert p.fragments == side and p.schema == SCHEMA and p.last_field_id == 2


def test_the_same_deletion_on_both_sides_is_still_a_change_on_both():
    same = frag("a", "dv")
    p = plan([frag("a")], [same], [same])
    assert [c["item"] for c in p.conflicts] == ["data/a"]


def test_the_schema_comes_from_the_side_that_changed_it():
    added = {"fields": [*SCHEMA["fields"], field(3, "y")]}
    base, ours, theirs = snap("b", 0), snap("o", 1), snap("t", 2, added, last_field_id=3)
    p = plan([frag("a")], [frag("a")], [frag("a"), frag("t")], snaps=(base, ours, theirs))
    assert (p.schema, p.last_field_id) == (added, 3)
    base, ours, theirs = snap("b", 0), snap("o", 1, added, last_field_id=3), snap("t", 2)
    p = plan([frag("a")], [frag("a")], [frag("a"), frag("t")], snaps=(base, ours, theirs))
    assert (p.schema, p.last_field_id) == (added, 3)
    # Both made the same change: no conflict, that schema.
    base, ours, theirs = snap("b", 0), snap("o", 1, added, 3), snap("t", 2, added, 3)
    p = plan([], [], [frag("t")], snaps=(base, ours, theirs))
    assert not p.conflicts and p.schema == added


def test_schema_changes_on_both_sides_conflict_column_by_column():
    base_s = {"fields": [field(1, "id"), field(2, "x"), field(3, "gone"), field(7, "k")]}
    ours_s = {
        "fields": [field(1, "id"), field(2, "x2"), field(3, "g2"), field(4, "o"), field(6, "n")]
    }
    theirs_fields = [field(1, "id"), field(2, "x3", "double"), field(5, "t"), field(6, "m")]
    theirs_s = {"fields": [*theirs_fields, field(7, "k2")]}
    snaps = (snap("b", 0, base_s, 3), snap("o", 1, ours_s, 6), snap("t", 2, theirs_s, 6))
    p = plan([], [], [], snaps=snaps, strategy=None)
    assert p.kind == "three-way"
    # Field ids 4 and 5 changed on one side only: not conflicts.
    assert p.conflicts == [
        {
            "kind": "schema",
            "item": "column 'x2' (field id 2)",
            "ours": "changed to 'x2' int64",
            "theirs": "changed to 'x3' double",
        },
        {
            "kind": "schema",
            "item": "column 'g2' (field id 3)",
            "ours": "changed to 'g2' int64",
            "theirs": "dropped 'gone'",
        },
        {
            "kind": "schema",
            "item": "column 'n' (field id 6)",
            "ours": "added 'n'",
            "theirs": "added 'm'",
        },
        {
            "kind": "schema",
            "item": "column 'k2' (field id 7)",  # named as the side that kept it calls it
            "ours": "dropped 'k'",
            "theirs": "changed to 'k2' int64",
        },
    ]
    assert plan([], [], [], snaps=snaps, strategy="theirs").kind == "theirs"


def test_disagreeing_schemas_with_no_column_in_conflict_still_conflict():
    # Each side changed another column: no single column conflicts, the schemas do.
    base_s = {"fields": [field(1, "id"), field(2, "x")]}
    ours_s = {"fields": [field(1, "id2"), field(2, "x")]}
    theirs_s = {"fields": [field(1, "id"), field(2, "x2")]}
    snaps = (snap("b", 0, base_s), snap("o", 1, ours_s), snap("t", 2, theirs_s))
    p = plan([], [], [], snaps=snaps)
    assert p.conflicts == [
        {"kind": "schema", "item": "schema", "ours": "changed", "theirs": "changed"}
    ]


# ------------------------------------------------------------ merges through the API


def _contract(x_min: float) -> pa_pl.DataFrameSchema:
    return pa_pl.DataFrameSchema(
        {
            "id": pa_pl.Column(pl.Int64),
            "value": pa_pl.Column(pl.Float64, pa_pl.Check.ge(x_min)),
            "category": pa_pl.Column(pl.String),
        }
    )


def _min(ds: lv.Dataset) -> float | None:
    contract = ds.contract
    return None if contract is None else contract.columns["value"].checks[0].statistics["min_value"]


@pytest.mark.parametrize("changed", ["ours", "theirs"])
def test_a_three_way_merge_takes_the_contract_from_the_side_that_changed_it(location, changed):
    main = lv.create_dataset(location, events(0, 3), contract=_contract(0.0))
    exp = main.branch("exp").append(events(10, 1))
    main = main.append(events(3, 1))
    if changed == "ours":
        main = main.set_contract(_contract(-1.0))
    else:
        exp = exp.set_contract(_contract(-1.0))
    merged = main.merge("exp")
    assert merged.commit.parameters["kind"] == "three-way"
    assert _min(merged) == -1.0
    assert sorted(merged.to_arrow()["id"].to_pylist()) == [0, 1, 2, 3, 10]


@pytest.mark.parametrize("changed", ["ours", "theirs"])
def test_a_three_way_merge_takes_the_schema_from_the_side_that_changed_it(location, changed):
    main = lv.create_dataset(location, events(0, 2))
    exp = main.branch("exp").append(events(10, 1))
    main = main.append(events(2, 1))
    if changed == "ours":
        main = main.evolve(add={"note": pa.string()})
    else:
        exp = exp.evolve(add={"note": pa.string()})
    merged = main.merge("exp")
    assert merged.commit.parameters["kind"] == "three-way"
    assert merged.schema.names == ["id", "value", "category", "note"]
    assert merged.to_arrow()["note"].null_count == 4


def test_the_field_ids_of_a_schema_include_map_keys_values_and_list_items():
    from lakever.merge import _field_ids
    from lakever.schema import assign_field_ids, schema_to_json

    nested = pa.schema(
        [("m", pa.map_(pa.string(), pa.int64())), ("l", pa.list_(pa.struct([("a", pa.int8())])))]
    )
    schema, _ = assign_field_ids(nested)
    assert _field_ids(schema_to_json(schema)) == {
        1: "m",
        2: "m.key",
        3: "m.value",
        4: "l",
        5: "l.item",
        6: "l.item.a",
    }
