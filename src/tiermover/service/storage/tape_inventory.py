"""The cartridges of a tape library: virtual libraries made on disk, blank cartridges
added with generated barcodes, the scratch pool that supplies fresh cartridges, and the
database's copy of where each cartridge is.

The library's own inventory is the truth about where cartridges are and how full they
are (a node moves them while it works); the database mirrors it whenever tapes or
drives are listed. For a virtual library the server reads that inventory from the
library's directory; one it cannot reach keeps the last state it saw.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import Pool, Tape, TapeDrive, TapeLibrary
from tiermover.service.errors import ValidationFailed
from tiermover.service.storage.common import column_taken
from tiermover.storage.tape.driver import DRIVE, MAIL, TapeError
from tiermover.storage.tape.virtual import VirtualLibrary

VIRTUAL = "virtual"
DEFAULT_TYPE = "data_lto5"
# A label, a session and its trailer in records of 64 KiB, with room for data.
MIN_CAPACITY = 256 * 1024
MAX_SLOTS = 10_000
MAX_DRIVES = 64
MAX_BLANK_AT_ONCE = 1_000
PREFIX = re.compile(r"[A-Z0-9]{1,6}")
# LTO barcodes end with the medium's generation: NOD407L5 is an LTO-5 cartridge.
MEDIA_SUFFIX = {f"data_lto{n}": f"L{n}" for n in range(1, 10)}


def is_virtual(library: TapeLibrary) -> bool:
    return library.protocol == VIRTUAL


def driver_for(library: TapeLibrary) -> VirtualLibrary:
    return VirtualLibrary(library.device)


def descriptor(library: TapeLibrary) -> dict:
    """How a node reaches the library (see tiermover.storage.tape.open_library)."""
    return {"kind": "tape_library", "protocol": library.protocol, "device": library.device}


# --- validation ------------------------------------------------------------------------------

def check_virtual_library(session: Session, values: dict, failure: ValidationFailed) -> None:
    """What creating a virtual library needs: a directory of its own, slots, drives, and
    a cartridge capacity."""
    device = values.get("device")
    if not device:
        failure.add("device", "blank", "can't be blank: the directory that holds the "
                    "virtual library's cartridges")
    elif not os.path.isabs(device):
        failure.add("device", "invalid", "must be an absolute path", value=device)
    elif not os.path.isdir(device):
        failure.add("device", "invalid", "is not an existing directory", value=device)
    elif VirtualLibrary(device).exists() or column_taken(session, TapeLibrary.device,
                                                         device, None):
        failure.add("device", "taken", "already holds a virtual tape library", value=device)
    for name, low, high in (("storage_slots", 1, MAX_SLOTS), ("drives", 1, MAX_DRIVES),
                            ("io_slots", 0, MAX_SLOTS)):
        value = values.get(name)
        if value is None and low:
            failure.add(name, "blank")
        elif value is not None and value < low and name not in failure.details:
            failure.add(name, "greater_than_or_equal_to", value=value, count=low)
        elif value is not None and value > high:
            failure.add(name, "less_than_or_equal_to", value=value, count=high)
    check_capacity(values.get("cartridge_capacity"), failure, required=True)
    check_prefix(values.get("barcode_prefix"), failure)


def check_capacity(capacity, failure: ValidationFailed, required: bool,
                   attr: str = "cartridge_capacity") -> None:
    if capacity is None:
        if required:
            failure.add(attr, "blank")
    elif capacity <= 0:
        failure.add(attr, "greater_than", value=capacity, count=0)
    elif capacity < MIN_CAPACITY:
        failure.add(attr, "greater_than_or_equal_to", value=capacity, count=MIN_CAPACITY)


def check_prefix(prefix, failure: ValidationFailed) -> None:
    if prefix is not None and not PREFIX.fullmatch(prefix):
        failure.add("barcode_prefix", "invalid", "must be 1 to 6 capital letters or digits",
                    value=prefix)


# --- making cartridges -----------------------------------------------------------------------

def _barcode_taken(session: Session, library: TapeLibrary, barcode: str) -> bool:
    return column_taken(session, Tape.barcode, barcode, None) or \
        library.device is not None and os.path.exists(os.path.join(library.device,
                                                                   barcode + ".tape"))


def new_barcodes(session: Session, library: TapeLibrary, count: int,
                 tape_type: str | None = None) -> list[str]:
    """`count` barcodes no cartridge has: the library's prefix (V<library id> unless set),
    a number, and the medium's suffix (L5 for data_lto5)."""
    prefix = library.barcode_prefix or f"V{library.id}"
    suffix = MEDIA_SUFFIX.get(tape_type or library.cartridge_type or DEFAULT_TYPE, "")
    width = max(6 - len(prefix), 2)
    taken = set(session.scalars(select(Tape.barcode).where(Tape.barcode.like(prefix + "%"))))
    barcodes, number = [], 1
    while len(barcodes) < count:
        barcode = f"{prefix}{number:0{width}d}{suffix}"
        if barcode not in taken and not _barcode_taken(session, library, barcode):
            barcodes.append(barcode)
        number += 1
    return barcodes


def provision_virtual(session: Session, library: TapeLibrary, drives: int) -> list[Tape]:
    """A new virtual library on disk: its drives and its blank cartridges, all in the
    library's scratch pool. The row is flushed; a failure on disk undoes nothing there
    but raises, so the transaction rolls the rows back."""
    for number in range(drives):
        session.add(TapeDrive(tape_library_id=library.id, name=f"drive{number}",
                              transport=number, device=library.device, status="online"))
    barcodes = new_barcodes(session, library, library.storage_slots)
    try:
        driver = VirtualLibrary.create(library.device, library.storage_slots,
                                       library.io_slots or 0, drives,
                                       library.cartridge_capacity)
        driver.insert_blank(barcodes)
    except (TapeError, OSError) as error:
        raise ValidationFailed.on("device", "invalid", str(error),
                                  value=library.device) from None
    return _blank_rows(session, library, driver, barcodes, library.cartridge_type)


def add_blank_tapes(session: Session, library: TapeLibrary, count: int = 1,
                    capacity: int | None = None, tape_type: str | None = None,
                    barcodes: list[str] | None = None) -> list[Tape]:
    """New blank cartridges in a virtual library, each in a storage slot (the library
    grows a slot for each one that finds none) and in the scratch pool."""
    failure = ValidationFailed()
    if not is_virtual(library):
        failure.add("tape_library_id", "invalid", "is not a virtual library: blank "
                    "cartridges of a physical library are registered by barcode",
                    value=library.id)
    if not 1 <= count <= MAX_BLANK_AT_ONCE:
        failure.add("count", "inclusion", f"must be between 1 and {MAX_BLANK_AT_ONCE}",
                    value=count)
    check_capacity(capacity, failure, required=False, attr="max")
    failure.raise_if_any()
    tape_type = tape_type or library.cartridge_type or DEFAULT_TYPE
    barcodes = barcodes or new_barcodes(session, library, count, tape_type)
    driver = driver_for(library)
    try:
        driver.insert_blank(barcodes, capacity or library.cartridge_capacity, add_slots=True)
        library.storage_slots = driver.inventory().storage_slots
    except (TapeError, OSError) as error:
        raise ValidationFailed.on("tape_library_id", "invalid", f"cannot add cartridges: "
                                  f"{error}", value=library.id) from None
    return _blank_rows(session, library, driver, barcodes, tape_type)


def _blank_rows(session: Session, library: TapeLibrary, driver: VirtualLibrary,
                barcodes: list[str], tape_type: str | None) -> list[Tape]:
    pool = ensure_scratch_pool(session, library)
    inventory = driver.inventory()
    now = utcnow()
    tapes = []
    for barcode in barcodes:
        cartridge = inventory.cartridges[barcode]
        tape = Tape(tape_library_id=library.id, pool_id=pool.id, barcode=barcode,
                    type=tape_type or DEFAULT_TYPE, cleaning=tape_type == "cleaning",
                    location=cartridge.location, scratch=True,
                    known=True, max=cartridge.capacity, free=cartridge.free, date_in=now,
                    date_move=now, last_size_update=now, mount_count=0)
        session.add(tape)
        tapes.append(tape)
    session.flush()
    return tapes


# --- pools -----------------------------------------------------------------------------------

def ensure_scratch_pool(session: Session, library: TapeLibrary) -> Pool:
    """The library's scratch pool (type scratch, content tape, storage_id the library),
    made as `<library name>-scratch` when it has none."""
    pool = session.scalar(select(Pool).where(Pool.type == "scratch", Pool.content == "tape",
                                             Pool.storage_id == library.id)
                          .order_by(Pool.id).limit(1))
    if pool is not None:
        return pool
    name, number = f"{library.name}-scratch", 1
    while column_taken(session, Pool.name, name, None):
        number += 1
        name = f"{library.name}-scratch-{number}"
    pool = Pool(name=name, type="scratch", content="tape", storage_id=library.id,
                comment=f"blank and recycled cartridges of tape library {library.name}",
                tape_write_protect_when_full=False)
    session.add(pool)
    session.flush()
    return pool


def draw_scratch_tape(session: Session, pool: Pool) -> Tape | None:
    """Move a fresh cartridge from the scratch pool of the pool's library into `pool`
    (first barcode first); None when the scratch pool has none left."""
    if pool.content != "tape" or pool.type == "scratch" or pool.storage_id is None:
        return None
    library = session.get(TapeLibrary, pool.storage_id)
    if library is None:
        return None
    scratch = ensure_scratch_pool(session, library)
    tape = session.scalar(
        select(Tape).where(Tape.pool_id == scratch.id, Tape.scratch.is_(True),
                           Tape.locked.is_(False), Tape.ejected.is_(False),
                           Tape.write_protect.is_(False), Tape.cleaning.is_(False))
        .order_by(Tape.barcode).limit(1).with_for_update(skip_locked=True))
    if tape is not None:
        tape.pool_id, tape.scratch = pool.id, False
        session.flush()
    return tape


def return_to_scratch(session: Session, tape: Tape) -> Pool | None:
    """A cartridge whose data is no longer needed goes back to its library's scratch
    pool (tape_to_scratch after a format, rehydration)."""
    library = session.get(TapeLibrary, tape.tape_library_id) if tape.tape_library_id else None
    if library is None:
        return None
    pool = ensure_scratch_pool(session, library)
    tape.pool_id, tape.scratch = pool.id, True
    session.flush()
    return pool


# --- the database's copy of the inventory ----------------------------------------------------

def _when(epoch: float | None) -> datetime | None:
    """To the millisecond, as every stored date (see utcnow)."""
    if not epoch:
        return None
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def refresh(session: Session, library: TapeLibrary) -> bool:
    """Mirror the library's inventory into its tapes and drives; False when the library
    cannot be read from here (its rows keep the last state seen)."""
    if not is_virtual(library) or not library.device:
        return False
    try:
        inventory = driver_for(library).inventory()
    except (TapeError, OSError):
        return False
    tapes = {tape.barcode: tape for tape in session.scalars(
        select(Tape).where(Tape.barcode.in_(list(inventory.cartridges))))}
    now = utcnow()
    for barcode, cartridge in inventory.cartridges.items():
        tape = tapes.get(barcode)
        if tape is None:
            # Came in through a mail slot: its content is unknown until it is read.
            tape = Tape(barcode=barcode, type=library.cartridge_type or DEFAULT_TYPE,
                        scratch=False, known=False, need_to_check=True, date_in=now)
            session.add(tape)
        elif tape.tape_library_id not in (None, library.id):
            continue  # the same barcode in another library: that one's
        tape.tape_library_id = library.id
        changes = {"location": cartridge.location, "mounted": cartridge.place == DRIVE,
                   "ejected": cartridge.place == MAIL, "mount_count": cartridge.mount_count,
                   "max": cartridge.capacity}
        for name, value in changes.items():
            if getattr(tape, name) != value:
                setattr(tape, name, value)
        moved = _when(cartridge.last_move)
        if moved is not None and tape.date_move != moved:
            tape.date_move = moved
        if tape.free != cartridge.free:
            tape.free, tape.last_size_update = cartridge.free, now
    if library.storage_slots != inventory.storage_slots:
        library.storage_slots = inventory.storage_slots
    for drive in session.scalars(select(TapeDrive).where(TapeDrive.tape_library_id == library.id,
                                                         TapeDrive.transport.is_not(None))):
        holder = inventory.in_drive(drive.transport)
        barcode, full = (holder.barcode, 1) if holder else (None, 0)
        if (drive.barcode, drive.full) != (barcode, full):
            drive.barcode, drive.full = barcode, full
    session.flush()
    return True


def refresh_all(session: Session) -> None:
    for library in session.scalars(select(TapeLibrary).where(TapeLibrary.protocol == VIRTUAL)):
        try:
            with session.begin_nested():
                refresh(session, library)
        except IntegrityError:
            pass  # another request mirrored the same new cartridge first
