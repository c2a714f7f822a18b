"""duplication from a pool of tapes (or tapes): every live file on the cartridges (the
catalog's `tape_copies`) gets one more copy in the destination, read by cartridge in
on-tape order. A file lands at `<destination>/<storage>/<path>` after the file it is a
copy of, so it stays put whichever cartridge holds it; one already there with the same
size and date is skipped, so a scheduled duplication only copies what is new.

Duplication *to* tapes is the archiving seam (tiermover.workflows.tape_archive).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from tiermover.workflows.backup import epoch
from tiermover.workflows.base import ItemResult, RunContext, WorkItem
from tiermover.workflows.duplication import DuplicationWorkflow
from tiermover.workflows.tape_check import is_cartridge
from tiermover.workflows.tape_restore import RUN_FILES, TapeRestoreWorkflow, TapeRun, split_copy


class TapeDuplicationWorkflow(TapeRestoreWorkflow, DuplicationWorkflow):
    def __init__(self, plan):
        super().__init__(plan)
        self.cartridges = [s for s in plan.sources if is_cartridge(s)]
        # The other sources (NAS shares, buckets) are walked as by any duplication.
        self.execution = replace(plan, sources=[s for s in plan.sources if not is_cartridge(s)])

    def landing(self, original: str) -> str:
        return original.strip("/")

    def plan(self) -> Iterator[WorkItem]:
        if self.execution.sources:
            yield from DuplicationWorkflow.plan(self)
        if not self.cartridges:
            return
        wanted = {location.path: location for location in self.cartridges}
        by_barcode: dict[str, list[dict]] = {}
        for record in self.execution.catalog("tape_copies"):
            library, barcode, _ = split_copy(record["copy"])
            if barcode in wanted and record.get("position") is not None:
                by_barcode.setdefault(barcode, []).append(record)
        for barcode, records in sorted(by_barcode.items()):
            records.sort(key=lambda r: (r["position"], r["copy"]))
            library = wanted[barcode].storage_name
            for start in range(0, len(records), RUN_FILES):
                run = tuple(records[start:start + RUN_FILES])
                yield WorkItem(key=f"duplicate-tape:{barcode}:{run[0]['copy']}",
                               size=sum(int(r.get("size") or 0) for r in run),
                               payload=TapeRun(library, barcode, run))

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        if isinstance(item.payload, TapeRun):
            return TapeRestoreWorkflow.run(self, item, context)
        return DuplicationWorkflow.run(self, item, context)

    def _already_there(self, record: dict, existing) -> bool:
        mtime = epoch(record.get("mtime"))
        return existing.size == int(record.get("size") or 0) and mtime is not None \
            and abs(existing.mtime - mtime) < 0.001

    def _copy_of(self, record: dict) -> str | None:
        return record["file"]
