"""Backends from the descriptors the server sends: the one place that knows every kind."""

from __future__ import annotations

import os

from tiermover.storage.base import Backend, StorageError
from tiermover.storage.local import LocalBackend


def open_backend(descriptor: dict, fsync: bool = True) -> Backend:
    kind = descriptor.get("kind")
    if kind == "local":
        return LocalBackend(descriptor["root"], fsync=fsync)
    raise StorageError(f"this node cannot open storage of kind {kind!r}")


def reachable(descriptor: dict | None) -> bool:
    """Whether this node can serve a storage (cheap: called every second per storage)."""
    if not descriptor:
        return False
    if descriptor.get("kind") == "local":
        return os.path.isdir(descriptor["root"])
    return False
