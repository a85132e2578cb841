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

__all__ = ["check_shared", "describe", "require"]


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


def describe(exc: BaseException) -> str:
    """What went wrong inside an engine's error, as ``Type: message`` (no colours).

    Ray keeps the worker's own exception only as text in its wrapper's message (the
    remote traceback), so the first ``SomeError: message`` line there is preferred;
    otherwise the innermost cause.
    """
    import re

    chain, seen = [exc], {id(exc)}
    while True:
        inner = getattr(chain[-1], "cause", None) or chain[-1].__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            break
        seen.add(id(inner))
        chain.append(inner)
    raised = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$")
    for e in chain:
        for line in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines():
            found = raised.match(line)
            if found and not found.group(1).startswith("ray."):
                return f"{found.group(1)}: {found.group(2).strip()}"
    root = chain[-1]
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    return f"{type(root).__name__}: {lines[0] if lines else ''}"
