"""Other engines and formats: Ray Data and Dask read and write lakever datasets; an
export publishes a lakever history as a Delta Lake or Apache Iceberg table over the
same Parquet files (no data copied).

Each module imports its engine at call time (``import lakever`` does not load Ray,
Dask, deltalake or pyiceberg) and names the extra to install when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from lakever.errors import InvalidArgument, MissingDependency

if TYPE_CHECKING:
    from lakever.storage import Storage

__all__ = ["check_shared", "require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (e.g. "ray.data"), or raise `MissingDependency` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed; install it with: pip install 'lakever[{extra}]'",
            module=module,
            extra=extra,
        ) from exc


def check_shared(storage: Storage, what: str) -> None:
    """Refuse a dataset that only this process can reach (``memory://``)."""
    if storage.protocol == "memory":
        raise InvalidArgument(
            f"cannot {what} {storage.uri} from Ray or Dask workers: a memory:// dataset "
            "lives in this process only; use a local path or an object store URI"
        )
