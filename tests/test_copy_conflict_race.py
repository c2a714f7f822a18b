"""A copy racing another program for the same target name: the real runner, copy
workflow and local backend on real files; the other program's write is injected at the
last moment before the copy takes its name."""

from __future__ import annotations

import pytest

from tiermover.node.progress import Progress
from tiermover.node.runner import run_workflow
from tiermover.storage.local import LocalBackend, is_temporary_name
from tiermover.workflows.base import ExecutionPlan, StorageLocation
from tiermover.workflows.copy import CopyWorkflow


class Racing(LocalBackend):
    """Another program writes `theirs` at the target of every file named `b...` just
    before the copy's group takes its names (`times`: how many times it does)."""

    def __init__(self, root, times: int):
        super().__init__(root, fsync=True)
        self.times = times

    def commit_group(self, writes):
        for writer, _ in writes:
            if writer.final.rpartition("/")[2].startswith("b") and self.times:
                self.times -= 1
                with open(writer.final, "wb") as other:
                    other.write(b"theirs")
        return super().commit_group(writes)


class Reporter:
    def __init__(self):
        self.items = []

    def item_finished(self, item, result, progress):
        self.items.append((item.key, result))

    def phase(self, *args): pass
    def log(self, *args): pass
    def tick(self, *args): pass
    def send(self, *args): pass
    def pending_command(self): return None


def copy(tmp_path, backend_times: int):
    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "data").mkdir(parents=True)
    target.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (source / "data" / name).write_bytes(name.encode())
    plan = ExecutionPlan(
        action="copy",
        sources=[StorageLocation("/src/data", "src", LocalBackend(source), "data")],
        destinations=[StorageLocation("/dst", "dst", Racing(target, backend_times), "")],
        conflict_resolution="rename")
    reporter, progress = Reporter(), Progress()
    outcome = run_workflow(CopyWorkflow(plan), set(), reporter, progress)
    results = {key.rpartition("/")[2]: result for key, result in reporter.items}
    return outcome, results, progress, source / "data", target / "data"


def test_a_file_appearing_at_its_target_mid_copy_is_kept_and_the_copy_renamed(tmp_path):
    # The folder was made by the copy, so its files were not looked for one by one:
    # the file that appeared is found when the copy takes its name, and the copy runs
    # again under its conflict policy.
    outcome, results, progress, source, target = copy(tmp_path, backend_times=1)
    assert outcome.status == "done"
    assert results["b.txt"].outcome == "renamed"
    assert "/dst/data/b.txt exists: written as /dst/data/b (1).txt" in results["b.txt"].message
    assert (target / "b.txt").read_bytes() == b"theirs"
    assert (target / "b (1).txt").read_bytes() == b"b.txt"
    assert (target / "a.txt").read_bytes() == b"a.txt"
    assert (target / "c.txt").read_bytes() == b"c.txt"
    assert not any(is_temporary_name(p.name) for p in target.iterdir())
    # Counted once, whatever ran twice.
    assert progress.processed_files == progress.to_process_files == 4  # the folder too
    assert progress.processed_size == progress.to_process_size == 15


@pytest.mark.parametrize("times", [2, 5])
def test_a_target_taken_again_and_again_fails_that_file_alone_and_says_why(tmp_path, times):
    outcome, results, progress, source, target = copy(tmp_path, backend_times=times)
    assert outcome.status == "finished_with_warnings"
    failed = results["b.txt"]
    assert failed.outcome == "failed"
    assert "/dst/data/b (1).txt appeared while the file was copied" in failed.message
    assert "conflict_resolution rename" in failed.message
    assert (target / "b.txt").read_bytes() == b"theirs"
    assert (target / "b (1).txt").read_bytes() == b"theirs"
    assert (target / "a.txt").read_bytes() == b"a.txt"
    assert not any(is_temporary_name(p.name) for p in target.iterdir())
    assert (source / "b.txt").read_bytes() == b"b.txt"


class Counting(LocalBackend):
    """A destination that records the paths it is asked to `stat`."""

    def __init__(self, root):
        super().__init__(root, fsync=True)
        self.looked_at: list[str] = []

    def stat(self, path):
        self.looked_at.append(path)
        return super().stat(path)


def test_files_landing_in_folders_the_copy_made_are_not_looked_for_first(tmp_path):
    # Four streams, many folders: whichever stream makes a folder, the files landing
    # in it are known not to be there yet (no `stat` each).
    source, target = tmp_path / "src", tmp_path / "dst"
    for folder in range(12):
        (source / "tree" / f"d{folder:02d}").mkdir(parents=True)
        for index in range(20):
            (source / "tree" / f"d{folder:02d}" / f"f{index:02d}").write_bytes(b"x" * index)
    (target / "tree" / "d00").mkdir(parents=True)  # there before: its files are checked
    (target / "tree" / "d00" / "f03").write_bytes(b"theirs")
    destination = Counting(target)
    plan = ExecutionPlan(
        action="copy",
        sources=[StorageLocation("/src/tree", "src", LocalBackend(source), "tree")],
        destinations=[StorageLocation("/dst", "dst", destination, "")],
        options={"parallel_processing": "4"}, conflict_resolution="rename")
    reporter = Reporter()
    outcome = run_workflow(CopyWorkflow(plan), set(), reporter, Progress())
    assert outcome.status == "done"
    files_looked_for = {path for path in destination.looked_at
                        if path.rpartition("/")[2].startswith("f")}
    assert files_looked_for and all(path.startswith("tree/d00/") for path in files_looked_for)
    assert (target / "tree" / "d00" / "f03").read_bytes() == b"theirs"
    assert (target / "tree" / "d00" / "f03 (1)").read_bytes() == b"x" * 3
    assert sorted(p.name for p in (target / "tree" / "d07").iterdir()) == \
        [f"f{index:02d}" for index in range(20)]
