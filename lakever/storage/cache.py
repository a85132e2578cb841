"""A local cache of immutable objects from remote storage, and the view engines read.

Remote fragments are fetched once (many at a time), checked against the size and
SHA-256 their manifest records, and written into the cache by rename, so a file
in the cache is always complete. Engines (pyarrow, DuckDB, polars) then read
local files: a second scan of a snapshot makes no data request, and SQL over a
remote dataset runs at local speed.

The cache verifies what it serves: a cached fragment is hashed the first time a
process uses it (then remembered by its stat signature, as local fragments are),
and a cached manifest or deletion vector is hashed on every read. A damaged or
truncated cache file is fetched again, never served.

Location and size: ``storage_options={"cache_dir": ..., "cache_size": ...}``, or
the environment variables ``LAKEVER_CACHE_DIR`` and ``LAKEVER_CACHE_SIZE`` (bytes,
or with a K/M/G/T suffix); default ``$XDG_CACHE_HOME/lakever`` (``~/.cache/lakever``)
and 10 GiB. When the cache grows past its size, the least recently used files go
first, except files used in the last `GRACE_SECONDS` (a scan in progress in this
or another process may be about to open them): the size is a target, exceeded
while one scan needs more. Processes share the cache safely: every write is a
rename of a complete file, and eviction removes whole files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lakever._lru import Lru
from lakever.errors import InvalidArgument
from lakever.storage.base import ByteSink, FileRef, Storage, StoredFile

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["CacheView", "GRACE_SECONDS", "ObjectCache", "open_cache"]

#: Files used this recently are never evicted.
GRACE_SECONDS = 120.0
#: Concurrent requests when fetching fragments.
FETCH_THREADS = 16
_DEFAULT_SIZE = 10 << 30
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _sha256(data: bytes | memoryview) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_ino, st.st_ctime_ns)


def parse_size(value: object, what: str) -> int:
    """Bytes from an int or a string such as ``"512M"`` or ``"10G"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("IB").removesuffix("B")
        number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
        with contextlib.suppress(ValueError):
            size = int(float(number) * _UNITS[unit])
            if size >= 0:
                return size
    raise InvalidArgument(
        f"{what} must be a size in bytes such as 1073741824 or '1G'; got {value!r}"
    )


def open_cache(options: dict[str, Any], key: str) -> ObjectCache:
    """The cache for one remote location (``key``) from storage options and environment."""
    root = options.get("cache_dir") or os.environ.get("LAKEVER_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "lakever")
    size = options.get("cache_size", os.environ.get("LAKEVER_CACHE_SIZE"))
    limit = _DEFAULT_SIZE if size is None else parse_size(size, "cache_size")
    return ObjectCache(os.path.abspath(os.fspath(root)), limit, key)


class ObjectCache:
    """Immutable objects of one remote location, under ``<root>/objects/<key>/``."""

    def __init__(self, root: str, max_bytes: int, key: str) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.dir = os.path.join(root, "objects", key)
        self._lock = threading.Lock()
        self._added = 0
        self._estimate: int | None = None
        #: Cached files hashed by this process, with the stat signature they had then.
        self._good: Lru[tuple[str, str], tuple[int, int, int]] = Lru(1_000_000)

    def path(self, rel: str) -> str:
        """The local file holding ``rel`` (which may not exist)."""
        return os.path.join(self.dir, *rel.split("/"))

    # -- bytes ---------------------------------------------------------------------------

    def get(self, rel: str, content_hash: str) -> bytes | None:
        """The cached bytes of ``rel`` if present and matching ``content_hash``."""
        path = self.path(rel)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if _sha256(data) != content_hash:
            self._drop(path)
            return None
        _touch(path)
        return data

    def put(self, rel: str, data: bytes | memoryview) -> None:
        """Store ``data`` as ``rel`` (complete or not at all); failures only cost a refetch."""
        path = self.path(rel)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        self._grew(len(data))

    def _drop(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    # -- staging fragments for engines ---------------------------------------------------

    def stage(self, origin: Storage, files: Sequence[FileRef]) -> dict[str, str]:
        """Make each file's bytes, verified, available at `path`; fetch what is missing.

        Returns the files whose remote bytes are wrong: path -> what is wrong (for
        the caller's `CorruptData`). Storage failures raise.
        """
        todo = [f for f in files if not self._known_good(f)]
        if not todo:
            return {}
        problems: dict[str, str] = {}

        def one(f: FileRef) -> None:
            why = self._stage_one(origin, f)
            if why is not None:
                problems[f.path] = why

        if len(todo) == 1:
            one(todo[0])
        else:
            with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(todo))) as pool:
                list(pool.map(one, todo))
        return problems

    def _known_good(self, f: FileRef) -> bool:
        path = self.path(f.path)
        try:
            st = os.stat(path)
        except OSError:
            return False
        if self._good.get((path, f.content_hash)) != _signature(st):
            return False
        _touch(path)
        return True

    def _stage_one(self, origin: Storage, f: FileRef) -> str | None:
        path = self.path(f.path)
        with contextlib.suppress(OSError):
            with open(path, "rb") as fh:
                data = fh.read()
            if len(data) == f.size_bytes and _sha256(data) == f.content_hash:
                self._remember(path, f)
                _touch(path)
                return None
            self._drop(path)  # damaged in the cache: fetch it again
        try:
            data = origin.read_bytes(f.path)
        except FileNotFoundError:
            return "is missing"
        if len(data) != f.size_bytes:
            return f"has {len(data)} bytes instead of {f.size_bytes}"
        if _sha256(data) != f.content_hash:
            return "does not match the hash recorded in its manifest"
        self.put(f.path, data)
        self._remember(path, f)
        return None

    def _remember(self, path: str, f: FileRef) -> None:
        with contextlib.suppress(OSError):
            self._good.put((path, f.content_hash), _signature(os.stat(path)))

    def forget(self) -> None:
        """Forget which cached files this process verified (tests)."""
        self._good.clear()

    # -- size --------------------------------------------------------------------------

    def _grew(self, n: int) -> None:
        with self._lock:
            self._added += n
            if self._estimate is not None and self._estimate + self._added <= self.max_bytes:
                return
        self.evict()

    def usage(self) -> int:
        """Bytes held by the whole cache directory (every location)."""
        return sum(size for _, size, _ in _files(os.path.join(self.root, "objects")))

    def evict(self) -> int:
        """Remove least recently used files until the cache fits; return bytes removed."""
        with self._lock:
            files = sorted(_files(os.path.join(self.root, "objects")))
            total = sum(size for _, size, _ in files)
            removed = 0
            now = time.time()
            for mtime, size, path in files:
                if total - removed <= self.max_bytes:
                    break
                if now - mtime < GRACE_SECONDS:
                    break  # sorted by use: everything after is recent too
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += size
            self._estimate, self._added = total - removed, 0
            return removed


def _files(top: str) -> list[tuple[float, int, str]]:
    """(last use, size, path) of every file under ``top``; stale temp files removed."""
    out = []
    now = time.time()
    for d, _, names in os.walk(top):
        for n in names:
            p = os.path.join(d, n)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if ".tmp-" in n:
                if now - st.st_mtime > GRACE_SECONDS:
                    with contextlib.suppress(OSError):
                        os.unlink(p)
                continue
            out.append((st.st_mtime, st.st_size, p))
    return out


def _touch(path: str) -> None:
    """Mark ``path`` used now (its mtime is the LRU clock: atime is often not kept)."""
    with contextlib.suppress(OSError):
        os.utime(path)


class CacheView(Storage):
    """A remote storage as engines see it: fragments are local files in the cache.

    Bytes and commits go to the remote storage (``origin``); `full_path` names the
    cached copy, which exists once `stage` returned. Error messages name the
    remote object (`location`).
    """

    protocol = "file"

    def __init__(self, origin: Storage, cache: ObjectCache) -> None:
        self.origin = origin
        self.cache = cache
        self.uri = origin.uri

    def __reduce__(self) -> tuple[Any, ...]:
        return (_view_of, (self.origin,))

    def read_bytes(self, rel: str) -> bytes:
        return self.origin.read_bytes(rel)

    def read_object(self, rel: str, content_hash: str) -> bytes:
        return self.origin.read_object(rel, content_hash)

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        self.origin.write_new(rel, data)

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        self.origin.write_new_stream(rel, produce)

    def exists(self, rel: str) -> bool:
        return self.origin.exists(rel)

    def names_after(self, rel_dir: str, after: str, limit: int) -> list[str] | None:
        return self.origin.names_after(rel_dir, after, limit)

    def list(self, rel_dir: str) -> list[str]:
        return self.origin.list(rel_dir)

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        return self.origin.walk(rel_dir)

    def delete(self, rel: str) -> None:
        self.origin.delete(rel)

    def delete_many(self, rels: Sequence[str]) -> None:
        self.origin.delete_many(rels)

    def flush(self) -> None:
        self.origin.flush()

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        return self.origin.put_if_absent(rel, data)

    def write_hint(self, rel: str, data: bytes) -> None:
        self.origin.write_hint(rel, data)

    def append_hint(self, rel: str, data: bytes) -> bool:
        return self.origin.append_hint(rel, data)

    def full_path(self, rel: str) -> str:
        return self.cache.path(rel)

    def location(self, rel: str) -> str:
        return self.origin.full_path(rel)

    def stage(self, files: Sequence[FileRef]) -> dict[str, str] | None:
        return self.cache.stage(self.origin, files)

    def engine_view(self) -> Storage:
        return self

    def arrow_filesystem(self) -> pafs.FileSystem | None:
        return None

    def fsspec_filesystem(self) -> Any:
        import fsspec

        return fsspec.filesystem("file")


def _view_of(origin: Storage) -> Storage:
    return origin.engine_view()
