"""Racing merges and appends on main from several OS processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter

import pyarrow as pa
import pytest

import lakever as lv

WORKER = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    import lakever as lv

    uri, role, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    print("ready", flush=True)
    sys.stdin.readline()
    done = []
    if role == "append":
        start = int(arg)
        for i in range(8):
            ds = lv.open_dataset(uri).append(
                pa.table({"id": pa.array(range(start + 10 * i, start + 10 * i + 10), pa.int64())})
            )
            done.append(ds.version)
    else:
        for source in arg.split(","):
            ds = lv.open_dataset(uri).merge(source, message=f"merge {source}")
            done.append(ds.version)
    print(json.dumps(done), flush=True)
    """
)


def _ids(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


@pytest.mark.slow
def test_racing_merges_and_appends(local_location):
    ds = lv.create_dataset(local_location, _ids(0, 5))
    expected = list(range(5))
    for b in range(4):
        branch = ds.branch(f"b{b}")
        for k in range(2):
            start = 100_000 * (b + 1) + 10 * k
            branch = branch.append(_ids(start, 10))
            expected += range(start, start + 10)
    workers = [("append", "1000"), ("append", "2000"), ("merge", "b0,b1"), ("merge", "b2,b3")]
    for role, arg in workers:
        if role == "append":
            expected += range(int(arg), int(arg) + 80)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, local_location, role, arg],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role, arg in workers
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    final = lv.open_dataset(local_location)
    got = final.to_arrow()["id"].to_pylist()
    assert Counter(got) == Counter(expected)  # every row exactly once
    history = final.history()
    assert [c.version for c in history] == list(range(final.version, -1, -1))
    merges = [c for c in history if c.operation == "merge"]
    assert len(merges) == 4
    assert all(c.merge_parent_id for c in merges)
    acknowledged = [v for r in results for v in r]
    assert len(set(acknowledged)) == len(acknowledged) == 20


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_a_delete_never_records_a_ref_it_did_not_remove(local_location, monkeypatch, kind):
    # Deleting read the ref, then removed whatever held the name: with the ref deleted
    # and created again in between (by another process; here forced), the new one was
    # removed while the audit trail recorded the old one twice, and two deletes of one
    # ref both succeeded. Now the delete takes the file in one step and records what it
    # took: the history of the name stays create, delete, create, delete.
    from lakever import refs

    main = lv.create_dataset(local_location, pa.table({"id": [0]}))
    get = refs.get_branch if kind == "branch" else refs.get_tag
    field = "id" if kind == "branch" else "snapshot_id"

    def ident() -> str:
        found = get(main._storage, "b")
        assert found is not None
        return str(getattr(found, field))

    main.branch("b") if kind == "branch" else main.tag("b")
    first = ident()
    second: list[str] = []

    def interleaved(storage, name):
        found = get(storage, name)  # the deleter has read the first ref
        monkeypatch.setattr(refs, f"get_{kind}", get)
        if kind == "branch":  # another writer deletes it and makes it again, and commits
            main.delete_branch("b")
            main.branch("b").append(pa.table({"id": [42]}))
        else:
            main.delete_tag("b")
            main.append(pa.table({"id": [1]})).tag("b")
        second.append(ident())
        return found

    monkeypatch.setattr(refs, f"get_{kind}", interleaved)
    main.delete_branch("b") if kind == "branch" else main.delete_tag("b")
    assert second and second[0] != first
    events = [e for e in refs.list_events(main._storage) if e["kind"] == kind]
    assert [(e["action"], e[field]) for e in events] == [
        ("create", first),
        ("delete", first),
        ("create", second[0]),
        ("delete", second[0]),
    ]
    assert get(main._storage, "b") is None


@pytest.mark.parametrize("kind", ["branch", "tag"])
def test_of_concurrent_deletes_of_one_ref_one_succeeds(local_location, kind):
    import threading

    main = lv.create_dataset(local_location, pa.table({"id": [0]}))
    outcomes: list[str] = []

    def delete(start: threading.Barrier) -> None:
        start.wait()
        try:
            main.delete_branch("b") if kind == "branch" else main.delete_tag("b")
            outcomes.append("deleted")
        except lv.RefNotFound:
            outcomes.append("not found")

    for round_ in range(20):
        main.branch("b") if kind == "branch" else main.tag("b")
        outcomes.clear()
        start = threading.Barrier(4)
        threads = [threading.Thread(target=delete, args=(start,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("deleted") == 1, (round_, outcomes)
