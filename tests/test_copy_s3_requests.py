"""Copies to and from a bucket, the copy workflow driven directly over real storage (local
files and `rclone serve s3` behind a recording proxy): the requests each object costs,
and a conflict that appears while a file is being copied."""

from __future__ import annotations

import os

import pytest

from s3_support import faults, fault_proxy, s3_server  # noqa: F401 - fixtures, used by name
from tiermover.storage.local import LocalBackend
from tiermover.storage.open import open_backend
from tiermover.workflows.base import ExecutionPlan, PendingResult, StorageLocation
from tiermover.workflows.copy import CopyWorkflow

MiB = 1024 * 1024
FILES = 6


class Context:
    def __init__(self, on_checkpoint=None):
        self.on_checkpoint = on_checkpoint
        self.lines: list[str] = []

    def checkpoint(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint()

    def add_bytes(self, count: int) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        self.lines.append(message)


def location(name: str, backend, path: str) -> StorageLocation:
    return StorageLocation(f"/{name}/{path}".rstrip("/"), name, backend, path)


def copy_all(source: StorageLocation, destination: StorageLocation, context=None,
             conflict_resolution: str = "rename") -> list:
    workflow = CopyWorkflow(ExecutionPlan("copy", [source], [destination],
                                          conflict_resolution=conflict_resolution))
    results = [workflow.run(item, context or Context()) for item in list(workflow.plan())]
    # Small local files wait to take their names together (as the runner settles them).
    pending = [result for result in results if isinstance(result, PendingResult)]
    settled = iter(workflow.settle(pending) if pending else ())
    return [next(settled) if isinstance(result, PendingResult) else result
            for result in results]


@pytest.fixture
def bucket(s3_server, faults):
    name = s3_server.make_bucket()
    return open_backend(s3_server.descriptor(name, url=faults.url))


def requests(faults) -> dict[str, int]:
    """The requests sent by method, listings ("GET" of the bucket itself) apart."""
    counts: dict[str, int] = {}
    for method, path in faults.requests:
        kind = "LIST" if method == "GET" and "list-type" in path else method
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def tree(root, files: int = FILES, size: int = 64 * 1024) -> None:
    for index in range(files):
        folder = root / f"d{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.bin").write_bytes(os.urandom(size))


def test_an_upload_asks_for_what_it_must_only(tmp_path, bucket, faults):
    tree(tmp_path / "data" / "set")
    local = LocalBackend(tmp_path / "data")
    faults.clear()
    results = copy_all(location("share", local, "set"), location("bucket", bucket, "out"))
    assert {r.outcome for r in results} == {"done"}
    # Per object: the PUT, the HEAD that keeps an object appeared meanwhile from being
    # replaced, and the HEAD for the catalog's attributes. Per folder (the set's, d0
    # and d1): one listing answers its files' conflict checks, and a HEAD and a listing
    # bring the folder's attributes.
    folders = 3
    assert requests(faults) == {"HEAD": 2 * FILES + folders, "LIST": 2 * folders,
                                "PUT": FILES}


def test_a_download_asks_for_each_object_once(tmp_path, bucket, faults):
    tree(tmp_path / "data" / "set")
    local = LocalBackend(tmp_path / "data")
    copy_all(location("share", local, "set"), location("bucket", bucket, ""))
    (tmp_path / "back").mkdir()
    faults.clear()
    results = copy_all(location("bucket", bucket, "set"),
                       location("share", LocalBackend(tmp_path / "back"), ""))
    assert {r.outcome for r in results} == {"done"}
    # One GET per object, and the walk's listing (after a HEAD and a listing that find
    # the top of the tree is a folder).
    assert requests(faults) == {"GET": FILES, "HEAD": 1, "LIST": 2}
    for path in (tmp_path / "data" / "set").rglob("*.bin"):
        assert (tmp_path / "back" / path.relative_to(tmp_path / "data")).read_bytes() == \
            path.read_bytes()


def test_a_conflict_appearing_after_the_listing_still_follows_the_policy(tmp_path, bucket):
    """The conflict checks of a folder's files come from one listing of the folder: an
    object written there afterwards is found when the copy takes its name, and the
    policy (rename here) applies as if it had been there all along."""
    (tmp_path / "data" / "set").mkdir(parents=True)
    original = os.urandom(3 * MiB)
    (tmp_path / "data" / "set" / "late.bin").write_bytes(original)
    (tmp_path / "data" / "set" / "early.bin").write_bytes(b"early")
    local = LocalBackend(tmp_path / "data")
    intruder = b"written by someone else meanwhile"

    def write_the_conflict() -> None:
        if bucket.stat("out/set/early.bin") is not None and bucket.stat("out/set/late.bin") is None:
            writer = bucket.begin_write("out/set/late.bin")
            writer.write(intruder)
            writer.commit(replace=True)

    results = copy_all(location("share", local, "set"), location("bucket", bucket, "out"),
                       Context(on_checkpoint=write_the_conflict))
    assert sorted(r.outcome for r in results) == ["done", "done", "renamed"]
    with bucket.open_read("out/set/late.bin") as reader:
        assert reader.read() == intruder
    with bucket.open_read("out/set/late (1).bin") as reader:
        assert b"".join(iter(lambda: reader.read(MiB), b"")) == original


def planned_jobs(workflow) -> list:
    jobs = []
    for item in workflow.plan():
        payload = item.payload
        jobs += getattr(payload, "jobs", None) or [payload]
    return [job for job in jobs if job.entry.type == "file"]


def test_plans_that_need_dates_before_reading_walk_with_them(tmp_path, bucket, faults):
    """A copy reads a file's dates when it reads the file, so its walk of a bucket skips
    the HEAD per object; a tape archive (tar headers first) and a duplication (skips by
    date) still walk with them."""
    from tiermover.workflows.duplication import DuplicationWorkflow
    from tiermover.workflows.tape_archive import tape_variant

    writer = bucket.begin_write("set/dated.bin")
    writer.write(b"dated")
    writer.commit(replace=True)
    bucket.set_times("set/dated.bin", atime=1_500_000_000.0, mtime=1_600_000_000.5)
    source = location("bucket", bucket, "set")
    destination = location("share", LocalBackend(tmp_path), "")
    for workflow_class, dated in ((CopyWorkflow, False), (tape_variant(CopyWorkflow), True),
                                  (DuplicationWorkflow, True)):
        plan = ExecutionPlan("copy", [source], [destination])
        faults.clear()
        [job] = planned_jobs(workflow_class(plan))
        # (rclone serve s3 lists an object's mtime as its Last-Modified time: the
        # atime, kept in metadata only, tells the two walks apart.)
        assert (job.entry.atime == 1_500_000_000.0) is dated, workflow_class
        assert (faults.count("HEAD", "dated.bin") == 1) is dated, workflow_class
