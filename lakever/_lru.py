"""One thread-safe LRU map for the process-wide caches of values derived from
immutable inputs (bound filters, pruning results, manifests, deletion vectors,
verified files, decoded log entries)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["Lru", "by_identity"]


class Lru(Generic[K, V]):
    """An LRU map holding values of total ``weight`` at most ``budget``.

    ``weight`` gives a value's cost (default 1: ``budget`` counts items); a value heavier
    than the whole budget is not kept. With ``keep_first`` a key is written once (its
    value is derived from the key, e.g. a content hash); otherwise a put replaces it.
    """

    def __init__(
        self,
        budget: int,
        *,
        weight: Callable[[V], int] | None = None,
        keep_first: bool = False,
    ) -> None:
        self._budget = budget
        self._weight = weight
        self._keep_first = keep_first
        self._size = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def pop(self, key: K) -> None:
        """Forget ``key`` (nothing when absent)."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[1]

    def put(self, key: K, value: V) -> None:
        w = 1 if self._weight is None else self._weight(value)
        if w > self._budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                if self._keep_first:
                    self._items[key] = old
                    return
                self._size -= old[1]
            self._items[key] = (value, w)
            self._size += w
            while self._size > self._budget:
                _, (_, gone) = self._items.popitem(last=False)
                self._size -= gone

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


def by_identity(cache: Lru[int, tuple[Any, V]], obj: Any, make: Callable[[], V]) -> V:
    """``make()``, remembered in ``cache`` for the object ``obj`` itself (not for an equal
    one). The entry keeps ``obj``, so its id is not reused while remembered. Only for
    objects nobody changes once made (frozen records, schema and manifest records)."""
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = make()
    cache.put(id(obj), (obj, value))
    return value
