"""Task sources, destinations, options, metadata and callbacks over HTTP and through the
official client. Storage objects are created directly in the database: their own
endpoints are not needed to refer to them."""

from __future__ import annotations

import os
from types import SimpleNamespace

import nodeum_sdk
import pytest
from nodeum_sdk.rest import ApiException
from sqlalchemy.orm import Session

from conftest import sdk_client, unique
from tiermover.db.models import (
    Container, ImportFile, Nas, NasShare, Pool, Tape, TapeDrive, TapeLibrary, TaskExecution,
)
from tiermover.db.session import make_engine


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database.url)
    yield engine
    engine.dispose()


@pytest.fixture
def storage(engine, tmp_path):
    """A container, a NAS share (with a symlink leading out of it), a tape pool with two
    tapes, a tape drive and an imported file; returns their names and ids."""
    container_root = tmp_path / "container"
    (container_root / "docs").mkdir(parents=True)
    (container_root / "docs" / "a.txt").write_text("alpha")
    share_root = tmp_path / "share"
    (share_root / "in").mkdir(parents=True)
    (share_root / "in" / "b.bin").write_bytes(b"\0" * 64)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not yours")
    os.symlink(outside, share_root / "escape")
    os.symlink(outside / "secret", share_root / "in" / "secret-link")

    with Session(engine) as session:
        container = Container(name=unique("ctr"), root_path=str(container_root))
        nas = Nas(name=unique("nas"))
        pool = Pool(name=unique("pool"), type="offline_archive", content="tape")
        library = TapeLibrary(name=unique("lib"))
        session.add_all([container, nas, pool, library])
        session.flush()
        share = NasShare(nas_id=nas.id, name=unique("share"), path=str(share_root))
        tapes = [Tape(barcode=unique("T").upper(), tape_library_id=library.id, pool_id=pool.id,
                      location=f"Slot {n}") for n in (1, 2)]
        drive = TapeDrive(tape_library_id=library.id, name=unique("drive"))
        imported = ImportFile(pool_id=pool.id, name="old.dat", type="file", size=10,
                              file_path=f"/{unique('ltfs')}/old.dat")
        session.add_all([share, *tapes, drive, imported])
        session.commit()
        return SimpleNamespace(
            container=container.name, container_id=container.id, share=share.name,
            share_id=share.id, pool=pool.name, pool_id=pool.id,
            tapes=[t.barcode for t in tapes], tape_ids=[t.id for t in tapes],
            drive=drive.name, drive_id=drive.id, import_file_id=imported.id,
            import_file_path=imported.file_path,
        )


def new_task(client, action="copy", **fields) -> dict:
    body = {"name": unique("task"), "workflow_type": "active_archive", "workflow_action": action,
            **fields}
    response = client.post("/tasks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def post(client, task, part, body, status=201):
    response = client.post(f"/tasks/{task['id']}/{part}", json=body)
    assert response.status_code == status, response.text
    return response.json()


def errors(response, status=422) -> dict:
    assert response.status_code == status, response.text
    return response.json()["details"]


# --- sources --------------------------------------------------------------------------------

def test_source_by_path_is_catalogued_and_embeds_its_objects(api, storage):
    task = new_task(api)
    source = post(api, task, "task_sources",
                  {"file_path": f"/{storage.container}//docs/./a.txt", "range": [0, 4]})
    assert source["file_path"] == f"/{storage.container}/docs/a.txt"
    assert source["file"]["id"] == source["file_id"] and source["file"]["name"] == "a.txt"
    assert source["file"]["type"] == "file" and source["file"]["size"] == 5
    assert source["file"]["file_path"] == source["file_path"]
    assert source["container"]["id"] == storage.container_id
    assert source["range"] == [0, 4]
    assert source["tape"] is None and source["pool"] is None and source["import_file"] is None
    assert source["tape_id"] is None and source["pool_name"] is None

    shown = api.get(f"/tasks/{task['id']}/task_sources/{source['id']}")
    assert shown.status_code == 200 and shown.json() == source
    listed = api.get(f"/tasks/{task['name']}/task_sources").json()
    assert listed == {"count": 1, "task_sources": [source]}
    # The same file named by its catalogue id is the same file.
    again = post(api, task, "task_sources", {"file_id": source["file_id"]})
    assert again["file_path"] == source["file_path"] and again["container"] == source["container"]


def test_every_kind_of_source_reference(api, storage):
    task = new_task(api)
    on_share = post(api, task, "task_sources", {"file_path": f"/{storage.share}/in"})
    assert on_share["file"]["type"] == "folder" and on_share["container"] is None
    tape = post(api, task, "task_sources", {"tape_barcode": storage.tapes[0]})
    assert tape["tape_id"] == storage.tape_ids[0] and tape["tape"]["barcode"] == storage.tapes[0]
    both = post(api, task, "task_sources", {"tape_id": storage.tape_ids[1],
                                            "tape_barcode": storage.tapes[1]})
    assert both["tape"]["location"] == "Slot 2"
    pool = post(api, task, "task_sources", {"pool_id": storage.pool_id})
    assert pool["pool_name"] == storage.pool and pool["pool"]["content"] == "tape"
    imported = post(api, task, "task_sources", {"import_file_path": storage.import_file_path})
    assert imported["import_file_id"] == storage.import_file_id
    assert imported["import_file"]["name"] == "old.dat"

    url = f"/tasks/{task['id']}/task_sources"
    assert api.get(url, params={"tape_id": storage.tape_ids[0]}).json()["count"] == 1
    assert api.get(url, params={"pool_id": storage.pool_id}).json()["count"] == 1
    assert api.get(url, params={"import_file_id": storage.import_file_id}).json()["count"] == 1
    assert api.get(url, params={"file_id": on_share["file_id"]}).json()["count"] == 1
    page = api.get(url, params={"sort_by": "id:desc", "limit": 2, "offset": 1}).json()
    assert page["count"] == 5 and [s["id"] for s in page["task_sources"]] == [pool["id"], both["id"]]
    assert errors(api.get(url, params={"folder_id": 1}))["folder_id"][0]["error"] == "invalid"


def test_a_source_names_exactly_one_reference(api, storage):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_sources"
    nothing = errors(api.post(url, json={}))
    assert nothing["base"][0]["error"] == "blank"
    assert errors(api.post(url, json={"range": [1, 2]}))["base"][0]["error"] == "blank"
    several = api.post(url, json={"tape_id": storage.tape_ids[0], "pool_name": storage.pool})
    assert errors(several)["base"][0]["error"] == "invalid"
    assert "a tape and a pool" in several.json()["messages"][0]


@pytest.mark.parametrize("body, field, kind", [
    ({"tape_barcode": "NOSUCH01"}, "tape_barcode", "not_found"),
    ({"tape_id": 987654321}, "tape_id", "not_found"),
    ({"pool_id": 10**30}, "pool_id", "not_found"),
    ({"pool_name": "  "}, "pool_name", "blank"),
    ({"file_id": 987654321}, "file_id", "not_found"),
    ({"import_file_path": "/nowhere/x"}, "import_file_path", "not_found"),
    ({"file_path": "/{container}/docs/missing.txt"}, "file_path", "not_found"),
    ({"file_path": "/no-such-storage/a"}, "file_path", "not_found"),
    ({"file_path": "docs/a.txt"}, "file_path", "invalid"),
    ({"file_path": "/"}, "file_path", "invalid"),
    ({"file_path": "/{share}/../{container}/docs"}, "file_path", "escapes_root"),
    ({"file_path": "/{share}/escape"}, "file_path", "escapes_root"),
    ({"file_path": "/{share}/escape/secret"}, "file_path", "escapes_root"),
    ({"file_path": "/{share}/in/secret-link"}, "file_path", "escapes_root"),
    ({"tape_id": "{tape1}", "tape_barcode": "{tape0}"}, "tape_barcode", "invalid"),
    ({"range": [5, 1], "pool_id": "{pool_id}"}, "range", "invalid"),
    ({"range": [-1, 3], "pool_id": "{pool_id}"}, "range", "invalid"),
    ({"range": [1], "pool_id": "{pool_id}"}, "range", "wrong_length"),
    ({"range": [1, 2, 3], "pool_id": "{pool_id}"}, "range", "wrong_length"),
    ({"range": ["a", 2], "pool_id": "{pool_id}"}, "range.0", "not_a_number"),
    ({"tape_id": "abc"}, "tape_id", "not_a_number"),
    ({"file_path": 12}, "file_path", "invalid"),
])
def test_source_reference_errors(api, storage, body, field, kind):
    names = dict(container=storage.container, share=storage.share, pool_id=storage.pool_id,
                 tape0=storage.tapes[0], tape1=storage.tape_ids[1])

    def fill(value):
        if isinstance(value, str) and "{" in value:
            filled = value.format(**names)
            return int(filled) if filled.isdigit() else filled
        return value

    body = {key: fill(value) for key, value in body.items()}
    task = new_task(api)
    details = errors(api.post(f"/tasks/{task['id']}/task_sources", json=body))
    assert details[field][0]["error"] == kind, details


def test_source_update_replaces_the_reference_and_keeps_the_range(api, storage):
    task = new_task(api)
    source = post(api, task, "task_sources",
                  {"file_path": f"/{storage.container}/docs", "range": [10, 20]})
    url = f"/tasks/{task['id']}/task_sources/{source['id']}"
    updated = api.put(url, json={"tape_barcode": storage.tapes[1]})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["tape_id"] == storage.tape_ids[1] and body["range"] == [10, 20]
    assert body["file_id"] is None and body["file_path"] is None and body["container"] is None
    assert api.put(url, json={"range": None}).json()["range"] is None
    assert errors(api.put(url, json={"tape_id": None}))["base"][0]["error"] == "blank"
    assert api.get(url).json()["tape_id"] == storage.tape_ids[1]  # the refused update changed nothing
    # A shown source sent back as it is (embedded objects included) is accepted.
    assert api.put(url, json=api.get(url).json()).json() == api.get(url).json()


def test_sources_and_destinations_must_suit_the_action(api, storage):
    formatting = new_task(api, action="format", workflow_type="maintenance")
    refused = api.post(f"/tasks/{formatting['id']}/task_sources",
                       json={"file_path": f"/{storage.container}/docs"})
    assert errors(refused)["file_path"][0]["error"] == "invalid"
    assert "format task" in refused.json()["messages"][0]
    post(api, formatting, "task_sources", {"tape_barcode": storage.tapes[0]})
    refused = api.post(f"/tasks/{formatting['id']}/task_destinations",
                       json={"pool_id": storage.pool_id})
    assert "format tasks have no destination" in refused.json()["messages"][0]


def test_destroy_and_what_is_not_found(api, make_user, storage):
    task, other_task = new_task(api), new_task(api)
    source = post(api, task, "task_sources", {"pool_name": storage.pool})
    base = f"/tasks/{task['id']}/task_sources"
    assert api.get(f"/tasks/{other_task['id']}/task_sources/{source['id']}").status_code == 404
    for bad_id in ("abc", "0", "-1", str(10**30), "1.5"):
        response = api.get(f"{base}/{bad_id}")
        assert response.status_code == 404, (bad_id, response.text)
        assert response.json()["details"]["task_source_id"][0]["error"] == "not_found"
    _, _, stranger = make_user()
    assert stranger.get(base).status_code == 404
    assert stranger.delete(f"{base}/{source['id']}").status_code == 404
    deleted = api.delete(f"{base}/{source['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(f"{base}/{source['id']}").status_code == 404
    assert api.delete(f"{base}/{source['id']}").status_code == 404
    assert api.get("/tasks/999999999/task_sources").status_code == 404


def test_malformed_bodies_are_422(api, storage):
    task = new_task(api)
    for part in ("task_sources", "task_destinations", "task_options", "task_metadata",
                 "task_callbacks"):
        for content in (b"{not json", b"[1]", b'"text"', b""):
            response = api.post(f"/tasks/{task['id']}/{part}", content=content,
                                headers={"content-type": "application/json"})
            assert response.status_code == 422, (part, content, response.text)
            assert response.json()["details"]


@pytest.mark.parametrize("part, body, field", [
    ("task_metadata", {"key": "a\x00b"}, "key"),
    ("task_metadata", {"key": "k", "value": "v\x00"}, "value"),
    ("task_options", {"type": "learning_type", "value": "x\x00"}, "value"),
    ("task_options", {"type": "barcodes", "value": "A\x00"}, "value"),
    ("task_callbacks", {"script": 'name == "\x00"'}, "script"),
    ("task_sources", {"tape_barcode": "T\x00"}, "tape_barcode"),
    ("task_sources", {"import_file_path": "/x\x00"}, "import_file_path"),
    ("task_destinations", {"pool_name": "\x00"}, "pool_name"),
])
def test_nul_characters_are_refused_on_their_field(api, part, body, field):
    # PostgreSQL cannot hold (or even compare) NUL in text; SQLite could: both must refuse.
    task = new_task(api)
    assert errors(api.post(f"/tasks/{task['id']}/{part}", json=body))[field][0]["error"] == "invalid"


# --- destinations -------------------------------------------------------------------------

def test_destination_folders(api, storage):
    task = new_task(api)
    later = post(api, task, "task_destinations",
                 {"folder_path": f"/{storage.container}/archive/2024"})
    assert later["folder_path"] == f"/{storage.container}/archive/2024"
    assert later["folder_id"] is None and later["folder"] is None
    assert later["container"]["name"] == storage.container
    assert set(later) == {"folder_id", "folder_path", "tape_id", "tape_barcode", "pool_id",
                          "pool_name", "id", "folder", "container", "tape", "pool"}
    existing = post(api, task, "task_destinations", {"folder_path": f"/{storage.container}/docs"})
    assert existing["folder"]["type"] == "folder" and existing["folder_id"]
    share_root = post(api, task, "task_destinations", {"folder_path": f"/{storage.share}"})
    assert share_root["folder"]["name"] == storage.share and share_root["container"] is None
    by_id = post(api, task, "task_destinations", {"folder_id": existing["folder_id"]})
    assert by_id["folder_path"] == existing["folder_path"]

    url = f"/tasks/{task['id']}/task_destinations"
    is_a_file = api.post(url, json={"folder_path": f"/{storage.container}/docs/a.txt"})
    assert "is a file, not a folder" in is_a_file.json()["messages"][0]
    file_id = post(api, task, "task_sources",
                   {"file_path": f"/{storage.container}/docs/a.txt"})["file_id"]
    assert errors(api.post(url, json={"folder_id": file_id}))["folder_id"][0]["error"] == "invalid"
    escaping = api.post(url, json={"folder_path": f"/{storage.share}/escape/new"})
    assert errors(escaping)["folder_path"][0]["error"] == "escapes_root"
    dotdot = api.post(url, json={"folder_path": f"/{storage.share}/new/../../x"})
    assert errors(dotdot)["folder_path"][0]["error"] == "escapes_root"
    mismatch = api.post(url, json={"folder_id": existing["folder_id"],
                                   "folder_path": f"/{storage.share}"})
    assert errors(mismatch)["folder_path"][0]["error"] == "invalid"
    assert api.get(url, params={"folder_id": existing["folder_id"]}).json()["count"] == 2


def test_destination_tapes_and_pools(api, storage):
    task = new_task(api)
    pool = post(api, task, "task_destinations", {"pool_name": storage.pool})
    tape = post(api, task, "task_destinations", {"tape_id": storage.tape_ids[0]})
    assert pool["pool"]["name"] == storage.pool and pool["folder"] is None
    assert tape["tape_barcode"] == storage.tapes[0] and tape["tape"]["type"] == "data_lto5"
    url = f"/tasks/{task['id']}/task_destinations"
    assert [d["id"] for d in api.get(url, params={"pool_id": storage.pool_id}).json()[
        "task_destinations"]] == [pool["id"]]
    assert api.get(url, params={"tape_id": f"><{storage.tape_ids[0]}|0"}).json()["count"] == 1
    moved = api.put(f"{url}/{tape['id']}", json={"pool_id": storage.pool_id}).json()
    assert moved["tape"] is None and moved["pool_id"] == storage.pool_id
    assert errors(api.post(url, json={"pool_id": storage.pool_id, "tape_id": 1}))["base"]


# --- options ------------------------------------------------------------------------------

@pytest.fixture
def execution_of(engine):
    """Record an execution of a task directly in the database; returns its id."""

    def record(task: dict) -> str:
        execution_id = str(1_600_000_000_000_000_000 + task["id"])
        with Session(engine) as session:
            session.add(TaskExecution(id=execution_id, task_id=task["id"], status="done"))
            session.commit()
        return execution_id

    return record


GOOD_VALUES = {
    "file_checksum": ["md5", "sha256", "xxh64", "xxh128", "blake3", "crc32"],
    "reset_file_date": ["true", "false", "1", "0", "TRUE"],
    "parallel_processing": ["1", "64", "8"],
    "processing_order": ["asc", "desc", "size_asc", "size_desc", "mtime_asc", "mtime_desc"],
    "rehydration_usage_threshold": ["0", "100", "55.5"],
    "rehydration_deleted_files_threshold": ["30"],
    "learning_threshold": ["0", "12"],
    "learning_type": ["whatever"],
    "rename_to": ["report (final).txt", "..hidden"],
    "soft_erase": ["0"], "task_template": ["1"], "overwrite": ["false"],
}
BAD_VALUES = {
    "file_checksum": (["MD5", "sha1", ""], "must be one of md5, sha256"),
    "full_report": (["yes", "2", ""], "must be true, false, 1 or 0"),
    "parallel_processing": (["0", "65", "four", "1.5"], "from 1 to 64"),
    "processing_order": (["random"], "must be one of asc, desc, size_asc"),
    "rehydration_usage_threshold": (["101", "-1", "half"], "percentage from 0 to 100"),
    "learning_threshold": (["-1", "x"], "at least 0"),
    "rename_to": (["", ".", "..", "a/b", "x" * 256], ""),
    "execution_task_id": (["42", ""], "execution of one of your tasks"),
    "task_id": (["999999999", "no-such-task"], "one of your tasks"),
    "barcodes": (["", " , |"], "tape barcodes"),
    "selected_drive": (["999999", "no-such-drive"], "tape drive"),
    "learning_type": ([" "], ""),
}


def test_option_values_are_checked_per_type(api):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_options"
    for kind, values in GOOD_VALUES.items():
        for value in values:
            option = post(api, task, "task_options", {"type": kind, "value": value})
            assert option == {"id": option["id"], "type": kind, "value": value}
            assert api.delete(f"{url}/{option['id']}").status_code == 204
    for kind, (values, hint) in BAD_VALUES.items():
        for value in values:
            response = api.post(url, json={"type": kind, "value": value})
            details = errors(response)
            assert list(details) == ["value"], (kind, value, details)
            assert hint in response.json()["messages"][0], (kind, value, response.text)
    assert api.get(url).json()["count"] == 0


def test_option_references(api, make_user, storage, execution_of):
    task, target = new_task(api), new_task(api)
    _, _, stranger = make_user()
    strangers_task = new_task(stranger)
    url = f"/tasks/{task['id']}/task_options"

    def accepted(kind, value):
        option = post(api, task, "task_options", {"type": kind, "value": value})
        api.delete(f"{url}/{option['id']}")
        return option["value"]

    execution = execution_of(target)
    assert accepted("execution_task_id", execution) == execution
    assert accepted("task_id", str(target["id"])) == str(target["id"])
    assert accepted("task_id", target["name"]) == target["name"]
    barcodes = f"{storage.tapes[0]}, {storage.tapes[1]}|{storage.tapes[0]}"
    assert accepted("barcodes", barcodes) == barcodes
    assert accepted("selected_drive", str(storage.drive_id)) == str(storage.drive_id)
    assert accepted("selected_drive", storage.drive) == storage.drive

    foreign_execution = execution_of(strangers_task)
    # Other users' tasks and executions are as unknown as missing ones.
    stranger_url = f"/tasks/{strangers_task['id']}/task_options"
    own = stranger.post(stranger_url, json={"type": "execution_task_id", "value": execution})
    assert errors(own)["value"][0]["error"] == "not_found"
    own = stranger.post(stranger_url, json={"type": "task_id", "value": str(task["id"])})
    assert errors(own)["value"][0]["error"] == "not_found"
    assert stranger.post(stranger_url, json={"type": "execution_task_id",
                                             "value": foreign_execution}).status_code == 201
    unknown = api.post(url, json={"type": "barcodes", "value": f"{storage.tapes[0]} NOPE1 NOPE2"})
    assert "names unknown tapes: NOPE1, NOPE2" in unknown.json()["messages"][0]


def test_one_option_of_each_type(api):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_options"
    checksum = post(api, task, "task_options", {"type": "file_checksum", "value": "md5"})
    taken = api.post(url, json={"type": "file_checksum", "value": "sha256"})
    assert errors(taken)["type"][0] == {"error": "taken", "value": "file_checksum"}
    # JSON numbers and booleans are accepted as their text.
    workers = post(api, task, "task_options", {"type": "parallel_processing", "value": 8})
    assert workers["value"] == "8"
    report = post(api, task, "task_options", {"type": "full_report", "value": True})
    assert report["value"] == "true"
    item = f"{url}/{workers['id']}"
    assert errors(api.put(item, json={"type": "file_checksum"}))["type"][0]["error"] == "taken"
    assert errors(api.put(item, json={"value": "0"}))["value"][0]["error"] == "invalid"
    assert api.put(item, json={"value": 16}).json()["value"] == "16"
    # Changing only the type re-checks the kept value against the new type.
    kept = api.put(item, json={"type": "learning_threshold"}).json()
    assert (kept["type"], kept["value"]) == ("learning_threshold", "16")
    refused = api.put(f"{url}/{checksum['id']}", json={"type": "reset_file_date"})
    assert errors(refused)["value"][0]["error"] == "inclusion"  # "md5" is no boolean
    assert errors(api.post(url, json={"type": "nonsense", "value": "1"}))["type"][0]["error"] == "inclusion"
    missing = errors(api.post(url, json={}))
    assert missing["type"][0]["error"] == "blank" and missing["value"][0]["error"] == "blank"
    assert [o["type"] for o in api.get(url, params={"type": "~%report"}).json()["task_options"]] == ["full_report"]
    assert api.get(url, params={"value": "md5"}).json()["count"] == 1
    assert api.get(url, params={"sort_by": "type:desc"}).json()["task_options"][0]["type"] == "learning_threshold"


# --- metadata -----------------------------------------------------------------------------

def test_metadata(api):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_metadata"
    project = post(api, task, "task_metadata", {"key": "project", "value": "apollo"})
    assert project == {"id": project["id"], "key": "project", "value": "apollo"}
    year = post(api, task, "task_metadata", {"key": " year ", "value": 2024})
    assert year["key"] == "year" and year["value"] == "2024"
    empty = post(api, task, "task_metadata", {"key": "note"})
    assert empty["value"] is None
    assert errors(api.post(url, json={"key": "project"}))["key"][0]["error"] == "taken"
    assert errors(api.post(url, json={"key": "  "}))["key"][0]["error"] == "blank"
    assert errors(api.post(url, json={"key": "k" * 256}))["key"][0] == {"error": "too_long", "count": 255}
    item = f"{url}/{year['id']}"
    assert errors(api.put(item, json={"key": "project"}))["key"][0]["error"] == "taken"
    assert api.put(item, json={"value": "2025"}).json() == {**year, "value": "2025"}
    assert api.put(item, json={"key": "year"}).status_code == 200  # its own key is not taken
    listed = api.get(url, params={"key": "><project|year", "sort_by": "key"}).json()
    assert [m["key"] for m in listed["task_metadata"]] == ["project", "year"]
    assert api.get(url, params={"value": "~apol%"}).json()["count"] == 1
    # Another task may use the same key.
    post(api, new_task(api), "task_metadata", {"key": "project"})


# --- callbacks ----------------------------------------------------------------------------

def test_filter_callbacks(api):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_callbacks"
    script = 'size > 10MB and name ~ "*.txt" and not (path ~ "/tmp/*")'
    callback = post(api, task, "task_callbacks", {"type": "filter", "script": script})
    assert callback == {"id": callback["id"], "type": "filter", "script": script}
    untyped = post(api, task, "task_callbacks", {"script": "uid == 1000"})
    assert untyped["type"] == "filter"
    refused = api.post(url, json={"type": "filter", "script": "size > > 1"})
    assert errors(refused)["script"][0]["error"] == "invalid"
    assert "at position 8" in refused.json()["messages"][0]
    assert errors(api.post(url, json={"type": "script", "script": "uid == 1"}))["type"][0]["error"] == "inclusion"
    assert errors(api.post(url, json={"type": "filter"}))["script"][0]["error"] == "blank"
    assert errors(api.post(url, json={"script": "__import__('os').system('id')"}))["script"]
    item = f"{url}/{untyped['id']}"
    assert api.put(item, json={"script": 'extension in ["jpg"]'}).json()["script"] == 'extension in ["jpg"]'
    assert api.put(item, json={"script": "uid =="}).status_code == 422
    assert api.get(item).json()["script"] == 'extension in ["jpg"]'
    assert api.get(url, params={"script": "~%jpg%"}).json()["count"] == 1
    assert api.get(url, params={"type": "filter"}).json()["count"] == 2


# --- scopes -------------------------------------------------------------------------------

def test_api_key_scopes_per_part(server, api, make_user):
    _, _, owner = make_user()
    task = new_task(owner)
    scopes = [{"controller": "task_options", "action": "index"},
              {"controller": "task_metadata", "action": "create"}]
    key = owner.post("/users/me/api_keys", json={"name": unique("key"),
                                                 "api_key_scopes": scopes}).json()["key"]
    with server.client(headers={"Authorization": f"Bearer {key}"}) as limited:
        assert limited.get(f"/tasks/{task['id']}/task_options").status_code == 200
        assert limited.post(f"/tasks/{task['id']}/task_options",
                            json={"type": "overwrite", "value": "1"}).status_code == 403
        assert limited.post(f"/tasks/{task['id']}/task_metadata",
                            json={"key": "k"}).status_code == 201
        assert limited.get(f"/tasks/{task['id']}/task_metadata").status_code == 403
        assert limited.get(f"/tasks/{task['id']}/task_sources").status_code == 403


# --- the official client ------------------------------------------------------------------

def sdk_task(server) -> str:
    tasks = nodeum_sdk.TasksApi(sdk_client(server))
    return str(tasks.create_task(task_body=nodeum_sdk.Task(
        name=unique("sdk"), workflow_type="offline_archive", workflow_action="copy")).id)


def test_sdk_task_sources_and_destinations(server, storage):
    task_id = sdk_task(server)
    sources = nodeum_sdk.TaskSourcesApi(sdk_client(server))
    created = sources.create_task_source(task_id=task_id, task_source_body=nodeum_sdk.TaskSourceUp(
        file_path=f"/{storage.container}/docs/a.txt", range=[1, 3]))
    assert isinstance(created, nodeum_sdk.TaskSourceDown)
    assert created.file.name == "a.txt" and created.container.name == storage.container
    assert created.range == [1, 3]
    shown = sources.show_task_source(task_id=task_id, task_source_id=created.id)
    assert shown.to_dict() == created.to_dict()
    updated = sources.update_task_source(task_id=task_id, task_source_id=created.id,
                                         task_source_body=nodeum_sdk.TaskSourceUp(
                                             tape_barcode=storage.tapes[0]))
    assert updated.tape.barcode == storage.tapes[0] and updated.file is None
    page = sources.index_task_sources(task_id=task_id, tape_id=str(storage.tape_ids[0]),
                                      sort_by=["id:desc", "pool_id"], limit=5)
    assert page.count == 1 and page.task_sources[0].id == created.id
    sources.destroy_task_source(task_id=task_id, task_source_id=created.id)
    with pytest.raises(ApiException) as missing:
        sources.show_task_source(task_id=task_id, task_source_id=created.id)
    assert missing.value.status == 404

    destinations = nodeum_sdk.TaskDestinationsApi(sdk_client(server))
    made = destinations.create_task_destination(
        task_id=task_id, task_destination_body=nodeum_sdk.TaskDestinationUp(
            folder_path=f"/{storage.share}/out"))
    assert made.folder is None and made.container is None
    assert destinations.show_task_destination(
        task_id=task_id, task_destination_id=made.id).to_dict() == made.to_dict()
    moved = destinations.update_task_destination(
        task_id=task_id, task_destination_id=made.id,
        task_destination_body=nodeum_sdk.TaskDestinationUp(pool_name=storage.pool))
    assert moved.pool.name == storage.pool and moved.pool.type == "offline_archive"
    listed = destinations.index_task_destinations(task_id=task_id, pool_id=str(storage.pool_id))
    assert listed.count == 1 and listed.task_destinations[0].pool.id == storage.pool_id
    destinations.destroy_task_destination(task_id=task_id, task_destination_id=made.id)
    assert destinations.index_task_destinations(task_id=task_id).count == 0
    with pytest.raises(ApiException) as refused:
        destinations.create_task_destination(
            task_id=task_id, task_destination_body=nodeum_sdk.TaskDestinationUp(
                folder_path=f"/{storage.share}/escape/x"))
    assert refused.value.status == 422 and "escapes_root" in refused.value.body


def test_sdk_options_metadata_and_callbacks(server):
    # The 1.88 client takes keyword arguments only.
    task_id = sdk_task(server)
    options = nodeum_sdk.TaskOptionsApi(sdk_client(server))
    option = options.create_task_option(
        task_id=task_id, task_option_body=nodeum_sdk.TaskOption(type="file_checksum", value="md5"))
    assert (option.type, option.value) == ("file_checksum", "md5")
    shown = options.show_task_option(task_id=task_id, task_option_id=option.id)
    assert shown.to_dict() == option.to_dict()
    changed = options.update_task_option(
        task_id=task_id, task_option_id=option.id,
        task_option_body=nodeum_sdk.TaskOption(type="file_checksum", value="blake3"))
    assert changed.value == "blake3"
    listed = options.index_task_options(task_id=task_id, type="file_checksum")
    assert listed.count == 1 and listed.task_options[0].value == "blake3"
    options.destroy_task_option(task_id=task_id, task_option_id=option.id)
    assert options.index_task_options(task_id=task_id).count == 0

    metadata = nodeum_sdk.TaskMetadataApi(sdk_client(server))
    datum = metadata.create_task_metadatum(
        task_id=task_id, task_metadatum_body=nodeum_sdk.TaskMetadatum(key="owner", value="ops"))
    assert metadata.show_task_metadatum(task_id=task_id, task_metadatum_id=datum.id).value == "ops"
    edited = metadata.update_task_metadatum(
        task_id=task_id, task_metadatum_id=datum.id,
        task_metadatum_body=nodeum_sdk.TaskMetadatum(value="dev"))
    assert (edited.key, edited.value) == ("owner", "dev")
    listed = metadata.index_task_metadata(task_id=task_id, key="owner")
    assert listed.task_metadata[0].value == "dev"
    metadata.destroy_task_metadatum(task_id=task_id, task_metadatum_id=datum.id)
    assert metadata.index_task_metadata(task_id=task_id).count == 0

    callbacks = nodeum_sdk.TaskCallbacksApi(sdk_client(server))
    callback = callbacks.create_task_callback(
        task_id=task_id, task_callback_body=nodeum_sdk.TaskCallback(
            type="filter", script='extension in ["jpg", "png"]'))
    shown = callbacks.show_task_callback(task_id=task_id, task_callback_id=callback.id)
    assert shown.script == callback.script
    edited = callbacks.update_task_callback(
        task_id=task_id, task_callback_id=callback.id,
        task_callback_body=nodeum_sdk.TaskCallback(type="filter", script="size < 1GiB"))
    assert edited.script == "size < 1GiB"
    assert callbacks.index_task_callbacks(task_id=task_id, type="filter").count == 1
    callbacks.destroy_task_callback(task_id=task_id, task_callback_id=callback.id)
    assert callbacks.index_task_callbacks(task_id=task_id).count == 0
    with pytest.raises(ApiException) as refused:
        callbacks.create_task_callback(
            task_id=task_id,
            task_callback_body=nodeum_sdk.TaskCallback(type="filter", script="size >"))
    assert refused.value.status == 422 and "position" in refused.value.body
