"""erase: delete the sources' data and their catalog entries (copies included).

With the option soft_erase only the catalog forgets them; the data stays untouched.
Files go first, folders once emptied (deepest first).
"""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem, Workflow
from tiermover.workflows.sources import SourceFile, selected_files, walked_folders


class EraseWorkflow(Workflow):
    @property
    def soft(self) -> bool:
        return self.execution.options.get("soft_erase", "").lower() in ("1", "true")

    def plan(self) -> Iterator[WorkItem]:
        for found in selected_files(self.execution, folders=False):
            yield WorkItem(key=found.key, size=found.entry.size, payload=found)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        found: SourceFile = item.payload
        if not self.soft:
            found.source.backend.remove(found.path)
        return ItemResult("removed", size=found.entry.size,
                          changes=[CatalogChange("removed", found.namespace_path)])

    def finish(self, context: RunContext) -> list[CatalogChange]:
        if self.soft or self.execution.filters:
            # A filtered erase only takes the files it selected; their folders stay.
            return []
        folders = [found for found in walked_folders(self.execution) if found.path]
        removed = []
        for found in sorted(folders, key=lambda f: f.path.count("/"), reverse=True):
            context.checkpoint()
            if found.source.backend.remove_folder(found.path):
                removed.append(CatalogChange("removed", found.namespace_path))
        return removed
