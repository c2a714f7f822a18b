"""Task executions, read side: fields, visibility, filters, complete_list, the official SDK.

No engine writes executions yet, so the tests insert them straight into the server's
database and read them back through the API.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta, timezone

import nodeum_sdk
import pytest
from nodeum_sdk.rest import ApiException
from sqlalchemy.orm import Session

from conftest import sdk_client, unique
from tiermover.db.models import TaskExecution
from tiermover.db.session import make_engine

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)
_sequence = itertools.count()


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database.url)
    yield engine
    engine.dispose()


@pytest.fixture
def add_execution(engine):
    """Insert one execution of a task; returns its id. Ids are unique start times in ns."""

    def add(task: dict, status: str, started: datetime | None, **fields) -> str:
        execution_id = str(time.time_ns() + next(_sequence))
        values = dict(
            id=execution_id, task_id=task["id"], name=task["name"],
            workflow_type=task["workflow_type"], workflow_action=task["workflow_action"],
            source_type=task["source_type"], destination_type=task["destination_type"],
            status=status, job_started=started, log_time=started,
            job_finished=started + timedelta(minutes=5) if started else None,
        )
        values.update(fields)
        with Session(engine) as session, session.begin():
            session.add(TaskExecution(**values))
        return execution_id

    return add


def new_task(client, **fields) -> dict:
    body = {"name": unique("run"), "workflow_type": "offline_archive", "workflow_action": "copy",
            "source_type": "container", "destination_type": "secondary_nas", **fields}
    response = client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["task_executions"]]


def test_show_gives_every_field_under_both_paths(api, add_execution):
    task = new_task(api)
    execution_id = add_execution(
        task, "finished_with_warnings", T0, to_process_size=4096, processed_size=2048,
        to_process_files=126, processed_files=113, finalized_files=126, estimation_time=30,
        bandwidth=1_000_000,
    )
    shown = api.get(f"/task_executions/{execution_id}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["id"] == execution_id and isinstance(body["id"], str)
    assert body["task_id"] == task["id"] and body["name"] == task["name"]
    assert body["workflow_type"] == "offline_archive" and body["workflow_action"] == "copy"
    assert body["source_type"] == "container" and body["destination_type"] == "secondary_nas"
    assert body["status"] == "finished_with_warnings"
    assert body["job_started"] == "2024-03-01T08:00:00.000Z" == body["log_time"]
    assert body["job_finished"] == "2024-03-01T08:05:00.000Z"
    assert (body["to_process_size"], body["processed_size"]) == (4096, 2048)
    assert (body["to_process_files"], body["processed_files"], body["finalized_files"]) == (126, 113, 126)
    assert (body["estimation_time"], body["bandwidth"]) == (30, 1_000_000)
    assert api.get(f"/tasks/{task['id']}/task_executions/{execution_id}").json() == body
    assert api.get(f"/tasks/{task['name']}/task_executions/{execution_id}").json() == body


def test_missing_or_foreign_execution_is_404_with_the_nodeum_body(api, add_execution):
    task, other_task = new_task(api), new_task(api)
    execution_id = add_execution(task, "done", T0)
    for path in ("/task_executions/1234567890123456789",
                 f"/tasks/{other_task['id']}/task_executions/{execution_id}",
                 f"/tasks/{task['id']}/task_executions/not-an-id"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["details"] == {"task_execution_id": [{"error": "not_found"}]}
    response = api.get(f"/tasks/999999999/task_executions/{execution_id}")
    assert response.status_code == 404
    assert response.json()["details"]["task_id"][0]["error"] == "not_found"


def test_users_see_only_executions_of_their_own_tasks(api, make_user, add_execution):
    _, _, alice = make_user()
    _, _, bob = make_user()
    alice_task = new_task(alice)
    alice_run = add_execution(alice_task, "done", T0)
    bob_run = add_execution(new_task(bob), "error", T0)

    assert listed_ids(alice.get("/task_executions")) == [alice_run]
    assert listed_ids(bob.get("/task_executions")) == [bob_run]
    assert bob.get(f"/task_executions/{alice_run}").status_code == 404
    assert bob.get(f"/tasks/{alice_task['id']}/task_executions").status_code == 404
    assert bob.get(f"/tasks/{alice_task['id']}/task_executions/{alice_run}").status_code == 404

    # all=true is for administrators; they list their own runs unless they ask for all.
    assert bob.get("/task_executions", params={"all": "true"}).status_code == 403
    assert alice_run not in listed_ids(api.get("/task_executions", params={"id": alice_run}))
    everyone = listed_ids(api.get("/task_executions", params={"all": "true",
                                                              "id": f"><{alice_run}|{bob_run}"}))
    assert sorted(everyone) == sorted([alice_run, bob_run])
    assert api.get(f"/task_executions/{alice_run}").status_code == 200


def test_filters_sorting_and_paging(make_user, add_execution):
    _, _, client = make_user()
    task = new_task(client)
    runs = [add_execution(task, status, T0 + timedelta(hours=hour), processed_files=files)
            for hour, status, files in ((0, "done", 10), (1, "error", 5), (2, "in_progress", 7),
                                        (3, "done", 20))]
    by_task = f"/tasks/{task['id']}/task_executions"
    assert listed_ids(client.get(by_task, params={"sort_by": "job_started:desc"})) == runs[::-1]
    assert listed_ids(client.get(by_task, params={"status": "><done|error", "sort_by": "id"})) == \
        sorted([runs[0], runs[1], runs[3]])
    assert listed_ids(client.get(by_task, params={"processed_files": ">7",
                                                  "sort_by": "processed_files"})) == [runs[0], runs[3]]
    after = (T0 + timedelta(minutes=90)).isoformat()
    assert listed_ids(client.get("/task_executions", params={"job_started": f">{after}",
                                                             "sort_by": "job_started"})) == runs[2:]
    page = client.get(by_task, params={"sort_by": "job_started", "limit": 2, "offset": 1}).json()
    assert page["count"] == 4 and [e["id"] for e in page["task_executions"]] == runs[1:3]
    assert client.get("/task_executions", params={"task_id": task["id"]}).json()["count"] == 4

    for params in ({"processed_files": "many"}, {"job_started": "yesterday"},
                   {"sort_by": "nonsense"}, {"colour": "red"}, {"complete_list": "maybe"}):
        response = client.get("/task_executions", params=params)
        assert response.status_code == 422, params
        assert response.json()["messages"]
    # complete_list is a switch of the global list only.
    assert client.get(by_task, params={"complete_list": "false"}).status_code == 422


def test_complete_list_false_keeps_each_tasks_last_correct_run(make_user, add_execution):
    _, _, client = make_user()
    first, second, failing = new_task(client), new_task(client), new_task(client)
    add_execution(first, "done", T0)
    last_of_first = add_execution(first, "finished_with_warnings", T0 + timedelta(hours=1))
    add_execution(first, "error", T0 + timedelta(hours=2))  # later, but not correct
    add_execution(first, "in_progress", None)  # queued runs have no start yet
    last_of_second = add_execution(second, "done", T0 + timedelta(days=1))
    add_execution(second, "done", T0 - timedelta(days=1))
    add_execution(failing, "error", T0)

    assert client.get("/task_executions").json()["count"] == 7
    latest = client.get("/task_executions", params={"complete_list": "false", "sort_by": "task_id"})
    assert listed_ids(latest) == [last_of_first, last_of_second]
    # Filters narrow the latest runs; they never bring back an older one instead.
    narrowed = client.get("/task_executions", params={"complete_list": "false",
                                                      "status": "done"})
    assert listed_ids(narrowed) == [last_of_second]


def test_official_sdk(server, make_user, add_execution):
    username, password, client = make_user()
    task = new_task(client)
    older = add_execution(task, "done", T0, processed_files=3)
    newer = add_execution(task, "finished_with_warnings", T0 + timedelta(hours=1),
                          processed_files=4)
    failed = add_execution(task, "error", T0 + timedelta(hours=2))
    api = nodeum_sdk.TaskExecutionsApi(sdk_client(server, username, password))

    everything = api.index_task_executions(sort_by=["job_started:desc"])
    assert isinstance(everything, nodeum_sdk.TaskExecutionCollection)
    assert everything.count == 3 and [e.id for e in everything.task_executions] == [failed, newer, older]
    latest = api.index_task_executions(complete_list=False)
    assert [e.id for e in latest.task_executions] == [newer]
    # This call sends the task in the query string, not in the path (see the route).
    by_task = api.index_task_executions_by_task(task_id=str(task["id"]), status="done")
    assert [e.id for e in by_task.task_executions] == [older]
    assert api.index_task_executions_by_task(task_id=task["name"]).count == 3
    with pytest.raises(ApiException) as foreign:
        api.index_task_executions_by_task(task_id="999999999")
    assert foreign.value.status == 404

    shown = api.show_task_execution(task_execution_id=newer)
    assert isinstance(shown, nodeum_sdk.TaskExecution)
    assert (shown.task_id, shown.status, shown.processed_files) == (task["id"], "finished_with_warnings", 4)
    assert shown.job_started == "2024-03-01T09:00:00.000Z"
    assert api.show_task_execution_by_task(task_id=task["name"],
                                           task_execution_id=older).to_dict()["id"] == older
    with pytest.raises(ApiException) as missing:
        api.show_task_execution(task_execution_id="1")
    assert missing.value.status == 404


def test_api_key_scopes(server, api, add_execution):
    task = new_task(api)
    execution_id = add_execution(task, "done", T0)
    response = api.post("/users/me/api_keys", json={
        "name": unique("key"),
        "api_key_scopes": [{"controller": "task_executions", "action": "index"}],
    })
    assert response.status_code == 201, response.text
    with server.client(headers={"Authorization": response.json()["key"]}) as keyed:
        assert execution_id in listed_ids(keyed.get("/task_executions",
                                                    params={"id": execution_id}))
        response = keyed.get(f"/task_executions/{execution_id}")
        assert response.status_code == 403
        assert "task_executions/show" in response.json()["messages"][0]


def test_deep_offsets_page_like_shallow_ones(engine, make_user):
    """Past an offset of 1,000 pages are found by their ids first; the rows, their order
    and the count must not change."""
    _, _, client = make_user()
    task = new_task(client)
    base = time.time_ns()
    with Session(engine) as session, session.begin():
        session.add_all(TaskExecution(id=str(base + i), task_id=task["id"], status="done",
                                      processed_files=i % 7, job_started=T0 + timedelta(seconds=i))
                        for i in range(1_100))
    by_task = f"/tasks/{task['id']}/task_executions"
    everything = listed_ids(client.get(by_task, params={"sort_by": "processed_files:desc",
                                                        "limit": 2_000}))
    assert len(everything) == 1_100
    for offset in (990, 1_000, 1_050, 1_098):
        page = client.get(by_task, params={"sort_by": "processed_files:desc", "limit": 10,
                                           "offset": offset}).json()
        assert page["count"] == 1_100
        assert [e["id"] for e in page["task_executions"]] == everything[offset:offset + 10]
    beyond = client.get(by_task, params={"offset": 5_000, "limit": 10}).json()
    assert beyond == {"count": 1_100, "task_executions": []}
