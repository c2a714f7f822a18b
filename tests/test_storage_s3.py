"""The S3 backend against a real S3 server (`rclone serve s3`), directly and through a proxy
that injects 5xx answers, throttling and dropped connections."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from s3_support import faults, fault_proxy, s3_server  # noqa: F401 - fixtures, used by name
from tiermover.storage.base import EscapesRoot, StorageError
from tiermover.storage.open import open_backend, reachable
from tiermover.storage.s3 import S3Backend

MiB = 1024 * 1024


def backend_for(server, bucket: str, prefix: str = "", url: str | None = None,
                **tuning) -> S3Backend:
    descriptor = server.descriptor(bucket, prefix, url)
    # Quick backoff: the tests inject failures and must not wait long for the retries.
    return S3Backend(descriptor["endpoint"], descriptor["region"], descriptor["access_key"],
                     descriptor["secret_key"], bucket, prefix, initial_backoff=0.01,
                     max_backoff=0.2, **tuning)


def put(backend: S3Backend, path: str, data: bytes) -> None:
    writer = backend.begin_write(path)
    writer.write(data)
    writer.commit(replace=True)


def read(backend: S3Backend, path: str) -> bytes:
    with backend.open_read(path) as reader:
        chunks = []
        while chunk := reader.read(64 * 1024):
            chunks.append(chunk)
    return b"".join(chunks)


def files_on_disk(root) -> list[str]:
    """What the server really holds, its own temporary files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def bucket(s3_server):
    return s3_server.make_bucket()


@pytest.fixture
def s3(s3_server, bucket):
    """A backend on a fresh bucket holding a small tree."""
    backend = backend_for(s3_server, bucket)
    for path, data in [("a/one.txt", b"1"), ("a/b/two.txt", b"22"), ("z.txt", b"zzz"),
                       ("a.txt", b"dot sorts before slash")]:
        put(backend, path, data)
    return backend


@pytest.fixture
def proxied(s3_server, bucket, faults):
    return backend_for(s3_server, bucket, url=faults.url, part_size=5 * MiB)


# --- the backend contract --------------------------------------------------------------------

def test_walk_shows_prefixes_as_folders_before_their_contents(s3):
    entries = [(e.path, e.type, e.size) for e in s3.walk("")]
    # Key order: "a.txt" sorts before "a/..." ('.' < '/'), unlike a sort by name.
    assert entries == [("a.txt", "file", 22), ("a", "folder", 0), ("a/b", "folder", 0),
                       ("a/b/two.txt", "file", 2), ("a/one.txt", "file", 1), ("z.txt", "file", 3)]
    assert [e.path for e in s3.walk("")] == [e.path for e in s3.walk("")]  # stable
    assert [(e.path, e.type) for e in s3.walk("a")] == [
        ("a/b", "folder"), ("a/b/two.txt", "file"), ("a/one.txt", "file")]
    assert list(s3.walk("missing")) == []


def test_stat_of_objects_prefixes_and_missing_paths(s3):
    entry = s3.stat("a/b/two.txt")
    assert (entry.path, entry.type, entry.size, entry.name) == ("a/b/two.txt", "file", 2, "two.txt")
    assert entry.mode == 0o100644 and entry.mtime > 0
    assert s3.stat("a/b").type == "folder" and s3.stat("a/b/").type == "folder"
    assert s3.stat("").type == "folder"
    assert s3.stat("a/b/nothing") is None and s3.stat("a/bee") is None
    # walk reports what stat reports (dates from metadata included).
    walked = {e.path: e for e in s3.walk("")}
    assert walked["a/b/two.txt"] == entry


def test_a_walk_without_metadata_asks_nothing_per_object(proxied, faults):
    put(proxied, "w/dated.bin", b"dated")
    proxied.set_times("w/dated.bin", atime=1_500_000_000.0, mtime=1_600_000_000.5)
    put(proxied, "w/plain.bin", b"plain")
    put(proxied, "w/empty.bin", b"")
    full = {e.path: e for e in proxied.walk("w")}
    before = faults.count("HEAD")
    listed = {e.path: e for e in proxied.walk("w", metadata=False)}
    # Only the empty object (it could be a folder marker) is looked up.
    assert faults.count("HEAD") - before == 1
    assert listed.keys() == full.keys()
    for path, entry in listed.items():
        assert (entry.type, entry.size, entry.version) == (full[path].type, full[path].size,
                                                          full[path].version)
        assert entry.version and full[path].same_version(entry)
    assert full["w/dated.bin"].mtime == 1_600_000_000.5
    assert listed["w/empty.bin"] == full["w/empty.bin"]


def test_a_read_tells_what_it_read_without_asking_again(proxied, faults):
    put(proxied, "r/blob.bin", os.urandom(2 * MiB))
    proxied.set_times("r/blob.bin", atime=1_500_000_000.0, mtime=1_600_000_000.5)
    walked = {e.path: e for e in proxied.walk("r")}["r/blob.bin"]
    before = faults.count("HEAD")
    with proxied.open_read("r/blob.bin") as reader:
        while reader.read(MiB):
            pass
        read = proxied.entry_read(reader, "r/blob.bin")
    assert faults.count("HEAD") == before
    assert read == walked and (read.mtime, read.atime) == (1_600_000_000.5, 1_500_000_000.0)
    # A new version of the object is a different version, whatever its size.
    put(proxied, "r/blob.bin", os.urandom(2 * MiB))
    assert not walked.same_version(proxied.stat("r/blob.bin"))


def test_a_prefix_backend_sees_only_its_prefix(s3_server, s3, bucket):
    inner = backend_for(s3_server, bucket, prefix="a")
    assert [e.path for e in inner.walk("")] == ["b", "b/two.txt", "one.txt"]
    assert read(inner, "b/two.txt") == b"22"
    assert inner.stat("z.txt") is None
    put(inner, "c/new.txt", b"new")
    assert read(s3, "a/c/new.txt") == b"new"


@pytest.mark.parametrize("path", ["../outside", "a/../../outside", "..", "a/\x00b"])
def test_nothing_leaves_the_bucket_or_prefix(s3_server, s3, bucket, path):
    inner = backend_for(s3_server, bucket, prefix="a/b")
    for backend in (s3, inner):
        for operation in (backend.stat, backend.open_read, backend.begin_write, backend.remove,
                          backend.makedirs, lambda p, b=backend: list(b.walk(p))):
            with pytest.raises(EscapesRoot):
                operation(path)
    with pytest.raises(EscapesRoot):
        backend_for(s3_server, bucket, prefix="a/../..")


def test_reading_streams_the_object_and_missing_objects_are_named(s3, bucket):
    data = os.urandom(3 * MiB + 17)
    put(s3, "big/blob.bin", data)
    with s3.open_read("big/blob.bin") as reader:
        first = reader.read(1000)
        assert len(first) == 1000
        rest = reader.read()
    assert first + rest == data
    with pytest.raises(StorageError, match=f"s3://{bucket}/nope.bin: no such object"):
        s3.open_read("nope.bin")


def test_a_write_appears_only_on_commit_and_abort_leaves_nothing(s3_server, s3, bucket):
    root = s3_server.root / bucket
    writer = s3.begin_write("a/new.bin")
    writer.write(b"partial")
    assert s3.stat("a/new.bin") is None
    writer.commit(replace=False)
    assert read(s3, "a/new.bin") == b"partial"

    before = files_on_disk(root)
    writer = s3.begin_write("a/dropped.bin")
    writer.write(b"never seen")
    writer.abort()
    writer.abort()  # aborting twice is harmless
    assert s3.stat("a/dropped.bin") is None and files_on_disk(root) == before


def test_commit_without_replace_keeps_an_object_that_appeared_meanwhile(s3):
    writer = s3.begin_write("z.txt")
    writer.write(b"new")
    with pytest.raises(FileExistsError):
        writer.commit(replace=False)
    assert read(s3, "z.txt") == b"zzz"
    writer = s3.begin_write("z.txt")
    writer.write(b"replaced")
    writer.commit(replace=True)
    assert read(s3, "z.txt") == b"replaced"


def test_remove_and_folders(s3):
    s3.makedirs("brand/new/folder")  # no folders to create on object storage
    assert s3.stat("brand") is None
    s3.remove("a/one.txt")
    s3.remove("a/one.txt")  # already gone: nothing to do
    assert s3.stat("a/one.txt") is None and s3.stat("a/b/two.txt") is not None
    assert not s3.remove_folder("a")  # a/b/two.txt is still in it
    s3.remove("a/b/two.txt")
    assert s3.remove_folder("a") and s3.stat("a") is None


def test_set_times_keeps_dates_in_rclone_compatible_metadata(s3_server, s3, bucket):
    s3.set_times("a/one.txt", atime=1_500_000_000.25, mtime=1_600_000_000.5)
    entry = s3.stat("a/one.txt")
    assert (entry.mtime, entry.atime) == (1_600_000_000.5, 1_500_000_000.25)
    assert read(s3, "a/one.txt") == b"1"
    assert {e.path: e.mtime for e in s3.walk("a")}["a/one.txt"] == 1_600_000_000.5
    # rclone reads the same `mtime` metadata: its server gives the file that date.
    assert (s3_server.root / bucket / "a" / "one.txt").stat().st_mtime == 1_600_000_000.5
    with pytest.raises(StorageError, match="no such object"):
        s3.set_times("a/none.txt", 1, 1)
    s3.set_times("a/b", 1, 1)  # a folder is a prefix: no dates of its own to set
    assert s3.stat("a/b").type == "folder"


def test_large_objects_go_up_in_parts(s3_server, bucket, proxied, faults):
    data = os.urandom(21 * MiB)
    writer = proxied.begin_write("large/blob.bin")
    for offset in range(0, len(data), MiB):
        writer.write(data[offset:offset + MiB])
    assert proxied.stat("large/blob.bin") is None  # parts uploaded, nothing visible yet
    writer.commit(replace=False)
    assert faults.count("PUT", "partNumber=") == 5  # 4 parts of 5 MiB and the rest
    assert hashlib.sha256(read(proxied, "large/blob.bin")).digest() == hashlib.sha256(data).digest()
    assert proxied.stat("large/blob.bin").size == len(data)


def test_a_writer_may_reuse_its_buffer_between_writes(proxied):
    """Copies read into one buffer reused for every chunk: each write must have taken
    its bytes before it returns, also once the upload went multipart."""
    buffer = bytearray(MiB)
    expected = b""
    writer = proxied.begin_write("large/reused.bin")
    for index in range(12):
        buffer[:] = bytes([index]) * MiB
        writer.write(memoryview(buffer))
        expected += bytes(buffer)
    writer.commit(replace=False)
    assert read(proxied, "large/reused.bin") == expected


def test_an_aborted_multipart_upload_leaves_nothing(s3_server, bucket, proxied, faults):
    root = s3_server.root / bucket
    writer = proxied.begin_write("large/aborted.bin")
    for _ in range(12):
        writer.write(os.urandom(MiB))
    writer.abort()
    assert faults.count("DELETE", "uploadId=") == 1
    assert proxied.stat("large/aborted.bin") is None and files_on_disk(root) == []


def test_several_threads_share_one_backend(proxied):
    payloads = {f"threads/file-{i}.bin": os.urandom(200_000 + i) for i in range(8)}
    errors: list[BaseException] = []

    def copy_one(path: str, data: bytes) -> None:
        try:
            put(proxied, path, data)
            assert read(proxied, path) == data
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=copy_one, args=item) for item in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(e.path for e in proxied.walk("threads")) == sorted(payloads)


# --- faults --------------------------------------------------------------------------------

def test_writes_recover_from_5xx_throttling_and_dropped_connections(proxied, faults):
    faults.inject("status", 2, method="PUT", path_contains="small.txt")
    faults.inject("status", 1, method="PUT", path_contains="small.txt", status=503)
    faults.inject("drop", 1, method="PUT", path_contains="small.txt")
    put(proxied, "small.txt", b"made it")
    assert faults.count("PUT", "small.txt") == 5
    assert read(proxied, "small.txt") == b"made it"

    faults.inject("status", 2, method="PUT", query_contains="partNumber=2", status=429)
    faults.inject("drop", 1, method="PUT", query_contains="partNumber=3")
    faults.inject("status", 1, method="POST", query_contains="uploadId=", status=503)
    data = os.urandom(16 * MiB)
    put(proxied, "large.bin", data)
    assert read(proxied, "large.bin") == data


def test_reads_recover_from_5xx_and_connections_cut_mid_body(proxied, faults):
    data = os.urandom(4 * MiB)
    put(proxied, "blob.bin", data)
    faults.inject("status", 2, method="HEAD", path_contains="blob.bin", status=503)
    assert proxied.stat("blob.bin").size == len(data)
    faults.inject("status", 2, method="GET", path_contains="blob.bin")
    faults.inject("drop", 1, method="GET", path_contains="blob.bin")
    faults.inject("cut", 1, method="GET", path_contains="blob.bin")
    before = faults.count("GET", "blob.bin")
    assert read(proxied, "blob.bin") == data
    assert faults.count("GET", "blob.bin") - before == 5  # 4 failed tries, then the rest


def test_set_times_retries_too(proxied, faults):
    put(proxied, "dated.txt", b"d")
    faults.inject("status", 2, method="PUT", path_contains="dated.txt")
    proxied.set_times("dated.txt", 1_000_000_000, 1_100_000_000)
    assert proxied.stat("dated.txt").mtime == 1_100_000_000


@pytest.mark.parametrize("size", [1000, 12 * MiB], ids=["single-put", "multipart"])
def test_persistent_failure_names_the_key_and_leaves_nothing(s3_server, bucket, proxied,
                                                             faults, size):
    faults.inject("status", 100, method="PUT", path_contains="doomed.bin", status=500)
    writer = proxied.begin_write("doomed.bin")
    with pytest.raises(StorageError) as failure:
        for offset in range(0, size, MiB):
            writer.write(os.urandom(min(MiB, size - offset)))
        writer.commit(replace=True)
    writer.abort()
    message = str(failure.value)
    assert f"s3://{bucket}/doomed.bin" in message and "HTTP 500 after 5 attempts" in message
    faults.clear()
    assert proxied.stat("doomed.bin") is None
    assert files_on_disk(s3_server.root / bucket) == []


def test_persistent_read_failure_is_a_storage_error(proxied, faults, bucket):
    put(proxied, "unreadable.bin", b"x" * 1000)
    faults.inject("status", 100, method="GET", path_contains="unreadable.bin", status=503)
    with pytest.raises(StorageError, match=f"s3://{bucket}/unreadable.bin: HTTP 503 after 5 "
                                           "attempts"):
        read(proxied, "unreadable.bin")


# --- reachability ------------------------------------------------------------------------------

def test_descriptors_open_s3_backends(s3_server, s3, bucket):
    backend = open_backend({**s3_server.descriptor(bucket, "a"), "part_size": 6 * MiB})
    assert isinstance(backend, S3Backend) and backend.part_size == 6 * MiB
    assert read(backend, "one.txt") == b"1"


def test_bucket_problems_say_what_is_wrong(s3_server, bucket):
    from conftest import free_port

    def problem(descriptor: dict) -> str | None:
        backend = open_backend(descriptor)
        try:
            return backend.bucket_problem()
        finally:
            backend.close()

    assert problem(s3_server.descriptor(bucket)) is None
    assert problem(s3_server.descriptor("no-such-bucket")).endswith("no such bucket")
    assert "access denied" in problem({**s3_server.descriptor(bucket), "secret_key": "wrong"})
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    assert "no answer" in problem(s3_server.descriptor(bucket, url=nobody_listens))


def test_reachable_answers_from_a_background_check(s3_server, bucket):
    descriptor = s3_server.descriptor(bucket)
    # The first call waits briefly for the check; on a busy machine the answer may come
    # with a later call (the node asks every second).
    deadline = time.monotonic() + 10
    while not reachable(descriptor) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reachable(descriptor)
    assert not reachable({"kind": "s3"})  # nothing to reach
