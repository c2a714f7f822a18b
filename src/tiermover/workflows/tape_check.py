"""check_consistency of cartridges, and of copies on tapes.

A cartridge among the task's sources (a tape, a pool of tapes) is checked whole: every
file its own on-tape index lists is re-read, in on-tape order, and compared with the
checksum the index recorded when it was written; this needs nothing from the catalog.
Catalogued copies on tapes (of the task's files) are grouped by cartridge and read in
on-tape order too, against the checksums the catalog recorded. Each mismatch has its own
warning line in the log; the execution then ends finished_with_warnings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import IndexEntry
from tiermover.storage.tape.reader import load_volume, open_in_order, read_catalog
from tiermover.workflows.base import (
    CatalogChange, ItemResult, RunContext, StorageLocation, WorkItem,
)
from tiermover.workflows.check_consistency import CheckConsistencyWorkflow
from tiermover.workflows.tape_drives import put_away
from tiermover.workflows.tape_restore import TapeRun, by_cartridge, split_copy


@dataclass(frozen=True)
class WholeCartridge:
    location: StorageLocation


def is_cartridge(location: StorageLocation) -> bool:
    return location.storage_key.startswith("tape_library:")


class TapeCheckConsistencyWorkflow(CheckConsistencyWorkflow):
    def __init__(self, plan):
        super().__init__(plan)
        self._robot = threading.Lock()  # one cartridge read at a time
        self._libraries: dict = {}

    def plan(self) -> Iterator[WorkItem]:
        cartridges = [s for s in self.execution.sources if is_cartridge(s)]
        for location in cartridges:
            yield WorkItem(key=f"check-tape:{location.storage_key}:{location.path}",
                           payload=WholeCartridge(location))
        if cartridges and len(cartridges) == len(self.execution.sources):
            return  # only cartridges: nothing in the catalog to check besides them
        yield from by_cartridge(super().plan(), "check-tape", "copy")

    def describe(self, item: WorkItem) -> str:
        if isinstance(item.payload, WholeCartridge):
            return item.payload.location.namespace_path
        if isinstance(item.payload, TapeRun):
            return f"{len(item.payload.records)} copies on cartridge {item.payload.barcode}"
        return super().describe(item)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        payload = item.payload
        if isinstance(payload, WholeCartridge):
            with self._robot:
                return self._whole(payload.location, context)
        if isinstance(payload, TapeRun):
            with self._robot:
                return self._copies(payload, context)
        return super().run(item, context)

    def _whole(self, location: StorageLocation, context: RunContext) -> ItemResult:
        library, barcode = location.backend, location.path
        self._libraries[barcode] = (library, location.storage_name)
        prefix = location.namespace_path
        with cartridge_in_drive(library, barcode, unload_after=False) as (_, device):
            volume, entries = read_catalog(device)
            files = [e for e in entries if e.type == "file"]
            return self._verify(device, volume.label.record_size, files, prefix,
                                {e.path: e.checksum for e in files}, context)

    def _copies(self, run: TapeRun, context: RunContext) -> ItemResult:
        library, _ = self.execution.open_path(f"/{run.library}/{run.barcode}")
        self._libraries[run.barcode] = (library, run.library)
        expected, entries = {}, []
        for record in run.records:
            inside = split_copy(record["copy"])[2]
            if record.get("position") is None:
                continue
            expected[inside] = record.get("checksum")
            entries.append(IndexEntry(inside, "file", int(record.get("size") or 0), 0.0, 0, 0,
                                      0, int(record["position"]), int(record["position"]), 0,
                                      algorithm=record.get("algorithm")))
        with cartridge_in_drive(library, run.barcode, unload_after=False) as (_, device):
            record_size = load_volume(device).label.record_size
            return self._verify(device, record_size, entries,
                                f"/{run.library}/{run.barcode}", expected, context)

    def _verify(self, device, record_size: int, entries: list[IndexEntry], prefix: str,
                expected: dict[str, str | None], context: RunContext) -> ItemResult:
        changes, bad, size = [], 0, 0
        for entry, reader in open_in_order(device, entries, record_size):
            algorithm = entry.algorithm or DEFAULT_ALGORITHM
            hasher = new_hasher(algorithm)
            while chunk := reader.read(self.execution.chunk_size):
                context.checkpoint()
                hasher.update(chunk)
                context.add_bytes(len(chunk))
            size += entry.size
            path = f"{prefix}/{entry.path}"
            wanted = expected.get(entry.path)
            ok = wanted is None or hasher.hexdigest() == wanted
            changes.append(CatalogChange("verified", path, checksum=hasher.hexdigest(),
                                         algorithm=algorithm, ok=ok))
            if not ok:
                bad += 1
                context.log("warning", f"{path}: checksum {hasher.hexdigest()} does not match "
                                       f"the recorded {algorithm} {wanted}")
        if bad:
            return ItemResult("mismatch", size=size, warning=True, changes=changes,
                              message=f"{prefix}: {bad} of {len(entries)} files do not match "
                                      "their recorded checksums")
        return ItemResult("done", size=size, changes=changes,
                          message=f"{prefix}: {len(entries)} files verified")

    def finish(self, context: RunContext) -> list:
        return put_away(self.execution.options, {
            barcode: (library, f"/{name}/{barcode}")
            for barcode, (library, name) in self._libraries.items()}, context) \
            + super().finish(context)
