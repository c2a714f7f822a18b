"""restore (and any read of catalogued copies) from tapes: by cartridge, in on-tape order.

The restore records of copies on tapes carry the byte where each copy starts on its
cartridge. They are grouped by cartridge and sorted by that position; a work item is a
run of them on one cartridge, read in one pass that seeks forward only (short gaps are
read through, longer ones located: see tiermover.storage.tape.reader.open_in_order). The
cartridge stays in its drive between items and is put back at the end. Records of copies
elsewhere are restored as before.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tiermover.storage.base import StorageError, join, namespace_path
from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.storage.tape.driver import TapeError
from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import IndexEntry
from tiermover.storage.tape.reader import load_volume, open_in_order
from tiermover.workflows.backup import epoch
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.copy import renamed_candidate
from tiermover.workflows.restore import RestoreWorkflow
from tiermover.workflows.tape_drives import put_away

# Files per item: a pause or a lost node costs at most this many files' reads.
RUN_FILES = 500


@dataclass(frozen=True)
class TapeRun:
    library: str  # the library's storage name
    barcode: str
    records: tuple[dict, ...]  # sorted by position


def split_copy(copy: str) -> tuple[str, str, str]:
    """'/robot/V10001L5/projects/a' -> ('robot', 'V10001L5', 'projects/a')."""
    library, _, rest = copy.strip("/").partition("/")
    barcode, _, inside = rest.partition("/")
    return library, barcode, inside


def by_cartridge(items: Iterator[WorkItem], key: str, name: str) -> Iterator[WorkItem]:
    """Items whose record is a copy on tape come out as runs of up to RUN_FILES records
    per cartridge in on-tape order (keyed `<key>:<barcode>:<first record's name>`); the
    others pass through first, as they come."""
    on_tapes: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        record = item.payload
        if not record.get("tape"):
            yield item
            continue
        library, barcode, _ = split_copy(record["copy"])
        on_tapes.setdefault((library, barcode), []).append(record)
    for (library, barcode), records in sorted(on_tapes.items()):
        records.sort(key=lambda r: (r.get("position") or 0, r["copy"]))
        for start in range(0, len(records), RUN_FILES):
            run = tuple(records[start:start + RUN_FILES])
            yield WorkItem(key=f"{key}:{barcode}:{run[0][name]}",
                           size=sum(int(r.get("size") or 0) for r in run),
                           payload=TapeRun(library, barcode, run))


class TapeRestoreWorkflow(RestoreWorkflow):
    def __init__(self, plan):
        super().__init__(plan)
        # Items on other storages run in parallel; cartridges are read one at a time, so
        # two streams never fight over the drives (nor seek one cartridge back and forth).
        self._robot = threading.Lock()
        self._libraries: dict = {}

    def plan(self) -> Iterator[WorkItem]:
        return by_cartridge(super().plan(), "restore-tape", "file")

    def describe(self, item: WorkItem) -> str:
        if isinstance(item.payload, TapeRun):
            run = item.payload
            return f"{len(run.records)} files from cartridge {run.barcode}"
        return super().describe(item)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        if not isinstance(item.payload, TapeRun):
            return super().run(item, context)
        with self._robot:
            return self._read_run(item, context)

    def _read_run(self, item: WorkItem, context: RunContext) -> ItemResult:
        run: TapeRun = item.payload
        library, _ = self.execution.open_path(f"/{run.library}/{run.barcode}")
        self._libraries[run.barcode] = (library, run.library)
        by_inside = {split_copy(record["copy"])[2]: record for record in run.records}
        entries = [IndexEntry(inside, "file", int(record.get("size") or 0),
                              epoch(record.get("mtime")) or 0.0, 0o644, 0, 0,
                              int(record["position"]), int(record["position"]), 0,
                              checksum=record.get("checksum"), algorithm=record.get("algorithm"))
                   for inside, record in by_inside.items() if record.get("position") is not None]
        problems, changes = [], []
        for record in run.records:
            if record.get("position") is None:
                problems.append(f"{record['file']}: its copy {record['copy']} has no recorded "
                                "position on the cartridge")
        with cartridge_in_drive(library, run.barcode, unload_after=False) as (_, device):
            record_size = load_volume(device).label.record_size
            for entry, reader in open_in_order(device, entries, record_size):
                context.checkpoint()
                record = by_inside[entry.path]
                try:
                    change = self._restore_one(record, entry, reader, context)
                except (StorageError, OSError) as error:
                    if isinstance(error, TapeError):
                        raise
                    problems.append(f"{record['file']}: {error}")
                    continue
                if isinstance(change, str):
                    problems.append(change)
                elif change is not None:
                    changes.append(change)
        return ItemResult("done", size=item.size, warning=bool(problems),
                          message="; ".join(problems) or None, changes=changes)

    def _restore_one(self, record: dict, entry: IndexEntry, reader,
                     context: RunContext) -> CatalogChange | str | None:
        backend = self.destination.backend
        wanted = join(self.destination.path, self.landing(record["file"]))
        parent = posixpath.dirname(wanted)
        if parent:
            backend.makedirs(parent)
        target = wanted
        policy = self.execution.conflict_resolution
        existing = backend.stat(target)
        if existing is not None and self._already_there(record, existing):
            return None
        if existing is not None:
            if policy == "ignore":
                return None
            if policy == "rename":
                attempt = 1
                while backend.stat(renamed_candidate(target, attempt)) is not None:
                    attempt += 1
                target = renamed_candidate(target, attempt)
        algorithm = record.get("algorithm") or DEFAULT_ALGORITHM
        hasher = new_hasher(algorithm)
        writer = backend.begin_write(target)
        try:
            while chunk := reader.read(self.execution.chunk_size):
                context.checkpoint()
                hasher.update(chunk)
                writer.write(chunk)
                context.add_bytes(len(chunk))
            if record.get("checksum") and hasher.hexdigest() != record["checksum"]:
                writer.abort()
                return (f"{record['file']}: its copy {record['copy']} reads with checksum "
                        f"{hasher.hexdigest()}, not the recorded {record['checksum']}: the "
                        "copy on tape is damaged; nothing written")
            writer.commit(replace=policy == "overwrite")
        except BaseException:
            writer.abort()
            raise
        mtime = epoch(record.get("mtime"))
        if mtime is not None:
            backend.set_times(target, mtime, mtime)
        written = backend.stat(target)
        return CatalogChange(
            "written", namespace_path(self.destination.storage_name, target),
            copy_of=self._copy_of(record),
            entry=None if written is None else {
                "type": written.type, "size": written.size, "mode": written.mode,
                "uid": written.uid, "gid": written.gid, "mtime": written.mtime,
                "atime": written.atime, "ctime": written.ctime},
            checksum=hasher.hexdigest(), algorithm=algorithm)

    def _already_there(self, record: dict, existing) -> bool:
        """Whether what the target holds makes reading the copy needless."""
        return False

    def _copy_of(self, record: dict) -> str | None:
        """The catalogued file the written one is a copy of (a restore: none)."""
        return None

    def finish(self, context: RunContext) -> list:
        return put_away(self.execution.options, {
            barcode: (library, f"/{name}/{barcode}")
            for barcode, (library, name) in self._libraries.items()}, context) \
            + super().finish(context)
