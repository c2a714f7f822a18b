"""Benchmark of the tasks API on a large catalog of tasks, on SQLite and PostgreSQL.

    .venv/bin/python bench/api.py [--tasks N] [--backends sqlite,postgresql]

For each backend: bulk-load N tasks (one source and one destination each), start the
real server (`python -m tiermover serve`: one process, its embedded worker node off),
authenticate with an API key made through the API, and measure latency (p50/p95/p99,
one client, sequential requests) of a filtered list, a deep page, show by id, show by
name and create; then the throughput of show by id with concurrent clients. The
ceiling is a bare FastAPI endpoint in its own process returning the same task JSON from
memory. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import insert, select, text

from tiermover.db.models import Pool, Task, TaskDestination, TaskSource, User
from tiermover.db.session import make_engine
from tiermover.service.auth import hash_password

PG = dict(host="127.0.0.1", port=5432, dbname="test", user="postgres")
ADMIN_PASSWORD = "bench-" + uuid.uuid4().hex[:12]
P95_TARGET_MS = 50.0
THROUGHPUT_TARGET = 1000.0
BATCH = 50_000
DEEP_OFFSET = 500_000
FILTERED_LIST = {"status": "><done|error|in_queue", "name": "~backup-1%",
                 "sort_by": "creation_date:desc", "limit": "50"}

# Owners and their share of the tasks: a service account that owns most, a few people.
OWNERS = (("admin", 0.70), ("ops", 0.15), ("alice", 0.08), ("bob", 0.05), ("carol", 0.02))
# (name prefix, weight, workflow_type, actions, source_type, destination_type, destination pool)
WORKFLOWS = (
    ("backup", 30, "offline_archive", ("full_backup", "incremental_backup"), "primary_nas",
     "secondary_tape", "tape-offline"),
    ("archive", 25, "active_archive", ("copy", "move"), "container", "secondary_nas",
     "nas-active"),
    ("migrate", 15, "data_migration", ("copy", "move"), "primary_nas", "primary_nas", None),
    ("import", 10, "data_exchange", ("copy",), "secondary_tape", "primary_nas", None),
    ("tape-check", 10, "maintenance", ("scan", "check_consistency", "format"), "secondary_tape",
     None, None),
    ("cloud-archive", 10, "offline_archive", ("copy", "move"), "primary_cloud",
     "secondary_cloud", "cloud-archive"),
)
STATUSES = (("done", 50), (None, 17), ("finished_with_warnings", 8), ("error", 7), ("in_queue", 5),
            ("not_activated", 5), ("in_progress", 3), ("stopped_by_user", 2), ("paused", 1),
            ("stopped_by_system", 1), ("calculating", 1))
HOSTS = [f"{kind}{i:02d}" for kind in ("srv-db", "nas", "vm", "lab", "render") for i in range(1, 21)]
TASK_COLUMNS = (
    "id", "user_id", "name", "comment", "workflow_type", "workflow_action", "source_type",
    "destination_type", "priority", "conflict_resolution", "action", "activate", "creation_date",
    "modification_date", "creation_username", "modification_username", "status", "progress",
    "job_started", "job_finished", "processed_size", "to_process_size", "delete",
    "local_server_path", "version",
)


# --- the data ------------------------------------------------------------------------------

@dataclass
class Generated:
    admin_ids: list[int] = field(default_factory=list)
    admin_names: Counter = field(default_factory=Counter)


def generate(n: int, user_ids: dict[str, int], pool_ids: dict[str, int], seed: int, out: Generated):
    """Batches of (task rows, source rows, destination rows), ids 1..n in creation order."""
    rng = random.Random(seed)
    owners = [name for name, _ in OWNERS]
    owner_weights = [share for _, share in OWNERS]
    workflows = [w for w in WORKFLOWS]
    workflow_weights = [w[1] for w in WORKFLOWS]
    statuses = [s for s, _ in STATUSES]
    status_weights = [w for _, w in STATUSES]
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    step = (datetime(2026, 1, 1, tzinfo=timezone.utc) - start) / max(n, 1)
    tasks, sources, destinations = [], [], []
    for task_id in range(1, n + 1):
        owner = rng.choices(owners, owner_weights)[0]
        kind, _, wtype, actions, src_type, dst_type, pool = rng.choices(workflows, workflow_weights)[0]
        host = rng.choice(HOSTS)
        name = f"{kind}-{rng.randint(1, 99999)}-{host}"
        status = rng.choices(statuses, status_weights)[0]
        created = start + step * task_id + timedelta(seconds=rng.randint(0, 59))
        ran = status not in (None, "not_activated", "in_queue")
        started = created + timedelta(hours=rng.randint(1, 2000)) if ran else None
        finished = (started + timedelta(minutes=rng.randint(1, 600))
                    if ran and status != "in_progress" else None)
        size = rng.randint(1, 2**40)
        tasks.append((
            task_id, user_ids[owner], name, rng.choice((None, None, f"{kind} of {host}")), wtype,
            rng.choice(actions), src_type, dst_type,
            rng.choices(range(1, 11), (1, 2, 4, 8, 20, 8, 4, 2, 1, 1))[0],
            rng.choice(("rename", "rename", "overwrite", "ignore")), "noop", status != "not_activated",
            created, finished or created, owner, owner, status, 100 if finished else 0, started,
            finished, size if finished else 0, size if ran else 0, 0, None, 1,
        ))
        sources.append((task_id, task_id, f"/{host}/projects/{kind}/{rng.randint(1, 500)}"))
        destinations.append((task_id, task_id, pool_ids[pool] if pool else None,
                             None if pool else f"/{rng.choice(HOSTS)}/restore/{task_id}"))
        if owner == "admin":
            out.admin_ids.append(task_id)
            out.admin_names[name] += 1
        if len(tasks) == BATCH or task_id == n:
            yield tasks, sources, destinations
            tasks, sources, destinations = [], [], []


def prepare_owners(engine) -> tuple[dict[str, int], dict[str, int]]:
    """The users (the administrator exists already) and the destination pools."""
    password_hash = hash_password("bench-user")
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(insert(User), [
            dict(username=name, email=f"{name}@example.org", password_hash=password_hash,
                 is_admin=False, created_at=now, updated_at=now)
            for name, _ in OWNERS if name != "admin"])
        conn.execute(insert(Pool), [
            dict(name="tape-offline", type="offline_archive", content="tape"),
            dict(name="nas-active", type="active_archive", content="nas"),
            dict(name="cloud-archive", type="offline_archive", content="cloud")])
        users = dict(conn.execute(select(User.username, User.id)).all())
        pools = dict(conn.execute(select(Pool.name, Pool.id)).all())
    return users, pools


def load_sqlite(engine, batches) -> None:
    """SQLAlchemy Core executemany, one transaction."""
    with engine.begin() as conn:
        for tasks, sources, destinations in batches:
            conn.execute(insert(Task), [dict(zip(TASK_COLUMNS, row)) for row in tasks])
            conn.execute(insert(TaskSource), [dict(id=i, task_id=t, file_path=p) for i, t, p in sources])
            conn.execute(insert(TaskDestination), [dict(id=i, task_id=t, pool_id=p, folder_path=f)
                                                   for i, t, p, f in destinations])
        conn.execute(text("ANALYZE"))


def scalar_defaults(model, given: tuple[str, ...]) -> dict:
    """The model's Python-side defaults for the columns a COPY does not give (the ORM and
    Core apply them on insert; COPY does not), so that new columns need no bench change."""
    defaults = {}
    for column in model.__table__.columns:
        if column.name in given:
            continue
        if column.default is not None and column.default.is_scalar:
            defaults[column.name] = column.default.arg
        elif not column.nullable and column.server_default is None:
            raise RuntimeError(f"{model.__tablename__}.{column.name} needs a value in the bench data")
    return defaults


def copy_rows(cur, model, columns: tuple[str, ...], rows) -> None:
    extra = scalar_defaults(model, columns)
    names = ", ".join((*columns, *extra))
    with cur.copy(f"COPY {model.__tablename__} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((*row, *extra.values()))


def load_postgresql(engine, batches) -> None:
    """COPY, then the id sequences past the loaded ids and fresh planner statistics."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            for tasks, sources, destinations in batches:
                copy_rows(cur, Task, TASK_COLUMNS, tasks)
                copy_rows(cur, TaskSource, ("id", "task_id", "file_path"), sources)
                copy_rows(cur, TaskDestination, ("id", "task_id", "pool_id", "folder_path"),
                          destinations)
            for table in ("tasks", "task_sources", "task_destinations"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        raw.commit()
        raw.driver_connection.autocommit = True
        with raw.cursor() as cur:
            cur.execute("VACUUM ANALYZE")  # what autovacuum would soon do; sets the visibility map
    finally:
        raw.close()


# --- servers -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """Server and load generator on separate cores, when the machine lets us choose."""
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") and os.cpu_count() >= 2 else argv


def wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not start; see {log}")


def start_process(argv: list[str], health_url: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, TIERMOVER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    process = subprocess.Popen(pinned(0, argv), stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_healthy(health_url, process, log)
    except Exception:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def serve_ceiling(port: int, body_file: str) -> None:
    """The ceiling: the same framework and server, the task JSON from memory, nothing else."""
    import uvicorn
    from fastapi import FastAPI

    body = json.loads(Path(body_file).read_text())
    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/api/v2/tasks/{task_id}")
    def show_task(task_id: str):  # a sync handler, like tiermover's
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- measuring -----------------------------------------------------------------------------

@dataclass
class Latency:
    p50: float
    p95: float
    p99: float
    errors: int


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def measure_latency(port: int, headers: dict, requests, samples: int) -> Latency:
    """One keep-alive connection, one request at a time: what a single client sees."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    timings, errors = [], 0
    for i in range(samples + 5):
        method, path, body = requests(i)
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if i >= 5:  # the first few warm caches and connections up
            timings.append(elapsed)
            errors += response.status >= 300
    conn.close()
    timings.sort()
    return Latency(percentile(timings, 50), percentile(timings, 95), percentile(timings, 99), errors)


def wrk_throughput(port: int, headers: dict, paths: list[str], connections: int,
                   seconds: int) -> tuple[float, int]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lua_paths = ",".join(json.dumps(p) for p in paths)
    lua_headers = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script.write_text(f"""
{lua_headers}
local paths = {{{lua_paths}}}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("NON2XX %d\\n", summary.errors.status))
end
""")
    try:
        out = subprocess.run(pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                                        f"http://127.0.0.1:{port}"]),
                             capture_output=True, text=True, check=True).stdout
    finally:
        script.unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = int(re.search(r"NON2XX (\d+)", out).group(1))
    return rate, errors


async def _asyncio_throughput(port: int, headers: dict, paths: list[str], connections: int,
                              seconds: int) -> tuple[float, int]:
    header_text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    deadline = time.monotonic() + seconds
    done, errors = 0, 0

    async def client(offset: int):
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.monotonic() < deadline:
            i += 1
            writer.write(f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: bench\r\n{header_text}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            await reader.readexactly(length)
            done += 1
            errors += not head.startswith(b"HTTP/1.1 2")
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(client(c * 997) for c in range(connections)))
    return done / (time.monotonic() - started), errors


def throughput(port: int, headers: dict, paths: list[str], connections: int,
               seconds: int) -> tuple[float, int]:
    """Requests/s of GETs over `paths` with concurrent keep-alive connections: wrk when
    installed (C, so it never competes with the server for long), else an asyncio client."""
    if shutil.which("wrk"):
        wrk_throughput(port, headers, paths, connections, 2)  # warm-up
        return wrk_throughput(port, headers, paths, connections, seconds)
    return asyncio.run(_asyncio_throughput(port, headers, paths, connections, seconds))


# --- one backend ---------------------------------------------------------------------------

@dataclass
class Result:
    backend: str
    load_seconds: float
    latencies: dict[str, Latency]
    rate: float
    rate_errors: int
    deep_offset: int
    task_json: dict


def new_postgresql_schema() -> tuple[str, str]:
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = (f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{PG['dbname']}"
           f"?options=-csearch_path%3D{schema}")
    return schema, url


def drop_postgresql_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_backend(backend: str, args, workdir: Path) -> Result:
    data_dir = workdir / backend
    data_dir.mkdir()
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{data_dir / 'tiermover.db'}"
    else:
        schema, url = new_postgresql_schema()
    try:
        return _run_backend(backend, url, data_dir, args)
    finally:
        if schema:
            drop_postgresql_schema(schema)


def _run_backend(backend: str, url: str, data_dir: Path, args) -> Result:
    python = sys.executable
    env = dict(os.environ, TIERMOVER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    subprocess.run([python, "-m", "tiermover", "migrate", "--data-dir", str(data_dir), "--database-url", url],
                   check=True, env=env, capture_output=True)
    engine = make_engine(url)
    generated = Generated()
    print(f"[{backend}] loading {args.tasks:,} tasks ...", flush=True)
    started = time.monotonic()
    users, pools = prepare_owners(engine)
    batches = generate(args.tasks, users, pools, args.seed, generated)
    (load_sqlite if backend == "sqlite" else load_postgresql)(engine, batches)
    load_seconds = time.monotonic() - started
    engine.dispose()
    print(f"[{backend}] loaded in {load_seconds:.0f} s; starting the server", flush=True)

    port = free_port()
    log = data_dir / "server.log"
    server = start_process([python, "-m", "tiermover", "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--data-dir", str(data_dir), "--database-url", url, "--log-level", "warning",
                            "--no-worker"],  # the API alone: no embedded node polling for work
                           f"http://127.0.0.1:{port}/healthz", log)
    try:
        key = httpx.post(f"http://127.0.0.1:{port}/api/v2/users/me/api_keys", auth=("admin", ADMIN_PASSWORD),
                         json={"name": "bench", "api_key_scopes": [
                             {"controller": "tasks", "action": a} for a in ("index", "show", "create")]})
        key.raise_for_status()
        headers = {"Authorization": f"Bearer {key.json()['key']}", "Content-Type": "application/json"}
        return measure(backend, port, headers, generated, load_seconds, args)
    except Exception:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print(f"[{backend}] the measure failed; end of the server log:", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        stop(server)


def measure(backend: str, port: int, headers: dict, generated: Generated, load_seconds: float,
            args) -> Result:
    rng = random.Random(args.seed + 1)
    ids = generated.admin_ids
    unique_names = [name for name, count in generated.admin_names.items() if count == 1]
    deep_offset = min(DEEP_OFFSET, max(0, len(ids) - 50))
    base = "/api/v2/tasks"
    filtered = base + "?" + urllib.parse.urlencode(FILTERED_LIST)
    deep = f"{base}?limit=50&offset={deep_offset}"
    run_tag = uuid.uuid4().hex[:6]
    operations = {
        "filtered list": (lambda i: ("GET", filtered, None), args.samples),
        f"deep page (offset {deep_offset:,})": (lambda i: ("GET", deep, None), max(50, args.samples // 4)),
        "show by id": (lambda i: ("GET", f"{base}/{rng.choice(ids)}", None), args.samples * 3),
        "show by name": (lambda i: ("GET", f"{base}/{urllib.parse.quote(rng.choice(unique_names))}", None),
                         args.samples * 3),
        "create": (lambda i: ("POST", base, json.dumps({
            "name": f"bench-{run_tag}-{i}", "workflow_type": "active_archive", "workflow_action": "copy",
            "source_type": "container", "destination_type": "secondary_nas"})), args.samples),
    }
    latencies = {}
    for label, (requests, samples) in operations.items():
        print(f"[{backend}] {label}: {samples} requests", flush=True)
        latencies[label] = measure_latency(port, headers, requests, samples)
    sample_paths = [f"{base}/{rng.choice(ids)}" for _ in range(1000)]
    print(f"[{backend}] show by id, {args.connections} connections, {args.seconds} s", flush=True)
    rate, rate_errors = throughput(port, headers, sample_paths, args.connections, args.seconds)
    task_json = httpx.get(f"http://127.0.0.1:{port}{sample_paths[0]}", headers=headers).json()
    return Result(backend, load_seconds, latencies, rate, rate_errors, deep_offset, task_json)


def measure_ceiling(task_json: dict, args, workdir: Path) -> tuple[Latency, float]:
    body_file = workdir / "task.json"
    body_file.write_text(json.dumps(task_json))
    port = free_port()
    process = start_process([sys.executable, __file__, "--serve-ceiling", str(port), str(body_file)],
                            f"http://127.0.0.1:{port}/healthz", workdir / "ceiling.log")
    try:
        path = f"/api/v2/tasks/{task_json['id']}"
        latency = measure_latency(port, {}, lambda i: ("GET", path, None), args.samples * 3)
        rate, _ = throughput(port, {}, [path], args.connections, args.seconds)
        return latency, rate
    finally:
        stop(process)


# --- the report ----------------------------------------------------------------------------

def report(results: list[Result], ceiling: tuple[Latency, float] | None, args) -> None:
    line = f"{'backend':<11} {'operation':<28} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}  target"
    print(f"\ntiermover tasks API, {args.tasks:,} tasks, one server process, API-key auth\n")
    print(line)
    print("-" * len(line))
    for result in results:
        for label, lat in result.latencies.items():
            verdict = "ok" if lat.p95 <= P95_TARGET_MS and not lat.errors else "MISSED"
            print(f"{result.backend:<11} {label:<28} {lat.p50:>8.1f} {lat.p95:>8.1f} {lat.p99:>8.1f} "
                  f"{lat.errors:>6}  p95 <= {P95_TARGET_MS:.0f} ms: {verdict}")
    if ceiling:
        lat, _ = ceiling
        print(f"{'ceiling':<11} {'show (bare FastAPI)':<28} {lat.p50:>8.1f} {lat.p95:>8.1f} {lat.p99:>8.1f} "
              f"{lat.errors:>6}")
    generator = "wrk" if shutil.which("wrk") else "asyncio client"
    print(f"\nshow by id throughput, {args.connections} connections for {args.seconds} s ({generator}):")
    for result in results:
        verdict = "ok" if result.rate >= THROUGHPUT_TARGET and not result.rate_errors else "MISSED"
        ratio = f", {result.rate / ceiling[1]:.0%} of the ceiling" if ceiling else ""
        print(f"  {result.backend:<11} {result.rate:>8.0f} req/s{ratio} (errors {result.rate_errors}); "
              f">= {THROUGHPUT_TARGET:.0f} req/s: {verdict}")
    if ceiling:
        print(f"  {'ceiling':<11} {ceiling[1]:>8.0f} req/s (bare FastAPI, same task JSON from memory)")
    for result in results:
        print(f"\n[{result.backend}] bulk load: {result.load_seconds:.0f} s")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-ceiling":
        serve_ceiling(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200, help="requests per latency measure (x3 for shows)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients for the throughput")
    parser.add_argument("--seconds", type=int, default=10, help="duration of the throughput run")
    parser.add_argument("--seed", type=int, default=20240301)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="tiermover-bench-"))
    try:
        results = [run_backend(backend, args, workdir) for backend in backends]
        ceiling = measure_ceiling(results[0].task_json, args, workdir) if results else None
        report(results, ceiling, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
