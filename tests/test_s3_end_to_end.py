"""Cloud buckets end to end: a real server, a real node process and a real S3 server
(`rclone serve s3`), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import time
from datetime import datetime

from conftest import sdk_client, unique
from engine_fixtures import *  # noqa: F403 - engine, api, nodes, storage, action_task
from engine_fixtures import action_task
from engine_support import (
    act, catalog_entry, latest_execution, logs, make_tree, partial_files, tree_digest,
    wait_task,
)
from s3_support import ACCESS_KEY, REGION, SECRET_KEY
from s3_support import fault_proxy, s3_server  # noqa: F401 - fixtures, used by name
from tiermover.storage.open import open_backend

MiB = 1024 * 1024


def register_bucket(api, s3_server, url: str | None = None,
                    name: str | None = None) -> dict:
    """A bucket on the S3 server, registered under a new cloud connector."""
    name = s3_server.make_bucket(name)
    connector = api.post("/cloud_connectors", json={
        "name": unique("s3"), "provider": "generic_s3", "url": url or s3_server.url,
        "region": REGION, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
    assert connector.status_code == 201, connector.text
    bucket = api.post(f"/cloud_connectors/{connector.json()['id']}/cloud_buckets",
                      json={"name": name})
    assert bucket.status_code == 201, bucket.text
    return bucket.json()


def run(api, task: dict) -> dict:
    act(api, task["id"], "run")
    return wait_task(api, task["id"])


def execution_files(api, execution_id: str) -> dict[str, dict]:
    """Every file the execution's catalog shows, its folders browsed down."""
    found: dict[str, dict] = {}
    pending = [f"/task_executions/{execution_id}/files"]
    while pending:
        page = api.get(pending.pop(), params={"limit": 1000})
        assert page.status_code == 200, page.text
        for entry in page.json()["files"]:
            found[entry["file_path"]] = entry
            if entry["type"] == "folder":
                pending.append(f"/task_executions/{execution_id}/files/{entry['id']}/children")
    return found


def mtimes(root) -> dict[str, float]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime for p in root.rglob("*")
            if p.is_file()}


def test_a_tree_goes_to_a_bucket_and_comes_back_identical(api, nodes, storage,
                                                          s3_server):
    source, source_root, destination, destination_root = storage
    tree = make_tree(source_root / "tree", files=12, size=30_000)
    (tree / "dir1" / "large.bin").write_bytes(os.urandom(9 * MiB))  # uploaded in parts
    for index, path in enumerate(sorted(tree.rglob("*.bin"))):
        os.utime(path, (1_500_000_000 + index, 1_600_000_000 + index + 0.25))
    bucket = register_bucket(api, s3_server)
    nodes()

    up = action_task(api, "copy", [f"/{source}/tree"], [f"/{bucket['name']}/out"],
                     options={"reset_file_date": "true"})
    assert run(api, up)["status"] == "done"
    in_bucket = s3_server.root / bucket["name"] / "out" / "tree"
    assert tree_digest(in_bucket) == tree_digest(tree)
    # rclone serve s3 gives its files the `mtime` the objects carry.
    assert mtimes(in_bucket) == mtimes(tree)

    # The catalog holds the copies under the bucket's namespace path, with their dates.
    execution = latest_execution(api, up["id"])
    catalogued = execution_files(api, execution["id"])
    expected = {f"/{bucket['name']}/out/tree/{p.relative_to(tree).as_posix()}": p
                for p in tree.rglob("*.bin")}
    assert set(expected) <= set(catalogued)
    for path, local in expected.items():
        entry = catalogued[path]
        assert entry["type"] == "file" and entry["size"] == local.stat().st_size
        modified = datetime.fromisoformat(entry["modification_date"].replace("Z", "+00:00"))
        assert abs(modified.timestamp() - local.stat().st_mtime) < 0.001
    # ... and each source file knows its copy is in the bucket.
    original = catalog_entry(api, f"/{source}/tree/dir1/large.bin")
    assert original["cloud_buckets"] == [bucket["name"]] and original["nas_shares"] == []
    assert original["checksums"][0].startswith("xxh128:")

    down = action_task(api, "copy", [f"/{bucket['name']}/out/tree"], [f"/{destination}/back"],
                       options={"reset_file_date": "true"})
    assert run(api, down)["status"] == "done"
    back = destination_root / "back" / "tree"
    assert tree_digest(back) == tree_digest(tree)
    assert mtimes(back) == mtimes(tree)


def test_a_failing_endpoint_fails_only_its_file_and_leaves_no_object(api, nodes, storage,
                                                                     s3_server, fault_proxy):
    source, source_root, _, _ = storage
    tree = make_tree(source_root / "tree", files=6, size=5_000, folders=1)
    bucket = register_bucket(api, s3_server, url=fault_proxy.url)
    fault_proxy.clear()
    fault_proxy.inject("status", 1000, method="PUT", path_contains="file-00003.bin")
    try:
        nodes()
        task = action_task(api, "copy", [f"/{source}/tree"], [f"/{bucket['name']}/out"])
        done = run(api, task)
    finally:
        fault_proxy.clear()
    assert done["status"] == "finished_with_warnings"
    in_bucket = s3_server.root / bucket["name"] / "out" / "tree" / "dir0"
    assert sorted(p.name for p in in_bucket.iterdir()) == [
        f"file-{i:05d}.bin" for i in range(6) if i != 3]
    messages = [entry["msg"] for entry in logs(api, latest_execution(api, task["id"])["id"])]
    assert any("file-00003.bin" in m and f"s3://{bucket['name']}/out/tree/dir0/file-00003.bin"
               in m and "HTTP 500 after 5 attempts" in m for m in messages), messages
    assert tree_digest(in_bucket) == {k: v for k, v in tree_digest(tree / "dir0").items()
                                      if k != "file-00003.bin"}


def test_objects_changed_or_gone_after_the_walk_are_not_written_nor_deleted(api, nodes, storage,
                                                                           s3_server):
    """A copy checks each object it reads against what the walk saw (the GET's own
    answer, no request more): a new version is not written, a vanished one fails alone,
    and a move deletes only what it copied."""
    _, _, destination, destination_root = storage
    bucket = register_bucket(api, s3_server)
    objects = open_backend(s3_server.descriptor(bucket["name"]))
    for name, size in (("a.bin", 6 * MiB), ("b.bin", MiB), ("c.bin", MiB)):
        writer = objects.begin_write(f"live/{name}")
        writer.write(os.urandom(size))
        writer.commit(replace=True)
    # 2 MiB/s and one stream: a.bin takes about three seconds, b and c wait their turn.
    nodes("--bwlimit", str(2 * MiB))
    task = action_task(api, "move", [f"/{bucket['name']}/live"], [f"/{destination}/out"],
                       options={"parallel_processing": 1})
    act(api, task["id"], "run")
    deadline = time.monotonic() + 20
    while not partial_files(destination_root):
        assert time.monotonic() < deadline, "the copy never started writing"
        time.sleep(0.02)
    replaced = os.urandom(MiB)
    writer = objects.begin_write("live/b.bin")
    writer.write(replaced)
    writer.commit(replace=True)
    objects.remove("live/c.bin")
    wait_task(api, task["id"], timeout=60)
    execution = latest_execution(api, task["id"])
    assert execution["status"] == "finished_with_warnings", execution
    messages = [entry["msg"] for entry in logs(api, execution["id"])]
    assert any(f"/{bucket['name']}/live/b.bin changed while it was copied" in m
               for m in messages), messages
    assert any(f"/{bucket['name']}/live/c.bin" in m and "no such object" in m
               for m in messages), messages
    landed = destination_root / "out" / "live"
    assert sorted(p.name for p in landed.iterdir()) == ["a.bin"]
    assert not partial_files(destination_root)
    # a.bin moved; the new b.bin stays in the bucket, untouched.
    assert objects.stat("live/a.bin") is None
    with objects.open_read("live/b.bin") as reader:
        assert reader.read() == replaced


def test_a_cloud_pool_destination_writes_to_the_emptiest_bucket(api, engine, nodes, storage,
                                                                s3_server):
    source, source_root, _, _ = storage
    tree = make_tree(source_root / "tree", files=4, size=1_000)
    first, second = register_bucket(api, s3_server), register_bucket(api, s3_server)
    pool = api.post("/pools", json={"name": unique("pool"), "type": "active_archive",
                                    "content": "cloud",
                                    "cloud_bucket_ids": [first["id"], second["id"]]})
    assert pool.status_code == 201, pool.text
    nodes()
    task = action_task(api, "copy", [f"/{source}/tree"], [])
    response = api.post(f"/tasks/{task['id']}/task_destinations",
                        json={"pool_id": pool.json()["id"]})
    assert response.status_code == 201, response.text
    assert run(api, task)["status"] == "done"
    # Both hold no bytes yet: the tie goes to the first member.
    assert tree_digest(s3_server.root / first["name"] / "tree") == tree_digest(tree)
    assert not (s3_server.root / second["name"] / "tree").exists()

    # Later attempts of the execution keep its member, however full it has become since.
    from sqlalchemy.orm import Session

    from tiermover.db.models import CloudBucket, TaskExecution
    from tiermover.db.session import make_engine
    from tiermover.service.execution_spec import execution_spec

    with Session(make_engine(engine.database.url)) as session:
        session.get(CloudBucket, first["id"]).file_size_sum = 10**12
        execution = session.get(TaskExecution, latest_execution(api, task["id"])["id"])
        spec = execution_spec(session, execution)
        assert spec["destinations"][0]["storage_key"] == f"cloud_bucket:{first['id']}"
        session.rollback()


def test_duplication_copies_a_bucket_pool_onto_a_share_pool(api, nodes, s3_server,
                                                          tmp_path):
    bucket = register_bucket(api, s3_server)
    tree = make_tree(tmp_path / "tree", files=5, size=2_000)
    backend = open_backend(s3_server.descriptor(bucket["name"]))
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        writer = backend.begin_write("tree/" + path.relative_to(tree).as_posix())
        writer.write(path.read_bytes())
        writer.commit(replace=False)
        backend.set_times("tree/" + path.relative_to(tree).as_posix(), 1_500_000_000,
                          path.stat().st_mtime)
    nas = api.post("/nas", json={"name": unique("nas")}).json()
    share_root = tmp_path / "share"
    share_root.mkdir()
    share = api.post(f"/nas/{nas['id']}/nas_shares",
                     json={"name": unique("share"), "path": str(share_root)})
    assert share.status_code == 201, share.text
    pools = [api.post("/pools", json={"name": unique("pool"), "type": "active_archive",
                                      "content": content, members: [member_id]})
             for content, members, member_id in (("cloud", "cloud_bucket_ids", bucket["id"]),
                                                  ("nas", "nas_share_ids", share.json()["id"]))]
    assert [p.status_code for p in pools] == [201, 201], [p.text for p in pools]
    nodes()
    task = action_task(api, "duplication")
    for collection, pool in (("task_sources", pools[0]), ("task_destinations", pools[1])):
        response = api.post(f"/tasks/{task['id']}/{collection}",
                            json={"pool_id": pool.json()["id"]})
        assert response.status_code == 201, response.text
    assert run(api, task)["status"] == "done"
    duplicated = share_root / bucket["name"] / "tree"
    assert tree_digest(duplicated) == tree_digest(tree)
    assert mtimes(duplicated) == mtimes(tree)


# --- create-time checks of bucket paths ------------------------------------------------------

def test_bucket_paths_are_checked_when_a_task_is_made(api, engine, s3_server):
    from conftest import free_port

    bucket = register_bucket(api, s3_server)
    name = bucket["name"]
    writer = open_backend(s3_server.descriptor(name)).begin_write("data/file.txt")
    writer.write(b"payload")
    writer.commit(replace=False)
    task = action_task(api, "copy")

    def source(path: str):
        return api.post(f"/tasks/{task['id']}/task_sources", json={"file_path": path})

    created = source(f"/{name}/data/file.txt")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["file_path"] == f"/{name}/data/file.txt" and body["container"] is None
    assert body["file"]["file_path"] == f"/{name}/data/file.txt" and body["file"]["size"] == 7
    assert source(f"/{name}/data").status_code == 201  # a prefix is a folder

    missing = source(f"/{name}/data/none.txt")
    assert missing.status_code == 422
    assert missing.json()["details"]["file_path"][0]["error"] == "not_found"
    escaping = source(f"/{name}/data/../../etc")
    assert escaping.status_code == 422
    assert escaping.json()["details"]["file_path"][0]["error"] == "escapes_root"

    destination = api.post(f"/tasks/{task['id']}/task_destinations",
                           json={"folder_path": f"/{name}/not/there/yet"})
    assert destination.status_code == 201, destination.text

    dead = register_bucket(api, s3_server, url=f"http://127.0.0.1:{free_port()}")
    unreachable = source(f"/{dead['name']}/anything")
    assert unreachable.status_code == 422
    assert "cannot be reached" in unreachable.json()["messages"][0]

    clash = api.post("/containers", json={"name": name})
    assert clash.status_code == 201, clash.text
    ambiguous = source(f"/{name}/data/file.txt")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["details"]["file_path"][0]["error"] == "ambiguous"

    # The official client reads bucket sources like any other.
    import nodeum_sdk

    with sdk_client(engine) as client:
        listed = nodeum_sdk.TaskSourcesApi(client).index_task_sources(task_id=task["id"])
    files = {s.id: s.file for s in listed.task_sources}
    assert files[body["id"]].name == "file.txt" and files[body["id"]].size == 7

    # A deleted bucket takes its catalog with it (a later bucket may get its id).
    assert api.get(f"/files/{body['file']['id']}").status_code == 200
    deleted = api.delete(f"/cloud_connectors/{bucket['cloud_connector_id']}/cloud_buckets/"
                         f"{bucket['id']}")
    assert deleted.status_code == 204, deleted.text
    assert api.get(f"/files/{body['file']['id']}").status_code == 404


# --- which member of a destination pool an execution writes to -------------------------------

def test_pool_members_are_chosen_by_free_space_or_stored_bytes(engine, tmp_path):
    from sqlalchemy.orm import Session

    from tiermover.db.models import CloudBucket, CloudConnector, Nas, NasShare, Pool
    from tiermover.db.session import make_engine
    from tiermover.service.execution_spec import choose_pool_member

    def free(path) -> int:
        info = os.statvfs(path)
        return info.f_bavail * info.f_frsize

    # Two visible shares on file systems with different free space, and one the server
    # cannot see; memory-backed /dev/shm differs from the test's temporary directory.
    visible = [tmp_path, *([p] if os.path.isdir(p := "/dev/shm") else [])]
    with Session(make_engine(engine.database.url)) as session:
        nas_pool = Pool(name=unique("nas-pool"), type="active_archive", content="nas")
        cloud_pool = Pool(name=unique("cloud-pool"), type="active_archive", content="cloud")
        tape_pool = Pool(name=unique("tape-pool"), type="active_archive", content="tape")
        nas = Nas(name=unique("nas"))
        connector = CloudConnector(name=unique("s3"))
        session.add_all([nas_pool, cloud_pool, tape_pool, nas, connector])
        session.flush()
        hidden = NasShare(nas_id=nas.id, pool_id=nas_pool.id, name=unique("hidden"),
                          path=str(tmp_path / "not-mounted"))
        shares = [NasShare(nas_id=nas.id, pool_id=nas_pool.id, name=unique("share"),
                           path=str(path)) for path in visible]
        fuller = CloudBucket(cloud_connector_id=connector.id, pool_id=cloud_pool.id,
                             name=unique("b"), file_size_sum=500)
        emptier = CloudBucket(cloud_connector_id=connector.id, pool_id=cloud_pool.id,
                              name=unique("b"), file_size_sum=100)
        session.add_all([hidden, *shares, fuller, emptier])
        session.flush()

        roomiest = max(shares, key=lambda share: free(share.path))
        assert choose_pool_member(session, nas_pool) is roomiest
        # Only the members the claiming node reaches count, when it reaches any.
        assert choose_pool_member(session, nas_pool, {f"nas_share:{hidden.id}"}) is hidden
        assert choose_pool_member(session, nas_pool, {"nas_share:0"}) is roomiest
        for share in shares:
            share.path = str(tmp_path / "gone" / share.name)
        assert choose_pool_member(session, nas_pool) is hidden  # none visible: the first

        assert choose_pool_member(session, cloud_pool) is emptier
        assert choose_pool_member(session, cloud_pool, {f"cloud_bucket:{fuller.id}"}) is fuller
        assert choose_pool_member(session, tape_pool) is None
        session.rollback()
