"""Workflow actions end to end on local storage: a real server, a real node process, real
files. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

from engine_fixtures import *  # noqa: F401,F403 (engine, api, nodes, storage fixtures)
from engine_fixtures import action_task
from engine_support import logs, make_tree, partial_files, run_task, tree_digest



def test_copy_with_filters_streams_and_original_dates(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    tree = make_tree(source_root / "tree", files=24, size=3_000)
    for index in range(6):
        (tree / f"dir{index % 4}" / f"note-{index}.txt").write_text(f"note {index}\n")
    old = 1_500_000_000
    os.utime(tree / "dir1", (old, old))
    os.utime(tree / "dir1" / "note-1.txt", (old + 7, old + 7))
    nodes()
    task = action_task(api, "copy", [f"/{source}/tree"], [f"/{destination}/out"],
                       options={"parallel_processing": 8, "reset_file_date": "true",
                                "reset_folder_date": "true"},
                       filters=['name ~ "*.txt"'])
    execution = run_task(api, task)
    assert execution["status"] == "done", execution
    copied = destination_root / "out" / "tree"
    assert sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*.*")) == sorted(
        p.relative_to(tree).as_posix() for p in tree.rglob("*.txt"))
    assert not list(copied.rglob("*.bin"))
    assert execution["processed_files"] == execution["to_process_files"] == 6
    assert (copied / "dir1" / "note-1.txt").stat().st_mtime == old + 7
    assert (copied / "dir1").stat().st_mtime == old


def test_processing_order_decides_which_file_goes_first(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    folder = source_root / "sizes"
    folder.mkdir()
    sizes = [3000, 100, 70_000, 5, 900, 12_000]
    for index, size in enumerate(sizes):
        (folder / f"f{index}.bin").write_bytes(b"x" * size)
    nodes()
    task = action_task(api, "copy", [f"/{source}/sizes"], [f"/{destination}/out"],
                       options={"processing_order": "size_desc", "parallel_processing": 1})
    execution = run_task(api, task)
    assert execution["status"] == "done"
    # The catalog numbers files in the order the node finished them (one stream: the
    # order it wrote them); file dates cannot tell, several files land within one tick
    # of the file system's clock.
    files = api.get(f"/task_executions/{execution['id']}/files", params={"limit": 100})
    pending = [entry for entry in files.json()["files"]]
    handled = []
    while pending:
        entry = pending.pop()
        if entry["type"] == "folder":
            children = api.get(f"/task_executions/{execution['id']}/files/{entry['id']}/children",
                               params={"limit": 100})
            pending += children.json()["files"]
        else:
            handled.append(entry)
    handled.sort(key=lambda entry: entry["id"])
    assert [entry["size"] for entry in handled] == sorted(sizes, reverse=True)
    written = [destination_root / entry["file_path"].split("/", 2)[2] for entry in handled]
    dates = [path.stat().st_mtime_ns for path in written]
    assert dates == sorted(dates)


def test_erase_and_soft_erase(api, nodes, storage):
    source, source_root, _, _ = storage
    make_tree(source_root / "gone", files=8, size=100)
    kept = make_tree(source_root / "kept", files=8, size=100)
    before = tree_digest(kept)
    nodes()
    erase = action_task(api, "erase", [f"/{source}/gone"], workflow_type="maintenance")
    execution = run_task(api, erase)
    assert execution["status"] == "done", execution
    assert not (source_root / "gone").exists()
    soft = action_task(api, "erase", [f"/{source}/kept"], options={"soft_erase": "true"},
                       workflow_type="maintenance")
    assert run_task(api, soft)["status"] == "done"
    assert tree_digest(kept) == before


def test_speedtest_reports_bandwidths_and_leaves_nothing(api, nodes, storage):
    source, source_root, _, _ = storage
    (source_root / "bench").mkdir()
    nodes()
    task = action_task(api, "speedtest", [f"/{source}/bench"], workflow_type="maintenance")
    execution = run_task(api, task)
    assert execution["status"] == "done", execution
    lines = [entry["msg"] for entry in logs(api, execution["id"])]
    report = next(line for line in lines if line.startswith("speedtest"))
    assert "write" in report and "read" in report and "MB/s" in report
    assert list(Path(source_root / "bench").iterdir()) == []


def test_move_verifies_then_removes_sources_and_keeps_them_in_the_catalog(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    tree = make_tree(source_root / "tree", files=20, size=10_000)
    before = tree_digest(tree)
    nodes()
    task = action_task(api, "move", [f"/{source}/tree"], [f"/{destination}/archive"])
    execution = run_task(api, task)
    assert execution["status"] == "done", execution
    assert tree_digest(destination_root / "archive" / "tree") == before
    # A container keeps its folder tree (browsable, files offline); the files are gone.
    assert [p for p in tree.rglob("*") if p.is_file()] == []
    assert sorted(p.name for p in tree.iterdir()) == ["dir0", "dir1", "dir2", "dir3"]
    assert not partial_files(destination_root)

