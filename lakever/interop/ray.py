"""Ray Data: read a snapshot as a Ray Dataset, write a Ray Dataset in one commit.

Reading (`read`): a `ray.data.Datasource` with one Ray read task per read task of the
scan plan (a fragment, or a run of its row groups with ``max_rows_per_task``), each
running ``plan.read(task)`` on a worker, the code every local read runs (schema
evolution by field id, deletion vectors, projection, the residual filter). Blocks
are Arrow tables of the plan's exact output schema. The Dataset's own context keeps
Ray's ``preserve_order`` on, so its rows come in plan order (the order of `to_arrow`).

Writing (`write`): every block of the input is written by a Ray task with the commit's
`lakever._writeplan.WritePlan` (conform, contract check, partitioning, fragments);
the tasks return fragment entries and the caller commits them all at once.

Ray is imported when one of these runs (``pip install 'lakever[ray]'``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakever.errors import EngineError, InvalidArgument, LakeverError
from lakever.interop import check_shared, describe, require

if TYPE_CHECKING:
    import ray.data

    from lakever._writeplan import WritePlan
    from lakever.format import FragmentEntry
    from lakever.reader import ScanPlan
    from lakever.tasks import ReadTask

__all__ = ["read", "schema_of", "write"]

#: Write tasks in flight at most per CPU of the cluster (bounds the blocks held).
_IN_FLIGHT_PER_CPU = 2


def _read_one(plan: ScanPlan, task: ReadTask | None) -> Iterable[pa.Table]:
    if task is None:  # an empty snapshot: one empty block carries the schema
        return [plan.output_schema.empty_table()]
    return [plan.read(task)]


def read(plan: ScanPlan) -> ray.data.Dataset:
    """A Ray Dataset over ``plan``: one read task per plan task, rows in plan order."""
    data = require("ray.data", "ray")
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource
    from ray.data.datasource import ReadTask as RayReadTask

    check_shared(plan.storage, "read")
    # Each read task carries the plan with only its own task (not the whole list).
    shell = replace(plan, tasks=())
    schema = plan.output_schema
    tasks: list[ReadTask | None] = list(plan.tasks) or [None]

    class LakeverDatasource(Datasource):
        def get_name(self) -> str:
            return "Lakever"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            out = []
            for t in tasks:
                meta = BlockMetadata(
                    num_rows=None,
                    size_bytes=None if t is None else t.size_bytes,
                    input_files=None if t is None else (t.path,),
                    exec_stats=None,
                )
                out.append(
                    RayReadTask(
                        functools.partial(_read_one, shell, t),
                        meta,
                        schema=schema,
                        per_task_row_limit=per_task_row_limit,
                    )
                )
            return out

    source = LakeverDatasource()  # type: ignore[no-untyped-call]
    ds: ray.data.Dataset = data.read_datasource(source, override_num_blocks=len(tasks))
    ds.context.execution_options.preserve_order = True
    return ds


def schema_of(data: Any) -> pa.Schema:
    """The Arrow schema of a Ray Dataset (Ray may run part of the pipeline to know it).

    Raises:
        InvalidArgument: the Dataset has no schema (nothing to tell the columns by), or a
            column whose type Ray reports as a Python object.
    """
    found = data.schema()
    if found is None:
        raise InvalidArgument(
            "cannot write a Ray Dataset without a schema (an empty Dataset with no columns)"
        )
    base = found.base_schema
    if isinstance(base, pa.Schema):
        return base.remove_metadata()
    pairs = list(zip(found.names, found.types, strict=True))
    vague = [n for n, t in pairs if not isinstance(t, pa.DataType)]
    if vague:
        raise InvalidArgument(
            f"cannot tell the type of the Ray Dataset's column(s) {vague}: Ray reports them "
            "as Python objects; convert the blocks to Arrow first, e.g. "
            "ds.map_batches(fn, batch_format='pyarrow')"
        )
    return pa.schema(pairs)


def _write_block(plan: WritePlan, block: Any) -> list[FragmentEntry]:
    return plan.write_data(block)


def write(plan: WritePlan, data: Any) -> list[FragmentEntry]:
    """Write every block of ``data`` in a Ray task; return the fragment entries in the
    order Ray yields the blocks (the Dataset's order when its ``preserve_order`` is on).

    Raises:
        LakeverError: a block's error (e.g. `ContractViolation`), as the worker raised it.
        EngineError: the job failed for another reason (a worker died, the input's own
            pipeline raised).
    """
    ray = require("ray", "ray")
    remote = ray.remote(_write_block)
    plan_ref = ray.put(plan)
    limit = max(1, int(ray.cluster_resources().get("CPU", 1)) * _IN_FLIGHT_PER_CPU)
    refs: list[Any] = []
    try:
        pending: list[Any] = []
        for bundle in data.iter_internal_ref_bundles():
            for block in bundle.block_refs:
                while len(pending) >= limit:
                    _, pending = ray.wait(pending, num_returns=1)
                ref = remote.remote(plan_ref, block)
                refs.append(ref)
                pending.append(ref)
        results = ray.get(refs)
    except Exception as exc:
        for ref in refs:
            ray.cancel(ref)
        found = _lakever_cause(exc)
        if found is not None:
            raise found from None
        raise EngineError(
            f"the Ray job writing to {plan.storage.uri} failed ({describe(exc)}); nothing "
            "was committed, and the fragments written so far are removed by vacuum",
            engine="ray",
        ) from exc
    return [e for entries in results for e in entries]


def _lakever_cause(exc: BaseException) -> LakeverError | None:
    """The lakever error a worker raised, inside Ray's wrappers (None: there is none).

    Ray's ``RayTaskError`` keeps the worker's exception as ``.cause``; the error it
    raises is also made an instance of that class, so only a class defined by lakever
    itself counts."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, LakeverError) and type(e).__module__.startswith("lakever."):
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None
