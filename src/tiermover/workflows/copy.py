"""copy: files from the sources into the destination folder, like `cp -r SRC DST/`.

A folder source lands inside the destination keeping its name; a file source lands as
`<destination>/<name>` (or `rename_to`). Each file is written under a temporary name,
hashed in the same pass as the read, and moved into place only once complete (and, with
fsync, durable). Small files take their names in groups (PendingResult): one wait for
the disk per group instead of one per file.
"""

from __future__ import annotations

import posixpath
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from tiermover.storage.base import (
    AtomicWrite, Entry, StorageError, join, join_under, namespace_path,
)
from tiermover.storage.checksums import DEFAULT_ALGORITHM, new_hasher
from tiermover.workflows.base import (
    CatalogChange, ItemResult, PendingResult, RunAgain, RunContext, StorageLocation, WorkItem,
    Workflow,
)
from tiermover.workflows.sources import SourceFile, selected_files, walked_folders
from tiermover.workflows.verify import read_chunks

# Destination folders recently made or seen, so that the files of one folder do not ask
# the storage for it again each (a walk lists a folder's files together).
FOLDERS_REMEMBERED = 256
# A destination folder whose subtree one listing tells (object storage) answers its
# files' conflict checks from that listing, while it holds at most this many paths.
FOLDER_LISTED_AT_MOST = 1000
# Files up to this size between two local disks keep the node's CPU busy (see
# keeps_cpu_busy); a larger one's time goes into the kernel's copies and the disk, which
# several streams overlap.
CPU_BOUND_FILE_MAX = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CopyJob:
    found: SourceFile
    target_path: str  # inside the destination backend
    # When the data must hash to a known value (a restore reading a backup copy): checked
    # before the file takes its final name.
    expected_checksum: str | None = None

    @property
    def source(self) -> StorageLocation:
        return self.found.source

    @property
    def source_path(self) -> str:
        return self.found.path

    @property
    def entry(self):
        return self.found.entry


@dataclass(frozen=True)
class Landing:
    """A file written under its temporary name, waiting to take its name with its group."""

    job: CopyJob
    target: str
    checksum: str
    writer: AtomicWrite
    replace: bool
    read: Entry  # the source's entry as it was read


def renamed_candidate(path: str, attempt: int) -> str:
    """`dir/name.ext` -> `dir/name (1).ext` (conflict_resolution=rename keeps both)."""
    directory, name = posixpath.split(path)
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    candidate = f"{stem} ({attempt}){dot}{ext}"
    return join(directory, candidate) if directory else candidate


class CopyWorkflow(Workflow):
    # Whether the plan needs each file's dates before the file is copied. A copy takes
    # them from the read itself (Backend.entry_read), so on object storage its walk
    # saves a request per object.
    plan_needs_dates = False
    # Whether small files may take their names in groups. Not for a workflow whose step
    # goes on with the file once it has its name (move re-reads it, restore dates it).
    commits_in_groups = True

    def __init__(self, plan) -> None:
        super().__init__(plan)
        # folder -> what it held when first seen (Backend.listed_paths), or None
        self._folders_made: OrderedDict[str, frozenset[str] | None] = OrderedDict()
        self._folders_lock = threading.Lock()
        self._folders_making: dict[str, threading.Event] = {}  # folder -> made when set
        # Final names chosen by a step and not yet taken (written under a temporary
        # name, or waiting in a group): a second file bound for the same name sees it
        # as existing (two sources with the same name, conflict_resolution rename).
        self._reserved: set[str] = set()
        self._reserved_lock = threading.Lock()

    @property
    def destination(self) -> StorageLocation:
        return self.execution.destinations[0]

    @cached_property
    def algorithm(self) -> str:
        return self.execution.options.get("file_checksum") or DEFAULT_ALGORITHM

    def _make_folder(self, folder: str) -> frozenset[str] | None:
        """Makes the destination folder if needed (unless made moments ago). Returns the
        paths below it when it was first seen, where that is known without a `stat` per
        path: none when this copy created it, or what one listing tells (object
        storage, see Backend.listed_paths); else None."""
        if not folder:
            return None
        while True:
            with self._folders_lock:
                if folder in self._folders_made:
                    self._folders_made.move_to_end(folder)
                    return self._folders_made[folder]
                # One stream makes a folder; the others wait for what it found (a stream
                # that found the folder just made by another would take it for one that
                # was there before, and check each of its files).
                making = self._folders_making.get(folder)
                if making is None:
                    self._folders_making[folder] = threading.Event()
                    break
            making.wait()  # then cached, or it failed: this stream tries in turn
        try:
            backend = self.destination.backend
            created = backend.makedirs(folder)
            listed = (frozenset() if created
                      else backend.listed_paths(folder, FOLDER_LISTED_AT_MOST))
            with self._folders_lock:
                self._folders_made[folder] = listed
                if len(self._folders_made) > FOLDERS_REMEMBERED:
                    self._folders_made.popitem(last=False)
        finally:
            with self._folders_lock:
                self._folders_making.pop(folder).set()
        return listed

    @cached_property
    def flag(self) -> dict[str, bool]:
        return {name: self.execution.options.get(name, "").lower() in ("1", "true")
                for name in ("reset_file_date", "reset_folder_date")}

    def plan(self) -> Iterator[WorkItem]:
        folder = join(self.destination.path)
        for found in selected_files(self.execution, metadata=self.plan_needs_dates):
            yield WorkItem(key=found.key, size=found.entry.size,
                           payload=CopyJob(found, join_under(folder, found.landing)))

    def run(self, item: WorkItem, context: RunContext) -> ItemResult | PendingResult:
        return self.copy(item.payload, context)[0]

    def may_keep_cpu_busy(self) -> bool:
        return self._local_destination and any(
            source.backend.served_locally for source in self.execution.sources)

    @cached_property
    def _local_destination(self) -> bool:
        return bool(self.execution.destinations) and self.destination.backend.served_locally

    def keeps_cpu_busy(self, item: WorkItem) -> bool:
        job = item.payload
        # (The job's own source: a restore reads each file from wherever a copy of it is.)
        return (item.size <= CPU_BOUND_FILE_MAX and self._local_destination
                and isinstance(job, CopyJob) and job.source.backend.served_locally)

    def copy(self, job: CopyJob, context: RunContext
             ) -> tuple[ItemResult | PendingResult, Entry | None]:
        """The item's result (pending while the file waits for its group, see
        commits_in_groups), and the source's entry as it was read (None when it was not:
        a folder, a conflict skipped unread)."""
        backend = self.destination.backend
        if job.entry.type == "folder":
            self._make_folder(job.target_path)
            return self._written("done", job, job.target_path, None), None
        listed = self._make_folder(job.target_path.rpartition("/")[0])
        if listed is not None and job.target_path not in listed:
            # Nothing there when the folder was made or listed. Unless the policy is
            # overwrite (which replaces whatever is there), something written there since
            # is found when the copy takes its name (commit without replace): then the
            # conflict is settled as if it had been there from the start (here, or by
            # running the item again when its group takes the names, see settle).
            try:
                return self._copy_to(job, None, context)
            except FileExistsError:
                self._contested(job.target_path)
        try:
            return self._copy_to(job, backend.stat(job.target_path), context)
        except FileExistsError as error:
            raise StorageError(self._appeared(job.target_path)) from error

    def _contested(self, target: str) -> None:
        """Another program wrote in `target`'s folder since it was made or listed: what
        was known of it no longer holds, its files are looked for one by one."""
        folder = target.rpartition("/")[0]
        with self._folders_lock:
            if folder in self._folders_made:
                self._folders_made[folder] = None

    def _appeared(self, target: str) -> str:
        """Why a file fails whose name another program took after its conflict check."""
        return (f"{self._namespace(target)} appeared while the file was copied (another "
                "program wrote it): it was kept, nothing was written over it; run the "
                f"task again to apply conflict_resolution "
                f"{self.execution.conflict_resolution}")

    def _copy_to(self, job: CopyJob, existing: Entry | None, context: RunContext
                 ) -> tuple[ItemResult | PendingResult, Entry | None]:
        """Copies a file, `existing` being what its target holds (None: nothing)."""
        backend = self.destination.backend
        target = job.target_path
        policy = self.execution.conflict_resolution
        if existing is not None and self.execution.resumed:
            same = self._same_content(job, target)
            if same is not None:
                # Written by an earlier attempt whose report was lost (e.g. its node was
                # killed): already done, not a conflict.
                digest, read = same
                return self._written("done", job, target, digest, source=read), read
        taken = existing is not None or self._is_reserved(target)
        if taken and policy == "ignore":
            same = self._same_content(job, target) if existing is not None else None
            message = (f"{self._namespace(target)} exists" +
                       ("" if same else " with different content") + ": skipped (ignore)")
            return (ItemResult("skipped", message=message, warning=same is None),
                    same[1] if same else None)
        if taken and policy == "rename":
            attempt = 1
            while (self._is_reserved(renamed_candidate(target, attempt))
                   or backend.stat(renamed_candidate(target, attempt)) is not None):
                attempt += 1
            target = renamed_candidate(target, attempt)
        with self._reserved_lock:
            self._reserved.add(target)
        try:
            checksum, writer, read = self._write_temporary(job, target, context)
        except BaseException:
            self._release(target)
            raise
        landing = Landing(job, target, checksum, writer, replace=policy == "overwrite",
                          read=read)
        if self.commits_in_groups and writer.commits_in_group:
            return PendingResult(landing, size=job.entry.size), read
        try:
            writer.commit(replace=landing.replace)
        except BaseException:
            writer.abort()
            raise
        finally:
            self._release(target)
        return self._landed(landing), read

    def settle(self, pending: list[PendingResult]) -> list[ItemResult | Exception]:
        landings: list[Landing] = [p.state for p in pending]
        try:
            failures = self.destination.backend.commit_group(
                [(landing.writer, landing.replace) for landing in landings])
        finally:
            for landing in landings:
                self._release(landing.target)
        results: list[ItemResult | Exception] = []
        for landing, failure in zip(landings, failures, strict=True):
            if isinstance(failure, FileExistsError):
                # This one runs again: then its conflict is settled as if the file had
                # been there first.
                self._contested(landing.target)
                failure = RunAgain(self._appeared(landing.target))
            if failure is not None:
                results.append(failure)
                continue
            try:
                results.append(self._landed(landing))
            except (StorageError, OSError) as error:
                results.append(error)
        return results

    def discard(self, pending: list[PendingResult]) -> None:
        for landing in (p.state for p in pending):
            try:
                landing.writer.abort()
            except OSError:
                pass  # a temporary file left: the next writer of that name replaces it
            self._release(landing.target)

    def _landed(self, landing: Landing) -> ItemResult:
        """The result of a file once it has its final name."""
        job, target, read = landing.job, landing.target, landing.read
        if self.flag["reset_file_date"]:
            self.destination.backend.set_times(target, read.atime, read.mtime)
        outcome = "renamed" if target != job.target_path else "done"
        message = (f"{self._namespace(job.target_path)} exists: written as "
                   f"{self._namespace(target)}") if outcome == "renamed" else None
        return self._written(outcome, job, target, landing.checksum, message, source=read,
                             attributes=landing.writer.landed_attributes())

    def _is_reserved(self, target: str) -> bool:
        with self._reserved_lock:
            return target in self._reserved

    def _release(self, target: str) -> None:
        with self._reserved_lock:
            self._reserved.discard(target)

    def finish(self, context: RunContext) -> list[CatalogChange]:
        if not self.flag["reset_folder_date"]:
            return []
        # Only now: writing a file into a folder would move the folder's date again.
        backend = self.destination.backend
        for found in walked_folders(self.execution):
            context.checkpoint()
            target = join(self.destination.path, found.landing)
            if backend.stat(target) is not None:  # filters may have left it out
                backend.set_times(target, found.entry.atime, found.entry.mtime)
        return []

    def _written(self, outcome: str, job: CopyJob, target: str, checksum: str | None,
                 message: str | None = None, source: Entry | None = None,
                 attributes: dict | None = None) -> ItemResult:
        """`source`: the source's entry as it was read, when it was (the walk's entry may
        lack its dates, see plan_needs_dates); `attributes`: the target's, when known
        (else the storage is asked)."""
        destination = self._namespace(target)
        change = CatalogChange(
            "written", destination, entry=attributes or self._attributes(target),
            checksum=checksum,
            algorithm=self.algorithm if checksum else None,
            copy_of=job.found.namespace_path,
            source_entry=(source or job.entry).attributes())
        return ItemResult(outcome, size=job.entry.size, checksum=checksum, message=message,
                          destination=destination, changes=[change])

    def _attributes(self, path: str) -> dict | None:
        entry = self.destination.backend.stat(path)
        return None if entry is None else entry.attributes()

    def _namespace(self, path: str) -> str:
        return namespace_path(self.destination.storage_name, path)

    def _write_temporary(self, job: CopyJob, target: str,
                         context: RunContext) -> tuple[str, AtomicWrite, Entry]:
        """Writes the file under its temporary name: its checksum, the write to commit
        (the caller's to commit or abort), and the source's entry as it was read."""
        hasher = new_hasher(self.algorithm)
        # The source is opened first: a source that cannot be read leaves no temporary
        # file behind, and a temporary file means the copy is under way.
        reader = job.source.backend.open_read(job.source_path)
        try:
            writer = self.destination.backend.begin_write(target)
        except BaseException:
            reader.close()
            raise
        try:
            with reader:
                copied = 0
                for chunk in read_chunks(reader, self.execution.chunk_size, job.entry.size):
                    context.checkpoint()
                    hasher.update(chunk)
                    writer.write(chunk)
                    copied += len(chunk)
                    context.add_bytes(len(chunk))
                after = job.source.backend.entry_read(reader, job.source_path)
            if after is None:
                raise StorageError(f"{job.found.namespace_path} vanished while it was copied; "
                                   "nothing was written")
            if after.size != copied or not job.entry.same_version(after):
                raise StorageError(
                    f"{job.found.namespace_path} changed while it was copied; nothing was "
                    "written, it will be copied again next run")
            if job.expected_checksum and hasher.hexdigest() != job.expected_checksum:
                raise StorageError(
                    f"{job.found.namespace_path} reads with checksum {hasher.hexdigest()}, not the "
                    f"recorded {job.expected_checksum}: the stored copy is damaged; nothing written")
        except BaseException:
            writer.abort()
            raise
        return hasher.hexdigest(), writer, after

    def _same_content(self, job: CopyJob, target: str) -> tuple[str, Entry] | None:
        """The checksum both files share and the source's entry as it was read, or None
        when they differ."""
        existing = self.destination.backend.stat(target)
        if existing is None or existing.size != job.entry.size or existing.type != job.entry.type:
            return None
        digests = []
        read = None
        for is_source, backend, path in ((True, job.source.backend, job.source_path),
                                         (False, self.destination.backend, target)):
            hasher = new_hasher(self.algorithm)
            with backend.open_read(path) as reader:
                for chunk in read_chunks(reader, self.execution.chunk_size):
                    hasher.update(chunk)
                if is_source:
                    # The source as read (never the destination's entry in its place).
                    read = backend.entry_read(reader, path)
            digests.append(hasher.hexdigest())
        if digests[0] != digests[1] or read is None:
            return None
        return digests[0], read
