"""Regrouping Arrow tables or record batches into pieces of a fixed number of rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["regroup"]


class _Sliceable(Protocol):
    @property
    def num_rows(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def slice(self, offset: int = 0, length: int | None = None) -> Any: ...


T = TypeVar("T", bound=_Sliceable)


def regroup(
    items: Iterable[T], size: int, concat: Callable[[list[T]], T], max_bytes: int | None = None
) -> Iterator[T]:
    """Yield pieces of exactly ``size`` rows (the last may be shorter), in order. With
    ``max_bytes``, a piece also ends as soon as it holds that many bytes (``nbytes``):
    at most ``max_bytes`` plus one item are held, however wide the rows."""
    pending: list[T] = []
    n = held = 0
    for item in items:
        while item.num_rows:
            take = min(size - n, item.num_rows)
            part = item.slice(0, take)
            pending.append(part)
            n += take
            held += 0 if max_bytes is None else part.nbytes
            item = item.slice(take)
            if n == size or (max_bytes is not None and held >= max_bytes):
                yield concat(pending)
                pending, n, held = [], 0, 0
    if n:
        yield concat(pending)
