"""get_index: read what cartridges say they hold (their own on-tape indexes) back into the
catalog as import files, without needing anything the catalog knew about them.

Each cartridge is read by its label and trailers (tiermover.storage.tape.reader.
read_catalog): no file data is read. The node reports the entries as a change of op
"tape", event "index"; the server replaces the cartridge's import files in its pool with
them (see tiermover.service.storage.tape_import).
"""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import BlankCartridge
from tiermover.storage.tape.reader import read_catalog
from tiermover.workflows.tape_drives import put_away
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem, Workflow


def newest_entries(entries) -> list[dict]:
    """Each path once, as its newest session wrote it (a path written twice: the later)."""
    newest = {}
    for entry in entries:
        newest[entry.path] = entry
    return [{"path": e.path, "type": e.type, "size": e.size, "mode": e.mode, "uid": e.uid,
             "gid": e.gid, "mtime": e.mtime, "atime": e.atime, "checksum": e.checksum,
             "algorithm": e.algorithm, "offset": e.offset}
            for e in newest.values()]


class GetIndexWorkflow(Workflow):
    default_streams = 1  # one robot

    def plan(self) -> Iterator[WorkItem]:
        for location in self.execution.sources:
            yield WorkItem(key=f"index:{location.storage_key}:{location.path}", payload=location)

    def describe(self, item: WorkItem) -> str:
        return item.payload.namespace_path

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        location = item.payload
        self.__dict__.setdefault("_used", {})[location.path] = (location.backend,
                                                              location.namespace_path)
        with cartridge_in_drive(location.backend, location.path) as (_, device):
            try:
                volume, entries = read_catalog(device)
            except BlankCartridge:
                return ItemResult("done", message=f"{location.namespace_path}: blank, nothing "
                                  "to import")
        files = newest_entries(entries)
        return ItemResult("done", message=(
            f"{location.namespace_path}: {len(files)} entries in {len(volume.sessions)} "
            f"session{'s' if len(volume.sessions) != 1 else ''} imported"),
            changes=[CatalogChange("tape", location.namespace_path,
                                   entry={"event": "index", "files": files})])

    def finish(self, context: RunContext) -> list[CatalogChange]:
        return put_away(self.execution.options, self.__dict__.get("_used", {}), context)
