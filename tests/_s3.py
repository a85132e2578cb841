"""The test S3 server: moto in server mode on 127.0.0.1 (it enforces conditional writes)."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any


def start_server() -> tuple[Any, str]:
    """Start a moto S3 server on a free port of 127.0.0.1; return it and its endpoint."""
    from moto.server import ThreadedMotoServer

    _atomic_conditional_puts()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


_PUT_LOCK = threading.Lock()


def _atomic_conditional_puts() -> None:
    """Make moto's conditional PUT atomic, as S3's is.

    moto checks ``If-None-Match: *`` and then stores the object, unlocked
    (moto/s3/responses.py, ``S3Response.put_object``): two threads of its server can
    both pass the check, so under load two racing creates both succeed -- a test
    server bug that S3 does not have (measured here: a racing-writers test failed
    once in a loaded run). One lock around its PUT handler closes the window.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    if getattr(original, "_lakever_locked", False):
        return

    def put_object(self: Any) -> Any:
        with _PUT_LOCK:
            return original(self)

    put_object._lakever_locked = True  # type: ignore[attr-defined]
    S3Response.put_object = put_object  # type: ignore[method-assign]


def make_bucket(endpoint: str) -> str:
    """Create a bucket with a fresh name; return ``s3://<name>``."""
    import boto3

    name = f"lake-{uuid.uuid4().hex[:20]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="lakever-test-key",
        aws_secret_access_key="lakever-test-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return f"s3://{name}"


class Proxy:
    """An HTTP proxy in front of the test server that injects latency and faults.

    ``latency``: seconds added to every request (stands in for a real S3 round trip).
    `fail` makes the next requests answer ``503 SlowDown`` without reaching the
    server; `drop_after_send` forwards the next matching request to the server and
    then closes the connection without an answer (a timeout after send: the write
    may have landed). ``requests`` counts what reached the proxy, by method.
    """

    def __init__(self, upstream: str, latency: float = 0.0) -> None:
        import http.client
        import http.server
        import threading
        import time
        from urllib.parse import urlsplit

        self.latency = latency
        self.requests: dict[str, int] = {}
        self.log: list[tuple[str, str]] = []
        #: Access key ids requests were signed with.
        self.key_ids: set[str] = set()
        self._fail = 0
        self._drop: list[str] = []
        self._lock = threading.Lock()
        target = urlsplit(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests[self.command] = proxy.requests.get(self.command, 0) + 1
                    proxy.log.append((self.command, self.path))
                    auth = self.headers.get("Authorization") or ""
                    if "Credential=" in auth:  # SigV4: the access key id signed with
                        proxy.key_ids.add(auth.split("Credential=", 1)[1].split("/", 1)[0])
                    fail = proxy._fail > 0
                    if fail:
                        proxy._fail -= 1
                    drop = any(self.command == "PUT" and s in self.path for s in proxy._drop)
                    if drop:
                        proxy._drop = [s for s in proxy._drop if s not in self.path]
                if proxy.latency:
                    time.sleep(proxy.latency)
                if fail:
                    msg = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if drop:  # the server did it; the client never hears
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                # A HEAD answer has no body but the object's length.
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, n: int) -> None:
        """Answer the next ``n`` requests with 503 SlowDown."""
        with self._lock:
            self._fail = n

    def drop_after_send(self, path_part: str) -> None:
        """Forward the next PUT whose path contains ``path_part``, then hang up."""
        with self._lock:
            self._drop.append(path_part)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
