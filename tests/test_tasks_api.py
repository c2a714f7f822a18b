"""Tasks over HTTP (seeds 000/001): fields, defaults, status codes, errors, lookup by name."""

from __future__ import annotations

from conftest import unique

TASK = {"workflow_type": "active_archive", "workflow_action": "copy"}


def create(api, **fields):
    response = api.post("/tasks", json={"name": unique("task"), **TASK, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_sets_server_fields_and_ignores_read_only_ones(api, server):
    body = {
        "name": unique("copy"), "comment": "nightly", **TASK, "source_type": "container",
        "destination_type": "secondary_nas", "priority": 7, "conflict_resolution": "overwrite",
        "activate": 1,
        # server-owned: must be ignored
        "id": 999999, "status": "done", "action": "run", "processed_size": 42,
        "creation_username": "mallory", "job_started": "2001-01-01T00:00:00Z",
    }
    response = api.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["id"] != 999999
    assert task["name"] == body["name"] and task["comment"] == "nightly"
    assert task["priority"] == 7 and task["conflict_resolution"] == "overwrite"
    assert task["source_type"] == "container" and task["destination_type"] == "secondary_nas"
    assert task["status"] is None and task["action"] == "noop"
    assert task["processed_size"] == 0 and task["job_started"] is None
    assert task["creation_username"] == server.admin_user == task["modification_username"]
    assert task["activate"] == 1
    assert task["creation_date"].endswith("Z")
    shown = api.get(f"/tasks/{task['id']}").json()
    assert shown == task


def test_defaults_and_inactive_status(api):
    task = create(api, activate=False)
    assert task["priority"] == 5 and task["conflict_resolution"] == "rename"
    assert task["status"] == "not_activated" and task["activate"] == 0
    updated = api.put(f"/tasks/{task['id']}", json={"activate": True}).json()
    assert updated["status"] is None and updated["activate"] == 1


def test_update_is_partial_and_bumps_version(api):
    task = create(api, comment="before")
    response = api.put(f"/tasks/{task['id']}", json={"priority": 9})
    assert response.status_code == 200
    updated = response.json()
    assert updated["priority"] == 9 and updated["comment"] == "before"
    assert updated["version"] == task["version"] + 1
    assert updated["modification_date"] >= task["modification_date"]


def test_update_with_stale_version_is_refused_and_changes_nothing(api):
    task = create(api)
    response = api.put(f"/tasks/{task['id']}", json={"priority": 3, "version": task["version"] + 5})
    assert response.status_code == 409
    assert response.json()["messages"]
    assert api.get(f"/tasks/{task['id']}").json()["priority"] == task["priority"]


def test_destroy_then_404_with_error_body(api):
    task = create(api)
    assert api.delete(f"/tasks/{task['id']}").status_code == 204
    response = api.get(f"/tasks/{task['id']}")
    assert response.status_code == 404
    assert response.json()["details"]["task_id"][0]["error"] == "not_found"


def test_lookup_by_name_and_ambiguous_name(api):
    name = unique("named")
    first = create(api, name=name)
    assert api.get(f"/tasks/{name}").json()["id"] == first["id"]
    create(api, name=name)
    response = api.get(f"/tasks/{name}")
    assert response.status_code == 422
    assert response.json()["details"]["task_id"][0]["error"] == "ambiguous"
    assert "numeric id" in response.json()["messages"][0]


def test_validation_errors_use_the_nodeum_body(api):
    response = api.post("/tasks", json={"name": "", **TASK})
    assert response.status_code == 422
    assert response.json() == {"messages": ["Name can't be blank"],
                               "details": {"name": [{"error": "blank"}]}}

    response = api.post("/tasks", json={"name": "x" * 300, **TASK})
    assert response.json()["details"]["name"] == [{"error": "too_long", "count": 255, "value": "x" * 300}]

    response = api.post("/tasks", json={"name": "n", "workflow_type": "bogus", "workflow_action": "copy"})
    assert response.status_code == 422
    assert response.json()["details"]["workflow_type"][0]["error"] == "inclusion"

    response = api.post("/tasks", json={"name": "n", **TASK, "priority": "high"})
    assert response.status_code == 422 and "priority" in response.json()["details"]

    response = api.post("/tasks", json={"name": "n", **TASK, "priority": 101})
    assert response.json()["details"]["priority"][0]["error"] == "less_than_or_equal_to"

    response = api.post("/tasks", json={"name": "n"})
    assert set(response.json()["details"]) == {"workflow_type", "workflow_action"}


def test_malformed_bodies_are_422_not_500(api):
    for content in (b"{not json", b"[1, 2]", b'"text"', b""):
        response = api.post("/tasks", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["details"]
    response = api.put("/tasks/1", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code in (404, 422)


def test_nul_characters_and_huge_numbers_are_422(api):
    assert api.get("/tasks", params={"name": "a\x00b"}).status_code == 422
    assert api.get("/tasks/a%00b").status_code in (404, 422)
    response = api.post("/tasks", json={"name": "a\u0000b", **TASK})
    assert response.status_code == 422, response.text
    response = api.post("/tasks", json={"name": "n", **TASK, "progress": 2**70})
    assert response.status_code == 422, response.text


def test_combinations_that_make_no_sense_are_refused_on_create_and_update(api):
    refused = [
        ({"workflow_type": "active_archive", "workflow_action": "format"}, "workflow_action"),
        ({"workflow_type": "maintenance", "workflow_action": "format",
          "source_type": "primary_nas"}, "source_type"),
        ({"workflow_type": "maintenance", "workflow_action": "erase",
          "destination_type": "secondary_nas"}, "destination_type"),
        ({"workflow_type": "maintenance", "workflow_action": "cache_cleaning",
          "source_type": "secondary_cloud"}, "source_type"),
        ({"workflow_type": "active_archive", "workflow_action": "full_backup",
          "source_type": "secondary_tape"}, "source_type"),
        ({"workflow_type": "active_archive", "workflow_action": "restore",
          "destination_type": "secondary_tape"}, "destination_type"),
    ]
    for fields, attr in refused:
        response = api.post("/tasks", json={"name": unique("combo"), **fields})
        assert response.status_code == 422, (fields, response.text)
        body = response.json()
        assert list(body["details"]) == [attr] and body["messages"], body
    # The same rules hold for an update, judged against the task's saved fields.
    task = create(api, workflow_type="maintenance", workflow_action="scan")
    response = api.put(f"/tasks/{task['id']}", json={"destination_type": "container"})
    assert response.status_code == 422 and "destination_type" in response.json()["details"]
    response = api.put(f"/tasks/{task['id']}", json={"workflow_action": "copy",
                                                     "workflow_type": "active_archive",
                                                     "destination_type": "container"})
    assert response.status_code == 200, response.text
    assert api.get(f"/tasks/{task['id']}").json()["destination_type"] == "container"
