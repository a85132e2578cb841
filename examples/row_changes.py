"""Correcting data and asking what changed: delete, update, upsert, diff, change feed.

Run it with ``python examples/row_changes.py DIR``. It builds a labelled dataset
with a primary key, tags the snapshot a model trained on, fixes the data the way
a team does after the fact (a GDPR delete, relabelled rows, late records), then
asks what changed between the two training sets, by key, and reads the change
feed an incremental job would consume.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow as pa

import lakever as lv


def main(root: str = "lake") -> None:
    uri = str(Path(root) / "messages")
    shutil.rmtree(uri, ignore_errors=True)

    # 1. A dataset with a declared key: every commit keeps `id` unique and non-null.
    rows = pa.table(
        {
            "id": list(range(1, 9)),
            "user": ["ann", "bob", "cid", "ann", "dee", "bob", "eve", "fay"],
            "text": ["hi", "WIN $$$", "meeting at 3", "cheap pills", "lunch?", "ok", "?", "bye"],
            "label": ["ham", "spam", "ham", None, "ham", "ham", None, "ham"],
        }
    )
    ds = lv.create_dataset(uri, rows, primary_key=["id"], max_rows_per_fragment=4)
    ds.tag("train-v2", message="model v2 training set")
    print(f"created {ds.uri}: {ds.num_rows} rows, key {ds.primary_key}, tagged train-v2")

    try:
        ds.append(pa.table({"id": [3], "user": ["x"], "text": ["dup"], "label": ["ham"]}))
    except lv.PrimaryKeyViolation as exc:
        print(f"refused a duplicate key: {exc.examples}")

    # 2. A GDPR request: delete every row of one user. Only a deletion vector is
    #    written; the Parquet fragments stay as they are.
    ds = ds.delete(where="user = 'bob'", message="GDPR request #12")
    c = ds.commit
    print(
        f"deleted {c.rows_removed} rows in version {ds.version} "
        f"({c.parameters['fragments_touched']} fragments got a deletion vector)"
    )
    same = ds.delete(where="user = 'bob'")
    print(f"deleting again matches nothing: still version {same.version}")

    # 3. Fix labels: values are SQL expressions.
    ds = ds.update(set={"label": "'spam'"}, where="id = 4", message="relabel")
    ds = ds.update(set={"label": "'ham'"}, where="label IS NULL", message="fill missing labels")

    # 4. Late records: new ids are inserted, existing ids replaced.
    late = pa.table(
        {
            "id": [5, 9],
            "user": ["dee", "gus"],
            "text": ["lunch at 1?", "new here"],
            "label": ["ham", "ham"],
        }
    )
    ds = ds.upsert(late, message="late records")
    ds.tag("train-v3", message="model v3 training set")
    print(f"version {ds.version}: {ds.num_rows} rows, tagged train-v3")

    # 5. What changed between the two training sets? Shared fragments are not read.
    d = lv.diff(uri, "train-v2", "train-v3")
    s = d.summary
    print(
        f"train-v2 -> train-v3: {s.rows_added} added, {s.rows_removed} removed, "
        f"{s.rows_changed} changed (fragments: {s.fragments_shared} shared, "
        f"{s.fragments_modified} with new deletions, {s.fragments_added} added)"
    )
    for r in d.changed().to_pylist():
        cols = ", ".join(
            f"{c}: {r['_old'][c]!r} -> {r['_new'][c]!r}" for c in r["_changed_columns"]
        )
        print(f"  id {r['id']}: {cols}")
    print(f"  removed ids {d.removed()['id'].to_pylist()}, added ids {d.added()['id'].to_pylist()}")

    # 6. The change feed since the v2 training set, commit by commit.
    for table in ds.changes(since="train-v2"):
        kinds = table["_change_type"].to_pylist()
        version = table["_commit_version"][0].as_py()
        print(
            f"  version {version}: " + ", ".join(sorted({f"{kinds.count(k)} {k}" for k in kinds}))
        )

    # 7. Every reader sees the same rows, SQL included.
    print(ds.sql("SELECT label, count(*) AS n FROM self GROUP BY label ORDER BY label").fetchall())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lake")
