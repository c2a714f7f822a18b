"""What a scan reports, spoken by hand to a real server: entries as a table of rows
(current nodes) or as one "seen" change each (older nodes), applied to the catalog the
same way and seen through the Nodeum file endpoints. SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from conftest import BACKENDS, _drop_database, _new_database, start_server, stop_server
from engine_fixtures import action_task
from engine_support import act, catalog_entry, create_container, latest_execution, logs, node_key

COLUMNS = ["path", "type", "size", "mode", "uid", "gid", "mtime", "atime", "ctime"]
FILE_MODE, FOLDER_MODE = 0o100644, 0o040755
JAN_2026 = 1_767_225_600.0


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


def row(path: str, size: int = 0, mtime: float = JAN_2026, folder: bool = False) -> list:
    return [path, "folder" if folder else "file", size, FOLDER_MODE if folder else FILE_MODE,
            1000, 1000, mtime, mtime, mtime]


def scan(api, node: httpx.Client, node_id: int, task: dict, items: list[dict]) -> dict:
    act(api, task["id"], "run")
    spec = node.post(f"/nodes/{node_id}/claim", params={"wait": 0})
    assert spec.status_code == 200, spec.text
    execution_id = spec.json()["id"]
    for item in items:
        answer = node.post(f"/nodes/{node_id}/executions/{execution_id}/report",
                           json={"phase": "in_progress", "items": [item]})
        assert answer.status_code == 200, answer.text
    answer = node.post(f"/nodes/{node_id}/executions/{execution_id}/report",
                       json={"final": {"status": "done"}})
    assert answer.status_code == 200, answer.text
    return latest_execution(api, task["id"])


def test_seen_rows_and_seen_changes_add_refresh_and_sweep_the_same_entries(server):
    api = server.client()
    source, root = create_container(api, server)
    (root / "area").mkdir(parents=True)  # a task's source must exist; nothing else is read
    task = action_task(api, "scan", [f"/{source}/area"], workflow_type="maintenance",
                       options={"full_report": "true"})
    node = server.client(headers={"Authorization": f"Bearer {node_key(api)}"})
    registered = node.post("/nodes", json={"name": "scanner", "storages": [
        s["key"] for s in node.get("/nodes/-/storages").json()["storages"]]})
    node_id = registered.json()["id"]
    area = f"/{source}/area"

    # A table whose columns come in another order, hashed files, a folder and its files
    # in one batch; then one listing a file before its folders; and an older node's
    # change dicts.
    order = ["size", "path", "mtime", "type", "mode", "uid", "gid", "atime", "ctime",
             "checksum", "algorithm"]
    hashed = [dict(zip(COLUMNS, values), checksum=checksum, algorithm="sha256")
              for values, checksum in ((row(area, folder=True), None),
                                       (row(f"{area}/keep.txt", 4), "aa" * 32),
                                       (row(f"{area}/edit.txt", 4), "bb" * 32),
                                       (row(f"{area}/sub", folder=True), None),
                                       (row(f"{area}/sub/deep.txt", 4), "cc" * 32))]
    first = scan(api, node, node_id, task, [
        {"key": "scan:0:a", "outcome": "done",
         "seen": {"columns": order, "rows": [[entry[name] for name in order]
                                             for entry in hashed]}},
        {"key": "scan:0:b", "outcome": "done",
         "seen": {"columns": COLUMNS, "rows": [row(f"{area}/lone/far/x.txt", 7),
                                               row(f"{area}/lone/far", folder=True),
                                               row(f"{area}/lone", folder=True)]}},
        {"key": "scan:0:c", "outcome": "done", "changes": [
            {"op": "seen", "path": f"{area}/old.txt",
             "entry": dict(zip(COLUMNS[1:], row("", 5)[1:]))}]},
        {"key": "finish", "outcome": "done", "changes": [{"op": "swept", "path": area}]},
    ])
    assert first["status"] == "done", first
    lines = [line["msg"] for line in logs(api, first["id"])]
    for name in ("keep.txt", "edit.txt", "sub", "sub/deep.txt", "lone/far/x.txt", "old.txt"):
        assert f"{area}/{name}: new" in lines, (name, lines)
    keep = catalog_entry(api, f"{area}/keep.txt")
    assert (keep["type"], keep["size"], keep["permission"]) == ("file", 4, 100644)
    assert keep["checksums"] == ["sha256:" + "aa" * 32]
    assert keep["modification_date"].startswith("2026-01-01T00:00:00")
    assert catalog_entry(api, f"{area}/sub")["type"] == "folder"
    assert catalog_entry(api, f"{area}/lone/far")["type"] == "folder"
    assert catalog_entry(api, f"{area}/lone/far/x.txt")["size"] == 7
    assert catalog_entry(api, f"{area}/old.txt")["size"] == 5
    deep = catalog_entry(api, f"{area}/sub/deep.txt")
    assert deep["parent"] == catalog_entry(api, f"{area}/sub")["id"]
    files = api.get(f"/task_executions/{first['id']}/files", params={"limit": 100}).json()
    # The execution's files, shown from the top: what it handled under /area is inside.
    assert [entry["file_path"] for entry in files["files"]] == [area]

    # Again, not hashed: edit.txt changed (its checksum goes), keep.txt did not (its
    # checksum stays), sub/ and old.txt are gone.
    second = scan(api, node, node_id, task, [
        {"key": "scan:0:a", "outcome": "done", "seen": {"columns": COLUMNS, "rows": [
            row(area, folder=True), row(f"{area}/keep.txt", 4), row(f"{area}/edit.txt", 9),
            row(f"{area}/lone", folder=True), row(f"{area}/lone/far", folder=True),
            row(f"{area}/lone/far/x.txt", 7)]}},
        {"key": "finish", "outcome": "done", "changes": [{"op": "swept", "path": area}]},
    ])
    assert second["status"] == "done", second
    lines = [line["msg"] for line in logs(api, second["id"])]
    for expected in (f"{area}/keep.txt: unchanged", f"{area}/edit.txt: changed",
                     f"{area}/sub/deep.txt: deleted", f"{area}/sub: deleted",
                     f"{area}/old.txt: deleted"):
        assert expected in lines, (expected, lines)
    assert catalog_entry(api, f"{area}/keep.txt")["checksums"] == ["sha256:" + "aa" * 32]
    edited = catalog_entry(api, f"{area}/edit.txt")
    assert edited["size"] == 9 and edited["checksums"] == []
    assert catalog_entry(api, f"{area}/sub") is None
    assert catalog_entry(api, f"{area}/old.txt") is None

    # A batch that starts below a folder no report named (not something a scan does:
    # it reports folders first): the folders are made for it.
    scan(api, node, node_id, task, [{"key": "scan:0:a", "outcome": "done", "seen": {
        "columns": COLUMNS, "rows": [row(f"{area}/new/inner/y.txt", 2)]}}])
    inner = catalog_entry(api, f"{area}/new/inner")
    assert inner["type"] == "folder"
    assert catalog_entry(api, f"{area}/new/inner/y.txt")["parent"] == inner["id"]
    node.close()
    api.close()
