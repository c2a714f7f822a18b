"""What a tape library offers, whatever drives it: a changer that moves cartridges between
storage slots, drives and mail slots, and drives that read and write a loaded cartridge.

The workflows and the on-tape format (`format.py`) are written against these two classes
only. The virtual library (`virtual.py`) is the first implementation; a physical one (an
mtx changer and /dev/nst* drives) implements the same operations:

| here                     | mtx / st (Linux)                                   |
| ------------------------ | -------------------------------------------------- |
| inventory()              | mtx status                                         |
| load(barcode, drive)     | mtx load SLOT DRIVE                                |
| unload(drive)            | mtx unload SLOT DRIVE (back to its home slot)      |
| export(barcode)          | mtx transfer SLOT IO_SLOT                          |
| import_cartridge(bc)     | mtx transfer IO_SLOT SLOT                          |
| TapeDevice.rewind()      | MTREW                                              |
| TapeDevice.locate(n)     | MTSEEK n (SCSI LOCATE, logical block n)            |
| TapeDevice.tell()        | MTIOCPOS                                           |
| TapeDevice.end_of_data() | MTEOM, then MTIOCPOS                               |
| TapeDevice.read/write    | read(2)/write(2) of whole blocks in fixed-block mode |

Contract the format relies on: a cartridge's data is one run of logical blocks 0..N-1 of
`block_size` bytes each, with no gaps. A drive that must end a write with a filemark puts
it after block N-1, and the next append overwrites it (so GNU tar reads the whole
cartridge in one pass).
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from tiermover.storage.base import StorageError

# --- errors ----------------------------------------------------------------------------------


class TapeError(StorageError):
    """A library or drive operation failed; the message says which cartridge and why."""


class EndOfMedia(TapeError):
    """Writing past the cartridge's capacity: nothing of that write was recorded.

    Carries errno ENOSPC, as a full disk does, for code that looks at it."""

    errno = errno.ENOSPC


class WriteProtected(TapeError):
    errno = errno.EROFS


class DriveBusy(TapeError):
    """The drive already holds a cartridge, or another process is using it."""

    errno = errno.EBUSY


class CartridgeNotFound(TapeError):
    errno = errno.ENOENT


class NoFreeSlot(TapeError):
    errno = errno.ENOSPC


# --- what the library holds ------------------------------------------------------------------

SLOT, DRIVE, MAIL = "slot", "drive", "mail"


@dataclass(frozen=True)
class Cartridge:
    """A cartridge as the library sees it: where it is and what its memory chip says."""

    barcode: str
    place: str  # SLOT | DRIVE | MAIL
    address: int  # slot and mail slot numbers start at 1, drive numbers at 0
    capacity: int  # bytes the medium holds
    used: int  # bytes written (the end of data)
    mount_count: int = 0  # loads into a drive, ever
    last_move: float | None = None  # epoch seconds of the last changer move
    home_slot: int | None = None  # the storage slot it goes back to when unloaded
    write_protect: bool = False  # the cartridge's write-protect tab

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)

    @property
    def location(self) -> str:
        """How Nodeum names a place: "Slot 2", "Drive 0", "Mail slot 1"."""
        return {SLOT: "Slot", DRIVE: "Drive", MAIL: "Mail slot"}[self.place] + f" {self.address}"


@dataclass(frozen=True)
class Inventory:
    storage_slots: int
    io_slots: int
    drives: int
    cartridges: dict[str, Cartridge] = field(default_factory=dict)

    def in_drive(self, drive: int) -> Cartridge | None:
        return next((c for c in self.cartridges.values()
                     if c.place == DRIVE and c.address == drive), None)

    def free_slots(self, place: str = SLOT) -> list[int]:
        count = self.storage_slots if place == SLOT else self.io_slots
        taken = {c.address for c in self.cartridges.values() if c.place == place}
        return [number for number in range(1, count + 1) if number not in taken]


# --- the interfaces --------------------------------------------------------------------------


class TapeDevice(ABC):
    """A drive with a cartridge loaded, open for reading and writing (like /dev/nst0).

    Positions are logical block numbers of `block_size` bytes. Writing anywhere ends the
    data there (what followed is gone), as on any tape."""

    barcode: str
    block_size: int

    @abstractmethod
    def rewind(self) -> None: ...

    @abstractmethod
    def tell(self) -> int:
        """The block the next read or write starts at."""

    @abstractmethod
    def locate(self, block: int) -> None:
        """Position before `block` (0 <= block <= end_of_data())."""

    @abstractmethod
    def end_of_data(self) -> int:
        """Position after the last block written and return that block number (the
        number of blocks on the cartridge)."""

    @abstractmethod
    def read(self, size: int) -> bytes:
        """Up to `size` bytes from the current position; b"" at the end of data."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Whole blocks at the current position, which becomes the end of data.

        Raises EndOfMedia (nothing written) past the capacity, WriteProtected when the
        cartridge's tab is set."""

    @property
    @abstractmethod
    def capacity(self) -> int: ...

    @property
    @abstractmethod
    def write_protected(self) -> bool: ...

    @abstractmethod
    def sync(self) -> None:
        """Everything written is on the medium."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "TapeDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TapeLibraryDriver(ABC):
    """A changer with storage slots, mail (import/export) slots and drives."""

    # The drive a task asked for (option selected_drive), else None: any free one.
    selected_drive: int | None = None
    # A library stands in as the backend of a task's tape locations: one whose reads and
    # writes wait for robots and drives (see Backend.served_locally).
    served_locally = False

    @abstractmethod
    def inventory(self) -> Inventory: ...

    @abstractmethod
    def load(self, barcode: str, drive: int) -> None:
        """Move a cartridge from its slot into an empty drive (DriveBusy if it is not)."""

    @abstractmethod
    def unload(self, drive: int) -> str | None:
        """Put the drive's cartridge back in its home slot; its barcode (None if empty)."""

    @abstractmethod
    def export(self, barcode: str) -> int:
        """Move a cartridge from its storage slot to a free mail slot; that slot's number.
        A cartridge in a drive must be unloaded first."""

    @abstractmethod
    def import_cartridge(self, barcode: str) -> int:
        """Move a cartridge from a mail slot into a free storage slot; that slot's number."""

    @abstractmethod
    def open_drive(self, drive: int, block_size: int) -> TapeDevice:
        """The device of the cartridge loaded in `drive`, for this process alone."""
