"""What a scan saw, applied to the catalog a report batch at a time.

A scan reports every entry of a tree, hundreds of thousands per minute, and the first
scan of a share adds every one of them. So this works on plain tuples, not on dicts or
ORM objects: the batch's entries are looked up once, the new ones are inserted once,
with their attributes, and their ids come back from the insert (a folder depth at a
time: a file's row names its folder's id); only entries the catalog already held are
updated. The execution's files are recorded from those ids, without reading them back.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tiermover.db.bulk import insert_rows, rows_with, update_rows
from tiermover.db.models import CatalogFile
from tiermover.service.catalog_entries import (
    DATES, Entries, Known, Place, Places, has_changed, statistics,
)

# One entry a scan saw, as a node reports it (see `seen_rows`), in this order.
SEEN_FIELDS = ("path", "type", "size", "mode", "uid", "gid", "mtime", "atime", "ctime",
               "checksum", "algorithm")
ENTRY_FIELDS = SEEN_FIELDS[1:9]  # the keys of CatalogChange.entry
# Paths looked up per SELECT: one parameter each on SQLite, one array on PostgreSQL.
LOOKUP_BATCH = 5000

# Columns of a new entry, in the order `Sightings._insert` gives them.
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
        width = len(columns)
        if tuple(columns) == SEEN_FIELDS[:width]:
            # As current nodes send them: the fields in order, the last ones left out.
            missing = (None,) * (len(SEEN_FIELDS) - width)
            rows += [(*row, *missing) for row in table.get("rows") or () if len(row) == width]
        else:
            positions = [columns.index(name) if name in columns else None
                         for name in SEEN_FIELDS]
            for row in table.get("rows") or ():
                rows.append(tuple(row[at] if at is not None and at < len(row) else None
                                  for at in positions))
    for change in item.get("changes") or ():
        if change.get("op") == "seen" and change.get("entry"):
            entry = change["entry"]
            rows.append((change.get("path"), *(entry.get(name) for name in ENTRY_FIELDS),
                         change.get("checksum"), change.get("algorithm")))
    return rows


def _permission(mode) -> int | None:
    # Nodeum shows the mode as its octal digits: 100644.
    return int(oct(int(mode))[2:]) if mode is not None else None


def _depth(relative: str) -> int:
    return relative.count("/") + 1 if relative else 0


class Storage:
    """The seen entries of one batch on one storage, by their path inside it: each one's
    values in NEW_COLUMNS order from `type` on (dates as Unix times), which is also
    REFRESHED's order up to `offline`."""

    def __init__(self, kind: str, storage_id: int, name: str):
        self.kind = kind
        self.id = storage_id
        self.name = name
        self.seen: dict[str, tuple] = {}

    def namespace_path(self, relative: str) -> str:
        return "/" + self.name + ("/" + relative if relative else "")

    def place(self, relative: str) -> Place:
        return Place(self.kind, self.id, self.name, relative)


class Sightings:
    """Applies one batch's seen entries for one execution.

    `apply` returns each entry's outcome (new, changed, unchanged) with its storage,
    path there and id, for the execution's files and its full report.
    """

    def __init__(self, session: Session, execution_id: str, places: Places, entries: Entries):
        self.session = session
        self.execution_id = execution_id
        self.places = places
        self.entries = entries
        self.permissions: dict[int, int | None] = {}

    def apply(self, rows: list[tuple]) -> list[tuple[Storage, str, str, int]]:
        storages: dict[str, Storage | None] = {}
        permissions = self.permissions
        execution_id = self.execution_id
        for path, kind, size, mode, uid, gid, mtime, atime, ctime, checksum, algorithm in rows:
            split = self.places.split(path)
            if split is None:
                continue
            name, relative = split
            if name not in storages:
                found = self.places.storage(name)
                # Not a container or share (a tape's path): nothing a scan catalogues.
                storages[name] = None if found is None else Storage(*found)
            storage = storages[name]
            if storage is None:
                continue
            kind = kind or "file"
            if mode not in permissions:
                permissions[mode] = _permission(mode)
            storage.seen[relative] = (
                kind, permissions[mode], 0 if kind == "folder" else int(size or 0), ctime,
                mtime, atime, int(uid) if uid is not None else None,
                int(gid or 0) if uid is not None else None, 1, 0, 0,
                checksum or None, algorithm if checksum else None, execution_id)
        outcomes: list[tuple[Storage, str, str, int]] = []
        for storage in storages.values():
            if storage is not None and storage.seen:
                outcomes += self._apply_storage(storage)
        return outcomes

    def _apply_storage(self, storage: Storage) -> list[tuple[Storage, str, str, int]]:
        seen = storage.seen
        parents = {relative.rpartition("/")[0] for relative in seen if relative}
        known = self._load(storage, [*seen, *(parents - seen.keys())])
        ids = {relative: row[0] for relative, row in known.items()}
        # Folders neither in the catalog nor in this batch (a scan reports a folder
        # before its contents, so only when a batch starts below a new one): created as
        # folders, with their own missing folders.
        orphans = [storage.place(parent) for parent in parents
                   if parent not in ids and parent not in seen]
        if orphans:
            self.entries.ensure(orphans)
            ids.update((place.relative, self.entries[place].id) for place in orphans)
        new = [relative for relative in seen if relative not in known]
        inserted = self._insert(storage, new, ids)
        outcomes = [(storage, relative, "new", ids[relative]) for relative in inserted]
        lost = [relative for relative in new if relative not in inserted]
        if lost:
            # Inserted by another request since our lookup: refreshed like any entry.
            known.update(self._load(storage, lost))
        outcomes += self._refresh(storage, [(relative, known[relative]) for relative in seen
                                            if relative not in inserted and relative in known])
        return outcomes

    def _load(self, storage: Storage, paths: list[str]) -> dict[str, tuple]:
        """path -> (id, type, size, modification date, checksum) of those catalogued."""
        found = rows_with(self.session, CatalogFile.__table__,
                          ("path", "id", "type", "size", "modification_date", "checksum"),
                          {"storage_kind": storage.kind, "storage_id": storage.id}, "path",
                          paths, LOOKUP_BATCH)
        return {row[0]: row[1:] for row in found}

    def _insert(self, storage: Storage, new: list[str], ids: dict[str, int]) -> set[str]:
        """Inserts the new entries, parents first; returns those it inserted (with their
        ids in `ids`)."""
        if not new:
            return set()
        by_depth: dict[int, list[str]] = {}
        for relative in new:
            by_depth.setdefault(_depth(relative), []).append(relative)
        table = CatalogFile.__table__
        inserted: set[str] = set()
        kind, storage_id = storage.kind, storage.id
        primary = storage_id if kind == "container" else None
        seen = storage.seen
        top = "/" + storage.name
        for depth in sorted(by_depth):
            rows = []
            for relative in by_depth[depth]:
                if relative:
                    parent, _, name = relative.rpartition("/")
                    if parent not in ids:
                        # Its folder was deleted by another request since the lookup: no
                        # entry without a parent (the next scan catalogues it again).
                        continue
                    head = (name, ids[parent], kind, storage_id, primary, relative,
                            top + "/" + relative)
                else:
                    head = (storage.name, None, kind, storage_id, primary, relative, top)
                rows.append(head + seen[relative])
            returned = set()
            for file_id, relative in insert_rows(self.session, table, NEW_COLUMNS, rows,
                                                 returning=("id", "path"),
                                                 unix_times=DATES):
                ids[relative] = file_id
                returned.add(relative)
            lost = [relative for relative in by_depth[depth] if relative not in returned]
            if lost:
                # Inserted by another request since our lookup: the next depth needs
                # their ids (they are refreshed like any catalogued entry).
                ids.update((relative, row[0])
                           for relative, row in self._load(storage, lost).items())
            inserted |= returned
        statistics.grew(self.session, len(inserted))
        return inserted

    def _refresh(self, storage: Storage, pairs: list[tuple[str, tuple]]
                 ) -> list[tuple[Storage, str, str, int]]:
        """Entries the catalog held: their attributes as seen now, and their checksum
        cleared when they changed without being hashed (what it hashed to is stale)."""
        keeping, replacing = [], []
        outcomes = []
        for relative, (file_id, known_type, known_size, known_mtime, known_checksum) in pairs:
            values = storage.seen[relative]
            kind, _, size, _, mtime = values[:5]
            changed = has_changed(
                Known(file_id, known_type, known_size, known_mtime, known_checksum),
                {"type": kind, "size": size, "modification_date": mtime})
            row = (*values[:10], self.execution_id)
            checksum, algorithm = values[11:13]
            if checksum:
                replacing.append((*row, checksum, algorithm, file_id))
            elif changed:
                replacing.append((*row, None, None, file_id))
            else:
                keeping.append((*row, file_id))
            outcomes.append((storage, relative, "changed" if changed else "unchanged",
                             file_id))
        table = CatalogFile.__table__
        update_rows(self.session, table, REFRESHED, keeping, unix_times=DATES)
        update_rows(self.session, table, REFRESHED_WITH_CHECKSUM, replacing, unix_times=DATES)
        return outcomes
