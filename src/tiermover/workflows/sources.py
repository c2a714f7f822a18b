"""The files a task's sources select: walked once per pass, filtered, optionally ordered.

Every action that walks its sources (copy, move, erase, scan, backups, speedtest reads)
goes through `selected_files`, so filters and processing_order mean the same everywhere.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from tiermover.service.filter_expressions import FileFilter, compile_filter
from tiermover.storage.base import Entry, StorageError, join, namespace_path
from tiermover.workflows.base import ExecutionPlan, StorageLocation

# processing_order option -> sort key of a SourceFile (and whether it is reversed)
ORDERS = {
    "asc": (lambda f: f.path, False),
    "desc": (lambda f: f.path, True),
    "size_asc": (lambda f: (f.entry.size, f.path), False),
    "size_desc": (lambda f: (f.entry.size, f.path), True),
    "mtime_asc": (lambda f: (f.entry.mtime, f.path), False),
    "mtime_desc": (lambda f: (f.entry.mtime, f.path), True),
}
DATE_ORDERS = {"mtime_asc", "mtime_desc"}


@dataclass(frozen=True, slots=True)
class SourceFile:
    index: int  # which source of the task
    source: StorageLocation
    path: str  # inside the source's backend
    entry: Entry
    landing: str  # relative path it lands at under a destination folder (cp -r rules)

    @property
    def key(self) -> str:
        return f"{self.index}:{self.path}"

    @property
    def namespace_path(self) -> str:
        return namespace_path(self.source.storage_name, self.path)


def filters_of(plan: ExecutionPlan) -> list[FileFilter]:
    return [compile_filter(script) for script in plan.filters]


def attributes(namespace_path: str, entry: Entry) -> dict:
    """What a filter expression reads (see tiermover.service.filter_expressions)."""
    name = entry.name
    stem, dot, extension = name.rpartition(".")
    return {"name": name, "path": namespace_path, "extension": extension if dot and stem else "",
            "type": entry.type, "size": entry.size, "mode": entry.mode & 0o7777,
            "uid": entry.uid, "gid": entry.gid, "mtime": entry.mtime, "atime": entry.atime,
            "ctime": entry.ctime}


def landing_name(plan: ExecutionPlan, source: StorageLocation) -> str:
    """A folder source lands keeping its name, a file source as its name or rename_to."""
    rename_to = plan.options.get("rename_to")
    if rename_to and len(plan.sources) == 1:
        return rename_to
    return posixpath.basename(source.path) or source.storage_name


def _walk(plan: ExecutionPlan, filters: list[FileFilter], folders: bool,
          metadata: bool = True) -> Iterator[SourceFile]:
    for index, source in enumerate(plan.sources):
        top = source.backend.stat(source.path)
        if top is None:
            raise StorageError(f"source {source.namespace_path} does not exist")
        landing = join(landing_name(plan, source))
        # Walks give clean relative paths: the landing path is a concatenation, not a
        # join (this runs once per entry of trees of millions).
        for entry in [top] if top.type == "file" else _chain(top, source, metadata):
            relative = entry.path[len(source.path):].lstrip("/") if source.path else entry.path
            found = SourceFile(index, source, entry.path, entry,
                               f"{landing}/{relative}" if relative else landing)
            if entry.type == "folder":
                # With filters, folders are created as the files selected need them.
                if folders and not filters:
                    yield found
                continue
            if not filters or all(f.matches(attributes(found.namespace_path, entry))
                                  for f in filters):
                yield found


def _chain(top: Entry, source: StorageLocation, metadata: bool) -> Iterator[Entry]:
    yield top
    yield from source.backend.walk(source.path, metadata)


def selected_files(plan: ExecutionPlan, folders: bool = True,
                   metadata: bool = True) -> Iterator[SourceFile]:
    """The sources' files (and folders, before their contents, unless `folders` is False)
    in walk order, or in the task's processing_order.

    A processing order needs the whole selection sorted, so only then is the list of
    entries held in memory; the default order streams.

    `metadata=False`: the caller reads the dates, mode and owner of each file when it
    reads the file (Backend.entry_read), and object storage may leave them out of the
    walk (see Backend.walk). Filters and orders by date need them: they get them anyway.
    """
    filters = filters_of(plan)
    order = plan.options.get("processing_order")
    metadata = metadata or bool(filters) or order in DATE_ORDERS
    if order not in ORDERS:
        yield from _walk(plan, filters, folders, metadata)
        return
    key, reverse = ORDERS[order]
    selected = list(_walk(plan, filters, folders=False, metadata=metadata))
    selected.sort(key=key, reverse=reverse)
    if folders and not filters:
        # Folders first (in walk order), so each file finds its folder already made.
        yield from walked_folders(plan)
    yield from selected


def walked_folders(plan: ExecutionPlan) -> Iterator[SourceFile]:
    """Every folder of the sources, parents first, whatever the filters select."""
    # Folders have no metadata of their own on object storage: none is read for them.
    return (found for found in _walk(plan, [], folders=True, metadata=False)
            if found.entry.type == "folder")
