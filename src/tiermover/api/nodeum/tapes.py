"""/api/v2 tape libraries, tape drives and tapes (cartridges).

Tapes are registered by barcode in a library (POST /tape_libraries/{id}/tapes, an
extension: Nodeum inventories them from the library) and join pools through the pools.
A virtual library (protocol `virtual`, `device` a directory) is made with its drives and
blank cartridges; more blank ones come with POST /tape_libraries/{id}/blank_tapes.
Listing tapes or drives first mirrors the virtual libraries' inventories.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from tiermover.api.deps import AdminScope, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, created
from tiermover.api.nodeum.storage_render import (
    render_mount_status, render_tape, render_tape_drive, render_tape_library,
)
from tiermover.db.models import Tape
from tiermover.service.storage import tape_inventory as inventory
from tiermover.service.storage import tapes as service
from tiermover.service.storage.pools import get_pool

router = APIRouter(tags=["tapes"])

Status = Literal["offline", "online"]
TapeType = Literal[
    "unknown", "data", "cleaning", "diagnostic", "data_lto1", "data_lto2", "data_lto3",
    "data_lto4", "data_lto5", "data_lto6", "data_lto7", "data_lto8", "data_lto9",
    "data_lto10", "data_lto11", "data_lto12",
]


class TapeLibraryBody(BaseModel):
    """TapeLibrary and TapeLibraryDevice fields; `virtual` keeps cartridges as files.

    Extensions: `drives` (how many a virtual library gets), `cartridge_capacity` (bytes of
    its blank cartridges), `cartridge_type` (data_lto5 unless given), `barcode_prefix`."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    comment: str | None = None
    libso: str | None = None
    status: Status | None = None
    price: str | None = None
    serial: str | None = None
    protocol: Literal["scsi", "acsls", "virtual"] | None = None
    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None
    device: str | None = None
    acs: int | None = None
    storage_slots: int | None = None
    storage_slots_address: int | None = None
    io_slots: int | None = None
    io_slots_address: int | None = None
    drives: int | None = None
    cartridge_capacity: int | None = None
    cartridge_type: TapeType | None = None
    barcode_prefix: str | None = None


class TapeDriveBody(BaseModel):
    """TapeDrive and TapeDriveDevice fields; what the drive is doing is the server's."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    comment: str | None = None
    libso: str | None = None
    serial: str | None = None
    scsi_address: int | None = None
    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None
    device: str | None = None
    sgdevice: str | None = None
    acs: int | None = None
    lsm: int | None = None
    panel: int | None = None
    transport: int | None = None
    status: Status | None = None


class TapeBody(BaseModel):
    """A cartridge to register: `max` is its capacity in bytes."""

    model_config = ConfigDict(extra="ignore")

    barcode: str | None = None
    type: TapeType | None = None
    location: str | None = None
    max: int | None = None
    locked: bool | None = None
    write_protect: bool | None = None


class BlankTapesBody(BaseModel):
    """Blank cartridges for a virtual library: `max` bytes each (the library's
    cartridge_capacity unless given), of `type` (the library's cartridge_type)."""

    model_config = ConfigDict(extra="ignore")

    count: int = 1
    max: int | None = None
    type: TapeType | None = None


def tape_mount_status(session, tape: Tape) -> dict:
    info = service.mount_info(session, tape)
    where = (f"in library {info['tape_library_name']}" if tape.tape_library_id
             else "in no library")
    state = "mounted" if tape.mounted else "not mounted"
    return render_mount_status(tape.mounted, f"Tape {tape.barcode} is {state} ({where})", info)


# --- libraries -------------------------------------------------------------------------------

@router.get("/tape_libraries", summary="Lists all tape libraries.")
def index_tape_libraries(request: Request, session: DbSession,
                         principal: Scope("tape_libraries", "index")):
    query = parse_list_query(request.query_params, service.LIBRARY_ATTRS)
    return collection("tape_libraries", service.list_libraries(session, query),
                      render_tape_library)


@router.post("/tape_libraries", status_code=201, summary="Creates a new tape library.")
def create_tape_library(body: TapeLibraryBody, session: DbSession,
                        principal: AdminScope("tape_libraries", "create")):
    library = service.create_library(session, body.model_dump(exclude_unset=True))
    return created(render_tape_library(library))


@router.get("/tape_libraries/{tape_library_id}", summary="Displays a specific tape library.")
def show_tape_library(tape_library_id: str, session: DbSession,
                      principal: Scope("tape_libraries", "show")):
    return render_tape_library(service.get_library(session, tape_library_id))


@router.put("/tape_libraries/{tape_library_id}", summary="Updates a specific tape library.")
def update_tape_library(tape_library_id: str, body: TapeLibraryBody, session: DbSession,
                        principal: AdminScope("tape_libraries", "update")):
    library = service.get_library(session, tape_library_id)
    values = body.model_dump(exclude_unset=True)
    return render_tape_library(service.update_library(session, library, values))


@router.delete("/tape_libraries/{tape_library_id}", status_code=204,
               summary="Destroys a tape library and its drives (its tapes become orphans).")
def destroy_tape_library(tape_library_id: str, session: DbSession,
                         principal: AdminScope("tape_libraries", "destroy")):
    service.delete_library(session, service.get_library(session, tape_library_id))
    return Response(status_code=204)


# --- drives ----------------------------------------------------------------------------------

BY_LIBRARY = "/tape_libraries/{tape_library_id}/tape_drives"
LIBRARY_SCOPED_DRIVE_ATTRS = {k: v for k, v in service.DRIVE_ATTRS.items()
                              if k != "tape_library_id"}


def drives(page):
    return collection("tape_drives", page, render_tape_drive)


def mirrored(session) -> None:
    """The virtual libraries' inventories into the rows about to be shown."""
    inventory.refresh_all(session)


@router.get(BY_LIBRARY, summary="Lists all tape drives of a library.")
def index_tape_drives_by_tape_library(request: Request, tape_library_id: str,
                                      session: DbSession,
                                      principal: Scope("tape_drives", "index")):
    mirrored(session)
    library = service.get_library(session, tape_library_id)
    query = parse_list_query(request.query_params, LIBRARY_SCOPED_DRIVE_ATTRS)
    return drives(service.list_drives(session, query, library=library))


@router.post(BY_LIBRARY, status_code=201, summary="Creates a new tape drive.")
def create_tape_drive_by_tape_library(tape_library_id: str, body: TapeDriveBody,
                                      session: DbSession,
                                      principal: AdminScope("tape_drives", "create")):
    library = service.get_library(session, tape_library_id)
    drive = service.create_drive(session, library, body.model_dump(exclude_unset=True))
    return created(render_tape_drive(drive))


@router.get(BY_LIBRARY + "/{tape_drive_id}", summary="Displays a specific tape drive.")
def show_tape_drive_by_tape_library(tape_library_id: str, tape_drive_id: str,
                                    session: DbSession,
                                    principal: Scope("tape_drives", "show")):
    mirrored(session)
    library = service.get_library(session, tape_library_id)
    return render_tape_drive(service.get_drive(session, tape_drive_id, library=library))


@router.put(BY_LIBRARY + "/{tape_drive_id}", summary="Updates a specific tape drive.")
def update_tape_drive_by_tape_library(tape_library_id: str, tape_drive_id: str,
                                      body: TapeDriveBody, session: DbSession,
                                      principal: AdminScope("tape_drives", "update")):
    library = service.get_library(session, tape_library_id)
    drive = service.get_drive(session, tape_drive_id, library=library)
    values = body.model_dump(exclude_unset=True)
    return render_tape_drive(service.update_drive(session, drive, values))


@router.delete(BY_LIBRARY + "/{tape_drive_id}", status_code=204,
               summary="Destroys a specific tape drive.")
def destroy_tape_drive_by_tape_library(tape_library_id: str, tape_drive_id: str,
                                       session: DbSession,
                                       principal: AdminScope("tape_drives", "destroy")):
    library = service.get_library(session, tape_library_id)
    service.delete_drive(session, service.get_drive(session, tape_drive_id, library=library))
    return Response(status_code=204)


@router.get("/tape_drives", summary="Lists all tape drives.")
def index_tape_drives(request: Request, session: DbSession,
                      principal: Scope("tape_drives", "index")):
    mirrored(session)
    query = parse_list_query(request.query_params, service.DRIVE_ATTRS)
    return drives(service.list_drives(session, query))


@router.get("/tape_drives/{tape_drive_id}", summary="Displays a specific tape drive.")
def show_tape_drive(tape_drive_id: str, session: DbSession,
                    principal: Scope("tape_drives", "show")):
    mirrored(session)
    return render_tape_drive(service.get_drive(session, tape_drive_id))


@router.put("/tape_drives/{tape_drive_id}", summary="Updates a specific tape drive.")
def update_tape_drive(tape_drive_id: str, body: TapeDriveBody, session: DbSession,
                      principal: AdminScope("tape_drives", "update")):
    drive = service.get_drive(session, tape_drive_id)
    values = body.model_dump(exclude_unset=True)
    return render_tape_drive(service.update_drive(session, drive, values))


@router.delete("/tape_drives/{tape_drive_id}", status_code=204,
               summary="Destroys a specific tape drive.")
def destroy_tape_drive(tape_drive_id: str, session: DbSession,
                       principal: AdminScope("tape_drives", "destroy")):
    service.delete_drive(session, service.get_drive(session, tape_drive_id))
    return Response(status_code=204)


# --- tapes -----------------------------------------------------------------------------------

LIBRARY_SCOPED_TAPE_ATTRS = {k: v for k, v in service.TAPE_ATTRS.items()
                             if k != "tape_library_id"}
POOL_SCOPED_TAPE_ATTRS = {k: v for k, v in service.TAPE_ATTRS.items() if k != "pool_id"}


def tapes(page):
    return collection("tapes", page, render_tape)


@router.get("/tapes", summary="Lists all tapes.")
def index_tapes(request: Request, session: DbSession, principal: Scope("tapes", "index")):
    mirrored(session)
    query = parse_list_query(request.query_params, service.TAPE_ATTRS)
    return tapes(service.list_tapes(session, query))


@router.get("/tapes/{tape_id}", summary="Displays a specific tape.")
def show_tape(tape_id: str, session: DbSession, principal: Scope("tapes", "show")):
    mirrored(session)
    return render_tape(service.get_tape(session, tape_id))


@router.delete("/tapes/{tape_id}", status_code=204,
               summary="Destroys a specific tape, only when it is an orphan (in no library).")
def destroy_tape(tape_id: str, session: DbSession, principal: AdminScope("tapes", "destroy")):
    service.delete_tape(session, service.get_tape(session, tape_id))
    return Response(status_code=204)


@router.get("/tapes/{tape_id}/mount", summary="Get mount status of a tape.")
def mount_status_tape(tape_id: str, session: DbSession,
                      principal: Scope("tapes", "mount_status")):
    mirrored(session)
    return tape_mount_status(session, service.get_tape(session, tape_id))


@router.get("/pools/{pool_id}/tapes", summary="Lists all tapes of a pool.")
def index_tapes_by_pool(request: Request, pool_id: str, session: DbSession,
                        principal: Scope("tapes", "index")):
    mirrored(session)
    pool = get_pool(session, pool_id)
    query = parse_list_query(request.query_params, POOL_SCOPED_TAPE_ATTRS)
    return tapes(service.list_tapes(session, query, pool=pool))


@router.get("/pools/{pool_id}/tapes/{tape_id}", summary="Displays a specific tape of a pool.")
def show_tape_by_pool(pool_id: str, tape_id: str, session: DbSession,
                      principal: Scope("tapes", "show")):
    mirrored(session)
    return render_tape(service.get_tape(session, tape_id, pool=get_pool(session, pool_id)))


@router.get("/pools/{pool_id}/tapes/{tape_id}/mount", summary="Get mount status of a tape.")
def mount_status_tape_by_pool(pool_id: str, tape_id: str, session: DbSession,
                              principal: Scope("tapes", "mount_status")):
    mirrored(session)
    tape = service.get_tape(session, tape_id, pool=get_pool(session, pool_id))
    return tape_mount_status(session, tape)


TAPES_OF_LIBRARY = "/tape_libraries/{tape_library_id}/tapes"


@router.get(TAPES_OF_LIBRARY, summary="Lists all tapes of a library.")
def index_tapes_by_tape_library(request: Request, tape_library_id: str, session: DbSession,
                                principal: Scope("tapes", "index")):
    mirrored(session)
    library = service.get_library(session, tape_library_id)
    query = parse_list_query(request.query_params, LIBRARY_SCOPED_TAPE_ATTRS)
    return tapes(service.list_tapes(session, query, library=library))


@router.post(TAPES_OF_LIBRARY, status_code=201,
             summary="Registers a cartridge in a library by barcode (extension).")
def create_tape(tape_library_id: str, body: TapeBody, session: DbSession,
                principal: AdminScope("tapes", "create")):
    library = service.get_library(session, tape_library_id)
    tape = service.register_tape(session, library, body.model_dump(exclude_unset=True))
    return created(render_tape(tape))


@router.get(TAPES_OF_LIBRARY + "/{tape_id}", summary="Displays a specific tape of a library.")
def show_tape_by_tape_library(tape_library_id: str, tape_id: str, session: DbSession,
                              principal: Scope("tapes", "show")):
    mirrored(session)
    library = service.get_library(session, tape_library_id)
    return render_tape(service.get_tape(session, tape_id, library=library))


@router.get(TAPES_OF_LIBRARY + "/{tape_id}/mount", summary="Get mount status of a tape.")
def mount_status_tape_by_tape_library(tape_library_id: str, tape_id: str, session: DbSession,
                                      principal: Scope("tapes", "mount_status")):
    mirrored(session)
    library = service.get_library(session, tape_library_id)
    return tape_mount_status(session, service.get_tape(session, tape_id, library=library))


@router.post("/tape_libraries/{tape_library_id}/blank_tapes", status_code=201,
             summary="Adds blank cartridges to a virtual library (extension).")
def create_blank_tapes(tape_library_id: str, body: BlankTapesBody, session: DbSession,
                       principal: AdminScope("tapes", "create")):
    library = service.get_library(session, tape_library_id)
    tapes = inventory.add_blank_tapes(session, library, body.count, body.max, body.type)
    return created({"count": len(tapes), "tapes": [render_tape(tape) for tape in tapes]})
