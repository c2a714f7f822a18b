"""How reads from tape are planned: by cartridge, in on-tape order, whatever order the
catalog gives the records in. The virtual library stands in for a physical changer and
drive (no tape hardware runs here); the catalog is a list of records as the server sends
them."""

from __future__ import annotations

import time
from pathlib import Path

from tiermover.storage.local import LocalBackend
from tiermover.storage.tape.virtual import VirtualLibrary
from tiermover.storage.tape.writer import SessionWriter, write_label
from tiermover.workflows.base import ExecutionPlan, StorageLocation
from tiermover.workflows.tape_restore import TapeRestoreWorkflow


class Context:
    def __init__(self):
        self.moved = 0

    def checkpoint(self) -> None:
        pass

    def add_bytes(self, count: int) -> None:
        self.moved += count

    def log(self, level: str, message: str) -> None:
        pass


def cartridge(directory: Path, barcode: str, files: dict[str, bytes]) -> dict[str, tuple]:
    """Writes the files on a cartridge; name -> (offset, checksum, algorithm)."""
    library = VirtualLibrary(directory)
    library.insert_blank([barcode], add_slots=True)
    library.load(barcode, 0)
    placed = {}
    with library.open_drive(0, 64 * 1024) as drive:
        write_label(drive)
        writer = SessionWriter.open(drive)
        for name, data in files.items():
            handle = writer.begin_file(name, len(data), time.time())
            handle.write(data)
            entry = handle.commit()
            placed[name] = (entry.offset, entry.checksum, entry.algorithm)
        writer.close()
    library.unload(0)
    return placed


def test_restore_reads_each_cartridge_once_in_on_tape_order(tmp_path):
    robot = tmp_path / "robot"
    robot.mkdir()
    VirtualLibrary.create(robot, storage_slots=0, io_slots=0, drives=1,
                          cartridge_capacity=16 * 1024 * 1024)
    contents = {f"f{n}": bytes([n]) * (1000 + n) for n in range(6)}
    first = cartridge(robot, "AAA001L5", {k: contents[k] for k in ("f0", "f1", "f2")})
    second = cartridge(robot, "BBB001L5", {k: contents[k] for k in ("f3", "f4", "f5")})
    records = []
    for barcode, placed in (("AAA001L5", first), ("BBB001L5", second)):
        for name, (offset, checksum, algorithm) in placed.items():
            records.append({"file": f"/ctr/data/{name}", "copy": f"/robot/{barcode}/data/{name}",
                            "size": len(contents[name]), "mtime": None, "checksum": checksum,
                            "algorithm": algorithm, "tape": True, "position": offset})
    # The catalog's order is by file path: here shuffled across both cartridges.
    shuffled = [records[i] for i in (4, 1, 5, 0, 3, 2)]
    out = tmp_path / "out"
    out.mkdir()
    library = VirtualLibrary(robot)
    plan = ExecutionPlan(
        action="restore", sources=[StorageLocation("/ctr/data", "ctr", LocalBackend(str(out)),
                                                   "data")],
        destinations=[StorageLocation("/back", "back", LocalBackend(str(out)), "")],
        catalog=lambda kind: iter(shuffled) if kind == "restore" else iter(()),
        open_path=lambda path: (library, path.strip("/").partition("/")[2]))
    workflow = TapeRestoreWorkflow(plan)
    loads = {b: c.mount_count for b, c in library.inventory().cartridges.items()}

    items = list(workflow.plan())
    assert [(item.payload.barcode, [r["file"].rsplit("/", 1)[1] for r in item.payload.records])
            for item in items] == [("AAA001L5", ["f0", "f1", "f2"]),
                                   ("BBB001L5", ["f3", "f4", "f5"])]
    context = Context()
    for item in items:
        result = workflow.run(item, context)
        assert result.outcome == "done" and not result.warning, result.message
    workflow.finish(context)
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == contents
    assert context.moved == sum(len(data) for data in contents.values())
    # Each cartridge was loaded once for all its files, and is back in its slot.
    inventory = library.inventory()
    assert {b: c.mount_count - loads[b] for b, c in inventory.cartridges.items()} == \
        {"AAA001L5": 1, "BBB001L5": 1}
    assert all(c.place == "slot" for c in inventory.cartridges.values())
