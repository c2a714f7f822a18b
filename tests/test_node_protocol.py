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


def _register(node: httpx.Client, name: str) -> int:
    """A node by hand, reaching every storage that exists now."""
    registered = node.post("/nodes", json={"name": name, "storages": [
        s["key"] for s in node.get("/nodes/-/storages").json()["storages"]]})
    assert registered.status_code == 201, registered.text
    return registered.json()["id"]


def _tiny_tasks(api, server, count: int, **fields) -> list[dict]:
    source, source_root = create_container(api, server)
    destination, _ = create_container(api, server)
    (source_root / "empty").mkdir()
    return [copy_task(api, f"/{source}/empty", f"/{destination}/out-{i}", **fields)
            for i in range(count)]


def test_a_node_claims_its_free_slots_at_once_in_queue_order(server):
    api = server.client()
    tasks = _tiny_tasks(api, server, 4)
    node = server.client(headers={"Authorization": f"Bearer {node_key(api)}"})
    node_id = _register(node, "four-slots")
    for task, priority in zip(tasks, (5, 9, 5, 1)):
        assert api.put(f"/tasks/{task['id']}", json={"priority": priority}).status_code == 200
        act(api, task["id"], "run")

    first = node.post(f"/nodes/{node_id}/claim", params={"wait": 0, "max": 3})
    assert first.status_code == 200, first.text
    # Highest priority first, then first come first served.
    assert [spec["task_id"] for spec in first.json()["executions"]] == \
        [tasks[1]["id"], tasks[0]["id"], tasks[2]["id"]]
    rest = node.post(f"/nodes/{node_id}/claim", params={"wait": 0, "max": 3}).json()
    assert [spec["task_id"] for spec in rest["executions"]] == [tasks[3]["id"]]
    assert node.post(f"/nodes/{node_id}/claim", params={"wait": 0, "max": 3}).status_code == 204
    for task in tasks:
        claims = [e["msg"] for e in logs(api, latest_execution(api, task["id"])["id"])
                  if e["msg"].startswith("claimed by")]
        assert claims == ["claimed by node four-slots (attempt 1)"]
    assert node.post(f"/nodes/{node_id}/claim", params={"wait": 0, "max": 0}).status_code == 422
    node.close()
    api.close()


def test_reports_of_several_executions_in_one_request_also_claim(server):
    api = server.client()
    tasks = _tiny_tasks(api, server, 4)
    node = server.client(headers={"Authorization": f"Bearer {node_key(api)}"})
    node_id = _register(node, "batcher")
    other_id = _register(node, "other")
    for task in tasks:
        act(api, task["id"], "run")
    claimed = node.post(f"/nodes/{node_id}/claim", params={"wait": 0, "max": 2}).json()
    first, second = claimed["executions"]
    item = {"key": "0:note", "outcome": "skipped", "size": 0, "message": "kept as it was",
            "warning": True}

    # Progress without a final: a retried batch does not record its items twice.
    progress = {"reports": [{"execution_id": first["id"], "phase": "in_progress",
                             "counters": {"to_process_files": 1}, "items": [item]}]}
    for _ in range(2):
        answer = node.post(f"/nodes/{node_id}/reports", json=progress)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"results": {first["id"]: {"command": None}}, "executions": []}
    assert [e["msg"] for e in logs(api, first["id"])].count("kept as it was") == 1

    # Both finals together, claiming the two executions still queued; a report for an
    # execution this node does not hold is answered as lost, and changes nothing.
    stranger = node.post(f"/nodes/{other_id}/reports", json={"reports": [
        {"execution_id": second["id"], "final": {"status": "error", "message": "not mine"}}]})
    assert stranger.json()["results"][second["id"]]["lost"]
    answer = node.post(f"/nodes/{node_id}/reports", json={"claim": 2, "reports": [
        {"execution_id": first["id"], "final": {"status": "finished_with_warnings"}},
        {"execution_id": second["id"], "phase": "in_progress",
         "final": {"status": "done", "message": None}}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["results"] == {first["id"]: {"command": None}, second["id"]: {"command": None}}
    assert sorted(spec["task_id"] for spec in body["executions"]) == \
        sorted([tasks[2]["id"], tasks[3]["id"]])
    assert latest_execution(api, tasks[0]["id"])["status"] == "finished_with_warnings"
    assert latest_execution(api, tasks[1]["id"])["status"] == "done"
    assert [e["msg"] for e in logs(api, second["id"])][-1] == "finished: done"

    # A final status a node may not report is refused whole, before anything is applied.
    third = body["executions"][0]
    refused = node.post(f"/nodes/{node_id}/reports", json={"reports": [
        {"execution_id": third["id"], "final": {"status": "exploded"}}]})
    assert refused.status_code == 422, refused.text
    assert "messages" in refused.json()
    # So is a body that is not JSON, or whose fields have the wrong types: the API's
    # error body, naming what is wrong.
    broken = node.post(f"/nodes/{node_id}/reports", content=b'{"reports": [')
    assert broken.status_code == 422, broken.text
    assert list(broken.json()["details"]) == ["body"]
    wrong = node.post(f"/nodes/{node_id}/executions/{third['id']}/report",
                      json={"counters": {"processed_files": "many"}, "items": "none"})
    assert wrong.status_code == 422, wrong.text
    assert set(wrong.json()["details"]) == {"counters.processed_files", "items"}
    assert latest_execution(api, third["task_id"])["status"] == "calculating"
    node.close()
    api.close()
