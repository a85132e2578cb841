"""Local disk: fsync-based durability and link-based put-if-absent."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

from lakever._threads import ForkSafePool
from lakever.errors import StorageError
from lakever.storage.base import ByteSink, Storage, StoredFile

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """Local disk, with fsync-based durability and link-based put-if-absent.

    ``fsync=False`` keeps commits atomic (the log entry still appears by ``link``) but
    not durable across a power loss or kernel crash: for scratch data, tmpfs, or
    benchmarks comparing with engines that never fsync. A killed process loses
    nothing either way.

    Durability costs, per commit: each new file is fsynced in the background as soon
    as it is written (`write_new`), overlapping the work that follows; `flush` waits
    for those fsyncs and syncs the directories that gained entries. `put_if_absent`
    fsyncs its temporary file concurrently with that flush, so the data and the log
    entry's bytes reach the disk together, then links it to its name and syncs the
    log directory: two waits for the disk per commit. Advisory files (`write_hint`)
    are never synced, nor the directories created for them.
    """

    protocol = "file"

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.uri = os.path.abspath(root)
        self._dirty: set[str] = set()
        #: fsyncs of `write_new` files (and their paths) not yet waited for by `flush`.
        self._pending: list[tuple[Future[None], str]] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._fsync = fsync

    def __reduce__(self) -> tuple[Any, ...]:
        return (_local, (self.uri, self._fsync))

    def _p(self, rel: str) -> str:
        if os.sep == "/":  # a relative path with "/" separators is the path under the root
            return f"{self.uri.rstrip('/')}/{rel}"
        return os.path.join(self.uri, *rel.split("/"))

    def read_bytes(self, rel: str) -> bytes:
        path = self._p(rel)
        try:
            return _read_all(path)
        except FileNotFoundError:
            raise
        except NotADirectoryError as exc:
            # A file where a directory of the path should be: the object is absent.
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path) from exc
        except OSError as exc:
            raise _storage_error("read", path, exc) from exc

    def _mkdir(self, path: str, *, durable: bool = True) -> None:
        d = os.path.dirname(path)
        if os.path.isdir(d):
            return
        created = []
        probe = d
        while not os.path.isdir(probe):
            # Another thread may create the directory between the two checks: only a
            # name that exists and is still not a directory is a file in the way.
            if os.path.lexists(probe) and not os.path.isdir(probe):
                raise StorageError(
                    f"cannot create directory {d}: {probe} is a file, not a directory",
                    path=d,
                )
            created.append(probe)
            probe = os.path.dirname(probe)
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:
            raise _storage_error("create directory", d, exc) from exc
        if not self._fsync or not durable:
            return
        # New directories must survive a crash too: sync the parent of every level created.
        with self._lock:
            self._dirty.update(os.path.dirname(c) for c in created)

    def _open_new(self, path: str, flags: int, *, durable: bool = True) -> int:
        """``os.open(path, flags)``, creating the missing directories of ``path`` first
        when the open finds one missing (no directory probe on the common path)."""
        try:
            return os.open(path, flags, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            self._mkdir(path, durable=durable)
        return os.open(path, flags, 0o644)

    def _create(
        self, path: str, produce: Callable[[ByteSink], None], *, early_sync: bool = False
    ) -> int:
        """Create the new file ``path`` with the bytes ``produce`` writes; its open fd.

        With ``early_sync`` the written bytes are flushed to disk in the background as
        they come (`_FileSink`), so the final fsync waits for the tail only.
        If the producer or the disk fails, no file is left and the error is raised
        (OSError as StorageError).
        """
        try:
            fd = self._open_new(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _storage_error("write", path, exc) from exc
        sink = _FileSink(fd, path, early_sync=early_sync and self._fsync)
        try:
            produce(sink)
            sink.settle()
        except BaseException as exc:
            sink.settle(quiet=True)  # no background sync may outlive the descriptor
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            if isinstance(exc, OSError) and not isinstance(exc, StorageError):
                raise _storage_error("write", path, exc) from exc
            raise
        return fd

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        path = self._p(rel)
        fd = self._create(path, lambda sink: sink.write(data))
        if not self._fsync:
            os.close(fd)
            return
        # The fsync runs while the writer goes on (statistics, the next file, the
        # record); `flush` waits for it before anything may reference the file.
        synced = _POOL.get().submit(_fsync_close, fd)
        with self._lock:
            self._own()
            # Fsyncs that succeeded need no waiting for: only running and failed ones are
            # kept, so the list stays short however many files a bulk write creates.
            self._pending = [p for p in self._pending if not _succeeded(p[0])]
            self._pending.append((synced, path))
            self._dirty.add(os.path.dirname(path))
            running = [f for f, _ in self._pending if not f.done()]
        if len(running) > _MAX_RUNNING:
            # Each running fsync holds its file open: a bulk write of thousands of
            # fragments waits here rather than running out of file descriptors.
            wait(running[: len(running) - _MAX_RUNNING])

    def _own(self) -> None:
        """In a forked child, forget the parent's fsyncs (their threads are not here)."""
        if self._pid != os.getpid():
            self._pending, self._pid = [], os.getpid()

    def flush(self) -> None:
        with self._lock:
            self._own()
            pending = list(self._pending)
            dirs = sorted(self._dirty)
        failure: StorageError | None = None
        for d in dirs:  # meanwhile the pending file fsyncs run in their threads
            try:
                _fsync_dir(d)
            except OSError as exc:
                failure = failure or _storage_error("sync directory", d, exc)
        wait([f for f, _ in pending])
        for f, path in pending:
            error = f.exception()
            if isinstance(error, OSError):
                failure = failure or _storage_error("sync", path, error)
            elif error is not None:
                raise error
        # Forget a file or directory only once it is synced: a concurrent flush that runs
        # meanwhile waits for it (or syncs it again) rather than returning before it is
        # durable. A failed fsync is reported once, by the flush that saw it.
        with self._lock:
            done = {f for f, _ in pending}
            self._pending = [p for p in self._pending if p[0] not in done]
            if failure is None:
                self._dirty.difference_update(dirs)
        if failure is not None:
            raise failure

    def _temp(self, path: str, data: bytes, sync: Callable[[int], None]) -> str:
        """Write ``data`` to a new temporary file beside ``path``, ``sync`` it; its name.

        On failure the temporary file is removed and the error raised (a StorageError).
        """
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            fd = self._open_new(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except OSError as exc:
            raise _storage_error("write", path, exc) from exc
        try:
            _write_all(fd, data)
            if self._fsync:
                sync(fd)
        except (OSError, StorageError) as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, StorageError):
                raise
            raise _storage_error("write", path, exc) from exc
        os.close(fd)
        return tmp

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        path = self._p(rel)

        def sync(fd: int) -> None:
            # The entry's bytes are synced while `flush` makes everything written
            # before durable (files and directories): both before the link.
            synced = _POOL.get().submit(os.fsync, fd)
            try:
                self.flush()
            finally:
                wait([synced])
            synced.result()

        if not _link(self._temp(path, data, sync), path):
            return False
        if self._fsync:
            try:
                _fsync_dir(os.path.dirname(path))
            except OSError as exc:
                raise _storage_error("sync directory", os.path.dirname(path), exc) from exc
        return True

    def publish_content(self, rel: str, data: bytes) -> bool:
        # The bytes are fsynced before the name appears, so the name never shows a torn
        # object; the directory entry (ours, or an earlier writer's) is synced by the next
        # flush, which the commit referencing it runs before its own entry is linked.
        path = self._p(rel)
        created = _link(self._temp(path, data, os.fsync), path)
        if self._fsync:
            with self._lock:
                self._dirty.add(os.path.dirname(path))
        return created

    def write_hint(self, rel: str, data: bytes) -> None:
        # One pwrite in place: cheaper than a rename (a journaled metadata change),
        # and POSIX makes a write atomic with respect to reads of the same file.
        path = self._p(rel)
        # Advisory: neither the file nor a directory created for it is synced.
        fd = self._open_new(path, os.O_WRONLY | os.O_CREAT, durable=False)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def append_hint(self, rel: str, data: bytes) -> bool:
        # One write to a file opened with O_APPEND: POSIX places it at the end whatever
        # other writers append meanwhile, and a file system does not interleave two
        # writes to one file. Creating a file costs far more than appending to one (a
        # new inode: 0.03-1 ms here, more while many files were just deleted).
        fd = self._open_new(self._p(rel), os.O_WRONLY | os.O_CREAT | os.O_APPEND, durable=False)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._p(rel))

    def list(self, rel_dir: str) -> list[str]:
        path = self._p(rel_dir)
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _storage_error("list", path, exc) from exc

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        out: list[StoredFile] = []
        stack = [(self._p(rel_dir), rel_dir.strip("/"))]
        while stack:
            path, rel = stack.pop()
            try:
                it = os.scandir(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for entry in it:
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((entry.path, child))
                        else:
                            st = entry.stat()
                            out.append(StoredFile(child, st.st_size, st.st_mtime))
                    except FileNotFoundError:
                        continue  # deleted while listing
        return sorted(out, key=lambda f: f.path)

    def delete(self, rel: str) -> None:
        path = self._p(rel)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _storage_error("delete", path, exc) from exc

    def take(self, rel: str) -> bytes | None:
        # One rename claims the file: a concurrent take, or a file created again under
        # the name afterwards, is never the one read and removed here.
        path = self._p(rel)
        claimed = f"{path}.taken-{uuid.uuid4().hex}"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        try:
            return _read_all(claimed)
        finally:
            os.unlink(claimed)
            if self._fsync:
                _fsync_dir(os.path.dirname(path))

    def write_new_stream(self, rel: str, produce: Callable[[ByteSink], None]) -> None:
        # Straight into the new file, then fsync: no whole-object buffer.
        path = self._p(rel)
        fd = self._create(path, produce, early_sync=True)
        try:
            if self._fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise _storage_error("write", path, exc) from exc
        finally:
            os.close(fd)
        if self._fsync:
            with self._lock:
                self._dirty.add(os.path.dirname(path))

    def full_path(self, rel: str) -> str:
        return self._p(rel)

    def arrow_filesystem(self) -> pafs.FileSystem | None:
        return None

    def fsspec_filesystem(self) -> Any:
        import fsspec

        return fsspec.filesystem("file")


def _storage_error(action: str, path: str, exc: OSError) -> StorageError:
    """The `StorageError` for an ``OSError`` the disk raised on ``path``."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError):
        reason = "it is a directory, not a file"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    return StorageError(f"cannot {action} {path}: {reason}", path=path)


def _link(tmp: str, path: str) -> bool:
    """Link the complete file ``tmp`` to ``path`` and remove ``tmp``; False if ``path`` exists."""
    try:
        # link() is atomic and fails if the name exists; the target is complete.
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise StorageError(
                f"cannot commit {path}: this file system does not support hard links "
                f"({exc.strerror}), which lakever needs for an atomic put-if-absent; "
                "use a local file system such as ext4, xfs, btrfs or apfs",
                path=path,
            ) from exc
        raise _storage_error("write", path, exc) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True


def _read_all(path: str) -> bytes:
    """The bytes of the file ``path``: an open, a stat and two reads (the second sees the
    end), where ``open(path, "rb").read()`` makes twice as many system calls."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        chunks = [os.read(fd, os.fstat(fd).st_size + 1)]
        while chunks[-1]:  # a file that grew or a short read: read on to the end
            chunks.append(os.read(fd, 1 << 16))
        return chunks[0] if len(chunks) == 2 else b"".join(chunks)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


#: A streamed file's bytes are flushed to disk in the background every this many bytes.
_EARLY_SYNC_BYTES = 8 << 20

_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class _FileSink:
    """The `ByteSink` of `LocalStorage.write_new_stream`: writes go to the open file.

    With ``early_sync``, every `_EARLY_SYNC_BYTES` an ``fdatasync`` runs on the fsync
    threads (one at a time) while the producer goes on encoding, so the disk writes a
    large file as it is made, not all at the final fsync. `settle` waits for the one in
    flight and raises its failure, again at every later `write` and `settle` (a caller
    that caught it must not end with a file whose later fsync succeeds: the kernel
    reports a writeback error once per file).
    """

    __slots__ = ("_failed", "_fd", "_path", "_syncing", "_unsynced")

    def __init__(self, fd: int, path: str, *, early_sync: bool = False) -> None:
        self._fd, self._path = fd, path
        self._unsynced: int | None = 0 if early_sync else None
        self._syncing: Future[None] | None = None
        self._failed: BaseException | None = None

    def write(self, data: bytes | memoryview, /) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            raise _storage_error("write", self._path, exc) from exc
        if self._unsynced is None:
            return
        self._unsynced += len(data)
        if self._unsynced >= _EARLY_SYNC_BYTES and (self._syncing is None or self._syncing.done()):
            self.settle()
            self._syncing = _POOL.get().submit(_datasync, self._fd)
            self._unsynced = 0

    def settle(self, *, quiet: bool = False) -> None:
        """Wait for the background sync in flight (if any); raise its failure, or an
        earlier one, unless ``quiet``."""
        running, self._syncing = self._syncing, None
        if running is not None:
            error = running.exception()  # waits for it
            if error is not None and self._failed is None:
                if isinstance(error, OSError):
                    self._failed = _storage_error("sync", self._path, error)
                    self._failed.__cause__ = error
                else:
                    self._failed = error
        if self._failed is not None and not quiet:
            raise self._failed


#: Files a storage may hold open while their fsyncs are queued or running.
_MAX_RUNNING = 32

#: The threads fsyncs run on.
_POOL = ForkSafePool(4, "lakever-fsync")


def _succeeded(f: Future[None]) -> bool:
    return f.done() and f.exception() is None


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _local(root: str, fsync: bool) -> LocalStorage:  # noqa: FBT001 - the pickle protocol
    return LocalStorage(root, fsync=fsync)
