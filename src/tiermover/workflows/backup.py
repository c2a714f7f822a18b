"""full_backup and incremental_backup: backup sets in a destination folder or pool.

Each run writes a new set folder, `backup-<execution id>`, under the destination, laid
out like a copy of the sources. The server records which file versions each set holds
(every written copy of a backup execution). A full set holds every file; an incremental
set copies only the files new or changed (size or modification date) since the task's
last successful set, and holds the unchanged ones through the copies that set holds, so
every set is complete on its own. restore brings one back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from dateutil.parser import isoparse

from tiermover.storage.base import StorageError, join
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.copy import CopyJob, CopyWorkflow
from tiermover.workflows.sources import selected_files


def epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    parsed = isoparse(str(value))
    return parsed.timestamp() if isinstance(parsed, datetime) else None


@dataclass(frozen=True)
class Unchanged:
    path: str  # namespace path of the source file


class FullBackupWorkflow(CopyWorkflow):
    incremental = False

    @property
    def set_folder(self) -> str:
        return join(self.destination.path, f"backup-{self.execution.execution_id}")

    def previous_versions(self) -> dict[str, tuple[int, float | None]]:
        """namespace path -> (size, mtime) of its newest version in earlier sets.

        Held in memory for the run (two numbers per file)."""
        if not self.incremental:
            return {}
        if self.execution.catalog is None:
            raise StorageError("incremental_backup needs the catalog, which this node cannot read")
        return {record["file"]: (int(record.get("size") or 0), epoch(record.get("mtime")))
                for record in self.execution.catalog("backup_files")}

    def plan(self) -> Iterator[WorkItem]:
        previous = self.previous_versions()
        for found in selected_files(self.execution):
            if previous and found.entry.type == "folder":
                continue  # made as its new files need it: an incremental set holds only those
            if found.entry.type == "file" and found.namespace_path in previous:
                size, mtime = previous[found.namespace_path]
                if size == found.entry.size and mtime is not None and abs(mtime - found.entry.mtime) < 0.001:
                    # Unchanged since the last set: this set holds the copy that one holds.
                    yield WorkItem(key=found.key, payload=Unchanged(found.namespace_path))
                    continue
            yield WorkItem(key=found.key, size=found.entry.size,
                           payload=CopyJob(found, join(self.set_folder, found.landing)))

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        if isinstance(item.payload, Unchanged):
            return ItemResult("skipped", changes=[CatalogChange("held", item.payload.path)])
        return super().run(item, context)


class IncrementalBackupWorkflow(FullBackupWorkflow):
    incremental = True
