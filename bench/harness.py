"""What the data benchmarks (copy.py, scan.py) share: child processes, the real tiermover
server with SQLite, its worker nodes as separate processes, and storage registered
through the API.

Everything goes through the same doors a user's would: `python -m tiermover serve`,
`tiermover worker`, and the Nodeum API v2 for NAS shares, buckets, tasks and runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

ADMIN_PASSWORD = "bench-" + uuid.uuid4().hex[:12]
FINAL = ("done", "finished_with_warnings", "error", "stopped_by_user", "stopped_by_system")
GiB = 1024 ** 3
MiB = 1024 ** 2
KiB = 1024


# --- processes -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """The predicate's first truthy value, or TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def parse_iso(value: str) -> float:
    """`2025-11-05T15:41:44.753Z` (how the API writes dates) as a Unix time."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (Linux /proc; 0 once it is gone)."""
    try:
        # Fields after the command name (which may hold spaces), from field 3 on.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status in KiB (VmHWM: peak resident set size)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def children_cpu_seconds() -> float:
    """CPU of every waited-for child so far (the peer tools run as such children)."""
    usage = os.times()
    return usage.children_user + usage.children_system


def sync_filesystem(path: Path) -> None:
    """syncfs(2) of the filesystem holding `path`: every dirty page of it reaches the disk."""
    subprocess.run(["sync", "-f", str(path)], check=True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class Processes:
    """Every child process of a run, stopped together (and for sure) at the end."""

    def __init__(self) -> None:
        self.running: list[tuple[subprocess.Popen, Path]] = []

    def start(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with log.open("ab") as output:
            process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                       env=dict(os.environ, **(env or {})))
        self.running.append((process, log))
        return process

    def check_alive(self) -> None:
        for process, log in self.running:
            if process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"{' '.join(map(str, process.args[:4]))} exited with "
                                   f"{process.returncode}; end of {log}:\n{tail}")

    def stop(self, process: subprocess.Popen, grace: float = 10.0) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.running = [(p, log) for p, log in self.running if p is not process]

    def stop_all(self, grace: float = 10.0) -> None:
        # SIGTERM to all first so that they wind down in parallel, then SIGKILL stragglers.
        for process, _ in self.running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process, _ in self.running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.running.clear()


# --- tiermover -----------------------------------------------------------------------------

class Tiermover:
    """The real server (SQLite in `workdir`, no embedded node) and its API, as admin."""

    def __init__(self, workdir: Path, processes: Processes, log_prefix: str = "tiermover"):
        self.workdir = workdir
        self.processes = processes
        self.log_prefix = log_prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = httpx.Client(base_url=self.url + "/api/v2", auth=("admin", ADMIN_PASSWORD),
                                timeout=60)
        self.server: subprocess.Popen | None = None
        self.nodes: dict[str, subprocess.Popen] = {}
        self._node_key = ""
        self._nas_id: int | None = None

    def log(self, message: str) -> None:
        print(f"[{self.log_prefix}] {message}", flush=True)

    @staticmethod
    def checked(response: httpx.Response, expected: int) -> dict:
        if response.status_code != expected:
            raise RuntimeError(f"{response.request.method} {response.request.url} answered "
                               f"{response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    def start(self) -> None:
        data_dir = self.workdir / "tiermover-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.server = self.processes.start(
            [sys.executable, "-m", "tiermover", "serve", "--no-worker", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(data_dir),
             "--database-url", f"sqlite:///{data_dir / 'tiermover.db'}",
             "--log-level", "warning"],
            self.workdir / "server.log", env={"TIERMOVER_ADMIN_PASSWORD": ADMIN_PASSWORD})

        def healthy() -> bool:
            self.processes.check_alive()
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 120, "the server to answer /healthz", 0.2)

    def start_node(self, name: str, *extra: str) -> subprocess.Popen:
        """A `tiermover worker` process with the CLI's defaults (fsync on, concurrency 1)
        unless `extra` says otherwise."""
        if not self._node_key:
            self._node_key = self.checked(self.api.post("/users/me/api_keys", json={
                "name": "bench nodes",
                "api_key_scopes": [{"controller": "nodes", "action": "work"}]}), 201)["key"]
        process = self.processes.start(
            [sys.executable, "-m", "tiermover", "worker", "--server", self.url, "--name", name,
             "--log-level", "warning", *extra],
            self.workdir / f"node-{name}.log", env={"TIERMOVER_API_KEY": self._node_key})
        self.nodes[name] = process
        self.wait_node(name)
        return process

    def wait_node(self, name: str, storages: int = 0) -> None:
        """Until the node is online and declares at least `storages` storages."""
        def online() -> bool:
            self.processes.check_alive()
            listed = self.checked(self.api.get("/nodes", params={"name": name}), 200)["nodes"]
            return bool(listed) and listed[0]["online"] and len(
                listed[0].get("storages") or ()) >= storages

        wait_until(online, 60, f"node {name} to be online with {storages} storages", 0.2)

    def stop_node(self, name: str) -> None:
        self.processes.stop(self.nodes.pop(name))

    def add_share(self, name: str, path: Path) -> str:
        """A NAS share on `path` (the nodes of this machine reach it)."""
        if self._nas_id is None:
            self._nas_id = self.checked(self.api.post("/nas", json={"name": "bench-nas"}), 201)["id"]
        self.checked(self.api.post(f"/nas/{self._nas_id}/nas_shares",
                                   json={"name": name, "path": str(path)}), 201)
        return name

    def add_bucket(self, name: str, endpoint: str, region: str, access_key: str,
                   secret_key: str) -> str:
        connector = self.checked(self.api.post("/cloud_connectors", json={
            "name": f"connector-{name}", "provider": "generic_s3", "url": endpoint,
            "region": region, "access_key": access_key, "secret_key": secret_key}), 201)
        self.checked(self.api.post(f"/cloud_connectors/{connector['id']}/cloud_buckets",
                                   json={"name": name}), 201)
        return name

    def create_task(self, action: str, sources: list[str], destinations: list[str] = (),
                    options: dict | None = None, workflow_type: str = "active_archive") -> int:
        task = self.checked(self.api.post("/tasks", json={
            "name": f"bench-{action}-{uuid.uuid4().hex[:8]}", "workflow_type": workflow_type,
            "workflow_action": action}), 201)
        parts = ([("task_sources", {"file_path": path}) for path in sources]
                 + [("task_destinations", {"folder_path": path}) for path in destinations]
                 + [("task_options", {"type": key, "value": str(value)})
                    for key, value in (options or {}).items()])
        for collection, body in parts:
            self.checked(self.api.post(f"/tasks/{task['id']}/{collection}", json=body), 201)
        return task["id"]

    def run_task(self, task_id: int, timeout: float, poll: float = 0.1,
                 while_running=None) -> tuple[dict, float]:
        """Runs the task through the API and waits for its end: (execution, seconds from
        the moment the run was requested to the execution's job_finished). The end is the
        server's own timestamp, so the polling interval adds nothing to the measure."""
        since_ns = time.time_ns()
        requested = time.time()
        job = self.checked(self.api.put(f"/tasks/{task_id}/action/run"), 202)
        if job.get("status") == "failed":
            raise RuntimeError(f"run of task {task_id} refused: {job.get('message')}")

        def ended() -> dict | None:
            self.processes.check_alive()
            if while_running is not None:
                while_running()
            page = self.checked(self.api.get(f"/tasks/{task_id}/task_executions", params={
                "sort_by": "id:desc", "limit": 1}), 200)["task_executions"]
            execution = page[0] if page else None
            fresh = execution and int(execution["id"]) >= since_ns
            return execution if fresh and execution["status"] in FINAL else None

        execution = wait_until(ended, timeout, f"the run of task {task_id}", poll)
        return execution, parse_iso(execution["job_finished"]) - requested

    def execution_log(self, execution_id: str, limit: int = 50) -> list[str]:
        lines = self.checked(self.api.get(f"/task_executions/{execution_id}/logs",
                                          params={"limit": limit}), 200)
        return [f"{line.get('level')}: {line.get('msg')}" for line in lines]
