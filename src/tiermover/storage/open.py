"""Backends from the descriptors the server sends: the one place that knows every kind.

- `{"kind": "local", "root": ...}`: containers and NAS shares.
- `{"kind": "s3", "endpoint", "region", "access_key", "secret_key", "bucket", "prefix"}`:
  cloud buckets (optional tuning: see S3_TUNING).
- `{"kind": "tape_library", "protocol", "device"}`: a tape library; what opens is its
  driver (tiermover.storage.tape), not a file backend.
"""

from __future__ import annotations

import os
import threading
import time

from tiermover.storage.base import Backend, StorageError
from tiermover.storage.local import LocalBackend

S3_TUNING = {"part_size": int, "upload_concurrency": int, "max_attempts": int,
             "initial_backoff": float, "connect_timeout": float, "read_timeout": float,
             "timeout": float}
# How long a bucket check holds, and how long a first check may keep the caller waiting
# (the node refreshes its storages every second and must not stall on a dead endpoint).
REACHABLE_FOR = 30.0
UNREACHABLE_FOR = 5.0
FIRST_CHECK_WAIT = 0.5


def open_backend(descriptor: dict, fsync: bool = True) -> Backend:
    kind = descriptor.get("kind")
    if kind == "local":
        return LocalBackend(descriptor["root"], fsync=fsync)
    if kind == "s3":
        from tiermover.storage.s3 import S3Backend  # only nodes that serve buckets load it

        tuning = {name: kind(descriptor[name]) for name, kind in S3_TUNING.items()
                  if descriptor.get(name) is not None}
        return S3Backend(descriptor.get("endpoint"), descriptor.get("region"),
                         descriptor.get("access_key") or "", descriptor.get("secret_key") or "",
                         descriptor["bucket"], descriptor.get("prefix") or "", **tuning)
    if kind == "tape_library":
        from tiermover.storage.tape import open_library

        return open_library(descriptor)
    raise StorageError(f"this node cannot open storage of kind {kind!r}")


class _BucketChecks:
    """Cached HEAD-bucket results, refreshed in the background so that a caller never
    waits on a slow endpoint for more than FIRST_CHECK_WAIT, and only the first time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[tuple, tuple[bool, float]] = {}  # key -> (reachable, checked at)
        self._running: dict[tuple, threading.Event] = {}

    def reachable(self, descriptor: dict) -> bool:
        key = tuple(descriptor.get(name) for name in
                    ("endpoint", "region", "access_key", "secret_key", "bucket"))
        now = time.monotonic()
        with self._lock:
            known = self._results.get(key)
            if known is not None:
                ok, checked = known
                if now - checked < (REACHABLE_FOR if ok else UNREACHABLE_FOR):
                    return ok
            done = self._running.get(key)
            if done is None:
                done = self._running[key] = threading.Event()
                threading.Thread(target=self._check, args=(key, descriptor, done),
                                 name="bucket-check", daemon=True).start()
        if known is not None:
            return known[0]  # stale, being refreshed: the last answer stands meanwhile
        done.wait(FIRST_CHECK_WAIT)
        with self._lock:
            known = self._results.get(key)
        return known[0] if known else False

    def _check(self, key: tuple, descriptor: dict, done: threading.Event) -> None:
        try:
            backend = open_backend(descriptor)
            try:
                ok = backend.bucket_reachable()
            finally:
                backend.close()
        except Exception:  # a malformed descriptor reaches nothing
            ok = False
        with self._lock:
            self._results[key] = (ok, time.monotonic())
            self._running.pop(key, None)
        done.set()


_bucket_checks = _BucketChecks()


def reachable(descriptor: dict | None) -> bool:
    """Whether this node can serve a storage (cheap: called every second per storage)."""
    if not descriptor:
        return False
    if descriptor.get("kind") == "local":
        return os.path.isdir(descriptor["root"])
    if descriptor.get("kind") == "s3":
        return _bucket_checks.reachable(descriptor)
    if descriptor.get("kind") == "tape_library":
        from tiermover.storage.tape import library_reachable

        return library_reachable(descriptor)
    return False
