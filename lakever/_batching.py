"""Regrouping Arrow tables or record batches into pieces of a fixed number of rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["fits", "regroup"]


class _Sliceable(Protocol):
    @property
    def num_rows(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def get_total_buffer_size(self) -> int: ...

    def slice(self, offset: int = 0, length: int | None = None) -> Any: ...


T = TypeVar("T", bound=_Sliceable)
U = TypeVar("U")


def regroup(
    items: Iterable[T], size: int, concat: Callable[[list[T]], U], max_bytes: int | None = None
) -> Iterator[U]:
    """Yield pieces of exactly ``size`` rows (the last may be shorter), in order. With
    ``max_bytes``, a piece also ends before the item that would take it past that many
    bytes (``nbytes``; a single item larger than that is a piece of its own)."""
    pending: list[T] = []
    weights: list[int] = []  # each pending part's bytes: an upper bound until checked
    checked = held = n = 0
    for item in items:
        while item.num_rows:
            take = min(size - n, item.num_rows)
            part = item.slice(0, take)
            item = item.slice(take)
            if max_bytes is not None:
                # The buffers' size bounds nbytes from above and costs nothing; nbytes
                # (what a slice references; ~12 us for a small table) is counted only
                # when that bound would pass the limit, and once per part.
                weight = part.get_total_buffer_size()
                if pending and held + weight > max_bytes:
                    for i in range(checked, len(pending)):
                        exact = pending[i].nbytes
                        held += exact - weights[i]
                        weights[i] = exact
                    checked = len(pending)
                    weight = part.nbytes
                    if held + weight > max_bytes:
                        yield concat(pending)
                        pending, weights, checked, held, n = [], [], 0, 0, 0
                weights.append(weight)
                held += weight
            pending.append(part)
            n += take
            if n == size:
                yield concat(pending)
                pending, weights, checked, held, n = [], [], 0, 0, 0
    if n:
        yield concat(pending)


def fits(item: _Sliceable, max_bytes: int) -> bool:
    """Whether ``item`` holds at most ``max_bytes`` (``nbytes``), checked cheaply first."""
    return item.get_total_buffer_size() <= max_bytes or item.nbytes <= max_bytes
