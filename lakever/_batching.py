"""Regrouping Arrow tables or record batches into pieces of a fixed number of rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["regroup"]


class _Sliceable(Protocol):
    @property
    def num_rows(self) -> int: ...

    def slice(self, offset: int = 0, length: int | None = None) -> Any: ...


T = TypeVar("T", bound=_Sliceable)


def regroup(items: Iterable[T], size: int, concat: Callable[[list[T]], T]) -> Iterator[T]:
    """Yield pieces of exactly ``size`` rows (the last may be shorter), in order."""
    pending: list[T] = []
    n = 0
    for item in items:
        while item.num_rows:
            take = min(size - n, item.num_rows)
            pending.append(item.slice(0, take))
            n += take
            item = item.slice(take)
            if n == size:
                yield concat(pending)
                pending, n = [], 0
    if n:
        yield concat(pending)
