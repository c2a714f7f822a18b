"""Task sources and destinations: what a task reads and where it writes.

A source names exactly one of a file or folder (file_id | file_path), an imported file
(import_file_id | import_file_path), a tape (tape_id | tape_barcode) or a pool
(pool_id | pool_name); a destination one of a folder, a tape or a pool. The id and the
natural key of one reference may both be given if they agree. Paths are namespace paths
(`/<container, share or bucket>/<path>`) checked against their storage root; existing ones
are registered in the catalog. An update that names any reference replaces the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import (
    CatalogFile, CloudBucket, Container, ImportFile, NasShare, Pool, Tape, Task, TaskDestination,
    TaskSource,
)
from tiermover.service import catalog, namespace
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr
from tiermover.service.task_parts import MAX_ROW_ID, row_id

SOURCE_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskSource.id, "int"),
    "file_id": Attr(TaskSource.file_id, "int"),
    "import_file_id": Attr(TaskSource.import_file_id, "int"),
    "tape_id": Attr(TaskSource.tape_id, "int"),
    "pool_id": Attr(TaskSource.pool_id, "int"),
}
DESTINATION_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskDestination.id, "int"),
    "folder_id": Attr(TaskDestination.folder_id, "int"),
    "tape_id": Attr(TaskDestination.tape_id, "int"),
    "pool_id": Attr(TaskDestination.pool_id, "int"),
}

# kind of reference -> (id field, natural-key field)
SOURCE_KINDS = {
    "file": ("file_id", "file_path"), "import_file": ("import_file_id", "import_file_path"),
    "tape": ("tape_id", "tape_barcode"), "pool": ("pool_id", "pool_name"),
}
DESTINATION_KINDS = {
    "folder": ("folder_id", "folder_path"), "tape": ("tape_id", "tape_barcode"),
    "pool": ("pool_id", "pool_name"),
}
KIND_NAMES = {"file": "a file or folder", "import_file": "an imported file", "tape": "a tape",
              "pool": "a pool", "folder": "a folder"}

# What each workflow action can read and write (semantics section 5). Actions not listed
# (and tasks without an action) accept every kind.
SOURCES_BY_ACTION = {
    "copy": {"file", "import_file", "tape", "pool"},
    "move": {"file", "import_file", "tape", "pool"},
    "erase": {"file", "tape", "pool"},
    "scan": {"file", "tape", "pool"},
    "check_consistency": {"file", "tape", "pool"},
    "duplication": {"tape", "pool"},
    "rehydratation": {"tape", "pool"},
    "cache_cleaning": {"file"},
    "format": {"tape", "pool"},
    "ejection": {"tape", "pool"},
    "get_index": {"tape", "pool"},
    "full_backup": {"file"},
    "incremental_backup": {"file"},
    "speedtest": {"file", "tape", "pool"},
}
DESTINATIONS_BY_ACTION = {
    "copy": {"folder", "tape", "pool"},
    "move": {"folder", "tape", "pool"},
    "duplication": {"pool"},
    "rehydratation": {"pool"},
    "full_backup": {"folder", "pool"},
    "incremental_backup": {"folder", "pool"},
    "restore": {"folder"},
    **{action: set() for action in ("erase", "scan", "check_consistency", "cache_cleaning",
                                    "format", "ejection", "get_index", "speedtest")},
}


@dataclass
class Reference:
    """What one source or destination points at, resolved."""

    kind: str
    file: CatalogFile | None = None
    path: str | None = None
    container_id: int | None = None
    nas_share_id: int | None = None
    cloud_bucket_id: int | None = None
    import_file: ImportFile | None = None
    tape: Tape | None = None
    pool: Pool | None = None


# --- resolving one reference ------------------------------------------------------------

def _by_id(session: Session, model, raw: Any, attr: str, label: str):
    found = session.get(model, row_id(raw)) if row_id(raw) is not None else None
    if found is None:
        raise ValidationFailed.on(attr, "not_found", f"names no {label} with this id",
                                  value=str(raw))
    return found


def _by_key(session: Session, model, column, raw: Any, attr: str, label: str):
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed.on(attr, "blank")
    if "\x00" in raw:  # PostgreSQL refuses NUL even in a comparison
        raise ValidationFailed.on(attr, "invalid", "must not contain NUL characters")
    matches = session.scalars(select(model).where(column == raw).limit(2)).all()
    if not matches:
        raise ValidationFailed.on(attr, "not_found", f"names no known {label}", value=raw)
    if len(matches) > 1:
        raise ValidationFailed.on(attr, "ambiguous", f"names several {label}s: use "
                                  f"{attr.rsplit('_', 1)[0]}_id", value=raw)
    return matches[0]


def _agree(by_id, by_key, id_attr: str, key_attr: str):
    if by_id is not None and by_key is not None and by_id.id != by_key.id:
        raise ValidationFailed.on(key_attr, "invalid", f"names another object than {id_attr}")
    return by_id if by_id is not None else by_key


def _pick(session: Session, values: dict, model, key_column, id_attr: str, key_attr: str,
          label: str):
    by_id = (_by_id(session, model, values[id_attr], id_attr, label)
             if values.get(id_attr) is not None else None)
    by_key = (_by_key(session, model, key_column, values[key_attr], key_attr, label)
              if values.get(key_attr) is not None else None)
    return _agree(by_id, by_key, id_attr, key_attr)


STORAGE_MODELS = {"container": Container, "nas_share": NasShare, "cloud_bucket": CloudBucket}


def _set_storage(reference: Reference, kind: str, storage_id: int) -> None:
    reference.container_id = storage_id if kind == "container" else None
    reference.nas_share_id = storage_id if kind == "nas_share" else None
    reference.cloud_bucket_id = storage_id if kind == "cloud_bucket" else None


def _storage_of(session: Session, entry: CatalogFile, attr: str, reference: Reference) -> None:
    model = STORAGE_MODELS.get(entry.storage_kind)
    if model is None or session.get(model, entry.storage_id) is None:
        raise ValidationFailed.on(attr, "invalid", "is on a storage that no longer exists",
                                  value=str(entry.id))
    _set_storage(reference, entry.storage_kind, entry.storage_id)


def _register(session: Session, location: namespace.Location) -> CatalogFile | None:
    """The catalog entry of an existing path. A bucket path was seen through S3 when it
    was resolved: its attributes come from there (the server has no file to stat)."""
    if location.kind != "cloud_bucket":
        return catalog.register(session, location)
    if location.entry is None:
        return None
    return catalog.record(session, location, location.entry.attributes())


def _resolve_path(session: Session, values: dict, id_attr: str, path_attr: str,
                  kind: str, may_be_missing: bool = False) -> Reference:
    """A file (source, must exist unless `may_be_missing`) or folder (destination, may be
    created at run time)."""
    is_folder = kind == "folder"
    reference = Reference(kind)
    by_id = (_by_id(session, CatalogFile, values[id_attr], id_attr, "catalogued file")
             if values.get(id_attr) is not None else None)
    by_path = None
    if values.get(path_attr) is not None:
        location = namespace.resolve(session, values[path_attr], path_attr,
                                     must_exist=not (is_folder or may_be_missing))
        by_path = _register(session, location)
        reference.path = location.namespace_path
        _set_storage(reference, location.kind, location.storage.id)
        if by_id is not None and (by_path is None or by_path.id != by_id.id):
            raise ValidationFailed.on(path_attr, "invalid", f"names another file than {id_attr}")
    entry = by_path or by_id
    if entry is not None:
        if by_path is None:
            reference.path = entry.file_path
            _storage_of(session, entry, id_attr, reference)
        if is_folder and entry.type != "folder":
            attr = path_attr if values.get(path_attr) is not None else id_attr
            raise ValidationFailed.on(attr, "invalid", "is a file, not a folder",
                                      value=entry.file_path)
    reference.file = entry
    return reference


def _resolve(session: Session, values: dict, kinds: dict[str, tuple[str, str]],
             role: str, may_be_missing: bool = False) -> Reference:
    given = [kind for kind, fields in kinds.items()
             if any(values.get(field) is not None for field in fields)]
    choices = ", ".join(f"{KIND_NAMES[k]} ({' or '.join(f)})" for k, f in kinds.items())
    if not given:
        raise ValidationFailed.on("base", "blank", f"A task {role} must name one of: {choices}")
    if len(given) > 1:
        names = " and ".join(KIND_NAMES[k] for k in given)
        raise ValidationFailed.on("base", "invalid", f"A task {role} names {names}: give only "
                                  f"one of {choices}")
    kind = given[0]
    id_attr, key_attr = kinds[kind]
    if kind in ("file", "folder"):
        return _resolve_path(session, values, id_attr, key_attr, kind, may_be_missing)
    if kind == "import_file":
        return Reference(kind, import_file=_pick(session, values, ImportFile, ImportFile.file_path,
                                                 id_attr, key_attr, "imported file"))
    if kind == "tape":
        return Reference(kind, tape=_pick(session, values, Tape, Tape.barcode, id_attr, key_attr,
                                          "tape"))
    return Reference(kind, pool=_pick(session, values, Pool, Pool.name, id_attr, key_attr, "pool"))


def _check_action(task: Task, reference: Reference, values: dict, kinds: dict,
                  accepted_by_action: dict[str, set[str]], role: str) -> None:
    accepted = accepted_by_action.get(task.workflow_action)
    if accepted is None or reference.kind in accepted:
        return
    id_attr, key_attr = kinds[reference.kind]
    attr = key_attr if values.get(key_attr) is not None else id_attr
    if not accepted:
        message = f"can't be used: {task.workflow_action} tasks have no {role}"
    else:
        takes = " or ".join(sorted(KIND_NAMES[k] for k in accepted))
        message = f"can't be a {role} of a {task.workflow_action} task (it takes {takes})"
    raise ValidationFailed.on(attr, "invalid", message)


# --- sources ------------------------------------------------------------------------------

def _range(values: dict) -> tuple[int | None, int | None]:
    bounds = values.get("range")
    if bounds is None:
        return None, None
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ValidationFailed.on("range", "wrong_length", count=2)
    start, end = bounds
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise ValidationFailed.on("range", "invalid", "must be two integers [start, end]")
    if not 0 <= start <= end <= MAX_ROW_ID:
        raise ValidationFailed.on("range", "invalid", "must be [start, end] with "
                                  "0 <= start <= end", value=f"[{start}, {end}]")
    return start, end


def _set_reference(part, reference: Reference) -> None:
    part.container_id = reference.container_id
    part.nas_share_id = reference.nas_share_id
    part.cloud_bucket_id = reference.cloud_bucket_id
    part.tape_id = reference.tape.id if reference.tape else None
    part.pool_id = reference.pool.id if reference.pool else None


def _apply_source(session: Session, task: Task, source: TaskSource, values: dict,
                  creating: bool) -> None:
    if creating or any(field in values for pair in SOURCE_KINDS.values() for field in pair):
        # A restore names what was lost: its source paths need not exist any more.
        reference = _resolve(session, values, SOURCE_KINDS, "source",
                             may_be_missing=task.workflow_action == "restore")
        _check_action(task, reference, values, SOURCE_KINDS, SOURCES_BY_ACTION, "source")
        _set_reference(source, reference)
        source.file_id = reference.file.id if reference.file else None
        source.file_path = reference.path
        source.import_file_id = reference.import_file.id if reference.import_file else None
    if creating or "range" in values:
        source.range_start, source.range_end = _range(values)


def create_source(session: Session, task: Task, values: dict) -> TaskSource:
    source = TaskSource(task_id=task.id)
    _apply_source(session, task, source, values, creating=True)
    session.add(source)
    session.flush()
    return source


def update_source(session: Session, task: Task, source: TaskSource, values: dict) -> TaskSource:
    _apply_source(session, task, source, values, creating=False)
    session.flush()
    return source


# --- destinations -------------------------------------------------------------------------

def _apply_destination(session: Session, task: Task, destination: TaskDestination,
                       values: dict, creating: bool) -> None:
    if creating or any(field in values for pair in DESTINATION_KINDS.values() for field in pair):
        reference = _resolve(session, values, DESTINATION_KINDS, "destination")
        _check_action(task, reference, values, DESTINATION_KINDS, DESTINATIONS_BY_ACTION,
                      "destination")
        _set_reference(destination, reference)
        destination.folder_id = reference.file.id if reference.file else None
        destination.folder_path = reference.path


def create_destination(session: Session, task: Task, values: dict) -> TaskDestination:
    destination = TaskDestination(task_id=task.id)
    _apply_destination(session, task, destination, values, creating=True)
    session.add(destination)
    session.flush()
    return destination


def update_destination(session: Session, task: Task, destination: TaskDestination,
                       values: dict) -> TaskDestination:
    _apply_destination(session, task, destination, values, creating=False)
    session.flush()
    return destination


# --- what a part points at, for display ---------------------------------------------------

@dataclass
class Links:
    file: CatalogFile | None
    container: Container | None
    import_file: ImportFile | None
    tape: Tape | None
    pool: Pool | None


def _get(session: Session, model, key: int | None):
    return session.get(model, key) if key is not None else None


def links_of(session: Session, part: TaskSource | TaskDestination) -> Links:
    is_source = isinstance(part, TaskSource)
    return Links(
        file=_get(session, CatalogFile, part.file_id if is_source else part.folder_id),
        container=_get(session, Container, part.container_id),
        import_file=_get(session, ImportFile, part.import_file_id) if is_source else None,
        tape=_get(session, Tape, part.tape_id),
        pool=_get(session, Pool, part.pool_id),
    )
