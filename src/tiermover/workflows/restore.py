"""restore: bring files back from their backup copies into the destination folder.

What comes back is decided by the server (the `restore` catalog records): the newest
version of every file under the task's sources, or the set of the execution named by
the option execution_task_id. A file lands like a copy of its source (`/ctr/projects/a`
restored to `/ctr/back` gives `/ctr/back/projects/a`), with conflict_resolution, its
original modification date, and only if the copy still hashes to its recorded checksum.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from tiermover.storage.base import StorageError, join
from tiermover.workflows.backup import epoch
from tiermover.workflows.base import ItemResult, RunContext, StorageLocation, WorkItem
from tiermover.workflows.copy import CopyJob, CopyWorkflow
from tiermover.workflows.sources import SourceFile


class RestoreWorkflow(CopyWorkflow):
    commits_in_groups = False  # the step dates the file once it has its name

    def landing(self, original: str) -> str:
        for source in self.execution.sources:
            top = source.namespace_path.rstrip("/")
            if original == top or original.startswith(top + "/"):
                name = posixpath.basename(top) or source.storage_name
                return join(name, original[len(top):])
        return original.strip("/")

    def plan(self) -> Iterator[WorkItem]:
        if self.execution.catalog is None:
            raise StorageError("restore needs the catalog, which this node cannot read")
        for record in self.execution.catalog("restore"):
            if record.get("copy"):
                yield WorkItem(key=f"restore:{record['file']}", size=int(record.get("size") or 0),
                               payload=record)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        record = item.payload
        backend, inside = self.execution.open_path(record["copy"])
        entry = backend.stat(inside)
        if entry is None:
            return ItemResult("missing", warning=True, size=item.size,
                              message=f"{record['file']}: its copy {record['copy']} is missing")
        storage_name = record["copy"].strip("/").partition("/")[0]
        location = StorageLocation(record["copy"], storage_name, backend, inside)
        job = CopyJob(SourceFile(0, location, inside, entry, self.landing(record["file"])),
                      join(self.destination.path, self.landing(record["file"])),
                      expected_checksum=record.get("checksum"))
        result = super().run(WorkItem(item.key, item.size, job), context)
        mtime = epoch(record.get("mtime"))
        if result.outcome in ("done", "renamed") and mtime is not None and result.destination:
            target = result.destination.strip("/").partition("/")[2]
            self.destination.backend.set_times(target, mtime, mtime)
        return result

    def finish(self, context: RunContext) -> list:
        return []
