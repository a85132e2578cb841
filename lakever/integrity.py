"""Damage detection on the read path: every fragment is verified before an engine reads it.

A fragment's manifest entry records its size and the SHA-256 of its bytes. Before
any engine (pyarrow, DuckDB, polars) reads a fragment, its bytes are hashed and
compared with the entry, so a bit flip, a truncation, a missing file or two
swapped files raise `CorruptData` naming the file and the snapshot instead of
reading back as wrong rows.

Hashing costs one sequential read per fragment (about 0.5-1.5 GB/s per core,
less than decoding Parquet); it is done once per process: a verified local file
is remembered with its identity (size, inode, mtime and ctime, which any write to
the file changes), and later reads only ``stat`` it; so is a fragment this process
wrote itself, whose hash the writer computed from the bytes it wrote (`written`).
Other backends verify on every read. docs/benchmarks.md reports the measured cost.

A file changed in place after that without a new stat signature (bit rot) is caught by
the CRC32 each page carries (`lakever.fragments`): pyarrow readers check it, and
`reading` then hashes the files again to name the one that changed. DuckDB reads do not
check page CRCs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pyarrow as pa

from lakever._lru import Lru
from lakever.errors import CorruptData, LakeverError, StorageError
from lakever.storage import FileRef, Storage

__all__ = ["FileRef", "damaged", "reading", "verify", "written"]

_THREADS = max(1, min(4, os.cpu_count() or 1))
_CHUNK = 1 << 22


#: Local files verified in this process, with the identity (stat signature) they had then.
_VERIFIED: Lru[tuple[str, str], tuple[int, int, int, int]] = Lru(1_000_000)


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def damaged(storage: Storage, ref: FileRef, snapshot: str, why: str) -> CorruptData:
    """The error for a fragment that does not match its manifest entry (``why``: how)."""
    return CorruptData(
        f"fragment {storage.location(ref.path)} of snapshot {snapshot} {why}; the data file "
        "was damaged or replaced after it was written. Restore it from a backup or a copy of "
        "the dataset, or delete the rows it held (versions that do not list it are unaffected)",
        path=storage.location(ref.path),
        snapshot_id=snapshot,
    )


def _hash_file(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return f"sha256:{digest.hexdigest()}", size


def _known_good(storage: Storage, ref: FileRef, snapshot: str) -> bool:
    """Check a local file's size; True when it is verified already and unchanged since."""
    path = storage.full_path(ref.path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise damaged(storage, ref, snapshot, "is missing") from None
    except OSError as exc:
        raise StorageError(f"cannot read fragment {path}: {exc}", path=path) from exc
    if st.st_size != ref.size_bytes:
        raise damaged(storage, ref, snapshot, f"has {st.st_size} bytes instead of {ref.size_bytes}")
    return _VERIFIED.get((path, ref.content_hash)) == _signature(st)


def _verify_local(storage: Storage, ref: FileRef, snapshot: str) -> None:
    if _known_good(storage, ref, snapshot):
        return
    path = storage.full_path(ref.path)
    key = (path, ref.content_hash)
    try:
        sig = _signature(os.stat(path))
    except FileNotFoundError:
        raise damaged(storage, ref, snapshot, "is missing") from None
    try:
        digest, size = _hash_file(path)
        after = _signature(os.stat(path))
    except FileNotFoundError:
        raise damaged(storage, ref, snapshot, "is missing") from None
    except OSError as exc:
        raise StorageError(f"cannot read fragment {path}: {exc}", path=path) from exc
    if digest != ref.content_hash or size != ref.size_bytes:
        raise damaged(storage, ref, snapshot, "does not match the hash recorded in its manifest")
    if after == sig:
        _VERIFIED.put(key, sig)


def written(storage: Storage, refs: Sequence[FileRef]) -> None:
    """Remember local fragments this process has just written as verified.

    The writer hashed exactly the bytes it wrote (the entry's ``content_hash``), so
    the file as it is now, identified by its stat signature, needs no second hash
    before this process reads it (a delete right after an append, say); any later
    change to the file changes the signature and it is hashed again.
    """
    if not storage.is_local:
        return
    for ref in refs:
        path = storage.full_path(ref.path)
        try:
            st = os.stat(path)
        except OSError:
            continue  # verified on first read instead
        if st.st_size == ref.size_bytes:
            _VERIFIED.put((path, ref.content_hash), _signature(st))


def _verify_remote(storage: Storage, ref: FileRef, snapshot: str) -> None:
    try:
        data = storage.read_bytes(ref.path)
    except FileNotFoundError:
        raise damaged(storage, ref, snapshot, "is missing") from None
    except OSError as exc:
        path = storage.full_path(ref.path)
        raise StorageError(f"cannot read fragment {path}: {exc}", path=path) from exc
    if len(data) != ref.size_bytes:
        raise damaged(storage, ref, snapshot, f"has {len(data)} bytes instead of {ref.size_bytes}")
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != ref.content_hash:
        raise damaged(storage, ref, snapshot, "does not match the hash recorded in its manifest")


def _note(refs: Sequence[FileRef]) -> None:
    """Called with the fragments of every `verify`, i.e. every fragment about to be read.

    Does nothing; tests replace it to see which fragments an operation reads.
    """


def verify(storage: Storage, refs: Sequence[FileRef], *, snapshot: str) -> None:
    """Check that each fragment's bytes are the ones its manifest entry recorded.

    Raises:
        CorruptData: a fragment is missing, has another size, or another hash.
        StorageError: the storage failed to read a fragment.
    """
    _note(refs)
    problems = storage.stage(refs)
    if problems is not None:  # a remote store's cache fetched and verified them
        for r in refs:
            if r.path in problems:
                raise damaged(storage, r, snapshot, problems[r.path])
        return
    check = _verify_local if storage.is_local else _verify_remote
    if storage.is_local:
        # Most reads find every file verified already: a stat each, no threads.
        refs = [r for r in refs if not _known_good(storage, r, snapshot)]
    if len(refs) <= 1:
        for r in refs:
            check(storage, r, snapshot)
        return
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        # list() re-raises the first failure, in fragment order.
        list(pool.map(lambda r: check(storage, r, snapshot), refs))


@contextmanager
def reading(
    storage: Storage, snapshot: str, what: str = "", refs: Sequence[FileRef] = ()
) -> Iterator[None]:
    """Turn a storage or engine failure while reading fragments into a `LakeverError`.

    Fragments are verified before they are read, so a failure here means the files
    changed meanwhile or the storage failed. Local fragments being read (``refs``;
    a remote store's cache included) are checked again first: one that changed since
    raises `CorruptData` naming it (a file damaged under a stream shows up as a decode
    error, an `OSError`, in pyarrow; a page failing its CRC also makes them hashed again,
    since a change in place may keep the stat signature); otherwise the error names the
    snapshot.
    """
    try:
        yield
    except LakeverError:
        raise
    except FileNotFoundError as exc:
        path = str(exc.filename or "")
        raise CorruptData(
            f"a file of snapshot {snapshot} of {storage.uri} is missing ({path or exc}); it "
            "was deleted while being read",
            path=path or storage.uri,
            snapshot_id=snapshot,
        ) from exc
    except (OSError, pa.ArrowException) as exc:
        crc = _CRC_FAILED in str(exc)
        if storage.is_local:  # a stat each (a hash for a changed file); remote: no re-read
            if crc:  # changed in place without a new stat signature (bit rot): hash again
                _forget(storage, refs)
            _recheck(storage, refs, snapshot)  # a fragment that changed: CorruptData
        if isinstance(exc, OSError) and not crc:
            raise StorageError(
                f"reading snapshot {snapshot} of {storage.uri}{what} failed: {exc}",
                path=storage.uri,
            ) from exc
        raise CorruptData(
            f"reading snapshot {snapshot} of {storage.uri}{what} failed: a data file could not "
            f"be decoded ({exc})",
            path=storage.uri,
            snapshot_id=snapshot,
        ) from exc


#: pyarrow's error for a page whose bytes do not match the CRC32 written with it.
_CRC_FAILED = "CRC checksum verification failed"


def _forget(storage: Storage, refs: Sequence[FileRef]) -> None:
    """Drop ``refs`` from the verified files: the next `verify` hashes them again."""
    for ref in refs:
        _VERIFIED.pop((storage.full_path(ref.path), ref.content_hash))


def _recheck(storage: Storage, refs: Sequence[FileRef], snapshot: str) -> None:
    """Verify ``refs`` again after a failed read. Raises only what the check finds (a
    `LakeverError`), never a failure of the check itself: then the read's own error is
    the one reported."""
    try:
        verify(storage, refs, snapshot=snapshot)
    except LakeverError:
        raise
    except Exception:  # the read's error is reported instead
        return


def forget() -> None:
    """Forget every verification (tests; after files were restored from a backup)."""
    _VERIFIED.clear()
