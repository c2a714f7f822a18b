"""scan: (re)index the sources into the catalog: new, changed and deleted files.

Entries are reported in chunks (one work item per chunk), so a tree of millions of
files costs the server one batch per chunk and the node never holds more than a chunk.
The server marks catalogued files under the sources that the scan did not see as gone
when the execution ends successfully. With the option file_checksum the scan also
hashes every file (slower: it reads all the data).
"""

from __future__ import annotations

from collections.abc import Iterator

from tiermover.storage.checksums import new_hasher
from tiermover.workflows.base import (
    SEEN_COLUMNS, SEEN_COLUMNS_HASHED, CatalogChange, ItemResult, RunContext, WorkItem, Workflow,
)
from tiermover.workflows.sources import SourceFile, selected_files

CHUNK = 500




class ScanWorkflow(Workflow):
    default_streams = 1  # a chunk is cheap; order keeps the catalog's parents first
    # Counting first would walk the tree twice for the same lstat calls: the execution's
    # totals grow as the scan goes instead.
    counts_first = False

    def plan(self) -> Iterator[WorkItem]:
        chunk: list[SourceFile] = []
        for found in selected_files(self.execution):
            chunk.append(found)
            if len(chunk) == CHUNK:
                yield self._item(chunk)
                chunk = []
        if chunk:
            yield self._item(chunk)

    def _item(self, chunk: list[SourceFile]) -> WorkItem:
        # Keyed by its first entry: a resumed scan redoes any chunk whose start moved.
        return WorkItem(key=f"scan:{chunk[0].key}", size=sum(f.entry.size for f in chunk),
                        payload=chunk)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        algorithm = self.execution.options.get("file_checksum")
        seen = []
        for found in item.payload:
            entry = found.entry
            row = (found.namespace_path, entry.type, entry.size, entry.mode, entry.uid,
                   entry.gid, entry.mtime, entry.atime, entry.ctime)
            if algorithm:
                checksum = (self._hash(found, algorithm, context) if entry.type == "file"
                            else None)
                row += (checksum, algorithm if checksum else None)
            seen.append(row)
        return ItemResult("done", size=item.size, seen=seen,
                          seen_columns=SEEN_COLUMNS_HASHED if algorithm else SEEN_COLUMNS)

    def _hash(self, found: SourceFile, algorithm: str, context: RunContext) -> str:
        hasher = new_hasher(algorithm)
        with found.source.backend.open_read(found.path) as reader:
            while chunk := reader.read(self.execution.chunk_size):
                context.checkpoint()
                hasher.update(chunk)
                context.add_bytes(len(chunk))
        return hasher.hexdigest()

    def finish(self, context: RunContext) -> list[CatalogChange]:
        if self.execution.filters:
            # A filtered scan saw only what its filters selected: the rest is not gone.
            context.log("info", "filters select what this scan sees: catalogued files it did "
                                "not see are left as they are")
            return []
        return [CatalogChange("swept", source.namespace_path) for source in self.execution.sources]
