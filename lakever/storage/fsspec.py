"""fsspec backends: in-memory (commits within one process) and read-only remote stores."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakever.errors import StorageError
from lakever.storage.base import ByteSink, Storage, StoredFile

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["MemoryStorage", "ReadOnlyFsspecStorage"]


class _FsspecStorage(Storage):
    """Shared plumbing for fsspec-backed storages."""

    def __init__(self, fs: Any, root: str, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self._root = root.rstrip("/")
        self.uri = f"{protocol}://{self._root.lstrip('/')}"
        #: The storage options it was opened with (kept to reopen it; never shown).
        self.options: dict[str, Any] = {}

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

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        top = self._p(rel_dir).rstrip("/")
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = str(path).lstrip("/")[len(self._root.lstrip("/")) :].lstrip("/")
            out.append(StoredFile(rel, int(info.get("size") or 0), _modified(info)))
        return sorted(out, key=lambda f: f.path)

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


def _modified(info: dict[str, Any]) -> float:
    """An fsspec listing entry's modification time, POSIX seconds; infinity when the
    backend does not say (such a file is never old enough for a grace period)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return math.inf


class MemoryStorage(_FsspecStorage):
    """fsspec's in-memory filesystem; put-if-absent is atomic within one process."""

    _lock = threading.Lock()

    def __init__(self, root: str) -> None:
        import fsspec

        fs = fsspec.filesystem("memory")
        super().__init__(fs, "/" + root.lstrip("/"), "memory")

    def __reduce__(self) -> tuple[Any, ...]:
        # The memory store is per process: a copy in another process sees nothing.
        return (MemoryStorage, (self._root,))

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

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        raise self._refuse(rel)  # before producing a byte

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        raise self._refuse(rel)

    def write_hint(self, rel: str, data: bytes) -> None:
        raise self._refuse(rel)

    def delete(self, rel: str) -> None:
        raise self._refuse(rel)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.uri, dict(self.options)))


def _reopen(uri: str, options: dict[str, Any]) -> ReadOnlyFsspecStorage:
    """Reopen a pickled `ReadOnlyFsspecStorage` from its location and options."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **options)
    storage = ReadOnlyFsspecStorage(fs, path, uri.split("://", 1)[0])
    storage.options = dict(options)
    return storage
