"""Functions the engine tests run on Ray and Dask workers.

They live in an importable module (``tests._engine_fns``: the workers have the
checkout's root on ``PYTHONPATH``), since workers import functions by module name.
"""

from __future__ import annotations

import os
from typing import Any


def _first_id(batch: Any) -> int:
    ids = batch["id"]
    return int(ids.iloc[0] if hasattr(ids, "iloc") else ids[0])


def boom(batch: Any) -> Any:
    """The input pipeline fails for rows from id 300 on (Arrow or pandas batches)."""
    if len(batch) and _first_id(batch) >= 300:
        raise RuntimeError("the input pipeline failed")
    return batch


def die(part: Any) -> Any:
    """The worker process dies on the partition holding id 200."""
    if len(part) and _first_id(part) >= 200:
        os._exit(1)
    return part
