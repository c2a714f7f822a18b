"""Catalog entries and the places they stand for: namespace paths resolved to their
storage, entries looked up (and created as folders where missing) a batch at a time, and
how a node's stat attributes become catalog columns.

Shared by everything that applies node reports to the catalog (`catalog_changes`,
`catalog_seen`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from tiermover.db.base import unix_time_binder
from tiermover.db.bulk import insert_rows, rows_with
from tiermover.db.models import CatalogFile, Tape, TapeLibrary
from tiermover.service.errors import ValidationFailed
from tiermover.service.namespace import find_storage_id, split_namespace_path

# Copies on cartridges: a FileCopy only, never a catalog entry of their own.
TAPE = "tape"
# Modification dates compare to the millisecond: some storages keep no finer.
DATE_TOLERANCE = 0.001
# An entry's date columns. What writes many entries at once (a scan's entries, the files
# a copy wrote) keeps them as the Unix times nodes report and stores them through
# db/bulk's `unix_times`: a datetime per date cost more than the row's insert.
DATES = ("change_date", "modification_date", "access_date")


def timestamp(seconds) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(float(seconds), tz=timezone.utc)


def unix_time(seconds) -> float | None:
    return None if seconds is None else float(seconds)


def under(column, path: str):
    """`column` is `path` or lies below it (namespace or storage-relative paths)."""
    path = path.rstrip("/")
    if not path:
        return True
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(column == path, column.like(escaped + "/%", escape="\\"))


def tape_named(session: Session, library: str, barcode: str) -> int | None:
    """The id of the cartridge `barcode` of the tape library called `library`."""
    if not library or not barcode:
        return None
    return session.scalar(select(Tape.id).join(TapeLibrary, Tape.tape_library_id == TapeLibrary.id)
                          .where(TapeLibrary.name == library, Tape.barcode == barcode))


class Place(NamedTuple):
    """A namespace path resolved to its storage. (A named tuple: a report makes two per
    file it wrote, and a frozen dataclass costs several times more to create.)"""

    kind: str
    storage_id: int
    storage_name: str
    relative: str  # '' for the storage's root

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.kind, self.storage_id, self.relative)

    @property
    def parent(self) -> Place:
        """The folder holding it (the storage's root for a top-level entry)."""
        return Place(self.kind, self.storage_id, self.storage_name,
                     self.relative.rpartition("/")[0])

    @property
    def name(self) -> str:
        return self.relative.rpartition("/")[2] if self.relative else self.storage_name

    @property
    def namespace_path(self) -> str:
        return "/" + self.storage_name + ("/" + self.relative if self.relative else "")


class Places:
    """Resolves namespace paths, looking each storage name up once."""

    def __init__(self, session: Session):
        self.session = session
        self._storages: dict[str, tuple[str, int, str] | None] = {}
        self._tapes: dict[str, int | None] = {}

    def locate(self, path: str | None) -> Place | None:
        found = self.split(path)
        if found is None:
            return None
        name, relative = found
        storage = self.storage(name)
        if storage is None:
            return self._on_tape(name, relative)
        return Place(*storage, relative)

    def split(self, path: str | None) -> tuple[str, str] | None:
        """(storage name, path inside it), or None for a path that names nothing."""
        if not path:
            return None
        if path[0] == "/" and "//" not in path and "/./" not in path and "/../" not in path \
                and "\x00" not in path and not path.endswith(("/", "/.", "/..")):
            # The common, plain path: a fraction of the cost of the full parse below.
            name, _, relative = path[1:].partition("/")
            return name, relative
        try:
            return split_namespace_path(path, "path")
        except ValidationFailed:
            return None

    def storage(self, name: str) -> tuple[str, int, str] | None:
        """(kind, id, name) of the container, NAS share or cloud bucket called `name`."""
        if name not in self._storages:
            # Its kind and id only: the row itself is not needed (one statement, not two).
            found = find_storage_id(self.session, name)
            self._storages[name] = None if found is None else (*found, name)
        return self._storages[name]

    def _on_tape(self, library: str, relative: str) -> Place | None:
        """`/<library>/<barcode>/<path in the archive>`: a copy on a cartridge. Its
        "storage" is the tape, named `<library>/<barcode>` so that the place's namespace
        path is the one reported."""
        barcode, _, inside = relative.partition("/")
        key = f"{library}/{barcode}"
        if key not in self._tapes:
            self._tapes[key] = tape_named(self.session, library, barcode)
        tape_id = self._tapes[key]
        return None if tape_id is None else Place(TAPE, tape_id, key, inside)


@dataclass
class Known:
    """What the catalog held for an entry before a scan's batch (see has_changed)."""

    id: int
    type: str
    size: int
    mtime: datetime | None
    checksum: str | None


@dataclass(slots=True)
class Catalogued:
    """An entry of Entries: its id, and when it was loaded the columns of ENTRY_COLUMNS
    by name, dates as the database stores them (None: this batch inserted it)."""

    id: int
    columns: dict | None = None


# What is loaded of a catalogued entry: the columns a written file's update sets, to
# leave out the updates that would change nothing.
ENTRY_COLUMNS = ("type", "size", "modification_date", "checksum", "algorithm", "permission",
                 "change_date", "access_date", "uid", "gid", "in_cache", "offline")
KNOWN_COLUMNS = ("id", "path", *ENTRY_COLUMNS)


class Entries:
    """Catalog entries by place, created (as folders) where missing, a batch at a time."""

    def __init__(self, session: Session):
        self.session = session
        self.by_key: dict[tuple[str, int, str], Catalogued] = {}
        # A Unix time as a date column stores it: loaded dates are compared in that form
        # (converting each loaded date instead cost more than the lookup).
        self._stored_date = unix_time_binder(session.get_bind().dialect)

    def holds(self, place: Place, row: dict) -> bool:
        """Whether the entry holds each value of `row` (column -> value, dates as Unix
        times) already: an update with it would change nothing (a source copied again,
        unchanged). An entry this batch inserted holds what `ensure` was given for it."""
        columns = self.by_key[place.key].columns
        if columns is None:
            return True
        for name, value in row.items():
            if name not in columns:
                return False
            if name in DATES and value is not None:
                value = self._stored_date(value)
            if columns[name] != value:
                return False
        return True

    def ensure(self, places: Iterable[Place], filled: dict[tuple, dict] | None = None) -> None:
        """Every place and its folders catalogued. A missing place is created as a folder
        unless `filled` holds its columns (by place key: a written file's attributes,
        dates as Unix times)."""
        filled = filled or {}
        wanted: dict[tuple, Place] = {}
        by_key = self.by_key
        for place in places:
            # Up its folders until one is known (or already wanted): the rest above is.
            key = place.key
            while key not in by_key and key not in wanted:
                wanted[key] = place
                if not place.relative:
                    break
                place = place.parent
                key = place.key
        if not wanted:
            return
        self._load(list(wanted.values()))
        missing = [place for key, place in wanted.items() if key not in self.by_key]
        # Parents first: each depth needs the ids of the one above.
        by_depth: dict[int, list[Place]] = {}
        for place in missing:
            by_depth.setdefault(place.relative.count("/") + bool(place.relative), []).append(place)
        for depth in sorted(by_depth):
            # Rows with the same columns together: one statement for each kind.
            shapes: dict[tuple[str, ...], list[tuple[Place, dict]]] = {}
            for place in by_depth[depth]:
                row = {**self._new_row(place), **filled.get(place.key, {})}
                shapes.setdefault(tuple(row), []).append((place, row))
            for columns, level in shapes.items():
                self._insert(columns, level)
        statistics.grew(self.session, len(missing))

    def _insert(self, columns: tuple[str, ...], level: list[tuple[Place, dict]]) -> None:
        """Insert one depth's new entries; the ids come back with the insert. An entry
        another request inserted meanwhile is left as it is and read back instead."""
        by_key = {place.key: (place, row) for place, row in level}
        inserted = insert_rows(self.session, CatalogFile.__table__, columns,
                               [tuple(row.values()) for _, row in level],
                               returning=("id", "storage_kind", "storage_id", "path"),
                               unix_times=DATES)
        for file_id, *key in inserted:
            place, row = by_key.pop(tuple(key))
            self.by_key[place.key] = Catalogued(file_id)
        if by_key:
            self._load([place for place, _ in by_key.values()])

    def _new_row(self, place: Place) -> dict:
        parent = None
        if place.relative:
            parent = self.by_key[place.parent.key].id
        return {"name": place.name, "parent": parent, "storage_kind": place.kind,
                "storage_id": place.storage_id,
                "primary_id": place.storage_id if place.kind == "container" else None,
                "path": place.relative, "file_path": place.namespace_path, "type": "folder",
                "size": 0, "in_cache": 1, "offline": 0, "extern": 0}

    def _load(self, places: list[Place]) -> None:
        groups: dict[tuple[str, int], list[str]] = {}
        for place in places:
            groups.setdefault((place.kind, place.storage_id), []).append(place.relative)
        for (kind, storage_id), paths in groups.items():
            # Driver-level: the ORM's statement handling cost more than these small lookups.
            for file_id, path, *values in rows_with(
                    self.session, CatalogFile.__table__, KNOWN_COLUMNS,
                    {"storage_kind": kind, "storage_id": storage_id}, "path", paths,
                    as_stored=DATES):
                self.by_key[(kind, storage_id, path)] = Catalogued(
                    file_id, dict(zip(ENTRY_COLUMNS, values)))

    def __getitem__(self, place: Place) -> Catalogued:
        return self.by_key[place.key]


class TableStatistics:
    """Keeps PostgreSQL's idea of the catalog's size current while a scan fills it.

    Until autovacuum next analyzes the table (up to a minute), PostgreSQL plans lookups
    for the table's old, small size: sequential scans, each slower as the table grows.
    """

    # Analyzed again once it grew by half (and at least this many rows): a few ANALYZE
    # (tens of milliseconds each) for a table growing from nothing to millions.
    AT_LEAST = 2_000

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = 0
        self.analyzed_size = 0

    def grew(self, session: Session, rows: int) -> None:
        if not rows or session.get_bind().dialect.name != "postgresql":
            return
        with self.lock:
            self.pending += rows
            due = self.pending >= max(self.AT_LEAST, self.analyzed_size // 2)
            if due:
                self.analyzed_size += self.pending
                self.pending = 0
        if due:
            session.execute(text("ANALYZE files"))


statistics = TableStatistics()


def attribute_values(attrs: dict, date=timestamp) -> dict:
    """A node's stat attributes (CatalogChange.entry) as catalog columns; dates through
    `date` (datetimes by default; `unix_time` keeps them as Unix times)."""
    kind = attrs.get("type") or "file"
    mode = attrs.get("mode")
    uid = attrs.get("uid")
    return {
        "type": kind,
        # Nodeum shows the mode as its octal digits: 100644.
        "permission": int(oct(int(mode))[2:]) if mode is not None else None,
        "size": 0 if kind == "folder" else int(attrs.get("size") or 0),
        "change_date": date(attrs.get("ctime")),
        "modification_date": date(attrs.get("mtime")),
        "access_date": date(attrs.get("atime")),
        "uid": int(uid) if uid is not None else None,
        "gid": int(attrs.get("gid") or 0) if uid is not None else None,
    }


def has_changed(known: Known, values: dict) -> bool:
    """Whether the entry's content differs from what the catalog knew (size, type, or
    modification date beyond the tolerance; `values` gives it as a Unix time)."""
    if known.size != values["size"] or known.type != values["type"]:
        return True
    before, after = known.mtime, values["modification_date"]
    if before is None or after is None:
        return before is not after
    if before.tzinfo is None:
        before = before.replace(tzinfo=timezone.utc)
    return abs(before.timestamp() - float(after)) > DATE_TOLERANCE
