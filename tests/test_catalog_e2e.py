"""The catalog end to end: what copies, moves, scans, checks, cache cleaning and backups
record, seen through the Nodeum file endpoints and the executions' logs. A real server,
a real node process and real files; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import datetime

import xxhash

from engine_fixtures import *  # noqa: F401,F403 (engine, api, nodes, storage fixtures)
from engine_fixtures import action_task
from engine_support import catalog_entry, logs, make_tree, run_task, share_on, tree_digest



def messages(api, execution: dict) -> list[str]:
    return [line["msg"] for line in logs(api, execution["id"])]


def test_copies_are_recorded_on_their_file_with_checksum_and_share(api, nodes, storage,
                                                                   tmp_path):
    source, source_root, _, _ = storage
    (tmp_path / "share").mkdir()
    share = share_on(api, tmp_path / "share")
    (source_root / "docs").mkdir()
    (source_root / "docs" / "a.txt").write_text("alpha\n")
    nodes()
    task = action_task(api, "copy", [f"/{source}/docs"], [f"/{share}/copies"],
                       options={"file_checksum": "sha256"})
    execution = run_task(api, task)
    assert execution["status"] == "done", execution
    original = catalog_entry(api, f"/{source}/docs/a.txt")
    assert original is not None
    digest = hashlib.sha256(b"alpha\n").hexdigest()
    assert original["checksums"] == [f"sha256:{digest}"]
    assert original["nas_shares"] == [share]
    assert (original["in_cache"], original["offline"], original["size"]) == (1, 0, 6)
    # The copy is a catalogued file of the share as well, with the execution listing it.
    copy = catalog_entry(api, f"/{share}/copies/docs/a.txt")
    assert copy is not None and copy["size"] == 6
    listed = api.get(f"/task_executions/{execution['id']}/files").json()["files"]
    assert [entry["file_path"] for entry in listed] == [f"/{share}/copies/docs"]


def test_move_from_a_container_keeps_entries_offline_with_their_copy(api, nodes, storage,
                                                                     tmp_path):
    source, source_root, _, _ = storage
    (tmp_path / "vault").mkdir()
    share = share_on(api, tmp_path / "vault")
    tree = make_tree(source_root / "projects", files=6, size=2_000)
    before = tree_digest(tree)
    nodes()
    execution = run_task(api, action_task(api, "move", [f"/{source}/projects"], [f"/{share}"]))
    assert execution["status"] == "done", execution
    assert tree_digest(tmp_path / "vault" / "projects") == before
    moved = "dir0/file-00000.bin"
    entry = catalog_entry(api, f"/{source}/projects/{moved}")
    assert not (tree / moved).exists()
    assert (entry["in_cache"], entry["offline"]) == (0, 1)
    assert entry["nas_shares"] == [share]
    assert len(entry["checksums"]) == 1 and entry["checksums"][0].startswith("xxh128:")


def test_scan_sees_new_changed_and_deleted_files(api, nodes, storage):
    source, source_root, _, _ = storage
    area = source_root / "area"
    area.mkdir()
    for name in ("keep.txt", "edit.txt", "drop.txt"):
        (area / name).write_text(name)
    (area / "sub").mkdir()
    (area / "sub" / "deep.txt").write_text("deep")
    nodes()
    scan = action_task(api, "scan", [f"/{source}/area"], workflow_type="maintenance",
                       options={"full_report": "true"})
    first = run_task(api, scan)
    assert first["status"] == "done", first
    assert f"/{source}/area/edit.txt: new" in messages(api, first)
    dropped = catalog_entry(api, f"/{source}/area/drop.txt")
    assert dropped is not None and dropped["size"] == len("drop.txt")

    (area / "drop.txt").unlink()
    shutil.rmtree(area / "sub")
    (area / "edit.txt").write_text("edited, and longer")
    os.utime(area / "edit.txt", (1_600_000_000, 1_600_000_000))
    (area / "fresh.txt").write_text("fresh")
    second = run_task(api, scan)
    assert second["status"] == "done", second
    lines = messages(api, second)
    for expected in (f"/{source}/area/fresh.txt: new", f"/{source}/area/edit.txt: changed",
                     f"/{source}/area/keep.txt: unchanged", f"/{source}/area/drop.txt: deleted",
                     f"/{source}/area/sub/deep.txt: deleted", f"/{source}/area/sub: deleted"):
        assert expected in lines, (expected, lines)
    assert catalog_entry(api, f"/{source}/area/drop.txt") is None
    assert catalog_entry(api, f"/{source}/area/sub") is None
    assert api.get(f"/files/{dropped['id']}").status_code == 404
    edited = catalog_entry(api, f"/{source}/area/edit.txt")
    assert edited["size"] == len("edited, and longer")
    assert edited["modification_date"].startswith("2020-09-13")


def test_check_consistency_reports_a_corrupted_byte_and_a_missing_copy(api, nodes, storage,
                                                                        tmp_path):
    source, source_root, _, _ = storage
    (tmp_path / "copies").mkdir()
    share = share_on(api, tmp_path / "copies")
    folder = source_root / "data"
    folder.mkdir()
    for name in ("good.bin", "rot.bin", "lost.bin"):
        (folder / name).write_bytes(os.urandom(50_000))
    nodes()
    assert run_task(api, action_task(api, "copy", [f"/{source}/data"], [f"/{share}"]))["status"] == "done"
    check = action_task(api, "check_consistency", [f"/{source}/data"],
                        workflow_type="maintenance")
    assert run_task(api, check)["status"] == "done"

    rotten = tmp_path / "copies" / "data" / "rot.bin"
    data = bytearray(rotten.read_bytes())
    data[12_345] ^= 0x01
    rotten.write_bytes(bytes(data))
    (tmp_path / "copies" / "data" / "lost.bin").unlink()
    execution = run_task(api, check)
    assert execution["status"] == "finished_with_warnings", execution
    warnings = [line["msg"] for line in logs(api, execution["id"]) if line["level"] == "warning"]
    assert any(line.startswith(f"/{share}/data/rot.bin: checksum") and "does not match" in line
               for line in warnings), warnings
    assert any(line.startswith(f"/{share}/data/lost.bin: missing") for line in warnings), warnings
    assert not any("good.bin" in line for line in warnings)


def test_cache_cleaning_drops_primaries_that_have_a_matching_copy(api, nodes, storage, tmp_path):
    source, source_root, _, _ = storage
    (tmp_path / "copies").mkdir()
    share = share_on(api, tmp_path / "copies")
    folder = source_root / "cold"
    folder.mkdir()
    (folder / "archived.bin").write_bytes(b"a" * 4096)
    (folder / "edited.bin").write_bytes(b"b" * 4096)
    (folder / "uncopied.bin").write_bytes(b"c" * 10)
    nodes()
    copy = action_task(api, "copy", [f"/{source}/cold/archived.bin", f"/{source}/cold/edited.bin"],
                       [f"/{share}"])
    assert run_task(api, copy)["status"] == "done"
    (folder / "edited.bin").write_bytes(b"B" * 4096)  # its copy is now out of date
    clean = action_task(api, "cache_cleaning", [f"/{source}/cold"], workflow_type="maintenance")
    execution = run_task(api, clean)
    assert execution["status"] == "finished_with_warnings", execution
    assert sorted(p.name for p in folder.iterdir()) == ["edited.bin", "uncopied.bin"]
    archived = catalog_entry(api, f"/{source}/cold/archived.bin")
    assert (archived["in_cache"], archived["offline"]) == (0, 1)
    assert (tmp_path / "copies" / "archived.bin").read_bytes() == b"a" * 4096
    assert any("edited.bin: kept in cache" in line for line in messages(api, execution))


def test_backup_sets_restore_newest_and_a_given_set(api, nodes, storage, tmp_path):
    source, source_root, destination, destination_root = storage
    (tmp_path / "backups").mkdir()
    share = share_on(api, tmp_path / "backups")
    project = make_tree(source_root / "proj", files=8, size=1_500)
    first_state = tree_digest(project)
    nodes()
    backup = action_task(api, "incremental_backup", [f"/{source}/proj"], [f"/{share}"],
                         workflow_type="data_migration")
    first = run_task(api, backup)
    assert first["status"] == "done", first
    first_set = tmp_path / "backups" / f"backup-{first['id']}" / "proj"
    assert tree_digest(first_set) == first_state  # no earlier set: everything is copied

    changed = "dir0/file-00000.bin"
    (project / changed).write_bytes(b"second version")
    (project / "added.txt").write_text("new in the second set")
    second = run_task(api, backup)
    assert second["status"] == "done", second
    second_set = tmp_path / "backups" / f"backup-{second['id']}" / "proj"
    assert sorted(tree_digest(second_set)) == ["added.txt", "dir0", changed]
    second_state = tree_digest(project)

    shutil.rmtree(project)  # the disaster
    newest = action_task(api, "restore", [f"/{source}/proj"], [f"/{destination}/newest"],
                         workflow_type="data_migration")
    assert run_task(api, newest)["status"] == "done"
    assert tree_digest(destination_root / "newest" / "proj") == second_state

    as_of_first = action_task(api, "restore", [f"/{source}/proj"], [f"/{destination}/older"],
                              workflow_type="data_migration",
                              options={"execution_task_id": first["id"]})
    assert run_task(api, as_of_first)["status"] == "done"
    assert tree_digest(destination_root / "older" / "proj") == first_state

    as_of_second = action_task(api, "restore", [f"/{source}/proj"], [f"/{destination}/second"],
                               workflow_type="data_migration",
                               options={"execution_task_id": second["id"]})
    assert run_task(api, as_of_second)["status"] == "done"
    assert tree_digest(destination_root / "second" / "proj") == second_state


def test_a_copied_file_enters_the_catalog_with_its_attributes_and_a_later_copy_updates_it(
        api, nodes, storage, tmp_path):
    """New entries of a copy are created holding the file's attributes and checksum (and
    its source's); entries that exist are updated by the next copy."""
    source, source_root, _, _ = storage
    (tmp_path / "share").mkdir()
    share = share_on(api, tmp_path / "share")
    (source_root / "notes").mkdir()
    original = source_root / "notes" / "n.txt"
    original.write_text("first\n")
    os.chmod(original, 0o640)
    nodes()

    def copy(policy: str) -> dict:
        execution = run_task(api, action_task(api, "copy", [f"/{source}/notes"],
                                              [f"/{share}/out"], conflict_resolution=policy))
        assert execution["status"] == "done", execution
        return execution

    copy("rename")
    landed = tmp_path / "share" / "out" / "notes" / "n.txt"
    for path, namespace in ((landed, f"/{share}/out/notes/n.txt"),
                            (original, f"/{source}/notes/n.txt")):
        entry = catalog_entry(api, namespace)
        info = path.stat()
        assert entry["type"] == "file" and entry["size"] == 6, entry
        assert entry["permission"] == int(oct(info.st_mode)[2:]) and entry["uid"] == info.st_uid
        assert entry["checksums"] == ["xxh128:" + xxhash.xxh3_128_hexdigest(b"first\n")]
    folder = catalog_entry(api, f"/{share}/out/notes")
    assert folder["type"] == "folder"

    original.write_text("second, longer\n")
    copy("overwrite")
    for namespace in (f"/{share}/out/notes/n.txt", f"/{source}/notes/n.txt"):
        entry = catalog_entry(api, namespace)
        assert entry["size"] == 15, entry
        assert "xxh128:" + xxhash.xxh3_128_hexdigest(b"second, longer\n") in entry["checksums"]

    # Copied again unchanged but for its mode (same content, same date): the entries the
    # copy loads follow what the node read, not only what tells content apart.
    os.chmod(original, 0o600)
    copy("overwrite")
    assert catalog_entry(api, f"/{source}/notes/n.txt")["permission"] == 100600

    # ... and unchanged but for its modification date, moved back by an hour and a quarter
    # of a second: the dates an entry was loaded with are compared with what the node read.
    moved = original.stat().st_mtime - 3600.25
    os.utime(original, (moved, moved))
    copy("overwrite")
    dated = catalog_entry(api, f"/{source}/notes/n.txt")["modification_date"]
    assert abs(datetime.fromisoformat(dated.replace("Z", "+00:00")).timestamp() - moved) < 0.002
