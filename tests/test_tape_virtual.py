"""The virtual tape library: slots, drives and mail slots, capacity, mount tracking.

The virtual library stands in for a physical changer and its drives (no tape hardware
runs here): a directory whose cartridges are files. Everything else is real: the files,
the locks between processes, the state that another process reads back.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time

import pytest

from tiermover.storage.tape.driver import (
    DRIVE, MAIL, SLOT, CartridgeNotFound, DriveBusy, EndOfMedia, NoFreeSlot, TapeError,
    WriteProtected,
)
from tiermover.storage.tape.virtual import VirtualLibrary

BLOCK = 4096


@pytest.fixture
def library(tmp_path) -> VirtualLibrary:
    library = VirtualLibrary.create(tmp_path, storage_slots=3, io_slots=1, drives=2,
                                    cartridge_capacity=10 * BLOCK)
    library.insert_blank(["VT0001L5", "VT0002L5"])
    return library


def test_create_needs_an_existing_directory_with_no_library(tmp_path):
    with pytest.raises(TapeError, match="not a directory"):
        VirtualLibrary.create(tmp_path / "missing", 1, 0, 1, 100)
    VirtualLibrary.create(tmp_path, 1, 0, 1, 100)
    with pytest.raises(TapeError, match="already holds"):
        VirtualLibrary.create(tmp_path, 1, 0, 1, 100)
    with pytest.raises(TapeError, match="holds no virtual tape library"):
        VirtualLibrary(tmp_path / "nothing").inventory()


def test_blank_cartridges_fill_free_slots(library, tmp_path):
    inventory = library.inventory()
    assert inventory.free_slots() == [3] and inventory.free_slots(MAIL) == [1]
    first = inventory.cartridges["VT0001L5"]
    assert (first.place, first.address, first.capacity, first.used, first.mount_count) == \
        (SLOT, 1, 10 * BLOCK, 0, 0)
    assert first.location == "Slot 1"
    assert (tmp_path / "VT0001L5.tape").read_bytes() == b""
    with pytest.raises(NoFreeSlot):
        library.insert_blank(["VT0003L5", "VT0004L5"])
    assert library.insert_blank(["VT0003L5", "VT0004L5"], capacity=5 * BLOCK,
                                add_slots=True) == [3, 4]
    inventory = library.inventory()
    assert inventory.storage_slots == 4 and inventory.cartridges["VT0004L5"].capacity == 5 * BLOCK
    with pytest.raises(TapeError, match="already in this library"):
        library.insert_blank(["VT0001L5"], add_slots=True)
    with pytest.raises(TapeError, match="not a barcode"):
        library.insert_blank(["../x"], add_slots=True)


def test_one_cartridge_per_drive_and_mounts_are_counted(library):
    before = library.inventory().cartridges["VT0001L5"].last_move
    time.sleep(0.01)
    library.load("VT0001L5", 0)
    inventory = library.inventory()
    loaded = inventory.in_drive(0)
    assert (loaded.barcode, loaded.place, loaded.location) == ("VT0001L5", DRIVE, "Drive 0")
    assert loaded.mount_count == 1 and loaded.last_move > before
    assert inventory.free_slots() == [1, 3]  # its slot waits for it

    with pytest.raises(DriveBusy, match="holds cartridge VT0001L5"):
        library.load("VT0002L5", 0)
    with pytest.raises(DriveBusy, match="is in drive 0"):
        library.load("VT0001L5", 1)
    with pytest.raises(TapeError, match="no drive 2"):
        library.load("VT0002L5", 2)
    with pytest.raises(CartridgeNotFound):
        library.load("NOPE01L5", 1)

    library.load("VT0002L5", 1)  # the other drive is free
    assert library.unload(0) == "VT0001L5"
    assert library.unload(0) is None
    library.load("VT0001L5", 0)
    back = library.inventory().cartridges["VT0001L5"]
    assert back.mount_count == 2 and back.place == DRIVE
    assert library.unload(0) == "VT0001L5"
    assert library.inventory().cartridges["VT0001L5"].location == "Slot 1"  # home slot


def test_an_open_drive_is_held_until_closed(library):
    library.load("VT0001L5", 0)
    with pytest.raises(TapeError, match="drive 1 is empty"):
        library.open_drive(1, BLOCK)
    device = library.open_drive(0, BLOCK)
    with pytest.raises(DriveBusy, match="in use by another process"):
        library.open_drive(0, BLOCK)
    with pytest.raises(DriveBusy, match="in use"):
        library.unload(0)
    device.close()
    assert library.unload(0) == "VT0001L5"


def test_the_lock_holds_across_processes(library, tmp_path):
    """A node in another process holds the drive: this one can neither open nor unload."""
    library.load("VT0001L5", 0)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from tiermover.storage.tape.virtual import VirtualLibrary
        device = VirtualLibrary({str(tmp_path)!r}).open_drive(0, {BLOCK})
        print("open", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DriveBusy):
            VirtualLibrary(tmp_path).open_drive(0, BLOCK)
        with pytest.raises(DriveBusy):
            VirtualLibrary(tmp_path).unload(0)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert VirtualLibrary(tmp_path).unload(0) == "VT0001L5"


def test_capacity_is_enforced_like_a_full_disk(library, tmp_path):
    library.load("VT0001L5", 0)
    with library.open_drive(0, BLOCK) as device:
        device.write(b"a" * 8 * BLOCK)
        with pytest.raises(EndOfMedia, match="full") as raised:
            device.write(b"b" * 3 * BLOCK)
        assert raised.value.errno == errno.ENOSPC
        assert device.end_of_data() == 8  # nothing of the refused write
        device.write(b"c" * 2 * BLOCK)  # exactly to the capacity
        with pytest.raises(EndOfMedia):
            device.write(b"d" * BLOCK)
        with pytest.raises(TapeError, match="whole blocks"):
            device.write(b"short")
    assert (tmp_path / "VT0001L5.tape").stat().st_size == 10 * BLOCK
    assert library.inventory().cartridges["VT0001L5"].free == 0


def test_writing_ends_the_data_where_it_stops(library):
    library.load("VT0001L5", 0)
    with library.open_drive(0, BLOCK) as device:
        device.write(b"1" * BLOCK + b"2" * BLOCK + b"3" * BLOCK)
        device.locate(1)
        device.write(b"x" * BLOCK)
        assert device.end_of_data() == 2  # block 2 ("3") is gone, as on tape
        device.locate(0)
        assert device.read(3 * BLOCK) == b"1" * BLOCK + b"x" * BLOCK
        assert device.read(10) == b""
        with pytest.raises(TapeError, match="beyond the end of data"):
            device.locate(3)


def test_write_protect_tab(library):
    library.set_write_protect("VT0002L5", True)
    library.load("VT0002L5", 1)
    with library.open_drive(1, BLOCK) as device:
        assert device.write_protected
        with pytest.raises(WriteProtected):
            device.write(b"\0" * BLOCK)


def test_ejection_to_mail_slots_and_back(library, tmp_path):
    library.load("VT0001L5", 0)
    with pytest.raises(DriveBusy, match="unload it first"):
        library.export("VT0001L5")
    library.unload(0)
    assert library.export("VT0001L5") == 1
    ejected = library.inventory().cartridges["VT0001L5"]
    assert (ejected.place, ejected.location) == (MAIL, "Mail slot 1")
    with pytest.raises(TapeError, match="import it first"):
        library.load("VT0001L5", 0)
    with pytest.raises(NoFreeSlot, match="no free mail slot"):
        library.export("VT0002L5")
    assert library.import_cartridge("VT0001L5") in (1, 3)
    assert library.inventory().cartridges["VT0001L5"].place == SLOT

    # A cartridge from elsewhere, dropped in the directory, comes in through the mail slot.
    (tmp_path / "FROM01L5.tape").write_bytes(b"\0" * BLOCK)
    slot = library.import_cartridge("FROM01L5")
    arrived = library.inventory().cartridges["FROM01L5"]
    assert arrived.place == SLOT and arrived.address == slot and arrived.used == BLOCK
    with pytest.raises(CartridgeNotFound):
        library.import_cartridge("NONE01L5")
