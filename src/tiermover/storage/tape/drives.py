"""Getting a cartridge into a drive and back, as every tape workflow needs.

The library's changer lock keeps two processes from moving the same cartridge, and an
open drive is held by its process: a drive in use elsewhere is skipped, never taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tiermover.storage.tape.driver import (
    DRIVE, MAIL, CartridgeNotFound, DriveBusy, TapeDevice, TapeError, TapeLibraryDriver,
)
from tiermover.storage.tape.format import DEFAULT_RECORD_SIZE


def load_somewhere(library: TapeLibraryDriver, barcode: str) -> int:
    """Load the cartridge into a drive (the task's selected drive, else an empty one,
    else one whose cartridge nobody uses, which goes back to its slot); the drive's
    number. A cartridge already in a drive stays there."""
    inventory = library.inventory()
    cartridge = inventory.cartridges.get(barcode)
    if cartridge is None:
        raise CartridgeNotFound(f"cartridge {barcode} is not in the library")
    if cartridge.place == DRIVE:
        return cartridge.address
    if cartridge.place == MAIL:
        raise TapeError(f"cartridge {barcode} is in mail slot {cartridge.address} (ejected): "
                        "import it first")
    drives = ([library.selected_drive] if library.selected_drive is not None
              else list(range(inventory.drives)))
    empty_first = sorted(drives, key=lambda drive: inventory.in_drive(drive) is not None)
    for drive in empty_first:
        try:
            if inventory.in_drive(drive) is not None:
                library.unload(drive)  # DriveBusy while its cartridge is open elsewhere
            library.load(barcode, drive)
            return drive
        except DriveBusy:
            continue
    which = f"drive {drives[0]}" if len(drives) == 1 else f"all {len(drives)} drives"
    raise DriveBusy(f"no drive for cartridge {barcode}: {which} in use")


@contextmanager
def cartridge_in_drive(library: TapeLibraryDriver, barcode: str,
                       block_size: int = DEFAULT_RECORD_SIZE,
                       unload_after: bool = True) -> Iterator[tuple[int, TapeDevice]]:
    """(drive number, open device) with the cartridge loaded; closed, and unloaded back
    to its slot unless told otherwise, afterwards."""
    drive = load_somewhere(library, barcode)
    device = library.open_drive(drive, block_size)
    try:
        yield drive, device
    finally:
        device.close()
        if unload_after:
            library.unload(drive)
