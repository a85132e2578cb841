"""Keeping a long-lived lake small without losing what a model was trained on.

Run it with ``python examples/maintenance.py DIR``. It ingests many small daily
batches, tags the training set of a model and retains the pin another model logged,
then compacts, expires old versions, looks at where the bytes are, vacuums, and
shows that the tag, the retained pin and the head still read back exactly while an
expired version says why it is gone.
"""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

import lakever as lv


def batch(day: int, n: int = 50) -> pa.Table:
    ids = range(day * n, (day + 1) * n)
    return pa.table({"id": list(ids), "day": [day] * n, "value": [i % 7 / 7 for i in ids]})


def main(root: str = "lake") -> None:
    uri = str(Path(root) / "sensors")
    shutil.rmtree(uri, ignore_errors=True)

    # 1. Thirty daily batches: thirty small fragments, thirty versions.
    ds = lv.create_dataset(uri, batch(0))
    for day in range(1, 30):
        ds = ds.append(batch(day), message=f"day {day}")
    lv.open_dataset(uri, version=9).tag("model-a-train", message="model A trained on days 0-9")
    pin_b = lv.open_dataset(uri, version=19).retain(reason="model B (mlflow run 42)").pin
    print(f"{ds.num_rows} rows in {len(ds.fragments())} fragments, {ds.version + 1} versions")

    # 2. Compaction: one commit that changes no row, one fragment instead of thirty.
    ds = ds.compact()
    print(f"compacted: {len(ds.fragments())} fragment(s), rows unchanged: {ds.num_rows}")
    assert ds.num_rows == 1500 and len(ds.fragments()) == 1

    # 3. Expiry: a dry run first, then for real. Roots are never expired.
    plan = ds.expire(keep_last=1)
    print(f"would expire {plan.versions} versions; kept by roots: {plan.kept}")
    ds.expire(keep_last=1, dry_run=False, author="ops")
    try:
        lv.open_dataset(uri, version=5)
    except lv.VersionExpired as exc:
        print(f"version 5: expired by {exc.expired_by} ({exc.policy}); try {exc.next_readable}")

    # 4. Where the bytes are, then vacuum. A grace period protects commits in flight and
    # readers of just-expired versions; this lake has no other user, so none is needed.
    report = ds.storage_report(grace=timedelta(0))
    print({k: v.bytes for k, v in report.categories.items()})
    done = ds.vacuum(dry_run=False, grace=timedelta(0), allow_short_grace=True)
    print(f"vacuum deleted {len(done.files)} files ({done.bytes} bytes); kept: {list(done.kept)}")
    fragments = [f for f in done.files if f.path.startswith("data/")]
    assert {f.reason for f in done.files} == {"expired"} and len(fragments) == 10  # days 20-29

    # 5. What the models saw reads back exactly.
    tagged = lv.open_dataset(uri, version="model-a-train")
    retained = lv.open_dataset(pin_b)
    assert sorted(tagged.to_arrow()["day"].to_pylist()) == sorted(
        d for d in range(10) for _ in range(50)
    )
    assert retained.num_rows == 1000 and lv.open_dataset(uri).num_rows == 1500
    assert ds.verify(full=True, all_refs=True).ok
    print(f"model-a-train: {tagged.num_rows} rows, model B pin: {retained.num_rows} rows, intact")


if __name__ == "__main__":
    main(*sys.argv[1:])
