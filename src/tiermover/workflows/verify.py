"""Re-reading stored data to prove it: one hashing loop for every action that verifies."""

from __future__ import annotations

from tiermover.storage.base import Backend
from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.workflows.base import RunContext

CHUNK = 1024 * 1024


def read_checksum(backend: Backend, path: str, algorithm: str | None, context: RunContext,
                  count_bytes: bool = True) -> str | None:
    """The checksum of the data at `path`, or None when there is no file there."""
    found = backend.stat(path)
    if found is None or found.type != "file":
        return None
    hasher = new_hasher(algorithm or DEFAULT_ALGORITHM)
    with backend.open_read(path) as reader:
        while chunk := reader.read(CHUNK):
            context.checkpoint()
            hasher.update(chunk)
            if count_bytes:
                context.add_bytes(len(chunk))
    return hasher.hexdigest()
