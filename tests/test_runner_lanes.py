"""Items that keep the CPU busy (small files between local disks) run on a stream of their
own, one at a time and in plan order, while the others overlap on the usual streams;
parallel_processing, when a task sets it, is the number of streams for every item.

The real runner with a workflow whose steps record who ran them and what ran at once
(each step sleeps a little, letting go of the interpreter, so that steps that could run
together do)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tiermover.node.progress import Progress
from tiermover.node.runner import GROUP_FILES, files_per_group, run_workflow
from tiermover.storage import local
from tiermover.storage.local import LocalBackend
from tiermover.workflows.base import (
    ExecutionPlan, ItemResult, StorageLocation, WorkItem, Workflow,
)
from tiermover.workflows.copy import CPU_BOUND_FILE_MAX, CopyWorkflow

from test_scan_one_walk import RecordingReporter

SMALL, LARGE = 4096, 64 * 1024 * 1024


class RecordingWorkflow(Workflow):
    """Small items keep the CPU busy, large ones wait; every step records itself."""

    def __init__(self, items: list[WorkItem], options: dict | None = None):
        super().__init__(ExecutionPlan(action="copy", sources=[], destinations=[],
                                       options=options or {}))
        self.items = items
        self.lock = threading.Lock()
        self.active = {True: 0, False: 0}
        self.most_at_once = {True: 0, False: 0}
        self.ran: list[tuple[str, str]] = []  # (key, thread name), in the order they started

    def plan(self):
        yield from self.items

    def may_keep_cpu_busy(self) -> bool:
        return True

    def keeps_cpu_busy(self, item: WorkItem) -> bool:
        return item.size == SMALL

    def run(self, item, context):
        busy = self.keeps_cpu_busy(item)
        with self.lock:
            self.ran.append((item.key, threading.current_thread().name))
            self.active[busy] += 1
            self.most_at_once[busy] = max(self.most_at_once[busy], self.active[busy])
        # Long enough for any other stream able to take a step of the same kind to do so.
        deadline = time.monotonic() + (0.05 if busy else 0.2)
        while time.monotonic() < deadline:
            with self.lock:
                if self.active[busy] >= 2:
                    break
            time.sleep(0.002)
        with self.lock:
            self.active[busy] -= 1
        return ItemResult("done", size=item.size)


def mixed_plan() -> list[WorkItem]:
    """Every fourth item large, the rest small."""
    return [WorkItem(key=f"0:item-{index:03d}", size=LARGE if index % 4 == 3 else SMALL)
            for index in range(48)]


def run(workflow: Workflow):
    reporter = RecordingReporter()
    outcome = run_workflow(workflow, set(), reporter, Progress())
    return outcome, reporter


def test_by_default_small_local_files_run_one_at_a_time_on_their_own_stream():
    items = mixed_plan()
    workflow = RecordingWorkflow(items)
    outcome, reporter = run(workflow)
    assert outcome.status == "done"
    assert sorted(key for key, _ in reporter.items) == sorted(item.key for item in items)
    small = [item.key for item in items if item.size == SMALL]
    ran_small = [(key, thread) for key, thread in workflow.ran if key in set(small)]
    assert [key for key, _ in ran_small] == small  # in plan order
    assert len({thread for _, thread in ran_small}) == 1
    assert workflow.most_at_once[True] == 1
    # The large ones still overlap on the other streams.
    assert workflow.most_at_once[False] >= 2
    large_threads = {thread for key, thread in workflow.ran if key not in set(small)}
    assert not large_threads & {thread for _, thread in ran_small}


def test_parallel_processing_set_by_the_task_runs_every_item_on_that_many_streams():
    workflow = RecordingWorkflow(mixed_plan(), {"parallel_processing": "4"})
    outcome, _ = run(workflow)
    assert outcome.status == "done"
    assert workflow.most_at_once[True] >= 2
    assert len({thread for _, thread in workflow.ran}) <= 4


def test_a_plan_of_only_small_files_or_only_large_ones_runs_whole():
    for size in (SMALL, LARGE):
        items = [WorkItem(key=f"0:only-{index}", size=size) for index in range(2500)]
        workflow = RecordingWorkflow(items)
        workflow.run = lambda item, context: ItemResult("done", size=item.size)
        outcome, reporter = run(workflow)
        assert outcome.status == "done"
        reported = [key for key, _ in reporter.items]
        assert sorted(reported) == sorted(item.key for item in items)
        if size == SMALL:  # one stream: in plan order
            assert reported == [item.key for item in items]


def copy_workflow(tmp_path) -> CopyWorkflow:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    backend = LocalBackend(tmp_path)
    return CopyWorkflow(ExecutionPlan(
        action="copy",
        sources=[StorageLocation("/share/src", "share", backend, "src")],
        destinations=[StorageLocation("/share/dst", "share", backend, "dst")]))


@pytest.mark.parametrize(("file_system", "local_disk"), [
    ("ext4", True), ("xfs", True), ("tmpfs", True), ("nfs4", False), ("cifs", False),
    ("fuse.sshfs", False), (None, False)])
def test_a_copy_keeps_the_cpu_busy_only_for_small_files_between_local_disks(
        tmp_path, monkeypatch, file_system, local_disk):
    # The mount table as the kernel would tell it for the share's file system.
    monkeypatch.setattr(local, "file_system_names",
                        lambda devices: {device: file_system for device in devices
                                         if file_system is not None})
    workflow = copy_workflow(tmp_path)
    (tmp_path / "src" / "small").write_bytes(b"s" * 100)
    (tmp_path / "src" / "large").write_bytes(b"L" * (CPU_BOUND_FILE_MAX + 1))
    items = {item.key.rsplit("/", 1)[-1]: item for item in workflow.plan()}
    assert workflow.may_keep_cpu_busy() is local_disk
    assert workflow.keeps_cpu_busy(items["small"]) is local_disk
    assert workflow.keeps_cpu_busy(items["large"]) is False


def test_groups_shrink_under_a_low_limit_on_open_files(monkeypatch):
    monkeypatch.setattr("resource.getrlimit", lambda kind: (1024, 4096))
    assert files_per_group(5) == 1024 // 4 // 5
    assert files_per_group(500) == 8
    monkeypatch.setattr("resource.getrlimit", lambda kind: (1_000_000, 1_000_000))
    assert files_per_group(5) == GROUP_FILES


def test_a_node_raises_its_soft_limit_on_open_files():
    child = textwrap.dedent("""
        import resource
        from tiermover.node.worker import OPEN_FILES_WANTED, allow_more_open_files
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        allow_more_open_files()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        expected = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(
            hard, OPEN_FILES_WANTED)
        print(soft == max(256, expected), soft, hard)
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True", result.stdout
