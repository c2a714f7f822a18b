"""cache_cleaning: free a container's space by dropping the primary copy of files that
have a good secondary copy. The catalog keeps them, offline.

"Good" is proven now, not assumed: the copy is re-read and must match both its recorded
checksum and the primary's current content. A file without such a copy is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.storage.base import StorageError
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem, Workflow
from tiermover.workflows.verify import read_checksum


class CacheCleaningWorkflow(Workflow):
    def plan(self) -> Iterator[WorkItem]:
        if self.execution.catalog is None:
            raise StorageError("cache_cleaning needs the catalog, which this node cannot read")
        current: list[dict] = []
        # Records come ordered by file: gather each file's copies into one item.
        for record in self.execution.catalog("copies"):
            if current and record["file"] != current[0]["file"]:
                yield self._item(current)
                current = []
            if record.get("copy"):
                current.append(record)
        if current:
            yield self._item(current)

    def _item(self, copies: list[dict]) -> WorkItem:
        return WorkItem(key=f"clean:{copies[0]['file']}", size=int(copies[0].get("size") or 0),
                        payload=copies)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        copies = item.payload
        path = copies[0]["file"]
        backend, inside = self.execution.open_path(path)
        primary = {}
        for record in copies:
            algorithm = record.get("algorithm")
            if algorithm not in primary:
                primary[algorithm] = read_checksum(backend, inside, algorithm, context)
            if primary[algorithm] is None:
                return ItemResult("skipped", message=f"{path}: already not in cache")
            if primary[algorithm] != record.get("checksum"):
                continue  # the file changed since this copy was made
            copy_backend, copy_inside = self.execution.open_path(record["copy"])
            if read_checksum(copy_backend, copy_inside, algorithm, context,
                             count_bytes=False) != record["checksum"]:
                continue
            backend.remove(inside)
            return ItemResult("removed", size=item.size, changes=[
                CatalogChange("verified", record["copy"], checksum=record["checksum"],
                              algorithm=algorithm),
                CatalogChange("removed", path, keep_offline=True)])
        return ItemResult("skipped", warning=True, size=item.size,
                          message=f"{path}: kept in cache: no copy matches its current content")
