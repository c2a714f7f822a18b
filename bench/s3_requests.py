"""A counting HTTP proxy in front of an S3 server: how many requests of each kind a copy
sends (`bench/copy.py --count-requests`).

It forwards every request byte for byte (the Host header included, so signatures made
for the proxy's address still verify behind it), streams bodies both ways, keeps client
connections alive, and files each request under one S3 operation. A Python proxy in the
data path slows the copies down: with it, the times are not a measure, the counts are.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The operations, in the order a table shows them.
OPERATIONS = ("list", "HEAD object", "GET object", "PUT object", "multipart create",
              "PUT part", "multipart complete", "multipart abort", "copy object",
              "DELETE object", "other")


def operation(method: str, target: str, headers) -> str:
    """The S3 operation of a path-style request (`/bucket` or `/bucket/key?query`)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    has_key = "/" in parts.path.lstrip("/")
    if not has_key:
        return "list" if method == "GET" else "other"
    if method == "HEAD":
        return "HEAD object"
    if method == "GET":
        return "GET object"
    if method == "POST" and "uploads" in query:
        return "multipart create"
    if method == "POST" and "uploadId" in query:
        return "multipart complete"
    if method == "DELETE" and "uploadId" in query:
        return "multipart abort"
    if method == "PUT" and "partNumber" in query:
        return "PUT part"
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "copy object"
    if method == "PUT":
        return "PUT object"
    if method == "DELETE":
        return "DELETE object"
    return "other"


class CountingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.removeprefix("http://")
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def take(self) -> Counter[str]:
        """The counts since the last take, reset."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: CountingProxy

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def _forward(self) -> None:
        self.proxy.count(operation(self.command, self.path, self.headers))
        host, port = self.proxy.upstream.split(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            for name, value in self.headers.items():
                upstream.putheader(name, value)
            upstream.endheaders()
            if chunked:
                self._relay_chunked_request(upstream)
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    upstream.send(chunk)
                    remaining -= len(chunk)
            response = upstream.getresponse()
            self._relay_response(response)
        finally:
            upstream.close()

    def _relay_chunked_request(self, upstream: http.client.HTTPConnection) -> None:
        while True:
            line = self.rfile.readline()
            upstream.send(line)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = self.rfile.readline()
                    upstream.send(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return
            upstream.send(self.rfile.read(size + 2))  # the chunk and its CRLF

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
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
        sent = 0
        while sent < total:
            chunk = response.read(min(total - sent, 1 << 20))
            if not chunk:
                break
            self.wfile.write(chunk)
            sent += len(chunk)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


def per_object_table(counts: dict[str, Counter[str]], objects: int) -> list[str]:
    """Lines of a table: per tool and direction (the keys), each operation's requests per
    object, and the total."""
    used = [name for name in OPERATIONS if any(c.get(name) for c in counts.values())]
    columns = [*used, "total"]
    first = max((len(key) for key in counts), default=10)
    widths = [max(6, len(name)) for name in columns]
    lines = [f"{'requests per object':<{first}}  " +
             "  ".join(f"{name:>{w}}" for name, w in zip(columns, widths))]
    for key, counted in counts.items():
        cells = [counted.get(name, 0) / objects for name in used]
        cells.append(sum(counted.values()) / objects)
        lines.append(f"{key:<{first}}  " +
                     "  ".join(f"{cell:>{w}.2f}" for cell, w in zip(cells, widths)))
    return lines
