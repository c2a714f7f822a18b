"""Authentication and authorization: Basic, API keys with scopes, JWT sessions, ownership."""

from __future__ import annotations

import base64

import httpx
import pytest

from conftest import unique

TASK = {"workflow_type": "active_archive", "workflow_action": "copy"}


def make_key(client: httpx.Client, *scopes: tuple[str, str]) -> dict:
    response = client.post("/users/me/api_keys", json={
        "name": unique("key"),
        "api_key_scopes": [{"controller": c, "action": a} for c, a in scopes],
    })
    assert response.status_code == 201, response.text
    return response.json()


def test_missing_or_wrong_credentials_are_401_with_error_body(server):
    with httpx.Client(base_url=server.api_url) as anonymous:
        response = anonymous.get("/tasks")
        assert response.status_code == 401
        assert response.json()["messages"]
    with server.client(auth=(server.admin_user, "wrong")) as wrong:
        assert wrong.get("/tasks").status_code == 401
    with server.client(auth=("nobody-" + unique(), "x")) as nobody:
        assert nobody.get("/tasks").status_code == 401
    with server.client(headers={"Authorization": "Bearer tm_not-a-real-key"}) as bad_key:
        assert bad_key.get("/tasks").status_code == 401
    with server.client(headers={"Authorization": "Basic !!!"}) as garbage:
        assert garbage.get("/tasks").status_code == 401


def test_api_key_is_shown_whole_once_then_masked(api):
    created = make_key(api, ("tasks", "index"))
    key = created["key"]
    assert key.startswith("tm_") and "*" not in key
    assert created["api_key_scopes"] == [{"controller": "tasks", "action": "index"}]
    shown = api.get(f"/users/me/api_keys/{created['id']}").json()
    assert shown["key"] != key and shown["key"].endswith(key[-4:]) and set(shown["key"][:-4]) == {"*"}
    listed = api.get("/users/me/api_keys").json()
    assert any(k["id"] == created["id"] and k["key"] == shown["key"] for k in listed["api_keys"])
    assert all(k["key"] != key for k in listed["api_keys"])


@pytest.mark.parametrize("header", ["{key}", "Bearer {key}"])
def test_api_key_scopes_are_enforced(server, api, header):
    key = make_key(api, ("tasks", "index"), ("tasks", "show"))["key"]
    with server.client(headers={"Authorization": header.format(key=key)}) as client:
        assert client.get("/tasks").status_code == 200
        response = client.post("/tasks", json={"name": unique(), **TASK})
        assert response.status_code == 403
        assert "tasks/create" in response.json()["messages"][0]
        assert client.get("/users/me/api_keys").status_code == 403


def test_api_key_update_changes_scopes_and_destroy_revokes(server, api):
    created = make_key(api, ("tasks", "index"))
    with server.client(headers={"Authorization": created["key"]}) as client:
        assert client.post("/tasks", json={"name": unique(), **TASK}).status_code == 403
        updated = api.put(f"/users/me/api_keys/{created['id']}", json={
            "api_key_scopes": [{"controller": "tasks", "action": "create"}]})
        assert updated.status_code == 200
        assert client.post("/tasks", json={"name": unique(), **TASK}).status_code == 201
        assert client.get("/tasks").status_code == 403
        assert api.delete(f"/users/me/api_keys/{created['id']}").status_code == 204
        assert client.post("/tasks", json={"name": unique(), **TASK}).status_code == 401
    assert api.get(f"/users/me/api_keys/{created['id']}").status_code == 404


def test_api_keys_belong_to_their_user(api, make_user):
    _, _, other = make_user()
    created = make_key(api, ("tasks", "index"))
    assert other.get(f"/users/me/api_keys/{created['id']}").status_code == 404
    assert other.delete(f"/users/me/api_keys/{created['id']}").status_code == 404
    assert api.get(f"/users/me/api_keys/{created['id']}").status_code == 200


def test_api_key_without_name_gets_one_and_blank_rename_is_422(api):
    response = api.post("/users/me/api_keys", json={"api_key_scopes": []})
    assert response.status_code == 201
    created = response.json()
    assert created["name"].startswith("key ") and created["name"].endswith(created["key"][-4:])
    response = api.put(f"/users/me/api_keys/{created['id']}", json={"name": " "})
    assert response.status_code == 422
    assert response.json()["details"]["name"] == [{"error": "blank"}]


def test_jwt_sign_in_use_and_sign_out(server, make_user):
    username, password, _ = make_user()
    with httpx.Client(base_url=server.api_url) as anonymous:
        response = anonymous.post("/users/sign_in",
                                  json={"user": {"username": username, "password": password}})
        assert response.status_code == 201
        assert response.json()["username"] == username
        token = response.headers["authorization"]
        assert token.startswith("Bearer ") and token.count(".") == 2
        assert anonymous.post("/users/sign_in", json={
            "user": {"username": username, "password": "nope"}}).status_code == 401
    with server.client(headers={"Authorization": token}) as session_client:
        assert session_client.get("/tasks").status_code == 200
        assert session_client.post("/tasks", json={"name": unique(), **TASK}).status_code == 201
        assert session_client.delete("/users/sign_out").status_code == 204
        assert session_client.get("/tasks").status_code == 401


def test_tampered_jwt_is_refused(server, make_user):
    username, password, _ = make_user()
    response = httpx.post(server.api_url + "/users/sign_in",
                          json={"user": {"username": username, "password": password}})
    header, payload, signature = response.headers["authorization"].split(" ")[1].split(".")
    forged_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b'"sub":"', b'"sub":"1')).rstrip(b"=").decode()
    with server.client(headers={"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}) as c:
        assert c.get("/tasks").status_code == 401


def test_users_see_only_their_own_tasks_and_all_is_admin_only(api, make_user):
    _, _, alice = make_user()
    _, _, bob = make_user()
    mine = alice.post("/tasks", json={"name": unique("alice"), **TASK}).json()
    assert bob.get(f"/tasks/{mine['id']}").status_code == 404
    assert bob.put(f"/tasks/{mine['id']}", json={"priority": 1}).status_code == 404
    assert bob.delete(f"/tasks/{mine['id']}").status_code == 404
    assert bob.get(f"/tasks/{mine['name']}").status_code == 404
    assert all(t["id"] != mine["id"] for t in bob.get("/tasks").json()["tasks"])
    assert bob.get("/tasks", params={"all": "true"}).status_code == 403
    # The administrator sees it with all=true, and reaches it by id.
    everyone = api.get("/tasks", params={"all": "true", "id": mine["id"]}).json()
    assert everyone["count"] == 1 and everyone["tasks"][0]["id"] == mine["id"]
    assert api.get("/tasks", params={"id": mine["id"]}).json()["count"] == 0
    assert api.get(f"/tasks/{mine['id']}").status_code == 200


def test_user_management_is_for_admins(api, make_user):
    username, password, user = make_user()
    assert user.get("/users").status_code == 403
    assert user.post("/users", json={"username": unique(), "password": "x"}).status_code == 403
    me = user.get("/users/me").json()
    assert me["username"] == username and me["is_admin"] is False
    assert "password" not in me and "password_hash" not in me
    listed = api.get("/users", params={"username": username}).json()
    assert listed["count"] == 1 and listed["users"][0]["id"] == me["id"]
    duplicate = api.post("/users", json={"username": username, "password": "x"})
    assert duplicate.status_code == 422
    assert duplicate.json()["details"]["username"][0]["error"] == "taken"
    # Changing the password takes effect immediately.
    assert api.put(f"/users/{me['id']}", json={"password": "new-password"}).status_code == 200
    assert user.get("/tasks").status_code == 401
    with httpx.Client(base_url=str(api.base_url), auth=(username, "new-password")) as renewed:
        assert renewed.get("/tasks").status_code == 200
        assert api.delete(f"/users/{me['id']}").status_code == 204
        # Recently verified credentials are remembered, but not past their user.
        assert renewed.get("/tasks").status_code == 401
    assert api.get(f"/users/{me['id']}").status_code == 404


def test_non_admin_writes_are_403_before_the_body_is_checked(make_user):
    # (Text that is not JSON at all is refused while it is read, before the caller is known.)
    _, _, user = make_user()
    for path in ("/containers", "/nas", "/pools", "/cloud_connectors", "/tape_libraries", "/users"):
        assert user.post(path, json={"name": "", "type": "bogus", "path": 3}).status_code == 403, path


def test_node_protocol_needs_the_nodes_work_scope(server, api):
    key = make_key(api, ("tasks", "index"))["key"]
    with server.client(headers={"Authorization": key}) as client:
        assert client.post("/nodes", json={"name": unique("n")}).status_code == 403
        assert client.post("/nodes/1/claim", params={"wait": 0}).status_code == 403
        assert client.get("/nodes/-/storages").status_code == 403
