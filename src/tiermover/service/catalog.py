"""The file catalog: registering namespace paths as catalog entries (task references),
and applying the changes nodes report (see `catalog_changes`)."""

from __future__ import annotations

import os
import stat as stat_module

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tiermover.db.models import CatalogFile, Task, TaskExecution, TaskOption
from tiermover.service.catalog_changes import CatalogUpdate, sort_changes
from tiermover.service.catalog_entries import attribute_values
from tiermover.service.namespace import Location
from tiermover.service.task_options import TRUE_WORDS


def _apply_stat(entry: CatalogFile, path: str) -> None:
    info = os.lstat(path)
    _apply_attributes(entry, {
        "type": "folder" if stat_module.S_ISDIR(info.st_mode) else "file",
        "size": info.st_size, "mode": info.st_mode, "uid": info.st_uid, "gid": info.st_gid,
        "mtime": info.st_mtime, "atime": info.st_atime, "ctime": info.st_ctime})


def _apply_attributes(entry: CatalogFile, attrs: dict) -> None:
    """The attributes `attrs` gives (those it leaves out keep their value)."""
    for name, value in attribute_values(attrs).items():
        if value is not None:
            setattr(entry, name, value)


def _entry(session: Session, location: Location, relative: str) -> CatalogFile | None:
    return session.scalar(
        select(CatalogFile).where(
            CatalogFile.storage_kind == location.kind,
            CatalogFile.storage_id == location.storage.id,
            CatalogFile.path == relative,
        )
    )


def _insert(session: Session, location: Location, relative: str, parts: list[str], depth: int,
            parent: CatalogFile | None) -> CatalogFile:
    """Insert one entry; if another request inserted it at the same moment, use theirs."""
    entry = CatalogFile(
        storage_kind=location.kind,
        storage_id=location.storage.id,
        primary_id=location.storage.id if location.kind == "container" else None,
        path=relative,
        name=parts[depth - 1] if depth else location.storage_name,
        parent=parent.id if parent else None,
        file_path="/" + location.storage_name + ("/" + relative if relative else ""),
        type="folder",
    )
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:
        entry = _entry(session, location, relative)
    return entry


def register(session: Session, location: Location) -> CatalogFile | None:
    """The catalog entry for an existing path (and its ancestors), created or refreshed.

    Returns None when the path does not exist yet (e.g. a destination folder to create).
    """
    if not os.path.lexists(location.local_path):
        return None
    parts = location.relative.split("/") if location.relative else []
    parent: CatalogFile | None = None
    for depth in range(len(parts) + 1):
        relative = "/".join(parts[:depth])
        entry = _entry(session, location, relative)
        if entry is None:
            entry = _insert(session, location, relative, parts, depth, parent)
        _apply_stat(entry, str(location.root / relative if relative else location.root))
        session.flush()
        parent = entry
    return parent


def record(session: Session, location: Location, attrs: dict) -> CatalogFile:
    """The catalog entry for a path a node wrote, from the attributes the node reported
    (the server may not reach the storage itself). Missing ancestors are added as folders."""
    cache: dict = session.info.setdefault("catalog_ids", {})
    parts = location.relative.split("/") if location.relative else []
    parent: CatalogFile | None = None
    for depth in range(len(parts) + 1):
        relative = "/".join(parts[:depth])
        key = (location.kind, location.storage.id, relative)
        leaf = depth == len(parts)
        entry = None
        if key in cache and not leaf:
            entry = session.get(CatalogFile, cache[key])
        if entry is None:
            entry = _entry(session, location, relative) or _insert(
                session, location, relative, parts, depth, parent)
            cache[key] = entry.id
        if leaf:
            _apply_attributes(entry, attrs)
        parent = entry
    session.flush()
    return parent


def _option(session: Session, task_id: int, kind: str) -> str | None:
    return session.scalar(select(TaskOption.value).where(TaskOption.task_id == task_id,
                                                         TaskOption.type == kind))


def is_set(option_value: str | None) -> bool:
    """Whether a yes/no task option (full_report) holds yes, as the option's check reads
    it."""
    return (option_value or "").strip().lower() in TRUE_WORDS


def apply_items(session: Session, execution: TaskExecution, items: list[dict],
                full_report: bool | None = None) -> None:
    """Finished items' catalog changes, and their lines in the execution's files (and,
    with option full_report, in its log; None: read it)."""
    batch = sort_changes(items)
    if batch.is_empty():
        return  # most reports of most executions: nothing for the catalog, no query
    # Imported here: execution_state applies these batches, so it imports us.
    from tiermover.service.execution_state import append_log

    task = session.get(Task, execution.task_id)
    if full_report is None:
        full_report = is_set(_option(session, task.id, "full_report"))
    handled = CatalogUpdate(session, execution, task.workflow_action, full_report).apply(batch)
    for line in handled:
        if full_report or line.outcome in ("deleted", "offline", "kept"):
            detail = f" ({line.detail})" if line.detail else ""
            append_log(session, execution, "info", f"{line.path}: {line.outcome}{detail}")
