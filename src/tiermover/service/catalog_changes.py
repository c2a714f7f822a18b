"""Applying what nodes report (`tiermover.workflows.base.CatalogChange`) to the catalog,
one report batch at a time (the entries and places they name: `catalog_entries`; what
a scan saw: `catalog_seen`).

A scan reports thousands of entries per request, so nothing here works row by row:
paths are resolved to storages once per name, missing entries (and their folders) are
inserted a folder depth at a time, attributes are updated by primary key in
executemany batches, and copies are upserted on their location.

Outcomes per path are returned so that the execution's report (its files, and its log
with option full_report) can say what happened to each file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from tiermover.db.base import utcnow
from tiermover.db.bulk import chunks, insert_rows, update_rows, upsert, upsert_rows
from tiermover.db.models import (
    BackupSetFile, CatalogFile, ExecutionFile, ExecutionItem, FileCopy, TaskExecution,
)
from tiermover.service.catalog_entries import (
    DATES, TAPE, Entries, Place, Places, attribute_values, under, unix_time,
)
from tiermover.service.catalog_seen import Sightings, seen_rows

BACKUP_ACTIONS = ("full_backup", "incremental_backup")
# A copy's row (see CatalogUpdate._copy_row), and what a copy written again changes.
COPY_COLUMNS = ("file_id", "storage_kind", "storage_id", "path", "file_path", "size", "mtime",
                "checksum", "algorithm", "execution_id", "creation_date", "verified_date",
                "verified_ok", "position")
COPY_COLUMNS_UPDATED = tuple(name for name in COPY_COLUMNS
                             if name not in ("storage_kind", "storage_id", "path"))


def move_backup_sets_off(session: Session, leaving) -> None:
    """Backup sets holding one of the copies `leaving` (a select of copy ids) hold the
    same version elsewhere from now on: another copy of the file with the same checksum
    (a repacked cartridge's files on their new one). Without one, the membership goes
    with the copy."""
    old = aliased(FileCopy)
    other = aliased(FileCopy)
    replacement = (select(other.id)
                   .where(other.file_id == BackupSetFile.file_id, other.id.not_in(leaving),
                          old.id == BackupSetFile.copy_id, other.checksum == old.checksum)
                   .order_by(other.id.desc()).limit(1).scalar_subquery())
    session.execute(update(BackupSetFile)
                    .where(BackupSetFile.copy_id.in_(leaving), replacement.is_not(None))
                    .values(copy_id=replacement))


@dataclass
class Handled:
    """One line of the execution's report: a catalog entry and what happened to it."""

    path: str
    outcome: str
    file_id: int | None = None
    detail: str = ""


@dataclass
class Batch:
    """The changes of one report, sorted by what they do."""

    written: list[tuple[dict, str]] = field(default_factory=list)  # (change, item outcome)
    seen: list[tuple] = field(default_factory=list)  # see catalog_seen.seen_rows
    removed: list[dict] = field(default_factory=list)
    verified: list[dict] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)
    swept: list[dict] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.written or self.seen or self.removed or self.verified or self.held
                    or self.swept)


def _item_changes(item: dict) -> list[dict]:
    changes = list(item.get("changes") or ())
    if not changes and item.get("destination") and item.get("entry"):
        # A node reporting in the older form: one written path.
        changes.append({"op": "written", "path": item["destination"], "entry": item["entry"],
                        "checksum": item.get("checksum")})
    return changes


def sort_changes(items: Iterable[dict]) -> Batch:
    batch = Batch()
    for item in items:
        batch.seen += seen_rows(item)
        for change in _item_changes(item):
            op = change.get("op")
            if op == "written" and change.get("entry"):
                batch.written.append((change, item.get("outcome", "done")))
            elif op in ("removed", "verified", "held", "swept"):
                getattr(batch, op).append(change)
    return batch


class CatalogUpdate:
    """Applies one batch of changes for one execution."""

    def __init__(self, session: Session, execution: TaskExecution, action: str,
                 full_report: bool):
        self.session = session
        self.execution = execution
        self.action = action
        self.full_report = full_report
        self.places = Places(session)
        self.entries = Entries(session)
        self.handled: list[Handled] = []
        # The execution's files: file id -> its last outcome in this batch.
        self.files: dict[int, str] = {}
        self._collected = 0  # handled lines already in `files`
        self.now = utcnow()

    def apply(self, batch: Batch) -> list[Handled]:
        # Order matters within a batch: a move writes, verifies, then removes.
        self._write(batch.written)
        self._see(batch.seen)
        self._verify(batch.verified)
        self._hold(batch.held)
        self._remove(batch.removed)
        for change in batch.swept:
            self._sweep(change)
        self._record_execution_files()
        return self.handled

    # --- written: a path now holds data, maybe as a copy of another -------------------

    def _write(self, written: list[tuple[dict, str]]) -> None:
        located = []
        for change, outcome in written:
            target = self.places.locate(change["path"])
            if target is None:
                continue
            source = self.places.locate(change.get("copy_of"))
            if source is not None and source.kind == TAPE:
                source = None  # read back from a tape (a restore): no catalog entry there
            if target.kind == TAPE and source is None:
                continue  # a copy on a tape is only a FileCopy of its source
            located.append((change, outcome, target, source))
        if not located:
            return
        # What each entry holds once the batch is applied: the columns of every change
        # naming it, merged in the order of the changes (a later one wins). A new entry is
        # inserted holding them; a catalogued one is updated unless it holds them already
        # (a source copied again, unchanged).
        merged: dict[tuple, tuple[Place, dict]] = {}

        def hold(place: Place, row: dict) -> None:
            found = merged.get(place.key)
            if found is None:
                merged[place.key] = (place, row)
            else:
                found[1].update(row)

        copies = []  # (source, target, the target's values, the source's values, change)
        lines = []  # (path, outcome, the place whose entry it is, detail)
        for change, outcome, target, source in located:
            values = attribute_values(change["entry"], unix_time)
            digest = {"checksum": change.get("checksum"), "algorithm": change.get("algorithm")}
            read = change.get("source_entry")
            # The source holds what was copied; its attributes come along when the node
            # reported them (a copy's own dates may differ from its source's).
            source_values = attribute_values(read, unix_time) if read else values
            if target.kind != TAPE:
                hold(target, {**values, "in_cache": 1, "offline": 0, **digest})
            if source is not None and values["type"] == "file":
                hold(source, {**digest, **source_values} if read else digest)
                copies.append((source, target, values, source_values, change))
            if target.kind == TAPE:
                if values["type"] == "file":
                    lines.append((target.namespace_path, outcome, source,
                                  f"copy of {source.namespace_path}"))
                continue
            lines.append((target.namespace_path, outcome, target,
                          f"copy of {source.namespace_path}" if source else ""))
        entries = self.entries
        entries.ensure([place for place, _ in merged.values()],
                       {key: row for key, (_, row) in merged.items()})
        self._update_entries([{"id": entries[place].id, **row}
                              for key, (place, row) in merged.items()
                              if not entries.holds(place, row)])
        self.handled += [Handled(path, outcome, entries[place].id, detail)
                         for path, outcome, place, detail in lines]
        if copies:
            rows = [self._copy_row(*copy) for copy in copies]
            upsert_rows(self.session, FileCopy.__table__, COPY_COLUMNS, rows,
                        key=("storage_kind", "storage_id", "path"), update=COPY_COLUMNS_UPDATED,
                        unix_times=("mtime",))
            if self.action in BACKUP_ACTIONS:
                self._add_to_backup_set([row[:4] for row in rows])

    def _copy_row(self, source: Place, target: Place, values: dict, source_values: dict,
                  change: dict) -> tuple:
        """A FileCopy's row, in COPY_COLUMNS order."""
        return (self.entries[source].id, target.kind, target.storage_id, target.relative,
                target.namespace_path, values["size"], source_values["modification_date"],
                change.get("checksum"), change.get("algorithm"), self.execution.id, self.now,
                None, None,
                # On a tape: where the data starts on the cartridge.
                (change["entry"] or {}).get("tape_offset"))

    def _update_entries(self, rows: list[dict]) -> None:
        # Rows with the same columns go together, as tuples straight to the driver.
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            groups.setdefault(tuple(name for name in row if name != "id"), []).append(row)
        for columns, group in groups.items():
            update_rows(self.session, CatalogFile.__table__, columns,
                        [(*(row[name] for name in columns), row["id"]) for row in group],
                        unix_times=DATES)

    # --- backup sets ------------------------------------------------------------------

    def _add_to_backup_set(self, copies: list[tuple[int, str, int, str]]) -> None:
        ids = {}
        for kind, storage_id in {(kind, storage_id) for _, kind, storage_id, _ in copies}:
            paths = [path for _, k, s, path in copies if (k, s) == (kind, storage_id)]
            for batch in chunks(paths):
                for row in self.session.execute(
                        select(FileCopy.id, FileCopy.path).where(
                            FileCopy.storage_kind == kind, FileCopy.storage_id == storage_id,
                            FileCopy.path.in_(list(batch)))):
                    ids[(kind, storage_id, row.path)] = row.id
        upsert(self.session, BackupSetFile,
               [{"execution_id": self.execution.id, "file_id": file_id,
                 "copy_id": ids[(kind, storage_id, path)]}
                for file_id, kind, storage_id, path in copies if (kind, storage_id, path) in ids],
               key=("execution_id", "file_id"), update=("copy_id",))

    def _hold(self, held: list[dict]) -> None:
        """Unchanged files of an incremental backup: the set holds them through the copy
        the task's previous set holds."""
        places = [place for place in (self.places.locate(c["path"]) for c in held) if place]
        if not places:
            return
        self.entries.ensure(places)
        file_ids = [self.entries[place].id for place in places]
        earlier = (select(TaskExecution.id)
                   .where(TaskExecution.task_id == self.execution.task_id,
                          TaskExecution.id != self.execution.id))
        rows = []
        for batch in chunks(file_ids):
            newest: dict[int, tuple[str, int]] = {}
            for row in self.session.execute(
                    select(BackupSetFile.file_id, BackupSetFile.copy_id,
                           BackupSetFile.execution_id)
                    .where(BackupSetFile.file_id.in_(list(batch)),
                           BackupSetFile.execution_id.in_(earlier))):
                if row.file_id not in newest or row.execution_id > newest[row.file_id][0]:
                    newest[row.file_id] = (row.execution_id, row.copy_id)
            rows += [{"execution_id": self.execution.id, "file_id": file_id, "copy_id": copy_id}
                     for file_id, (_, copy_id) in newest.items()]
        upsert(self.session, BackupSetFile, rows, key=("execution_id", "file_id"),
               update=("copy_id",))
        if self.full_report:
            self.handled += [Handled(place.namespace_path, "unchanged") for place in places]

    # --- seen: a scan found the path --------------------------------------------------

    def _see(self, seen: list[tuple]) -> None:
        if not seen:
            return
        self._collect_files()
        sightings = Sightings(self.session, self.execution.id, self.places, self.entries)
        for storage, relative, outcome, file_id in sightings.apply(seen):
            if outcome != "unchanged" or self.full_report:
                # Only a full report logs each one: the execution's files are recorded
                # from the ids, without a line object per file of a scan.
                self.files[file_id] = outcome
                if self.full_report:
                    self.handled.append(Handled(storage.namespace_path(relative), outcome,
                                                file_id))
        self._collected = len(self.handled)

    # --- verified: a copy was re-read --------------------------------------------------

    def _verify(self, verified: list[dict]) -> None:
        for change in verified:
            place = self.places.locate(change["path"])
            if place is None:
                continue
            values = {"verified_date": self.now, "verified_ok": bool(change.get("ok", True))}
            self.session.execute(
                update(FileCopy)
                .where(FileCopy.storage_kind == place.kind,
                       FileCopy.storage_id == place.storage_id, FileCopy.path == place.relative)
                .values(**values))
            if self.full_report:
                self.handled.append(Handled(place.namespace_path,
                                            "verified" if values["verified_ok"] else "mismatch"))

    # --- removed: the path is gone ----------------------------------------------------

    def _remove(self, removed: list[dict]) -> None:
        for change in removed:
            place = self.places.locate(change["path"])
            if place is None:
                continue
            self._forget_copies_at(place)
            here = and_(CatalogFile.storage_kind == place.kind,
                        CatalogFile.storage_id == place.storage_id)
            if change.get("keep_offline"):
                # The data lives on in its copies: the entry stays, offline.
                self.session.execute(update(CatalogFile)
                                     .where(here, under(CatalogFile.path, place.relative))
                                     .values(in_cache=0, offline=1))
                outcome = "offline"
            else:
                self._delete_entries(and_(here, under(CatalogFile.path, place.relative)))
                outcome = "removed"
            self.entries.by_key.pop(place.key, None)
            self.handled.append(Handled(place.namespace_path, outcome))

    def _forget_copies_at(self, place: Place) -> None:
        here = and_(FileCopy.storage_kind == place.kind, FileCopy.storage_id == place.storage_id,
                    under(FileCopy.path, place.relative))
        move_backup_sets_off(self.session, select(FileCopy.id).where(here))
        self.session.execute(delete(FileCopy).where(here))

    def _delete_entries(self, condition) -> None:
        self._delete_ids(list(self.session.scalars(select(CatalogFile.id).where(condition)
                                                   .order_by(CatalogFile.path.desc()))))

    def _delete_ids(self, ids: list[int]) -> None:
        # Deepest first when ordered so: a folder's entries go before it.
        for batch in chunks(ids):
            self.session.execute(delete(CatalogFile).where(CatalogFile.id.in_(list(batch))))

    # --- swept: a scan is complete; what it did not see is gone ------------------------

    def _sweep(self, change: dict) -> None:
        place = self.places.locate(change["path"])
        if place is None:
            return
        failed = self.session.scalar(select(ExecutionItem.id).where(
            ExecutionItem.execution_id == self.execution.id,
            ExecutionItem.outcome == "failed").limit(1))
        if failed is not None:
            self.handled.append(Handled(place.namespace_path, "kept", detail=(
                "some entries could not be read, so nothing is marked deleted this time")))
            return
        unseen = and_(CatalogFile.storage_kind == place.kind,
                      CatalogFile.storage_id == place.storage_id,
                      under(CatalogFile.path, place.relative), CatalogFile.path != place.relative,
                      or_(CatalogFile.seen_by.is_(None), CatalogFile.seen_by != self.execution.id))
        has_copy = select(FileCopy.id).where(FileCopy.file_id == CatalogFile.id).exists()
        gone = list(self.session.execute(
            select(CatalogFile.id, CatalogFile.path, CatalogFile.file_path, CatalogFile.offline,
                   has_copy.label("has_copy"))
            .where(unseen).order_by(CatalogFile.path)))
        # A file with a copy stays, offline, and so do the folders leading to it.
        holding = {row.path for row in gone if row.has_copy}
        for path in list(holding):
            while "/" in path:
                path = path.rpartition("/")[0]
                holding.add(path)
        keep = [row for row in gone if row.path in holding]
        forget = [row.id for row in gone if row.path not in holding]
        for batch in chunks([row.id for row in keep]):
            self.session.execute(update(CatalogFile).where(CatalogFile.id.in_(list(batch)))
                                 .values(in_cache=0, offline=1))
        self._delete_ids(forget[::-1])
        for row in gone:
            if row.path in holding and row.offline:
                continue  # already known to live only in its copies
            kept = row.path in holding
            self.handled.append(Handled(row.file_path, "offline" if kept else "deleted",
                                        row.id if kept else None))

    # --- the execution's files ---------------------------------------------------------

    def _collect_files(self) -> None:
        """The handled lines since the last call, into the execution's files (the last
        outcome of a file counts)."""
        for line in self.handled[self._collected:]:
            if line.file_id is not None and line.outcome not in ("deleted", "removed"):
                self.files[line.file_id] = line.outcome
        self._collected = len(self.handled)

    def _record_execution_files(self) -> None:
        self._collect_files()
        insert_rows(self.session, ExecutionFile.__table__, ("execution_id", "file_id", "outcome"),
                    [(self.execution.id, file_id, outcome)
                     for file_id, outcome in self.files.items()])
