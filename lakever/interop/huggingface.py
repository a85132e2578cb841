"""Hugging Face ``datasets``: a snapshot as a ``datasets.Dataset`` (`Dataset.to_huggingface`).

The snapshot's rows are read once into an Arrow table (`Dataset.to_arrow`, with the
projection and the filter); ``datasets.Dataset`` then wraps that table in memory
without copying its buffers (its ``InMemoryTable``). The one exception is a
dictionary-encoded column, which ``datasets`` decodes to its value type (a copy of that
column). Nothing is written to the ``datasets`` cache directory; ``save_to_disk`` or a
``map`` writes copies, as they always do.

The read is traceable: the Dataset's ``info.description`` starts with
``lakever pin: <pin>`` (`Dataset.pin`, which `lakever.open_dataset` reopens) and names
the columns and the filter, and its fingerprint is derived from them, so two calls on
the same snapshot, columns and filter have the same fingerprint.

``datasets`` is imported when this runs (``pip install 'lakever[huggingface]'``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.errors import InvalidArgument
from lakever.interop import require

if TYPE_CHECKING:
    import datasets  # type: ignore[import-untyped]

    from lakever.reader import ScanPlan

__all__ = ["PIN_PREFIX", "pin_of", "to_dataset"]

#: How ``info.description`` of a Dataset made by `to_dataset` starts (then the pin).
PIN_PREFIX = "lakever pin: "


def _check_features(hf: Any, schema: pa.Schema) -> None:
    """Refuse columns ``datasets`` has no feature type for (maps, list views...)."""
    bad = []
    for f in schema:
        try:
            hf.Features.from_arrow_schema(pa.schema([f]))
        except (ValueError, TypeError, NotImplementedError):
            bad.append(f"{f.name} ({f.type})")
    if bad:
        raise InvalidArgument(
            f"Hugging Face datasets cannot hold column(s) {', '.join(bad)}: it has no feature "
            "type for them; leave them out with columns=[...], or read with to_arrow()"
        )


def to_dataset(plan: ScanPlan, pin: str) -> datasets.Dataset:
    """The rows ``plan`` reads (exactly `Dataset.to_arrow`'s) as a ``datasets.Dataset``;
    ``pin`` is the pin of the plan's snapshot.

    Raises:
        MissingDependency: ``datasets`` is not installed (extra ``huggingface``).
        InvalidArgument: a column type ``datasets`` cannot hold.
        CorruptData: a fragment is missing or damaged.
    """
    from lakever import sqlplan

    hf = require("datasets", "huggingface")
    _check_features(hf, plan.output_schema)
    table = sqlplan.read_exact(plan)
    if table is None:
        table = plan.to_arrow()
    what = {"columns": list(plan.columns), "filter": plan.filter_text}
    description = f"{PIN_PREFIX}{pin}\n{json.dumps(what, sort_keys=True)}"
    fingerprint = hashlib.sha256(description.encode()).hexdigest()[:32]
    name = plan.uri.rstrip("/").rsplit("/", 1)[-1]
    info = hf.DatasetInfo(description=description, dataset_name=name)
    out: datasets.Dataset = hf.Dataset(table, info=info, fingerprint=fingerprint)
    return out


def pin_of(dataset: Any) -> str | None:
    """The lakever pin a ``datasets.Dataset`` made by `to_dataset` was read from (None: it
    was not made by `to_dataset`)."""
    description = getattr(getattr(dataset, "info", None), "description", None) or ""
    first = description.split("\n", 1)[0]
    return first[len(PIN_PREFIX) :] if first.startswith(PIN_PREFIX) else None
