"""What a scan saw, applied to the catalog a report batch at a time.

A scan reports every entry of a tree, hundreds of thousands per minute, and the first
scan of a share adds every one of them. So this works on plain tuples, not on dicts or
ORM objects: the batch's entries are looked up once, the new ones are inserted once,
with their attributes, and their ids come back from the insert (a folder depth at a
time: a file's row names its folder's id); only entries the catalog already held are
updated. The execution's files are recorded from those ids, without reading them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.bulk import chunks, insert_rows, one_of, update_rows
from tiermover.service.catalog_entries import (
    Entries, Known, Place, Places, has_changed, statistics,
)
from tiermover.db.models import CatalogFile

# One entry a scan saw, as a node reports it (see `seen_rows`), in this order.
SEEN_FIELDS = ("path", "type", "size", "mode", "uid", "gid", "mtime", "atime", "ctime",
               "checksum", "algorithm")
ENTRY_FIELDS = SEEN_FIELDS[1:9]  # the keys of CatalogChange.entry
# Paths looked up per SELECT: one parameter each on SQLite, one array on PostgreSQL.
LOOKUP_BATCH = 5000

# Columns of a new entry, in the order `_new_row` gives them.
NEW_COLUMNS = ("name", "parent", "storage_kind", "storage_id", "primary_id", "path",
               "file_path", "type", "permission", "size", "change_date", "modification_date",
               "access_date", "uid", "gid", "in_cache", "offline", "extern", "checksum",
               "algorithm", "seen_by")
# Columns a scan refreshes on an entry the catalog held, with and without its checksum
# (left as it is when the file did not change and was not hashed).
REFRESHED = ("type", "permission", "size", "change_date", "modification_date", "access_date",
             "uid", "gid", "in_cache", "offline", "seen_by")
REFRESHED_WITH_CHECKSUM = (*REFRESHED, "checksum", "algorithm")


def seen_rows(item: dict) -> list[tuple]:
    """The entries a report item says a scan saw, as tuples in SEEN_FIELDS order.

    Current nodes send them as a table, `"seen": {"columns": [...], "rows": [[...]]}`
    (a fraction of the bytes and parsing of a dict per entry); older ones as changes of
    op "seen" with an `entry` dict each.
    """
    rows: list[tuple] = []
    table = item.get("seen")
    if isinstance(table, dict) and "path" in (table.get("columns") or ()):
        columns = list(table["columns"])
        positions = [columns.index(name) if name in columns else None for name in SEEN_FIELDS]
        for row in table.get("rows") or ():
            rows.append(tuple(row[at] if at is not None and at < len(row) else None
                              for at in positions))
    for change in item.get("changes") or ():
        if change.get("op") == "seen" and change.get("entry"):
            entry = change["entry"]
            rows.append((change.get("path"), *(entry.get(name) for name in ENTRY_FIELDS),
                         change.get("checksum"), change.get("algorithm")))
    return rows


@dataclass
class Sighting:
    """One seen entry, located, with its catalog values (NEW_COLUMNS order from `type`)."""

    place: Place
    values: tuple  # type, permission, size, change_date, modification_date, access_date, uid, gid
    checksum: str | None
    algorithm: str | None

    @property
    def depth(self) -> int:
        relative = self.place.relative
        return relative.count("/") + 1 if relative else 0


class Dates:
    """Unix times as the catalog's dates, each distinct one converted once (a tree's
    files share many)."""

    def __init__(self):
        self.known: dict[float, datetime] = {}

    def __call__(self, seconds) -> datetime | None:
        if seconds is None:
            return None
        try:
            return self.known[seconds]
        except KeyError:
            value = self.known[seconds] = datetime.fromtimestamp(float(seconds),
                                                                 tz=timezone.utc)
            return value


def _permission(mode) -> int | None:
    # Nodeum shows the mode as its octal digits: 100644.
    return int(oct(int(mode))[2:]) if mode is not None else None


class Sightings:
    """Applies one batch's seen entries for one execution.

    `apply` returns the entries' outcomes (new, changed, unchanged) with their ids, for
    the execution's files and its full report.
    """

    def __init__(self, session: Session, execution_id: str, places: Places, entries: Entries):
        self.session = session
        self.execution_id = execution_id
        self.places = places
        self.entries = entries
        self.dates = Dates()
        self.permissions: dict[int, int | None] = {}

    def apply(self, rows: list[tuple]) -> list[tuple[Place, str, int]]:
        by_storage: dict[tuple[str, int], dict[str, Sighting]] = {}
        for row in rows:
            sighting = self._sighting(row)
            if sighting is not None:
                place = sighting.place
                by_storage.setdefault((place.kind, place.storage_id), {})[place.relative] = \
                    sighting
        outcomes: list[tuple[Place, str, int]] = []
        for (kind, storage_id), sightings in by_storage.items():
            outcomes += self._apply_storage(kind, storage_id, sightings)
        return outcomes

    def _sighting(self, row: tuple) -> Sighting | None:
        path, kind, size, mode, uid, gid, mtime, atime, ctime, checksum, algorithm = row
        place = self.places.locate(path)
        if place is None:
            return None
        kind = kind or "file"
        if mode in self.permissions:
            permission = self.permissions[mode]
        else:
            permission = self.permissions[mode] = _permission(mode)
        dates = self.dates
        values = (kind, permission, 0 if kind == "folder" else int(size or 0), dates(ctime),
                  dates(mtime), dates(atime), int(uid) if uid is not None else None,
                  int(gid or 0) if uid is not None else None)
        return Sighting(place, values, checksum or None, algorithm if checksum else None)

    def _apply_storage(self, kind: str, storage_id: int, sightings: dict[str, Sighting]
                       ) -> list[tuple[Place, str, int]]:
        parents = {relative.rpartition("/")[0] for relative in sightings if relative}
        known = self._load(kind, storage_id, [*sightings, *(parents - sightings.keys())])
        ids = {relative: row.id for relative, row in known.items()}
        # Folders neither in the catalog nor in this batch (a scan reports a folder
        # before its contents, so only when a batch starts below a new one): created as
        # folders, with their own missing folders.
        storage_name = next(iter(sightings.values())).place.storage_name
        orphans = [Place(kind, storage_id, storage_name, parent) for parent in parents
                   if parent not in ids and parent not in sightings]
        if orphans:
            self.entries.ensure(orphans)
            ids.update((place.relative, self.entries[place].id) for place in orphans)
        outcomes: list[tuple[Place, str, int]] = []
        new = {relative: s for relative, s in sightings.items() if relative not in known}
        inserted = self._insert(new, ids)
        for relative in inserted:
            outcomes.append((new[relative].place, "new", ids[relative]))
        lost = [relative for relative in new if relative not in inserted]
        if lost:
            # Inserted by another request since our lookup: refreshed like any entry.
            known.update(self._load(kind, storage_id, lost))
        outcomes += self._refresh({relative: (sightings[relative], known[relative])
                                   for relative in sightings
                                   if relative not in inserted and relative in known})
        return outcomes

    def _load(self, kind: str, storage_id: int, paths: list[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        for batch in chunks(paths, LOOKUP_BATCH):
            for row in self.session.execute(
                    select(CatalogFile.id, CatalogFile.path, CatalogFile.type, CatalogFile.size,
                           CatalogFile.modification_date, CatalogFile.checksum)
                    .where(CatalogFile.storage_kind == kind,
                           CatalogFile.storage_id == storage_id,
                           one_of(self.session, CatalogFile.path, list(batch)))):
                found[row.path] = Known(row.id, row.type, row.size, row.modification_date,
                                        row.checksum)
        return found

    def _insert(self, new: dict[str, Sighting], ids: dict[str, int]) -> set[str]:
        """Inserts the new entries, parents first; returns those it inserted (with their
        ids in `ids`)."""
        if not new:
            return set()
        by_depth: dict[int, list[Sighting]] = {}
        for sighting in new.values():
            by_depth.setdefault(sighting.depth, []).append(sighting)
        table = CatalogFile.__table__
        inserted: set[str] = set()
        for depth in sorted(by_depth):
            rows = [self._new_row(sighting, ids) for sighting in by_depth[depth]]
            for file_id, relative in insert_rows(self.session, table, NEW_COLUMNS, rows,
                                                 returning=("id", "path")):
                ids[relative] = file_id
                inserted.add(relative)
        statistics.grew(self.session, len(inserted))
        return inserted

    def _new_row(self, sighting: Sighting, ids: dict[str, int]) -> tuple:
        place = sighting.place
        relative = place.relative
        parent = ids.get(relative.rpartition("/")[0]) if relative else None
        return (place.name, parent, place.kind, place.storage_id,
                place.storage_id if place.kind == "container" else None, relative,
                place.namespace_path, *sighting.values[:8], 1, 0, 0, sighting.checksum,
                sighting.algorithm, self.execution_id)

    def _refresh(self, pairs: dict[str, tuple[Sighting, Known]]
                 ) -> list[tuple[Place, str, int]]:
        """Entries the catalog held: their attributes as seen now, and their checksum
        cleared when they changed without being hashed (what it hashed to is stale)."""
        keeping, replacing = [], []
        outcomes = []
        for sighting, known in pairs.values():
            kind, _, size, _, mtime = sighting.values[:5]
            changed = has_changed(known, {"type": kind, "size": size,
                                          "modification_date": mtime})
            row = (*sighting.values, 1, 0, self.execution_id)
            if sighting.checksum:
                replacing.append((*row, sighting.checksum, sighting.algorithm, known.id))
            elif changed:
                replacing.append((*row, None, None, known.id))
            else:
                keeping.append((*row, known.id))
            outcomes.append((sighting.place, "changed" if changed else "unchanged", known.id))
        table = CatalogFile.__table__
        update_rows(self.session, table, REFRESHED, keeping)
        update_rows(self.session, table, REFRESHED_WITH_CHECKSUM, replacing)
        return outcomes
