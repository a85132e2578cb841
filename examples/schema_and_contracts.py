"""Schema evolution and data contracts: safe changes applied, unsafe ones refused.

Run it with ``python examples/schema_and_contracts.py DIR`` (default ./lake). It
creates DIR/orders with a pandera contract, evolves its schema (add, rename,
widen, drop) without rewriting any fragment, shows that old versions still read
exactly as written, and shows refused changes and a refused batch. Explore the
result afterwards with ``lakever schema DIR/orders --history``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa

import lakever as lv


def orders_contract(id_type: type[pl.DataType]) -> pa_pl.DataFrameSchema:
    """The contract: pandera's polars API, built-in checks only (stored as pandera's JSON)."""
    return pa_pl.DataFrameSchema(
        {
            "order_id": pa_pl.Column(id_type, pa_pl.Check.ge(1), nullable=False, unique=True),
            "amount": pa_pl.Column(pl.Float64, pa_pl.Check.in_range(0, 10_000), nullable=False),
            "status": pa_pl.Column(pl.String, pa_pl.Check.isin(["new", "paid", "shipped"])),
        },
        name="orders",
    )


def main(root: str = "lake") -> None:
    uri = str(Path(root) / "orders")
    shutil.rmtree(uri, ignore_errors=True)

    # 1. Create with a contract: these rows, and the rows of every later commit, are checked.
    first = pa.table(
        {
            "order_id": pa.array([1, 2], pa.int32()),
            "amount": [19.5, 250.0],
            "status": ["new", "paid"],
            "channel": ["web", "shop"],
            "debug": ["x", "y"],
        }
    )
    ds = lv.create_dataset(uri, first, contract=orders_contract(pl.Int32), message="first orders")
    print(f"created version {ds.version}: {ds.schema.names}")
    assert ds.schema.names == ["order_id", "amount", "status", "channel", "debug"]

    # 2. A change the contract forbids is refused, with the reason and what to do.
    try:
        ds.evolve(widen={"order_id": pa.int64()})
    except lv.SchemaEvolutionError as exc:
        print(f"refused: {exc}")
        assert "contract" in str(exc)
    else:
        raise AssertionError("a change the contract forbids was accepted")

    # 3. Evolve with the updated contract, in one schema-only commit: no data is rewritten.
    ds = ds.evolve(
        widen={"order_id": pa.int64()},
        rename={"channel": "source"},
        drop=["debug"],
        add={"coupon": pa.string()},
        contract=orders_contract(pl.Int64),
        message="v2 schema: 64-bit order ids",
    )
    print(f"evolved to version {ds.version}: {ds.schema.names}")
    assert ds.version == 1
    assert ds.schema.names == ["order_id", "amount", "status", "source", "coupon"]
    assert ds.schema.field("order_id").type == pa.int64()

    # 4. Old rows read under the new schema: renamed, widened, new columns null.
    ds = ds.append(
        pa.table(
            {
                "order_id": [3],
                "amount": [99.0],
                "status": ["shipped"],
                "source": ["app"],
                "coupon": ["WELCOME"],
            }
        )
    )
    print(ds.to_polars())
    assert ds.to_arrow().to_pydict() == {
        "order_id": [1, 2, 3],
        "amount": [19.5, 250.0, 99.0],
        "status": ["new", "paid", "shipped"],
        "source": ["web", "shop", "app"],
        "coupon": [None, None, "WELCOME"],
    }

    # 5. New columns can also arrive with the data (schema_mode="add"); never silently.
    ds = ds.append(
        pa.table({"order_id": [4], "amount": [5.0], "status": ["new"], "region": ["EU"]}),
        schema_mode="add",
        message="upstream added region",
    )
    print(f"version {ds.version} added {[c.describe() for c in ds.schema_history()[-1].changes]}")
    assert ds.version == 3 and ds.schema.names[-1] == "region"

    # 6. Unsafe type changes are refused whatever the contract says.
    try:
        ds.evolve(widen={"amount": pa.float32()})
    except lv.SchemaEvolutionError as exc:
        print(f"refused: {exc}")
        assert "narrowing" in str(exc)
    else:
        raise AssertionError("a narrowing change was accepted")

    # 7. A batch that breaks the contract is refused before anything becomes visible.
    bad = pa.table({"order_id": [5, 5], "amount": [-1.0, 20.0], "status": ["lost", "new"]})
    try:
        ds.append(bad, schema_mode="add")
    except lv.ContractViolation as exc:
        print(f"refused batch; the dataset stays at version {lv.open_dataset(uri).version}:")
        failed = set()
        for case in exc.failure_cases.to_pylist():
            print(f"  {case['column']}: {case['check']} failed for {case['failure_case']!r}")
            failed.add(case["column"])
        assert failed == {"order_id", "amount", "status"}
    else:
        raise AssertionError("a batch breaking the contract was accepted")
    assert lv.open_dataset(uri).version == 3

    # 8. Time travel shows each version's schema, values and contract exactly.
    v0 = lv.open_dataset(uri, version=0)
    print(f"version 0 still reads {v0.schema.names}: {v0.to_arrow().to_pylist()[0]}")
    assert v0.to_arrow() == first
    print(f"version 0 contract: order_id {v0.contract.columns['order_id'].dtype}")
    assert str(v0.contract.columns["order_id"].dtype) == "Int32"
    history = ds.schema_history()
    for entry in history:
        changes = "; ".join(c.describe() for c in entry.changes) or "first schema"
        print(f"v{entry.version} {entry.operation}: {changes}")
    assert [(e.version, e.operation) for e in history] == [
        (0, "create"),
        (1, "evolve"),
        (3, "append"),
    ]
    checked = ds.validate()
    print(f"version {ds.version} satisfies its contract ({checked} rows checked)")
    assert checked == 4


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lake")
