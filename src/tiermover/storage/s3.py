"""S3-compatible object storage (a cloud bucket behind a connector) as a storage backend.

Data moves through `obstore` (Rust object_store): streaming reads, multipart uploads,
and retries with exponential backoff on 5xx answers, throttling (429, 503 SlowDown),
timeouts and dropped connections, all outside the GIL so that parallel copies run in
parallel. One request obstore does not offer, an in-place metadata update (CopyObject
with `x-amz-metadata-directive: REPLACE`, which `set_times` needs), goes through httpx,
signed by httpx-auth.

How the POSIX view maps onto a bucket:
- Paths are keys under the backend's prefix; `..` is refused, so nothing leaves it.
- There are no folders: a folder is a key prefix. `walk` and `stat` show prefixes as
  folders (dated when they were listed: a prefix has no dates of its own), `makedirs`
  does nothing, and an empty folder cannot exist.
- File dates and mode live in user metadata, in rclone's convention: `mtime` as
  seconds since the epoch ("1700000000.123456789", which `rclone serve s3` also applies
  to its files), `atime` as RFC 3339, `mode` in octal, `uid` and `gid` in decimal. An
  object without them shows its Last-Modified time.
- A write is one upload: a single PUT for small objects, a multipart upload (parts of
  `part_size`) for larger ones. The object appears under its key only when the upload
  completes; aborting drops the buffer or aborts the multipart upload.
- `commit(replace=False)` checks with a HEAD that nothing appeared under the key, then
  uploads with `If-None-Match: *` where the upload is a single PUT. Servers that ignore
  that condition (rclone serve s3 does) and multipart uploads leave a short race: an
  object created by someone else between the HEAD and the completion is replaced.
"""

from __future__ import annotations

import io
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import BinaryIO
from urllib.parse import quote

import httpx
import obstore
from httpx_auth import AWS4Auth
from obstore.exceptions import (
    AlreadyExistsError, BaseError, NotFoundError, PermissionDeniedError, PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from tiermover.storage.base import AtomicWrite, Backend, EscapesRoot, Entry, StorageError

DEFAULT_REGION = "us-east-1"
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_UPLOAD_CONCURRENCY = 4
DEFAULT_ATTEMPTS = 5
READ_CHUNK = 1024 * 1024
# obstore gathers what the connection receives into chunks of at least this size (each
# a new bytes object). Under the 1 MiB copies read, so that a chunk goes out whole: a
# chunk larger than the read would be sliced, each slice a copy.
STREAM_CHUNK = READ_CHUNK // 2
FILE_MODE = 0o100644
FOLDER_MODE = 0o040755
# Standard headers obstore reports among an object's attributes; the rest is user metadata.
STANDARD_ATTRIBUTES = {"Content-Disposition", "Content-Encoding", "Content-Language",
                       "Content-Type", "Cache-Control", "Storage-Class"}
# Metadata lookups of a listing run in parallel: one HEAD per object is mostly waiting.
_HEAD_POOL_SIZE = 16
_head_pool: ThreadPoolExecutor | None = None
_head_pool_lock = threading.Lock()


def _lookup_pool() -> ThreadPoolExecutor:
    global _head_pool
    with _head_pool_lock:
        if _head_pool is None:
            _head_pool = ThreadPoolExecutor(_HEAD_POOL_SIZE, thread_name_prefix="s3-head")
        return _head_pool


# --- metadata in rclone's convention ----------------------------------------------------------

def _format_mtime(seconds: float) -> str:
    return f"{seconds:.9f}"


def _format_rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(value: str | None) -> float | None:
    """Seconds since the epoch from "1700000000.5" (rclone's mtime) or RFC 3339."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _parse_int(value: str | None, base: int = 10) -> int | None:
    try:
        return int(value, base) if value else None
    except ValueError:
        return None


def _version(meta: dict) -> str | None:
    """The ETag, which names the object's content: listings give it bare, HEAD and GET
    answers in quotes."""
    return (meta.get("e_tag") or "").strip('"') or None


def _user_metadata(attributes: dict) -> dict[str, str]:
    return {name: str(value) for name, value in attributes.items()
            if name not in STANDARD_ATTRIBUTES}


# --- errors -----------------------------------------------------------------------------------

def _cause(error: BaseException) -> str:
    """A short cause from an obstore error ("HTTP 500 after 5 attempts")."""
    text = str(error)
    retries = re.search(r"after (\d+) retries", text)
    attempts = f" after {int(retries.group(1)) + 1} attempts" if retries else ""
    status = re.search(r"status code: (\d{3})", text)
    if status:
        return f"HTTP {status.group(1)}{attempts}"
    lowered = text.lower()
    if any(word in lowered for word in ("error sending request", "connection", "connect",
                                        "timed out", "timeout", "body")):
        return f"connection failed{attempts}"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:200] + attempts


class S3Backend(Backend):
    """A bucket (and optionally a prefix inside it) on an S3-compatible endpoint.

    Safe to share between threads: the obstore and httpx clients are.
    """

    def __init__(self, endpoint: str | None, region: str | None, access_key: str,
                 secret_key: str, bucket: str, prefix: str = "", *,
                 part_size: int = DEFAULT_PART_SIZE,
                 upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
                 max_attempts: int = DEFAULT_ATTEMPTS, initial_backoff: float = 0.1,
                 max_backoff: float = 15.0, connect_timeout: float = 5.0,
                 read_timeout: float = 120.0, timeout: float = 24 * 3600.0):
        if not bucket or "/" in bucket:
            raise StorageError(f"invalid bucket name {bucket!r}")
        if access_key and not secret_key:
            raise StorageError(f"s3://{bucket}: the connector has an access key but no secret key")
        self.bucket = bucket
        self.region = region or DEFAULT_REGION
        self.endpoint = (endpoint or f"https://s3.{self.region}.amazonaws.com").rstrip("/")
        parts = [p for p in (prefix or "").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise EscapesRoot(f"prefix {prefix!r} leaves bucket {bucket}")
        self.prefix = "/".join(parts)
        self.part_size = max(5 * 1024 * 1024, part_size)  # S3's smallest part but the last
        self.upload_concurrency = max(1, upload_concurrency)
        self.max_attempts = max(1, max_attempts)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        # Without keys, requests go unsigned (a public bucket) rather than looking for
        # credentials in the node's environment or an instance metadata service.
        keys = ({"access_key_id": access_key, "secret_access_key": secret_key} if access_key
                else {"skip_signature": True})
        self.store = S3Store(
            bucket, endpoint=self.endpoint, region=self.region, virtual_hosted_style_request=False,
            **keys,
            client_options={
                "allow_http": self.endpoint.startswith("http://"),
                "connect_timeout": timedelta(seconds=connect_timeout),
                # Stalled transfers are caught by the read timeout (and retried); the
                # overall timeout only has to outlast the longest honest transfer.
                "read_timeout": timedelta(seconds=read_timeout),
                "timeout": timedelta(seconds=timeout),
            },
            retry_config={
                "max_retries": self.max_attempts - 1,
                "backoff": {"init_backoff": timedelta(seconds=initial_backoff),
                            "max_backoff": timedelta(seconds=max_backoff), "base": 2},
                "retry_timeout": timedelta(minutes=5),
            },
        )
        self._auth = AWS4Auth(access_key, secret_key, self.region, "s3") if access_key else None
        self._http = httpx.Client(timeout=httpx.Timeout(min(read_timeout, timeout),
                                                        connect=connect_timeout))

    # --- keys -----------------------------------------------------------------------------
    def key(self, path: str) -> str:
        """The object key for `path`, refusing anything that would leave the prefix."""
        if "\x00" in path:
            raise EscapesRoot(f"{path!r} leaves its storage root")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise EscapesRoot(f"{path!r} leaves its storage root")
        return "/".join(([self.prefix] if self.prefix else []) + parts)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _relative(self, key: str) -> str:
        return key[len(self.prefix):].lstrip("/") if self.prefix else key

    def _failure(self, error: BaseException, key: str, doing: str) -> StorageError:
        if isinstance(error, StorageError):
            return error
        if isinstance(error, (PermissionDeniedError, UnauthenticatedError)):
            return StorageError(f"{self.uri(key)}: access denied while {doing} "
                                "(check the connector's keys)")
        return StorageError(f"{self.uri(key)}: {_cause(error)} while {doing}")

    # --- reading --------------------------------------------------------------------------
    def _head(self, key: str) -> Entry | None:
        try:
            result = obstore.get(self.store, key, options={"head": True})
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "reading its attributes") from error
        return self._file_entry(key, result.meta, result.attributes)

    def _file_entry(self, key: str, meta: dict, attributes: dict) -> Entry:
        modified = meta["last_modified"].timestamp()
        mtime = _parse_time(attributes.get("mtime"))
        mtime = modified if mtime is None else mtime
        atime = _parse_time(attributes.get("atime"))
        return Entry(
            path=self._relative(key), type="file", size=int(meta["size"]), mtime=mtime,
            atime=mtime if atime is None else atime, ctime=modified,
            mode=_parse_int(attributes.get("mode"), 8) or FILE_MODE,
            uid=_parse_int(attributes.get("uid")) or 0, gid=_parse_int(attributes.get("gid")) or 0,
            version=_version(meta),
        )

    def _listed_entry(self, meta: dict) -> Entry:
        """An object as a listing shows it: size and ETag, and its Last-Modified time for
        every date (the dates kept in its metadata take a HEAD, or the GET, to read)."""
        modified = meta["last_modified"].timestamp()
        return Entry(path=self._relative(meta["path"]), type="file", size=int(meta["size"]),
                     mtime=modified, atime=modified, ctime=modified, mode=FILE_MODE, uid=0,
                     gid=0, version=_version(meta))

    @staticmethod
    def _folder_entry(path: str, seen: float | None = None) -> Entry:
        # A prefix has no dates of its own: it shows when it was seen, which is what a
        # folder made by copying it gets anyway (rather than 1970 in the catalog).
        seen = time.time() if seen is None else seen
        return Entry(path=path, type="folder", size=0, mtime=seen, atime=seen, ctime=seen,
                     mode=FOLDER_MODE, uid=0, gid=0)

    def stat(self, path: str) -> Entry | None:
        key = self.key(path)
        if not key or key == self.prefix:
            return self._folder_entry("")
        entry = self._head(key)
        if entry is not None:
            return entry
        try:
            stream = obstore.list(self.store, prefix=key, chunk_size=1)
            first = next(iter(stream), None)
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "listing it") from error
        return self._folder_entry(self._relative(key)) if first else None

    def walk(self, path: str, metadata: bool = True) -> Iterator[Entry]:
        """Every object below `path` in key order (S3's listing order, which keeps each
        folder's contents together), each folder just before its contents.

        One listing of the whole subtree, paged; memory does not grow with its size. The
        objects' metadata (dates, mode) is read with HEAD requests, in parallel per page;
        with `metadata=False` only for the objects a listing leaves in doubt.
        """
        base = self.key(path)
        start = self._relative(base)
        seen = time.time()
        open_folders: list[str] = []  # the chain of folders the last entry is in
        held: Entry | None = None  # a file that could turn out to be a folder too
        try:
            for page in obstore.list(self.store, prefix=base or None, chunk_size=1000):
                for entry in self._page_entries(page, metadata):
                    relative = entry.path[len(start):].lstrip("/") if start else entry.path
                    if not relative:
                        continue  # the object named like `path` itself
                    if held is not None and not entry.path.startswith(held.path + "/"):
                        yield held
                    held = None
                    names = relative.split("/")
                    ancestors = ["/".join(filter(None, [start, *names[:i + 1]]))
                                 for i in range(len(names) - 1)]
                    keep = 0
                    while (keep < len(open_folders) and keep < len(ancestors)
                           and open_folders[keep] == ancestors[keep]):
                        keep += 1
                    del open_folders[keep:]
                    for folder in ancestors[keep:]:
                        open_folders.append(folder)
                        yield self._folder_entry(folder, seen)
                    held = entry
        except (BaseError, OSError) as error:
            raise self._failure(error, base, "listing it") from error
        if held is not None:
            yield held

    def listed_paths(self, path: str, limit: int) -> frozenset[str] | None:
        """One listing of the subtree (a request per thousand objects, where `stat`
        takes a HEAD and, for a missing path, a listing): its objects and their folders."""
        base = self.key(path)
        paths: set[str] = set()
        try:
            for page in obstore.list(self.store, prefix=base + "/" if base else None,
                                     chunk_size=min(1000, limit + 1)):
                for meta in page:
                    relative = self._relative(meta["path"])
                    while relative and relative not in paths:
                        paths.add(relative)
                        relative = relative.rpartition("/")[0]
                    if len(paths) > limit:
                        return None
        except (BaseError, OSError) as error:
            raise self._failure(error, base, "listing it") from error
        return frozenset(paths)

    def _page_entries(self, page, metadata: bool = True) -> Iterator[Entry]:
        """A listing page's objects in key order. The listing holds no user metadata: a
        HEAD per object brings the dates it keeps. A folder marker ("photos/", as consoles
        make them) is listed without its slash and is not found by the HEAD: it is left
        out, and its folder shows through what it holds.

        Without `metadata`, the listing's entry stands, except for the objects it cannot
        vouch for: an empty one (a folder marker looks like an empty file) and one
        without an ETag (its version, which a copy checks its read against)."""
        pool = _lookup_pool()
        if metadata:
            heads = pool.map(self._head, [meta["path"] for meta in page])
            yield from (entry for entry in heads if entry is not None)
            return
        looked_up = {meta["path"]: pool.submit(self._head, meta["path"]) for meta in page
                     if not int(meta["size"]) or not _version(meta)}
        for meta in page:
            lookup = looked_up.get(meta["path"])
            entry = self._listed_entry(meta) if lookup is None else lookup.result()
            if entry is not None:
                yield entry

    def open_read(self, path: str) -> BinaryIO:
        key = self.key(path)
        try:
            result = obstore.get(self.store, key)
        except (NotFoundError, FileNotFoundError) as error:
            raise StorageError(f"{self.uri(key)}: no such object") from error
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "opening it") from error
        return _ObjectReader(self, key, result.stream(min_chunk_size=STREAM_CHUNK),
                             self._file_entry(key, result.meta, result.attributes))

    def entry_read(self, reader: BinaryIO, path: str) -> Entry | None:
        """The object the GET answered with: the whole body a reader gives is that one
        version (obstore refuses to resume a dropped read from a different one)."""
        if isinstance(reader, _ObjectReader) and reader.entry.path == self._relative(self.key(path)):
            return reader.entry
        return self.stat(path)

    # --- writing --------------------------------------------------------------------------
    def begin_write(self, path: str) -> AtomicWrite:
        key = self.key(path)
        if not key or key == self.prefix:
            raise StorageError(f"{self.uri(key)}: cannot write a file at the storage root")
        return _S3AtomicWrite(self, key)

    def makedirs(self, path: str) -> bool:
        self.key(path)  # folders are prefixes: nothing to create, but the path must be valid
        return False

    def remove(self, path: str) -> None:
        key = self.key(path)
        if not key or key == self.prefix:
            return
        try:
            obstore.delete(self.store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "deleting it") from error

    def remove_folder(self, path: str) -> bool:
        """A folder is gone with its last object: True when nothing is left under it."""
        key = self.key(path)
        try:
            stream = obstore.list(self.store, prefix=key or None, chunk_size=1)
            return next(iter(stream), None) is None
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "listing it") from error

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        """Rewrite the object's metadata in place (a server-side copy onto itself).
        Folders are prefixes, without dates to set."""
        key = self.key(path)
        try:
            current = obstore.get(self.store, key, options={"head": True})
        except (NotFoundError, FileNotFoundError) as error:
            entry = self.stat(path)
            if entry is not None and entry.type == "folder":
                return
            raise StorageError(f"{self.uri(key)}: no such object") from error
        except (BaseError, OSError) as error:
            raise self._failure(error, key, "reading its attributes") from error
        metadata = _user_metadata(current.attributes)
        metadata.update(mtime=_format_mtime(mtime), atime=_format_rfc3339(atime))
        headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
        headers["x-amz-copy-source"] = quote(f"/{self.bucket}/{key}", safe="/~")
        headers["x-amz-metadata-directive"] = "REPLACE"
        content_type = current.attributes.get("Content-Type")
        if content_type:
            headers["Content-Type"] = content_type
        self._signed_request("PUT", key, headers, "setting its dates")

    def _object_url(self, key: str) -> str:
        return f"{self.endpoint}/{quote(self.bucket)}/{quote(key, safe='/~')}"

    def _signed_request(self, method: str, key: str, headers: dict, doing: str) -> httpx.Response:
        """One signed request, retried like obstore's on 5xx, 429 and connection errors."""
        cause = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._http.request(method, self._object_url(key), headers=headers,
                                              auth=self._auth)
            except httpx.TransportError as error:
                cause = f"connection failed ({type(error).__name__})"
            else:
                # A copy can fail after its 200 status was sent: the error is in the body.
                failed_late = response.status_code == 200 and "<Error>" in response.text
                if response.status_code < 300 and not failed_late:
                    return response
                if response.status_code in (401, 403):
                    raise StorageError(f"{self.uri(key)}: access denied while {doing} "
                                       "(check the connector's keys)")
                if response.status_code < 500 and response.status_code != 429 and not failed_late:
                    raise StorageError(f"{self.uri(key)}: HTTP {response.status_code} while "
                                       f"{doing}")
                cause = f"HTTP {response.status_code}"
            if attempt < self.max_attempts:
                delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
                time.sleep(delay * random.uniform(0.5, 1.0))
        raise StorageError(f"{self.uri(key)}: {cause} after {self.max_attempts} attempts "
                           f"while {doing}")

    # --- the bucket itself ----------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def bucket_problem(self, timeout: float = 2.0) -> str | None:
        """Why the bucket cannot be used (one HEAD of the bucket), or None when it can."""
        where = f"s3://{self.bucket} at {self.endpoint}"
        try:
            response = self._http.head(f"{self.endpoint}/{quote(self.bucket)}", auth=self._auth,
                                       timeout=timeout)
        except httpx.HTTPError as error:
            return f"{where}: no answer ({type(error).__name__})"
        if response.status_code == 200:
            return None
        if response.status_code in (401, 403):
            return f"{where}: access denied (check the connector's keys)"
        if response.status_code == 404:
            return f"{where}: no such bucket"
        return f"{where}: HTTP {response.status_code}"

    def bucket_reachable(self, timeout: float = 2.0) -> bool:
        return self.bucket_problem(timeout) is None


class _ObjectReader(io.RawIOBase):
    """An object's bytes as a file: a streamed GET (obstore resumes it with a ranged
    request if the connection drops). `entry` is the object the GET answered with."""

    def __init__(self, backend: S3Backend, key: str, stream, entry: Entry):
        self._backend = backend
        self._key = key
        self.entry = entry
        self._stream = stream
        self._chunk = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        try:
            chunk = next(self._stream, None)
        except (BaseError, OSError) as error:
            raise self._backend._failure(error, self._key, "reading it") from error
        if chunk is None:
            return False
        self._chunk, self._offset = chunk, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self._offset >= len(self._chunk) and not self._next_chunk():
            return b""
        if self._offset == 0 and size >= len(self._chunk):
            out = self._chunk
        else:
            out = self._chunk[self._offset:self._offset + size]
        self._offset += len(out)
        return out

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(READ_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream = iter(())
        self._chunk = b""
        super().close()


class _S3AtomicWrite(AtomicWrite):
    """Buffers up to one part; past that, streams a multipart upload (parts upload while
    more data comes). Nothing is visible under the key before `commit`."""

    def __init__(self, backend: S3Backend, key: str):
        self.backend = backend
        self.key = key
        self._buffer = bytearray()
        self._writer = None  # obstore's multipart writer, once the data outgrows one part
        self._finished = False

    def write(self, data: bytes) -> None:
        """The caller may reuse `data`'s buffer once this returns (copies take a reused
        read buffer): obstore keeps a reference to what it is given until the part is
        sent, so anything that is not immutable bytes is copied first."""
        if self._finished:
            raise StorageError(f"{self.backend.uri(self.key)}: write after commit or abort")
        try:
            if self._writer is not None:
                self._writer.write(data if isinstance(data, bytes) else bytes(data))
                return
            self._buffer += data
            if len(self._buffer) > self.backend.part_size:
                self._writer = obstore.open_writer(
                    self.backend.store, self.key, buffer_size=self.backend.part_size,
                    max_concurrency=self.backend.upload_concurrency)
                buffered, self._buffer = bytes(self._buffer), bytearray()
                self._writer.write(buffered)
        except (BaseError, OSError) as error:
            self.abort()
            raise self.backend._failure(error, self.key, "writing it") from error

    def commit(self, replace: bool) -> None:
        if self._finished:
            raise StorageError(f"{self.backend.uri(self.key)}: already committed or aborted")
        try:
            if not replace and self.backend._head(self.key) is not None:
                raise FileExistsError(self.backend.uri(self.key))
            if self._writer is None:
                obstore.put(self.backend.store, self.key, bytes(self._buffer),
                            mode="overwrite" if replace else "create", use_multipart=False)
            else:
                self._writer.close()  # uploads the last part and completes the upload
        except (AlreadyExistsError, PreconditionError) as error:
            self.abort()
            raise FileExistsError(self.backend.uri(self.key)) from error
        except FileExistsError:
            self.abort()
            raise
        except (BaseError, OSError, StorageError) as error:
            self.abort()
            raise self.backend._failure(error, self.key, "writing it") from error
        self._finished = True
        self._buffer = bytearray()
        self._writer = None

    def abort(self) -> None:
        self._finished = True
        self._buffer = bytearray()
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            # Leaving the writer's context with an exception aborts its multipart upload.
            writer.__exit__(StorageError, StorageError("aborted"), None)
        except (BaseError, OSError):
            pass  # already failed and aborted by obstore, or the server expires it
