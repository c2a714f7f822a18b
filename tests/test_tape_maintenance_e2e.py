"""get_index, check_consistency and rehydratation of cartridges, end to end: a real server
(SQLite, PostgreSQL), a real node, and a virtual library standing in for a physical
changer and its drives (no tape hardware runs here)."""

from __future__ import annotations

import time
from pathlib import Path

from engine_fixtures import *  # noqa: F401,F403
from engine_fixtures import action_task
from engine_support import (
    catalog_entry, create_container, latest_execution, make_tree, tree_digest,
)
from test_storage_api import ok
from test_tape_archive_e2e import library_with_pool, pool_tapes, run, to_pool
from test_tape_workflows_e2e import tar_listing
from tiermover.storage.tape.virtual import VirtualLibrary
from tiermover.storage.tape.writer import SessionWriter, write_label


def written_elsewhere(device: Path, barcode: str, files: dict[str, bytes]) -> None:
    """A cartridge archived by another installation: this catalog knows nothing of it."""
    library = VirtualLibrary(device)
    library.load(barcode, 0)
    with library.open_drive(0, 64 * 1024) as drive:
        write_label(drive)
        for name, data in files.items():  # one session per file
            writer = SessionWriter.open(drive)
            handle = writer.begin_file(name, len(data), time.time())
            handle.write(data)
            handle.commit()
            writer.close()
    library.unload(0)


def into_pool(api, pool: dict, barcode: str) -> None:
    """Takes the cartridge out of its scratch pool into `pool`."""
    tape = ok(api.get(f"/tapes/{barcode}"))
    scratch = tape["pool_id"]
    ok(api.put(f"/pools/{scratch}", json={"tape_ids": [
        t["id"] for t in ok(api.get(f"/pools/{scratch}/tapes"))["tapes"] if t["id"] != tape["id"]]}))
    ok(api.put(f"/pools/{pool['id']}", json={"tape_ids": [tape["id"]]}))


def source_task(api, action: str, pool: dict, **options) -> dict:
    task = action_task(api, action, workflow_type="maintenance", options=options)
    ok(api.post(f"/tasks/{task['id']}/task_sources", json={"pool_id": pool["id"]}), 201)
    return task


def test_get_index_imports_a_cartridge_the_catalog_never_knew(api, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=2)
    barcode = ok(api.get(f"/tape_libraries/{library['id']}/tapes",
                         params={"sort_by": "barcode"}))["tapes"][0]["barcode"]
    written_elsewhere(device, barcode, {"projects/a.txt": b"alpha", "projects/deep/b.txt": b"b",
                                        "c.txt": b"gamma!"})
    into_pool(api, pool, barcode)
    assert ok(api.get(f"/pools/{pool['id']}/import_files"))["import_files"] == []
    nodes()

    finished, lines = run(api, source_task(api, "get_index", pool))
    assert finished["status"] == "done", lines
    assert any("3 entries in 3 sessions imported" in line for line in lines), lines
    top = ok(api.get(f"/pools/{pool['id']}/import_files"))["import_files"]
    assert [(f["name"], f["type"]) for f in top] == [(barcode, "folder")]
    below = ok(api.get(f"/pools/{pool['id']}/import_files/{top[0]['id']}/children"))
    assert sorted((f["name"], f["type"], f["size"]) for f in below["import_files"]) == \
        [("c.txt", "file", 6), ("projects", "folder", 0)]
    projects = next(f for f in below["import_files"] if f["name"] == "projects")
    inside = ok(api.get(f"/pools/{pool['id']}/import_files/{projects['id']}/children"))
    assert sorted(f["name"] for f in inside["import_files"]) == ["a.txt", "deep"]

    # Again: the import is replaced, not doubled.
    finished, lines = run(api, source_task(api, "get_index", pool))
    assert finished["status"] == "done", lines
    assert len(ok(api.get(f"/pools/{pool['id']}/import_files"))["import_files"]) == 1


def corrupt_one_byte(cartridge: Path, data: bytes) -> None:
    """Flips a byte in the middle of a file's data where it lies on the cartridge."""
    raw = bytearray(cartridge.read_bytes())
    start = raw.find(data[:4096])
    assert start > 0, "the file is on this cartridge"
    raw[start + len(data) // 2] ^= 0xFF
    cartridge.write_bytes(bytes(raw))


def test_check_consistency_reports_the_file_with_a_corrupted_byte(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=3)
    source, source_root = create_container(api, engine)
    tree = make_tree(source_root / "data", files=6, size=100 * 1024, folders=2)
    nodes()
    finished, lines = run(api, to_pool(api, "copy", [f"/{source}/data"], pool))
    assert finished["status"] == "done", lines

    clean = source_task(api, "check_consistency", pool)
    finished, lines = run(api, clean)
    assert finished["status"] == "done", lines
    assert any("6 files verified" in line for line in lines), lines

    barcode = pool_tapes(api, pool)[0]["barcode"]
    victim = tree / "dir1" / "file-00003.bin"
    corrupt_one_byte(device / f"{barcode}.tape", victim.read_bytes())

    finished, lines = run(api, clean)
    assert finished["status"] == "finished_with_warnings", lines
    bad = [line for line in lines if "does not match" in line]
    assert len(bad) == 1 and bad[0].startswith(
        f"/{library['name']}/{barcode}/data/dir1/file-00003.bin: checksum"), lines
    assert any("1 of 6 files do not match" in line for line in lines), lines

    # The same file checked through the catalog (the task names the files, not the tape).
    by_files = action_task(api, "check_consistency", sources=[f"/{source}/data"],
                           workflow_type="maintenance")
    finished, lines = run(api, by_files)
    assert finished["status"] == "finished_with_warnings", lines
    bad = [line for line in lines if "does not match" in line]
    assert [line.split(":")[0] for line in bad] == \
        [f"/{library['name']}/{barcode}/data/dir1/file-00003.bin"], lines


def test_rehydratation_frees_a_mostly_deleted_cartridge_and_keeps_live_files(api, engine, nodes,
                                                                            tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=4)
    source, source_root = create_container(api, engine)
    keep = make_tree(source_root / "keep", files=2, size=200 * 1024, folders=1)
    gone = make_tree(source_root / "gone", files=8, size=200 * 1024, folders=2)
    expected = tree_digest(keep)
    nodes()
    finished, lines = run(api, to_pool(api, "copy", [f"/{source}/keep", f"/{source}/gone"],
                                       pool))
    assert finished["status"] == "done", lines
    [old] = [t["barcode"] for t in pool_tapes(api, pool)]

    # Most of what the cartridge holds is erased: 20% of its data stays live.
    erase = action_task(api, "erase", sources=[f"/{source}/gone"], workflow_type="maintenance")
    finished, lines = run(api, erase)
    assert finished["status"] == "done", lines
    assert not gone.exists() or not list(gone.rglob("file-*"))

    repack = source_task(api, "rehydratation", pool, rehydration_usage_threshold=30)
    finished, lines = run(api, repack)
    assert finished["status"] == "done", lines
    assert any(f"/{library['name']}/{old}: repacked, 20% of its data is live" in line
               for line in lines), lines

    old_tape = ok(api.get(f"/tapes/{old}"))
    assert old_tape["scratch"] is True and old_tape["pool_id"] != pool["id"]
    [new] = [t["barcode"] for t in pool_tapes(api, pool)]
    assert new != old
    on_new = [n for n in tar_listing(device / f"{new}.tape") if n.endswith(".bin")]
    assert sorted(on_new) == sorted(f"keep/{p}" for p, d in expected.items() if d != "dir")

    # The live files are read from the new cartridge: restore gives them back, identical.
    entry = catalog_entry(api, f"/{source}/keep/dir0/file-00000.bin")
    assert entry["tapes"] == [new]
    for path in keep.rglob("file-*"):
        path.unlink()
    destination, destination_root = create_container(api, engine)
    finished, lines = run(api, action_task(api, "restore", sources=[f"/{source}/keep"],
                                           destinations=[f"/{destination}"]))
    assert finished["status"] == "done", lines
    assert {p: d for p, d in tree_digest(destination_root / "keep").items() if d != "dir"} == \
        {p: d for p, d in expected.items() if d != "dir"}

    # A second run finds nothing under the threshold: the new cartridge stays.
    finished, lines = run(api, repack)
    assert finished["status"] == "done", lines
    assert any(f"/{library['name']}/{new}: kept (2 of 2 files live)" in line for line in lines)


def test_a_repacked_backup_set_still_restores(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=4)
    source, source_root = create_container(api, engine)
    keep = make_tree(source_root / "keep", files=2, size=200 * 1024, folders=1)
    gone = make_tree(source_root / "gone", files=8, size=200 * 1024, folders=2)
    expected = {p: d for p, d in tree_digest(keep).items() if d != "dir"}
    nodes()
    backup = to_pool(api, "full_backup", [f"/{source}/keep", f"/{source}/gone"], pool)
    finished, lines = run(api, backup)
    assert finished["status"] == "done", lines
    backup_run = latest_execution(api, backup["id"])["id"]
    finished, lines = run(api, action_task(api, "erase", sources=[f"/{source}/gone"],
                                           workflow_type="maintenance"))
    assert finished["status"] == "done", lines
    finished, lines = run(api, source_task(api, "rehydratation", pool,
                                           rehydration_usage_threshold=30))
    assert finished["status"] == "done", lines
    assert any("repacked" in line for line in lines), lines

    # The set made before the repack is read from where its files live now.
    for path in keep.rglob("file-*"):
        path.unlink()
    destination, destination_root = create_container(api, engine)
    restore = action_task(api, "restore", sources=[f"/{source}/keep"],
                          destinations=[f"/{destination}"],
                          options={"execution_task_id": backup_run})
    finished, lines = run(api, restore)
    assert finished["status"] == "done", lines
    assert {p: d for p, d in tree_digest(destination_root / "keep").items() if d != "dir"} == \
        expected
