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
    assert ds.num_rows == 8 and ds.primary_key == ["id"]

    try:
        ds.append(pa.table({"id": [3], "user": ["x"], "text": ["dup"], "label": ["ham"]}))
    except lv.PrimaryKeyViolation as exc:
        print(f"refused a duplicate key: {exc.examples}")
        assert exc.examples == [{"id": 3}]
    else:
        raise AssertionError("a duplicate key was accepted")
    assert lv.open_dataset(uri).version == 0

    # 2. A GDPR request: delete every row of one user. Only a deletion vector is
    #    written; the Parquet fragments stay as they are.
    ds = ds.delete(where="user = 'bob'", message="GDPR request #12")
    c = ds.commit
    print(
        f"deleted {c.rows_removed} rows in version {ds.version} "
        f"({c.parameters['fragments_touched']} fragments got a deletion vector)"
    )
    assert (ds.version, c.rows_removed, ds.num_rows) == (1, 2, 6)
    assert "bob" not in ds.to_arrow()["user"].to_pylist()
    same = ds.delete(where="user = 'bob'")
    print(f"deleting again matches nothing: still version {same.version}")
    assert same.version == 1

    # 3. Fix labels: values are SQL expressions.
    ds = ds.update(set={"label": "'spam'"}, where="id = 4", message="relabel")
    ds = ds.update(set={"label": "'ham'"}, where="label IS NULL", message="fill missing labels")
    labels = dict(zip(*ds.to_arrow(columns=["id", "label"]).to_pydict().values(), strict=True))
    assert labels == {1: "ham", 3: "ham", 4: "spam", 5: "ham", 7: "ham", 8: "ham"}

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
    assert (ds.version, ds.num_rows) == (4, 7)
    assert sorted(ds.to_arrow()["id"].to_pylist()) == [1, 3, 4, 5, 7, 8, 9]

    # 5. What changed between the two training sets? Shared fragments are not read.
    d = lv.diff(uri, "train-v2", "train-v3")
    s = d.summary
    print(
        f"train-v2 -> train-v3: {s.rows_added} added, {s.rows_removed} removed, "
        f"{s.rows_changed} changed (fragments: {s.fragments_shared} shared, "
        f"{s.fragments_modified} with new deletions, {s.fragments_added} added)"
    )
    assert (s.rows_added, s.rows_removed, s.rows_changed) == (1, 2, 3)
    changed = {}
    for r in d.changed().to_pylist():
        cols = ", ".join(
            f"{c}: {r['_old'][c]!r} -> {r['_new'][c]!r}" for c in r["_changed_columns"]
        )
        print(f"  id {r['id']}: {cols}")
        changed[r["id"]] = {c: (r["_old"][c], r["_new"][c]) for c in r["_changed_columns"]}
    assert changed == {
        4: {"label": (None, "spam")},
        5: {"text": ("lunch?", "lunch at 1?")},
        7: {"label": (None, "ham")},
    }
    print(f"  removed ids {d.removed()['id'].to_pylist()}, added ids {d.added()['id'].to_pylist()}")
    assert sorted(d.removed()["id"].to_pylist()) == [2, 6] and d.added()["id"].to_pylist() == [9]

    # 6. The change feed since the v2 training set, commit by commit.
    feed = {}
    for table in ds.changes(since="train-v2"):
        kinds = table["_change_type"].to_pylist()
        version = table["_commit_version"][0].as_py()
        print(
            f"  version {version}: " + ", ".join(sorted({f"{kinds.count(k)} {k}" for k in kinds}))
        )
        feed[version] = sorted(kinds)
    pre, post = "update_preimage", "update_postimage"
    assert feed == {
        1: ["delete", "delete"],
        2: [post, pre],
        3: [post, pre],
        4: ["insert", post, pre],
    }

    # 7. Every reader sees the same rows, SQL included.
    counts = ds.sql("SELECT label, count(*) AS n FROM self GROUP BY label ORDER BY label")
    rows = counts.fetchall()
    print(rows)
    assert rows == [("ham", 6), ("spam", 1)]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "lake")
