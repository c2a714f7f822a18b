"""Benchmark of dispatch: how soon and how fast worker nodes start tiny executions.

    .venv/bin/python bench/dispatch.py [--tasks N] [--backends sqlite,postgresql]

For each backend: start the real server without its embedded node, create through the
API a source and a destination container, an empty folder in the source and N copy
tasks of that folder, then start `tiermover worker` processes (1, then 3 more for 4)
and measure
  - latency: one run at a time on idle nodes, from the 202 of `PUT /tasks/{id}/action/run`
    to the execution's `job_started` (the moment a node claimed it); p50/p95;
  - throughput: N runs enqueued by a few concurrent clients, from the first enqueue to the
    last `job_finished`; executions per second.
The same two measures are taken with procrastinate on the same PostgreSQL (its own
schema, a no-op async task, worker processes matching the nodes), where "started" is
time.time() inside the task body. See bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from harness import (  # bench/ is the script's folder, first on the path
    Processes, free_port, parse_iso, wait_until,
)
from harness import cpu_seconds as process_cpu_seconds

PG = dict(host="127.0.0.1", port=5432, dbname="test", user="postgres", connect_timeout=10)
ADMIN_PASSWORD = "bench-" + uuid.uuid4().hex[:12]
LATENCY_P50_TARGET_MS = 50.0
FINAL = ("done", "finished_with_warnings", "error", "stopped_by_user", "stopped_by_system")
# The first samples of each series warm up connections, caches and the nodes' long-polls.
WARM_UP_SAMPLES = 5
# Between latency samples: long enough for every node to be back in its long-poll.
IDLE_PAUSE_SECONDS = 0.05
# Polling for an outcome: the measured instants are recorded by the server (or inside
# the task), so this only bounds how long a sample takes, and it stays slow enough not
# to compete with the dispatch it observes.
POLL_SECONDS = 0.025
PROCRASTINATE_TASK = "bench_noop"


# --- processes -----------------------------------------------------------------------------

def cpu_seconds(processes: list[subprocess.Popen]) -> float:
    """User + system CPU time the processes used so far (Linux /proc; 0 elsewhere)."""
    return sum(process_cpu_seconds(process.pid) for process in processes)


# --- PostgreSQL schemas ----------------------------------------------------------------------

def create_schema(prefix: str) -> str:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_schema(schema: str) -> None:
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_conninfo(schema: str) -> str:
    return (f"host={PG['host']} port={PG['port']} dbname={PG['dbname']} user={PG['user']} "
            f"connect_timeout={PG['connect_timeout']} options='-csearch_path={schema}'")


# --- results -------------------------------------------------------------------------------

@dataclass
class Stages:
    """Median milliseconds of each step of a latency sample, in order."""
    names: tuple[str, ...]
    samples: list[tuple[float, ...]] = field(default_factory=list)

    def medians(self) -> tuple[float, ...]:
        return tuple(statistics.median(column) for column in zip(*self.samples))


@dataclass
class Measure:
    system: str
    backend: str
    nodes: int
    latencies_ms: list[float]  # from the enqueue's acknowledgement (202 / defer() returned)
    from_request_ms: list[float]  # from the moment the enqueue request was sent
    stages: Stages
    executions: int
    seconds: float  # first enqueue to last finish
    enqueue_seconds: float
    failures: int  # runs refused or not ended as done
    cpu_ms: dict[str, float]  # CPU per execution of the throughput run, by process role

    @property
    def throughput(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(sorted(self.latencies_ms), 50)

    @property
    def p95(self) -> float:
        return percentile(sorted(self.latencies_ms), 95)

    @property
    def p50_from_request(self) -> float:
        return percentile(sorted(self.from_request_ms), 50)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


def sample_latency(run_one, samples: int, stage_names: tuple[str, ...]):
    """Runs one execution at a time on idle nodes: (latencies from the acknowledgement,
    latencies from the request, stages), warm-up samples left out."""
    latencies, from_request, stages = [], [], Stages(stage_names)
    for index in range(samples + WARM_UP_SAMPLES):
        latency, latency_from_request, steps = run_one(index)
        if index >= WARM_UP_SAMPLES:
            latencies.append(latency)
            from_request.append(latency_from_request)
            stages.samples.append(steps)
        time.sleep(IDLE_PAUSE_SECONDS)
    return latencies, from_request, stages


# --- tiermover -----------------------------------------------------------------------------

class TiermoverBench:
    def __init__(self, backend: str, database_url: str, data_dir: Path, processes: Processes, args):
        self.backend = backend
        self.database_url = database_url
        self.data_dir = data_dir
        self.processes = processes
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = httpx.Client(base_url=self.url + "/api/v2", auth=("admin", ADMIN_PASSWORD),
                                timeout=30)
        self.task_ids: list[int] = []
        self.node_key = ""
        self.nodes: list[str] = []
        self.server: subprocess.Popen | None = None
        self.node_processes: list[subprocess.Popen] = []

    def log(self, message: str) -> None:
        print(f"[tiermover {self.backend}] {message}", flush=True)

    def checked(self, response: httpx.Response, expected: int) -> dict:
        if response.status_code != expected:
            raise RuntimeError(f"{response.request.method} {response.request.url} answered "
                               f"{response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    # --- set-up -------------------------------------------------------------------------
    def start_server(self) -> None:
        log = self.data_dir / "server.log"
        self.server = self.processes.start(
            [sys.executable, "-m", "tiermover", "serve", "--no-worker", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--database-url", self.database_url, "--log-level", "warning"],
            log, env={"TIERMOVER_ADMIN_PASSWORD": ADMIN_PASSWORD})

        def healthy() -> bool:
            self.processes.check_alive()
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 120, "the server to answer /healthz", 0.2)

    def create_fixtures(self, count: int) -> None:
        for name in ("src", "dst"):
            self.checked(self.api.post("/containers", json={"name": name}), 201)
        (self.data_dir / "containers" / "src" / "empty").mkdir(parents=True, exist_ok=True)
        self.node_key = self.checked(self.api.post("/users/me/api_keys", json={
            "name": "bench nodes",
            "api_key_scopes": [{"controller": "nodes", "action": "work"}]}), 201)["key"]

        def create(index: int) -> int:
            with self.client() as api:
                task = self.checked(api.post("/tasks", json={
                    "name": f"dispatch-{index:06d}", "workflow_type": "active_archive",
                    "workflow_action": "copy", "conflict_resolution": "overwrite"}), 201)
                self.checked(api.post(f"/tasks/{task['id']}/task_sources",
                                      json={"file_path": "/src/empty"}), 201)
                self.checked(api.post(f"/tasks/{task['id']}/task_destinations",
                                      json={"folder_path": f"/dst/out-{index}"}), 201)
                return task["id"]

        with ThreadPoolExecutor(self.args.clients) as pool:
            self.task_ids = list(pool.map(create, range(count)))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v2", auth=("admin", ADMIN_PASSWORD),
                            timeout=30)

    def add_nodes(self, total: int) -> None:
        """Bring the number of worker nodes up to `total`. Nodes are only ever added, so
        that every measure runs against the same server."""
        while len(self.nodes) < total:
            name = f"bench-node-{len(self.nodes) + 1}"
            process = self.processes.start(
                [sys.executable, "-m", "tiermover", "worker", "--server", self.url,
                 "--name", name, "--concurrency", str(self.args.node_concurrency),
                 "--no-fsync", "--log-level", "warning"],
                self.data_dir / f"{name}.log", env={"TIERMOVER_API_KEY": self.node_key})
            self.nodes.append(name)
            self.node_processes.append(process)

        def all_online() -> bool:
            self.processes.check_alive()
            listed = self.checked(self.api.get("/nodes", params={"limit": 100}), 200)["nodes"]
            online = {node["name"] for node in listed if node["online"]}
            return all(name in online for name in self.nodes)

        wait_until(all_online, 60, f"{total} nodes to register", 0.2)

    # --- measures -----------------------------------------------------------------------
    def latest_execution(self, task_id: int) -> dict | None:
        page = self.checked(self.api.get(f"/tasks/{task_id}/task_executions",
                                         params={"sort_by": "id:desc", "limit": 1}), 200)
        return page["task_executions"][0] if page["task_executions"] else None

    def run_one(self, task_id: int) -> tuple[float, float, tuple[float, ...]]:
        before_ns = time.time_ns()
        sent = time.time()
        job = self.checked(self.api.put(f"/tasks/{task_id}/action/run"), 202)
        accepted = time.time()
        if job.get("status") == "failed":
            raise RuntimeError(f"run of task {task_id} refused: {job.get('message')}")

        def ended() -> dict | None:
            execution = self.latest_execution(task_id)
            fresh = execution and int(execution["id"]) >= before_ns
            return execution if fresh and execution["status"] in FINAL else None

        time.sleep(POLL_SECONDS)
        execution = wait_until(ended, self.args.timeout, f"the run of task {task_id}",
                               POLL_SECONDS)
        if execution["status"] != "done":
            raise RuntimeError(f"execution {execution['id']} ended as {execution['status']}")
        started = parse_iso(execution["job_started"])
        return ((started - accepted) * 1000, (started - sent) * 1000,
                self.stages(execution, sent, accepted))

    STAGE_NAMES = ("PUT round trip", "queued -> claimed", "claimed -> in_progress report",
                   "in_progress -> done")

    def stages(self, execution: dict, sent: float, accepted: float) -> tuple[float, ...]:
        """Server-side instants from the execution's log: queued (in the PUT's
        transaction), claimed by a node, the node's report that it listed the sources and
        is processing, finished."""
        lines = self.checked(self.api.get(f"/task_executions/{execution['id']}/logs"), 200)
        claimed = parse_iso(execution["job_started"])
        queued = next((parse_iso(line["timestamp"]) for line in lines
                       if line["msg"].startswith("queued")), claimed)
        processing = next((parse_iso(line["timestamp"]) for line in lines
                           if line["msg"].startswith("processing")), claimed)
        finished = parse_iso(execution["job_finished"])
        return ((accepted - sent) * 1000, (claimed - queued) * 1000,
                (processing - claimed) * 1000, (finished - processing) * 1000)

    def measure_latency(self, samples: int) -> tuple[list[float], list[float], Stages]:
        return sample_latency(lambda index: self.run_one(self.task_ids[index % len(self.task_ids)]),
                              samples, self.STAGE_NAMES)

    def count_executions(self, since_ns: int, statuses) -> int:
        page = self.checked(self.api.get("/task_executions", params={
            "id": f">={since_ns}", "status": "><" + "|".join(statuses), "limit": 1}), 200)
        return page["count"]

    def measure_throughput(self) -> tuple[int, float, float, int, dict[str, float]]:
        """(executions, first enqueue to last finish, enqueue duration, failures, CPU ms
        per execution of the server and of the nodes)."""
        cpu_before = cpu_seconds([self.server]), cpu_seconds(self.node_processes)
        since_ns = time.time_ns()
        refused = 0
        lock = threading.Lock()
        shares = [self.task_ids[i::self.args.clients] for i in range(self.args.clients)]
        first_enqueue = time.time()

        def enqueue(task_ids: list[int]) -> None:
            nonlocal refused
            with self.client() as api:
                for task_id in task_ids:
                    response = api.put(f"/tasks/{task_id}/action/run")
                    if response.status_code != 202 or response.json().get("status") == "failed":
                        with lock:
                            refused += 1

        with ThreadPoolExecutor(self.args.clients) as pool:
            list(pool.map(enqueue, shares))
        enqueue_seconds = time.time() - first_enqueue
        expected = len(self.task_ids) - refused
        wait_until(lambda: self.count_executions(since_ns, FINAL) >= expected,
                   self.args.timeout, f"{expected} executions to finish", 0.25)
        done = self.count_executions(since_ns, ("done",))
        last = self.checked(self.api.get("/task_executions", params={
            "id": f">={since_ns}", "sort_by": "job_finished:desc", "limit": 1}), 200)
        finished_at = last["task_executions"][0]["job_finished"]
        last_finish = parse_iso(finished_at) if finished_at else time.time()
        executions = max(done, 1)
        cpu_ms = {"server": (cpu_seconds([self.server]) - cpu_before[0]) * 1000 / executions,
                  "nodes": (cpu_seconds(self.node_processes) - cpu_before[1]) * 1000 / executions}
        return (done, last_finish - first_enqueue, enqueue_seconds, refused + (expected - done),
                cpu_ms)

    def run(self, node_counts: list[int]) -> list[Measure]:
        self.start_server()
        self.log(f"server up; creating {self.args.tasks} copy tasks")
        self.create_fixtures(self.args.tasks)
        measures = []
        for count in node_counts:
            self.add_nodes(count)
            self.log(f"{count} node(s): latency, {self.args.samples} runs one at a time")
            latencies, from_request, stages = self.measure_latency(self.args.samples)
            self.log(f"{count} node(s): throughput, {len(self.task_ids)} runs")
            done, seconds, enqueue_seconds, failures, cpu_ms = self.measure_throughput()
            measures.append(Measure("tiermover", self.backend, count, latencies, from_request,
                                    stages, done, seconds, enqueue_seconds, failures, cpu_ms))
            self.log(f"{count} node(s): p50 {measures[-1].p50:.1f} ms, "
                     f"{measures[-1].throughput:.1f} executions/s")
        return measures


def run_tiermover(backend: str, node_counts: list[int], workdir: Path, args) -> list[Measure]:
    data_dir = workdir / f"tiermover-{backend}"
    data_dir.mkdir()
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{data_dir / 'tiermover.db'}"
    else:
        schema = create_schema("bench_dispatch")
        url = (f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{PG['dbname']}"
               f"?options=-csearch_path%3D{schema}")
    processes = Processes()
    bench = TiermoverBench(backend, url, data_dir, processes, args)
    try:
        return bench.run(node_counts)
    finally:
        bench.api.close()
        try:
            processes.stop_all()
        finally:
            if schema:
                drop_schema(schema)


# --- procrastinate -------------------------------------------------------------------------

def procrastinate_app(schema: str, pool_size: int, record_file: Path | None = None):
    import procrastinate

    # It warns that an app defined in __main__ cannot be found by its import path; the
    # worker here runs the app object itself and tasks are deferred by name.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=pg_conninfo(schema), min_size=1, max_size=pool_size))
    record = record_file.open("a", buffering=1) if record_file else None

    @app.task(name=PROCRASTINATE_TASK, pass_context=True)
    async def noop(context) -> None:
        # As tiny as a task gets: note when the body started, in a file of this worker
        # (no database write that would slow procrastinate down).
        if record is not None:
            record.write(f"{context.job.id} {time.time():.6f}\n")

    return app


def run_procrastinate_worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schema", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--name", required=True)
    args = parser.parse_args(argv)
    app = procrastinate_app(args.schema, pool_size=args.concurrency + 2, record_file=args.record)
    # Defaults otherwise: LISTEN/NOTIFY wake-ups with the 5 s polling fallback.
    app.run_worker(concurrency=args.concurrency, name=args.name, install_signal_handlers=True)


class BodyStarts:
    """Reads the (job id, time.time() in the task body) lines the workers append."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.started: dict[int, float] = {}

    def refresh(self) -> None:
        for path in self.directory.glob("*.starts"):
            with path.open("rb") as file:
                file.seek(self.offsets.get(path, 0))
                data = file.read()
            complete = data[:data.rfind(b"\n") + 1]
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            for line in complete.decode().splitlines():
                job_id, moment = line.split()
                self.started[int(job_id)] = float(moment)


class ProcrastinateBench:
    STAGE_NAMES = ("defer() call", "deferred -> fetched", "fetched -> body started",
                   "body -> succeeded")

    def __init__(self, workdir: Path, processes: Processes, args):
        self.workdir = workdir
        self.processes = processes
        self.args = args
        self.schema = ""
        self.workers: list[str] = []
        self.worker_processes: list[subprocess.Popen] = []
        self.starts = BodyStarts(workdir)
        self.app = None
        self.task = None
        self.monitor: psycopg.Connection | None = None

    def log(self, message: str) -> None:
        print(f"[procrastinate postgresql] {message}", flush=True)

    def set_up(self) -> None:
        self.schema = create_schema("bench_procrastinate")
        self.app = procrastinate_app(self.schema, pool_size=self.args.clients)
        self.app.open()
        self.app.schema_manager.apply_schema()
        self.task = self.app.tasks[PROCRASTINATE_TASK]
        self.monitor = psycopg.connect(pg_conninfo(self.schema), autocommit=True)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        if self.app is not None:
            self.app.close()

    def query(self, sql: str, *params):
        return self.monitor.execute(sql, params).fetchone()

    def add_workers(self, total: int) -> None:
        while len(self.workers) < total:
            name = f"bench-worker-{len(self.workers) + 1}"
            process = self.processes.start(
                [sys.executable, __file__, "--procrastinate-worker", "--schema", self.schema,
                 "--record", str(self.workdir / f"{name}.starts"),
                 "--concurrency", str(self.args.node_concurrency), "--name", name],
                self.workdir / f"{name}.log")
            self.workers.append(name)
            self.worker_processes.append(process)

        def all_registered() -> bool:
            self.processes.check_alive()
            return self.query("SELECT count(*) FROM procrastinate_workers")[0] >= total

        wait_until(all_registered, 60, f"{total} procrastinate workers to register", 0.2)
        time.sleep(0.5)  # a worker registers before it LISTENs; the warm-up covers the rest

    def run_one(self) -> tuple[float, float, tuple[float, ...]]:
        sent = time.time()
        job_id = self.task.defer()
        accepted = time.time()

        def ended():
            status = self.query("SELECT status FROM procrastinate_jobs WHERE id = %s", job_id)[0]
            return status if status not in ("todo", "doing") else None

        time.sleep(POLL_SECONDS)
        status = wait_until(ended, self.args.timeout, f"procrastinate job {job_id}", POLL_SECONDS)
        if status != "succeeded":
            raise RuntimeError(f"procrastinate job {job_id} ended as {status}")
        self.starts.refresh()
        body = self.starts.started[job_id]
        events = dict(self.monitor.execute(
            "SELECT type::text, extract(epoch FROM at)::float8 FROM procrastinate_events "
            "WHERE job_id = %s", (job_id,)).fetchall())
        return (body - accepted) * 1000, (body - sent) * 1000, ((accepted - sent) * 1000,
                                          (events["started"] - events["deferred"]) * 1000,
                                          (body - events["started"]) * 1000,
                                          (events["succeeded"] - body) * 1000)

    def measure_latency(self, samples: int) -> tuple[list[float], list[float], Stages]:
        return sample_latency(lambda index: self.run_one(), samples, self.STAGE_NAMES)

    def measure_throughput(self, count: int) -> tuple[int, float, float, int, dict[str, float]]:
        cpu_before = cpu_seconds(self.worker_processes)
        after_id = self.query("SELECT coalesce(max(id), 0) FROM procrastinate_jobs")[0]
        shares = [count // self.args.clients + (i < count % self.args.clients)
                  for i in range(self.args.clients)]
        first_enqueue = time.time()

        def enqueue(jobs: int) -> None:
            for _ in range(jobs):
                self.task.defer()  # one transaction per job, as one PUT .../run per run

        with ThreadPoolExecutor(self.args.clients) as pool:
            list(pool.map(enqueue, shares))
        enqueue_seconds = time.time() - first_enqueue

        def finished() -> bool:
            return self.query("SELECT count(*) FROM procrastinate_jobs WHERE id > %s "
                              "AND status NOT IN ('todo', 'doing')", after_id)[0] >= count

        wait_until(finished, self.args.timeout, f"{count} procrastinate jobs to finish", 0.25)
        succeeded, last = self.query(
            "SELECT count(*), extract(epoch FROM max(e.at))::float8 FROM procrastinate_events e "
            "WHERE e.job_id > %s AND e.type = 'succeeded'", after_id)
        cpu_ms = {"workers": (cpu_seconds(self.worker_processes) - cpu_before) * 1000
                  / max(succeeded, 1)}
        return succeeded, last - first_enqueue, enqueue_seconds, count - succeeded, cpu_ms

    def run(self, node_counts: list[int]) -> list[Measure]:
        self.set_up()
        measures = []
        for count in node_counts:
            self.add_workers(count)
            self.log(f"{count} worker(s): latency, {self.args.samples} jobs one at a time")
            latencies, from_request, stages = self.measure_latency(self.args.samples)
            self.log(f"{count} worker(s): throughput, {self.args.tasks} jobs")
            done, seconds, enqueue_seconds, failures, cpu_ms = self.measure_throughput(self.args.tasks)
            measures.append(Measure("procrastinate", "postgresql", count, latencies,
                                    from_request, stages, done, seconds, enqueue_seconds,
                                    failures, cpu_ms))
            self.log(f"{count} worker(s): p50 {measures[-1].p50:.1f} ms, "
                     f"{measures[-1].throughput:.1f} jobs/s")
        return measures


def run_procrastinate(node_counts: list[int], workdir: Path, args) -> list[Measure]:
    directory = workdir / "procrastinate"
    directory.mkdir()
    processes = Processes()
    bench = ProcrastinateBench(directory, processes, args)
    try:
        return bench.run(node_counts)
    finally:
        try:
            processes.stop_all()
            bench.close()
        finally:
            if bench.schema:
                drop_schema(bench.schema)


# --- the report ----------------------------------------------------------------------------

def report(measures: list[Measure], args) -> None:
    print(f"\nDispatch of tiny executions (copy of an empty folder; procrastinate: a no-op async "
          f"task)\n{args.samples} latency samples on idle nodes, {args.tasks} executions per "
          f"throughput run, {args.clients} enqueueing clients, concurrency "
          f"{args.node_concurrency} per node/worker process, {os.cpu_count()} CPUs\n")
    header = (f"{'system':<14} {'backend':<11} {'nodes':>5} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p50 req':>8} {'exec/s':>8} {'enqueue/s':>10} {'failed':>6}  "
              f"p50 <= {LATENCY_P50_TARGET_MS:.0f} ms")
    print(header)
    print("-" * len(header))
    for m in measures:
        verdict = "ok" if m.p50 <= LATENCY_P50_TARGET_MS else "MISSED"
        if m.system != "tiermover":
            verdict = ""
        enqueue_rate = (m.executions + m.failures) / m.enqueue_seconds if m.enqueue_seconds else 0
        print(f"{m.system:<14} {m.backend:<11} {m.nodes:>5} {m.p50:>8.1f} {m.p95:>8.1f} "
              f"{m.p50_from_request:>8.1f} {m.throughput:>8.1f} {enqueue_rate:>10.1f} "
              f"{m.failures:>6}  {verdict}")
    print("\np50/p95: tiermover from the 202 of PUT .../action/run to job_started (claimed by a "
          "node);\n         procrastinate from defer() returning to time.time() in the task body."
          "\np50 req: the same, from the moment the PUT (the defer) was sent."
          "\nexec/s: first enqueue to the last execution finished (job_finished / 'succeeded' "
          "event).")

    baseline = {m.nodes: m for m in measures if m.system == "procrastinate"}
    compared = [m for m in measures if m.system == "tiermover" and m.nodes in baseline]
    if compared:
        print("\nratios tiermover / procrastinate (same node count):")
        for m in compared:
            base = baseline[m.nodes]
            print(f"  {m.backend:<11} {m.nodes} node(s): throughput x{m.throughput / base.throughput:.2f}"
                  f", latency p50 x{m.p50 / base.p50:.1f}, p95 x{m.p95 / base.p95:.1f}")

    print("\ntargets:")
    for m in measures:
        if m.system == "tiermover":
            verdict = "ok" if m.p50 <= LATENCY_P50_TARGET_MS else "MISSED"
            print(f"  p50 <= {LATENCY_P50_TARGET_MS:.0f} ms, {m.backend} {m.nodes} node(s): "
                  f"{m.p50:.1f} ms: {verdict}")
    for m in compared:
        if m.backend == "postgresql":
            base = baseline[m.nodes]
            verdict = "ok" if m.throughput >= base.throughput else "MISSED"
            print(f"  throughput on PostgreSQL >= procrastinate's, {m.nodes} node(s): "
                  f"{m.throughput:.1f} vs {base.throughput:.1f}/s: {verdict}")

    print("\nCPU per execution during the throughput run (ms; the server's share includes "
          "serving the enqueue\nrequests and the nodes' heartbeats; the database's own CPU is "
          "not counted):")
    for m in measures:
        shares = ", ".join(f"{role} {value:.1f}" for role, value in m.cpu_ms.items())
        print(f"  {m.system:<14} {m.backend:<11} {m.nodes} node(s): {shares}")

    print("\nwhere a latency sample goes (medians, ms):")
    for m in measures:
        steps = ", ".join(f"{name} {value:.1f}"
                          for name, value in zip(m.stages.names, m.stages.medians()))
        print(f"  {m.system:<14} {m.backend:<11} {m.nodes} node(s): {steps}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--procrastinate-worker":
        run_procrastinate_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=400,
                        help="tasks, hence executions per throughput run")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--nodes", default="1,4", help="node counts, ascending")
    parser.add_argument("--samples", type=int, default=100, help="latency samples per node count")
    parser.add_argument("--clients", type=int, default=4, help="concurrent enqueueing clients")
    parser.add_argument("--node-concurrency", type=int, default=1,
                        help="executions at once per node (and per procrastinate worker)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds any single wait may take before the run fails")
    parser.add_argument("--no-procrastinate", action="store_true",
                        help="skip the procrastinate comparison")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the work directory (server, node and worker logs)")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    node_counts = sorted({int(n) for n in args.nodes.split(",") if n.strip()})

    # A SIGTERM must still run the finally blocks that stop processes and drop schemas.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="tiermover-dispatch-"))
    measures: list[Measure] = []
    keep = args.keep_logs
    try:
        for backend in backends:
            measures += run_tiermover(backend, node_counts, workdir, args)
        if "postgresql" in backends and not args.no_procrastinate:
            measures += run_procrastinate(node_counts, workdir, args)
        report(measures, args)
    except BaseException:
        keep = True  # the logs say why
        raise
    finally:
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
