"""The node protocol spoken by hand: a final report that also claims the next execution."""

from __future__ import annotations

import httpx
import pytest

from conftest import BACKENDS, _drop_database, _new_database, start_server, stop_server
from engine_support import act, copy_task, create_container, latest_execution, logs, node_key


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    db = _new_database(request.param, tmp_path)
    yield db
    _drop_database(db)


@pytest.fixture
def server(database, tmp_path):
    running = start_server(database, tmp_path / "data", args=("--no-worker",))
    yield running
    stop_server(running)


def _final(node: httpx.Client, node_id: int, execution_id: str, **params) -> httpx.Response:
    return node.post(f"/nodes/{node_id}/executions/{execution_id}/report", params=params,
                     json={"final": {"status": "done", "message": None}})


def test_a_final_report_can_claim_the_next_execution(server):
    api = server.client()
    source, source_root = create_container(api, server)
    destination, _ = create_container(api, server)
    (source_root / "empty").mkdir()
    node = server.client(headers={"Authorization": f"Bearer {node_key(api)}"})
    registered = node.post("/nodes", json={"name": "by-hand", "storages": [
        s["key"] for s in node.get("/nodes/-/storages").json()["storages"]]})
    assert registered.status_code == 201, registered.text
    node_id = registered.json()["id"]
    tasks = [copy_task(api, f"/{source}/empty", f"/{destination}/out-{i}") for i in range(2)]
    for task in tasks:
        act(api, task["id"], "run")

    first = node.post(f"/nodes/{node_id}/claim", params={"wait": 0})
    assert first.status_code == 200, first.text
    first = first.json()
    assert first["task_id"] == tasks[0]["id"] and first["finished_keys"] == []

    answer = _final(node, node_id, first["id"], claim_next="true")
    assert answer.status_code == 200, answer.text
    second = answer.json()["next"]
    assert answer.json()["command"] is None
    assert second["task_id"] == tasks[1]["id"] and second["attempt"] == 1
    assert latest_execution(api, tasks[0]["id"])["status"] == "done"
    second_execution = latest_execution(api, tasks[1]["id"])
    assert second_execution["status"] == "calculating"
    assert [e["msg"] for e in logs(api, second_execution["id"])][-1] == \
        "claimed by node by-hand (attempt 1)"

    # The queue is empty: the answer says so and the node goes back to claiming.
    answer = _final(node, node_id, second["id"], claim_next="true")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"command": None, "next": None}
    assert latest_execution(api, tasks[1]["id"])["status"] == "done"
    assert node.post(f"/nodes/{node_id}/claim", params={"wait": 0}).status_code == 204

    # Without claim_next a final report answers as before and claims nothing.
    act(api, tasks[0]["id"], "run")
    third = node.post(f"/nodes/{node_id}/claim", params={"wait": 0}).json()
    act(api, tasks[1]["id"], "run")
    answer = _final(node, node_id, third["id"])
    assert answer.json() == {"command": None}
    assert latest_execution(api, tasks[1]["id"])["status"] == "in_queue"
    node.close()
    api.close()
