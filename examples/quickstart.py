"""lakever in five minutes: create a local lake, append, time travel, SQL, history.

Run it with ``bash scripts/quickstart.sh`` (or ``python examples/quickstart.py DIR``).
Every step prints what it did; the lake is left in DIR (default ./lake) to explore
with the CLI afterwards, e.g. ``lakever log lake/events``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow as pa

import lakever as lv


def main(root: str = "lake") -> None:
    uri = str(Path(root) / "events")
    shutil.rmtree(uri, ignore_errors=True)  # the quickstart always starts from scratch

    # 1. Create a dataset. Version 0 holds the first rows.
    october = pa.table(
        {
            "id": [1, 2, 3, 4],
            "category": ["click", "view", "click", "buy"],
            "value": [0.2, 0.7, 0.9, 0.4],
        }
    )
    ds = lv.create_dataset(uri, october, message="october batch")
    print(f"created {ds.uri} at version {ds.version} with {ds.num_rows} rows")
    assert (ds.version, ds.num_rows) == (0, 4)

    # 2. Append. Every write is an atomic commit and returns the new version.
    november = pa.table({"id": [5, 6], "category": ["view", "buy"], "value": [0.8, 0.1]})
    ds = ds.append(november, message="november batch", properties={"source": "kafka"})
    print(f"appended: version {ds.version}, {ds.num_rows} rows")
    assert (ds.version, ds.num_rows) == (1, 6)
    assert ds.to_arrow()["id"].to_pylist() == [1, 2, 3, 4, 5, 6]

    # 3. Pin the exact snapshot a model is trained on: the pin never changes meaning.
    training_pin = ds.pin()
    print(f"training set pinned as {training_pin}")
    assert "version=1" in training_pin and ds.snapshot_id in training_pin

    # 4. Overwrite replaces the rows but keeps history.
    cleaned = ds.to_arrow(filter="value >= 0.3")
    ds = ds.overwrite(cleaned, message="drop low-value rows")
    print(f"overwrote: version {ds.version}, {ds.num_rows} rows")
    assert (ds.version, ds.num_rows) == (2, 4)
    assert sorted(ds.to_arrow()["id"].to_pylist()) == [2, 3, 4, 5]

    # 5. Time travel: by version number, by time, or by pin.
    v0 = lv.open_dataset(uri, version=0)
    print(f"version 0 still has {v0.num_rows} rows: ids {v0.to_arrow()['id'].to_pylist()}")
    assert v0.to_arrow() == october  # exactly as written
    as_of = lv.open_dataset(uri, version=ds.timestamp)  # a time after the newest commit is refused
    print(f"as of {ds.timestamp:%H:%M:%S.%f}: version {as_of.version}")
    assert as_of.version == 2 and as_of.snapshot_id == ds.snapshot_id
    pinned = lv.open_dataset(training_pin)
    print(f"the pin reopens version {pinned.version} with {pinned.num_rows} rows")
    assert (pinned.version, pinned.num_rows) == (1, 6)
    assert pinned.to_arrow() == pa.concat_tables([october, november])

    # 6. Read it your way: Arrow, polars, pandas, batches, DuckDB SQL.
    print(pinned.to_polars().head(3))
    assert pinned.to_polars()["id"].to_list() == [1, 2, 3, 4, 5, 6]
    sizes = []
    for batch in pinned.to_batches(batch_size=4):
        print(f"a training batch of {batch.num_rows} rows")
        sizes.append(batch.num_rows)
    assert sizes == [4, 2]
    by_category = pinned.sql(
        "SELECT category, count(*) AS n, round(avg(value), 2) AS avg_value "
        "FROM self GROUP BY category ORDER BY category"
    ).to_arrow_table()
    print(by_category.to_pylist())
    assert by_category.to_pylist() == [
        {"category": "buy", "n": 2, "avg_value": 0.25},
        {"category": "click", "n": 2, "avg_value": 0.55},
        {"category": "view", "n": 2, "avg_value": 0.75},
    ]

    # 7. History: who changed what, when.
    history = ds.history()
    for commit in history:
        print(
            f"v{commit.version} {commit.operation:9} +{commit.rows_added:<3} "
            f"-{commit.rows_removed:<3} {commit.message}"
        )
    assert [(c.version, c.operation, c.rows_added, c.rows_removed) for c in history] == [
        (2, "overwrite", 4, 6),
        (1, "append", 2, 0),
        (0, "create", 4, 0),
    ]
    assert history[1].properties == {"source": "kafka"}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lake")
