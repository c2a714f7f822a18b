"""A virtual tape library: a directory that stands in for a changer and its drives.

- `DIR/<barcode>.tape` is a cartridge: the bytes written to it, nothing else, so GNU tar
  reads it directly. Its size is the cartridge's end of data.
- `DIR/library.json` is what a physical library keeps in its own memory and in each
  cartridge's memory chip: how many slots, mail slots and drives there are, where each
  cartridge is, its capacity, load count, last move and write-protect tab.
- `DIR/.library.lock` serialises changer moves between processes (the server, nodes).

A drive holds one cartridge at a time. An open drive holds an exclusive lock on its
cartridge file, so two processes never write the same cartridge and a cartridge in use
cannot be unloaded.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from tiermover.storage.tape.driver import (
    DRIVE, MAIL, SLOT, Cartridge, CartridgeNotFound, DriveBusy, EndOfMedia, Inventory,
    NoFreeSlot, TapeDevice, TapeError, TapeLibraryDriver, WriteProtected,
)

STATE = "library.json"
LOCK = ".library.lock"
SUFFIX = ".tape"
STATE_FORMAT = "tiermover-virtual-library"
# Barcodes name files here: no separators, no dot-names.
BARCODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def check_barcode(barcode: str) -> str:
    if not isinstance(barcode, str) or not BARCODE.fullmatch(barcode):
        raise TapeError(f"{barcode!r} is not a barcode (letters, digits, '-' and '_', "
                        "at most 32)")
    return barcode


class VirtualLibrary(TapeLibraryDriver):
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    # --- creating and filling ------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike, storage_slots: int, io_slots: int,
               drives: int, cartridge_capacity: int) -> "VirtualLibrary":
        """A new, empty library in an existing directory that holds none yet."""
        library = cls(directory)
        if not library.directory.is_dir():
            raise TapeError(f"{library.directory} is not a directory")
        if storage_slots < 0 or io_slots < 0 or drives < 1 or cartridge_capacity <= 0:
            raise TapeError("a library needs at least one drive, slots >= 0 and a positive "
                            "cartridge capacity")
        with library._locked(creating=True):
            if (library.directory / STATE).exists():
                raise TapeError(f"{library.directory} already holds a virtual tape library")
            library._save({"format": STATE_FORMAT, "version": 1,
                           "storage_slots": storage_slots, "io_slots": io_slots,
                           "drives": drives, "cartridge_capacity": cartridge_capacity,
                           "cartridges": {}})
        return library

    def exists(self) -> bool:
        return (self.directory / STATE).is_file()

    def insert_blank(self, barcodes: list[str], capacity: int | None = None,
                     add_slots: bool = False) -> list[int]:
        """Put new, blank cartridges into free storage slots; the slots they went to.

        With `add_slots`, the library grows a slot for each cartridge that finds none
        (a virtual library can; a physical one would answer NoFreeSlot)."""
        for barcode in barcodes:
            check_barcode(barcode)
        if len(set(barcodes)) != len(barcodes):
            raise TapeError("the same barcode was given twice")
        with self._locked():
            state = self._load()
            capacity = capacity or state["cartridge_capacity"]
            for barcode in barcodes:
                if barcode in state["cartridges"]:
                    raise TapeError(f"cartridge {barcode} is already in this library")
                path = self.cartridge_path(barcode)
                if path.exists() and path.stat().st_size:
                    raise TapeError(f"{path} already holds data: not a blank cartridge")
            free = self._inventory(state).free_slots()
            if len(free) < len(barcodes):
                if not add_slots:
                    raise NoFreeSlot(f"{len(barcodes)} cartridges, {len(free)} free slots")
                first_new = state["storage_slots"] + 1
                state["storage_slots"] += len(barcodes) - len(free)
                free += list(range(first_new, state["storage_slots"] + 1))
            now = time.time()
            for barcode, slot in zip(barcodes, free):
                self.cartridge_path(barcode).open("wb").close()
                state["cartridges"][barcode] = {
                    "place": SLOT, "address": slot, "home_slot": slot, "capacity": capacity,
                    "mount_count": 0, "last_move": now, "write_protect": False,
                }
            self._save(state)
            return free[:len(barcodes)]

    def set_write_protect(self, barcode: str, protect: bool) -> None:
        """Slide the cartridge's write-protect tab."""
        with self._changer() as state:
            self._cartridge(state, barcode)["write_protect"] = bool(protect)

    def cartridge_path(self, barcode: str) -> Path:
        return self.directory / (check_barcode(barcode) + SUFFIX)

    # --- the changer -------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        with self._locked():
            return self._inventory(self._load())

    def load(self, barcode: str, drive: int) -> None:
        with self._changer() as state:
            self._check_drive(state, drive)
            cartridge = self._cartridge(state, barcode)
            if cartridge["place"] == DRIVE:
                if cartridge["address"] == drive:
                    return
                raise DriveBusy(f"cartridge {barcode} is in drive {cartridge['address']}")
            if cartridge["place"] == MAIL:
                raise TapeError(f"cartridge {barcode} is in mail slot {cartridge['address']}: "
                                "import it first")
            holder = self._inventory(state).in_drive(drive)
            if holder is not None:
                raise DriveBusy(f"drive {drive} holds cartridge {holder.barcode}: unload it "
                                "first (one cartridge per drive)")
            cartridge.update(place=DRIVE, address=drive, home_slot=cartridge["address"],
                             mount_count=cartridge["mount_count"] + 1, last_move=time.time())

    def unload(self, drive: int) -> str | None:
        with self._changer() as state:
            self._check_drive(state, drive)
            holder = self._inventory(state).in_drive(drive)
            if holder is None:
                return None
            if self._in_use(holder.barcode):
                raise DriveBusy(f"drive {drive} is in use (cartridge {holder.barcode} is open)")
            free = self._inventory(state).free_slots()
            if not free:
                raise NoFreeSlot(f"no free storage slot for cartridge {holder.barcode}")
            slot = holder.home_slot if holder.home_slot in free else free[0]
            state["cartridges"][holder.barcode].update(place=SLOT, address=slot,
                                                       home_slot=slot, last_move=time.time())
            return holder.barcode

    def export(self, barcode: str) -> int:
        with self._changer() as state:
            cartridge = self._cartridge(state, barcode)
            if cartridge["place"] == MAIL:
                return cartridge["address"]
            if cartridge["place"] == DRIVE:
                raise DriveBusy(f"cartridge {barcode} is in drive {cartridge['address']}: "
                                "unload it first")
            free = self._inventory(state).free_slots(MAIL)
            if not free:
                raise NoFreeSlot(f"no free mail slot to eject cartridge {barcode}")
            cartridge.update(place=MAIL, address=free[0], home_slot=None,
                             last_move=time.time())
            return free[0]

    def import_cartridge(self, barcode: str) -> int:
        """From a mail slot into a free storage slot. A cartridge file put in the directory
        by hand (a cartridge from elsewhere) is taken as inserted in the mail slot."""
        with self._changer() as state:
            if barcode not in state["cartridges"]:
                path = self.cartridge_path(barcode)
                if not path.is_file():
                    raise CartridgeNotFound(f"no cartridge {barcode} in this library "
                                            f"(no {path})")
                state["cartridges"][barcode] = {
                    "place": MAIL, "address": 0, "home_slot": None,
                    "capacity": max(state["cartridge_capacity"], path.stat().st_size),
                    "mount_count": 0, "last_move": None, "write_protect": False,
                }
            cartridge = state["cartridges"][barcode]
            if cartridge["place"] != MAIL:
                raise TapeError(f"cartridge {barcode} is not in a mail slot")
            free = self._inventory(state).free_slots()
            if not free:
                raise NoFreeSlot(f"no free storage slot for cartridge {barcode}")
            cartridge.update(place=SLOT, address=free[0], home_slot=free[0],
                             last_move=time.time())
            return free[0]

    def open_drive(self, drive: int, block_size: int) -> "VirtualDevice":
        with self._locked():
            state = self._load()
            self._check_drive(state, drive)
            holder = self._inventory(state).in_drive(drive)
            if holder is None:
                raise TapeError(f"drive {drive} is empty: load a cartridge first")
            return VirtualDevice(self.cartridge_path(holder.barcode), holder.barcode,
                                 holder.capacity, holder.write_protect, block_size)

    # --- state -------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, creating: bool = False):
        if not creating and not (self.directory / STATE).is_file():
            raise TapeError(f"{self.directory} holds no virtual tape library")
        try:
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise TapeError(f"cannot lock {self.directory}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _changer(self):
        """The state, locked, saved back if the block finishes without raising."""
        with self._locked():
            state = self._load()
            yield state
            self._save(state)

    def _load(self) -> dict:
        try:
            state = json.loads((self.directory / STATE).read_text())
        except FileNotFoundError:
            raise TapeError(f"{self.directory} holds no virtual tape library") from None
        except (OSError, ValueError) as error:
            raise TapeError(f"{self.directory / STATE} is unreadable: {error}") from None
        if state.get("format") != STATE_FORMAT:
            raise TapeError(f"{self.directory / STATE} is not a virtual tape library")
        return state

    def _save(self, state: dict) -> None:
        temp = self.directory / (STATE + ".tmp")
        with open(temp, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.directory / STATE)

    def _inventory(self, state: dict) -> Inventory:
        cartridges = {}
        for barcode, memory in state["cartridges"].items():
            try:
                used = self.cartridge_path(barcode).stat().st_size
            except FileNotFoundError:
                used = 0
            cartridges[barcode] = Cartridge(
                barcode=barcode, place=memory["place"], address=memory["address"],
                capacity=memory["capacity"], used=used, mount_count=memory["mount_count"],
                last_move=memory["last_move"], home_slot=memory["home_slot"],
                write_protect=memory["write_protect"])
        return Inventory(state["storage_slots"], state["io_slots"], state["drives"], cartridges)

    @staticmethod
    def _check_drive(state: dict, drive: int) -> None:
        if not isinstance(drive, int) or not 0 <= drive < state["drives"]:
            raise TapeError(f"no drive {drive}: this library has drives 0 to "
                            f"{state['drives'] - 1}")

    @staticmethod
    def _cartridge(state: dict, barcode: str) -> dict:
        try:
            return state["cartridges"][barcode]
        except KeyError:
            raise CartridgeNotFound(f"no cartridge {barcode} in this library") from None

    def _in_use(self, barcode: str) -> bool:
        try:
            fd = os.open(self.cartridge_path(barcode), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)


class VirtualDevice(TapeDevice):
    """The loaded cartridge's file, behaving as a tape: block positions, data ending
    where the last write ended, capacity enforced."""

    def __init__(self, path: Path, barcode: str, capacity: int, write_protect: bool,
                 block_size: int):
        if block_size <= 0 or block_size % 512:
            raise TapeError(f"block size {block_size} is not a positive multiple of 512")
        self.path = path
        self.barcode = barcode
        self.block_size = block_size
        self._capacity = capacity
        self._write_protect = write_protect
        self._fd = -1
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DriveBusy(f"cartridge {barcode} is in use by another process") from None
        self._fd = fd
        self._size = os.fstat(fd).st_size
        self._pos = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def write_protected(self) -> bool:
        return self._write_protect

    def rewind(self) -> None:
        self._pos = 0

    def tell(self) -> int:
        if self._pos % self.block_size:
            raise TapeError(f"cartridge {self.barcode}: position {self._pos} is inside a block")
        return self._pos // self.block_size

    def locate(self, block: int) -> None:
        if not 0 <= block <= self._size // self.block_size:
            raise TapeError(f"cartridge {self.barcode}: block {block} is beyond the end of "
                            f"data (block {self._size // self.block_size})")
        self._pos = block * self.block_size

    def end_of_data(self) -> int:
        # A partial block (a write cut short by a crash) is not data: the next write
        # replaces it.
        blocks = self._size // self.block_size
        self._pos = blocks * self.block_size
        return blocks

    def read(self, size: int) -> bytes:
        data = os.pread(self._fd, max(min(size, self._size - self._pos), 0), self._pos)
        self._pos += len(data)
        return data

    def write(self, data: bytes) -> None:
        if self._write_protect:
            raise WriteProtected(f"cartridge {self.barcode} is write-protected")
        if len(data) % self.block_size:
            raise TapeError(f"cartridge {self.barcode}: writes are whole blocks of "
                            f"{self.block_size} bytes, not {len(data)} bytes")
        self.tell()  # must be at a block boundary
        if self._pos + len(data) > self._capacity:
            raise EndOfMedia(
                f"cartridge {self.barcode} is full: writing {len(data)} bytes at byte "
                f"{self._pos} would pass its capacity of {self._capacity} bytes "
                "(no space left on the medium)")
        if self._size > self._pos:
            os.ftruncate(self._fd, self._pos)  # writing ends the data here, as on tape
        view = memoryview(data)
        position = self._pos
        while view:
            written = os.pwrite(self._fd, view, position)
            view, position = view[written:], position + written
        self._pos = self._size = position

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def __del__(self):
        self.close()

