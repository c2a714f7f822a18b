"""Cloud connectors and buckets, tape libraries, drives and tapes over HTTP."""

from __future__ import annotations

from conftest import unique
from test_storage_api import api_key_client, error_kinds, new_pool, ok


def new_connector(api, **fields) -> dict:
    body = {"name": unique("s3"), "url": "https://s3.example.com:9000", "provider": "generic_s3",
            "access_key": "AK", "secret_key": "SK", **fields}
    return ok(api.post("/cloud_connectors", json=body), 201)


def new_bucket(api, connector_id: int, **fields) -> dict:
    body = {"name": unique("bucket"), **fields}
    return ok(api.post(f"/cloud_connectors/{connector_id}/cloud_buckets", json=body), 201)


def new_library(api, **fields) -> dict:
    """A record of a physical library (virtual ones are made on disk: test_tape_api.py)."""
    body = {"name": unique("lib"), "protocol": "scsi", **fields}
    return ok(api.post("/tape_libraries", json=body), 201)


def new_tape(api, library_id: int, **fields) -> dict:
    body = {"barcode": unique("T").replace("-", "").upper()[:8], **fields}
    return ok(api.post(f"/tape_libraries/{library_id}/tapes", json=body), 201)


# --- cloud connectors --------------------------------------------------------------------------

def test_connector_round_trip_with_masked_secret(server, api):
    connector = new_connector(api, region="eu-west-1", options="-o a")
    assert connector["secret_key"] == "[censored]" and connector["access_key"] == "AK"
    assert ok(api.get(f"/cloud_connectors/{connector['name']}")) == connector
    updated = ok(api.put(f"/cloud_connectors/{connector['id']}", json={**connector,
                                                                       "region": "us-east-1"}))
    assert updated["region"] == "us-east-1"
    with api_key_client(server, api, ("cloud_connectors", "show"),
                        ("cloud_connectors", "get_secret_key")) as revealed:
        # The censored secret sent back above did not replace the real one.
        assert ok(revealed.get(f"/cloud_connectors/{connector['id']}"))["secret_key"] == "SK"
    with api_key_client(server, api, ("cloud_connectors", "show")) as masked:
        assert ok(masked.get(f"/cloud_connectors/{connector['id']}"))["secret_key"] == \
            "[censored]"
    ok(api.delete(f"/cloud_connectors/{connector['id']}"), 204)
    assert api.get(f"/cloud_connectors/{connector['id']}").status_code == 404


def test_connector_errors_and_filters(api, make_user):
    connector = new_connector(api, region=unique("r"))
    post = lambda **body: api.post("/cloud_connectors",  # noqa: E731
                                   json={"name": unique("s3"), **body})
    assert error_kinds(post(name=connector["name"]), "name") == ["taken"]
    assert error_kinds(post(provider="dropbox"), "provider") == ["inclusion"]
    assert error_kinds(post(url="ftp://host"), "url") == ["invalid"]
    assert error_kinds(post(url="https://"), "url") == ["invalid"]
    assert error_kinds(post(url_proxy="http://proxy:port"), "url_proxy") == ["invalid"]
    listed = ok(api.get("/cloud_connectors", params={"region": connector["region"]}))
    assert listed["count"] == 1 and listed["cloud_connectors"][0]["id"] == connector["id"]
    _, _, user = make_user()
    assert ok(user.get("/cloud_connectors"))["count"] >= 1
    assert user.post("/cloud_connectors", json={"name": unique()}).status_code == 403


def test_connector_test_job(api):
    started = ok(api.put("/cloud_connectors/-/test",
                         json={"url": "https://s3.example.com", "provider": "generic_s3"}), 202)
    assert started["status"] == "completed"
    result = ok(api.get("/cloud_connectors/-/test", params={"job_id": started["job_id"]}))
    assert result["cloud_buckets"] == [] and result["status"] == "completed"
    failed = ok(api.put("/cloud_connectors/-/test", json={"provider": "generic_s3"}), 202)
    assert failed["status"] == "failed" and "Url" in failed["message"]
    aws = ok(api.put("/cloud_connectors/-/test", json={"provider": "amazon_aws_s3"}), 202)
    assert aws["status"] == "completed"
    assert api.get("/cloud_connectors/-/test", params={"job_id": "nope"}).status_code == 404


# --- cloud buckets -----------------------------------------------------------------------------

def test_buckets_on_every_prefix(api):
    connector = new_connector(api)
    bucket = new_bucket(api, connector["id"], location="eu", price="0.02", file_count=5)
    assert bucket["cloud_connector_id"] == connector["id"] and bucket["file_count"] == 0
    by_connector = f"/cloud_connectors/{connector['id']}/cloud_buckets"
    assert error_kinds(api.post(by_connector, json={"name": bucket["name"]}), "name") == ["taken"]
    assert error_kinds(api.post(by_connector, json={"name": "a/b"}), "name") == ["invalid"]
    assert ok(api.get(f"{by_connector}/{bucket['id']}")) == bucket
    assert ok(api.get(f"/cloud_buckets/{bucket['name']}")) == bucket
    assert ok(api.get(by_connector))["cloud_buckets"] == [bucket]

    updated = ok(api.put(f"/cloud_buckets/{bucket['id']}",
                         json={"options": "-o ro", "name": "ignored", "location": "us"}))
    assert updated["options"] == "-o ro" and updated["name"] == bucket["name"]
    assert updated["location"] == "eu"
    assert ok(api.put(f"{by_connector}/{bucket['id']}", json={"price": "1"}))["price"] == "1"

    pool = new_pool(api, "cloud", cloud_bucket_ids=[bucket["id"]])
    by_pool = f"/pools/{pool['id']}/cloud_buckets"
    assert ok(api.get(by_pool))["cloud_buckets"][0]["pool_id"] == pool["id"]
    assert ok(api.put(f"{by_pool}/{bucket['id']}", json={"price": "2"}))["price"] == "2"
    assert ok(api.get(f"{by_pool}/{bucket['id']}"))["price"] == "2"
    assert ok(api.get("/cloud_buckets", params={"pool_id": pool["id"]}))["count"] == 1
    assert error_kinds(api.post("/pools", json={"name": unique(), "type": "scratch",
                                                "content": "tape",
                                                "cloud_bucket_ids": [bucket["id"]]}),
                       "cloud_bucket_ids") == ["invalid"]

    for url in (f"/cloud_buckets/{bucket['id']}/mount", f"{by_connector}/{bucket['id']}/mount",
                f"{by_pool}/{bucket['id']}/mount"):
        status = ok(api.get(url))
        assert status["mounted"] is False and status["status"]["cloud_bucket_id"] == bucket["id"]

    ok(api.delete(f"{by_connector}/{bucket['id']}"), 204)
    assert api.get(f"/cloud_buckets/{bucket['id']}").status_code == 404


def test_bucket_sync_reports_the_connector_buckets(api, make_user):
    connector = new_connector(api)
    bucket = new_bucket(api, connector["id"])
    url = f"/cloud_connectors/{connector['id']}/cloud_buckets/-/sync"
    started = ok(api.put(url), 202)
    assert started["status"] == "completed"
    result = ok(api.get(url, params={"job_id": started["job_id"]}))
    assert [b["id"] for b in result["cloud_buckets"]] == [bucket["id"]]
    other = new_connector(api)
    assert api.get(f"/cloud_connectors/{other['id']}/cloud_buckets/-/sync",
                   params={"job_id": started["job_id"]}).status_code == 404
    _, _, user = make_user()
    assert user.put(url).status_code == 403


def test_buckets_go_with_their_connector(api):
    connector = new_connector(api)
    bucket = new_bucket(api, connector["id"])
    ok(api.delete(f"/cloud_connectors/{connector['id']}"), 204)
    assert api.get(f"/cloud_buckets/{bucket['id']}").status_code == 404


# --- tape libraries and drives -----------------------------------------------------------------

def test_library_round_trip_and_errors(api):
    library = new_library(api, serial=unique("SN"), storage_slots=24, vendor="IBM")
    assert library["protocol"] == "scsi" and library["status"] == "online"
    assert ok(api.get(f"/tape_libraries/{library['serial']}")) == library
    assert ok(api.get(f"/tape_libraries/{library['name']}")) == library
    updated = ok(api.put(f"/tape_libraries/{library['id']}",
                         json={"status": "offline", "io_slots": 2}))
    assert updated["status"] == "offline" and updated["storage_slots"] == 24
    post = lambda **body: api.post("/tape_libraries",  # noqa: E731
                                   json={"name": unique("lib"), **body})
    assert error_kinds(post(name=library["name"]), "name") == ["taken"]
    assert error_kinds(post(serial=library["serial"]), "serial") == ["taken"]
    assert error_kinds(post(protocol="fc"), "protocol") == ["inclusion"]
    assert error_kinds(post(status="broken"), "status") == ["inclusion"]
    assert error_kinds(post(storage_slots=-1), "storage_slots") == ["greater_than_or_equal_to"]
    assert error_kinds(post(acs=2**40), "acs") == ["less_than_or_equal_to"]
    assert error_kinds(post(vendor="v" * 65), "vendor") == ["too_long"]
    body = ok(api.get("/tape_libraries", params={"vendor": "IBM", "id": library["id"]}))
    assert body["count"] == 1


def test_drives_on_both_prefixes(api):
    library = new_library(api)
    url = f"/tape_libraries/{library['id']}/tape_drives"
    drive = ok(api.post(url, json={"name": "drive0", "serial": unique("D"), "device": "/dev/nst0",
                                   "full": 1, "barcode": "X"}), 201)
    assert drive["tape_library_id"] == library["id"] and drive["status"] == "online"
    assert drive["full"] == 0 and drive["barcode"] is None  # the server's to say
    assert error_kinds(api.post(url, json={"name": "drive0"}), "name") == ["taken"]
    ok(api.post(url, json={"name": "drive1", "status": "offline"}), 201)
    assert ok(api.get(f"{url}/drive0")) == drive == ok(api.get(f"/tape_drives/{drive['serial']}"))
    assert ok(api.get(url, params={"status": "offline"}))["count"] == 1
    assert ok(api.get(url, params={"sort_by": "name:desc"}))["tape_drives"][1]["id"] == drive["id"]
    assert ok(api.get("/tape_drives", params={"tape_library_id": library["id"]}))["count"] == 2
    assert ok(api.put(f"{url}/{drive['id']}", json={"comment": "a"}))["comment"] == "a"
    assert ok(api.put(f"/tape_drives/{drive['id']}", json={"lsm": 1}))["lsm"] == 1
    ok(api.delete(f"{url}/{drive['id']}"), 204)
    assert api.get(f"/tape_drives/{drive['id']}").status_code == 404
    other = ok(api.get(url))["tape_drives"][0]
    ok(api.delete(f"/tape_drives/{other['id']}"), 204)
    assert ok(api.get(url))["count"] == 0


# --- tapes -------------------------------------------------------------------------------------

def test_tapes_register_list_and_pool_membership(api):
    library = new_library(api)
    tape = new_tape(api, library["id"], max=1000, location="Slot 1", mounted=True)
    assert tape["type"] == "data_lto5" and tape["free"] == 1000 and tape["scratch"] is True
    assert tape["mounted"] is False and tape["tape_library_id"] == library["id"]
    assert ok(api.get(f"/tapes/{tape['barcode']}")) == tape
    by_library = f"/tape_libraries/{library['id']}/tapes"
    assert ok(api.get(f"{by_library}/{tape['id']}")) == tape
    cleaning = new_tape(api, library["id"], type="cleaning")
    assert cleaning["cleaning"] is True
    assert ok(api.get(by_library, params={"cleaning": "true"}))["tapes"] == [cleaning]
    assert [t["id"] for t in ok(api.get(by_library, params={"sort_by": "id:desc"}))["tapes"]] \
        == [cleaning["id"], tape["id"]]

    assert error_kinds(api.post(by_library, json={"barcode": tape["barcode"]}), "barcode") == \
        ["taken"]
    assert error_kinds(api.post(by_library, json={"barcode": "../x"}), "barcode") == ["invalid"]
    assert error_kinds(api.post(by_library, json={"barcode": "A" * 33}), "barcode") == \
        ["too_long"]
    assert error_kinds(api.post(by_library, json={"barcode": "AB", "type": "lto"}), "type") == \
        ["inclusion"]

    pool = new_pool(api, "tape", storage_id=library["id"], tape_ids=[tape["id"]])
    assert ok(api.get(f"/pools/{pool['id']}/tapes"))["tapes"][0]["id"] == tape["id"]
    assert ok(api.get(f"/pools/{pool['id']}/tapes/{tape['barcode']}"))["pool_id"] == pool["id"]
    assert api.get(f"/pools/{pool['id']}/tapes/{cleaning['id']}").status_code == 404
    assert error_kinds(api.put(f"/pools/{pool['id']}", json={"nas_share_ids": [1]}),
                       "nas_share_ids") == ["invalid"]
    elsewhere = new_tape(api, new_library(api)["id"])
    assert error_kinds(api.put(f"/pools/{pool['id']}", json={"tape_ids": [elsewhere["id"]]}),
                       "tape_ids") == ["invalid"]
    for url in (f"/tapes/{tape['id']}/mount", f"/pools/{pool['id']}/tapes/{tape['id']}/mount",
                f"{by_library}/{tape['id']}/mount"):
        status = ok(api.get(url))
        assert status["mounted"] is False
        assert status["status"]["tape_barcode"] == tape["barcode"]
        assert status["status"]["tape_library_name"] == library["name"]


def test_only_orphan_tapes_can_be_deleted(api, make_user):
    library = new_library(api)
    tape = new_tape(api, library["id"])
    assert error_kinds(api.delete(f"/tapes/{tape['id']}"), "tape_library_id") == ["invalid"]
    ok(api.delete(f"/tape_libraries/{library['id']}"), 204)
    orphan = ok(api.get(f"/tapes/{tape['id']}"))
    assert orphan["tape_library_id"] is None
    _, _, user = make_user()
    assert user.delete(f"/tapes/{tape['id']}").status_code == 403
    assert ok(user.get("/tapes", params={"barcode": tape["barcode"]}))["count"] == 1
    ok(api.delete(f"/tapes/{tape['id']}"), 204)
    assert api.get(f"/tapes/{tape['id']}").status_code == 404
