"""Reading stored data: the chunk loop every copy and every check goes through, and the
hashing loop for every action that verifies."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from typing import BinaryIO

from tiermover.storage.base import Backend
from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.workflows.base import RunContext

CHUNK = 1024 * 1024
# One read buffer per thread, lent to one read_chunks at a time.
_spare = threading.local()


def read_chunks(reader: BinaryIO, size: int = CHUNK,
                expected: int | None = None) -> Iterator[memoryview | bytes]:
    """The reader's data, chunk by chunk.

    A local file is read into a buffer reused for every chunk (and the thread's next
    file): a fresh bytes object of a megabyte per read costs the memory allocator a
    mapping and the kernel page faults on every chunk, more than the copy itself. Each
    chunk is valid only until the next one is asked for, so a consumer must be done with
    it (hashed, written) by then. Other readers (object storage) hand out the chunks
    they receive.

    `expected`: the size the caller expects and checks again once the data is read (a
    copy compares the file's size after the read with what it copied). A local read
    that comes up short exactly there is at the end: no further read to hear it.
    """
    if isinstance(reader, io.FileIO):
        buffer = getattr(_spare, "buffer", None)
        _spare.buffer = None  # lent out: a read_chunks nested in this one gets its own
        if buffer is None or len(buffer) != size:
            buffer = bytearray(size)
        try:
            view = memoryview(buffer)
            count = reader.readinto(buffer)
            if count == size:
                _reads_front_to_back(reader)
            total = 0
            while count:
                yield view[:count]
                total += count
                if count < size and total == expected:
                    return
                count = reader.readinto(buffer)
        finally:
            _spare.buffer = buffer
        return
    while chunk := reader.read(size):
        yield chunk


def _reads_front_to_back(reader: io.FileIO) -> None:
    """A file that fills a whole chunk is a large one: the kernel may read further ahead,
    and sooner. (A small file comes in one read: the hint would only cost it a system
    call.)"""
    try:
        os.posix_fadvise(reader.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        pass  # not a regular file, or a file system without read-ahead hints


def read_checksum(backend: Backend, path: str, algorithm: str | None, context: RunContext,
                  count_bytes: bool = True) -> str | None:
    """The checksum of the data at `path`, or None when there is no file there."""
    found = backend.stat(path)
    if found is None or found.type != "file":
        return None
    hasher = new_hasher(algorithm or DEFAULT_ALGORITHM)
    with backend.open_read(path) as reader:
        for chunk in read_chunks(reader):
            context.checkpoint()
            hasher.update(chunk)
            if count_bytes:
                context.add_bytes(len(chunk))
    return hasher.hexdigest()
