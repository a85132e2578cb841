"""Storage backends and `open_storage`; see `lakever.storage.base` for the seam."""

from __future__ import annotations

import os
from typing import Any

from lakever.errors import InvalidArgument, StorageError
from lakever.storage.base import (
    Atomic,
    ByteSink,
    Engines,
    FileRef,
    Objects,
    Storage,
    StoredFile,
)
from lakever.storage.fsspec import MemoryStorage, ReadOnlyFsspecStorage
from lakever.storage.local import LocalStorage
from lakever.storage.objectstore import PROTOCOLS, ObjectStorage

__all__ = [
    "Atomic",
    "ByteSink",
    "Engines",
    "FileRef",
    "LocalStorage",
    "MemoryStorage",
    "ObjectStorage",
    "Objects",
    "ReadOnlyFsspecStorage",
    "Storage",
    "StoredFile",
    "open_storage",
]


def open_storage(uri: str, storage_options: dict[str, Any] | None = None) -> Storage:
    """Return the `Storage` for a dataset location.

    Local paths and ``file://`` (fsync, link-based commits), ``memory://`` (one
    process), object stores ``s3://``, ``s3a://``, ``gs://``, ``az://``, ``abfs[s]://``
    (conditional writes, local cache), and other fsspec URIs (read-only).
    """
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
    if protocol in PROTOCOLS:
        return ObjectStorage(uri, options)
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError, OSError) as exc:
        # Object stores never get here (obstore serves them): no lakever extra applies.
        hint = f"lakever has no extra for {protocol}://; install the fsspec package for it"
        # Some backends explain a failed load at great length (pyarrow's HDFS lists
        # every JVM path it tried): keep the first 200 characters.
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 200 else detail[:200] + " ..."
        raise StorageError(f"cannot open storage for {uri!r}: {detail}; {hint}", path=uri) from exc
    storage = ReadOnlyFsspecStorage(fs, path, protocol)
    storage.options = dict(storage_options or {})
    return storage
