"""The one retry policy of the commit protocol: a bound, and exponential backoff with jitter.

A writer that loses the race for a version re-reads the winners, re-checks its
requirements and tries again on top of them (`lakever.log.Line.commit`); a merge
whose target moved re-plans (`lakever._merge_commit`). Both draw their attempts
from `RetryPolicy.attempts`, so retries are bounded in number and in time, and
contending writers spread out (full jitter: each waits a random time up to a cap
that doubles per attempt) instead of spinning on the same version.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["COMMITS", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry after losing a race."""

    #: Attempts in all (the first one included).
    max_attempts: int = 200
    #: The first retries go at once: losing once or twice to a busy neighbour is normal.
    free_retries: int = 2
    #: Cap of the first wait, doubled per attempt up to ``max_delay`` (seconds).
    base_delay: float = 0.002
    max_delay: float = 0.25
    #: Stop retrying after this many seconds in all.
    deadline: float = 120.0

    def attempts(self) -> Iterator[int]:
        """Yield attempt numbers 0, 1, ...; wait before each retry; stop at the bound."""
        start = time.monotonic()
        for attempt in range(self.max_attempts):
            if attempt > self.free_retries:
                cap = min(self.max_delay, self.base_delay * 2 ** (attempt - self.free_retries))
                time.sleep(random.uniform(0, cap))
            if attempt and time.monotonic() - start > self.deadline:
                return
            yield attempt


#: The policy commits and merges use.
COMMITS = RetryPolicy()
