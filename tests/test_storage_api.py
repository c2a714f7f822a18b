"""Containers, NAS and shares, pools over HTTP: CRUD, filters, errors, scopes, secrets.

Cloud connectors, buckets and tape objects are in test_storage_cloud_tapes.py; the
official client's round trips in test_storage_sdk.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import unique
from tiermover.db.models import CatalogFile
from tiermover.db.session import make_engine


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json() if status != 204 else {}


def error_kinds(response: httpx.Response, attr: str) -> list[str]:
    assert response.status_code == 422, response.text
    return [detail["error"] for detail in response.json()["details"].get(attr, [])]


def api_key_client(server, api: httpx.Client, *scopes: tuple[str, str]) -> httpx.Client:
    key = ok(api.post("/users/me/api_keys", json={
        "name": unique("key"),
        "api_key_scopes": [{"controller": c, "action": a} for c, a in scopes],
    }), 201)["key"]
    return server.client(headers={"Authorization": key})


def new_container(api, **fields) -> dict:
    return ok(api.post("/containers", json={"name": unique("box"), **fields}), 201)


def new_nas(api, **fields) -> dict:
    return ok(api.post("/nas", json={"name": unique("nas"), "host": "filer.lan", **fields}), 201)


def new_share(api, nas_ref: int, path: Path | str, **fields) -> dict:
    body = {"name": unique("share"), "path": str(path), **fields}
    return ok(api.post(f"/nas/{nas_ref}/nas_shares", json=body), 201)


def new_pool(api, content: str, **fields) -> dict:
    body = {"name": unique("pool"), "type": "active_archive", "content": content, **fields}
    return ok(api.post("/pools", json=body), 201)


# --- containers ----------------------------------------------------------------------------

def test_container_round_trip_creates_its_root_directory(api, server):
    name = unique("box")
    body = {"name": name, "comment": "projects", "quota_total_size": 1000,
            "quota_on_cache": 500, "guest_right": "read",
            "id": 999999, "stat_total_files": 42, "last_update": "2001-01-01T00:00:00Z"}
    container = ok(api.post("/containers", json=body), 201)
    assert container["id"] != 999999 and container["stat_total_files"] == 0
    assert container["name"] == name and container["guest_right"] == "read"
    assert container["last_update"].endswith("Z")
    assert (server.data_dir / "containers" / name).is_dir()
    assert ok(api.get(f"/containers/{container['id']}")) == container
    assert ok(api.get(f"/containers/{name}"))["id"] == container["id"]

    updated = ok(api.put(f"/containers/{container['id']}", json={"comment": "archive"}))
    assert updated["comment"] == "archive" and updated["quota_total_size"] == 1000

    ok(api.delete(f"/containers/{container['id']}"), 204)
    response = api.get(f"/containers/{container['id']}")
    assert response.status_code == 404
    assert response.json()["details"]["container_id"][0]["error"] == "not_found"
    assert (server.data_dir / "containers" / name).is_dir()  # files are never deleted


def test_container_names_are_single_segments_and_unique_across_shares(api, tmp_path):
    taken = new_container(api)["name"]
    assert error_kinds(api.post("/containers", json={"name": taken}), "name") == ["taken"]
    for bad in ("a/b", "..", ".", "/abs"):
        assert error_kinds(api.post("/containers", json={"name": bad}), "name") == ["invalid"]
    assert error_kinds(api.post("/containers", json={"name": "  "}), "name") == ["blank"]
    assert error_kinds(api.post("/containers", json={}), "name") == ["blank"]
    assert error_kinds(api.post("/containers", json={"name": "x" * 256}), "name") == ["too_long"]
    nas = new_nas(api)
    share = new_share(api, nas["id"], tmp_path)
    assert error_kinds(api.post("/containers", json={"name": share["name"]}), "name") == ["taken"]
    response = api.post(f"/nas/{nas['id']}/nas_shares", json={"name": taken, "path": str(tmp_path)})
    assert error_kinds(response, "name") == ["taken"]


def test_container_field_errors(api):
    container = new_container(api, quota_total_size=10)
    url = f"/containers/{container['id']}"
    assert error_kinds(api.put(url, json={"guest_right": "all"}), "guest_right") == ["inclusion"]
    assert error_kinds(api.put(url, json={"quota_on_cache": 11}), "quota_on_cache") == \
        ["quota_on_cache"]
    assert error_kinds(api.put(url, json={"quota_total_size": -1}), "quota_total_size") == \
        ["greater_than_or_equal_to"]
    assert error_kinds(api.put(url, json={"quota_total_size": 2**64}), "quota_total_size") == \
        ["less_than_or_equal_to"]
    assert error_kinds(api.put(url, json={"name": None}), "name") == ["blank"]
    assert error_kinds(api.put(url, json={"comment": "nul\x00"}), "comment") == ["invalid"]
    assert error_kinds(api.put(url, content=b"not json"), "body") == ["invalid"]
    assert error_kinds(api.put(url, json=[1, 2]), "body") == ["invalid"]
    assert api.get("/containers/99999999999999999999999").status_code == 404
    assert api.get("/containers/no-such-container").status_code == 404


def test_container_rename_follows_in_catalog_and_delete_forgets_it(api, server):
    container = new_container(api)
    engine = make_engine(server.database.url)
    with Session(engine) as session, session.begin():
        root = CatalogFile(name=container["name"], storage_kind="container",
                           storage_id=container["id"], path="",
                           file_path=f"/{container['name']}", type="folder")
        session.add(root)
        session.flush()
        session.add(CatalogFile(name="a.txt", parent=root.id, storage_kind="container",
                                storage_id=container["id"], path="a.txt",
                                file_path=f"/{container['name']}/a.txt", type="file"))
    new_name = unique("renamed")
    ok(api.put(f"/containers/{container['id']}", json={"name": new_name}))

    def catalog():
        with Session(engine) as session:
            return sorted((entry.name, entry.file_path) for entry in session.scalars(
                select(CatalogFile).where(CatalogFile.storage_kind == "container",
                                          CatalogFile.storage_id == container["id"])))

    assert catalog() == [("a.txt", f"/{new_name}/a.txt"), (new_name, f"/{new_name}")]
    ok(api.delete(f"/containers/{container['id']}"), 204)
    assert catalog() == []
    engine.dispose()


def test_container_filters_and_sort(api):
    tag = unique("flt")
    for name, quota in (("b", 30), ("a", 10), ("c", 20)):
        new_container(api, name=f"{tag}-{name}", quota_total_size=quota, comment=tag)

    def listed(**params):
        body = ok(api.get("/containers", params={"comment": tag, **params}))
        return [c["name"].removeprefix(tag + "-") for c in body["containers"]], body["count"]

    assert listed(sort_by="name") == (["a", "b", "c"], 3)
    assert listed(sort_by="quota_total_size:desc") == (["b", "c", "a"], 3)
    assert listed(quota_total_size=">=20", sort_by="name") == (["b", "c"], 2)
    assert listed(name=f"~{tag}-_", sort_by="name:desc", limit=2) == (["c", "b"], 3)
    assert api.get("/containers", params={"bogus": 1}).status_code == 422


def test_container_privileges_crud(api):
    container = new_container(api)
    url = f"/containers/{container['id']}/container_privileges"
    privilege = ok(api.post(url, json={"name": "alice", "privilege": "read_write"}), 201)
    assert privilege["type"] == "user" and privilege["privilege"] == "read_write"
    assert error_kinds(api.post(url, json={"name": "alice"}), "name") == ["taken"]
    ok(api.post(url, json={"name": "alice", "type": "group"}), 201)  # a group may share the name
    assert error_kinds(api.post(url, json={"name": "bob", "privilege": "all"}), "privilege") == \
        ["inclusion"]
    listed = ok(api.get(url, params={"type": "user"}))
    assert listed["count"] == 1 and listed["container_privileges"][0]["id"] == privilege["id"]
    updated = ok(api.put(f"{url}/{privilege['id']}", json={"privilege": "none"}))
    assert updated["privilege"] == "none" and updated["name"] == "alice"
    assert ok(api.get(f"{url}/{privilege['id']}")) == updated
    other = new_container(api)
    assert api.get(f"/containers/{other['id']}/container_privileges/{privilege['id']}") \
        .status_code == 404
    ok(api.delete(f"{url}/{privilege['id']}"), 204)
    assert api.get(f"{url}/{privilege['id']}").status_code == 404


def test_reads_for_users_writes_for_administrators(api, make_user, tmp_path):
    _, _, user = make_user()
    container = new_container(api)
    assert ok(user.get(f"/containers/{container['id']}"))["id"] == container["id"]
    assert ok(user.get("/containers"))["count"] >= 1
    response = user.post("/containers", json={"name": unique("box")})
    assert response.status_code == 403 and response.json()["messages"]
    assert user.put(f"/containers/{container['id']}", json={"comment": "x"}).status_code == 403
    assert user.delete(f"/containers/{container['id']}").status_code == 403
    assert user.post("/nas", json={"name": unique("nas")}).status_code == 403
    assert user.post("/pools", json={"name": unique("p"), "type": "scratch",
                                     "content": "nas"}).status_code == 403
    nas = new_nas(api)
    response = user.put(f"/nas/{nas['id']}/nas_shares/-/test", json={"path": str(tmp_path)})
    assert response.status_code == 403


def test_api_key_needs_the_endpoint_scope(server, api):
    with api_key_client(server, api, ("containers", "index")) as client:
        assert client.get("/containers").status_code == 200
        assert client.get("/nas").status_code == 403
        assert client.post("/containers", json={"name": unique("box")}).status_code == 403


# --- NAS and shares --------------------------------------------------------------------------

def test_nas_round_trip_and_errors(api):
    nas = new_nas(api, type="smb_v3", comment="office", price="10")
    assert nas["type"] == "smb_v3" and nas["host"] == "filer.lan"
    assert ok(api.get(f"/nas/{nas['name']}"))["id"] == nas["id"]
    assert ok(api.put(f"/nas/{nas['id']}", json={"host": "filer2"}))["host"] == "filer2"
    assert error_kinds(api.post("/nas", json={"name": nas["name"]}), "name") == ["taken"]
    assert error_kinds(api.post("/nas", json={"name": unique(), "type": "ftp"}), "type") == \
        ["inclusion"]
    assert ok(api.get("/nas", params={"name": nas["name"]}))["nas"] == [
        ok(api.get(f"/nas/{nas['id']}"))]
    ok(api.delete(f"/nas/{nas['id']}"), 204)
    assert api.get(f"/nas/{nas['id']}").status_code == 404


def test_share_round_trip_on_every_prefix(api, tmp_path):
    nas = new_nas(api)
    share = new_share(api, nas["id"], f"{tmp_path}//", options="ro", username="svc",
                      password="s3cret", nas_id=12345, file_count=9)
    assert share["path"] == str(tmp_path) and share["nas_id"] == nas["id"]
    assert share["file_count"] == 0 and share["pool_id"] is None
    assert share["password"] == "[censored]" and share["username"] == "svc"
    by_nas = f"/nas/{nas['id']}/nas_shares/{share['id']}"
    assert ok(api.get(by_nas)) == share == ok(api.get(f"/nas_shares/{share['name']}"))
    assert ok(api.get(f"/nas/{nas['id']}/nas_shares"))["nas_shares"] == [share]
    other_nas = new_nas(api)
    assert api.get(f"/nas/{other_nas['id']}/nas_shares/{share['id']}").status_code == 404

    updated = ok(api.put(by_nas, json={"options": "rw"}))
    assert updated["options"] == "rw"
    updated = ok(api.put(f"/nas_shares/{share['id']}", json={"username": "svc2"}))
    assert updated["username"] == "svc2" and updated["options"] == "rw"

    pool = new_pool(api, "nas", nas_share_ids=[share["id"]])
    by_pool = f"/pools/{pool['id']}/nas_shares/{share['id']}"
    assert ok(api.get(by_pool))["pool_id"] == pool["id"]
    assert ok(api.put(by_pool, json={"options": "x"}))["options"] == "x"
    assert ok(api.get(f"/pools/{pool['id']}/nas_shares"))["count"] == 1
    assert ok(api.get("/nas_shares", params={"pool_id": pool["id"]}))["count"] == 1
    ok(api.delete(by_pool), 204)
    assert api.get(f"/nas_shares/{share['id']}").status_code == 404
    assert tmp_path.is_dir()


def test_share_delete_on_flat_and_nas_prefixes_and_with_its_nas(api, tmp_path):
    nas = new_nas(api)
    first, second, third = (new_share(api, nas["id"], tmp_path) for _ in range(3))
    ok(api.delete(f"/nas_shares/{first['id']}"), 204)
    ok(api.delete(f"/nas/{nas['id']}/nas_shares/{second['id']}"), 204)
    ok(api.delete(f"/nas/{nas['id']}"), 204)
    for share in (first, second, third):
        assert api.get(f"/nas_shares/{share['id']}").status_code == 404


def test_share_path_must_be_an_existing_absolute_directory(api, tmp_path):
    nas = new_nas(api)
    url = f"/nas/{nas['id']}/nas_shares"
    (tmp_path / "file").write_text("x")
    for bad in ("relative/dir", str(tmp_path / "missing"), str(tmp_path / "file"),
                f"{tmp_path}/../{tmp_path.name}"):
        response = api.post(url, json={"name": unique("share"), "path": bad})
        assert error_kinds(response, "path") == ["invalid"], bad
    assert error_kinds(api.post(url, json={"name": unique("share")}), "path") == ["blank"]
    share = new_share(api, nas["id"], tmp_path)
    response = api.put(f"/nas_shares/{share['id']}", json={"path": str(tmp_path / "missing")})
    assert error_kinds(response, "path") == ["invalid"]
    for bad in ("a/b", ".."):
        assert error_kinds(api.post(url, json={"name": bad, "path": str(tmp_path)}), "name") == \
            ["invalid"]


def test_share_filters_and_sort(api, tmp_path):
    nas = new_nas(api)
    tag = unique("opt")
    for name in ("b", "a", "c"):
        new_share(api, nas["id"], tmp_path, name=f"{tag}-{name}", options=tag,
                  username="u" if name != "c" else "v")
    url = f"/nas/{nas['id']}/nas_shares"
    body = ok(api.get(url, params={"username": "u", "sort_by": "name:desc"}))
    assert [s["name"] for s in body["nas_shares"]] == [f"{tag}-b", f"{tag}-a"]
    assert ok(api.get("/nas_shares", params={"options": tag, "nas_id": nas["id"]}))["count"] == 3
    assert api.get(url, params={"nas_id": nas["id"]}).status_code == 422  # not a filter here


def test_share_password_only_for_the_explicit_scope(server, api, tmp_path):
    nas = new_nas(api)
    share = new_share(api, nas["id"], tmp_path, password="hunter2")
    assert ok(api.get(f"/nas_shares/{share['id']}"))["password"] == "[censored]"
    # Sending the censored share back keeps the real password.
    ok(api.put(f"/nas_shares/{share['id']}", json=ok(api.get(f"/nas_shares/{share['id']}"))))
    with api_key_client(server, api, ("nas_shares", "show"), ("nas_shares", "index"),
                        ("nas_shares", "get_password")) as revealed:
        assert ok(revealed.get(f"/nas_shares/{share['id']}"))["password"] == "hunter2"
        listed = ok(revealed.get("/nas_shares", params={"id": share["id"]}))["nas_shares"]
        assert listed[0]["password"] == "hunter2"
    with api_key_client(server, api, ("nas_shares", "show")) as masked:
        assert ok(masked.get(f"/nas_shares/{share['id']}"))["password"] == "[censored]"


def test_share_mount_status_on_every_prefix(api, tmp_path):
    nas = new_nas(api, type="nfs_v4")
    folder = tmp_path / "mnt"
    folder.mkdir()
    share = new_share(api, nas["id"], folder)
    pool = new_pool(api, "nas", nas_share_ids=[share["id"]])
    urls = (f"/nas_shares/{share['id']}/mount", f"/nas/{nas['id']}/nas_shares/{share['id']}/mount",
            f"/pools/{pool['id']}/nas_shares/{share['id']}/mount")
    for url in urls:
        status = ok(api.get(url))
        assert status["mounted"] is True
        assert status["status"]["target"] == str(folder) and status["status"]["type"] == "nfs"
        assert status["status"]["nas_share_id"] == share["id"]
        assert status["status"]["pool_name"] == pool["name"]
    folder.rmdir()
    status = ok(api.get(urls[0]))
    assert status["mounted"] is False and "not a reachable directory" in status["message"]


def test_share_test_job(api, tmp_path):
    nas = new_nas(api)
    url = f"/nas/{nas['id']}/nas_shares/-/test"
    started = ok(api.put(url, json={"name": "probe", "path": str(tmp_path)}), 202)
    assert started["status"] == "completed" and started["job_id"]
    assert ok(api.get(url, params={"job_id": started["job_id"]}))["status"] == "completed"
    failed = ok(api.put(url, json={"path": str(tmp_path / "missing")}), 202)
    assert failed["status"] == "failed" and "reachable" in failed["message"]
    assert ok(api.get(url, params={"job_id": failed["job_id"]}))["status"] == "failed"
    other = new_nas(api)
    assert api.get(f"/nas/{other['id']}/nas_shares/-/test",
                   params={"job_id": started["job_id"]}).status_code == 404
    assert api.get(url, params={"job_id": "nope"}).status_code == 404
    assert error_kinds(api.get(url), "job_id") == ["blank"]


# --- pools -----------------------------------------------------------------------------------

def test_pool_round_trip_and_membership(api, tmp_path):
    nas = new_nas(api)
    first, second = new_share(api, nas["id"], tmp_path), new_share(api, nas["id"], tmp_path)
    pool = new_pool(api, "nas", comment="disk", nas_share_ids=[first["id"]], primary_id=77)
    assert pool["content"] == "nas" and pool["type"] == "active_archive"
    assert pool["primary_id"] is None
    assert ok(api.get(f"/pools/{pool['name']}")) == pool
    assert ok(api.get(f"/nas_shares/{first['id']}"))["pool_id"] == pool["id"]

    updated = ok(api.put(f"/pools/{pool['id']}", json={"nas_share_ids": [second["id"]],
                                                        "type": "scratch"}))
    assert updated["type"] == "scratch" and updated["comment"] == "disk"
    assert ok(api.get(f"/nas_shares/{first['id']}"))["pool_id"] is None
    assert ok(api.get(f"/nas_shares/{second['id']}"))["pool_id"] == pool["id"]
    ok(api.put(f"/pools/{pool['id']}", json={"comment": "kept"}))  # members unchanged
    assert ok(api.get(f"/pools/{pool['id']}/nas_shares"))["count"] == 1

    response = api.put(f"/pools/{pool['id']}", json={"content": "tape"})
    assert error_kinds(response, "content") == ["frozen"]
    ok(api.delete(f"/pools/{pool['id']}"), 204)
    assert api.get(f"/pools/{pool['id']}").status_code == 404
    assert ok(api.get(f"/nas_shares/{second['id']}"))["pool_id"] is None


def test_pool_errors(api, tmp_path):
    nas = new_nas(api)
    share = new_share(api, nas["id"], tmp_path)
    taken = new_pool(api, "nas")["name"]
    post = lambda **body: api.post("/pools", json={"name": unique("pool"),  # noqa: E731
                                                   "type": "scratch", "content": "nas", **body})
    assert error_kinds(post(name=taken), "name") == ["taken"]
    assert error_kinds(post(type="hot"), "type") == ["inclusion"]
    assert error_kinds(post(content="disk"), "content") == ["inclusion"]
    assert error_kinds(api.post("/pools", json={"name": unique()}), "type") == ["blank"]
    assert error_kinds(post(content="tape", nas_share_ids=[share["id"]]), "nas_share_ids") == \
        ["invalid"]
    assert error_kinds(post(nas_share_ids=[99999999, 2**70]), "nas_share_ids") == \
        ["not_found", "not_found"]
    assert error_kinds(post(tape_ids=["x"]), "tape_ids.0") == ["not_a_number"]
    new_pool(api, "nas", nas_share_ids=[share["id"]])
    assert error_kinds(post(nas_share_ids=[share["id"]]), "nas_share_ids") == ["taken"]
    assert error_kinds(post(content="tape", storage_id=99999999), "storage_id") == ["not_found"]


def test_pool_filters_and_sort(api):
    tag = unique("pf")
    for name, kind in (("b", "scratch"), ("a", "data_exchange"), ("c", "scratch")):
        new_pool(api, "cloud", name=f"{tag}-{name}", type=kind, comment=tag)
    body = ok(api.get("/pools", params={"comment": tag, "type": "scratch", "sort_by": "name"}))
    assert [p["name"] for p in body["pools"]] == [f"{tag}-b", f"{tag}-c"]
    body = ok(api.get("/pools", params={"name": f"~{tag}%", "sort_by": "type,name:desc"}))
    assert [p["name"][-1] for p in body["pools"]] == ["a", "c", "b"]
