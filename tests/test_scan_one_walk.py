"""A scan walks its tree once: the runner counts its items as they run instead of in a
first pass (workflows whose plan is cheap next to their items keep counting first).
The real runner, the real scan workflow and a real tree; the reporter records what a
node would send."""

from __future__ import annotations

import hashlib

from tiermover.node.progress import Progress
from tiermover.node.runner import PLAN_KEPT_ENTRIES, run_workflow
from tiermover.storage.local import LocalBackend
from tiermover.workflows.base import ExecutionPlan, StorageLocation
from tiermover.workflows.scan import CHUNK, ScanWorkflow


class CountingBackend(LocalBackend):
    """A local backend that counts its walks."""

    walks = 0

    def walk(self, path, metadata=True):
        self.walks += 1
        yield from super().walk(path, metadata)


class RecordingReporter:
    def __init__(self):
        self.items = []
        self.phases = []

    def phase(self, status, progress):
        self.phases.append(status)

    def item_finished(self, item, result, progress):
        self.items.append((item.key, result))

    def log(self, level, message, progress):
        pass

    def tick(self, progress):
        pass

    def send(self, progress):
        pass

    def pending_command(self):
        return None


def tree(root, files: int) -> None:
    for index in range(files):
        folder = root / f"d{index // 100:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{index % 100:02d}").write_bytes(b"x" * (index % 7))


def scan(backend, finished=frozenset(), **options):
    plan = ExecutionPlan(action="scan", sources=[StorageLocation(
        namespace_path="/share", storage_name="share", backend=backend, path="")],
        destinations=[], options=options)
    reporter, progress = RecordingReporter(), Progress()
    outcome = run_workflow(ScanWorkflow(plan), set(finished), reporter, progress)
    return outcome, reporter, progress


def test_a_scan_larger_than_a_kept_plan_walks_its_tree_once(tmp_path):
    files = PLAN_KEPT_ENTRIES + 2_000
    tree(tmp_path, files)
    backend = CountingBackend(tmp_path)
    outcome, reporter, progress = scan(backend)
    assert outcome.status == "done"
    assert backend.walks == 1
    assert reporter.phases == ["calculating", "in_progress"]
    seen = [row for key, result in reporter.items for row in result.seen]
    entries = files + files // 100 + 1  # files, folders, the share's root
    assert len(seen) == entries and len({row[0] for row in seen}) == entries
    assert sum(row[2] for row in seen) == sum(index % 7 for index in range(files))
    items = -(-entries // CHUNK)
    assert progress.to_process_files == progress.processed_files == items
    assert reporter.items[-1][1].changes[0].op == "swept"

    # Resumed: the chunks an earlier attempt finished are counted, not run again.
    done = {key for key, _ in reporter.items[:3]}
    outcome, again, progress = scan(CountingBackend(tmp_path), done)
    assert outcome.status == "done"
    assert [key for key, _ in again.items if key in done] == []
    assert len(again.items) == len(reporter.items) - 3
    assert progress.to_process_files == progress.processed_files == items


def test_a_hashing_scan_reports_each_file_with_its_checksum(tmp_path):
    tree(tmp_path, 30)
    outcome, reporter, _ = scan(LocalBackend(tmp_path), file_checksum="sha256")
    assert outcome.status == "done"
    result = reporter.items[0][1]
    assert result.seen_columns[-2:] == ("checksum", "algorithm")
    rows = {row[0]: row for row in result.seen}
    assert rows["/share/d0000"][-2:] == (None, None)
    content = b"x" * 3
    assert rows["/share/d0000/f03"][-2:] == (hashlib.sha256(content).hexdigest(), "sha256")
