"""The ML workflow end to end: versioned training data, tracked runs, drift, reproduction.

Run it with ``python examples/mlops_walkthrough.py DIR`` (default ./lake). It uses
scikit-learn's bundled diabetes data (no download) and a local MLflow store in
DIR/_mlflow (SQLite):

1. ingest the first cohort under a pandera contract, tag it ``train-v1``;
2. split it by patient id (stable splits), train a ridge regression, log the run to
   MLflow with the exact split snapshots as its inputs;
3. new data arrives with an extra column (schema evolution); a bad batch breaks the
   contract and is refused, leaving the dataset as it was;
4. drift between ``train-v1`` and the new head is detected and triggers a retrain on a
   new tag ``train-v2``; patients keep their split across versions;
5. the first model is reproduced bit for bit from what its MLflow run recorded.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandera.polars as pa_pl
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

import lakever as lv

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
SPLITS = {"train": 0.8, "test": 0.2}


def load_cohorts() -> tuple[pa.Table, pa.Table]:
    """The diabetes data (442 patients) in raw units, youngest 300 first, then the rest."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "age", pc.cast(table["age"], pa.int64()))
    table = table.set_column(1, "sex", pc.cast(table["sex"], pa.int64()))
    table = table.add_column(0, "patient_id", pa.array(range(table.num_rows), pa.int64()))
    # The first clinic sees younger patients; the second one the older rest: real drift.
    table = table.take(pc.sort_indices(table, [("age", "ascending"), ("patient_id", "ascending")]))
    return table.slice(0, 300), table.slice(300)


def contract() -> pa_pl.DataFrameSchema:
    return pa_pl.DataFrameSchema(
        {
            "patient_id": pa_pl.Column(pl.Int64, nullable=False, unique=True),
            "age": pa_pl.Column(pl.Int64, pa_pl.Check.in_range(18, 110)),
            "sex": pa_pl.Column(pl.Int64, pa_pl.Check.isin([1, 2])),
            "bmi": pa_pl.Column(pl.Float64, pa_pl.Check.in_range(10, 70)),
            "target": pa_pl.Column(pl.Float64, pa_pl.Check.ge(0)),
        },
        name="diabetes",
    )


def fit(train: lv.Subset) -> tuple[Any, np.ndarray, float]:
    """A ridge regression on a split: the model, its coefficients and intercept."""
    from sklearn.linear_model import Ridge

    table = train.to_arrow([*FEATURES, "target"])
    x = np.column_stack([table[c].to_numpy().astype(np.float64) for c in FEATURES])
    model = Ridge(alpha=1.0).fit(x, table["target"].to_numpy())
    return model, model.coef_.copy(), float(model.intercept_)


def features(subset: lv.Subset) -> tuple[np.ndarray, np.ndarray]:
    table = subset.to_arrow([*FEATURES, "target"])
    x = np.column_stack([table[c].to_numpy().astype(np.float64) for c in FEATURES])
    return x, table["target"].to_numpy()


def train_and_log(mlflow: Any, ds: lv.Dataset, tag: str) -> tuple[str, np.ndarray, float]:
    """Split the tagged snapshot, train, and log the run with its inputs; return the
    run id, the coefficients and the test RMSE."""
    from lakever.integrations.mlflow import log_input

    parts = ds.split(SPLITS, key="patient_id", seed=7)
    model, coef, _ = fit(parts["train"])
    x_test, y_test = features(parts["test"])
    rmse = float(np.sqrt(np.mean((model.predict(x_test) - y_test) ** 2)))
    with mlflow.start_run(run_name=f"ridge-{tag}") as run:
        log_input(parts["train"], "training", tags={"lakever.tag": tag})
        log_input(parts["test"], "evaluation", tags={"lakever.tag": tag})
        mlflow.log_params({"alpha": 1.0, "features": ",".join(FEATURES), "data_tag": tag})
        mlflow.log_metric("test_rmse", rmse)
        for name, value in zip(FEATURES, coef, strict=True):
            mlflow.log_metric(f"coef_{name}", float(value))
    return run.info.run_id, coef, rmse


def main(root: str = "lake") -> None:
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    lake = Path(root).resolve()
    shutil.rmtree(lake, ignore_errors=True)
    (lake / "_mlflow").mkdir(parents=True)
    mlflow.set_tracking_uri(f"sqlite:///{lake / '_mlflow' / 'mlflow.db'}")
    mlflow.set_experiment("diabetes")
    uri = str(lake / "diabetes")

    # 1. Ingest the first cohort under a contract; tag what we train on.
    first, second = load_cohorts()
    ds = lv.create_dataset(uri, first, contract=contract(), message="clinic A cohort")
    ds.tag("train-v1", message="first training set")
    print(f"ingested {ds.num_rows} patients (clinic A) as version {ds.version}, tagged train-v1")
    assert (ds.version, ds.num_rows) == (0, 300)

    # 2. Train on a stable split of train-v1 and log the run with its exact inputs.
    v1 = lv.open_dataset(uri, version="train-v1")
    run1, coef1, rmse1 = train_and_log(mlflow, v1, "train-v1")
    print(f"run {run1[:8]}: ridge on train-v1, test RMSE {rmse1:.1f}; inputs logged as pins")
    from lakever.integrations.mlflow import input_pins

    logged = input_pins(run1)
    assert sorted(c for _, c, _ in logged) == ["evaluation", "training"]
    assert all(f"snapshot={v1.snapshot_id}" in pin for _, _, pin in logged)

    # 3. New data arrives with an extra column; a bad batch is refused by the contract.
    arrivals = second.append_column("clinic", pa.array(["B"] * second.num_rows))
    ds = ds.append(arrivals, schema_mode="add", message="clinic B cohort (new column)")
    print(f"appended {arrivals.num_rows} patients with a new column 'clinic': version {ds.version}")
    assert ds.num_rows == 442 and "clinic" in ds.schema.names
    bad = arrivals.slice(0, 3)
    bad = bad.set_column(0, "patient_id", pa.array([1000, 1001, 1002], pa.int64()))
    bad = bad.set_column(bad.schema.get_field_index("bmi"), "bmi", pa.array([24.0, -1.0, 0.0]))
    try:
        ds.append(bad, message="feed with a unit bug")
        raise AssertionError("the contract should refuse a negative bmi")
    except lv.ContractViolation as exc:
        failed = exc.failure_cases.to_pylist()
        print(
            f"contract refused a bad batch ({len(failed)} failure(s), e.g. bmi "
            f"{failed[0]['failure_case']}); dataset unchanged at version {ds.version}"
        )
        assert lv.open_dataset(uri).version == ds.version
        assert {f["column"] for f in failed} == {"bmi"}

    # 4. Drift between the training tag and the new head triggers a retrain.
    report = lv.drift(uri, "train-v1", "main")
    age = report.column("age")
    print(
        f"drift train-v1 -> main: flagged {report.flagged_columns}, age PSI {age.psi:.2f}, "
        f"schema changes {report.schema_changes}"
    )
    assert report.flagged and "age" in report.flagged_columns
    if report.flagged:
        ds.tag("train-v2", message="retrain after drift in " + ", ".join(report.flagged_columns))
        v2 = lv.open_dataset(uri, version="train-v2")
        run2, coef2, rmse2 = train_and_log(mlflow, v2, "train-v2")
        print(
            f"run {run2[:8]}: retrained on train-v2 ({v2.num_rows} patients), test RMSE {rmse2:.1f}"
        )
        assert not np.array_equal(coef1, coef2)
        # Stable splits: every patient keeps its split as the data grows.
        old = v1.split(SPLITS, key="patient_id", seed=7)
        new = v2.split(SPLITS, key="patient_id", seed=7)
        for name in SPLITS:
            before = set(old[name].to_arrow(["patient_id"])["patient_id"].to_pylist())
            after = set(new[name].to_arrow(["patient_id"])["patient_id"].to_pylist())
            assert before <= after, name
        print("every train-v1 patient kept its split in train-v2 (no test patient leaked)")

    # 5. Reproduce the first model from its run alone: the pins reopen the exact rows.
    from lakever.integrations.mlflow import open_input

    train = open_input(run1, "training")
    test = open_input(run1, "evaluation")
    assert isinstance(train, lv.Subset) and isinstance(test, lv.Subset)
    model, coef, _ = fit(train)
    logged_coef = mlflow.get_run(run1).data.metrics
    assert np.array_equal(coef, coef1)  # bit for bit
    assert all(logged_coef[f"coef_{n}"] == float(c) for n, c in zip(FEATURES, coef, strict=True))
    x_test, y_test = features(test)
    rmse = float(np.sqrt(np.mean((model.predict(x_test) - y_test) ** 2)))
    assert rmse == rmse1 == logged_coef["test_rmse"]
    print(
        f"reproduced run {run1[:8]} from its pins: {train.count()} training rows of version "
        f"{train.view.version}, identical coefficients and test RMSE {rmse:.1f}"
    )
    record = train.view.lineage_record()
    assert record["tags"] == ["train-v1"] and record["num_rows"] == 300
    print(f"lineage record: snapshot {record['snapshot_id'][:12]}, tags {record['tags']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lake")
