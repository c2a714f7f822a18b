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

from sqlalchemy import and_, bindparam, delete, exists, false, or_, select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import (
    CatalogFile, FileCopy, Pool, Tape, TapeDrive, TapeLibrary, Task, TaskDestination,
    TaskOption, TaskSource,
)
from tiermover.service.catalog_changes import move_backup_sets_off
from tiermover.service.storage import tape_inventory as inventory

# The actions whose workflows take cartridges as sources.
TAPE_SOURCE_ACTIONS = frozenset({"format", "ejection", "get_index", "rehydratation"})
# Those reading the catalogued copies of their source files, wherever they are.
READS_COPIES = frozenset({"restore", "check_consistency"})
# Those taking cartridges besides files (each cartridge checked whole).
TAPE_OR_FILE_SOURCE_ACTIONS = frozenset({"check_consistency", "duplication"})
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
    """The libraries a node must reach to run the task: those of its tape sources and
    destinations, and for a restore or check_consistency those holding copies of the
    files under its sources (which it reads)."""
    if task.workflow_action not in READS_COPIES and not session.scalar(
            _MAY_NAME_TAPES, {"task_id": task.id}):
        # Most tasks name no cartridge at all: one statement says so (this runs at every
        # enqueue).
        return set()
    keys = {library_key(library.id) for tape in _task_tapes(session, task)
            if (library := _virtual_library(session, tape)) is not None}
    for destination in session.scalars(select(TaskDestination)
                                       .where(TaskDestination.task_id == task.id)):
        library = _destination_library(session, destination)
        if library is not None:
            keys.add(library_key(library.id))
    if task.workflow_action in READS_COPIES:
        keys |= {library_key(library_id) for library_id in session.scalars(
            select(Tape.tape_library_id).distinct()
            .join(FileCopy, and_(FileCopy.storage_kind == "tape", FileCopy.storage_id == Tape.id))
            .join(CatalogFile, CatalogFile.id == FileCopy.file_id)
            .where(_under_any(CatalogFile.file_path, _source_paths(session, task))))
            if library_id is not None}
    return keys


def _names_tapes(model):
    return exists().where(model.task_id == bindparam("task_id"),
                          or_(model.tape_id.is_not(None), model.pool_id.is_not(None)))


# Whether a task's parts or options may lead to cartridges: a tape or a pool among its
# sources or destinations, or a `barcodes` option.
_MAY_NAME_TAPES = select(or_(
    _names_tapes(TaskSource), _names_tapes(TaskDestination),
    exists().where(TaskOption.task_id == bindparam("task_id"), TaskOption.type == "barcodes"),
))


def _source_paths(session: Session, task: Task) -> list[str]:
    return [path for path in session.scalars(select(TaskSource.file_path)
                                             .where(TaskSource.task_id == task.id)) if path]


def _under_any(column, paths: list[str]):
    from tiermover.service.catalog_entries import under

    return or_(*[under(column, path) for path in paths]) if paths else false()


# --- tapes as a destination ------------------------------------------------------------------

def _writable(tape: Tape) -> bool:
    return not (tape.ejected or tape.locked or tape.write_protect or tape.cleaning)


def _destination_pool(session: Session, destination: TaskDestination) -> Pool | None:
    if destination.pool_id and not destination.folder_path:
        pool = session.get(Pool, destination.pool_id)
        if pool is not None and pool.content == "tape":
            return pool
    return None


def _destination_library(session: Session, destination: TaskDestination) -> TapeLibrary | None:
    if destination.tape_id:
        tape = session.get(Tape, destination.tape_id)
        return _virtual_library(session, tape) if tape is not None else None
    pool = _destination_pool(session, destination)
    if pool is None:
        return None
    library = session.get(TapeLibrary, pool.storage_id) if pool.storage_id else None
    if library is None:
        tape = session.scalar(select(Tape).where(Tape.pool_id == pool.id).limit(1))
        library = session.get(TapeLibrary, tape.tape_library_id) if tape is not None else None
    return library if library is not None and inventory.is_virtual(library) else None


def is_tape_destination(session: Session, destination: TaskDestination) -> bool:
    return bool(destination.tape_id) or _destination_pool(session, destination) is not None


def tape_destination(session: Session, task: Task, destination: TaskDestination) -> dict | None:
    """A tape or a pool of tapes as the location a node writes to: the library, and in
    `tapes` the cartridges to fill in order (the pool's, by barcode), then the scratch
    cartridges it may take when those are full (`scratch`, for the pool `pool_id`). A
    node reports each scratch cartridge it takes (op "tape", event "drawn") and the
    server moves it into the pool."""
    library = _destination_library(session, destination)
    if library is None:
        return None
    pool = _destination_pool(session, destination)
    if destination.tape_id:
        tape = session.get(Tape, destination.tape_id)
        barcodes, scratch = ([tape.barcode] if _writable(tape) else []), []
    else:
        barcodes = [t.barcode for t in session.scalars(
            select(Tape).where(Tape.pool_id == pool.id).order_by(Tape.barcode)) if _writable(t)]
        scratch_pool = inventory.ensure_scratch_pool(session, library)
        scratch = [t.barcode for t in session.scalars(
            select(Tape).where(Tape.pool_id == scratch_pool.id, Tape.scratch.is_(True))
            .order_by(Tape.barcode)) if _writable(t)]
    backend = inventory.descriptor(library)
    drive = _selected_drive(session, task, library)
    if drive is not None:
        backend["selected_drive"] = drive
    return {"namespace_path": f"/{library.name}", "storage_key": library_key(library.id),
            "storage_name": library.name, "backend": backend, "path": "",
            "tapes": {"pool_id": pool.id if pool is not None else None,
                      "barcodes": barcodes, "scratch": scratch}}


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


# --- rehydratation -----------------------------------------------------------------------------

def live_copies(session: Session, task: Task, cursor, limit: int):
    """Every catalogued copy on the task's cartridges (what a repack must keep), by copy
    path; a page and the cursor of the next one."""
    tape_ids = [tape.id for tape in _task_tapes(session, task)]
    statement = (select(CatalogFile.file_path, FileCopy.file_path.label("copy"), FileCopy.size,
                        FileCopy.mtime, FileCopy.checksum, FileCopy.algorithm,
                        FileCopy.position)
                 .join(CatalogFile, CatalogFile.id == FileCopy.file_id)
                 .where(FileCopy.storage_kind == "tape", FileCopy.storage_id.in_(tape_ids or [0])))
    if cursor is not None:
        statement = statement.where(FileCopy.file_path > cursor)
    rows = list(session.execute(statement.order_by(FileCopy.file_path).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    records = [{"file": row.file_path, "copy": row.copy, "size": row.size,
                "mtime": row.mtime.isoformat() if row.mtime else None,
                "checksum": row.checksum, "algorithm": row.algorithm, "position": row.position}
               for row in rows]
    return records, (rows[-1].copy if more else None)


def rehydration_destination(session: Session, task: Task) -> dict | None:
    """Where a repack writes: fresh cartridges only (from the scratch pool), for the
    task's destination pool, else the pool of its first source cartridge."""
    pool = None
    for destination in session.scalars(select(TaskDestination)
                                       .where(TaskDestination.task_id == task.id)):
        pool = _destination_pool(session, destination) or pool
    tapes = _task_tapes(session, task)
    if pool is None:
        pool = next((session.get(Pool, t.pool_id) for t in tapes if t.pool_id), None)
    if pool is None or pool.type == "scratch":
        return None
    library = session.get(TapeLibrary, pool.storage_id) if pool.storage_id else None
    if library is None and tapes:
        library = session.get(TapeLibrary, tapes[0].tape_library_id)
    if library is None or not inventory.is_virtual(library):
        return None
    scratch_pool = inventory.ensure_scratch_pool(session, library)
    scratch = [t.barcode for t in session.scalars(
        select(Tape).where(Tape.pool_id == scratch_pool.id, Tape.scratch.is_(True))
        .order_by(Tape.barcode)) if _writable(t)]
    backend = inventory.descriptor(library)
    return {"namespace_path": f"/{library.name}", "storage_key": library_key(library.id),
            "storage_name": library.name, "backend": backend, "path": "",
            "tapes": {"pool_id": pool.id, "barcodes": [], "scratch": scratch}}


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
            if event == "drawn":
                pool = session.get(Pool, (change.get("entry") or {}).get("pool_id") or 0)
                if pool is not None and tape.pool_id != pool.id:
                    tape.pool_id, tape.scratch = pool.id, False
            if event == "recycled":
                # Repacked: every live copy it held now has a copy on a fresh cartridge.
                move_backup_sets_off(session, select(FileCopy.id).where(
                    FileCopy.storage_kind == "tape", FileCopy.storage_id == tape.id))
                session.execute(delete(FileCopy).where(FileCopy.storage_kind == "tape",
                                                       FileCopy.storage_id == tape.id))
                inventory.return_to_scratch(session, tape)
                tape.last_repack, tape.repack_status = utcnow(), False
            if event == "index":
                from tiermover.service.storage.tape_import import import_index

                import_index(session, tape, (change.get("entry") or {}).get("files") or [])
            if event == "formatted":
                # A new label: whatever the cartridge held is gone, and so are its copies.
                session.execute(delete(FileCopy).where(FileCopy.storage_kind == "tape",
                                                       FileCopy.storage_id == tape.id))
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
