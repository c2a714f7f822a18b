"""The execution engine end to end: a real server, real nodes in their own processes,
real files. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import time

import xxhash

from conftest import unique
from engine_fixtures import *  # noqa: F401,F403 (engine, api, nodes, storage fixtures)
from engine_fixtures import action_task
from engine_support import (
    act, catalog_entry, copy_task, latest_execution, logs, make_tree, partial_files, run_task, share_on,
    tree_digest, wait_job, wait_task,
)


def test_run_copies_an_identical_tree(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "tree", files=30, size=50_000)
    (source_root / "tree" / "empty-dir").mkdir()
    nodes()
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out", priority=7)
    job = act(api, task["id"], "run")
    assert job["status"] == "queued" and job["job_id"]
    assert wait_job(api, task["id"], "run", job["job_id"])["status"] == "completed"
    done = wait_task(api, task["id"])
    assert done["status"] == "done" and done["action"] == "noop"
    assert tree_digest(destination_root / "out" / "tree") == tree_digest(source_root / "tree")
    execution = latest_execution(api, task["id"])
    assert execution["status"] == "done"
    assert execution["to_process_files"] == execution["processed_files"] == 36  # 30 files, 6 folders
    assert execution["processed_size"] == execution["to_process_size"] == 30 * 50_000
    assert done["processed_size"] == 30 * 50_000 and done["job_finished"] >= done["job_started"]
    messages = [entry["msg"] for entry in logs(api, execution["id"])]
    assert any("queued" in m for m in messages) and any("finished: done" in m for m in messages)
    # One active execution per task: a second run while one is queued or running fails.
    again = act(api, task["id"], "run")
    assert wait_job(api, task["id"], "run", again["job_id"])["status"] in ("completed", "failed")


def test_run_while_active_fails_its_job_and_verbs_that_cannot_apply_fail(api, storage):
    source, source_root, destination, _ = storage
    make_tree(source_root / "tree", files=2, size=10)
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    for verb in ("pause", "resume", "stop"):
        job = wait_job(api, task["id"], verb, act(api, task["id"], verb)["job_id"])
        assert job["status"] == "failed" and "no active execution" in job["message"]
    first = act(api, task["id"], "run")  # no node is running: it stays queued
    second = wait_job(api, task["id"], "run", act(api, task["id"], "run")["job_id"])
    assert second["status"] == "failed" and "only one execution" in second["message"]
    response = api.get(f"/tasks/{task['id']}/action/run", params={"job_id": first["job_id"]})
    assert response.status_code == 202 and response.json()["status"] == "queued"
    stopped = wait_job(api, task["id"], "stop", act(api, task["id"], "stop")["job_id"])
    assert stopped["status"] == "completed"
    assert api.get(f"/tasks/{task['id']}").json()["status"] == "stopped_by_user"
    inactive = copy_task(api, f"/{source}/tree", f"/{destination}/out2", activate=False)
    job = wait_job(api, inactive["id"], "run", act(api, inactive["id"], "run")["job_id"])
    assert job["status"] == "failed" and "not activated" in job["message"]
    assert api.get(f"/tasks/{task['id']}/action/run", params={"job_id": "nope"}).status_code == 404


def _inodes(root):
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def test_pause_resume_continues_without_copying_a_file_twice(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "tree", files=40, size=100_000)
    nodes("--bwlimit", "1M")  # about 4 s for the whole tree
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    wait_task(api, task["id"], {"in_progress"}, timeout=30)
    time.sleep(1.0)
    asked = time.monotonic()
    pause = act(api, task["id"], "pause")
    assert wait_job(api, task["id"], "pause", pause["job_id"])["status"] == "completed"
    assert time.monotonic() - asked < 2.0, "pause must take effect within 2 seconds"
    paused = api.get(f"/tasks/{task['id']}").json()
    assert paused["status"] == "paused"
    copied_before = _inodes(destination_root / "out")
    assert 0 < len(copied_before) < 40
    time.sleep(1.0)
    assert _inodes(destination_root / "out") == copied_before  # nothing moves while paused

    resume = act(api, task["id"], "resume")
    assert wait_job(api, task["id"], "resume", resume["job_id"])["status"] == "completed"
    assert wait_task(api, task["id"])["status"] == "done"
    after = _inodes(destination_root / "out")
    for path, identity in copied_before.items():
        assert after[path] == identity, f"{path} was written again after resume"
    assert tree_digest(destination_root / "out" / "tree") == tree_digest(source_root / "tree")
    assert not partial_files(destination_root)
    execution = latest_execution(api, task["id"])
    messages = [entry["msg"] for entry in logs(api, execution["id"])]
    assert any("resuming" in m for m in messages) and any("paused" in m for m in messages)


def test_stop_ends_the_execution_and_keeps_finished_files(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "tree", files=40, size=100_000)
    nodes("--bwlimit", "1M")
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    wait_task(api, task["id"], {"in_progress"}, timeout=30)
    time.sleep(1.0)
    asked = time.monotonic()
    stop = act(api, task["id"], "stop")
    assert wait_job(api, task["id"], "stop", stop["job_id"])["status"] == "completed"
    assert time.monotonic() - asked < 2.0
    stopped = api.get(f"/tasks/{task['id']}").json()
    assert stopped["status"] == "stopped_by_user" and stopped["job_finished"]
    kept = list((destination_root / "out").rglob("*.bin"))
    assert 0 < len(kept) < 40
    for path in kept:  # every finished file is whole
        original = source_root / "tree" / path.relative_to(destination_root / "out" / "tree")
        assert path.read_bytes() == original.read_bytes()
    assert not partial_files(destination_root)
    resume = wait_job(api, task["id"], "resume", act(api, task["id"], "resume")["job_id"])
    assert resume["status"] == "failed"


def test_start_window_expires_when_no_node_takes_it(api, storage):
    source, source_root, destination, _ = storage
    make_tree(source_root / "tree", files=1, size=10)
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out", start_window_seconds=1)
    act(api, task["id"], "run")
    finished = wait_task(api, task["id"], timeout=10)
    assert finished["status"] == "stopped_by_system"
    execution = latest_execution(api, task["id"])
    assert any("start window expired" in e["msg"] for e in logs(api, execution["id"]))


def test_timeout_stops_a_long_run(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "tree", files=40, size=100_000)
    nodes("--bwlimit", "500K")
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out", timeout_seconds=2)
    act(api, task["id"], "run")
    finished = wait_task(api, task["id"], timeout=30)
    assert finished["status"] == "stopped_by_system"
    execution = latest_execution(api, task["id"])
    assert any("timeout" in e["msg"] for e in logs(api, execution["id"]))
    assert not partial_files(destination_root)


def test_priority_then_fifo_order(api, nodes, storage):
    source, source_root, destination, _ = storage
    (source_root / "empty").mkdir()
    order = [("low", 1), ("high-a", 9), ("mid", 5), ("high-b", 9)]
    tasks = {}
    for label, priority in order:
        tasks[label] = copy_task(api, f"/{source}/empty", f"/{destination}/{label}",
                                 priority=priority)
        act(api, tasks[label]["id"], "run")
        time.sleep(0.01)
    nodes("--concurrency", "1")
    started = {}
    for label, task in tasks.items():
        started[label] = wait_task(api, task["id"])["job_started"]
    assert sorted(started, key=started.get) == ["high-a", "high-b", "mid", "low"]


def test_nodes_list_shows_heartbeat_running_executions_and_storages(api, nodes, storage, engine):
    source, source_root, destination, _ = storage
    make_tree(source_root / "tree", files=20, size=100_000)
    node = nodes("--bwlimit", "1M")
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    wait_task(api, task["id"], {"in_progress"}, timeout=30)
    listed = api.get("/nodes", params={"name": node.name}).json()["nodes"][0]
    assert listed["online"] is True and listed["last_heartbeat"]
    assert latest_execution(api, task["id"])["id"] in listed["running_executions"]
    containers = {c["name"]: c["id"] for c in api.get("/containers").json()["containers"]}
    assert f"container:{containers[source]}" in listed["storages"]
    act(api, task["id"], "stop")
    wait_task(api, task["id"])


def test_a_node_only_gets_executions_whose_storages_it_reaches(api, nodes, storage, engine):
    source, source_root, destination, _ = storage
    (source_root / "empty").mkdir()
    share_dir = engine.data_dir.parent / unique("share")
    share_dir.mkdir()
    share = share_on(api, share_dir)
    nodes("--concurrency", "1")
    # The share's directory disappears: no node reaches it any more.
    task = copy_task(api, f"/{source}/empty", f"/{share}/out")
    os.rmdir(share_dir)
    time.sleep(1.5)  # nodes refresh what they reach every second
    act(api, task["id"], "run")
    time.sleep(2.0)
    assert api.get(f"/tasks/{task['id']}").json()["status"] == "in_queue"
    share_dir.mkdir()
    assert wait_task(api, task["id"], timeout=15)["status"] == "done"


def test_written_files_enter_the_catalog_with_the_execution(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "tree", files=3, size=1234, folders=1)
    nodes()
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    assert wait_task(api, task["id"])["status"] == "done"
    execution = latest_execution(api, task["id"])
    base = f"/task_executions/{execution['id']}/files"
    (top,) = api.get(base).json()["files"]  # the execution's files, browsed from the top
    assert top["file_path"] == f"/{destination}/out/tree" and top["type"] == "folder"
    (folder,) = api.get(f"{base}/{top['id']}/children").json()["files"]
    files = api.get(f"{base}/{folder['id']}/children").json()["files"]
    by_path = {f["file_path"]: f for f in files}
    copied = f"/{destination}/out/tree/dir0/file-00001.bin"
    assert len(files) == 3 and by_path[copied]["size"] == 1234 and by_path[copied]["type"] == "file"
    assert api.get(f"/files/{by_path[copied]['id']}").json()["file_path"] == copied
    assert api.get(f"/tasks/{task['id']}/files").json()["files"][0]["id"] == top["id"]


def test_renamed_skipped_and_failed_files_are_logged_with_their_path(api, nodes, storage):
    source, source_root, destination, destination_root = storage
    tree = source_root / "tree"
    tree.mkdir()
    for name in ("a.txt", "b.txt", "same.txt"):
        (tree / name).write_text(f"new {name}")
    existing = destination_root / "out" / "tree"
    existing.mkdir(parents=True)
    (existing / "a.txt").write_text("older a")
    (existing / "same.txt").write_text("new same.txt")
    (existing / "b.txt").mkdir()  # a folder where the file should go: that file must fail
    (existing / "b.txt" / "keep").write_text("k")
    nodes()

    def run(policy: str) -> tuple[dict, list[str]]:
        task = copy_task(api, f"/{source}/tree", f"/{destination}/out", conflict_resolution=policy)
        act(api, task["id"], "run")
        finished = wait_task(api, task["id"])
        return finished, [e["msg"] for e in logs(api, latest_execution(api, task["id"])["id"])]

    finished, messages = run("ignore")
    assert finished["status"] == "finished_with_warnings"  # a.txt differs; same.txt does not
    assert any(f"/{destination}/out/tree/a.txt exists with different content" in m for m in messages)
    assert any(f"/{destination}/out/tree/same.txt exists: skipped" in m for m in messages)
    assert (existing / "a.txt").read_text() == "older a"

    finished, messages = run("rename")
    assert any(f"written as /{destination}/out/tree/a (1).txt" in m for m in messages)
    assert (existing / "a (1).txt").read_text() == "new a.txt"
    assert (existing / "a.txt").read_text() == "older a"

    finished, messages = run("overwrite")
    assert finished["status"] == "finished_with_warnings"
    assert any("b.txt" in m and "cannot" in m for m in messages), messages
    assert (existing / "a.txt").read_text() == "new a.txt"
    assert (existing / "b.txt" / "keep").read_text() == "k"
    assert not partial_files(destination_root)


def test_small_files_taking_their_names_in_groups_all_land_and_enter_the_catalog(
        api, nodes, storage):
    """One stream: the small files wait to take their names together (one wait for the
    disk per group). Two sources with a file of the same name land in the same group:
    the second sees the first's name as taken and is renamed, as it would be one by one."""
    source, source_root, destination, destination_root = storage
    make_tree(source_root / "many", files=150, size=3000, folders=3)
    for folder in ("left", "right"):
        (source_root / folder).mkdir()
        (source_root / folder / "same.txt").write_text(f"from {folder}")
    nodes()
    task = action_task(api, "copy", [f"/{source}/many", f"/{source}/left/same.txt",
                                     f"/{source}/right/same.txt"], [f"/{destination}/out"],
                       options={"parallel_processing": 1})
    execution = run_task(api, task)
    assert execution["status"] == "done", execution
    out = destination_root / "out"
    assert tree_digest(out / "many") == tree_digest(source_root / "many")
    assert sorted((out / "same.txt", out / "same (1).txt")) == sorted(
        p for p in out.iterdir() if p.name.startswith("same"))
    assert {(out / "same.txt").read_text(), (out / "same (1).txt").read_text()} == {
        "from left", "from right"}
    assert not partial_files(destination_root)
    assert execution["processed_files"] == execution["to_process_files"] == 150 + 3 + 1 + 2
    entry = catalog_entry(api, f"/{destination}/out/many/dir2/file-00149.bin")
    assert entry is not None and entry["size"] == 3000

    # overwrite: the later source wins, as one by one, and the catalog says which.
    task = action_task(api, "copy", [f"/{source}/left/same.txt", f"/{source}/right/same.txt"],
                       [f"/{destination}/out2"], options={"parallel_processing": 1},
                       conflict_resolution="overwrite")
    assert run_task(api, task)["status"] == "done"
    assert (destination_root / "out2" / "same.txt").read_text() == "from right"
    assert catalog_entry(api, f"/{destination}/out2/same.txt")["checksums"] == [
        "xxh128:" + xxhash.xxh3_128_hexdigest(b"from right")]
    assert not partial_files(destination_root)
