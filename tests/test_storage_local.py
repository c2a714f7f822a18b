"""The local/NAS backend: roots cannot be escaped, writes are atomic, listings are stable."""

from __future__ import annotations

import os

import pytest

from tiermover.storage.base import EscapesRoot, StorageError, join, namespace_path
from tiermover.storage.checksums import ALGORITHMS, checksum_of, new_hasher
from tiermover.storage import local, local_durability
from tiermover.storage.local import LocalBackend, is_temporary_name


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "share"
    (base / "a" / "b").mkdir(parents=True)
    (base / "a" / "one.txt").write_bytes(b"1")
    (base / "a" / "b" / "two.txt").write_bytes(b"22")
    (base / "z.txt").write_bytes(b"zzz")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", base / "a" / "exit")
    return base


def test_walk_lists_folders_before_contents_and_skips_symlinks(root):
    backend = LocalBackend(root)
    entries = [(e.path, e.type, e.size) for e in backend.walk("")]
    assert entries == [("a", "folder", 0), ("a/b", "folder", 0), ("a/b/two.txt", "file", 2),
                       ("a/one.txt", "file", 1), ("z.txt", "file", 3)]


@pytest.mark.parametrize("path", ["../outside/secret", "a/../../outside", "a/exit/secret",
                                  "a/exit", "a/exit/new/file"])
def test_nothing_leaves_the_root(root, path):
    backend = LocalBackend(root)
    with pytest.raises(EscapesRoot):
        backend.local_path(path)


@pytest.fixture(params=["renameat2", "link"])
def taking_names(request, monkeypatch):
    """Files take their names with renameat2(RENAME_NOREPLACE), or with link() and
    unlink() as on a file system or C library without it: the same guarantees."""
    if request.param == "link":
        monkeypatch.setattr(local_durability, "_renameat2", None)
    return request.param


def test_atomic_write_appears_only_on_commit(root, taking_names):
    backend = LocalBackend(root, fsync=False)
    writer = backend.begin_write("a/new.bin")
    writer.write(b"partial")
    assert not (root / "a" / "new.bin").exists()
    assert any(is_temporary_name(p.name) for p in (root / "a").iterdir())
    writer.commit(replace=False)
    assert (root / "a" / "new.bin").read_bytes() == b"partial"
    assert not any(is_temporary_name(p.name) for p in (root / "a").iterdir())


def test_aborted_write_leaves_nothing_and_no_replace_protects_existing(root, taking_names):
    backend = LocalBackend(root, fsync=False)
    writer = backend.begin_write("z.txt")
    writer.write(b"new")
    with pytest.raises(FileExistsError):
        writer.commit(replace=False)
    assert (root / "z.txt").read_bytes() == b"zzz"
    assert not any(is_temporary_name(p.name) for p in root.iterdir())


def test_a_committed_file_tells_its_attributes_as_the_storage_would(root):
    backend = LocalBackend(root, fsync=True)
    writer = backend.begin_write("a/landed.bin")
    writer.write(b"x" * 5000)
    assert writer.landed_attributes() is None  # not committed yet
    writer.commit(replace=False)
    landed, stored = writer.landed_attributes(), backend.stat("a/landed.bin").attributes()
    # Everything but the ctime, which taking the name moves.
    assert {k: v for k, v in landed.items() if k != "ctime"} == \
        {k: v for k, v in stored.items() if k != "ctime"}
    assert landed["size"] == 5000 and landed["type"] == "file"


def test_the_read_entry_is_the_open_file_and_none_once_it_was_deleted(root):
    backend = LocalBackend(root)
    with backend.open_read("z.txt") as reader:
        assert reader.read() == b"zzz"
        assert backend.entry_read(reader, "z.txt") == backend.stat("z.txt")
        (root / "z.txt").unlink()
        assert backend.entry_read(reader, "z.txt") is None


@pytest.mark.parametrize("expected", [None, 10, 6, 12])
def test_reading_in_chunks_gives_every_byte_whatever_size_was_expected(tmp_path, expected):
    # A wrong expectation (a file that grew or shrank since it was listed) never cuts
    # the data short: the caller sees the real size and decides.
    from tiermover.workflows.verify import read_chunks

    (tmp_path / "f").write_bytes(b"0123456789")
    with open(tmp_path / "f", "rb", buffering=0) as reader:
        assert b"".join(bytes(c) for c in read_chunks(reader, 4, expected)) == b"0123456789"


def test_checksums_match_reference_values():
    assert checksum_of(b"hello", "md5") == "5d41402abc4b2a76b9719d911017c592"
    assert checksum_of(b"hello", "sha256").startswith("2cf24dba5fb0a30e")
    assert checksum_of(b"hello", "crc32") == "3610a686"
    for algorithm in ALGORITHMS:
        streamed = new_hasher(algorithm)
        streamed.update(b"hel")
        streamed.update(b"lo")
        assert streamed.hexdigest() == checksum_of(b"hello", algorithm)


def test_a_group_commit_makes_each_file_durable_and_a_failure_ends_only_its_file(root):
    backend = LocalBackend(root, fsync=True)
    small = backend.begin_write("a/first.bin")
    small.write(b"first")
    assert small.commits_in_group  # small, fsync on
    clash = backend.begin_write("z.txt")  # exists: refused without replace
    clash.write(b"new z")
    replaced = backend.begin_write("a/one.txt")
    replaced.write(b"new one")
    (root / "gone").mkdir()
    orphan = backend.begin_write("gone/file.bin")
    orphan.write(b"its folder vanishes before the group takes its names")
    (root / "gone" / orphan.temp.rsplit("/", 1)[1]).unlink()
    (root / "gone").rmdir()
    failures = backend.commit_group([(small, False), (clash, False), (replaced, True),
                                     (orphan, False)])
    assert failures[0] is None and failures[2] is None
    assert isinstance(failures[1], FileExistsError)
    assert "gone/file.bin" in str(failures[3])
    assert (root / "a" / "first.bin").read_bytes() == b"first"
    assert (root / "a" / "one.txt").read_bytes() == b"new one"
    assert (root / "z.txt").read_bytes() == b"zzz"
    assert not (root / "gone").exists()
    assert not [p for p in root.rglob("*") if is_temporary_name(p.name)]


class FlushCalls:
    """Counts the real flush calls a group commit makes (each still does its work)."""

    def __init__(self, monkeypatch):
        self.syncfs = self.fdatasync = 0
        real_syncfs, real_fdatasync = local_durability._syncfs, os.fdatasync

        def syncfs(fd):
            self.syncfs += 1
            return real_syncfs(fd)

        def fdatasync(fd):
            self.fdatasync += 1
            return real_fdatasync(fd)

        monkeypatch.setattr(local_durability, "_syncfs", syncfs)
        monkeypatch.setattr(os, "fdatasync", fdatasync)


def group_of_three(backend, root):
    writers = []
    for path, data in (("a/one.bin", b"1"), ("a/b/two.bin", b"22"), ("three.bin", b"333")):
        writer = backend.begin_write(path)
        writer.write(data)
        writers.append((writer, False))
    return writers


def whole_flush_file_system(path) -> bool:
    device = os.stat(path).st_dev
    return (local_durability.file_system_names([device]).get(device)
            in local_durability.WHOLE_FLUSH_FILE_SYSTEMS and local_durability.SYNCFS_TELLS_FAILURES)


def test_a_group_on_a_file_system_that_flushes_whole_waits_for_the_disk_once(root, monkeypatch):
    if not whole_flush_file_system(root):
        pytest.skip("the test folder is not on ext3/4, xfs, btrfs or f2fs, or Linux < 5.8")
    monkeypatch.setattr(local_durability, "WHOLE_FLUSH_DIRTY_AT_MOST", 1 << 62)
    calls = FlushCalls(monkeypatch)
    flushed_on = []
    real_flush = local_durability.flush_whole_file_systems

    def flush_whole_file_systems(descriptors):
        flushed_on.extend(descriptors.values())
        return real_flush(descriptors)

    monkeypatch.setattr(local, "flush_whole_file_systems", flush_whole_file_systems)
    backend = LocalBackend(root, fsync=True)
    writers = group_of_three(backend, root)
    first_fd = writers[0][0]._fd
    assert backend.commit_group(writers) == [None, None, None]
    # Three folders on one file system: one syncfs, on the file opened first (a later
    # descriptor could miss a failure to write back that happened before it was opened).
    assert (calls.syncfs, calls.fdatasync) == (1, 0)
    assert flushed_on == [first_fd]
    assert [(root / p).read_bytes() for p in ("a/one.bin", "a/b/two.bin", "three.bin")] == [
        b"1", b"22", b"333"]


WHY_FILE_BY_FILE = ["much else is dirty", "syncfs fails", "file system not listed",
                    "Linux before 5.8"]


@pytest.mark.parametrize("why", WHY_FILE_BY_FILE)
def test_otherwise_each_file_of_a_group_is_flushed_on_its_own(root, monkeypatch, why):
    if not whole_flush_file_system(root):
        pytest.skip("the test folder is not on ext3/4, xfs, btrfs or f2fs, or Linux < 5.8")
    monkeypatch.setattr(local_durability, "WHOLE_FLUSH_DIRTY_AT_MOST",
                        -1 if why == "much else is dirty" else 1 << 62)
    calls = FlushCalls(monkeypatch)
    if why == "syncfs fails":
        monkeypatch.setattr(local_durability, "_syncfs", lambda fd: -1)
    elif why == "file system not listed":
        monkeypatch.setattr(local_durability, "WHOLE_FLUSH_FILE_SYSTEMS", frozenset({"ext2"}))
    elif why == "Linux before 5.8":
        monkeypatch.setattr(local_durability, "SYNCFS_TELLS_FAILURES", False)
    backend = LocalBackend(root, fsync=True)
    assert backend.commit_group(group_of_three(backend, root)) == [None, None, None]
    assert calls.fdatasync == 3
    assert (root / "a" / "b" / "two.bin").read_bytes() == b"22"
    assert not [p for p in root.rglob("*") if is_temporary_name(p.name)]


def test_a_file_system_is_named_by_the_mount_table(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 29 8:17 /data /srv rw master:2 - ext2 /dev/sdb1 rw\n")
    names = local_durability.file_system_names(
        [os.makedev(254, 0), os.makedev(8, 17), os.makedev(9, 9)], str(mountinfo))
    assert names == {os.makedev(254, 0): "ext4", os.makedev(8, 17): "ext2"}


def test_the_machine_s_dirty_data_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nDirty:  3076 kB\nWriteback:  12 kB\n"
                       "WritebackTmp: 5 kB\n")
    assert local_durability.dirty_bytes(str(meminfo)) == (3076 + 12) * 1024
    meminfo.write_text("MemTotal: 100 kB\nDirty:  3076 kB\n")
    assert local_durability.dirty_bytes(str(meminfo)) is None  # unknown: no whole flush
    assert local_durability.dirty_bytes(str(tmp_path / "none")) is None
    assert local_durability.dirty_bytes() is not None  # this machine's


def test_only_small_files_with_fsync_commit_in_groups(root):
    without_fsync = LocalBackend(root, fsync=False).begin_write("a/x.bin")
    without_fsync.write(b"x")
    large = LocalBackend(root, fsync=True).begin_write("a/y.bin")
    large.write(bytes(2 * 1024 * 1024))
    assert not without_fsync.commits_in_group and not large.commits_in_group
    # The backend groups them anyway, each by its own commit.
    assert LocalBackend(root).commit_group([(without_fsync, False), (large, False)]) == [None, None]
    assert (root / "a" / "x.bin").read_bytes() == b"x"
    assert (root / "a" / "y.bin").stat().st_size == 2 * 1024 * 1024


def test_two_writers_of_one_name_at_once_keep_their_own_temporary_files(root):
    backend = LocalBackend(root, fsync=True)
    first = backend.begin_write("a/same.bin")
    first.write(b"first")
    second = backend.begin_write("a/same.bin")  # the first still waits to take the name
    second.write(b"second")
    assert first.temp != second.temp
    assert backend.commit_group([(first, True), (second, True)]) == [None, None]
    assert (root / "a" / "same.bin").read_bytes() == b"second"
    third = backend.begin_write("a/same.bin")
    third.abort()
    first.abort()  # after its commit: must not touch a name another writer may hold now
    assert not [p for p in root.rglob("*") if is_temporary_name(p.name)]



def test_making_a_folder_says_whether_it_was_made(root):
    backend = LocalBackend(root)
    assert backend.makedirs("a/new/deeper") is True  # and the folders above it
    assert (root / "a" / "new" / "deeper").is_dir()
    assert backend.makedirs("a/new/deeper") is False
    assert backend.makedirs("a") is False
    with pytest.raises(StorageError, match="a file is there"):
        backend.makedirs("z.txt")


@pytest.mark.parametrize("storage", ["share", "/share", "share/", "", "a/b"])
@pytest.mark.parametrize("path", ["", "x", "x/y", "/x", "x/", "/", "//", "x//y", "a b/é"])
def test_namespace_paths_are_what_joining_gives(storage, path):
    # The concatenation that serves clean paths never differs from the join.
    assert namespace_path(storage, path) == "/" + join(storage, path)
