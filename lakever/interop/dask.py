"""Dask: read a snapshot as a Dask DataFrame, write a Dask DataFrame in one commit.

Reading (`to_dask`): one partition per read task of the scan plan (a fragment, or a
run of its row groups with ``max_rows_per_task``), each read by ``plan.read(task)``
on a worker, the code every local read runs (schema evolution by field id, deletion
vectors, projection, the residual filter). Every column is a ``pandas.ArrowDtype`` of
the column's exact Arrow type, so ``pa.Table.from_pandas(df.compute(),
preserve_index=False)`` gives back the snapshot's types. Divisions are unknown; each
partition has its own ``RangeIndex``.

Writing (`write`): each partition is written by a worker with the commit's
`lakever._writeplan.WritePlan` (conform, contract check, partitioning, fragments);
the workers return fragment entries and the caller commits them all at once.

Dask is imported when one of these runs (``pip install 'lakever[dask]'``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.errors import EngineError, InvalidArgument, LakeverError
from lakever.interop import check_shared, describe, require

if TYPE_CHECKING:
    import dask.dataframe
    import pandas as pd

    from lakever._writeplan import WritePlan
    from lakever.format import FragmentEntry
    from lakever.reader import ScanPlan
    from lakever.tasks import ReadTask

__all__ = ["read", "schema_of", "to_pandas", "write"]


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas with every column an ``ArrowDtype`` of its exact Arrow type."""
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _read_task(task: ReadTask, plan: ScanPlan) -> pd.DataFrame:
    return to_pandas(plan.read(task))


def read(plan: ScanPlan) -> dask.dataframe.DataFrame:
    """A Dask DataFrame over ``plan``: one partition per read task, in plan order."""
    dd = require("dask.dataframe", "dask")
    check_shared(plan.storage, "read")
    meta = to_pandas(plan.output_schema.empty_table())
    if not plan.tasks:
        empty: dask.dataframe.DataFrame = dd.from_pandas(meta, npartitions=1)
        return empty
    # Each partition carries the plan without its task list (the task comes as the
    # mapped argument), so the graph does not grow with the square of the task count.
    shell = replace(plan, tasks=())
    frame: dask.dataframe.DataFrame = dd.from_map(
        _read_task,
        list(plan.tasks),
        plan=shell,
        meta=meta,
        divisions=None,
        label=f"lakever-read-v{plan.version}",
        enforce_metadata=False,
    )
    return frame


def schema_of(data: Any) -> pa.Schema:
    """The Arrow schema of a Dask DataFrame, from its metadata (computes nothing).

    Raises:
        InvalidArgument: a column of ``object`` dtype, whose type only its values tell.
    """
    from lakever._convert import to_arrow_stream

    meta = data._meta
    vague = [str(c) for c, t in meta.dtypes.items() if t is object or str(t) == "object"]
    if vague:
        raise InvalidArgument(
            f"cannot tell the type of the Dask DataFrame's column(s) {vague}: their dtype is "
            "object; give them a concrete dtype first, e.g. "
            "df.astype({'col': 'string[pyarrow]'}) or pd.ArrowDtype(pa.list_(pa.int64()))"
        )
    schema, _ = to_arrow_stream(meta)
    return schema


def _write_part(part: Any, plan: WritePlan) -> list[FragmentEntry]:
    return plan.write_data(part)


def write(plan: WritePlan, data: Any) -> list[FragmentEntry]:
    """Write every partition of ``data`` on the current Dask scheduler (a distributed
    ``Client`` when one is active); return the fragment entries in partition order.

    Raises:
        LakeverError: the first partition's error (e.g. `ContractViolation`), as raised.
        EngineError: the computation failed for another reason (a worker died, the
            input's own computation raised).
    """
    dask = require("dask", "dask")
    parts = data.to_delayed()
    write_part = dask.delayed(_write_part, pure=False)
    jobs = [write_part(p, plan) for p in parts]
    try:
        results = dask.compute(*jobs)
    except LakeverError:
        raise
    except Exception as exc:
        raise EngineError(
            f"the Dask computation writing to {plan.storage.uri} failed ({describe(exc)}); "
            "nothing was committed, and the fragments written so far are removed by vacuum",
            engine="dask",
        ) from exc
    return [e for entries in results for e in entries]
