"""Reading version-1 manifests: statistics as one JSON object per fragment (lakever 0.2).

Version-1 files are still read (docs/format.md section 3); nothing writes them. Their
entries are parsed and checked here, one by one; `lakever.manifests` then holds them
like any other manifest.
"""

from __future__ import annotations

import functools
import json

import pyarrow as pa

from lakever.format import (
    DeletionVector,
    FragmentEntry,
    check_object_id,
    check_relative,
    parse_partition,
)

__all__ = ["parse_v1"]


def parse_v1(table: pa.Table) -> list[FragmentEntry]:
    """The entries of a version-1 manifest (statistics as one JSON object per fragment)."""
    cols = table.to_pydict()
    # Manifests written before deletion vectors existed have no such column.
    dvs = cols.get("deletion_vector") or [None] * table.num_rows
    # A manifest holds few distinct partition records: parse each once.
    partitions = functools.lru_cache(maxsize=None)(parse_partition)
    # One JSON parse for the whole column: ~3x faster than one per fragment.
    all_stats = json.loads("[" + ",".join(cols["stats"]) + "]") if cols["stats"] else []
    if len(all_stats) != table.num_rows or not all(isinstance(x, dict) for x in all_stats):
        raise ValueError("the stats column does not hold one JSON object per fragment")
    entries = [
        FragmentEntry(
            path=check_relative(p),
            num_rows=n,
            size_bytes=s,
            content_hash=h,
            stats={int(k): v for k, v in st.items()},
            schema_id=check_object_id(sid),
            partition=partitions(part),
            deletion=DeletionVector.from_json(dv),
        )
        for p, n, s, h, st, sid, part, dv in zip(
            cols["path"],
            cols["num_rows"],
            cols["size_bytes"],
            cols["content_hash"],
            all_stats,
            cols["schema_id"],
            cols.get("partition") or [None] * len(cols["path"]),
            dvs,
            strict=True,
        )
    ]
    if any(e.deleted_rows > e.num_rows for e in entries):
        raise ValueError("a deletion vector deletes more rows than its fragment has")
    return entries
