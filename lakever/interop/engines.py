"""Which engine holds the data to write, and handing a write to it.

`lakever._writer.commit_data` asks `distributed_engine` whether the data is a Ray
Dataset or a Dask DataFrame (without importing either engine); if so, the engine's
module (`lakever.interop.ray`, `lakever.interop.dask`) tells its schema and writes it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from lakever.errors import InvalidArgument
from lakever.interop import check_shared

if TYPE_CHECKING:
    import pyarrow as pa

    from lakever._writeplan import WritePlan
    from lakever.format import FragmentEntry
    from lakever.storage import Storage

__all__ = ["distributed_engine", "engine_schema", "write_distributed"]


def distributed_engine(data: Any) -> str | None:
    """``"ray"`` for a Ray Dataset, ``"dask"`` for a Dask DataFrame, else None.

    Judged by the class's module, so neither engine is imported to tell.
    """
    cls = type(data)
    module = cls.__module__ or ""
    if module.startswith("ray.data.") and cls.__name__ in ("Dataset", "MaterializedDataset"):
        return "ray"
    if (module == "dask" or module.startswith(("dask.", "dask_expr"))) and hasattr(
        data, "to_delayed"
    ):
        if cls.__name__ != "DataFrame":
            raise InvalidArgument(
                f"cannot write a Dask {cls.__name__}; write a Dask DataFrame "
                "(e.g. series.to_frame())"
            )
        return "dask"
    return None


def _engine(engine: str) -> ModuleType:
    if engine == "ray":
        from lakever.interop import ray

        return ray
    from lakever.interop import dask

    return dask


def engine_schema(engine: str, storage: Storage, data: Any) -> pa.Schema:
    """The Arrow schema of a Ray Dataset or Dask DataFrame about to be written to ``storage``.

    Raises:
        InvalidArgument: ``storage`` is in this process's memory (workers cannot reach it),
            or a column's type cannot be told without computing the data.
    """
    check_shared(storage, "write to")
    schema: pa.Schema = _engine(engine).schema_of(data)
    return schema


def write_distributed(engine: str, plan: WritePlan, data: Any) -> list[FragmentEntry]:
    """Write ``data`` on the engine's workers, each part with ``plan.write_data``; return
    every fragment entry, in the data's order. Nothing is committed here."""
    entries: list[FragmentEntry] = _engine(engine).write(plan, data)
    return entries
