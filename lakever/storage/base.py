"""The storage seam, split by job: bytes, commit atomicity, and engine hand-off.

Every byte lakever reads or writes goes through a `Storage`. Its methods fall in
three roles, each a small interface a backend implements:

* `Objects` -- bytes: read an object, create a new immutable one (whole, or streamed
  from a producer), list, delete. ``write_new`` / ``write_new_stream`` objects
  (fragments, manifests) are durable once ``flush`` returns.
* `Atomic` -- the commit protocol's one atomic step: ``put_if_absent`` creates an
  object only if the name is free, and it appears complete or not at all; a log
  entry becomes visible through it. ``write_hint`` overwrites advisory objects.
* `Engines` -- handing files to engines: the paths and filesystems pyarrow, DuckDB
  and polars read fragments through.

Failures of the backend itself (permission denied, a file where a directory
should be, no space left) raise `StorageError` naming the path; only "absent"
(``FileNotFoundError`` from ``read_bytes``) and "name taken" (``FileExistsError``
from ``write_new``) are signals callers act on. The seam enforces this: any other
``OSError`` a backend's ``Objects``/``Atomic`` method lets through (an fsspec or
object-store client error) is turned into a `StorageError` naming the call and the
path (`Storage.__init_subclass__`), so it never reaches lakever's callers raw.

A backend that cannot prove an atomic create refuses to write (`StorageError`)
instead of falling back to check-then-write, which would let two writers both
believe they committed. A cache or an object store slots in by implementing the
roles; the rest of lakever never looks past them.

A `Storage` pickles: it is reopened from its location and options (read tasks and
datasets are shipped to workers that way).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lakever.errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["Atomic", "ByteSink", "Engines", "FileRef", "Objects", "Storage", "StoredFile"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An object as a listing shows it (`Objects.walk`)."""

    #: Path relative to the dataset root.
    path: str
    size: int
    #: Last modification, POSIX seconds, by the storage's clock (an object store's own).
    modified: float


class FileRef(Protocol):
    """An immutable file as its manifest entry records it (a fragment entry, a read task)."""

    @property
    def path(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def content_hash(self) -> str: ...


class ByteSink(Protocol):
    """Where the producer of `Objects.write_new_stream` writes the object's bytes, in order."""

    def write(self, data: bytes | memoryview, /) -> None: ...


class Objects(ABC):
    """Bytes: objects addressed by '/'-separated paths relative to the dataset root."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """Return the whole object; raise FileNotFoundError if absent."""

    @abstractmethod
    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        """Create a new immutable object; raise FileExistsError if the name is taken."""

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        """Create a new immutable object from the bytes ``produce`` writes to the sink it
        is given; raise FileExistsError if the name is taken.

        The object is the one ``write_new(rel, <those bytes>)`` would create, with the
        same guarantees (durable once ``flush`` returns). If ``produce`` raises, its
        exception propagates and no object is left: a backend that stores bytes as they
        come removes what it wrote. (A process killed meanwhile may leave part of the
        object at ``rel``; nothing references it, like the files of any commit that never
        landed.) ``produce`` must not keep the sink after it returns.

        This default collects the bytes and hands them to ``write_new``; local disk
        overrides it to write (and fsync) the file as the bytes come, so a large fragment
        is never held in memory whole.
        """
        chunks: list[bytes] = []
        produce(_Collector(chunks))
        self.write_new(rel, b"".join(chunks))

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Return whether an object exists."""

    def names_after(self, rel_dir: str, after: str, limit: int) -> list[str] | None:
        """Up to ``limit`` object names directly in ``rel_dir`` sorting after ``after``, in
        order, from one listing request; None when the backend has no such request (then
        callers probe names one at a time, which is cheap where a probe is a ``stat``).

        Object stores implement it: one request instead of a round trip per probe.
        """
        return None

    @abstractmethod
    def list(self, rel_dir: str) -> list[str]:
        """Return the names (not paths) directly under a directory; [] if absent."""

    @abstractmethod
    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        """Every object under ``rel_dir``, recursively, with its size and modification
        time; [] if absent. Maintenance (vacuum, storage accounting) lists through it."""

    @abstractmethod
    def delete(self, rel: str) -> None:
        """Delete an object if present."""

    def take(self, rel: str) -> bytes | None:
        """Remove the object at ``rel`` and return the bytes it held (None if absent).

        Atomic where the backend can (local disk: a rename): of concurrent takes one
        gets the bytes, and the bytes returned are the object removed, never one
        written meanwhile. This default reads, then deletes: an object replaced between
        the two is removed unread (object stores; refs, docs/format.md section 6).
        """
        try:
            data = self.read_bytes(rel)
        except FileNotFoundError:
            return None
        self.delete(rel)
        return data

    def delete_many(self, rels: Sequence[str]) -> None:
        """Delete every object of ``rels`` that is present (object stores batch them)."""
        for rel in rels:
            self.delete(rel)

    def flush(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Make every ``write_new`` so far durable (directory entries included)."""

    def read_object(self, rel: str, content_hash: str) -> bytes:
        """The bytes of an immutable object whose hash the caller knows (and checks).

        A backend may serve them from a local cache (`lakever.storage.cache`).
        """
        return self.read_bytes(rel)


class _Collector:
    """A `ByteSink` keeping what is written (the default `Objects.write_new_stream`)."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def write(self, data: bytes | memoryview, /) -> None:
        self._chunks.append(bytes(data))


class Atomic(ABC):
    """Commit atomicity: the one step that makes a commit visible."""

    @abstractmethod
    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Atomically create ``rel`` with ``data``; return False if it already existed.

        Everything `Objects.write_new` wrote before the call is durable before ``rel``
        can appear (a backend with a real `Objects.flush` flushes first), so a commit
        needs no separate flush before its log entry.
        """

    @abstractmethod
    def write_hint(self, rel: str, data: bytes) -> None:
        """Overwrite an advisory object (hints only, never data or log entries).

        Not durable and, on some backends, not atomic: readers must validate what
        they read and fall back when it is missing, stale or garbled. Writers of a
        hint use fixed-width content so an in-place overwrite never leaves a tail.
        A failure raises ``OSError`` (or `StorageError`); writers of hints ignore both.
        """

    def append_hint(self, rel: str, data: bytes) -> bool:
        """Append ``data`` to an advisory object in one atomic write, creating it if
        missing; False when this backend cannot append (callers then write one object
        per record with `write_hint`). Advisory like `write_hint`: not durable, and a
        crash may leave a torn tail, which readers skip.
        """
        return False


class Engines(ABC):
    """Engine hand-off: where pyarrow, DuckDB and polars find the files."""

    #: fsspec protocol name ("file", "memory", "s3", ...).
    protocol: str

    @abstractmethod
    def full_path(self, rel: str) -> str:
        """Return the path engines (pyarrow, DuckDB, polars) use for ``rel``."""

    @abstractmethod
    def arrow_filesystem(self) -> pafs.FileSystem | None:
        """Return a pyarrow filesystem for `full_path` values (None: local paths)."""

    @abstractmethod
    def fsspec_filesystem(self) -> Any:
        """Return the fsspec filesystem behind this storage (for DuckDB registration)."""

    @property
    def is_local(self) -> bool:
        """Whether `full_path` values are local file paths every engine reads directly."""
        return self.protocol == "file"

    def engine_view(self) -> Storage:
        """The storage read plans use (a remote store: its local cache view; else itself)."""
        assert isinstance(self, Storage)
        return self

    def stage(self, files: Sequence[FileRef]) -> dict[str, str] | None:
        """Make ``files`` readable at `full_path`.

        None: nothing to stage, the caller verifies the files itself. A dict: the
        files were fetched and verified; it maps each damaged one to what is wrong.
        """
        return None

    def location(self, rel: str) -> str:
        """Where ``rel`` lives, as shown to users (`full_path` may name a local copy)."""
        return self.full_path(rel)


class Storage(Objects, Atomic, Engines):
    """Byte-level access to one dataset root: the three roles together."""

    #: Normalized root URI (an absolute path for local disk).
    uri: str

    def publish(self, rel: str, data: bytes) -> bool:
        """``put_if_absent``, with a failure of unknown outcome resolved by reading back.

        A create can fail after the backend applied it (a client timeout after the
        request was sent, a connection lost before the reply). Reading the object back
        decides: exactly ``data`` means the create landed (True), other bytes that
        another writer's did (False); an absent or unreadable object re-raises the
        failure. Callers pass bytes no other writer produces (a log entry names its
        parent and time, a ref a random id) or content-addressed bytes, for which
        "someone stored these bytes" is all that matters.

        A request that timed out may still be applied after the read-back found
        nothing (an object store can hold it in flight): the failure is then reported
        for a create that lands later, like a commit whose writer died after sending
        it. What lands is complete, so readers stay consistent either way.

        Raises:
            StorageError: the create failed and the object is not there.
        """
        try:
            return self.put_if_absent(rel, data)
        except (StorageError, OSError) as exc:
            failure = exc
        try:
            landed = self.read_bytes(rel)
        except (StorageError, OSError):
            pass  # absent, or unreadable: the failure stands
        else:
            return landed == data
        raise failure

    def publish_content(self, rel: str, data: bytes) -> bool:
        """`publish` a content-addressed object (its name is the hash of ``data``, so an
        object already there holds these bytes): atomic like `put_if_absent`, but
        durable only by the next `Objects.flush` or `put_if_absent`, as the commit that
        references it makes it. Backends whose creates are durable on return publish.
        """
        return self.publish(rel, data)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, (action, signal) in _TRANSLATED.items():
            method = cls.__dict__.get(name)
            if method is not None and not hasattr(method, "__lakever_translated__"):
                setattr(cls, name, _translating(method, action, signal))

    def __repr__(self) -> str:
        # Options may hold credentials: never shown.
        return f"<{type(self).__name__} {self.uri!r}>"


#: Method -> (what the message says it could not do, the OSError that is a signal, not
#: a failure). ``write_hint`` and ``append_hint`` are left out: their failures are ``OSError``
#: by contract (callers of advisory writes ignore them).
_TRANSLATED: dict[str, tuple[str, type[OSError] | None]] = {
    "read_bytes": ("read", FileNotFoundError),
    "read_object": ("read", FileNotFoundError),
    "names_after": ("list", None),
    "write_new": ("write", FileExistsError),
    "write_new_stream": ("write", FileExistsError),
    "exists": ("check", None),
    "list": ("list", None),
    "walk": ("list", None),
    "delete": ("delete", None),
    "take": ("delete", None),
    "delete_many": ("delete", None),
    "flush": ("sync", None),
    "put_if_absent": ("write", None),
    "publish_content": ("write", None),
}


def _translating(
    method: Callable[..., Any], action: str, signal: type[OSError] | None
) -> Callable[..., Any]:
    """``method``, raising `StorageError` for an ``OSError`` other than ``signal``."""

    @functools.wraps(method)
    def translated(self: Storage, *args: Any) -> Any:
        try:
            return method(self, *args)
        except OSError as exc:
            if signal is not None and isinstance(exc, signal):
                raise
            path = self.full_path(args[0]) if args else self.uri
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StorageError(f"cannot {action} {path}: {reason}", path=path) from exc

    translated.__lakever_translated__ = True  # type: ignore[attr-defined]
    return translated
