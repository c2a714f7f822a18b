"""The references part of the node protocol, spoken by hand: a node reports written
copies, then reads them back page by page for another execution it holds."""

from __future__ import annotations

import pytest

from conftest import BACKENDS, _drop_database, _new_database, start_server, stop_server, unique
from engine_support import act, create_container, node_key, share_on


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    database = _new_database(request.param, tmp_path)
    running = start_server(database, tmp_path / "data", args=("--no-worker",))
    yield running
    stop_server(running)
    _drop_database(database)


def _task(api, action: str, source: str, destination: str | None = None) -> dict:
    task = api.post("/tasks", json={"name": unique(action), "workflow_type": "active_archive",
                                    "workflow_action": action}).json()
    assert api.post(f"/tasks/{task['id']}/task_sources", json={"file_path": source}).status_code == 201
    if destination:
        response = api.post(f"/tasks/{task['id']}/task_destinations",
                            json={"folder_path": destination})
        assert response.status_code == 201, response.text
    return task


def _written(name: str, source: str, share: str, checksum: str) -> dict:
    entry = {"type": "file", "size": 3, "mode": 0o100644, "uid": 0, "gid": 0,
             "mtime": 1_700_000_000.0, "atime": 1_700_000_000.0, "ctime": 1_700_000_000.0}
    return {"key": name, "outcome": "done", "size": 3, "changes": [{
        "op": "written", "path": f"/{share}/{name}", "entry": entry, "checksum": checksum,
        "algorithm": "xxh128", "copy_of": f"/{source}/in/{name}", "source_entry": entry}]}


def test_a_node_pages_through_the_copies_of_the_execution_it_holds(server, tmp_path):
    api = server.client()
    source, source_root = create_container(api, server)
    (source_root / "in").mkdir()
    for name in ("a", "b", "c"):
        (source_root / "in" / name).write_text(name * 3)
    (tmp_path / "share").mkdir()
    share = share_on(api, tmp_path / "share")
    key = node_key(api)
    node = server.client(headers={"Authorization": f"Bearer {key}"})
    storages = [s["key"] for s in node.get("/nodes/-/storages").json()["storages"]]
    node_id = node.post("/nodes", json={"name": "by-hand", "storages": storages}).json()["id"]
    other_id = node.post("/nodes", json={"name": "other", "storages": storages}).json()["id"]

    copy = _task(api, "copy", f"/{source}/in", f"/{share}")
    act(api, copy["id"], "run")
    claimed = node.post(f"/nodes/{node_id}/claim", params={"wait": 0}).json()
    report = node.post(f"/nodes/{node_id}/executions/{claimed['id']}/report", json={
        "items": [_written(name, source, share, f"sum-{name}") for name in ("a", "b", "c")],
        "final": {"status": "done", "message": None}})
    assert report.status_code == 200, report.text

    check = _task(api, "check_consistency", f"/{source}/in")
    act(api, check["id"], "run")
    held = node.post(f"/nodes/{node_id}/claim", params={"wait": 0}).json()
    url = f"/nodes/{node_id}/executions/{held['id']}/references"
    records, after = [], None
    while True:
        params = {"kind": "copies", "limit": 2, **({"after": after} if after else {})}
        page = node.get(url, params=params)
        assert page.status_code == 200, page.text
        records += page.json()["references"]
        after = page.json()["next"]
        if after is None:
            break
    assert [(r["file"], r["copy"], r["checksum"]) for r in records] == [
        (f"/{source}/in/{name}", f"/{share}/{name}", f"sum-{name}") for name in ("a", "b", "c")]
    assert all(r["algorithm"] == "xxh128" and r["verified_date"] is None for r in records)

    bad = node.get(url, params={"kind": "everything"})
    assert bad.status_code == 422 and bad.json()["details"]["kind"][0]["error"] == "inclusion"
    # Only the node holding the execution may read its references.
    foreign = node.get(f"/nodes/{other_id}/executions/{held['id']}/references",
                       params={"kind": "copies"})
    assert foreign.status_code == 403
    node.post(f"/nodes/{node_id}/executions/{held['id']}/report",
              json={"final": {"status": "done", "message": None}})
    assert node.get(url, params={"kind": "copies"}).status_code == 403
    node.close()
    api.close()
