"""format and ejection end to end: a real server (SQLite, PostgreSQL), a real node, and a
virtual library, which stands in for a physical changer and its drives (no tape hardware
runs here). The cartridges the node labels are read back with GNU tar.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import unique
from engine_fixtures import *  # noqa: F401,F403
from engine_fixtures import action_task
from engine_support import act, latest_execution, logs, wait_task
from test_storage_api import ok
from tiermover.storage.tape.format import META_DIR
from tiermover.storage.tape.virtual import VirtualLibrary
from tiermover.storage.tape.writer import SessionWriter, write_label

MiB = 1024 * 1024


def virtual_library(api, tmp_path: Path, **fields) -> tuple[dict, Path, list[str]]:
    device = tmp_path / unique("robot")
    device.mkdir()
    library = ok(api.post("/tape_libraries", json={
        "name": unique("robot"), "protocol": "virtual", "device": str(device),
        "storage_slots": 3, "io_slots": 1, "drives": 2, "cartridge_capacity": 4 * MiB,
        **fields}), 201)
    tapes = ok(api.get(f"/tape_libraries/{library['id']}/tapes",
                       params={"sort_by": "barcode"}))["tapes"]
    return library, device, [tape["barcode"] for tape in tapes]


def archive_something(device: Path, barcode: str) -> bytes:
    """Data written earlier on a cartridge (as an archiving task would have)."""
    library = VirtualLibrary(device)
    library.load(barcode, 0)
    with library.open_drive(0, 64 * 1024) as drive:
        write_label(drive)
        writer = SessionWriter.open(drive)
        handle = writer.begin_file("projects/report.pdf", 5, time.time())
        handle.write(b"%PDF-")
        handle.commit()
        writer.close()
    library.unload(0)
    return (device / f"{barcode}.tape").read_bytes()


def tape_task(api, action: str, tapes=(), **options) -> dict:
    task = action_task(api, action, workflow_type="maintenance", options=options)
    for barcode in tapes:
        ok(api.post(f"/tasks/{task['id']}/task_sources", json={"tape_barcode": barcode}), 201)
    return task


def run(api, task: dict) -> tuple[dict, list[str]]:
    act(api, task["id"], "run")
    finished = wait_task(api, task["id"])
    execution = latest_execution(api, task["id"])
    return finished, [line["msg"] for line in logs(api, execution["id"])]


def tar_listing(path: Path) -> list[str]:
    done = subprocess.run(["tar", "-t", "-i", "-f", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_format_labels_blank_cartridges_and_refuses_live_data(api, nodes, tmp_path):
    library, device, (blank, busy, _) = virtual_library(api, tmp_path)
    before = archive_something(device, busy)
    scratch_pool = ok(api.get(f"/tapes/{blank}"))["pool_id"]
    # The blank cartridge had been given to a data pool: tape_to_scratch brings it back.
    data_pool = ok(api.post("/pools", json={"name": unique("archive"), "type": "offline_archive",
                                            "content": "tape", "storage_id": library["id"]}),
                   201)
    ok(api.put(f"/pools/{scratch_pool}", json={"tape_ids": [
        t["id"] for t in ok(api.get(f"/pools/{scratch_pool}/tapes"))["tapes"]
        if t["barcode"] != blank]}))
    ok(api.put(f"/pools/{data_pool['id']}", json={"tape_ids": [ok(api.get(f"/tapes/{blank}"))["id"]]}))
    nodes()

    task = tape_task(api, "format", [blank, busy], tape_to_scratch="true")
    # Tasks filter on the cartridges their sources name, by barcode and by id.
    for params in ({"source_tape_barcode": busy},
                   {"source_tape_id": ok(api.get(f"/tapes/{busy}"))["id"]}):
        assert [t["id"] for t in ok(api.get("/tasks", params=params))["tasks"]] == [task["id"]]
    assert ok(api.get("/tasks", params={"destination_tape_barcode": busy}))["tasks"] == []
    finished, lines = run(api, task)
    assert finished["status"] == "finished_with_warnings", lines
    assert tar_listing(device / f"{blank}.tape") == [f"{META_DIR}/label.json"]
    assert any(f"/{library['name']}/{blank}: formatted in drive" in line for line in lines)
    refusal = next(line for line in lines if busy in line and "not formatted" in line)
    assert "it holds 1 files in 1 session" in refusal and "overwrite" in refusal
    assert (device / f"{busy}.tape").read_bytes() == before  # untouched

    formatted = ok(api.get(f"/tapes/{blank}"))
    assert formatted["pool_id"] == scratch_pool and formatted["scratch"] is True
    assert formatted["last_maintenance"] and formatted["mount_count"] == 1
    assert (formatted["mounted"], formatted["location"]) == (False, "Slot 1")  # put back
    assert formatted["free"] == 4 * MiB - 64 * 1024
    drives = ok(api.get(f"/tape_libraries/{library['id']}/tape_drives"))["tape_drives"]
    assert all(drive["full"] == 0 for drive in drives)

    forced = tape_task(api, "format", [busy], overwrite="true")
    finished, lines = run(api, forced)
    assert finished["status"] == "done", lines
    assert any("overwriting what was on it (it holds 1 files" in line for line in lines)
    assert tar_listing(device / f"{busy}.tape") == [f"{META_DIR}/label.json"]


def test_ejection_moves_cartridges_to_the_mail_slot(api, nodes, tmp_path):
    library, device, (first, second, third) = virtual_library(api, tmp_path)
    VirtualLibrary(device).load(second, 1)  # left in a drive: unloaded on the way out
    nodes()

    task = tape_task(api, "ejection", barcodes=second)
    finished, lines = run(api, task)
    assert finished["status"] == "done", lines
    ejected = ok(api.get(f"/tapes/{second}"))
    assert (ejected["ejected"], ejected["mounted"], ejected["location"]) == \
        (True, False, "Mail slot 1")
    assert any(f"{second}: ejected to mail slot 1" in line for line in lines)

    # One mail slot only: the next cartridge finds it taken.
    again = tape_task(api, "ejection", [third])
    finished, lines = run(api, again)
    assert finished["status"] == "finished_with_warnings", lines
    assert any("no free mail slot" in line for line in lines)
    assert ok(api.get(f"/tapes/{third}"))["ejected"] is False
