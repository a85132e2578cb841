"""Thread pools that survive a fork: a forked child gets a new pool on first use
(threads do not survive a fork, and a copied pool would wait for them forever)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["ForkSafePool"]


class ForkSafePool:
    """A lazily made `ThreadPoolExecutor` of ``workers`` threads, one per process."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        """This process's pool."""
        with self._lock:
            if self._pool is None or os.getpid() != self._pid:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
                self._pid = os.getpid()
            return self._pool
