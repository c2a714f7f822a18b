"""The official nodeum-sdk client against the storage endpoints: each API's round trip."""

from __future__ import annotations

import nodeum_sdk
import pytest
from nodeum_sdk.rest import ApiException

from conftest import sdk_client, unique


@pytest.fixture
def client(server):
    return sdk_client(server)


def test_containers_and_privileges(client):
    containers = nodeum_sdk.ContainersApi(client)
    created = containers.create_container(container_body=nodeum_sdk.Container(
        name=unique("box"), comment="sdk", guest_right="read", quota_total_size=100))
    assert isinstance(created, nodeum_sdk.Container) and created.stat_total_files == 0
    shown = containers.show_container(container_id=created.name)
    assert shown.to_dict() == created.to_dict()
    shown.comment = "edited"
    assert containers.update_container(container_id=str(created.id),
                                       container_body=shown).comment == "edited"
    listed = containers.index_containers(name=created.name, sort_by=["name:desc", "id"])
    assert listed.count == 1 and listed.containers[0].id == created.id

    privilege = containers.create_container_privilege(
        container_id=str(created.id),
        container_privilege_body=nodeum_sdk.ContainerPrivilege(name="alice", privilege="read"))
    assert privilege.type == "user"
    privilege.privilege = "read_write"
    updated = containers.update_container_privilege(
        container_id=str(created.id), container_privilege_id=privilege.id,
        container_privilege_body=privilege)
    assert updated.privilege == "read_write"
    assert containers.index_container_privileges(container_id=str(created.id)).count == 1
    assert containers.show_container_privilege(
        container_id=str(created.id), container_privilege_id=privilege.id).name == "alice"
    containers.destroy_container_privilege(container_id=str(created.id),
                                           container_privilege_id=privilege.id)

    with pytest.raises(ApiException) as taken:
        containers.create_container(container_body=nodeum_sdk.Container(name=created.name))
    assert taken.value.status == 422
    containers.destroy_container(container_id=str(created.id))
    with pytest.raises(ApiException) as missing:
        containers.show_container(container_id=str(created.id))
    assert missing.value.status == 404


def test_nas_shares_mount_status_and_test(client, tmp_path):
    nas_api, shares = nodeum_sdk.NasApi(client), nodeum_sdk.NasSharesApi(client)
    nas = nas_api.create_nas(nas_body=nodeum_sdk.Nas(name=unique("nas"), host="filer",
                                                     type="smb_v3"))
    assert nas_api.show_nas(nas_id=nas.name).type == "smb_v3"
    assert nas_api.update_nas(nas_id=str(nas.id), nas_body=nodeum_sdk.Nas(price="5")).price == "5"
    assert nas_api.index_nas(type="smb_v3", name=nas.name).count == 1

    share = shares.create_nas_share_by_nas(nas_id=str(nas.id), nas_share_body=nodeum_sdk.NasShare(
        name=unique("share"), path=str(tmp_path), username="svc", password="pw"))
    assert share.password == "[censored]" and share.nas_id == nas.id
    assert shares.show_nas_share(nas_share_id=share.name).id == share.id
    assert shares.show_nas_share_by_nas(nas_id=str(nas.id), nas_share_id=str(share.id)).id == \
        share.id
    assert shares.index_nas_shares(nas_id=str(nas.id)).count == 1
    assert shares.index_nas_shares_by_nas(nas_id=str(nas.id), username="svc").count == 1
    share.options = "vers=3"
    updated = shares.update_nas_share(nas_share_id=str(share.id), nas_share_body=share)
    assert updated.options == "vers=3"

    status = shares.mount_status_nas_share(nas_share_id=str(share.id))
    assert status.mounted is True and status.status.type == "cifs"
    assert shares.mount_status_nas_share_by_nas(nas_id=str(nas.id),
                                                nas_share_id=str(share.id)).mounted is True

    job = shares.test_nas_share(nas_id=str(nas.id),
                                nas_share_body=nodeum_sdk.NasShare(path=str(tmp_path)))
    assert job.status == "completed"
    assert shares.test_result_nas_share(nas_id=str(nas.id), job_id=job.job_id).status == \
        "completed"
    job = shares.test_nas_share(nas_id=str(nas.id),
                                nas_share_body=nodeum_sdk.NasShare(path="/no/such/dir"))
    assert job.status == "failed"

    pools = nodeum_sdk.PoolsApi(client)
    pool = pools.create_pool(pool_body=nodeum_sdk.PoolUp(nas_share_ids=[share.id]).to_dict() | {
        "name": unique("pool"), "type": "active_archive", "content": "nas"})
    assert pool.content == "nas"
    assert shares.index_nas_shares_by_pool(pool_id=pool.name).count == 1
    assert shares.show_nas_share_by_pool(pool_id=str(pool.id),
                                         nas_share_id=str(share.id)).pool_id == pool.id
    assert shares.mount_status_nas_share_by_pool(pool_id=str(pool.id),
                                                 nas_share_id=str(share.id)).mounted is True
    shares.update_nas_share_by_pool(pool_id=str(pool.id), nas_share_id=str(share.id),
                                    nas_share_body=nodeum_sdk.NasShare(options="x"))
    shares.destroy_nas_share_by_pool(pool_id=str(pool.id), nas_share_id=str(share.id))
    nas_api.destroy_nas(nas_id=str(nas.id))
    assert nas_api.index_nas(name=nas.name).count == 0


def test_pools_basics(client):
    pools = nodeum_sdk.PoolsApi(client)
    created = pools.create_pool(pool_body=nodeum_sdk.Pool(
        name=unique("pool"), type="offline_archive", content="tape", comment="vault"))
    assert isinstance(created, nodeum_sdk.Pool) and created.type == "offline_archive"
    assert pools.show_pool(pool_id=created.name).id == created.id
    created.comment = "edited"
    assert pools.update_pool(pool_id=str(created.id), pool_body=created).comment == "edited"
    assert pools.index_pools(content="tape", name=created.name).count == 1
    pools.destroy_pool(pool_id=str(created.id))
    assert pools.index_pools(name=created.name).count == 0


def test_cloud_connectors_and_buckets(server, client):
    connectors = nodeum_sdk.CloudConnectorsApi(client)
    connector = connectors.create_cloud_connector(cloud_connector_body=nodeum_sdk.CloudConnector(
        name=unique("s3"), url="https://s3.example.com", provider="wasabi", secret_key="SK"))
    assert connector.secret_key == "[censored]" and connector.provider == "wasabi"
    assert connectors.show_cloud_connector(cloud_connector_id=connector.name).id == connector.id
    assert connectors.index_cloud_connectors(provider="wasabi", name=connector.name).count == 1
    connector.region = "eu-central-1"
    assert connectors.update_cloud_connector(cloud_connector_id=str(connector.id),
                                             cloud_connector_body=connector).region == \
        "eu-central-1"
    job = connectors.test_cloud_connector(cloud_connector_body=connector)
    assert job.status == "completed"
    assert connectors.test_result_cloud_connector(job_id=job.job_id).cloud_buckets == []

    with server.client() as http:  # registering a bucket is an extension of the API
        response = http.post(f"/cloud_connectors/{connector.id}/cloud_buckets",
                             json={"name": unique("bucket")})
        assert response.status_code == 201
        bucket_id = response.json()["id"]
    buckets = nodeum_sdk.CloudBucketsApi(client)
    job = buckets.sync_cloud_buckets(cloud_connector_id=str(connector.id))
    synced = buckets.sync_result_cloud_buckets(cloud_connector_id=str(connector.id),
                                               job_id=job.job_id)
    assert [b.id for b in synced.cloud_buckets] == [bucket_id]
    assert buckets.index_cloud_buckets(cloud_connector_id=str(connector.id)).count == 1
    assert buckets.index_cloud_buckets_by_cloud_connector(
        cloud_connector_id=str(connector.id)).count == 1
    bucket = buckets.show_cloud_bucket(cloud_bucket_id=str(bucket_id))
    bucket.price = "0.01"
    assert buckets.update_cloud_bucket(cloud_bucket_id=str(bucket_id),
                                       cloud_bucket_body=bucket).price == "0.01"
    assert buckets.mount_status_cloud_bucket(cloud_bucket_id=str(bucket_id)).mounted is False
    connectors.destroy_cloud_connector(cloud_connector_id=str(connector.id))
    with pytest.raises(ApiException) as missing:
        buckets.show_cloud_bucket(cloud_bucket_id=str(bucket_id))
    assert missing.value.status == 404


def test_tape_libraries_drives_and_tapes(server, client):
    libraries = nodeum_sdk.TapeLibrariesApi(client)
    library = libraries.create_tape_library(tape_library_body=nodeum_sdk.TapeLibrary(
        name=unique("lib"), comment="robot"))
    assert library.status == "online"
    assert libraries.show_tape_library(tape_library_id=library.name).id == library.id
    library.status = "offline"
    assert libraries.update_tape_library(tape_library_id=str(library.id),
                                         tape_library_body=library).status == "offline"
    assert libraries.index_tape_libraries(name=library.name, status="offline").count == 1

    drives = nodeum_sdk.TapeDrivesApi(client)
    drive = drives.create_tape_drive_by_tape_library(
        tape_library_id=str(library.id), tape_drive_body=nodeum_sdk.TapeDrive(name="drive0"))
    assert drive.tape_library_id == library.id
    assert drives.show_tape_drive(tape_drive_id=str(drive.id)).name == "drive0"
    assert drives.index_tape_drives_by_tape_library(tape_library_id=str(library.id)).count == 1
    drive.comment = "left"
    assert drives.update_tape_drive(tape_drive_id=str(drive.id),
                                    tape_drive_body=drive).comment == "left"
    drives.destroy_tape_drive(tape_drive_id=str(drive.id))

    with server.client() as http:  # registering a cartridge is an extension of the API
        response = http.post(f"/tape_libraries/{library.id}/tapes",
                             json={"barcode": unique("T").replace("-", "")[:8].upper(),
                                   "type": "data_lto8", "max": 12 * 10**12})
        assert response.status_code == 201
        barcode = response.json()["barcode"]
    tapes = nodeum_sdk.TapesApi(client)
    tape = tapes.show_tape(tape_id=barcode)
    assert isinstance(tape, nodeum_sdk.Tape) and tape.type == "data_lto8"
    assert tapes.index_tapes(barcode=barcode).count == 1
    assert tapes.index_tapes_by_tape_library(tape_library_id=str(library.id)).count == 1
    assert tapes.show_tape_by_tape_library(tape_library_id=str(library.id),
                                           tape_id=str(tape.id)).id == tape.id
    assert tapes.mount_status_tape(tape_id=str(tape.id)).mounted is False
    with pytest.raises(ApiException) as in_library:
        tapes.destroy_tape(tape_id=str(tape.id))
    assert in_library.value.status == 422
    libraries.destroy_tape_library(tape_library_id=str(library.id))
    tapes.destroy_tape(tape_id=str(tape.id))
    assert tapes.index_tapes(barcode=barcode).count == 0
