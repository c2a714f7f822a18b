"""How a local write reaches the disk: its name taken without replacing, its folder
flushed, and a group of small files flushed with one syncfs of their file system.

Python's os module has neither renameat2 nor syncfs: they are called through the C
library (ctypes lets go of the GIL during each call, as os does).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
_syncfs = getattr(_libc, "syncfs", None)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
# What a file system answers when it cannot rename without replacing (NFS, older kernels).
_NO_NOREPLACE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)

# A file system that cannot open or flush a folder this way (some network and FUSE file
# systems): its names are as durable as it makes them, the files' data is on disk anyway.
FOLDER_FLUSH_UNSUPPORTED = (errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP, errno.EACCES)

# File systems whose syncfs writes back everything of theirs (data, inodes, journal or
# log) and flushes the device's cache before it returns, by the name /proc/self/mountinfo
# gives them. On the others syncfs may return having flushed nothing (FUSE without
# sync_fs), less than fdatasync would (ext2: its syncfs writes the superblock without a
# cache flush, its fsync flushes) or anything (network file systems): their files are
# flushed one by one.
WHOLE_FLUSH_FILE_SYSTEMS = frozenset({"ext3", "ext4", "xfs", "btrfs", "f2fs"})
# A syncfs waits for whatever is dirty on the file system, not only for the group's
# files: it is used only while the whole machine holds at most this much data waiting
# for the disk (/proc/meminfo Dirty + Writeback), so that a group of small files never
# waits behind another program's gigabytes. (This node's own large files never hold
# much: they are handed to writeback as they are written.)
WHOLE_FLUSH_DIRTY_AT_MOST = 64 * 1024 * 1024


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        found = tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return found >= (major, minor)


# Before Linux 5.8 syncfs returns 0 whatever failed to reach the disk.
SYNCFS_TELLS_FAILURES = _kernel_at_least(5, 8)


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


def file_system_names(devices: Iterable[int],
                      mountinfo_path: str = "/proc/self/mountinfo") -> dict[int, str]:
    """The type of the file system mounted from each device (st_dev), as the kernel names
    it: read afresh each time, so that a device number given to another mount meanwhile
    is never taken for the one before. A device missing from the table is left out
    (btrfs subvolumes, for one, show their own device numbers)."""
    wanted = {f"{os.major(device)}:{os.minor(device)}": device for device in devices}
    names: dict[int, str] = {}
    with open(mountinfo_path, "rb") as mountinfo:
        for line in mountinfo:
            # "36 35 98:0 /root /mnt rw,noatime master:1 - ext4 /dev/sda1 rw"
            mount, _, rest = line.partition(b" - ")
            fields = mount.split(b" ", 3)
            device = wanted.get(fields[2].decode()) if len(fields) > 2 else None
            if device is not None and device not in names and rest:
                names[device] = rest.split(b" ", 1)[0].decode()
    return names


def flush_whole_file_systems(descriptors: dict[int, int]) -> bool:
    """Flushes whole file systems with one syncfs each: `descriptors` maps each device
    (st_dev) to a descriptor on it opened before any of the data to flush was written.
    (syncfs tells of the failures to write back since its descriptor was opened, also
    those another caller was told of already: a descriptor opened later could miss
    one.) Only where every file system flushes whole (WHOLE_FLUSH_FILE_SYSTEMS), the
    kernel tells syncfs's failures, and little else waits for the disk
    (WHOLE_FLUSH_DIRTY_AT_MOST). True once every file written on them before the call
    is on disk; False when nothing was flushed this way or a syncfs failed: the caller
    then flushes its files one by one, which also tells which of them failed."""
    if _syncfs is None or not SYNCFS_TELLS_FAILURES or not descriptors:
        return False
    try:
        dirty = dirty_bytes()
        if dirty is None or dirty > WHOLE_FLUSH_DIRTY_AT_MOST:
            return False  # (the mount table, the larger read, is then not needed)
        names = file_system_names(descriptors)
    except (OSError, ValueError):
        return False
    if any(names.get(device) not in WHOLE_FLUSH_FILE_SYSTEMS for device in descriptors):
        return False
    return all(_syncfs(fd) == 0 for fd in descriptors.values())
