"""Faults a storage admin meets: a node or the server killed mid-run, many nodes racing."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BACKENDS, _drop_database, _new_database, start_server, stop_server, unique
from engine_support import (
    NodeProcess, act, copy_task, create_container, latest_execution, logs, make_tree, node_key,
    partial_files, tree_digest, wait_task,
)


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    db = _new_database(request.param, tmp_path)
    yield db
    _drop_database(db)


@pytest.fixture
def cleanup():
    actions = []
    yield actions.append
    for action in reversed(actions):
        action()


def _wait_processed(api, task_id, at_least, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = latest_execution(api, task_id)
        if execution["processed_files"] >= at_least:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} files processed after {timeout}s")


def test_killed_node_execution_resumes_on_another_node(database, tmp_path, cleanup):
    server = start_server(database, tmp_path / "data", args=("--no-worker",),
                          extra_env={"TIERMOVER_LEASE_SECONDS": "3"})
    cleanup(lambda: stop_server(server))
    api = server.client()
    cleanup(api.close)
    source, source_root = create_container(api, server)
    destination, destination_root = create_container(api, server)
    make_tree(source_root / "tree", files=2000, size=4096, folders=20)
    first = NodeProcess(server, node_key(api), "first", "--bwlimit", "2M")
    cleanup(first.stop)
    first.wait_registered(api)
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    _wait_processed(api, task["id"], 400)
    first.kill()  # kill -9 in the middle of the copy
    second = NodeProcess(server, node_key(api), "second")
    cleanup(second.stop)
    second.wait_registered(api)

    finished = wait_task(api, task["id"], timeout=120)
    assert finished["status"] == "done"
    assert tree_digest(destination_root / "out" / "tree") == tree_digest(source_root / "tree")
    assert not partial_files(destination_root)
    execution = latest_execution(api, task["id"])
    messages = [entry["msg"] for entry in logs(api, execution["id"])]
    assert any("claimed by node first" in m for m in messages)
    assert any("stopped answering" in m for m in messages)
    assert any("claimed by node second" in m for m in messages)
    resumed = [m for m in messages if m.startswith("resuming:")]
    assert resumed and int(resumed[0].split()[1]) >= 400  # the second node kept the first's work
    assert execution["processed_files"] == execution["to_process_files"] == 2000 + 21


def test_killed_server_loses_no_execution_and_the_node_carries_on(database, tmp_path, cleanup):
    data_dir = tmp_path / "data"
    server = start_server(database, data_dir, args=("--no-worker",))
    port = int(server.url.rsplit(":", 1)[1])
    restarted = []
    cleanup(lambda: [stop_server(s) for s in [server, *restarted]])
    api = server.client()
    source, source_root = create_container(api, server)
    destination, destination_root = create_container(api, server)
    make_tree(source_root / "tree", files=40, size=100_000)
    node = NodeProcess(server, node_key(api), unique("node"), "--bwlimit", "1M")
    cleanup(node.stop)
    node.wait_registered(api)
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out")
    act(api, task["id"], "run")
    _wait_processed(api, task["id"], 5)
    api.close()
    os.kill(server.process.pid, signal.SIGKILL)  # kill -9 the server mid-run
    server.process.wait(10)
    time.sleep(2.0)  # the node keeps copying and buffering its reports meanwhile
    restarted.append(start_server(database, data_dir, args=("--no-worker",), port=port))
    with restarted[0].client() as api:
        finished = wait_task(api, task["id"], timeout=60)
        assert finished["status"] == "done"
        executions = api.get(f"/tasks/{task['id']}/task_executions").json()
        assert executions["count"] == 1
        assert executions["task_executions"][0]["processed_files"] == 40 + 4 + 1  # files, folders, root
    assert tree_digest(destination_root / "out" / "tree") == tree_digest(source_root / "tree")
    assert not partial_files(destination_root)
    assert node.process.poll() is None  # the node survived the server's death


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL is not reachable")
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_four_nodes_claim_each_of_500_executions_exactly_once(database, tmp_path, cleanup):
    server = start_server(database, tmp_path / "data", args=("--no-worker",))
    cleanup(lambda: stop_server(server))
    api = server.client()
    cleanup(api.close)
    source, source_root = create_container(api, server)
    destination, _ = create_container(api, server)
    (source_root / "empty").mkdir()
    with ThreadPoolExecutor(8) as pool:
        tasks = list(pool.map(lambda i: copy_task(api, f"/{source}/empty", f"/{destination}/o{i}",
                                                  conflict_resolution="overwrite"), range(500)))
        list(pool.map(lambda task: act(api, task["id"], "run"), tasks))
    nodes = [NodeProcess(server, node_key(api), f"racer-{i}", "--concurrency", "2") for i in range(4)]
    for node in nodes:
        cleanup(node.stop)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        page = api.get("/task_executions", params={"status": "done", "limit": 1}).json()
        if page["count"] == 500:
            break
        time.sleep(0.5)
    executions = api.get("/task_executions", params={"limit": 1000}).json()["task_executions"]
    assert len(executions) == 500 and {e["status"] for e in executions} == {"done"}
    claimed_by = {}
    for execution in executions:
        claims = [e["msg"] for e in logs(api, execution["id"]) if e["msg"].startswith("claimed by")]
        assert len(claims) == 1, (execution["id"], claims)
        claimed_by[execution["id"]] = claims[0].split()[3]
    assert len(set(claimed_by.values())) == 4  # every node took part


def test_a_killed_idle_node_is_not_handed_work(database, tmp_path, cleanup):
    server = start_server(database, tmp_path / "data", args=("--no-worker",))  # 30 s leases
    cleanup(lambda: stop_server(server))
    api = server.client()
    cleanup(api.close)
    source, source_root = create_container(api, server)
    destination, _ = create_container(api, server)
    (source_root / "empty").mkdir()
    idle = NodeProcess(server, node_key(api), "idle")
    cleanup(idle.stop)
    idle.wait_registered(api)
    time.sleep(0.5)  # its slots are now waiting in a claim long-poll
    idle.kill()
    time.sleep(1.0)
    task = copy_task(api, f"/{source}/empty", f"/{destination}/out")
    act(api, task["id"], "run")
    time.sleep(1.0)
    fresh = NodeProcess(server, node_key(api), "fresh")
    cleanup(fresh.stop)
    assert wait_task(api, task["id"], timeout=15)["status"] == "done"  # well before a lease
    claims = [e["msg"] for e in logs(api, latest_execution(api, task["id"])["id"])
              if e["msg"].startswith("claimed by")]
    assert claims == ["claimed by node fresh (attempt 1)"]
