"""Other engines and formats: Ray Data and Dask read and write lakever datasets; an
export publishes a lakever history as a Delta Lake or Apache Iceberg table over the
same Parquet files (no data copied).

Each module imports its engine at call time (``import lakever`` does not load Ray,
Dask, deltalake or pyiceberg) and names the extra to install when it is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lakever.errors import MissingDependency

__all__ = ["require"]


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
