"""Virtual tape libraries over HTTP (SQLite and PostgreSQL): creation with drives and blank
cartridges on disk, cartridges added later, bad input, the scratch pool, and the tapes'
flags following what happens in the library.

The virtual library stands in for a physical changer and its drives (no tape hardware
runs here). Where a test moves cartridges itself, it drives the library's directory
with the same driver a node uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from conftest import ADMIN_PASSWORD, BACKENDS, start_server, stop_server, unique
from test_storage_api import error_kinds, new_pool, ok
from tiermover.db.models import Pool, Tape
from tiermover.db.session import make_engine
from tiermover.service.storage.tape_inventory import draw_scratch_tape, return_to_scratch
from tiermover.storage.tape.virtual import VirtualLibrary
from tiermover.storage.tape.writer import write_label

MiB = 1024 * 1024


def virtual_body(directory: Path, **fields) -> dict:
    return {"name": unique("vlib"), "protocol": "virtual", "device": str(directory),
            "storage_slots": 3, "io_slots": 1, "drives": 2, "cartridge_capacity": 4 * MiB,
            **fields}


def new_virtual_library(api, tmp_path: Path, **fields) -> tuple[dict, Path]:
    device = tmp_path / unique("library")
    device.mkdir()
    return ok(api.post("/tape_libraries", json=virtual_body(device, **fields)), 201), device


def library_tapes(api, library: dict) -> list[dict]:
    return ok(api.get(f"/tape_libraries/{library['id']}/tapes",
                      params={"sort_by": "barcode"}))["tapes"]


def test_a_virtual_library_is_made_with_drives_and_blank_cartridges(api, tmp_path):
    library, device = new_virtual_library(api, tmp_path)
    assert (library["protocol"], library["storage_slots"], library["io_slots"]) == \
        ("virtual", 3, 1)
    assert (library["cartridge_capacity"], library["cartridge_type"]) == (4 * MiB, "data_lto5")

    drives = ok(api.get(f"/tape_libraries/{library['id']}/tape_drives",
                        params={"sort_by": "transport"}))["tape_drives"]
    assert [(d["name"], d["transport"], d["full"], d["barcode"]) for d in drives] == \
        [("drive0", 0, 0, None), ("drive1", 1, 0, None)]

    tapes = library_tapes(api, library)
    assert len(tapes) == 3
    for slot, tape in enumerate(tapes, start=1):
        assert tape["barcode"].startswith(f"V{library['id']}") and tape["barcode"].endswith("L5")
        assert (tape["type"], tape["location"], tape["max"], tape["free"]) == \
            ("data_lto5", f"Slot {slot}", 4 * MiB, 4 * MiB)
        assert tape["scratch"] and not tape["mounted"] and not tape["ejected"]
        assert tape["mount_count"] == 0 and tape["date_in"] and tape["last_size_update"]
        assert (device / f"{tape['barcode']}.tape").read_bytes() == b""

    # The blank cartridges are the library's scratch pool.
    pool = ok(api.get(f"/pools/{tapes[0]['pool_id']}"))
    assert (pool["type"], pool["content"], pool["storage_id"]) == \
        ("scratch", "tape", library["id"])
    assert ok(api.get(f"/pools/{pool['id']}/tapes"))["count"] == 3

    state = json.loads((device / "library.json").read_text())
    assert (state["storage_slots"], state["io_slots"], state["drives"]) == (3, 1, 2)
    assert sorted(state["cartridges"]) == [tape["barcode"] for tape in tapes]


def test_cartridge_type_and_barcode_prefix(api, tmp_path):
    library, _ = new_virtual_library(api, tmp_path, storage_slots=2, cartridge_type="data_lto7",
                                     barcode_prefix="Q" + unique("")[-3:].upper().replace("-", ""))
    tapes = library_tapes(api, library)
    assert [t["type"] for t in tapes] == ["data_lto7"] * 2
    assert all(t["barcode"].startswith(library["barcode_prefix"]) and t["barcode"].endswith("L7")
               for t in tapes)


def test_bad_virtual_libraries_are_refused_and_leave_nothing(api, tmp_path):
    device = tmp_path / "lib"
    device.mkdir()

    def refused(attr: str, **fields) -> list[str]:
        body = virtual_body(device, **fields)
        kinds = error_kinds(api.post("/tape_libraries", json=body), attr)
        assert ok(api.get("/tape_libraries", params={"name": body["name"]}))["count"] == 0
        return kinds

    assert refused("device", device=None) == ["blank"]
    assert refused("device", device="relative/dir") == ["invalid"]
    assert refused("device", device=str(tmp_path / "missing")) == ["invalid"]
    (tmp_path / "a-file").write_text("x")
    assert refused("device", device=str(tmp_path / "a-file")) == ["invalid"]
    assert refused("storage_slots", storage_slots=0) == ["greater_than_or_equal_to"]
    assert refused("storage_slots", storage_slots=None) == ["blank"]
    assert refused("storage_slots", storage_slots=10**6) == ["less_than_or_equal_to"]
    assert refused("drives", drives=0) == ["greater_than_or_equal_to"]
    assert refused("drives", drives=None) == ["blank"]
    assert refused("io_slots", io_slots=-1) == ["greater_than_or_equal_to"]
    assert refused("cartridge_capacity", cartridge_capacity=0) == ["greater_than"]
    assert refused("cartridge_capacity", cartridge_capacity=-5) == ["greater_than"]
    assert refused("cartridge_capacity", cartridge_capacity=1000) == ["greater_than_or_equal_to"]
    assert refused("cartridge_capacity", cartridge_capacity=None) == ["blank"]
    assert refused("cartridge_capacity", cartridge_capacity="lots") == ["not_a_number"]
    assert refused("cartridge_type", cartridge_type="floppy") == ["inclusion"]
    assert refused("barcode_prefix", barcode_prefix="a/b") == ["invalid"]
    response = api.post("/tape_libraries", json=virtual_body(device, storage_slots=0, drives=0))
    assert response.status_code == 422 and len(response.json()["messages"]) == 2
    assert list(device.iterdir()) == []  # nothing made on disk

    ok(api.post("/tape_libraries", json=virtual_body(device)), 201)
    assert refused("device") == ["taken"]  # one library per directory


def test_blank_cartridges_added_later(api, tmp_path):
    library, device = new_virtual_library(api, tmp_path, storage_slots=1)
    url = f"/tape_libraries/{library['id']}/blank_tapes"
    added = ok(api.post(url, json={"count": 2, "max": 2 * MiB}), 201)
    assert added["count"] == 2
    assert [t["max"] for t in added["tapes"]] == [2 * MiB, 2 * MiB]
    assert [t["location"] for t in added["tapes"]] == ["Slot 2", "Slot 3"]
    assert all((device / f"{t['barcode']}.tape").exists() for t in added["tapes"])
    assert ok(api.get(f"/tape_libraries/{library['id']}"))["storage_slots"] == 3  # grown

    # One at a time through the registration endpoint: a barcode is made up if none given.
    one = ok(api.post(f"/tape_libraries/{library['id']}/tapes", json={}), 201)
    named = ok(api.post(f"/tape_libraries/{library['id']}/tapes",
                        json={"barcode": unique("N").replace("-", "")[:8].upper(),
                              "type": "data_lto6"}), 201)
    assert (one["max"], one["scratch"], named["type"]) == (4 * MiB, True, "data_lto6")
    assert (device / f"{named['barcode']}.tape").exists()
    assert len(library_tapes(api, library)) == 5
    assert len({t["pool_id"] for t in library_tapes(api, library)}) == 1  # all scratch

    assert error_kinds(api.post(url, json={"count": 0}), "count") == ["inclusion"]
    assert error_kinds(api.post(url, json={"count": 1, "max": 0}), "max") == ["greater_than"]
    assert error_kinds(api.post(f"/tape_libraries/{library['id']}/tapes",
                                json={"barcode": one["barcode"]}), "barcode") == ["taken"]
    physical = ok(api.post("/tape_libraries", json={"name": unique("phys")}), 201)
    assert error_kinds(api.post(f"/tape_libraries/{physical['id']}/blank_tapes",
                                json={"count": 1}), "tape_library_id") == ["invalid"]
    assert api.post("/tape_libraries/999999999/blank_tapes", json={}).status_code == 404


def test_what_a_virtual_library_is_made_of_is_set_at_creation(api, tmp_path):
    library, _ = new_virtual_library(api, tmp_path)
    url = f"/tape_libraries/{library['id']}"
    for field, value in (("storage_slots", 9), ("io_slots", 3), ("device", "/elsewhere"),
                         ("protocol", "scsi")):
        assert error_kinds(api.put(url, json={field: value}), field) == ["frozen"]
    # The whole object sent back unchanged is fine, and so are the other fields.
    same = ok(api.put(url, json={**library, "comment": "robot", "cartridge_capacity": 8 * MiB}))
    assert same["comment"] == "robot" and same["cartridge_capacity"] == 8 * MiB
    added = ok(api.post(f"{url}/blank_tapes", json={}), 201)["tapes"][0]
    assert added["max"] == 8 * MiB
    physical = ok(api.post("/tape_libraries", json={"name": unique("phys")}), 201)
    assert error_kinds(api.put(f"/tape_libraries/{physical['id']}",
                               json={"protocol": "virtual"}), "protocol") == ["frozen"]


def test_tape_flags_follow_the_library(api, tmp_path):
    """What a node does in the library (load, write, unload, eject) shows on the tapes."""
    library, device = new_virtual_library(api, tmp_path)
    first, second, _ = (t["barcode"] for t in library_tapes(api, library))
    driver = VirtualLibrary(device)

    driver.load(first, 1)
    with driver.open_drive(1, 64 * 1024) as drive:
        write_label(drive)
    tape = ok(api.get(f"/tapes/{first}"))
    assert (tape["mounted"], tape["location"], tape["mount_count"]) == (True, "Drive 1", 1)
    assert tape["free"] == 4 * MiB - 64 * 1024 and tape["date_move"]
    assert ok(api.get(f"/tapes/{first}/mount"))["mounted"] is True
    drive = ok(api.get(f"/tape_libraries/{library['id']}/tape_drives/drive1"))
    assert (drive["barcode"], drive["full"]) == (first, 1)

    driver.unload(1)
    driver.export(second)
    tapes = {t["barcode"]: t for t in library_tapes(api, library)}
    assert (tapes[first]["mounted"], tapes[first]["location"]) == (False, "Slot 1")
    assert (tapes[second]["ejected"], tapes[second]["location"]) == (True, "Mail slot 1")
    assert ok(api.get("/tape_drives", params={"tape_library_id": library["id"],
                                              "full": 1}))["count"] == 0
    assert ok(api.get("/tapes", params={"ejected": "true",
                                        "tape_library_id": library["id"]}))["count"] == 1

    # A cartridge from elsewhere, put in through the mail slot: listed, to be checked.
    (device / "ALIEN1L5.tape").write_bytes(b"\0" * 1024)
    assert driver.import_cartridge("ALIEN1L5") == 2  # the slot the ejected one left
    alien = ok(api.get(f"/tape_libraries/{library['id']}/tapes/ALIEN1L5"))
    assert (alien["known"], alien["need_to_check"], alien["scratch"]) == (False, True, False)
    assert alien["location"] == "Slot 2"


def test_the_scratch_pool_supplies_fresh_cartridges(api, server, tmp_path):
    library, _ = new_virtual_library(api, tmp_path)
    data_pool = new_pool(api, "tape", type="offline_archive", storage_id=library["id"])
    first, second, third = (t["barcode"] for t in library_tapes(api, library))
    engine = make_engine(server.database.url)
    try:
        with Session(engine) as session, session.begin():
            pool = session.get(Pool, data_pool["id"])
            locked = session.query(Tape).filter_by(barcode=first).one()
            locked.locked = True  # a locked cartridge is never handed out
            drawn = draw_scratch_tape(session, pool)
            assert drawn.barcode == second and drawn.pool_id == pool.id
        assert [t["barcode"] for t in ok(api.get(f"/pools/{data_pool['id']}/tapes"))["tapes"]] \
            == [second]
        assert ok(api.get(f"/tapes/{second}"))["scratch"] is False
        with Session(engine) as session, session.begin():
            assert draw_scratch_tape(session, session.get(Pool, data_pool["id"])).barcode == third
            assert draw_scratch_tape(session, session.get(Pool, data_pool["id"])) is None
            scratch = return_to_scratch(session, session.query(Tape).filter_by(barcode=second).one())
            assert scratch.type == "scratch"
            scratch_id = scratch.id
        back = ok(api.get(f"/tapes/{second}"))
        assert back["scratch"] is True and back["pool_id"] == scratch_id
    finally:
        engine.dispose()


def tiermover(*args: str) -> subprocess.CompletedProcess:
    # The first command makes the administrator: with the password the server expects.
    env = {**os.environ, "TIERMOVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    return subprocess.run([sys.executable, "-m", "tiermover", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_the_same_from_the_shell(fresh_database, tmp_path):
    data_dir = tmp_path / "data"
    where = ["--data-dir", str(data_dir), "--database-url", fresh_database.url]
    device = tmp_path / "robot"
    device.mkdir()
    made = tiermover("tape", "create-library", "robot", "--device", str(device), "--slots", "2",
                     "--drives", "1", "--io-slots", "1", "--capacity", "1M", *where)
    assert made.returncode == 0, made.stderr
    barcodes = made.stdout.split()
    assert len(barcodes) == 2 and all((device / f"{b}.tape").exists() for b in barcodes)
    more = tiermover("tape", "add-blank", "robot", "--count", "2", "--capacity", "2M", *where)
    assert more.returncode == 0, more.stderr
    assert len(more.stdout.split()) == 2
    listed = tiermover("tape", "list", "robot", *where)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 4
    assert "Slot 4\t2097152/2097152\tscratch" in listed.stdout
    bad = tiermover("tape", "create-library", "other", "--device", str(device), "--slots", "0",
                    "--capacity", "1M", *where)
    assert bad.returncode == 2
    assert "Device already holds a virtual tape library" in bad.stderr
    assert "Storage slots must be greater than or equal to 1" in bad.stderr

    server = start_server(fresh_database, data_dir)
    try:
        with server.client() as api:
            library = ok(api.get("/tape_libraries/robot"))
            assert (library["protocol"], library["storage_slots"]) == ("virtual", 4)
            assert ok(api.get(f"/tape_libraries/{library['id']}/tapes"))["count"] == 4
    finally:
        stop_server(server)
