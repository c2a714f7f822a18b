"""The read-only file catalog over HTTP and through the official SDK.

The catalog is filled the way the server fills it: a real directory tree on disk, a
container (or NAS share) whose root is that directory, and `catalog.register` on its
namespace paths. Task results are ExecutionFile rows, as the engine will write them.
"""

from __future__ import annotations

import time
from pathlib import Path

import nodeum_sdk
import pytest
from nodeum_sdk.rest import ApiException
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import sdk_client, unique
from tiermover.db.models import (
    CatalogFile, Container, ContainerPrivilege, ExecutionFile, ImportFile, Nas, NasShare, Pool,
    TaskExecution,
)
from tiermover.db.session import make_engine
from tiermover.service import catalog
from tiermover.service.namespace import resolve

TREE = {"docs/a.txt": b"alpha", "docs/b.log": b"0123456789", "docs/deep/c.txt": b"c",
        "top.bin": b"x" * 100}


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database.url)
    yield engine
    engine.dispose()


def write_tree(root: Path) -> None:
    for relative, content in TREE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)


def register_tree(session: Session, storage_name: str) -> dict[str, int]:
    """Catalog ids by relative path ('' is the storage's root folder)."""
    ids = {}
    for relative in TREE:
        entry = catalog.register(session, resolve(session, f"/{storage_name}/{relative}",
                                                  "path", must_exist=True))
        while entry is not None:
            ids[entry.path] = entry.id
            entry = session.get(CatalogFile, entry.parent) if entry.parent else None
    return ids


@pytest.fixture(scope="module")
def make_container(engine, tmp_path_factory):
    """A container holding TREE, registered in the catalog: (container id, name, ids)."""

    def make(guest_right: str = "none"):
        name = unique("box")
        root = tmp_path_factory.mktemp(name)
        write_tree(root)
        with Session(engine) as session, session.begin():
            container = Container(name=name, root_path=str(root), guest_right=guest_right)
            session.add(container)
            session.flush()
            ids = register_tree(session, name)
            return container.id, name, ids

    return make


@pytest.fixture(scope="module")
def box(make_container):
    return make_container()


def run_with_files(engine, task_id: int, paths: list[str], ids: dict[str, int]) -> str:
    """An execution of the task that handled the given catalog paths; returns its id."""
    execution_id = str(time.time_ns())
    with Session(engine) as session, session.begin():
        session.add(TaskExecution(id=execution_id, task_id=task_id, status="done"))
        session.flush()
        session.add_all(ExecutionFile(execution_id=execution_id, file_id=ids[p]) for p in paths)
    return execution_id


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] >= len(body["files"])
    return [f["name"] for f in body["files"]]


def test_browse_everywhere_from_the_root(api, box):
    _, name, ids = box
    roots = api.get("/files", params={"name": name}).json()
    assert roots["count"] == 1
    root = roots["files"][0]
    assert (root["id"], root["type"], root["parent"], root["file_path"]) == (ids[""], "folder", None, f"/{name}")
    assert sorted(names(api.get(f"/files/{ids['']}/children"))) == ["docs", "top.bin"]
    assert sorted(names(api.get(f"/files/{ids['docs']}/children"))) == ["a.txt", "b.log", "deep"]

    shown = api.get(f"/files/{ids['docs/a.txt']}")
    assert shown.status_code == 200
    a_txt = shown.json()
    assert a_txt["file_path"] == f"/{name}/docs/a.txt" and a_txt["parent"] == ids["docs"]
    assert a_txt["type"] == "file" and a_txt["size"] == 5 and str(a_txt["permission"]).startswith("100")
    assert a_txt["modification_date"].endswith("Z") and isinstance(a_txt["uid"], int)
    # A file has no entries; that is an empty list, not an error.
    assert api.get(f"/files/{ids['top.bin']}/children").json() == {"count": 0, "files": []}


def test_filters_and_paging_on_children(api, box):
    _, _, ids = box
    children = f"/files/{ids['docs']}/children"
    assert names(api.get(children, params={"type": "file", "sort_by": "name:desc"})) == ["b.log", "a.txt"]
    assert names(api.get(children, params={"size": ">6"})) == ["b.log"]
    assert names(api.get(children, params={"name": "~%.txt"})) == ["a.txt"]
    assert names(api.get(children, params={"file_id": ids["docs/deep"]})) == ["deep"]
    page = api.get(children, params={"sort_by": "name", "limit": 1, "offset": 1}).json()
    assert page["count"] == 3 and [f["name"] for f in page["files"]] == ["b.log"]
    for params in ({"size": "big"}, {"name_like": "x"}, {"modification_date": "soon"}):
        response = api.get(children, params=params)
        assert response.status_code == 422 and response.json()["messages"], params


def test_missing_files_are_404_with_the_nodeum_body(api, box):
    _, _, ids = box
    for path, attr in (("/files/999999999", "file_id"), ("/files/abc", "file_id"),
                       ("/files/999999999/children", "file_parent_id")):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["details"] == {attr: [{"error": "not_found"}]}


def test_container_context_lists_what_its_root_holds(api, box):
    container_id, name, ids = box
    for ref in (container_id, name):
        assert sorted(names(api.get(f"/containers/{ref}/files"))) == ["docs", "top.bin"]
    assert api.get(f"/containers/{container_id}/files/{ids['docs/deep/c.txt']}").json()["size"] == 1
    assert sorted(names(api.get(f"/containers/{container_id}/files/{ids['']}/children"))) == ["docs", "top.bin"]
    # The root folder is the container itself, not one of its files.
    assert api.get(f"/containers/{container_id}/files/{ids['']}").status_code == 404
    response = api.get("/containers/no-such-container/files")
    assert response.status_code == 404
    assert response.json()["details"] == {"container_id": [{"error": "not_found"}]}


def test_container_rights_decide_what_other_users_browse(engine, make_user, make_container):
    username, _, client = make_user()
    container_id, name, ids = make_container(guest_right="none")
    assert client.get(f"/containers/{container_id}/files").status_code == 403
    assert client.get("/files", params={"name": name}).json()["count"] == 0
    assert client.get(f"/files/{ids['docs/a.txt']}").status_code == 404
    assert client.get(f"/files/{ids['docs']}/children").status_code == 404

    with Session(engine) as session, session.begin():
        session.get(Container, container_id).guest_right = "read"
    assert names(client.get("/files", params={"name": name})) == [name]
    assert client.get(f"/files/{ids['docs/a.txt']}").status_code == 200

    # A privilege naming the user overrides the guest right, both ways.
    with Session(engine) as session, session.begin():
        session.add(ContainerPrivilege(container_id=container_id, name=username, type="user",
                                       privilege="none"))
    assert client.get(f"/containers/{name}/files").status_code == 403
    with Session(engine) as session, session.begin():
        session.get(Container, container_id).guest_right = "none"
        privilege = session.scalar(select(ContainerPrivilege).where(
            ContainerPrivilege.container_id == container_id))
        privilege.privilege = "read_write"
    assert sorted(names(client.get(f"/containers/{name}/files"))) == ["docs", "top.bin"]


def test_task_and_execution_files_are_what_their_runs_handled(engine, api, make_user, box):
    _, _, ids = box
    _, _, owner = make_user()
    _, _, stranger = make_user()
    task = owner.post("/tasks", json={"name": unique("arch"), "workflow_type": "active_archive",
                                      "workflow_action": "copy"}).json()
    first = run_with_files(engine, task["id"], ["docs", "docs/a.txt", "docs/b.log"], ids)
    second = run_with_files(engine, task["id"], ["docs/deep/c.txt", "top.bin"], ids)
    tid = task["id"]

    # Top level: handled entries whose folder was not handled. c.txt's folder "deep" was not.
    assert sorted(names(owner.get(f"/tasks/{tid}/files"))) == ["c.txt", "docs", "top.bin"]
    assert sorted(names(owner.get(f"/tasks/{tid}/files/{ids['docs']}/children"))) == ["a.txt", "b.log"]
    assert names(owner.get(f"/task_executions/{first}/files")) == ["docs"]
    assert sorted(names(owner.get(f"/task_executions/{second}/files"))) == ["c.txt", "top.bin"]
    # A folder that holds handled files can be browsed even if it was not handled itself.
    assert names(owner.get(f"/task_executions/{second}/files/{ids['docs/deep']}/children")) == ["c.txt"]
    both = f"/tasks/{tid}/task_executions/{first}/files"
    assert names(owner.get(both)) == ["docs"]
    assert owner.get(f"{both}/{ids['docs/a.txt']}").json()["size"] == 5

    assert owner.get(f"/task_executions/{second}/files/{ids['docs/a.txt']}").status_code == 404
    assert owner.get(f"/task_executions/{first}/files/{ids['top.bin']}/children").status_code == 404
    assert owner.get(f"/tasks/{tid}/files/{ids['']}").status_code == 404

    tapes = owner.get(f"/tasks/{tid}/files/{ids['top.bin']}/tapes")
    assert tapes.status_code == 200 and tapes.json() == {"count": 0, "tapes": []}
    assert owner.get(f"/task_executions/{first}/files/{ids['top.bin']}/tapes").status_code == 404
    assert owner.get(f"{both}/{ids['docs']}/tapes").json()["count"] == 0

    # The task, its runs and their files are the owner's: everyone else gets 404.
    for path in (f"/tasks/{tid}/files", f"/task_executions/{first}/files",
                 f"/tasks/{tid}/task_executions/{first}/files/{ids['docs']}",
                 f"/tasks/{tid}/files/{ids['top.bin']}/tapes"):
        assert stranger.get(path).status_code == 404, path
    other_task = api.post("/tasks", json={"name": unique("other"), "workflow_type": "maintenance",
                                          "workflow_action": "scan"}).json()
    response = api.get(f"/tasks/{other_task['id']}/task_executions/{first}/files")
    assert response.status_code == 404
    assert response.json()["details"] == {"task_execution_id": [{"error": "not_found"}]}


def test_pool_files_import_files_and_on_tapes_files(engine, api, make_user, box, tmp_path):
    container_id, container_name, ids = box
    share_root = tmp_path / "share"
    share_root.mkdir()
    write_tree(share_root)
    pool_name = unique("pool")
    with Session(engine) as session, session.begin():
        pool = Pool(name=pool_name, type="primary", content="nas", primary_id=container_id)
        nas = Nas(name=unique("nas"))
        session.add_all([pool, nas])
        session.flush()
        share = NasShare(nas_id=nas.id, pool_id=pool.id, name=unique("share"), path=str(share_root))
        session.add(share)
        session.flush()
        share_ids = register_tree(session, share.name)
        folder = ImportFile(pool_id=pool.id, name="ltfs", file_path="/ltfs", type="folder")
        session.add(folder)
        session.flush()
        imported = ImportFile(pool_id=pool.id, name="clip.mov", parent=folder.id, size=42,
                              file_path="/ltfs/clip.mov", type="file", permission=100644)
        session.add(imported)
        session.flush()
        pool_id, share_name, folder_id, imported_id = pool.id, share.name, folder.id, imported.id

    assert sorted(names(api.get(f"/pools/{pool_id}/files"))) == sorted([container_name, share_name])
    assert api.get(f"/pools/{pool_name}/files/{share_ids['docs/a.txt']}").json()["size"] == 5
    assert sorted(names(api.get(f"/pools/{pool_id}/files/{share_ids['docs']}/children"))) == \
        ["a.txt", "b.log", "deep"]
    assert api.get(f"/pools/{pool_id}/files/{share_ids['top.bin']}/tapes").json() == {"count": 0, "tapes": []}
    # Shares are shared infrastructure; the container's files need a right on it.
    _, _, user = make_user()
    assert names(user.get(f"/pools/{pool_id}/files")) == [share_name]
    assert user.get(f"/pools/{pool_id}/files/{ids['docs']}").status_code == 404

    listed = api.get(f"/pools/{pool_id}/import_files").json()
    assert listed["count"] == 1 and listed["import_files"][0]["name"] == "ltfs"
    children = api.get(f"/pools/{pool_id}/import_files/{folder_id}/children").json()
    assert [f["id"] for f in children["import_files"]] == [imported_id]
    clip = api.get(f"/pools/{pool_name}/import_files/{imported_id}").json()
    assert clip["file_path"] == "/ltfs/clip.mov" and clip["size"] == 42
    assert api.get(f"/pools/{pool_id}/import_files", params={"size": ">100"}).json()["count"] == 0

    assert api.get(f"/pools/{pool_id}/on_tapes_files").json() == {"count": 0, "on_tapes_files": []}
    assert api.get(f"/pools/{pool_id}/on_tapes_files", params={"size": "huge"}).status_code == 422
    for path in (f"/pools/{pool_id}/on_tapes_files/1", f"/pools/{pool_id}/on_tapes_files/1/children",
                 f"/pools/{pool_id}/import_files/{imported_id + 1000}",
                 f"/pools/{pool_id}/import_files/{imported_id + 1000}/children",
                 "/pools/no-such-pool/files",
                 "/pools/no-such-pool/import_files", "/pools/no-such-pool/on_tapes_files"):
        assert api.get(path).status_code == 404, path


def test_official_sdk(engine, server, make_user, box):
    container_id, name, ids = box
    username, password, client = make_user(is_admin=True)
    task = client.post("/tasks", json={"name": unique("sdk"), "workflow_type": "active_archive",
                                       "workflow_action": "copy"}).json()
    run = run_with_files(engine, task["id"], ["docs", "docs/a.txt", "top.bin"], ids)
    files = nodeum_sdk.FilesApi(sdk_client(server, username, password))
    tid = str(task["id"])

    roots = files.index_files(name=name)
    assert isinstance(roots, nodeum_sdk.NodeumFileCollection)
    assert [f.id for f in roots.files] == [ids[""]]
    assert files.show_file(file_id=ids["docs/a.txt"]).file_path == f"/{name}/docs/a.txt"
    assert sorted(f.name for f in files.files_children(file_parent_id=ids["docs"], type="file").files) == \
        ["a.txt", "b.log"]

    assert sorted(f.name for f in files.index_files_by_task(task_id=tid).files) == ["docs", "top.bin"]
    assert files.show_file_by_task(task_id=tid, file_id=ids["top.bin"]).file_path == f"/{name}/top.bin"
    assert [f.name for f in files.files_children_by_task(task_id=tid, file_parent_id=ids["docs"]).files] == ["a.txt"]
    assert files.index_files_by_task_execution(task_execution_id=run, limit=1).count == 2
    assert [f.size for f in files.files_children_by_task_execution(
        task_execution_id=run, file_parent_id=ids["docs"]).files] == [5]
    assert files.index_files_by_task_execution_by_task(task_id=tid, task_execution_id=run).count == 2
    assert files.index_tapes_by_file_by_task(task_id=tid, file_id=ids["top.bin"]).count == 0

    assert sorted(f.name for f in files.index_files_by_container(container_id=str(container_id)).files) == \
        ["docs", "top.bin"]
    assert files.show_file_by_container(container_id=name, file_id=ids["docs"]).file_path == f"/{name}/docs"
    with pytest.raises(ApiException) as missing:
        files.show_file_by_task(task_id=tid, file_id=ids["docs/b.log"])
    assert missing.value.status == 404


def test_api_key_scopes(server, api, box):
    _, _, ids = box
    response = api.post("/users/me/api_keys", json={
        "name": unique("key"), "api_key_scopes": [{"controller": "files", "action": "index"}]})
    assert response.status_code == 201, response.text
    with server.client(headers={"Authorization": response.json()["key"]}) as keyed:
        assert keyed.get(f"/files/{ids['docs']}/children").status_code == 200
        for path, scope in ((f"/files/{ids['docs']}", "files/show"),
                            ("/pools/1/import_files", "import_files/index"),
                            ("/pools/1/on_tapes_files", "on_tapes_files/index")):
            response = keyed.get(path)
            assert response.status_code == 403, path
            assert scope in response.json()["messages"][0]
