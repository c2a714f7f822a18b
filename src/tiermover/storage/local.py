"""Local and NAS paths (containers and mounted shares) as a storage backend."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tiermover.storage.base import AtomicWrite, Backend, EscapesRoot, Entry, StorageError

TEMP_MARK = ".tm-part-"


def is_temporary_name(name: str) -> bool:
    return TEMP_MARK in name


def _temp_prefix(final: Path) -> str:
    return f".{final.name[:100]}{TEMP_MARK}"


def remove_leftovers(final: Path) -> None:
    """Delete temporary files an interrupted writer (a killed node) left for this name."""
    try:
        with os.scandir(final.parent) as scan:
            for entry in scan:
                if entry.name.startswith(_temp_prefix(final)):
                    os.unlink(entry.path)
    except FileNotFoundError:
        pass


class _LocalAtomicWrite(AtomicWrite):
    def __init__(self, final: Path, fsync: bool):
        self.final = final
        remove_leftovers(final)
        self.temp = final.with_name(_temp_prefix(final) + secrets.token_hex(6))
        self._fsync = fsync
        try:
            self._fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise StorageError(f"cannot create {final}: {error.strerror}") from error

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as error:
                self.abort()
                raise StorageError(f"cannot write {self.final}: {error.strerror}") from error
            view = view[written:]

    def commit(self, replace: bool) -> None:
        try:
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            if replace:
                os.replace(self.temp, self.final)
            else:
                # link() fails if the final name exists: no race can overwrite a file
                # that appeared after the conflict check.
                os.link(self.temp, self.final)
                os.unlink(self.temp)
        except OSError as error:
            self.abort()
            if error.errno == errno.EEXIST:
                raise FileExistsError(str(self.final)) from error
            raise StorageError(f"cannot finish {self.final}: {error.strerror}") from error

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass


class LocalBackend(Backend):
    def __init__(self, root: str | Path, fsync: bool = True):
        self.root = Path(root)
        self.real_root = self.root.resolve()
        self.fsync = fsync

    def local_path(self, path: str) -> Path:
        """The OS path for `path`, refusing `..` and any symlink on the way that leads out."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts or "\x00" in path:
            raise EscapesRoot(f"{path!r} leaves its storage root")
        target = self.root.joinpath(*parts)
        probe = target
        while not os.path.lexists(probe) and probe != self.root:
            probe = probe.parent
        real = probe.resolve()
        if real != self.real_root and self.real_root not in real.parents:
            raise EscapesRoot(f"{path!r} leads outside its storage root through a symlink")
        return target

    def _entry(self, path: str, info: os.stat_result) -> Entry:
        return Entry(
            path=path, type="folder" if stat.S_ISDIR(info.st_mode) else "file",
            size=0 if stat.S_ISDIR(info.st_mode) else info.st_size, mtime=info.st_mtime,
            atime=info.st_atime, ctime=info.st_ctime, mode=info.st_mode, uid=info.st_uid,
            gid=info.st_gid,
        )

    def stat(self, path: str) -> Entry | None:
        try:
            info = os.lstat(self.local_path(path))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}") from error
        return self._entry(path, info)

    def walk(self, path: str) -> Iterator[Entry]:
        """Depth first, names sorted; symlinks are not followed (they are skipped).

        Holds one open listing per level of depth, never the whole tree.
        """
        pending = [self._children(self.local_path(path), path)]
        while pending:
            entry = next(pending[-1], None)
            if entry is None:
                pending.pop()
                continue
            yield entry
            if entry.type == "folder":
                pending.append(self._children(self.local_path(entry.path), entry.path))

    def _children(self, directory: Path, relative: str) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except OSError as error:
            raise StorageError(f"cannot list {relative or '/'}: {error.strerror}") from error
        for child in children:
            if is_temporary_name(child.name) or child.is_symlink():
                continue
            child_path = f"{relative}/{child.name}" if relative else child.name
            yield self._entry(child_path, child.stat(follow_symlinks=False))

    def open_read(self, path: str) -> BinaryIO:
        try:
            fd = os.open(self.local_path(path), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}") from error
        return os.fdopen(fd, "rb", buffering=0)

    def begin_write(self, path: str) -> AtomicWrite:
        return _LocalAtomicWrite(self.local_path(path), self.fsync)

    def makedirs(self, path: str) -> None:
        try:
            self.local_path(path).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot create folder {path}: {error.strerror}") from error

    def remove(self, path: str) -> None:
        try:
            os.unlink(self.local_path(path))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise StorageError(f"cannot delete {path}: {error.strerror}") from error

    def remove_folder(self, path: str) -> bool:
        try:
            os.rmdir(self.local_path(path))
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise StorageError(f"cannot delete folder {path}: {error.strerror}") from error
        return True

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        os.utime(self.local_path(path), (atime, mtime), follow_symlinks=False)
