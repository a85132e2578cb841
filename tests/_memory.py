"""``memory://`` objects that outlive the test that made them.

tests/conftest.py drops every ``memory://`` object a test created when the test ends; a
module-level cache that builds a dataset once for many tests (tests/test_faults.py's
templates) names its location here to keep it.
"""

from __future__ import annotations

#: Store-key prefixes (``/root/...``) of the memory objects to keep.
KEPT: set[str] = set()


def keep(uri: str) -> str:
    """Keep every object under the ``memory://`` location ``uri``; return ``uri``."""
    KEPT.add("/" + uri.removeprefix("memory://").strip("/") + "/")
    return uri
