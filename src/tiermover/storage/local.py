"""Local and NAS paths (containers and mounted shares) as a storage backend."""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import operator
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from tiermover.storage.base import AtomicWrite, Backend, EscapesRoot, Entry, StorageError
from tiermover.storage.local_durability import (
    file_system_names, flush_folder, flush_whole_file_systems, open_folder,
    rename_without_replacing,
)

TEMP_MARK = ".tm-part-"
# With fsync on, a file's data is handed to writeback in steps of this size as it is
# written (see _LocalAtomicWrite._write_back_early).
WRITEBACK_STEP = 8 * 1024 * 1024
# Files up to this size commit in groups (LocalBackend.commit_group) when a caller groups
# them: for a small file the wait for the disk, not the data, is the cost of a commit.
GROUP_FILE_MAX = 1024 * 1024
# File systems on this machine's own disks (or memory), by the name /proc/self/mountinfo
# gives them. A share on any other (NFS, SMB, FUSE...) waits on the network per file.
LOCAL_DISK_FILE_SYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "bcachefs", "jfs", "reiserfs",
    "tmpfs", "overlay", "vfat", "exfat", "ntfs3",
})
FOLDER_CHECK_SECONDS = 1.0
FOLDERS_KEPT = 1024


def is_temporary_name(name: str) -> bool:
    return TEMP_MARK in name


_name = operator.attrgetter("name")


def _temp_name(final: str) -> str:
    """The temporary name a file is written under: hidden, marked, and the same for the
    same final name (a digest of the whole name tells apart long names cut alike), so
    that what an interrupted writer (a killed node) left is found without listing the
    folder."""
    folder, _, name = final.rpartition("/")
    encoded = name.encode(errors="surrogateescape")
    short = encoded[:100].decode(errors="ignore")
    digest = hashlib.blake2b(encoded, digest_size=6).hexdigest()
    return f"{folder}/.{short}{TEMP_MARK}{digest}"


def _real_path(path: str) -> str:
    """Where `path` really is, every symlink followed (the last one too).

    The kernel resolves the whole path in one open() (O_PATH: no access to the data is
    needed); /proc tells the result. os.path.realpath, which takes one lstat() per
    component in Python, is the fallback (no /proc, or a symlink that leads nowhere).
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)


# Temporary names held by the writers of this process. Two writers of the same final
# name at once (two sources landing on one name; the first one waiting in a group to
# take it) must not share a temporary file: the second takes a numbered one.
_temps_in_use: set[str] = set()
_temps_lock = threading.Lock()


def _claim_temp(final: str) -> str:
    base = _temp_name(final)
    with _temps_lock:
        temp, number = base, 1
        while temp in _temps_in_use:
            temp, number = f"{base}.{number}", number + 1
        _temps_in_use.add(temp)
    return temp


def _entry(path: str, info: os.stat_result) -> Entry:
    folder = stat.S_ISDIR(info.st_mode)
    return Entry(path, "folder" if folder else "file", 0 if folder else info.st_size,
                 info.st_mtime, info.st_atime, info.st_ctime, info.st_mode, info.st_uid,
                 info.st_gid)


# Numbers writers in the order they open their files (see _flush_whole).
_opening_order = itertools.count()


class _LocalAtomicWrite(AtomicWrite):
    def __init__(self, final: str, fsync: bool):
        self.final = final
        self.folder = final.rpartition("/")[0] or "/"  # (final is an OS path built by us)
        self.opened = next(_opening_order)
        self.temp = _claim_temp(final)
        self._fsync = fsync
        self._written = 0
        self._flushed = 0  # data before this offset was handed to the kernel's writeback
        self._fd = -1
        self.landed: os.stat_result | None = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                self._fd = os.open(self.temp, flags, 0o644)
            except FileExistsError:
                # Left by an interrupted writer of the same file (no writer of this
                # process holds that name): start afresh.
                os.unlink(self.temp)
                self._fd = os.open(self.temp, flags, 0o644)
        except OSError as error:
            self._release_temp()
            raise StorageError(f"cannot create {final}: {error.strerror}") from error

    def _release_temp(self) -> None:
        with _temps_lock:
            _temps_in_use.discard(self.temp)
        self.temp = ""

    def write(self, data: bytes) -> None:
        """Written before it returns: the caller may reuse `data`'s buffer."""
        try:
            written = os.write(self._fd, data)
            if written < len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view):]
            self._written += len(data)
            if self._fsync and self._written - self._flushed >= 2 * WRITEBACK_STEP:
                self._write_back_early()
        except OSError as error:
            self.abort()
            raise StorageError(f"cannot write {self.final}: {error.strerror}") from error

    def _write_back_early(self) -> None:
        """A large file goes to the disk as it is written, not all at the fsync: ask the
        kernel to write back (and then forget) the data before the last step. On Linux
        POSIX_FADV_DONTNEED starts writeback of dirty pages without waiting and drops
        the clean ones, so the final fdatasync has little left to wait for and a copy
        does not fill the page cache with data nobody reads soon."""
        end = self._written - WRITEBACK_STEP
        try:
            os.posix_fadvise(self._fd, self._flushed, end - self._flushed,
                             os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # a hint: a file system that ignores it loses nothing
        self._flushed = end

    @property
    def commits_in_group(self) -> bool:
        # Without fsync a commit waits for nothing; a large file waits for its data more
        # than for the journal, and was mostly written back on the way already.
        return self._fsync and self._written <= GROUP_FILE_MAX

    def commit(self, replace: bool) -> None:
        if self._fsync:
            # The data (and the size that reads need) on disk before the name: after a
            # crash the final name holds the whole file or nothing.
            self._make_durable()
        self._take_name(replace)

    def _start_writeback(self) -> None:
        try:
            os.posix_fadvise(self._fd, self._flushed, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass  # a hint (see _write_back_early)

    def _make_durable(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as error:
            self.abort()
            raise StorageError(f"cannot finish {self.final}: {error.strerror}") from error

    def _take_name(self, replace: bool) -> None:
        try:
            try:
                # The file as it lands, asked of the open file: no lookup of its path
                # again for the catalog. (Taking its name changes only its ctime.)
                self.landed = os.fstat(self._fd)
            except OSError:
                pass  # the caller asks the storage instead
            # Closed before it takes its name: a network file system sends the data on
            # close, and the name must never show a file whose data is not there yet.
            fd, self._fd = self._fd, -1
            os.close(fd)
            if replace:
                os.replace(self.temp, self.final)
            else:
                # Fails if the final name exists: no race can overwrite a file that
                # appeared after the conflict check.
                rename_without_replacing(self.temp, self.final)
            self._release_temp()
        except OSError as error:
            self.abort()
            if error.errno == errno.EEXIST:
                raise FileExistsError(str(self.final)) from error
            raise StorageError(f"cannot finish {self.final}: {error.strerror}") from error

    def landed_attributes(self) -> dict | None:
        info = self.landed
        return None if info is None else _entry("", info).attributes()

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self.temp:
            return  # committed, or aborted already: the name may be another writer's now
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass
        finally:
            self._release_temp()


def _open_folder_if_there(folder: str) -> int | None:
    try:
        return open_folder(folder)
    except OSError:
        return None  # gone, say: its files fail as they take their names


def _flush_whole(writes: list[tuple[int, _LocalAtomicWrite, bool]],
                 folders: dict[str, int | None]) -> bool:
    """Each file's data on disk with one syncfs per file system (see commit_group), or
    False. The syncfs is called on the group's first-opened file of that file system:
    one stream writes a group, in order, so that file was opened before any of the
    group's data was written, and syncfs on it tells of every failure since."""
    if not writes or None in folders.values():
        return False
    try:
        device_of = {folder: os.fstat(fd).st_dev for folder, fd in folders.items()}
    except OSError:
        return False
    first: dict[int, _LocalAtomicWrite] = {}
    for _, writer, _ in writes:
        device = device_of[writer.folder]
        if device not in first or writer.opened < first[device].opened:
            first[device] = writer
    return flush_whole_file_systems({device: writer._fd for device, writer in first.items()})


def _flush_each(writes: list[tuple[int, _LocalAtomicWrite, bool]],
                failures: list[Exception | None]) -> None:
    """Each file's data on disk, file by file (see LocalBackend.commit_group)."""
    for _, writer, _ in writes:
        writer._start_writeback()
    for index, writer, _ in writes:
        try:
            writer._make_durable()
        except StorageError as error:
            failures[index] = error


class LocalBackend(Backend):
    def __init__(self, root: str | Path, fsync: bool = True):
        self.root = Path(root)
        self.real_root = self.root.resolve()
        self.fsync = fsync
        self._root = str(self.root)
        self._root_slash = self._root.rstrip("/") + "/"
        self._real_root = str(self.real_root)
        self._real_prefix = self._real_root.rstrip(os.sep) + os.sep
        # Folders found inside the root moments ago (folder -> when): the files of one
        # folder are checked with one lstat() each instead of a resolution of the whole
        # path. A folder is looked at again after FOLDER_CHECK_SECONDS: a symlink put in
        # place of a folder is noticed within that time (and a write already under way
        # trusts its check for as long as it runs anyway).
        self._folders_inside: dict[str, float] = {}

    @cached_property
    def served_locally(self) -> bool:
        """Whether the root lies on a file system of this machine's own disks (looked up
        once: a storage's root does not move to another file system while a node runs)."""
        try:
            device = os.stat(self._real_root).st_dev
            return file_system_names([device]).get(device) in LOCAL_DISK_FILE_SYSTEMS
        except (OSError, ValueError):  # no mount table to tell: as a network share
            return False

    def local_path(self, path: str) -> Path:
        """The OS path for `path`, refusing `..` and any symlink on the way that leads out."""
        return Path(self._checked(path))

    def _checked(self, path: str) -> str:
        return self._resolve(path)[0]

    def _in_checked_folder(self, path: str) -> str:
        """The OS path for `path` once its folder is known to be inside the root, for a
        caller that never follows its last step: an open with O_NOFOLLOW, or a write (an
        exclusive create with O_NOFOLLOW, then link() or rename(), which replace a
        symlink at the final name rather than follow it). One lstat() fewer than
        _checked, which also looks at where a symlink at the last step leads."""
        target, parts = self._joined(path)
        if not parts:
            return self._checked(path)
        self._check_folder(target, path)
        return target

    def _joined(self, path: str) -> tuple[str, list[str]]:
        parts = [p for p in path.split("/") if p and p != "."]
        if ".." in parts or "\x00" in path:
            raise EscapesRoot(f"{path!r} leaves its storage root")
        # (What os.path.join gives, at a fraction of its cost: every file's path is built.)
        return (self._root_slash + "/".join(parts) if parts else self._root), parts

    def _check_folder(self, target: str, path: str) -> None:
        folder = target.rpartition("/")[0] or "/"  # os.path.dirname, for a built path
        checked = self._folders_inside.get(folder)
        if checked is None or time.monotonic() - checked > FOLDER_CHECK_SECONDS:
            if self._check(folder, path) == folder:
                if len(self._folders_inside) >= FOLDERS_KEPT:
                    self._folders_inside.clear()
                self._folders_inside[folder] = time.monotonic()

    def _resolve(self, path: str) -> tuple[str, os.stat_result | None, OSError | None]:
        """The OS path for `path` once it is known to stay inside the root, its lstat()
        (None: nothing there, or it could not be read) and why it could not be read."""
        target, parts = self._joined(path)
        if parts:
            self._check_folder(target, path)
        failure = None
        try:
            info = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            return target, None, None  # nothing there yet, in a folder inside the root
        except OSError as error:
            info, failure = None, error
        if info is None or stat.S_ISLNK(info.st_mode) or not parts:
            self._check(target, path)  # where the last step (or the root itself) leads
        return target, info, failure

    def _check(self, where: str, path: str) -> str:
        """Raises EscapesRoot unless `where` (or its closest existing ancestor, which it
        returns) really is inside the root, symlinks followed."""
        probe = where
        while probe != self._root and not os.path.lexists(probe):
            probe = os.path.dirname(probe)
        real = _real_path(probe)
        if real != self._real_root and not real.startswith(self._real_prefix):
            raise EscapesRoot(f"{path!r} leads outside its storage root through a symlink")
        return probe

    def stat(self, path: str) -> Entry | None:
        _, info, failure = self._resolve(path)
        if failure is not None:
            raise StorageError(f"cannot read {path}: {failure.strerror}") from failure
        return None if info is None else _entry(path, info)

    def walk(self, path: str, metadata: bool = True) -> Iterator[Entry]:
        """Depth first, names sorted; symlinks are not followed (they are skipped).

        Holds one open listing per level of depth, never the whole tree. (`metadata`
        changes nothing: the lstat of each entry reads it all.)
        """
        pending = [self._children(self._checked(path), path)]
        while pending:
            entry = next(pending[-1], None)
            if entry is None:
                pending.pop()
                continue
            yield entry
            if entry.type == "folder":
                pending.append(self._children(self._checked(entry.path), entry.path))

    def _children(self, directory: str, relative: str) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=_name)
        except OSError as error:
            raise StorageError(f"cannot list {relative or '/'}: {error.strerror}") from error
        prefix = f"{relative}/" if relative else ""
        for child in children:
            name = child.name
            if TEMP_MARK in name or child.is_symlink():
                continue
            yield _entry(prefix + name, child.stat(follow_symlinks=False))

    def open_read(self, path: str) -> BinaryIO:
        """An unbuffered file (io.FileIO): `readinto` fills the caller's buffer directly."""
        try:
            fd = os.open(self._in_checked_folder(path),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}") from error
        # (read_chunks tells the kernel a large file is read front to back.)
        return io.FileIO(fd, "r")

    def entry_read(self, reader: BinaryIO, path: str) -> Entry | None:
        """The file `reader` read, as it is now (its size and dates tell whether it
        changed meanwhile); None once it has no name left (deleted while it was read).
        Asked of the open file itself: no lookup of its path again."""
        try:
            info = os.fstat(reader.fileno())
        except (OSError, ValueError):
            return super().entry_read(reader, path)
        return None if info.st_nlink == 0 else _entry(path, info)

    def begin_write(self, path: str) -> AtomicWrite:
        return _LocalAtomicWrite(self._in_checked_folder(path), self.fsync)

    def commit_group(self, writes: Sequence[tuple[AtomicWrite, bool]]) -> list[Exception | None]:
        """Small files, many at once, each still durable before it takes its name.

        The group's data goes to the disk first, in one wait: with one syncfs of the file
        system its folders are on, where that flushes all of it and little else is
        waiting for the disk (local_durability.flush_whole_file_systems); else file by
        file, every file's writeback started first so that the file system allocates
        them all in one journal transaction, which the first fdatasync commits (the ones
        after it find little left to wait for). Then each file takes its name, and each
        folder that received one is fsync'd once, so that the names are on disk too
        before the files are reported.
        """
        failures: list[Exception | None] = [None] * len(writes)
        local = [(index, writer, replace) for index, (writer, replace) in enumerate(writes)
                 if isinstance(writer, _LocalAtomicWrite) and writer._fsync]
        for index, (writer, replace) in enumerate(writes):
            if not (isinstance(writer, _LocalAtomicWrite) and writer._fsync):
                failures[index] = super().commit_group([(writer, replace)])[0]
        folders: dict[str, int | None] = {}  # the group's folders, open (None: cannot be)
        try:
            for _, writer, _ in local:
                folder = writer.folder
                if folder not in folders:
                    folders[folder] = _open_folder_if_there(folder)
            if not _flush_whole(local, folders):
                _flush_each(local, failures)
            named: dict[str, list[int]] = {}
            for index, writer, replace in local:
                if failures[index] is None:
                    try:
                        writer._take_name(replace)
                        named.setdefault(writer.folder, []).append(index)
                    except (StorageError, OSError) as error:
                        failures[index] = error
            for folder, indexes in named.items():
                try:
                    flush_folder(folder, folders[folder])
                except OSError as error:
                    for index in indexes:
                        failures[index] = StorageError(
                            f"{writes[index][0].final} is written, but its name may not "
                            f"survive a crash: cannot flush its folder ({error.strerror})")
        finally:
            for fd in folders.values():
                if fd is not None:
                    os.close(fd)
        return failures

    def makedirs(self, path: str) -> bool:
        target = self._checked(path)
        try:
            try:
                os.mkdir(target)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.mkdir(target)
            return True
        except FileExistsError as error:
            if os.path.isdir(target):
                return False
            raise StorageError(f"cannot create folder {path}: a file is there") from error
        except OSError as error:
            raise StorageError(f"cannot create folder {path}: {error.strerror}") from error

    def remove(self, path: str) -> None:
        try:
            os.unlink(self._checked(path))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise StorageError(f"cannot delete {path}: {error.strerror}") from error

    def remove_folder(self, path: str) -> bool:
        try:
            os.rmdir(self._checked(path))
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise StorageError(f"cannot delete folder {path}: {error.strerror}") from error
        return True

    def set_times(self, path: str, atime: float, mtime: float) -> None:
        os.utime(self._checked(path), (atime, mtime), follow_symlinks=False)
