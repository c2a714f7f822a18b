"""check_consistency: re-read every catalogued copy of the sources' files and compare it
with the checksum recorded when it was written.

Each mismatch or missing copy is a warning with its own line in the log (and in the
execution's files with full_report); the execution then ends finished_with_warnings.
A file with no copy is checked against its own recorded checksum when it has one.
"""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.storage.base import StorageError
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem, Workflow
from tiermover.workflows.verify import read_checksum


class CheckConsistencyWorkflow(Workflow):
    def plan(self) -> Iterator[WorkItem]:
        if self.execution.catalog is None:
            raise StorageError("check_consistency needs the catalog, which this node cannot read")
        for record in self.execution.catalog("copies"):
            target = record.get("copy") or record["file"]
            if not record.get("checksum"):
                continue  # nothing recorded to compare with
            yield WorkItem(key=f"check:{target}", size=int(record.get("size") or 0),
                           payload=record)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        record = item.payload
        target = record.get("copy") or record["file"]
        backend, inside = self.execution.open_path(target)
        actual = read_checksum(backend, inside, record.get("algorithm"), context)
        expected = record["checksum"]
        if actual is None:
            return ItemResult("missing", size=item.size, warning=True,
                              message=f"{target}: missing (copy of {record['file']})"
                              if record.get("copy") else f"{target}: missing",
                              changes=[CatalogChange("verified", target, ok=False)])
        if actual != expected:
            return ItemResult("mismatch", size=item.size, warning=True,
                              message=f"{target}: checksum {actual} does not match the "
                                      f"recorded {record.get('algorithm') or ''} {expected}",
                              changes=[CatalogChange("verified", target, checksum=actual,
                                                     algorithm=record.get("algorithm"), ok=False)])
        return ItemResult("done", size=item.size, checksum=actual,
                          changes=[CatalogChange("verified", target, checksum=actual,
                                                 algorithm=record.get("algorithm"))])
