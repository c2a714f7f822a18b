"""duplication: give the files archived on a pool one more copy on another pool.

Each member of the source pool (a NAS share or a bucket) is copied into the destination
(the member of the destination pool the server chose) under a folder named after it,
keeping file dates. A file already duplicated (same size and date) is skipped, so a
scheduled duplication only copies what is new since its last run.
"""

from __future__ import annotations

from tiermover.workflows.base import ItemResult, RunContext, WorkItem
from tiermover.workflows.copy import CopyJob, CopyWorkflow


class DuplicationWorkflow(CopyWorkflow):
    plan_needs_dates = True  # a file is recognised as duplicated by its size and date

    @property
    def flag(self) -> dict[str, bool]:
        # Dates are kept: they are how the next run recognises a file already duplicated.
        return {"reset_file_date": True, "reset_folder_date": False}

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        job: CopyJob = item.payload
        if job.entry.type == "file":
            existing = self.destination.backend.stat(job.target_path)
            if (existing is not None and existing.size == job.entry.size
                    and abs(existing.mtime - job.entry.mtime) < 0.001):
                return ItemResult("skipped", size=job.entry.size)
        return super().run(item, context)
