"""``lakever log --graph``: commits of one or all branches drawn like ``git log --graph``."""

from __future__ import annotations

import lakever as lv


def collect_graph(ds: lv.Dataset, *, all_branches: bool) -> list[lv.Commit]:
    """Commits reachable from the branch head(s), through merge parents too, newest first."""
    heads = (
        [ds]
        if not all_branches
        else [lv.open_dataset(ds.uri, branch=b.name) for b in ds.branches()]
    )
    seen: dict[str, lv.Commit] = {}
    todo = list(heads)
    while todo:
        view = todo.pop()
        for c in view.history():
            if c.snapshot_id in seen:
                break  # the rest of this line is known already
            seen[c.snapshot_id] = c
            if c.merge_parent_id and c.merge_parent_id not in seen:
                todo.append(lv.open_dataset(ds.uri, version=c.merge_parent_id))
    return sorted(seen.values(), key=lambda c: (c.timestamp, c.version), reverse=True)


def branch_heads(ds: lv.Dataset) -> dict[str, list[str]]:
    """snapshot id -> names of the branches and tags that point at it."""
    out: dict[str, list[str]] = {}
    for b in ds.branches():
        out.setdefault(b.head_snapshot_id, []).append(b.name)
    for t in ds.tags():
        out.setdefault(t.snapshot_id, []).append(f"tag: {t.name}")
    return out


def draw_graph(commits: list[lv.Commit], labels: dict[str, list[str]]) -> list[str]:
    """Lay commits out in lanes: one column per line of history being followed."""
    lanes: list[str] = []
    lines: list[str] = []
    for c in commits:
        if c.snapshot_id in lanes:
            col = lanes.index(c.snapshot_id)
        else:
            lanes.append(c.snapshot_id)
            col = len(lanes) - 1
        # Lanes waiting for the same commit join here.
        joined = [i for i, sid in enumerate(lanes) if sid == c.snapshot_id and i != col]
        cells = ["*" if i == col else "|" for i in range(len(lanes))]
        names = labels.get(c.snapshot_id)
        ref = f" ({', '.join(names)})" if names else ""
        lines.append(
            f"{' '.join(cells)}  v{c.version} {c.snapshot_id[:10]} {c.operation}{ref}"
            + (f"  {c.message}" if c.message else "")
        )
        for i in reversed(joined):
            del lanes[i]
        if joined:
            lines.append(" ".join(["|"] * (col + 1)) + "/" if col + 1 < len(lanes) + 1 else "")
        parents = [p for p in (c.parent_id, c.merge_parent_id) if p]
        if not parents:
            lanes.pop(col)
            continue
        lanes[col] = parents[0]
        if len(parents) == 2 and parents[1] not in lanes:
            lanes.insert(col + 1, parents[1])
            lines.append(" ".join(["|"] * (col + 1)) + "\\")
    return [line for line in lines if line]
