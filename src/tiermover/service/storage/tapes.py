"""Tape libraries, their drives, and the cartridges (tapes) they hold.

A tape whose library is deleted stays known as an orphan (tape_library_id null): only
then may it be deleted, since a tape in a library may hold data a task still needs.

A library of protocol `virtual` is made on disk when it is created: its drives and its
blank cartridges, files in its directory (see tape_inventory). Other protocols are
records of a physical library, its drives and cartridges registered by hand.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Pool, Tape, TapeDrive, TapeLibrary
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits
from tiermover.service.storage import tape_inventory as inventory
from tiermover.service.storage.common import (
    assign, check_not_negative, clean_name, column_taken, flush, lookup,
)


def _attrs(model, ints=(), bools=(), dates=(), texts=()) -> dict[str, Attr]:
    attrs = {"id": Attr(model.id, "int")}
    attrs.update({name: Attr(getattr(model, name), "int") for name in ints})
    attrs.update({name: Attr(getattr(model, name), "bool") for name in bools})
    attrs.update({name: Attr(getattr(model, name), "datetime") for name in dates})
    attrs.update({name: Attr(getattr(model, name)) for name in texts})
    return attrs


LIBRARY_ATTRS = _attrs(
    TapeLibrary,
    ints=("acs", "storage_slots", "storage_slots_address", "io_slots", "io_slots_address",
          "cartridge_capacity"),
    texts=("name", "serial", "comment", "protocol", "vendor", "product", "firmware", "device",
           "libso", "status", "price", "cartridge_type", "barcode_prefix"),
)
DRIVE_ATTRS = _attrs(
    TapeDrive,
    ints=("tape_library_id", "scsi_address", "acs", "lsm", "panel", "transport", "full",
          "mount_count", "task_id", "use_file_processed_size", "use_file_size_to_process",
          "bandwidth"),
    texts=("name", "serial", "comment", "vendor", "product", "firmware", "device", "sgdevice",
           "libso", "status", "use_to", "use_by", "barcode", "use_file_name_processed"),
)
TAPE_ATTRS = _attrs(
    Tape,
    ints=("tape_library_id", "pool_id", "mount_count", "free", "max"),
    bools=("locked", "scratch", "cleaning", "write_protect", "mounted", "ejected", "known",
           "repack_status", "force_import_type", "need_to_check"),
    dates=("date_in", "date_move", "last_size_update", "last_maintenance", "last_repack"),
    texts=("barcode", "location", "type", "hash"),
)

LIBRARY_WRITABLE = ("name", "comment", "libso", "status", "price", "serial", "protocol",
                    "vendor", "product", "firmware", "device", "acs", "storage_slots",
                    "storage_slots_address", "io_slots", "io_slots_address",
                    "cartridge_capacity", "cartridge_type", "barcode_prefix")
# What the virtual library on disk is made of: set once, at creation.
VIRTUAL_FROZEN = ("protocol", "device", "storage_slots", "io_slots")
# The rest of a drive (what it holds, for which task, how fast) is the server's to say.
DRIVE_WRITABLE = ("name", "comment", "libso", "serial", "scsi_address", "vendor", "product",
                  "firmware", "device", "sgdevice", "acs", "lsm", "panel", "transport", "status")
TAPE_REGISTRATION = ("barcode", "type", "location", "max", "locked", "write_protect")
# Barcodes name cartridge files of virtual libraries too: no separators, no dot-names.
BARCODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


# --- libraries -------------------------------------------------------------------------------

def list_libraries(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(TapeLibrary), LIBRARY_ATTRS, query, TapeLibrary.id)


def get_library(session: Session, ref: str | int) -> TapeLibrary:
    return lookup(session, TapeLibrary, ref, "tape library", "tape_library_id",
                  keys=(TapeLibrary.serial, TapeLibrary.name))


def _validate_library(session: Session, values: dict, library: TapeLibrary | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=library is None)
    check_limits(TapeLibrary, values, failure)
    check_not_negative(values, ("acs", "storage_slots", "storage_slots_address", "io_slots",
                                "io_slots_address"), failure)
    protocol = values.get("protocol") or (library.protocol if library else None)
    if library is None and protocol == inventory.VIRTUAL:
        inventory.check_virtual_library(session, values, failure)
    elif library is not None:
        for name in VIRTUAL_FROZEN:
            if name in values and values[name] != getattr(library, name) and (
                    inventory.is_virtual(library) or values.get("protocol") == inventory.VIRTUAL):
                failure.add(name, "frozen", "can't be updated: a virtual library is made "
                            "once, at creation (add cartridges to grow it)")
        inventory.check_capacity(values.get("cartridge_capacity"), failure, required=False)
        inventory.check_prefix(values.get("barcode_prefix"), failure)
    own_id = library.id if library else None
    # Serials find libraries as names do, so they must be unique as well.
    for column in (TapeLibrary.name, TapeLibrary.serial):
        value = values.get(column.key)
        if value and column.key not in failure.details and column_taken(
                session, column, value, own_id):
            failure.add(column.key, "taken", value=value)
    failure.raise_if_any()


def create_library(session: Session, values: dict) -> TapeLibrary:
    """The library; a virtual one with its `drives` drives and `storage_slots` blank
    cartridges, made on disk."""
    _validate_library(session, values, None)
    library = TapeLibrary(status="online", protocol="scsi")
    assign(library, values, LIBRARY_WRITABLE)
    if inventory.is_virtual(library):
        library.io_slots = library.io_slots or 0
        library.cartridge_type = library.cartridge_type or inventory.DEFAULT_TYPE
    session.add(library)
    flush(session, value=library.name)
    if inventory.is_virtual(library):
        inventory.provision_virtual(session, library, values["drives"])
    return library


def update_library(session: Session, library: TapeLibrary, values: dict) -> TapeLibrary:
    _validate_library(session, values, library)
    assign(library, values, LIBRARY_WRITABLE)
    flush(session, value=library.name)
    return library


def delete_library(session: Session, library: TapeLibrary) -> None:
    """Its drives go with it; its tapes stay, as orphans (ON DELETE SET NULL)."""
    session.delete(library)
    session.flush()


# --- drives ----------------------------------------------------------------------------------

def list_drives(session: Session, query: ListQuery, library: TapeLibrary | None = None) -> Page:
    stmt = select(TapeDrive)
    if library is not None:
        stmt = stmt.where(TapeDrive.tape_library_id == library.id)
    return list_page(session, stmt, DRIVE_ATTRS, query, TapeDrive.id)


def get_drive(session: Session, ref: str | int, library: TapeLibrary | None = None) -> TapeDrive:
    where = [TapeDrive.tape_library_id == library.id] if library is not None else []
    return lookup(session, TapeDrive, ref, "tape drive", "tape_drive_id",
                  keys=(TapeDrive.serial, TapeDrive.name), where=where)


def _validate_drive(session: Session, library_id: int, values: dict,
                    drive: TapeDrive | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=drive is None)
    check_limits(TapeDrive, values, failure)
    check_not_negative(values, ("scsi_address", "acs", "lsm", "panel", "transport"), failure)
    own_id = drive.id if drive else None
    name = values.get("name")
    if name and "name" not in failure.details and column_taken(
            session, TapeDrive.name, name, own_id, TapeDrive.tape_library_id == library_id):
        failure.add("name", "taken", value=name)
    serial = values.get("serial")
    if serial and "serial" not in failure.details and column_taken(
            session, TapeDrive.serial, serial, own_id):
        failure.add("serial", "taken", value=serial)
    failure.raise_if_any()


def create_drive(session: Session, library: TapeLibrary, values: dict) -> TapeDrive:
    _validate_drive(session, library.id, values, None)
    drive = TapeDrive(tape_library_id=library.id, status="online")
    assign(drive, values, DRIVE_WRITABLE)
    session.add(drive)
    session.flush()
    return drive


def update_drive(session: Session, drive: TapeDrive, values: dict) -> TapeDrive:
    _validate_drive(session, drive.tape_library_id, values, drive)
    assign(drive, values, DRIVE_WRITABLE)
    session.flush()
    return drive


def delete_drive(session: Session, drive: TapeDrive) -> None:
    session.delete(drive)
    session.flush()


# --- tapes -----------------------------------------------------------------------------------

def list_tapes(session: Session, query: ListQuery, library: TapeLibrary | None = None,
               pool: Pool | None = None) -> Page:
    stmt = select(Tape)
    if library is not None:
        stmt = stmt.where(Tape.tape_library_id == library.id)
    if pool is not None:
        stmt = stmt.where(Tape.pool_id == pool.id)
    return list_page(session, stmt, TAPE_ATTRS, query, Tape.id)


def tapes_of(session: Session, library: TapeLibrary) -> list[Tape]:
    return list(session.scalars(select(Tape).where(Tape.tape_library_id == library.id)
                                .order_by(Tape.barcode)))


def get_tape(session: Session, ref: str | int, library: TapeLibrary | None = None,
             pool: Pool | None = None) -> Tape:
    where = []
    if library is not None:
        where.append(Tape.tape_library_id == library.id)
    if pool is not None:
        where.append(Tape.pool_id == pool.id)
    return lookup(session, Tape, ref, "tape", "tape_id", keys=(Tape.barcode,), where=where)


def register_tape(session: Session, library: TapeLibrary, values: dict) -> Tape:
    """Record a cartridge put in the library; it starts empty and scratch. In a virtual
    library that makes a blank cartridge (its barcode generated when none is given)."""
    values = {k: v for k, v in values.items() if k in TAPE_REGISTRATION}
    failure = ValidationFailed()
    if inventory.is_virtual(library) and not values.get("barcode"):
        values["barcode"] = inventory.new_barcodes(session, library, 1, values.get("type"))[0]
    clean_name(values, failure, creating=True, attr="barcode")
    check_limits(Tape, values, failure)
    check_not_negative(values, ("max",), failure)
    barcode = values.get("barcode")
    if barcode and "barcode" not in failure.details:
        if not BARCODE.fullmatch(barcode):
            failure.add("barcode", "invalid", "may only hold letters, digits, '-' and '_'",
                        value=barcode)
        elif column_taken(session, Tape.barcode, barcode, None):
            failure.add("barcode", "taken", value=barcode)
    failure.raise_if_any()
    if inventory.is_virtual(library):
        [tape] = inventory.add_blank_tapes(session, library, capacity=values.get("max"),
                                           tape_type=values.get("type"), barcodes=[barcode])
        assign(tape, values, ("locked", "write_protect"))
        session.flush()
        return tape
    tape = Tape(tape_library_id=library.id, type="data_lto5", scratch=True, known=True)
    assign(tape, values, TAPE_REGISTRATION)
    tape.cleaning = tape.type == "cleaning"
    tape.free = tape.max or 0
    session.add(tape)
    flush(session, "barcode", tape.barcode)
    return tape


def delete_tape(session: Session, tape: Tape) -> None:
    if tape.tape_library_id is not None:
        raise ValidationFailed.on(
            "tape_library_id", "invalid",
            f"is {tape.tape_library_id}: only an orphan tape (in no library) can be deleted",
            value=tape.tape_library_id,
        )
    session.delete(tape)
    session.flush()


def mount_info(session: Session, tape: Tape) -> dict:
    """The tape in the shape of a Nodeum MountInfo."""
    library = session.get(TapeLibrary, tape.tape_library_id) if tape.tape_library_id else None
    pool = session.get(Pool, tape.pool_id) if tape.pool_id else None
    return {
        "tape_id": tape.id, "tape_barcode": tape.barcode,
        "tape_library_id": tape.tape_library_id,
        "tape_library_name": library.name if library else None,
        "tape_library_serial": library.serial if library else None,
        "pool_id": tape.pool_id, "pool_name": pool.name if pool else None,
    }
