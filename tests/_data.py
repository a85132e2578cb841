"""Small data builders shared by tests."""

from __future__ import annotations

import pyarrow as pa


def events(start: int, n: int) -> pa.Table:
    """``n`` rows with ids ``start .. start+n-1``: id, value, category."""
    ids = list(range(start, start + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "value": pa.array([(i % 100) / 100 for i in ids], pa.float64()),
            "category": pa.array(["abc"[i % 3] for i in ids], pa.string()),
        }
    )
