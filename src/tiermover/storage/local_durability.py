"""How a local write reaches the disk: its name taken without replacing, its folder
flushed, and a group of small files flushed with one syncfs of their file system.

Python's os module has neither renameat2 nor syncfs nor fstatfs: they are called through
the C library (ctypes lets go of the GIL during each call, as os does).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
_syncfs = getattr(_libc, "syncfs", None)
_fstatfs = getattr(_libc, "fstatfs", None)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# What a file system answers when it cannot rename without replacing (NFS, older kernels).
_NO_NOREPLACE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)

# A file system that cannot open or flush a folder this way (some network and FUSE file
# systems): its names are as durable as it makes them, the files' data is on disk anyway.
FOLDER_FLUSH_UNSUPPORTED = (errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP, errno.EACCES)

# File systems whose syncfs writes back everything of theirs (data, inodes, journal or
# log) and flushes the device's cache before it returns (statfs f_type -> name). On the
# others syncfs may return having flushed nothing (FUSE without sync_fs) or less than
# fdatasync would (some network file systems): their files are flushed one by one.
WHOLE_FLUSH_FILE_SYSTEMS = {
    0xEF53: "ext2/ext3/ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
}
# A syncfs waits for whatever is dirty on the file system, not only for the group's
# files: it is used only while the whole machine holds at most this much data waiting
# for the disk (/proc/meminfo Dirty + Writeback), so that a group of small files never
# waits behind another program's gigabytes. (This node's own large files never hold
# much: they are handed to writeback as they are written.)
WHOLE_FLUSH_DIRTY_AT_MOST = 64 * 1024 * 1024


def rename_without_replacing(source: str, target: str) -> None:
    """Gives `source` the name `target` unless `target` exists (FileExistsError): one
    renameat2(RENAME_NOREPLACE) where the file system has it, else link() and unlink()."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                      _RENAME_NOREPLACE) == 0:
            return
        number = ctypes.get_errno()
        if number not in _NO_NOREPLACE:
            raise OSError(number, os.strerror(number), target)
    os.link(source, target)
    os.unlink(source)


def open_folder(folder: str) -> int | None:
    """A descriptor of `folder` to flush it (and its file system) with, or None where
    the file system cannot open a folder so (FOLDER_FLUSH_UNSUPPORTED)."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in FOLDER_FLUSH_UNSUPPORTED:
            return None
        raise


def flush_folder(folder: str, fd: int | None = None) -> None:
    """Makes the names in `folder` durable (`fd`: the folder, already open)."""
    opened = fd is None
    if opened:
        fd = open_folder(folder)
        if fd is None:
            return
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in FOLDER_FLUSH_UNSUPPORTED:
            raise
    finally:
        if opened:
            os.close(fd)


def dirty_bytes(meminfo_path: str = "/proc/meminfo") -> int | None:
    """Data of the whole machine written but not yet on disk, or None when unknown."""
    try:
        with open(meminfo_path, "rb") as meminfo:
            text = meminfo.read()
    except OSError:
        return None
    total = 0
    found = 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            total += int(line.split()[1]) * 1024
            found += 1
    return total if found == 2 else None


def file_system_type(fd: int) -> int | None:
    """statfs f_type of the file system `fd` is on, or None when it cannot be told."""
    if _fstatfs is None:
        return None
    # struct statfs begins with f_type, a C long on Linux; the buffer outsizes the rest.
    buffer = ctypes.create_string_buffer(256)
    if _fstatfs(fd, buffer) != 0:
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def flush_whole_file_systems(folder_fds: Iterable[int]) -> bool:
    """Flushes the file systems of these open folders with one syncfs each, when every
    one of them flushes whole (WHOLE_FLUSH_FILE_SYSTEMS) and little else waits for the
    disk (WHOLE_FLUSH_DIRTY_AT_MOST). True once every file written on them before the
    call is on disk; False when nothing was flushed this way (or a syncfs failed): the
    caller then flushes its files one by one, which also tells which of them failed."""
    if _syncfs is None:
        return False
    devices: dict[int, int] = {}
    for fd in folder_fds:
        if file_system_type(fd) not in WHOLE_FLUSH_FILE_SYSTEMS:
            return False
        devices.setdefault(os.fstat(fd).st_dev, fd)
    dirty = dirty_bytes()
    if not devices or dirty is None or dirty > WHOLE_FLUSH_DIRTY_AT_MOST:
        return False
    return all(_syncfs(fd) == 0 for fd in devices.values())
