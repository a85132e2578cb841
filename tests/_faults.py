"""Fault injection at the storage seam: a `Storage` wrapper that fails its Nth call.

`FaultyStorage` delegates every method of the three roles (`lakever.storage.base`)
to an inner storage and counts the calls that reach the backend (reads and writes;
the engine hand-off methods only describe paths and are forwarded uncounted). A
`FaultPlan`, shared by every storage opened while `inject` is active, decides what
happens at call number ``at``:

* ``raise``: the call fails before reaching the backend with the error a backend
  raises: `StorageError` (the seam's rule for failures), or ``OSError(EIO)`` with
  ``error="oserror"`` (what an fsspec or object-store client lets through);
* ``crash``: the process "dies" at the call: `Crash`, a `BaseException` that no
  ``except Exception`` in lakever catches, and every later call crashes too, so
  nothing after the fault reaches storage. The test then reopens the dataset from a
  fresh plain storage, as a new process would;
* ``ambiguous``: a write (``put_if_absent``, ``write_new``, ``write_new_stream``,
  ``write_hint``, ``delete``, ``flush``) is performed by the backend and *then* fails, as a client
  timeout after the request was sent does on an object store. On a read it
  behaves like ``raise``.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lakever.storage
from lakever.errors import StorageError
from lakever.storage import ObjectStorage, Storage, StoredFile
from lakever.storage.base import ByteSink
from lakever.storage.cache import CacheView

Mode = Literal["raise", "crash", "ambiguous"]
ErrorKind = Literal["storage", "oserror"]

#: Methods that reach the backend, in the order of the roles.
READS = ("read_bytes", "exists", "list")
WRITES = (
    "write_new",
    "write_new_stream",
    "delete",
    "delete_many",
    "flush",
    "put_if_absent",
    "write_hint",
)

#: Every module that imported ``open_storage`` by name (``grep -rn "import open_storage"``).
PATCHED_MODULES = ("lakever.storage", "lakever.api", "lakever.catalog", "lakever.remote")


class Crash(BaseException):
    """The simulated death of the process at a storage call (never caught by lakever)."""


@dataclass
class FaultPlan:
    """Counts storage calls; fails call number ``at`` (1-based) as ``mode`` says."""

    mode: Mode | None = None
    at: int | None = None
    error: ErrorKind = "storage"
    calls: list[tuple[str, str]] = field(default_factory=list)
    fired: tuple[str, str] | None = None
    dead: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arm(self, mode: Mode | None = None, at: int | None = None) -> None:
        """Start counting from zero; fail call ``at`` with ``mode`` (None: only count)."""
        with self._lock:
            self.mode, self.at = mode, at
            self.calls, self.fired, self.dead = [], None, False

    def disarm(self) -> None:
        """Stop failing (calls are still counted)."""
        with self._lock:
            self.mode, self.at = None, None

    def _tick(self, method: str, rel: str) -> Mode | None:
        with self._lock:
            if self.dead:
                return "crash"
            self.calls.append((method, rel))
            if self.mode is None or len(self.calls) != self.at:
                return None
            self.fired = (method, rel)
            if self.mode == "crash":
                self.dead = True
            return self.mode

    def failure(self, method: str, path: str) -> BaseException:
        """The exception a failing ``method`` call on ``path`` raises."""
        if self.error == "oserror":
            return OSError(errno.EIO, f"injected I/O error in {method}", path)
        return StorageError(f"cannot {method} {path}: injected I/O error", path=path)


class FaultyStorage(Storage):
    """A `Storage` that forwards everything to ``inner`` and fails as ``plan`` says."""

    def __init__(self, inner: Storage, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan
        self.uri = inner.uri
        self.protocol = inner.protocol

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy shipped to a worker is the plain inner storage: faults stay in this process.
        return self.inner.__reduce__()

    def _call(self, method: str, rel: str, *args: Any) -> Any:
        action = self.plan._tick(method, rel)
        fn = getattr(self.inner, method)
        if action is None:
            return fn(*args)
        if action == "crash":
            raise Crash(f"process died at {method}({rel!r})")
        if action == "ambiguous" and method in WRITES:
            fn(*args)  # it happened; the caller just never hears so
        raise self.plan.failure(method, self.inner.full_path(rel))

    # Objects
    def read_bytes(self, rel: str) -> bytes:
        data: bytes = self._call("read_bytes", rel, rel)
        return data

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        self._call("write_new", rel, rel, data)

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        # One call, like write_new: a fault fails it before a byte is produced (or, when
        # ambiguous, after the object was stored).
        self._call("write_new_stream", rel, rel, produce)

    def exists(self, rel: str) -> bool:
        return bool(self._call("exists", rel, rel))

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        found: Sequence[StoredFile] = self._call("walk", rel_dir, rel_dir)
        return found

    def delete_many(self, rels: Sequence[str]) -> None:
        self._call("delete_many", rels[0] if rels else "", rels)

    def list(self, rel_dir: str) -> list[str]:
        names: list[str] = self._call("list", rel_dir, rel_dir)
        return names

    def names_after(self, rel_dir: str, after: str, limit: int) -> list[str] | None:
        names: list[str] | None = self._call("names_after", rel_dir, rel_dir, after, limit)
        return names

    def read_object(self, rel: str, content_hash: str) -> bytes:
        data: bytes = self._call("read_object", rel, rel, content_hash)
        return data

    def delete(self, rel: str) -> None:
        self._call("delete", rel, rel)

    def flush(self) -> None:
        self._call("flush", "")

    # Atomic
    def put_if_absent(self, rel: str, data: bytes) -> bool:
        return bool(self._call("put_if_absent", rel, rel, data))

    def write_hint(self, rel: str, data: bytes) -> None:
        self._call("write_hint", rel, rel, data)

    # Engines: paths and filesystems, no I/O of their own (engines read around the seam).
    def full_path(self, rel: str) -> str:
        return self.inner.full_path(rel)

    def arrow_filesystem(self) -> Any:
        return self.inner.arrow_filesystem()

    def fsspec_filesystem(self) -> Any:
        return self.inner.fsspec_filesystem()

    @property
    def is_local(self) -> bool:
        return self.inner.is_local

    def engine_view(self) -> Storage:
        # An object store's engines read its local cache; fetches into it go through
        # this wrapper (and fail as planned).
        if isinstance(self.inner, ObjectStorage):
            return CacheView(self, self.inner.cache)
        return self

    def location(self, rel: str) -> str:
        return self.inner.location(rel)


@contextlib.contextmanager
def inject(plan: FaultPlan) -> Iterator[FaultPlan]:
    """Make every `open_storage` (wherever it was imported) return a `FaultyStorage`."""
    import importlib

    real = lakever.storage.open_storage

    def faulty_open(uri: str, storage_options: dict[str, Any] | None = None) -> Storage:
        return FaultyStorage(real(uri, storage_options), plan)

    modules = [importlib.import_module(m) for m in PATCHED_MODULES]
    saved = [m.open_storage for m in modules]  # type: ignore[attr-defined]
    for m in modules:
        m.open_storage = faulty_open  # type: ignore[attr-defined]
    try:
        yield plan
    finally:
        for m, original in zip(modules, saved, strict=True):
            m.open_storage = original  # type: ignore[attr-defined]


def forget_caches() -> None:
    """Clear lakever's process-wide caches, as a freshly started process has none."""
    from lakever import _metafiles, deletion, integrity, log, manifests, planner

    integrity.forget()
    for lru in (log._DECODED, manifests._CACHE, deletion._CACHE, planner._BOUND, planner._PRUNED):
        lru.clear()
    with _metafiles._lock:
        _metafiles._schemas.clear()
        _metafiles._contracts.clear()
