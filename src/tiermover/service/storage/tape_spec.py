"""Tapes in what nodes receive, and what nodes report back about cartridges.

A node reaches a tape library through its descriptor (storage key `tape_library:<id>`,
see tiermover.storage.tape.open_library). A tape source reaches a workflow as a location
whose storage is the library and whose path is the cartridge's barcode
(`/<library name>/<barcode>`); a tape pool is each of its tapes; the option `barcodes`
adds the tapes it lists.

Workflows report what they did to cartridges as catalog changes of op "tape" (entry
`{"event": "formatted" | "ejected", ...}`): the server then mirrors the library's
inventory and applies what only the database knows (pool membership).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import Pool, Tape, TapeDrive, TapeLibrary, Task, TaskOption, TaskSource
from tiermover.service.storage import tape_inventory as inventory

# The actions whose workflows take cartridges as sources.
TAPE_SOURCE_ACTIONS = frozenset({"format", "ejection"})
TAPE_CHANGE = "tape"
_SEPARATORS = re.compile(r"[,|\s]+")


def library_key(library_id: int) -> str:
    return f"tape_library:{library_id}"


def library_storages(session: Session) -> list[dict]:
    """The libraries a node may drive, as known_storages lists storages."""
    return [{"key": library_key(library.id), "kind": "tape_library", "name": library.name,
             "root": library.device, "backend": inventory.descriptor(library)}
            for library in session.scalars(select(TapeLibrary)
                                           .where(TapeLibrary.protocol == inventory.VIRTUAL)
                                           .order_by(TapeLibrary.id))]


def _task_tapes(session: Session, task: Task) -> list[Tape]:
    """The cartridges a task works on: its tape sources, its tape pools' tapes, and the
    tapes of its `barcodes` option, each once, in that order."""
    tapes: dict[int, Tape] = {}
    for source in session.scalars(select(TaskSource).where(TaskSource.task_id == task.id)
                                  .order_by(TaskSource.id)):
        if source.tape_id:
            tape = session.get(Tape, source.tape_id)
            if tape is not None:
                tapes.setdefault(tape.id, tape)
        elif source.pool_id and not source.file_path:
            pool = session.get(Pool, source.pool_id)
            if pool is not None and pool.content == "tape":
                for tape in session.scalars(select(Tape).where(Tape.pool_id == pool.id)
                                            .order_by(Tape.barcode)):
                    tapes.setdefault(tape.id, tape)
    option = session.scalar(select(TaskOption.value).where(TaskOption.task_id == task.id,
                                                           TaskOption.type == "barcodes"))
    if option:
        barcodes = [b for b in _SEPARATORS.split(option) if b]
        found = {t.barcode: t for t in session.scalars(select(Tape)
                                                       .where(Tape.barcode.in_(barcodes)))}
        for barcode in barcodes:
            if barcode in found:
                tapes.setdefault(found[barcode].id, found[barcode])
    return list(tapes.values())


def _virtual_library(session: Session, tape: Tape) -> TapeLibrary | None:
    library = session.get(TapeLibrary, tape.tape_library_id) if tape.tape_library_id else None
    return library if library is not None and inventory.is_virtual(library) else None


def required_library_keys(session: Session, task: Task) -> set[str]:
    """The libraries a node must reach to run the task."""
    return {library_key(library.id) for tape in _task_tapes(session, task)
            if (library := _virtual_library(session, tape)) is not None}


def _selected_drive(session: Session, task: Task, library: TapeLibrary) -> int | None:
    """The drive number in the library the option selected_drive names, if any."""
    value = session.scalar(select(TaskOption.value).where(TaskOption.task_id == task.id,
                                                          TaskOption.type == "selected_drive"))
    if not value:
        return None
    text = value.strip()
    where = (TapeDrive.id == int(text)) if text.isdigit() else (TapeDrive.name == text)
    drive = session.scalar(select(TapeDrive).where(where,
                                                   TapeDrive.tape_library_id == library.id))
    return drive.transport if drive is not None else None


def tape_sources(session: Session, task: Task) -> list[dict]:
    """The task's cartridges as source locations (those in libraries a node can drive)."""
    locations = []
    for tape in _task_tapes(session, task):
        library = _virtual_library(session, tape)
        if library is None:
            continue
        backend = inventory.descriptor(library)
        drive = _selected_drive(session, task, library)
        if drive is not None:
            backend["selected_drive"] = drive
        locations.append({"namespace_path": f"/{library.name}/{tape.barcode}",
                          "storage_key": library_key(library.id), "storage_name": library.name,
                          "backend": backend, "path": tape.barcode})
    return locations


def apply_tape_changes(session: Session, items: list[dict]) -> None:
    """What finished items say they did to cartridges."""
    libraries: set[int] = set()
    for item in items:
        for change in item.get("changes") or ():
            if change.get("op") != TAPE_CHANGE:
                continue
            barcode = change.get("path", "").rstrip("/").rpartition("/")[2]
            tape = session.scalar(select(Tape).where(Tape.barcode == barcode))
            if tape is None:
                continue
            event = (change.get("entry") or {}).get("event")
            if event == "formatted":
                tape.last_maintenance = utcnow()
                tape.known, tape.need_to_check = True, False
                if (change.get("entry") or {}).get("to_scratch"):
                    inventory.return_to_scratch(session, tape)
            if tape.tape_library_id:
                libraries.add(tape.tape_library_id)
    for library_id in libraries:
        library = session.get(TapeLibrary, library_id)
        if library is not None:
            inventory.refresh(session, library)
