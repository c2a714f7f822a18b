"""move: copy, re-read the copy to verify its checksum, and only then delete the source,
if it still holds the version that was copied.

A container source keeps its catalog entries, marked offline (its data now lives in the
copy); folders emptied on other storages are removed once every file has moved.
"""

from __future__ import annotations

from tiermover.storage.checksums import new_hasher
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.copy import CopyJob, CopyWorkflow
from tiermover.workflows.sources import walked_folders

MOVED = ("done", "renamed")


def inside_storage(namespace_path: str) -> str:
    """'/share/a/b' -> 'a/b'."""
    return namespace_path.strip("/").partition("/")[2]


def is_container(location) -> bool:
    return location.storage_key.startswith("container:")


class MoveWorkflow(CopyWorkflow):
    commits_in_groups = False  # the step re-reads the copy and deletes the source

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        job: CopyJob = item.payload
        result, read = self.copy(job, context)
        if job.entry.type == "folder":
            return result
        if result.outcome == "skipped" and not result.warning:
            # ignore: an identical file is already there; it is the verified copy.
            target = job.target_path
            result.checksum = self._hash(self.destination.backend, target, context)
            result.changes.append(CatalogChange(
                "written", self._namespace(target), entry=self._attributes(target),
                checksum=result.checksum, algorithm=self.algorithm,
                copy_of=job.found.namespace_path))
        elif result.outcome not in MOVED:
            return result  # nothing was copied: the source stays
        written = result.changes[0].path
        target = inside_storage(written)
        reread = self._hash(self.destination.backend, target, context)
        verified = reread == result.checksum
        result.changes.append(CatalogChange("verified", written, checksum=reread,
                                            algorithm=self.algorithm, ok=verified))
        if not verified:
            result.outcome, result.warning = "failed", True
            result.message = (f"{written}: the copy reads back with checksum {reread}, not "
                              f"{result.checksum}; the source {job.found.namespace_path} is kept")
            return result
        # A copy checks that its source did not change while it was read; it may change
        # after (an object's read checks nothing after its GET): only the version that
        # was copied is deleted.
        now = job.source.backend.stat(job.source_path)
        if now is not None and read is not None and not read.same_version(now):
            result.warning = True
            result.message = (f"{job.found.namespace_path} changed after it was copied: "
                              "kept; the next run moves the version it holds then")
            return result
        if now is not None:
            job.source.backend.remove(job.source_path)
        result.changes.append(CatalogChange("removed", job.found.namespace_path,
                                            keep_offline=is_container(job.source)))
        return result

    def _hash(self, backend, path: str, context: RunContext) -> str:
        hasher = new_hasher(self.algorithm)
        with backend.open_read(path) as reader:
            while chunk := reader.read(self.execution.chunk_size):
                context.checkpoint()
                hasher.update(chunk)
        return hasher.hexdigest()

    def finish(self, context: RunContext) -> list[CatalogChange]:
        super().finish(context)
        # Emptied folders go too, deepest first, except in containers: there the folder
        # tree stays browsable with its files offline.
        folders = [found for found in walked_folders(self.execution)
                   if not is_container(found.source)]
        removed = []
        for found in sorted(folders, key=lambda f: f.path.count("/"), reverse=True):
            context.checkpoint()
            if found.path and found.source.backend.remove_folder(found.path):
                removed.append(CatalogChange("removed", found.namespace_path))
        return removed
