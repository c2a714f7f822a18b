"""rehydratation: repack cartridges that hold mostly dead data onto fresh ones.

A file on a cartridge is live while the catalog has its copy there (the `tape_copies`
records: the copy's path and the byte where it starts); everything else its on-tape index
lists is dead (erased files, older versions). A cartridge is repacked when its live bytes
are under `rehydration_usage_threshold` percent of the data it holds, or when at least
`rehydration_deleted_files_threshold` percent of its files are dead (no option: under
half live). Its live files are read in on-tape order and written, in sessions, onto fresh
cartridges taken from the scratch pool (filled in order, as any tape destination). Only
once those sessions are closed does the item report the new copies, the old ones gone and
the cartridge recycled to scratch (event "recycled"): a repack cut short loses nothing.
"""

from __future__ import annotations

from tiermover.storage.base import StorageError
from tiermover.storage.tape.driver import TapeError
from tiermover.storage.tape.drives import cartridge_in_drive
from tiermover.storage.tape.format import BlankCartridge, CartridgeFull
from tiermover.storage.tape.reader import open_in_order, read_catalog
from tiermover.workflows.base import CatalogChange, ItemResult, RunContext, WorkItem
from tiermover.workflows.tape_archive import TapeDestination, open_session
from tiermover.workflows.tape_drives import CartridgeWorkflow, put_away
from tiermover.workflows.tape_restore import split_copy

DEFAULT_USAGE_THRESHOLD = 50.0


def percentage(value) -> float | None:
    try:
        return float(str(value).strip().rstrip("%")) if value not in (None, "") else None
    except ValueError:
        return None


class RehydratationWorkflow(CartridgeWorkflow):
    item_prefix = "repack"  # one item at a time: a source and a fresh cartridge in two drives

    def _live(self) -> dict[str, dict[int, dict]]:
        """barcode -> position -> its live copy's record."""
        if getattr(self, "_live_copies", None) is None:
            if self.execution.catalog is None:
                raise StorageError("rehydratation needs the catalog, which this node cannot read")
            live: dict[str, dict[int, dict]] = {}
            for record in self.execution.catalog("tape_copies"):
                _, barcode, _ = split_copy(record["copy"])
                if record.get("position") is not None:
                    live.setdefault(barcode, {})[int(record["position"])] = record
            self._live_copies = live
        return self._live_copies

    def due(self, live_bytes: int, data_bytes: int, dead: int, files: int) -> str | None:
        """Why the cartridge is repacked, or None."""
        options = self.execution.options
        usage = percentage(options.get("rehydration_usage_threshold"))
        deleted = percentage(options.get("rehydration_deleted_files_threshold"))
        if usage is None and deleted is None:
            usage = DEFAULT_USAGE_THRESHOLD
        used = 100.0 * live_bytes / data_bytes if data_bytes else 100.0
        gone = 100.0 * dead / files if files else 0.0
        if usage is not None and used < usage:
            return f"{used:.0f}% of its data is live (threshold {usage:g}%)"
        if deleted is not None and files and gone >= deleted:
            return f"{gone:.0f}% of its files are deleted (threshold {deleted:g}%)"
        return None

    def run(self, item: WorkItem, context: RunContext) -> ItemResult:
        location = item.payload
        library, barcode = location.backend, location.path
        live = self._live().get(barcode, {})
        with cartridge_in_drive(library, barcode) as (_, device):
            try:
                volume, entries = read_catalog(device)
            except BlankCartridge:
                return ItemResult("skipped", message=f"{location.namespace_path}: blank")
            files = [e for e in entries if e.type == "file"]
            keep = [e for e in files if e.offset in live]
            data = sum(e.size for e in files)
            reason = self.due(sum(e.size for e in keep), data, len(files) - len(keep),
                              len(files))
            if reason is None or not files:
                return ItemResult("skipped", message=f"{location.namespace_path}: kept "
                                  f"({len(keep)} of {len(files)} files live)")
            changes = self._repack(device, volume.label.record_size, keep, live, location,
                                   context)
        changes.append(CatalogChange("tape", location.namespace_path,
                                     entry={"event": "recycled"}))
        return ItemResult("done", size=sum(e.size for e in keep), changes=changes, message=(
            f"{location.namespace_path}: repacked, {reason}: {len(keep)} live files moved "
            "to fresh cartridges; it goes back to scratch"))

    def _repack(self, source, record_size: int, keep, live: dict[int, dict], location,
                context: RunContext) -> list[CatalogChange]:
        target = self._target()
        changes: list[CatalogChange] = []
        pending = iter(open_in_order(source, keep, record_size))
        current = next(pending, None)
        while current is not None:
            barcode, fresh = target.current()
            if fresh:
                changes.append(CatalogChange("tape", target.namespace(barcode), entry={
                    "event": "drawn", "pool_id": target.pool_id}))
            written = []
            target.used.add(barcode)
            with cartridge_in_drive(target.library, barcode) as (_, device):
                session = open_session(device, keep[0].algorithm or self.algorithm(), fresh)
                while current is not None:
                    entry, reader = current
                    context.checkpoint()
                    try:
                        out = session.begin_file(entry.path, entry.size, entry.mtime,
                                                 entry.mode, entry.uid, entry.gid,
                                                 atime=entry.atime)
                    except CartridgeFull:
                        break
                    while chunk := reader.read(self.execution.chunk_size):
                        out.write(chunk)
                        context.add_bytes(len(chunk))
                    new = out.commit()
                    if entry.checksum and entry.algorithm == new.algorithm and \
                            new.checksum != entry.checksum:
                        raise TapeError(f"{location.namespace_path}/{entry.path} reads with "
                                        f"checksum {new.checksum}, not {entry.checksum}: the "
                                        "cartridge is damaged; nothing repacked")
                    written.append((entry, new))
                    current = next(pending, None)
                session.close()
            if current is not None:
                target.full.add(barcode)
            for old, new in written:
                record = live[old.offset]
                changes.append(CatalogChange(
                    "written", target.namespace(barcode, new.path),
                    entry={"type": "file", "size": new.size, "mode": new.mode, "uid": new.uid,
                           "gid": new.gid, "mtime": new.mtime, "atime": new.atime,
                           "tape_offset": new.offset, "tape_session": new.session},
                    checksum=new.checksum, algorithm=new.algorithm, copy_of=record["file"]))
                changes.append(CatalogChange("removed", record["copy"]))
        return changes

    def algorithm(self) -> str:
        from tiermover.storage.checksums import DEFAULT_ALGORITHM

        return self.execution.options.get("file_checksum") or DEFAULT_ALGORITHM

    def _target(self) -> TapeDestination:
        if getattr(self, "_tapes", None) is None:
            if not self.execution.destinations:
                raise StorageError("rehydratation needs a tape pool to repack into")
            self._tapes = TapeDestination(self.execution.destinations[0])
        return self._tapes

    def finish(self, context: RunContext) -> list:
        if getattr(self, "_tapes", None) is None:
            return []
        target = self._tapes
        return put_away(self.execution.options, {
            barcode: (target.library, target.namespace(barcode)) for barcode in target.used},
            context)
