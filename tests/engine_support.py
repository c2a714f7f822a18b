"""Helpers for end-to-end tests of the engine: trees of real files, tasks, separate nodes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import RunningServer, unique

FINAL = {"done", "finished_with_warnings", "error", "stopped_by_user", "stopped_by_system"}


def make_tree(root: Path, files: int, size: int, folders: int = 4) -> Path:
    """A tree of `files` files of `size` bytes with distinct contents, in a few folders."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        folder = root / f"dir{index % folders}"
        folder.mkdir(exist_ok=True)
        seed = hashlib.sha256(f"{root.name}-{index}".encode()).digest()
        data = (seed * (size // len(seed) + 1))[:size]
        (folder / f"file-{index:05d}.bin").write_bytes(data)
    return root


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        out[relative] = "dir" if path.is_dir() else hashlib.md5(path.read_bytes()).hexdigest()
    return out


def partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tm-part-" in p.name]


def create_container(api: httpx.Client, server: RunningServer, name: str | None = None) -> tuple[str, Path]:
    name = name or unique("c")
    response = api.post("/containers", json={"name": name})
    assert response.status_code == 201, response.text
    return name, server.data_dir / "containers" / name


def share_on(api: httpx.Client, path: Path) -> str:
    """A NAS share (on a new NAS) at a directory; returns its name."""
    nas = api.post("/nas", json={"name": unique("nas")}).json()
    name = unique("share")
    response = api.post(f"/nas/{nas['id']}/nas_shares", json={"name": name, "path": str(path)})
    assert response.status_code == 201, response.text
    return name


def catalog_entry(api: httpx.Client, namespace_path: str) -> dict | None:
    """The catalog's file object for a namespace path, found by browsing /files down its
    folders (as a user would); None when some part of it is not catalogued."""
    top, *parts = namespace_path.strip("/").split("/")
    found = api.get("/files", params={"name": top, "limit": 1000}).json()["files"]
    entry = next((f for f in found if f["file_path"] == "/" + top), None)
    for part in parts:
        if entry is None:
            return None
        children = api.get(f"/files/{entry['id']}/children", params={"name": part})
        entry = next(iter(children.json().get("files", [])), None)
    return entry


def copy_task(api: httpx.Client, source_path: str, destination_path: str, **fields) -> dict:
    body = {"name": unique("copy"), "workflow_type": "active_archive", "workflow_action": "copy",
            **fields}
    task = api.post("/tasks", json=body)
    assert task.status_code == 201, task.text
    task = task.json()
    response = api.post(f"/tasks/{task['id']}/task_sources", json={"file_path": source_path})
    assert response.status_code == 201, response.text
    response = api.post(f"/tasks/{task['id']}/task_destinations", json={"folder_path": destination_path})
    assert response.status_code == 201, response.text
    return task


def act(api: httpx.Client, task_id: int, verb: str) -> dict:
    response = api.put(f"/tasks/{task_id}/action/{verb}")
    assert response.status_code == 202, response.text
    return response.json()


def wait_job(api: httpx.Client, task_id: int, verb: str, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/tasks/{task_id}/action/{verb}", params={"job_id": job_id})
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
        time.sleep(0.05)
    raise AssertionError(f"{verb} job {job_id} still pending after {timeout}s")


def wait_task(api: httpx.Client, task_id: int, statuses=FINAL, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = api.get(f"/tasks/{task_id}").json()
        if task["status"] in statuses:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} is {task['status']} after {timeout}s, not in {statuses}")


def latest_execution(api: httpx.Client, task_id: int) -> dict:
    page = api.get(f"/tasks/{task_id}/task_executions", params={"sort_by": "creation_date:desc",
                                                                 "limit": 1}).json()
    return page["task_executions"][0]


def run_task(api: httpx.Client, task: dict, timeout: float = 90) -> dict:
    """Run a task, wait for it to end, and return its (latest) execution."""
    act(api, task["id"], "run")
    wait_task(api, task["id"], timeout=timeout)
    return latest_execution(api, task["id"])


def logs(api: httpx.Client, execution_id: str) -> list[dict]:
    return api.get(f"/task_executions/{execution_id}/logs", params={"limit": 10000}).json()


def node_key(api: httpx.Client) -> str:
    response = api.post("/users/me/api_keys", json={
        "name": unique("node"), "api_key_scopes": [{"controller": "nodes", "action": "work"}]})
    assert response.status_code == 201, response.text
    return response.json()["key"]


class NodeProcess:
    """A `tiermover worker` in its own process."""

    def __init__(self, server: RunningServer, key: str, name: str, *extra: str,
                 wrapper: tuple[str, ...] = ()):
        """`wrapper`: a command the worker runs under (e.g. setpriv dropping capabilities)."""
        self.name = name
        log = open(server.data_dir.parent / f"node-{name}.log", "ab")
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "tiermover", "worker", "--server", server.url, "--api-key", key,
             "--name", name, "--no-fsync", "--log-level", "warning", *extra],
            stdout=log, stderr=subprocess.STDOUT)

    def wait_registered(self, api: httpx.Client, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = api.get("/nodes", params={"name": self.name}).json()["nodes"]
            if nodes and nodes[0]["online"]:
                return
            time.sleep(0.1)
        raise AssertionError(f"node {self.name} did not register")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
