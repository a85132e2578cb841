"""lakever.integrations.mlflow: snapshots logged as MLflow dataset inputs, and reopened.

Against a real local tracking store (SQLite; one per module: creating it runs MLflow's
migrations, which take seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakever as lv
from tests._data import events

mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from lakever.integrations.mlflow import (  # noqa: E402
    PIN_TAG,
    SNAPSHOT_TAG,
    SPLIT_TAG,
    input_pins,
    load_inputs,
    log_input,
    open_input,
)

# MLflow's SQL store (3.x) uses SQLAlchemy options that SQLAlchemy 2.1 deprecates:
# MLflow's warnings, not lakever's.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def tracking(tmp_path_factory):
    before = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(before)


@pytest.fixture
def client() -> MlflowClient:
    return MlflowClient()


def _inputs(client, run_id):
    return client.get_run(run_id).inputs.dataset_inputs


def _tags(item):
    return {t.key: t.value for t in item.tags}


def test_logged_input_has_name_digest_source_schema_profile_and_context(tmp_path, client):
    ds = lv.create_dataset(str(tmp_path / "lake" / "events"), events(0, 30))
    ds.tag("train-v1")
    with mlflow.start_run() as run:
        pin = log_input(ds)
    assert pin == ds.pin()
    [item] = _inputs(client, run.info.run_id)
    d = item.dataset
    assert d.name == "events"
    assert d.digest == ds.snapshot_id  # all 32 hex digits: MLflow allows 36
    assert d.source_type == "lakever"
    source = json.loads(d.source)
    assert source["pin"] == pin
    assert (source["uri"], source["branch"], source["version"]) == (ds.uri, "main", "0")
    schema = json.loads(d.schema)
    assert schema["mlflow_colspec"] == [
        {"type": "long", "name": "id", "required": False},
        {"type": "double", "name": "value", "required": False},
        {"type": "string", "name": "category", "required": False},
    ]
    assert [(c["name"], c["field_id"]) for c in schema["lakever_columns"]] == [
        ("id", 1),
        ("value", 2),
        ("category", 3),
    ]
    profile = json.loads(d.profile)
    assert profile["num_rows"] == ds.to_arrow().num_rows == 30
    assert profile["num_fragments"] == len(ds.fragments())
    assert profile["snapshot_id"] == ds.snapshot_id
    assert profile["tags"] == ["train-v1"]
    assert profile["merkle_root"] == lv.verify(pin).merkle
    tags = _tags(item)
    assert tags == {"mlflow.data.context": "training", PIN_TAG: pin, SNAPSHOT_TAG: ds.snapshot_id}


def test_reopened_input_equals_the_logged_snapshot_after_the_dataset_moved_on(tmp_path):
    uri = str(tmp_path / "events")
    ds = lv.create_dataset(uri, events(0, 40), max_rows_per_fragment=15)
    ds = ds.delete("id % 7 = 0")
    expected = ds.to_arrow()
    with mlflow.start_run() as run:
        log_input(ds, "training")
    ds = ds.append(events(40, 10))
    ds = ds.evolve(add={"score": pa.float32()}, rename={"value": "amount"})
    ds = ds.delete("id < 20")
    ds = ds.overwrite(ds.to_arrow().slice(0, 3))
    back = open_input(run.info.run_id)
    assert back.read_only and back.snapshot_id == expected_id(uri, expected)
    assert back.to_arrow().equals(expected)
    # MLflow's own way back resolves to lakever's source, whose load() reopens the pin.
    [item] = _inputs(MlflowClient(), run.info.run_id)
    assert mlflow.data.get_source(item).load().to_arrow().equals(expected)


def expected_id(uri, expected):
    """The snapshot id of the version of ``uri`` whose rows are ``expected``."""
    ds = lv.open_dataset(uri)
    for c in ds.history():
        if lv.open_dataset(uri, version=c.version).to_arrow().equals(expected):
            return c.snapshot_id
    raise AssertionError("no version holds the expected rows")


def test_tags_and_branches_as_inputs_of_one_run(tmp_path):
    uri = str(tmp_path / "events")
    ds = lv.create_dataset(uri, events(0, 10))
    ds.tag("train-v1")
    ds = ds.append(events(10, 10))
    exp = ds.branch("exp").delete("id >= 15")
    tagged = lv.open_dataset(uri, version="train-v1")
    with mlflow.start_run() as run:
        log_input(tagged, "training")
        log_input(exp, "evaluation", name="events-exp")
        log_input(ds, "reference", name="events-main")
    rid = run.info.run_id
    assert open_input(rid, "training").to_arrow().equals(tagged.to_arrow())
    ev = open_input(rid, "evaluation")
    assert ev.branch_name == "exp" and ev.to_arrow().equals(exp.to_arrow())
    assert open_input(rid, "reference").to_arrow().equals(events(0, 20))
    # The branch moves on; the pin does not.
    exp.append(events(100, 5))
    assert open_input(rid, "evaluation").to_arrow().equals(events(0, 15))
    assert sorted((n, c) for n, c, _ in input_pins(rid)) == [
        ("events", "training"),
        ("events-exp", "evaluation"),
        ("events-main", "reference"),
    ]


def test_several_inputs_per_run_and_the_ambiguity_errors(tmp_path):
    a = lv.create_dataset(str(tmp_path / "a"), events(0, 5))
    b = lv.create_dataset(str(tmp_path / "b"), events(5, 6))
    c = lv.create_dataset(str(tmp_path / "c"), events(11, 7))
    with mlflow.start_run() as run:
        log_input(a, "training")
        log_input(b, "training", tags={"role": "extra"})
        log_input(c, "evaluation")
        mlflow.log_input(mlflow.data.from_numpy(__import__("numpy").arange(3)), "training")
    rid = run.info.run_id
    loaded = load_inputs(rid, "training")
    assert sorted(d.num_rows for d in loaded) == [5, 6]
    assert sorted(d.num_rows for d in load_inputs(rid)) == [5, 6, 7]
    assert open_input(rid, "evaluation").to_arrow().equals(c.to_arrow())
    with pytest.raises(lv.InvalidArgument, match=r"has 2 lakever input.*pass name="):
        open_input(rid, "training")
    assert open_input(rid, "training", name="b").to_arrow().equals(b.to_arrow())
    with pytest.raises(lv.InvalidArgument, match=r"has no lakever input.*'testing'"):
        open_input(rid, "testing")
    [item] = [i for i in _inputs(MlflowClient(), rid) if i.dataset.name == "b"]
    assert _tags(item)["role"] == "extra"


def test_run_without_lakever_input(client):
    with mlflow.start_run() as run:
        mlflow.log_param("p", 1)
    assert load_inputs(run.info.run_id) == []
    with pytest.raises(lv.InvalidArgument, match=r"no lakever input.*logged: none"):
        open_input(run.info.run_id)
    # a Run object works too
    with pytest.raises(lv.InvalidArgument):
        open_input(client.get_run(run.info.run_id))


def test_run_id_without_active_run_and_errors(tmp_path, client):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 4))
    with pytest.raises(lv.InvalidArgument, match="no active MLflow run"):
        log_input(ds)
    exp_id = client.create_experiment("lakever-tests")
    run = client.create_run(exp_id)
    log_input(ds, "training", run_id=run.info.run_id)
    assert open_input(run.info.run_id).to_arrow().equals(ds.to_arrow())
    with pytest.raises(lv.TrackingError, match="could not fetch run 'nope'") as info:
        open_input("nope")
    assert info.value.run_id == "nope"
    with pytest.raises(lv.InvalidArgument, match="tags must map str to str"):
        log_input(ds, run_id=run.info.run_id, tags={"n": 1})
    with pytest.raises(lv.InvalidArgument, match="set by log_input"):
        log_input(ds, run_id=run.info.run_id, tags={PIN_TAG: "x"})
    with pytest.raises(lv.InvalidArgument, match=r"needs a lakever\.Dataset"):
        log_input(ds.to_arrow(), run_id=run.info.run_id)
    with pytest.raises(lv.InvalidArgument, match="context must be"):
        log_input(ds, "", run_id=run.info.run_id)


def test_mlflow_refusals_are_tracking_errors(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 4))
    # MLflow limits an input tag's value to 500 characters.
    refused = pytest.raises(lv.TrackingError, match=r"could not log the input 'e'")
    with mlflow.start_run() as run, refused as info:
        log_input(ds, tags={"note": "x" * 600})
    assert info.value.run_id == run.info.run_id
    assert isinstance(info.value.__cause__, mlflow.exceptions.MlflowException)
    assert input_pins(run.info.run_id) == []  # nothing was logged


def test_a_pin_resolves_to_lakevers_source_in_mlflows_registry(tmp_path):
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 4))
    source = resolve_dataset_source(ds.pin())
    assert source._get_source_type() == "lakever"
    assert source.load().to_arrow().equals(ds.to_arrow())
    assert type(source).from_json(source.to_json()).to_dict() == source.to_dict()


def test_same_snapshot_in_two_contexts_needs_two_names(tmp_path):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 4))
    with mlflow.start_run() as run:
        log_input(ds, "training")
        log_input(ds, "training")  # the same input again: nothing new
        # MLflow would silently drop this one (one input per name and digest per run).
        with pytest.raises(lv.InvalidArgument, match="name='e-evaluation'"):
            log_input(ds, "evaluation")
        log_input(ds, "evaluation", name="e-evaluation")
    pins = input_pins(run.info.run_id)
    assert sorted((n, c) for n, c, _ in pins) == [("e", "training"), ("e-evaluation", "evaluation")]


def test_a_pin_longer_than_an_input_tag_is_read_from_the_source(tmp_path):
    deep = tmp_path / ("d" * 200) / ("e" * 200)
    ds = lv.create_dataset(str(deep / "events"), events(0, 3))
    assert len(ds.pin()) > 500
    with mlflow.start_run() as run:
        log_input(ds)
    [item] = _inputs(MlflowClient(), run.info.run_id)
    assert PIN_TAG not in _tags(item)
    assert json.loads(item.dataset.source)["pin"] == ds.pin()
    assert open_input(run.info.run_id).to_arrow().equals(ds.to_arrow())


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning")
def test_colspec_agrees_with_mlflows_own_inference():
    from mlflow.types.utils import _infer_schema

    from lakever.interop._mlflow_dataset import colspec

    table = pa.table(
        {
            "i": pa.array([1], pa.int64()),
            "j": pa.array([1], pa.int32()),
            "f": pa.array([1.0], pa.float64()),
            "g": pa.array([1.0], pa.float32()),
            "s": pa.array(["x"]),
            "b": pa.array([True]),
            "y": pa.array([b"x"], pa.binary()),
        }
    )
    ours = colspec(table.schema)
    theirs = _infer_schema(table.to_pandas())
    assert [(c.name, c.type) for c in ours.inputs] == [(c.name, c.type) for c in theirs.inputs]
    nested = pa.schema([("l", pa.list_(pa.int64())), ("st", pa.struct([("a", pa.string())]))])
    assert colspec(nested).to_dict() == [
        {"type": "array", "items": {"type": "long"}, "name": "l", "required": False},
        {
            "type": "object",
            "properties": {"a": {"type": "string", "required": False}},
            "name": "st",
            "required": False,
        },
    ]
    assert colspec(pa.schema([("d", pa.decimal128(10, 2))])) is None


def test_a_column_without_mlflow_type_keeps_the_lakever_schema(tmp_path, client):
    table = pa.table({"id": [1, 2], "price": pa.array([1, 2], pa.decimal128(10, 2))})
    ds = lv.create_dataset(str(tmp_path / "prices"), table)
    with mlflow.start_run() as run:
        log_input(ds)
    [item] = _inputs(client, run.info.run_id)
    schema = json.loads(item.dataset.schema)
    assert "mlflow_colspec" not in schema
    assert [c["type"] for c in schema["lakever_columns"]] == ["int64", "decimal128(10, 2)"]


@settings(max_examples=8, deadline=None)
@given(
    batches=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    cut=st.integers(0, 60),
)
def test_reopened_inputs_equal_a_plain_read_of_what_was_logged(tmp_path_factory, batches, cut):
    uri = str(tmp_path_factory.mktemp("mlf") / "e")
    ds = lv.create_dataset(uri, events(0, batches[0]))
    logged = []
    with mlflow.start_run() as run:
        start = batches[0]
        for i, n in enumerate(batches[1:], 1):
            ds = ds.append(events(start, n))
            start += n
            if i % 2:
                ds = ds.delete(f"id < {cut}")
            log_input(ds, f"step{i}", name=f"e{i}")
            logged.append((f"step{i}", ds.to_arrow()))
        log_input(ds.branch("b"), "branch", name="e-b")
        logged.append(("branch", ds.to_arrow()))
    ds.append(events(1000, 5)).delete("id < 1000")
    for context, expected in logged:
        back = open_input(run.info.run_id, context)
        assert back.to_arrow().equals(expected)
        assert back.num_rows == expected.num_rows


def test_splits_are_logged_with_their_definition_and_reopen_as_the_same_rows(tmp_path, client):
    uri = str(tmp_path / "events")
    ds = lv.create_dataset(uri, events(0, 300))
    parts = ds.split({"train": 0.7, "test": 0.3}, key="id", seed=3)
    sample = ds.sample(0.1, key="id", seed=3)
    expected = {k: v.to_arrow() for k, v in parts.items()}
    with mlflow.start_run() as run:
        log_input(parts["train"], "training")
        log_input(parts["test"], "evaluation")
        log_input(sample, "smoke")
    rid = run.info.run_id
    items = {i.dataset.name: i for i in _inputs(client, rid)}
    assert set(items) == {"events.train", "events.test", "events.sample"}
    digests = {i.dataset.digest for i in items.values()}
    assert len(digests) == 3 and ds.snapshot_id not in digests  # one per split definition
    train = items["events.train"]
    split = json.loads(_tags(train)[SPLIT_TAG])
    assert split == {
        "name": "train",
        "key": ["id"],
        "seed": 3,
        "lo": "0",
        "hi": str(parts["train"].hi),
    }
    assert json.loads(train.dataset.source)["split"] == split
    assert json.loads(train.dataset.profile)["num_rows"] == expected["train"].num_rows
    assert _tags(train)[SNAPSHOT_TAG] == ds.snapshot_id
    # The dataset moves on: the logged splits are those of the logged snapshot.
    ds.append(events(300, 100)).delete("id < 50")
    back_train = open_input(rid, "training")
    assert isinstance(back_train, lv.Subset)
    assert back_train.to_arrow().equals(expected["train"])
    assert open_input(rid, "evaluation").to_arrow().equals(expected["test"])
    assert open_input(rid, "smoke").to_arrow().equals(sample.to_arrow())
    assert mlflow.data.get_source(train).load().to_arrow().equals(expected["train"])
    # Differential: the two splits partition the logged snapshot's rows (plain pyarrow).
    ids = sorted(expected["train"]["id"].to_pylist() + expected["test"]["id"].to_pylist())
    assert ids == sorted(events(0, 300)["id"].to_pylist())
    assert sorted(sample.to_arrow()["id"].to_pylist()) == sorted(
        set(sample.to_arrow()["id"].to_pylist()) & set(expected["train"]["id"].to_pylist())
    )


def test_mlflow_missing_names_the_extra(tmp_path, monkeypatch):
    ds = lv.create_dataset(str(tmp_path / "e"), events(0, 2))
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    with pytest.raises(lv.MissingDependency, match=r"lakever\[mlflow\]") as info:
        log_input(ds)
    assert info.value.extra == "mlflow"
    with pytest.raises(lv.MissingDependency):
        open_input("any")


def test_import_lakever_loads_no_mlflow():
    code = (
        "import sys, lakever, lakever.integrations; "
        "print([m for m in sys.modules if m.split('.')[0] == 'mlflow'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
