"""The storage seam: every byte lakever reads or writes goes through a `Storage`.

Two guarantees the commit protocol rests on live here:

* ``write_new`` creates an immutable object that did not exist (data fragments,
  manifests); it is durable once ``flush`` returns.
* ``put_if_absent`` creates an object only if the name is free, and the object
  appears complete or not at all. A log entry becomes visible through it.

Local disk: temp file + fsync + ``os.link`` (atomic, fails if the name exists) +
directory fsync. Memory: a process-wide lock around check-and-set (tests and
single-process use). Other fsspec backends can be read; writing to them raises
`StorageError` until a backend with a real conditional write is added, because
check-then-write would let two writers both believe they committed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from lakever.errors import InvalidArgument, StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["LocalStorage", "MemoryStorage", "ReadOnlyFsspecStorage", "Storage", "open_storage"]


class Storage(ABC):
    """Byte-level access to one dataset root. Paths are relative, '/'-separated."""

    #: Normalized root URI (an absolute path for local disk).
    uri: str
    #: fsspec protocol name ("file", "memory", "s3", ...).
    protocol: str

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """Return the whole object; raise FileNotFoundError if absent."""

    @abstractmethod
    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        """Create a new immutable object; raise FileExistsError if the name is taken."""

    @abstractmethod
    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Atomically create ``rel`` with ``data``; return False if it already existed."""

    @abstractmethod
    def write_hint(self, rel: str, data: bytes) -> None:
        """Overwrite an advisory object (hints only, never data or log entries).

        Not durable and, on some backends, not atomic: readers must validate what
        they read and fall back when it is missing, stale or garbled. Writers of a
        hint use fixed-width content so an in-place overwrite never leaves a tail.
        """

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Return whether an object exists."""

    @abstractmethod
    def list(self, rel_dir: str) -> list[str]:
        """Return the names (not paths) directly under a directory; [] if absent."""

    @abstractmethod
    def delete(self, rel: str) -> None:
        """Delete an object if present."""

    def flush(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Make every ``write_new`` so far durable (directory entries included)."""

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
        return self.protocol == "file"


class LocalStorage(Storage):
    """Local disk, with fsync-based durability and link-based put-if-absent.

    ``fsync=False`` keeps commits atomic (the log entry still appears by ``link``) but
    not durable across a power loss or kernel crash: for scratch data, tmpfs, or
    benchmarks comparing with engines that never fsync. A killed process loses
    nothing either way.
    """

    protocol = "file"

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.uri = os.path.abspath(root)
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._fsync = fsync

    def _p(self, rel: str) -> str:
        return os.path.join(self.uri, *rel.split("/"))

    def read_bytes(self, rel: str) -> bytes:
        with open(self._p(rel), "rb") as f:
            return f.read()

    def _mkdir(self, path: str) -> None:
        d = os.path.dirname(path)
        if os.path.isdir(d):
            return
        created = []
        probe = d
        while not os.path.isdir(probe):
            created.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(d, exist_ok=True)
        if not self._fsync:
            return
        # New directories must survive a crash too: sync the parent of every level created.
        with self._lock:
            self._dirty.update(os.path.dirname(c) for c in created)

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        path = self._p(rel)
        self._mkdir(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self._fsync:
            with self._lock:
                self._dirty.add(os.path.dirname(path))

    def flush(self) -> None:
        with self._lock:
            dirs = sorted(self._dirty)
        for d in dirs:
            _fsync_dir(d)
        # Forget a directory only once it is synced: a concurrent flush that runs
        # meanwhile syncs it again rather than returning before it is durable.
        with self._lock:
            self._dirty.difference_update(dirs)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        path = self._p(rel)
        self._mkdir(path)
        self.flush()
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() is atomic and fails if the name exists; the target is complete.
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        if self._fsync:
            _fsync_dir(os.path.dirname(path))
        return True

    def write_hint(self, rel: str, data: bytes) -> None:
        # One pwrite in place: cheaper than a rename (a journaled metadata change),
        # and POSIX makes a write atomic with respect to reads of the same file.
        path = self._p(rel)
        self._mkdir(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._p(rel))

    def list(self, rel_dir: str) -> list[str]:
        try:
            return sorted(os.listdir(self._p(rel_dir)))
        except FileNotFoundError:
            return []

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._p(rel))

    def full_path(self, rel: str) -> str:
        return self._p(rel)

    def arrow_filesystem(self) -> pafs.FileSystem | None:
        return None

    def fsspec_filesystem(self) -> Any:
        import fsspec

        return fsspec.filesystem("file")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FsspecStorage(Storage):
    """Shared plumbing for fsspec-backed storages."""

    def __init__(self, fs: Any, root: str, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self._root = root.rstrip("/")
        self.uri = f"{protocol}://{self._root.lstrip('/')}"

    def _p(self, rel: str) -> str:
        return f"{self._root}/{rel}"

    def read_bytes(self, rel: str) -> bytes:
        data: bytes = self.fs.cat_file(self._p(rel))
        return data

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self._p(rel)))

    def list(self, rel_dir: str) -> list[str]:
        try:
            entries = self.fs.ls(self._p(rel_dir), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._p(rel))

    def full_path(self, rel: str) -> str:
        return f"{self.protocol}://{self._p(rel).lstrip('/')}"

    def arrow_filesystem(self) -> pafs.FileSystem | None:
        import pyarrow.fs as pafs

        handler = pafs.FSSpecHandler(self.fs)  # type: ignore[abstract]  # stubs lag pyarrow
        return pafs.PyFileSystem(handler)

    def fsspec_filesystem(self) -> Any:
        return self.fs


class MemoryStorage(_FsspecStorage):
    """fsspec's in-memory filesystem; put-if-absent is atomic within one process."""

    _lock = threading.Lock()

    def __init__(self, root: str) -> None:
        import fsspec

        fs = fsspec.filesystem("memory")
        super().__init__(fs, "/" + root.lstrip("/"), "memory")

    def full_path(self, rel: str) -> str:
        return f"memory://{self._p(rel)}"

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        if not self.put_if_absent(rel, bytes(data)):
            raise FileExistsError(self._p(rel))

    def exists(self, rel: str) -> bool:
        # fsspec's exists() scans every key of the process-wide store when the name is
        # not a file (to look for a directory); objects are files, so test the key.
        return self._p(rel) in self.fs.store

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        path = self._p(rel)
        with MemoryStorage._lock:
            if path in self.fs.store:
                return False
            self.fs.pipe_file(path, data)
        return True

    def write_hint(self, rel: str, data: bytes) -> None:
        with MemoryStorage._lock:
            self.fs.pipe_file(self._p(rel), data)


class ReadOnlyFsspecStorage(_FsspecStorage):
    """Any other fsspec backend: readable; writes refused (no safe put-if-absent yet)."""

    def _refuse(self, rel: str) -> StorageError:
        return StorageError(
            f"writing to {self.protocol}:// storage is not supported yet: lakever only commits "
            "where it has an atomic put-if-absent (local disk, memory://); "
            f"cannot write {self.full_path(rel)!r}",
            path=self.full_path(rel),
        )

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        raise self._refuse(rel)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        raise self._refuse(rel)

    def write_hint(self, rel: str, data: bytes) -> None:
        raise self._refuse(rel)


def open_storage(uri: str, storage_options: dict[str, Any] | None = None) -> Storage:
    """Return the `Storage` for a dataset location (path, file://, memory://, or fsspec URI)."""
    if not isinstance(uri, str | os.PathLike):
        raise InvalidArgument(f"dataset location must be a path or URI string, got {uri!r}")
    uri = os.fspath(uri)
    if not uri or any(ord(c) < 32 for c in uri):
        raise InvalidArgument(f"dataset location {uri!r} is empty or contains control characters")
    options = dict(storage_options or {})
    if "://" not in uri or uri.split("://", 1)[0] in ("file", "local"):
        fsync = options.pop("fsync", True)
        if not isinstance(fsync, bool) or options:
            raise InvalidArgument(
                f"local storage takes one storage option, fsync=True|False; got {storage_options!r}"
            )
        if "://" not in uri:
            return LocalStorage(uri, fsync=fsync)
        rest = uri.split("://", 1)[1]
        return LocalStorage(rest if rest.startswith("/") else "/" + rest, fsync=fsync)
    protocol, rest = uri.split("://", 1)
    if protocol == "memory":
        return MemoryStorage(rest)
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open storage for {uri!r}: {exc}; install the extra for this protocol "
            "(e.g. pip install 'lakever[s3]')",
            path=uri,
        ) from exc
    return ReadOnlyFsspecStorage(fs, path, protocol)
