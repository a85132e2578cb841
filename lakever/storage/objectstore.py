"""Object stores (S3 and S3-compatible, GCS, Azure) through obstore, with conditional writes.

Every request goes through obstore (Rust ``object_store``): one client per storage,
connection reuse, retries of transient failures (5xx, 503 SlowDown, timeouts)
with exponential backoff, and requests that release the GIL, so a thread pool
fetches many objects at once.

The commit step is a conditional create: S3 ``If-None-Match: *``, GCS
``ifGenerationMatch=0``, Azure ``If-None-Match: *``. The server decides which
writer wins; lakever never checks-then-writes. A create whose outcome is unknown
(a timeout after the request was sent, or a retry that finds the name taken by
its own first attempt) is resolved by reading the object back: our bytes there
mean our write landed.

Immutable objects read with a known hash (manifests, deletion vectors) and
fragments are kept in a local `ObjectCache`; engines read fragments from it
(`engine_view`). Credentials are taken from storage options, the usual
environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...) or an
AWS profile, and are never shown: not in ``repr``, not in error messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from lakever.errors import InvalidArgument, StorageError
from lakever.storage.base import Storage, StoredFile
from lakever.storage.cache import CacheView, ObjectCache, open_cache

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["ObjectStorage", "PROTOCOLS"]

#: URL scheme -> obstore's name for the service.
PROTOCOLS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}

#: Options lakever reads itself; every other option goes to obstore's store config.
_OWN = ("cache_dir", "cache_size", "profile")
#: Spellings users bring from s3fs/boto3 -> obstore's config keys.
_ALIASES = {
    "key": "aws_access_key_id",
    "secret": "aws_secret_access_key",
    "token": "aws_session_token",
    "endpoint_url": "aws_endpoint",
    "region_name": "aws_region",
    "anon": "aws_skip_signature",
}
_ENDPOINT_KEYS = ("aws_endpoint", "aws_endpoint_url", "endpoint", "endpoint_url")
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")

T = TypeVar("T")


class ObjectStorage(Storage):
    """A dataset root on an object store (``s3://bucket/prefix``, ``gs://``, ``az://``)."""

    def __init__(self, uri: str, options: dict[str, Any] | None = None) -> None:
        protocol, rest = uri.split("://", 1)
        if protocol not in PROTOCOLS:
            raise InvalidArgument(f"{protocol}:// is not an object store lakever writes to")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InvalidArgument(f"dataset location {uri!r} names no bucket")
        self.protocol = protocol
        self._prefix = prefix.strip("/")
        self.uri = f"{protocol}://{bucket}" + (f"/{self._prefix}" if self._prefix else "")
        self._bucket = bucket
        #: The options it was opened with (kept to reopen it in workers; never shown).
        self.options: dict[str, Any] = dict(options or {})
        self._secrets = _secret_values(self.options)
        self._store = self._open_store()
        self.cache: ObjectCache = open_cache(self.options, self._cache_key())
        self._view: CacheView | None = None

    # -- setup -------------------------------------------------------------------------

    def _open_store(self) -> Any:
        try:
            import obstore.store
        except ImportError as exc:
            raise StorageError(
                f"cannot open {self.uri}: {self.protocol}:// needs obstore; install the extra "
                f"for {self.protocol}://: pip install 'lakever[{PROTOCOLS[self.protocol]}]'",
                path=self.uri,
            ) from exc
        config = {_ALIASES.get(k, k): v for k, v in self.options.items() if k not in _OWN}
        config = {k: str(v).lower() if isinstance(v, bool) else v for k, v in config.items()}
        client: dict[str, Any] = {}
        endpoint = self.endpoint()
        if endpoint is not None and endpoint.startswith("http://"):
            client["allow_http"] = True
        kwargs: dict[str, Any] = {"config": config, "client_options": client}
        provider = self._profile_provider(config)
        if provider is not None:
            kwargs["credential_provider"] = provider
        self._store_kwargs = kwargs
        try:
            return obstore.store.from_url(self.uri, **kwargs)
        except Exception as exc:  # obstore raises its own classes and ValueError
            raise StorageError(
                f"cannot open {self.uri}: {self._scrub(_first_line(exc))}; check the storage "
                "options (names as in obstore's S3Config/GCSConfig/AzureConfig) and the "
                "AWS_*/GOOGLE_*/AZURE_* environment variables",
                path=self.uri,
            ) from None

    def _profile_provider(self, config: dict[str, Any]) -> Any:
        """A boto3 credential provider when an AWS profile is asked for (and no key given)."""
        profile = self.options.get("profile") or os.environ.get("AWS_PROFILE")
        if PROTOCOLS[self.protocol] != "s3" or not profile:
            return None
        if "aws_access_key_id" in config or (
            "profile" not in self.options and os.environ.get("AWS_ACCESS_KEY_ID")
        ):
            return None
        try:
            import boto3  # type: ignore[import-untyped]
            from obstore.auth.boto3 import Boto3CredentialProvider
        except ImportError as exc:
            raise StorageError(
                f"cannot open {self.uri}: AWS profile {profile!r} needs boto3; "
                "install it with: pip install 'lakever[s3]'",
                path=self.uri,
            ) from exc
        session = boto3.Session(profile_name=profile)
        if session.region_name and "aws_region" not in config and "region" not in config:
            config["aws_region"] = session.region_name
        return Boto3CredentialProvider(session)

    def endpoint(self) -> str | None:
        """The endpoint URL requests go to (None: the service's default)."""
        for k in _ENDPOINT_KEYS:
            value = self.options.get(k)
            if isinstance(value, str):
                return value
        for var in _ENDPOINT_ENV:
            if os.environ.get(var):
                return os.environ[var]
        return None

    def _cache_key(self) -> str:
        """Names this store's objects in a shared cache: the location and its endpoint."""
        return hashlib.sha256(f"{self.endpoint() or ''}|{self.uri}".encode()).hexdigest()[:24]

    def __reduce__(self) -> tuple[Any, ...]:
        # Options travel with the pickle (to worker processes, never to storage).
        return (ObjectStorage, (self.uri, dict(self.options)))

    # -- errors ------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _call(self, action: str, rel: str, fn: Callable[[], T]) -> T:
        """Run one request; absent -> FileNotFoundError, taken -> FileExistsError."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            return fn()
        except FileNotFoundError:
            raise FileNotFoundError(2, "No such object", self.full_path(rel)) from None
        except (AlreadyExistsError, PreconditionError):
            raise FileExistsError(17, "Object exists", self.full_path(rel)) from None
        except Exception as exc:
            raise StorageError(
                f"cannot {action} {self.full_path(rel)}: {self._scrub(_first_line(exc))}",
                path=self.full_path(rel),
            ) from None

    # -- Objects -----------------------------------------------------------------------

    def read_bytes(self, rel: str) -> bytes:
        import obstore

        return self._call("read", rel, lambda: bytes(obstore.get(self._store, rel).bytes()))

    def read_object(self, rel: str, content_hash: str) -> bytes:
        cached = self.cache.get(rel, content_hash)
        if cached is not None:
            return cached
        data = self.read_bytes(rel)
        if f"sha256:{hashlib.sha256(data).hexdigest()}" == content_hash:
            self.cache.put(rel, data)
        return data

    def write_new(self, rel: str, data: bytes | memoryview) -> None:
        try:
            self._create(rel, data)
        except FileExistsError:
            # A retry of our own first attempt finds the name taken: read it back.
            if not self._holds(rel, data):
                raise
        if rel.startswith("data/"):
            self.cache.put(rel, data)

    def exists(self, rel: str) -> bool:
        import obstore

        try:
            self._call("read", rel, lambda: obstore.head(self._store, rel))
        except FileNotFoundError:
            return False
        return True

    def names_after(self, rel_dir: str, after: str, limit: int) -> list[str] | None:
        import obstore

        prefix = rel_dir.strip("/")
        offset = f"{prefix}/{after}" if after else None

        def first_page() -> list[str]:
            stream = obstore.list(self._store, prefix, offset=offset, chunk_size=limit)
            return [str(m["path"]) for m in next(iter(stream), [])]

        paths = self._call("list", rel_dir, first_page)
        # A listing is recursive: keep the names directly in rel_dir.
        rest = [p[len(prefix) + 1 :] if prefix else p for p in paths]
        return [n for n in rest if n and "/" not in n][:limit]

    def list(self, rel_dir: str) -> list[str]:
        import obstore

        prefix = rel_dir.strip("/")
        result = self._call(
            "list", rel_dir, lambda: obstore.list_with_delimiter(self._store, prefix or None)
        )
        names = {str(p).rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"]}
        names.update(str(o["path"]).rsplit("/", 1)[-1] for o in result["objects"])
        return sorted(names)

    def walk(self, rel_dir: str) -> Sequence[StoredFile]:
        """Every object under ``rel_dir`` (recursively), paged in one `_call`, so a failure
        while paging is a `StorageError` too."""
        import obstore

        prefix = rel_dir.strip("/")

        def collect() -> list[StoredFile]:
            return [
                StoredFile(str(m["path"]), int(m["size"]), m["last_modified"].timestamp())
                for chunk in obstore.list(self._store, prefix or None)
                for m in chunk
            ]

        return sorted(self._call("list", rel_dir, collect), key=lambda f: f.path)

    def delete(self, rel: str) -> None:
        import obstore

        with contextlib.suppress(FileNotFoundError):
            self._call("delete", rel, lambda: obstore.delete(self._store, rel))

    def delete_many(self, rels: Sequence[str]) -> None:
        """One DeleteObjects request per 1,000 keys (absent keys are not an error)."""
        import obstore

        def batch(keys: list[str]) -> Callable[[], None]:
            return lambda: obstore.delete(self._store, keys)

        for i in range(0, len(rels), 1000):
            chunk = list(rels[i : i + 1000])
            with contextlib.suppress(FileNotFoundError):
                self._call("delete", chunk[0], batch(chunk))

    # -- Atomic ------------------------------------------------------------------------

    def _create(self, rel: str, data: bytes | memoryview) -> None:
        import obstore

        body = data if isinstance(data, bytes) else bytes(data)
        self._call("write", rel, lambda: obstore.put(self._store, rel, body, mode="create"))

    def _holds(self, rel: str, data: bytes | memoryview) -> bool:
        """Whether ``rel`` holds exactly ``data`` (resolves an ambiguous create)."""
        try:
            return self.read_bytes(rel) == bytes(data)
        except FileNotFoundError:
            return False

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        try:
            self._create(rel, data)
        except FileExistsError:
            # Another writer won, or a retried request found our own first attempt:
            # the bytes decide (a log entry names its own snapshot id, so another
            # writer's entry never equals ours).
            return self._holds(rel, data)
        except StorageError:
            # Unknown outcome (e.g. a timeout after the request was sent): read back.
            try:
                if self._holds(rel, data):
                    return True
                if self.exists(rel):
                    return False
            except (StorageError, FileNotFoundError):
                pass
            raise
        return True

    def write_hint(self, rel: str, data: bytes) -> None:
        import obstore

        try:
            self._call("write", rel, lambda: obstore.put(self._store, rel, data))
        except StorageError as exc:
            raise OSError(str(exc)) from None

    # -- Engines -----------------------------------------------------------------------

    def full_path(self, rel: str) -> str:
        return f"{self.uri}/{rel}" if rel else self.uri

    def engine_view(self) -> Storage:
        if self._view is None:
            self._view = CacheView(self, self.cache)
        return self._view

    def arrow_filesystem(self) -> pafs.FileSystem | None:
        import pyarrow.fs as pafs

        handler = pafs.FSSpecHandler(self.fsspec_filesystem())  # type: ignore[abstract]
        return pafs.PyFileSystem(handler)

    def fsspec_filesystem(self) -> Any:
        from obstore.fsspec import FsspecStore

        service = {"s3": "s3", "gcs": "gs", "azure": "az"}[PROTOCOLS[self.protocol]]
        return FsspecStore(service, **self._store_kwargs)  # type: ignore[call-overload]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _secret_values(options: dict[str, Any]) -> list[str]:
    """Option values that must never be shown (anything that looks like a credential)."""
    words = ("secret", "key", "token", "password", "credential", "sas", "signature")
    cloud = ("AWS_", "GOOGLE_", "AZURE_")
    pairs = [*options.items(), *((k, v) for k, v in os.environ.items() if k.startswith(cloud))]
    return [
        str(v)
        for k, v in pairs
        if isinstance(v, str) and len(v) >= 4 and any(w in k.lower() for w in words)
    ]
