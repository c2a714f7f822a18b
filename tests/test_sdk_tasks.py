"""The official nodeum-sdk client against a running server: tasks and API keys."""

from __future__ import annotations

import nodeum_sdk
import pytest
from nodeum_sdk.rest import ApiException

from conftest import sdk_client, unique


@pytest.fixture
def tasks_api(server):
    return nodeum_sdk.TasksApi(sdk_client(server))


def new_task(**fields) -> nodeum_sdk.Task:
    values = dict(name=unique("sdk"), workflow_type="offline_archive", workflow_action="copy",
                  source_type="container", destination_type="secondary_tape", priority=6,
                  conflict_resolution="ignore", activate=True, comment="from the sdk")
    values.update(fields)
    return nodeum_sdk.Task(**values)


def test_task_round_trip(tasks_api):
    created = tasks_api.create_task(task_body=new_task())
    assert isinstance(created, nodeum_sdk.Task) and created.id
    assert created.priority == 6 and created.activate is True and created.action == "noop"
    shown = tasks_api.show_task(task_id=str(created.id))
    assert shown.to_dict() == created.to_dict()
    assert tasks_api.show_task(task_id=created.name).id == created.id

    # Sending a shown task back (read-only fields included) is accepted; they are ignored.
    shown.comment = "edited"
    shown.status = "done"
    updated = tasks_api.update_task(task_id=str(created.id), task_body=shown)
    assert updated.comment == "edited" and updated.status is None
    assert updated.modification_date >= created.modification_date

    tasks_api.destroy_task(task_id=str(created.id))
    with pytest.raises(ApiException) as missing:
        tasks_api.show_task(task_id=str(created.id))
    assert missing.value.status == 404


def test_index_with_filters_and_multi_key_sort(server, make_user):
    username, password, _ = make_user()
    api = nodeum_sdk.TasksApi(sdk_client(server, username, password))
    for priority, action in ((3, "copy"), (8, "move"), (8, "copy")):
        api.create_task(task_body=new_task(priority=priority, workflow_action=action))
    page = api.index_tasks(sort_by=["priority:desc", "workflow_action:asc"], limit=2)
    assert page.count == 3
    assert [(t.priority, t.workflow_action) for t in page.tasks] == [(8, "copy"), (8, "move")]
    moves = api.index_tasks(workflow_action="move", priority=">=8")
    assert moves.count == 1 and moves.tasks[0].workflow_action == "move"
    assert api.index_tasks(name="~sdk-%", offset=2).count == 3


def test_invalid_create_surfaces_the_error_body(tasks_api):
    with pytest.raises(ApiException) as error:
        tasks_api.create_task(task_body=nodeum_sdk.Task(name="", workflow_type="maintenance",
                                                        workflow_action="scan"))
    assert error.value.status == 422
    assert '"blank"' in error.value.body


def test_api_keys_through_the_users_api(server, make_user):
    username, password, raw = make_user()
    users = nodeum_sdk.UsersApi(sdk_client(server, username, password))
    scopes = [nodeum_sdk.ApiKeyScope(controller="tasks", action="index"),
              nodeum_sdk.ApiKeyScope(controller="tasks", action="create")]
    created = users.create_api_key(api_key_body=nodeum_sdk.ApiKeyFull(api_key_scopes=scopes))
    assert [s.to_dict() for s in created.api_key_scopes] == [s.to_dict() for s in scopes]
    listed = users.index_api_keys()
    assert listed.count == 1 and "*" in listed.api_keys[0].key
    key_id = listed.api_keys[0].id
    users.update_api_key(api_key_id=key_id, api_key_body=nodeum_sdk.ApiKeyFull(
        api_key_scopes=[nodeum_sdk.ApiKeyScope(controller="tasks", action="show")]))
    shown = users.show_api_key(api_key_id=key_id)
    assert [(s.controller, s.action) for s in shown.api_key_scopes] == [("tasks", "show")]
    users.destroy_api_key(api_key_id=key_id)
    with pytest.raises(ApiException) as missing:
        users.show_api_key(api_key_id=key_id)
    assert missing.value.status == 404
    assert users.index_api_keys().count == 0


def test_sdk_authenticates_with_an_api_key(server, api):
    response = api.post("/users/me/api_keys", json={"name": unique("sdk-key"), "api_key_scopes": [
        {"controller": "tasks", "action": "index"}, {"controller": "tasks", "action": "show"}]})
    key = response.json()["key"]
    tasks = nodeum_sdk.TasksApi(sdk_client(server, api_key=key))
    assert tasks.index_tasks(limit=1).count >= 0
    with pytest.raises(ApiException) as refused:
        tasks.create_task(task_body=new_task())
    assert refused.value.status == 403
