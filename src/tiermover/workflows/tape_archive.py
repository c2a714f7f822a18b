"""copy, move and backups to a tape or a pool of tapes.

The files the ordinary workflow plans go onto cartridges in sessions (see
tiermover.storage.tape.writer). A work item is a batch of files: they are written into
the session of the current cartridge, which is closed before the item ends, so every
copy the item reports is on tape for sure. When the cartridge is full, its session is
closed and the next cartridge of the pool takes the rest (a file never spans two); when
the pool has none left, a scratch cartridge is taken (reported as event "drawn", so the
server moves it into the pool). Copies are reported at `/<library>/<barcode>/<path in the
archive>` with the byte where their data starts on the cartridge.

A move re-reads each file from the closed session (in on-tape order) and only then
deletes its source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tiermover.storage.base import StorageError, join
from tiermover.storage.checksums import new_hasher
from tiermover.storage.tape.driver import TapeDevice, TapeError
from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import (
    BlankCartridge, CartridgeFull, FileTooLarge, IndexEntry,
)
from tiermover.storage.tape.reader import load_volume, open_in_order
from tiermover.storage.tape.writer import SessionWriter, write_label
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.copy import CopyJob
from tiermover.workflows.move import is_container
from tiermover.workflows.tape_drives import put_away

# A batch closes its session after this many files or bytes: a pause or a lost node
# costs at most one batch, and copies reach the catalog as each batch ends.
BATCH_FILES = 500
BATCH_BYTES = 1024 ** 3


@dataclass
class Batch:
    jobs: list[CopyJob] = field(default_factory=list)
    size: int = 0


@dataclass
class Written:
    job: CopyJob
    entry: IndexEntry


def batches(items: Iterator[WorkItem]) -> Iterator[WorkItem]:
    """The planned items, files and folders grouped in batches (keys stable across runs:
    a batch is named after its first item); other items pass through alone."""
    batch, first = Batch(), None
    for item in items:
        if not isinstance(item.payload, CopyJob):
            yield item
            continue
        if first is None:
            first = item.key
        batch.jobs.append(item.payload)
        batch.size += item.size
        if len(batch.jobs) >= BATCH_FILES or batch.size >= BATCH_BYTES:
            yield WorkItem(key=f"tape:{first}", size=batch.size, payload=batch)
            batch, first = Batch(), None
    if batch.jobs:
        yield WorkItem(key=f"tape:{first}", size=batch.size, payload=batch)


class TapeDestination:
    """The cartridges an execution writes to, filled in order."""

    def __init__(self, location):
        self.location = location
        tapes = location.tapes or {}
        self.pool_id = tapes.get("pool_id")
        self.queue = list(tapes.get("barcodes") or ())
        self.scratch = list(tapes.get("scratch") or ())
        self.full: set[str] = set()
        self.used: set[str] = set()

    @property
    def library(self):
        return self.location.backend

    def current(self) -> tuple[str, bool]:
        """The cartridge to write to, and whether it was just taken from scratch."""
        for barcode in self.queue:
            if barcode not in self.full:
                return barcode, False
        if self.scratch:
            barcode = self.scratch.pop(0)
            self.queue.append(barcode)
            return barcode, True
        raise TapeError(f"no cartridge left to write to in {self.location.namespace_path}: "
                        f"{len(self.full)} full and no scratch cartridge")

    def namespace(self, barcode: str, path: str = "") -> str:
        return "/" + join(self.location.storage_name, barcode, path)


def open_session(device: TapeDevice, algorithm: str, fresh: bool) -> SessionWriter:
    """A session on the cartridge; a blank one, or one just taken from scratch (whatever
    it held is no longer needed), gets a new label first."""
    if fresh:
        write_label(device)
    try:
        return SessionWriter.open(device, algorithm)
    except BlankCartridge:
        write_label(device)
        return SessionWriter.open(device, algorithm)


class TapeArchiving:
    """Mixed into a copy-like workflow (copy, move, backups) whose destination is a tape or
    a pool of tapes: its plan decides what lands where, this writes it."""

    default_streams = 1  # one session at a time per execution
    # A file's tar header (its dates, mode, owner) is written before its data is read.
    plan_needs_dates = True
    moves = False  # a move: verify each file on tape, then delete its source
    duplicates = False  # a duplication: skip what the pool's cartridges already hold

    def _tape_target(self) -> TapeDestination:
        if getattr(self, "_tapes", None) is None:
            self._tapes = TapeDestination(self.destination)
        return self._tapes

    @property
    def flag(self) -> dict[str, bool]:
        # The tar headers keep every file's and folder's dates: nothing to reset after.
        return {"reset_file_date": False, "reset_folder_date": False}

    def plan(self) -> Iterator[WorkItem]:
        items = super().plan()
        if self.duplicates:
            items = self._not_yet_on_tapes(items)
        return batches(items)

    def _not_yet_on_tapes(self, items: Iterator[WorkItem]) -> Iterator[WorkItem]:
        """duplication: files that already have a copy (same size and date) on one of the
        destination pool's cartridges are skipped, so a scheduled run copies what is new."""
        if self.execution.catalog is None:
            yield from items
            return
        from tiermover.workflows.backup import epoch
        from tiermover.workflows.tape_restore import split_copy

        pool = set(self._tape_target().queue)
        held = {}
        for record in self.execution.catalog("copies"):
            if record.get("tape") and split_copy(record["copy"])[1] in pool:
                held[record["file"]] = (int(record.get("size") or 0), epoch(record.get("mtime")))
        for item in items:
            job = item.payload
            if isinstance(job, CopyJob) and job.entry.type == "folder":
                continue  # folders are made by the files in them (tar does the same)
            if isinstance(job, CopyJob) and job.entry.type == "file":
                size, mtime = held.get(job.found.namespace_path, (None, None))
                if size == job.entry.size and mtime is not None \
                        and abs(mtime - job.entry.mtime) < 0.001:
                    continue
            yield item

    def describe(self, item: WorkItem) -> str:
        if isinstance(item.payload, Batch):
            jobs = item.payload.jobs
            return f"{jobs[0].found.namespace_path} and {len(jobs) - 1} more" \
                if len(jobs) > 1 else jobs[0].found.namespace_path
        return super().describe(item)

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        if not isinstance(item.payload, Batch):
            return super().run(item, context)
        # One session at a time, whatever parallel_processing says: batches follow each
        # other on the cartridges in order.
        with self._session_lock:
            return self._write_batch(item, context)

    @property
    def _session_lock(self) -> threading.Lock:
        return self.__dict__.setdefault("_lock", threading.Lock())

    def _write_batch(self, item: WorkItem, context: RunContext) -> ItemResult:
        target = self._tape_target()
        pending = list(item.payload.jobs)
        changes: list[CatalogChange] = []
        problems: list[str] = []
        while pending:
            barcode, fresh = target.current()
            if fresh:
                changes.append(CatalogChange("tape", target.namespace(barcode), entry={
                    "event": "drawn", "pool_id": target.pool_id}))
            target.used.add(barcode)
            with cartridge_in_drive(target.library, barcode, unload_after=False) as (_, device):
                written, pending, full = self._session(device, pending, fresh, context,
                                                       problems)
                changes += self._report(target, barcode, written)
                if self.moves and written:
                    changes += self._verify_and_remove(device, target, barcode, written,
                                                       context, problems)
            if full:
                target.full.add(barcode)
        message = "; ".join(problems) if problems else None
        return ItemResult("done", size=item.size, message=message, warning=bool(problems),
                          changes=changes)

    def finish(self, context: RunContext) -> list[CatalogChange]:
        target = self._tape_target()
        changes = put_away(self.execution.options, {
            barcode: (target.library, target.namespace(barcode)) for barcode in target.queue
            if barcode in target.used}, context)
        # A move then removes the folders it emptied; folder dates mean nothing on tape.
        return changes + (super().finish(context) if self.moves else [])

    # --- one session ------------------------------------------------------------------

    def _session(self, device: TapeDevice, jobs: list[CopyJob], fresh: bool,
                 context: RunContext, problems: list[str]
                 ) -> tuple[list[Written], list[CopyJob], bool]:
        """Writes jobs into a session until done or the cartridge is full; what was
        written (on tape: the session is closed), what is left, and whether it is full."""
        session = open_session(device, self.algorithm, fresh)
        written: list[Written] = []
        left = list(jobs)
        full = False
        while left:
            job = left[0]
            context.checkpoint()
            name = self._archive_name(job)
            try:
                if job.entry.type == "folder":
                    session.add_folder(name, job.entry.mtime, job.entry.mode, job.entry.uid,
                                       job.entry.gid, atime=job.entry.atime)
                else:
                    entry = self._write_file(session, job, name, context)
                    if entry is not None:
                        written.append(Written(job, entry))
                    else:
                        problems.append(f"{job.found.namespace_path} changed while it was "
                                        "written: not on tape, it goes next run")
            except FileTooLarge as error:
                problems.append(str(error))
            except CartridgeFull:
                full = True
                break
            except (StorageError, OSError) as error:
                if isinstance(error, TapeError):
                    raise
                problems.append(f"{job.found.namespace_path}: {error}")
            left.pop(0)
        session.close()
        return written, left, full

    def _archive_name(self, job: CopyJob) -> str:
        return job.target_path.strip("/")

    def _write_file(self, session: SessionWriter, job: CopyJob, name: str,
                    context: RunContext) -> IndexEntry | None:
        entry = job.entry
        out = session.begin_file(name, entry.size, entry.mtime, entry.mode, entry.uid,
                                 entry.gid, atime=entry.atime)
        try:
            with job.source.backend.open_read(job.source_path) as reader:
                while True:
                    context.checkpoint()
                    chunk = reader.read(self.execution.chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
                    context.add_bytes(len(chunk))
                after = job.source.backend.entry_read(reader, job.source_path)
        except TapeError:
            raise
        except BaseException:
            out.abort()
            raise
        if after is None or not entry.same_version(after) or out.written != entry.size:
            out.abort()
            return None
        return out.commit()

    def _report(self, target: TapeDestination, barcode: str,
                written: list[Written]) -> list[CatalogChange]:
        return [CatalogChange(
            "written", target.namespace(barcode, w.entry.path),
            entry={**w.job.entry.attributes(), "tape_offset": w.entry.offset,
                   "tape_session": w.entry.session},
            checksum=w.entry.checksum, algorithm=w.entry.algorithm,
            copy_of=w.job.found.namespace_path, source_entry=w.job.entry.attributes())
            for w in written]

    # --- move: verify, then remove ----------------------------------------------------

    def _verify_and_remove(self, device: TapeDevice, target: TapeDestination, barcode: str,
                           written: list[Written], context: RunContext,
                           problems: list[str]) -> list[CatalogChange]:
        changes = []
        record_size = load_volume(device).label.record_size
        by_path = {w.entry.path: w for w in written}
        for entry, reader in open_in_order(device, [w.entry for w in written], record_size):
            hasher = new_hasher(entry.algorithm or self.algorithm)
            while chunk := reader.read(self.execution.chunk_size):
                context.checkpoint()
                hasher.update(chunk)
            job = by_path[entry.path].job
            ok = hasher.hexdigest() == entry.checksum
            path = target.namespace(barcode, entry.path)
            changes.append(CatalogChange("verified", path, checksum=hasher.hexdigest(),
                                         algorithm=entry.algorithm, ok=ok))
            if not ok:
                problems.append(f"{path}: reads back with checksum {hasher.hexdigest()}, not "
                                f"{entry.checksum}; the source {job.found.namespace_path} is kept")
                continue
            job.source.backend.remove(job.source_path)
            changes.append(CatalogChange("removed", job.found.namespace_path,
                                         keep_offline=is_container(job.source)))
        return changes


def has_tape_destination(plan) -> bool:
    return bool(plan.destinations) and plan.destinations[0].tapes is not None


def tape_variant(base: type) -> type:
    """`base` writing to tapes: TapeArchiving's steps over its plan."""
    from tiermover.workflows.move import MoveWorkflow

    from tiermover.workflows.duplication import DuplicationWorkflow

    name = "Tape" + base.__name__
    return type(name, (TapeArchiving, base), {"moves": issubclass(base, MoveWorkflow),
                                               "duplicates": issubclass(base, DuplicationWorkflow)})
