"""The storage interface every workflow is written against (local/NAS now; S3 and tape later).

Paths are relative to the backend's root, '/'-separated, '' for the root itself. A backend
never lets a path leave its root, whatever the path or the symlinks on the way say.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO


class StorageError(Exception):
    """A storage operation failed; the message names the path and the cause."""


class EscapesRoot(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    type: str  # "file" | "folder"
    size: int
    mtime: float
    atime: float
    ctime: float
    mode: int
    uid: int
    gid: int
    # What identifies this version of a file's content where the storage says (an
    # object's ETag); None where it does not (local files: their size and mtime do).
    version: str | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def same_version(self, other: Entry) -> bool:
        """Whether `other`, the same path seen again, still holds this content: the same
        version where both entries have one, else the same size and mtime."""
        if self.version and other.version:
            return self.version == other.version and self.size == other.size
        return self.size == other.size and self.mtime == other.mtime

    def attributes(self) -> dict:
        """The entry as nodes report it for the catalog (CatalogChange.entry)."""
        return {"type": self.type, "size": self.size, "mode": self.mode, "uid": self.uid,
                "gid": self.gid, "mtime": self.mtime, "atime": self.atime, "ctime": self.ctime}


class AtomicWrite(ABC):
    """Data written here appears under its final name only once `commit()` succeeds."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, replace: bool) -> None:
        """Move into place. With `replace=False`, fail if the final name appeared meanwhile."""

    @abstractmethod
    def abort(self) -> None: ...

    def landed_attributes(self) -> dict | None:
        """Once committed: the file's attributes under its final name (as
        Entry.attributes gives them), when the writer knows them without asking the
        storage; else None."""
        return None

    @property
    def commits_in_group(self) -> bool:
        """Whether this write gains from taking its name together with others
        (Backend.commit_group) rather than alone: a small file whose commit would wait
        for the disk by itself."""
        return False


class Backend(ABC):
    # Whether this node's kernel answers the storage's operations from local disks and
    # the page cache, with no network round trip per file: a small file copied between
    # two such storages keeps the node's CPU busy rather than waiting (see
    # Workflow.keeps_cpu_busy).
    served_locally = False

    @abstractmethod
    def stat(self, path: str) -> Entry | None: ...

    @abstractmethod
    def walk(self, path: str, metadata: bool = True) -> Iterator[Entry]:
        """Every entry below `path` (not `path` itself), folders before their contents,
        in a stable order.

        With `metadata=False` the caller needs each file's size and `version` only (its
        dates, mode and owner come from `entry_read` once it is read): object storage
        then skips the request per object that reads them, and its entries show the
        listing's dates instead."""

    @abstractmethod
    def open_read(self, path: str) -> BinaryIO: ...

    def entry_read(self, reader: BinaryIO, path: str) -> Entry | None:
        """What the data `reader` (from `open_read(path)`) gave was, asked once it was read
        to the end: its size, dates and version; None when the file is gone.

        A file can change or go while it is read: by default it is looked at again after
        the read, so that either shows. Object storage answers from the read itself (a
        GET returns one version of an object, whole), without another request.
        """
        return self.stat(path)

    @abstractmethod
    def begin_write(self, path: str) -> AtomicWrite: ...

    @abstractmethod
    def makedirs(self, path: str) -> bool:
        """Makes the folder (and those above it) unless it exists. True when this call
        created it: it held nothing then (object storage, whose folders are prefixes,
        says False)."""

    @abstractmethod
    def remove(self, path: str) -> None: ...

    @abstractmethod
    def set_times(self, path: str, atime: float, mtime: float) -> None: ...

    def listed_paths(self, path: str, limit: int) -> frozenset[str] | None:
        """Every path below `path` (files and folders, as `stat` takes them), when one
        listing tells them for less than a `stat` per path and there are at most `limit`;
        None otherwise. The default is None: a local stat is one system call."""
        return None

    def commit_group(self, writes: Sequence[tuple[AtomicWrite, bool]]) -> list[Exception | None]:
        """Commits each write (with its `replace`), as `commit` would, but together: what
        waits for the disk may wait once for the whole group. One write failing ends only
        that write: the answer holds, in order, None or why each failed (the failed one
        aborted, nothing of it under its final name). The default commits one by one."""
        failures: list[Exception | None] = []
        for writer, replace in writes:
            try:
                writer.commit(replace=replace)
                failures.append(None)
            except (StorageError, OSError) as error:
                failures.append(error)
        return failures

    def remove_folder(self, path: str) -> bool:
        """Remove an empty folder; False (and nothing done) when it is not empty.
        Object storage has no folders to remove: the default does nothing."""
        return True


def join(*parts: str) -> str:
    return "/".join([stripped for part in parts if part and (stripped := part.strip("/"))])


def join_under(folder: str, path: str) -> str:
    """join(folder, path) for a `folder` that needs no cleaning (no slash at either end,
    as join gives it): a concatenation when `path` needs none either (every path a walk
    gives), as this runs for every file a copy handles."""
    if path and path[0] != "/" and path[-1] != "/":
        return f"{folder}/{path}" if folder else path
    return join(folder, path)


def namespace_path(storage_name: str, path: str) -> str:
    """`/<storage>/<path>`, as "/" + join(storage_name, path) gives it."""
    if storage_name[:1] == "/" or storage_name[-1:] == "/":
        storage_name = storage_name.strip("/")
    return "/" + join_under(storage_name, path)
