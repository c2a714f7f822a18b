"""Archiving to tape pools and reading back, end to end: a real server (SQLite,
PostgreSQL), a real node, and a virtual library standing in for a physical changer and its
drives (no tape hardware runs here). Cartridges are small, so a tree spans several; what
is on them is checked with GNU tar as well as through the API.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import unique
from engine_fixtures import *  # noqa: F401,F403
from engine_fixtures import action_task
from engine_support import (
    act, catalog_entry, create_container, latest_execution, logs, make_tree, tree_digest,
    wait_task,
)
from test_storage_api import ok
from tiermover.storage.tape.format import META_DIR

MiB = 1024 * 1024


def library_with_pool(api, tmp_path: Path, slots: int = 6, capacity: int = 4 * MiB):
    device = tmp_path / unique("robot")
    device.mkdir()
    library = ok(api.post("/tape_libraries", json={
        "name": unique("robot"), "protocol": "virtual", "device": str(device),
        "storage_slots": slots, "io_slots": 1, "drives": 2, "cartridge_capacity": capacity}),
        201)
    pool = ok(api.post("/pools", json={"name": unique("archive"), "type": "offline_archive",
                                       "content": "tape", "storage_id": library["id"]}), 201)
    return library, device, pool


def to_pool(api, action: str, sources, pool: dict, **options) -> dict:
    task = action_task(api, action, sources=sources, options=options)
    ok(api.post(f"/tasks/{task['id']}/task_destinations", json={"pool_id": pool["id"]}), 201)
    return task


def run(api, task: dict, timeout: float = 120) -> tuple[dict, list[str]]:
    act(api, task["id"], "run")
    finished = wait_task(api, task["id"], timeout=timeout)
    execution = latest_execution(api, task["id"])
    return finished, [line["msg"] for line in logs(api, execution["id"])]


def pool_tapes(api, pool: dict) -> list[dict]:
    return ok(api.get(f"/pools/{pool['id']}/tapes", params={"sort_by": "barcode"}))["tapes"]


def tar(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["tar", *args], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_archive_to_a_pool_spans_cartridges_and_restores_identically(api, engine, nodes,
                                                                     tmp_path):
    library, device, pool = library_with_pool(api, tmp_path)
    source, source_root = create_container(api, engine)
    tree = make_tree(source_root / "projects", files=12, size=700 * 1024, folders=3)
    expected = tree_digest(tree)
    nodes()

    archive = to_pool(api, "copy", [f"/{source}/projects"], pool)
    finished, lines = run(api, archive)
    assert finished["status"] == "done", lines

    # Fresh cartridges came from the scratch pool, filled in order: at least three.
    tapes = pool_tapes(api, pool)
    assert len(tapes) >= 3, [t["barcode"] for t in tapes]
    assert all(t["scratch"] is False for t in tapes)

    # GNU tar alone reads each cartridge: together they hold every file, each once.
    on_tapes = []
    for tape in tapes:
        listing = tar("-t", "-i", "-f", str(device / f"{tape['barcode']}.tape")).split()
        on_tapes += [name for name in listing
                     if not name.startswith(META_DIR) and not name.endswith("/")
                     and name.rsplit("/", 1)[-1].startswith("file-")]
    assert sorted(on_tapes) == sorted(f"projects/{p}" for p, d in expected.items()
                                      if d != "dir")

    # One cartridge extracted with tar gives those files with their contents.
    first = tapes[0]["barcode"]
    out = tmp_path / "extracted"
    out.mkdir()
    tar("-x", "-i", "-f", str(device / f"{first}.tape"), cwd=out)
    extracted = {p.relative_to(out / "projects").as_posix(): d
                 for p, d in ((p, None) for p in (out / "projects").rglob("file-*"))}
    assert extracted, "the first cartridge holds files"
    digest = tree_digest(out / "projects")
    assert all(digest[name] == expected[name] for name in extracted)

    # The catalog: the source file lists its cartridge; no catalog entry of its own.
    name = sorted(p for p, d in expected.items() if d != "dir")[0]
    entry = catalog_entry(api, f"/{source}/projects/{name}")
    assert entry is not None and len(entry["tapes"]) == 1
    assert entry["tapes"][0] in [t["barcode"] for t in tapes]
    execution = latest_execution(api, finished["id"])
    listed = ok(api.get(f"/task_executions/{execution['id']}/files/{entry['id']}/tapes"))
    assert [t["barcode"] for t in listed["tapes"]] == entry["tapes"]
    assert api.get("/files", params={"name": library["name"]}).json()["files"] == []
    # The pool's files: the container at the top, down to the files on its tapes.
    top = ok(api.get(f"/pools/{pool['id']}/on_tapes_files"))["on_tapes_files"]
    assert [f["name"] for f in top] == [source]
    projects = ok(api.get(f"/pools/{pool['id']}/on_tapes_files/{top[0]['id']}/children"))
    assert [f["name"] for f in projects["on_tapes_files"]] == ["projects"]
    on_tape = ok(api.get(f"/pools/{pool['id']}/on_tapes_files/{entry['id']}"))
    assert on_tape["barcodes"] == entry["tapes"] and on_tape["size"] == entry["size"]
    other_pool = ok(api.post("/pools", json={"name": unique("empty"), "content": "tape",
                                              "type": "offline_archive"}), 201)
    assert ok(api.get(f"/pools/{other_pool['id']}/on_tapes_files"))["on_tapes_files"] == []

    # Restore into a new folder: the same tree, read from all the cartridges.
    destination, destination_root = create_container(api, engine)
    restore = action_task(api, "restore", sources=[f"/{source}/projects"],
                          destinations=[f"/{destination}"])
    finished, lines = run(api, restore)
    assert finished["status"] == "done", lines
    assert tree_digest(destination_root / "projects") == {
        p: d for p, d in expected.items()}


def test_move_to_tape_deletes_sources_only_once_verified(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=3)
    source, source_root = create_container(api, engine)
    tree = make_tree(source_root / "old", files=6, size=300 * 1024, folders=2)
    expected = tree_digest(tree)
    nodes()

    finished, lines = run(api, to_pool(api, "move", [f"/{source}/old"], pool))
    assert finished["status"] == "done", lines
    assert not list(tree.rglob("file-*"))  # the data now lives on tape only
    entry = catalog_entry(api, f"/{source}/old/dir0/file-00000.bin")
    assert entry is not None and entry["tapes"] and entry["offline"] in (True, 1)

    # It comes back from the tape, identical.
    destination, destination_root = create_container(api, engine)
    finished, lines = run(api, action_task(api, "restore", sources=[f"/{source}/old"],
                                           destinations=[f"/{destination}"]))
    assert finished["status"] == "done", lines
    assert {p: d for p, d in tree_digest(destination_root / "old").items() if d != "dir"} == \
        {p: d for p, d in expected.items() if d != "dir"}


def test_incremental_backup_to_tape_writes_only_what_changed(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=3)
    source, source_root = create_container(api, engine)
    tree = make_tree(source_root / "home", files=4, size=64 * 1024, folders=1)
    nodes()
    task = to_pool(api, "incremental_backup", [f"/{source}/home"], pool)
    finished, lines = run(api, task)
    assert finished["status"] == "done", lines
    (tree / "dir0" / "file-00001.bin").write_bytes(b"changed")
    finished, lines = run(api, task)
    assert finished["status"] == "done", lines
    barcode = pool_tapes(api, pool)[0]["barcode"]
    names = [n for n in tar("-t", "-i", "-f", str(device / f"{barcode}.tape")).split()
             if n.endswith(".bin")]
    assert len(names) == 5, names  # 4 in the first set, the changed one in the second
    assert sum(n.endswith("file-00001.bin") for n in names) == 2

    destination, destination_root = create_container(api, engine)
    finished, lines = run(api, action_task(api, "restore", sources=[f"/{source}/home"],
                                           destinations=[f"/{destination}"]))
    assert finished["status"] == "done", lines
    assert (destination_root / "home" / "dir0" / "file-00001.bin").read_bytes() == b"changed"
    assert tree_digest(destination_root / "home") == tree_digest(tree)


def test_eject_tape_after_and_selected_drive_on_an_archiving_task(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=3)
    source, source_root = create_container(api, engine)
    make_tree(source_root / "out", files=2, size=10 * 1024, folders=1)
    from tiermover.storage.tape.virtual import VirtualLibrary
    barcodes = sorted(VirtualLibrary(device).inventory().cartridges)
    # Another cartridge sits in drive 1, drive 0 is empty: only selected_drive makes the
    # task use drive 1 (putting that cartridge back first).
    VirtualLibrary(device).load(barcodes[-1], 1)
    nodes()
    drives = ok(api.get(f"/tape_libraries/{library['id']}/tape_drives"))["tape_drives"]
    second = next(d for d in drives if d["transport"] == 1)
    finished, lines = run(api, to_pool(api, "copy", [f"/{source}/out"], pool,
                                       eject_tape_after="true", selected_drive=second["id"]))
    assert finished["status"] == "done", lines
    [tape] = pool_tapes(api, pool)
    assert (tape["ejected"], tape["location"]) == (True, "Mail slot 1"), tape
    assert any("ejected to mail slot 1" in line for line in lines), lines
    inventory = VirtualLibrary(device).inventory()
    assert inventory.cartridges[tape["barcode"]].mount_count == 1
    assert inventory.cartridges[barcodes[-1]].place == "slot"  # moved out of drive 1


def nas_pool(api, path: Path) -> tuple[dict, str]:
    """A pool of one NAS share at `path`; (pool, share name)."""
    from engine_support import share_on

    path.mkdir(parents=True, exist_ok=True)
    name = share_on(api, path)
    share = next(s for s in ok(api.get("/nas_shares", params={"name": name}))["nas_shares"])
    pool = ok(api.post("/pools", json={"name": unique("nas-pool"), "type": "active_archive",
                                       "content": "nas"}), 201)
    ok(api.put(f"/pools/{pool['id']}", json={"nas_share_ids": [share["id"]]}))
    return pool, name


def test_duplication_to_and_from_tape_pools(api, engine, nodes, tmp_path):
    library, device, tapes = library_with_pool(api, tmp_path, slots=3)
    archive, archive_name = nas_pool(api, tmp_path / "archive")
    tree = make_tree(tmp_path / "archive" / "set", files=4, size=50 * 1024, folders=2)
    nodes()

    # A NAS pool duplicated onto the tape pool; a second run has nothing new to write.
    to_tapes = action_task(api, "duplication", workflow_type="maintenance")
    ok(api.post(f"/tasks/{to_tapes['id']}/task_sources", json={"pool_id": archive["id"]}), 201)
    ok(api.post(f"/tasks/{to_tapes['id']}/task_destinations", json={"pool_id": tapes["id"]}),
       201)
    finished, lines = run(api, to_tapes)
    assert finished["status"] == "done", lines
    [barcode] = [t["barcode"] for t in pool_tapes(api, tapes)]
    size = (device / f"{barcode}.tape").stat().st_size
    names = [n for n in tar("-t", "-i", "-f", str(device / f"{barcode}.tape")).split()
             if n.endswith(".bin")]
    assert len(names) == 4, names
    finished, lines = run(api, to_tapes)
    assert finished["status"] == "done", lines
    assert (device / f"{barcode}.tape").stat().st_size == size  # nothing appended

    # The tape pool duplicated onto another NAS pool: read back from the cartridge.
    second, second_name = nas_pool(api, tmp_path / "second")
    from_tapes = action_task(api, "duplication", workflow_type="maintenance")
    ok(api.post(f"/tasks/{from_tapes['id']}/task_sources", json={"pool_id": tapes["id"]}), 201)
    ok(api.post(f"/tasks/{from_tapes['id']}/task_destinations", json={"pool_id": second["id"]}),
       201)
    finished, lines = run(api, from_tapes)
    assert finished["status"] == "done", lines
    landed = tmp_path / "second" / archive_name / "set"
    assert tree_digest(landed) == tree_digest(tree)
    entry = catalog_entry(api, f"/{archive_name}/set/dir0/file-00000.bin")
    assert entry["tapes"] == [barcode] and entry["nas_shares"] == [second_name]


def test_a_file_larger_than_a_cartridge_is_refused_with_the_reason(api, engine, nodes, tmp_path):
    library, device, pool = library_with_pool(api, tmp_path, slots=2, capacity=2 * MiB)
    source, source_root = create_container(api, engine)
    (source_root / "big").mkdir(parents=True)
    (source_root / "big" / "huge.bin").write_bytes(b"x" * (3 * MiB))
    (source_root / "big" / "small.bin").write_bytes(b"small")
    nodes()
    finished, lines = run(api, to_pool(api, "copy", [f"/{source}/big"], pool))
    assert finished["status"] == "finished_with_warnings", lines
    refusal = next(line for line in lines if "huge.bin" in line)
    assert "larger than an empty cartridge holds" in refusal and "never spans" in refusal
    [tape] = pool_tapes(api, pool)
    names = tar("-t", "-i", "-f", str(device / f"{tape['barcode']}.tape")).split()
    assert "big/small.bin" in names and "big/huge.bin" not in names


def test_formatting_a_cartridge_forgets_the_copies_it_held(api, engine, nodes, tmp_path):
    source, source_root = create_container(api, engine)
    make_tree(source_root / "small", files=3, size=10_000)
    library, device, pool = library_with_pool(api, tmp_path)
    nodes()
    finished, lines = run(api, to_pool(api, "copy", [f"/{source}/small"], pool))
    assert finished["status"] == "done", lines
    entry = catalog_entry(api, f"/{source}/small/dir0/file-00000.bin")
    assert len(entry["tapes"]) == 1
    task = action_task(api, "format", workflow_type="maintenance",
                       options={"overwrite": "true"})
    ok(api.post(f"/tasks/{task['id']}/task_sources", json={"tape_barcode": entry["tapes"][0]}),
       201)
    finished, lines = run(api, task)
    assert finished["status"] == "done", lines
    assert catalog_entry(api, f"/{source}/small/dir0/file-00000.bin")["tapes"] == []
    assert tar("-t", "-i", "-f", str(device / f"{entry['tapes'][0]}.tape")).split() == [
        f"{META_DIR}/label.json"]


def test_a_source_changing_while_it_is_archived_is_not_on_tape(api, engine, nodes, tmp_path):
    """Checked against the read (Backend.entry_read: for local files, a stat after it)."""
    import os
    import time

    library, device, pool = library_with_pool(api, tmp_path, capacity=16 * MiB)
    source, source_root = create_container(api, engine)
    folder = source_root / "live"
    folder.mkdir()
    victim = folder / "growing.log"
    victim.write_bytes(os.urandom(6 * MiB))
    # 2 MiB/s: the file takes about three seconds to archive, time enough to change it.
    nodes("--bwlimit", str(2 * MiB))
    archive = to_pool(api, "copy", [f"/{source}/live"], pool)
    act(api, archive["id"], "run")
    deadline = time.monotonic() + 30
    while not any(tape.stat().st_size > MiB for tape in device.glob("*.tape")):
        assert time.monotonic() < deadline, "the archive never started writing"
        time.sleep(0.02)
    # Rewritten in place, same size (growth the tar writer sees by itself): only its
    # date tells.
    with victim.open("r+b") as handle:
        handle.write(b"rewritten")
    finished = wait_task(api, archive["id"], timeout=60)
    lines = [line["msg"] for line in logs(api, latest_execution(api, archive["id"])["id"])]
    assert finished["status"] == "finished_with_warnings", lines
    assert any(f"/{source}/live/growing.log changed while it was written" in line
               for line in lines), lines
