"""A copy racing another program for the same target name: the real runner, copy
workflow and local backend on real files; the other program's write is injected at the
last moment before the copy takes its name."""

from __future__ import annotations

from tiermover.node.progress import Progress
from tiermover.node.runner import run_workflow
from tiermover.storage.local import LocalBackend, is_temporary_name
from tiermover.workflows.base import ExecutionPlan, StorageLocation
from tiermover.workflows.copy import CopyWorkflow


def test_a_file_appearing_at_its_target_mid_copy_is_kept_and_named_in_the_failure(tmp_path):
    # Another program writes the target between the copy's conflict check and the
    # moment the copy takes its name: its file stays, the copy fails alone and says why.
    class Racing(LocalBackend):
        def commit_group(self, writes):
            for writer, _ in writes:
                if writer.final.endswith("/b.txt"):
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

    source, target = tmp_path / "src", tmp_path / "dst"
    (source / "data").mkdir(parents=True)
    target.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (source / "data" / name).write_bytes(name.encode())
    plan = ExecutionPlan(
        action="copy",
        sources=[StorageLocation("/src/data", "src", LocalBackend(source), "data")],
        destinations=[StorageLocation("/dst", "dst", Racing(target, fsync=True), "")],
        conflict_resolution="rename")
    reporter = Reporter()
    outcome = run_workflow(CopyWorkflow(plan), set(), reporter, Progress())
    assert outcome.status == "finished_with_warnings"
    failed = [result for _, result in reporter.items if result.outcome == "failed"]
    assert len(failed) == 1
    assert "/dst/data/b.txt appeared while the file was copied" in failed[0].message
    assert "conflict_resolution rename" in failed[0].message
    assert (target / "data" / "b.txt").read_bytes() == b"theirs"
    assert (target / "data" / "a.txt").read_bytes() == b"a.txt"
    assert (target / "data" / "c.txt").read_bytes() == b"c.txt"
    assert not any(is_temporary_name(p.name) for p in (target / "data").iterdir())
    assert (source / "data" / "b.txt").read_bytes() == b"b.txt"
