"""Contracts: pandera schemas stored as JSON, checked on every commit, versioned."""

from __future__ import annotations

import os
import subprocess
import sys

import pandera.pandas as pdx
import pandera.polars as pap
import polars as pl
import pyarrow as pa
import pytest

import lakever as lv


def orders(ids: list[int], amounts: list[float | None], status: list[str | None]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "status": pa.array(status, pa.string()),
        }
    )


GOOD = orders([1, 2], [10.0, None], ["new", "paid"])

CONTRACT = pap.DataFrameSchema(
    {
        "id": pap.Column(pl.Int64, pap.Check.ge(0), nullable=False, unique=True),
        "amount": pap.Column(pl.Float64, pap.Check.in_range(0, 1000), nullable=True),
        "status": pap.Column(pl.String, pap.Check.isin(["new", "paid"]), nullable=False),
    },
    name="Orders",
)


class OrdersModel(pap.DataFrameModel):
    id: int = pap.Field(ge=0)
    amount: float | None = pap.Field(nullable=True, le=1000)
    status: str = pap.Field(isin=["new", "paid"])


def test_create_with_contract_stores_pandera_json(local_location):
    ds = lv.create_dataset(local_location, GOOD, contract=CONTRACT)
    assert ds.contract.to_json() == CONTRACT.to_json()
    assert ds.commit.parameters == {"contract_validation": "passed"}
    (name,) = os.listdir(os.path.join(local_location, "_lakever", "contracts"))
    with open(os.path.join(local_location, "_lakever", "contracts", name)) as f:
        assert f.read() == CONTRACT.to_json()  # pandera's own JSON, byte for byte


def test_violation_carries_failure_cases_and_commits_nothing(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    bad = orders([3, -1, -1, 3], [5.0, 2000.0, None, 1.0], ["new", "lost", None, "paid"])
    with pytest.raises(lv.ContractViolation) as ei:
        ds.append(bad, message="bad batch")
    err = ei.value
    cases = err.failure_cases
    assert cases.schema.names == ["column", "check", "failure_case", "count"]
    rows = {(r["column"], r["check"], r["failure_case"]): r["count"] for r in cases.to_pylist()}
    assert rows == {
        ("id", "field_uniqueness", "3"): 2,
        ("id", "field_uniqueness", "-1"): 2,
        ("id", "greater_than_or_equal_to(0)", "-1"): 2,
        ("amount", "in_range(0, 1000)", "2000.0"): 1,
        ("status", "isin(['new', 'paid'])", "lost"): 1,
        ("status", "not_nullable", None): 1,
    }
    msg = str(err)
    assert msg.startswith(f"append to {ds.uri} violates the dataset's contract (9 failure(s)): ")
    assert "column 'id' failed greater_than_or_equal_to(0) for '-1' (2 row(s))" in msg
    assert "column 'status' failed not_nullable for null (1 row(s))" in msg
    assert "Nothing was committed" in msg and "validate='skip'" in msg
    after = lv.open_dataset(location)
    assert (after.version, after.num_rows) == (0, 2)


def test_violation_on_create_creates_nothing(location):
    with pytest.raises(lv.ContractViolation):
        lv.create_dataset(location, orders([-1], [1.0], ["new"]), contract=CONTRACT)
    with pytest.raises(lv.DatasetNotFound):
        lv.open_dataset(location)


def test_streamed_violation_in_a_later_batch_commits_nothing(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    batches = [
        orders([10, 11], [1.0, 2.0], ["new", "new"]).to_batches()[0],
        orders([12, -5], [1.0, 2.0], ["new", "new"]).to_batches()[0],
    ]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
    with pytest.raises(lv.ContractViolation, match=r"for '-5'"):
        ds.append(reader, max_rows_per_fragment=1)
    assert lv.open_dataset(location).num_rows == 2


def test_skip_is_recorded_and_validate_finds_it(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    ds = ds.append(orders([-7], [1.0], ["new"]), validate="skip", message="hotfix")
    assert ds.commit.parameters == {"contract_validation": "skipped"}
    with pytest.raises(lv.ContractViolation) as ei:
        ds.validate()
    assert str(ei.value).startswith(
        f"version 1 of {ds.uri} violates the dataset's contract (1 failure(s)): column 'id' "
        "failed greater_than_or_equal_to(0) for '-7' (1 row(s)). Rows committed with "
        "validate='skip'"
    )
    assert lv.open_dataset(location, version=0).validate() == 2
    with pytest.raises(lv.InvalidArgument, match="validate must be 'contract' or 'skip'"):
        ds.append(GOOD, validate="no")  # type: ignore[arg-type]


def test_validate_without_contract(location):
    ds = lv.create_dataset(location, GOOD)
    with pytest.raises(lv.InvalidArgument, match="has no contract to validate against"):
        ds.validate()


def test_validate_aggregates_over_batches(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    ds = ds.append(orders([-1, -1], [1.0, 1.0], ["new", "new"]), validate="skip")
    with pytest.raises(lv.ContractViolation) as ei:
        ds.validate(batch_size=1)
    rows = ei.value.failure_cases.to_pylist()
    assert {
        "column": "id",
        "check": "greater_than_or_equal_to(0)",
        "failure_case": "-1",
        "count": 2,
    } in rows


def test_data_frame_model_and_time_travel(location):
    ds = lv.create_dataset(location, GOOD)
    assert ds.contract is None
    ds = ds.set_contract(OrdersModel, message="contract v1")
    assert ds.commit.operation == "set_contract"
    assert ds.commit.parameters["contract"]["api"] == "polars"
    assert ds.version == 1 and ds.num_rows == 2
    first = ds.contract.to_json()
    assert '"name": "OrdersModel"' in first
    ds = ds.append(orders([3], [999.0], ["paid"]))
    with pytest.raises(lv.ContractViolation, match="less_than_or_equal_to"):
        ds.append(orders([4], [1001.0], ["paid"]))
    ds = ds.set_contract(CONTRACT)
    ds = ds.set_contract(None, message="drop the contract")
    assert ds.contract is None
    ds = ds.append(orders([-1], [5000.0], ["whatever"]))  # nothing to check any more
    assert lv.open_dataset(location, version=0).contract is None
    assert lv.open_dataset(location, version=2).contract.to_json() == first
    assert lv.open_dataset(location, version=3).contract.to_json() == CONTRACT.to_json()


def test_pandas_api_contracts(location):
    contract = pdx.DataFrameSchema(
        {"id": pdx.Column("int64", pdx.Check.ge(0)), "status": pdx.Column(str, nullable=True)}
    )
    ds = lv.create_dataset(location, orders([1], [1.0], ["new"]), contract=contract)
    assert ds.commit.parameters == {"contract_validation": "passed"}
    with pytest.raises(lv.ContractViolation) as ei:
        ds.append(orders([-2], [1.0], ["x"]))
    assert ei.value.failure_cases.to_pylist() == [
        {"column": "id", "check": "greater_than_or_equal_to(0)", "failure_case": "-2", "count": 1}
    ]

    class Model(pdx.DataFrameModel):
        id: int = pdx.Field(lt=100)

    ds = ds.set_contract(Model)
    assert ds.commit.parameters["contract"]["api"] == "pandas"
    with pytest.raises(lv.ContractViolation, match="less_than"):
        ds.append(orders([100], [1.0], ["x"]))
    assert ds.append(orders([99], [1.0], ["x"])).num_rows == 2


@pytest.mark.parametrize(
    "contract",
    [
        pap.DataFrameSchema({"id": pap.Column(pl.Int64, pap.Check(lambda s: s > 0))}),
        pap.DataFrameSchema({"id": pap.Column(pl.Int64)}, checks=[pap.Check(lambda df: True)]),
        pdx.DataFrameSchema({"id": pdx.Column(int, pdx.Check(lambda s: s > 0))}),
    ],
    ids=["polars-column-lambda", "polars-frame-lambda", "pandas-column-lambda"],
)
def test_lambda_checks_are_refused(location, contract):
    ds = lv.create_dataset(location, GOOD)
    with pytest.raises(lv.InvalidArgument) as ei:
        ds.set_contract(contract)
    msg = str(ei.value)
    assert msg.startswith("the contract cannot be stored faithfully: pandera serializes only")
    assert "Check `<lambda>` will be skipped" in msg
    assert "register the check with pandera.extensions.register_check_method" in msg
    with pytest.raises(lv.InvalidArgument):
        lv.create_dataset(location + "-2", GOOD, contract=contract)
    assert lv.open_dataset(location).version == 0


def test_not_a_contract(location):
    with pytest.raises(lv.InvalidArgument, match="contract must be a pandera DataFrameSchema"):
        lv.create_dataset(location, GOOD, contract={"id": "int"})


def test_contract_that_does_not_fit_the_schema(location):
    ds = lv.create_dataset(location, GOOD)
    misfit = pap.DataFrameSchema({"id": pap.Column(pl.Int32), "missing": pap.Column(pl.String)})
    with pytest.raises(lv.ContractViolation) as ei:
        ds.set_contract(misfit)
    assert str(ei.value).startswith(
        f"the contract does not fit the schema of {ds.uri} (version 0), so attaching it "
        "violates the dataset's contract"
    )
    checks = {(r["column"], r["check"]) for r in ei.value.failure_cases.to_pylist()}
    assert checks == {("id", "dtype('Int32')"), ("missing", "column_in_dataframe")}
    assert lv.open_dataset(location).version == 0


def test_schema_changes_the_contract_forbids(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    with pytest.raises(lv.SchemaEvolutionError) as ei:
        ds.evolve(drop=["status"])
    assert str(ei.value) == (
        "cannot drop column 'status': the dataset's contract requires a column named 'status'. "
        "Pass the updated contract in the same commit: evolve(..., contract=new_contract)"
    )
    assert (ei.value.column, ei.value.old_type, ei.value.new_type) == ("status", "string", None)
    with pytest.raises(lv.SchemaEvolutionError, match="cannot rename column 'id' to 'key'"):
        ds.evolve(rename={"id": "key"})
    small = lv.create_dataset(
        location + "-2",
        pa.table({"n": pa.array([1], pa.int32())}),
        contract=pap.DataFrameSchema({"n": pap.Column(pl.Int32)}),
    )
    with pytest.raises(lv.SchemaEvolutionError) as ei:
        small.evolve(widen={"n": pa.int64()})
    assert str(ei.value).startswith(
        "cannot change column 'n' to int64: the dataset's contract requires dtype('Int32') for it"
    )
    # Adding a column the contract does not mention is fine (the contract is not strict).
    assert ds.evolve(add={"note": pa.string()}).contract.to_json() == CONTRACT.to_json()
    # Schema and contract change together, atomically.
    int64 = pap.DataFrameSchema({"n": pap.Column(pl.Int64)})
    with pytest.raises(lv.ContractViolation, match="does not fit the new schema of"):
        small.evolve(add={"m": pa.int8()}, contract=int64)
    small = small.evolve(widen={"n": pa.int64()}, contract=int64)
    assert small.contract.to_json() == int64.to_json()
    assert small.commit.parameters["contract"]["api"] == "polars"
    assert lv.open_dataset(location + "-2", version=0).contract.columns["n"].dtype != (
        small.contract.columns["n"].dtype
    )
    small = small.evolve(drop=["n"], add={"k": pa.int8()}, contract=None)
    assert small.contract is None


def test_strict_contract_refuses_new_columns_on_write(location):
    strict = pap.DataFrameSchema({"id": pap.Column(pl.Int64)}, strict=True)
    ds = lv.create_dataset(location, pa.table({"id": [1]}), contract=strict)
    with pytest.raises(lv.ContractViolation, match="column_in_schema for 'x'"):
        ds.append(pa.table({"id": [2], "x": [1]}), schema_mode="add")
    assert lv.open_dataset(location).schema.names == ["id"]


def test_overwrite_is_validated(location):
    ds = lv.create_dataset(location, GOOD, contract=CONTRACT)
    with pytest.raises(lv.ContractViolation):
        ds.overwrite(orders([1], [1.0], ["gone"]))
    assert ds.overwrite(orders([5], [1.0], ["new"])).num_rows == 1


def test_append_racing_set_contract_conflicts(location):
    ds = lv.create_dataset(location, GOOD)
    stale = lv.open_dataset(location)
    ds.set_contract(CONTRACT)
    with pytest.raises(lv.CommitConflict, match="which changed the contract"):
        stale.append(orders([-1], [1.0], ["x"]))


EVEN = "lakever_test_is_even"


def _register_even() -> None:
    """Register a custom check once per process (pandera's registry is global)."""
    import pandera.extensions as ext

    if EVEN in pap.Check.REGISTERED_CUSTOM_CHECKS:
        return

    def lakever_test_is_even(polars_obj, *, flag):
        return polars_obj.lazyframe.select(pl.col(polars_obj.key) % 2 == 0)

    ext.register_check_method(statistics=["flag"])(lakever_test_is_even)


def test_registered_checks_are_accepted_and_required_when_loaded(location):
    from lakever import contract as contracts

    _register_even()
    check = getattr(pap.Check, EVEN)(flag=1)
    registered = pap.DataFrameSchema({"id": pap.Column(pl.Int64, check)})
    ds = lv.create_dataset(location, pa.table({"id": [2]}), contract=registered)
    with pytest.raises(lv.ContractViolation, match=EVEN):
        ds.append(pa.table({"id": [3]}))
    # A process that has not registered the check must not validate with less.
    text = ds.contract.to_json()
    contracts._loaded.clear()
    saved = pap.Check.REGISTERED_CUSTOM_CHECKS.pop(EVEN)
    try:
        with pytest.raises(lv.InvalidArgument, match=rf"dropped the checks \['{EVEN}'\]"):
            contracts.from_json("polars", text)
    finally:
        pap.Check.REGISTERED_CUSTOM_CHECKS[EVEN] = saved


def test_pandera_is_imported_only_when_needed(local_location):
    lv.create_dataset(local_location, GOOD, contract=CONTRACT)
    code = (
        "import sys, lakever as lv; ds = lv.open_dataset(sys.argv[1]); ds.to_arrow(); "
        "ds.schema_history(); print('pandera' in sys.modules); "
        "ds.append(ds.to_arrow()[:0]); print('pandera' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, local_location], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "True"]


# ------------------------------------------------------------------ contracts from text


def test_load_contract_round_trips_json_and_yaml(location):
    for text in (CONTRACT.to_json(), CONTRACT.to_yaml()):
        loaded = lv.load_contract(text)
        assert loaded.to_json() == CONTRACT.to_json()
    ds = lv.create_dataset(location, GOOD, contract=lv.load_contract(CONTRACT.to_yaml()))
    with pytest.raises(lv.ContractViolation):
        ds.append(orders([-1], [1.0], ["new"]))


def test_load_contract_defaults_to_polars_and_reads_pandas():
    polars_api = lv.load_contract("columns:\n  id:\n    dtype: Int64\n    nullable: true\n")
    assert type(polars_api).__module__.startswith("pandera.api.polars")
    pandas_api = lv.load_contract(
        pdx.DataFrameSchema({"id": pdx.Column(int, pdx.Check.ge(0))}).to_json()
    )
    assert type(pandas_api).__module__.startswith("pandera.api.pandas")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "the contract must be a pandera schema: a mapping with 'columns'"),
        ('{"columns": 5}', "the contract must be a pandera schema: a mapping with 'columns'"),
        ("a: [", "the contract is neither JSON nor YAML: expected the node content"),
        (
            "columns:\n  id:\n    dtype: NotAType\n",
            "the contract is not a valid pandera schema: cannot parse input",
        ),
        (
            "columns:\n  id:\n    dtype: Int64\n    greater_than_zero: 0\n",
            "the contract names checks pandera does not know: id.greater_than_zero; use",
        ),
    ],
    ids=["list", "columns", "syntax", "dtype", "unknown-check"],
)
def test_load_contract_refuses_what_is_not_a_faithful_contract(text, message):
    with pytest.raises(lv.InvalidArgument) as info:
        lv.load_contract(text)
    assert str(info.value).startswith(message), str(info.value)
