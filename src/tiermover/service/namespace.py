"""The one namespace of task paths: `/<storage name>/<path inside it>`, where the storage
is a container, a NAS share or a cloud bucket.

Containers live under the server's containers root; NAS shares at the directory the
nodes reach; cloud buckets behind their connector's S3 endpoint. Nothing may escape its
root: `..`, absolute tricks and symlinks that lead outside are refused, at create time
here and again at run time by the nodes.

A name must lead to one storage. Container and share names are unique among both, but a
bucket may share its name with a container, a share or a bucket of another connector:
such a name is refused as ambiguous (422) rather than guessed.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import String, bindparam, event, literal, select, union_all
from sqlalchemy.orm import Session, object_session

from tiermover.db.models import CloudBucket, CloudConnector, Container, NasShare
from tiermover.service.errors import ValidationFailed
from tiermover.storage.base import Entry, StorageError

Storage = Container | NasShare | CloudBucket
KIND_LABELS = {"container": "container", "nas_share": "NAS share", "cloud_bucket": "cloud bucket"}
# Create-time checks of a bucket path must answer quickly, even from a dead endpoint.
BUCKET_CHECK = {"max_attempts": 2, "connect_timeout": 2.0, "read_timeout": 5.0,
                "timeout": 10.0, "initial_backoff": 0.2}


@dataclass(frozen=True)
class Location:
    kind: str  # "container" | "nas_share" | "cloud_bucket"
    storage: Storage
    relative: str  # '' for the root itself; never starts with '/'
    root: Path | None  # the directory of a container or share; None for a bucket
    # What a bucket path holds (seen through S3 at resolve time), None when absent.
    entry: Entry | None = None

    @property
    def storage_name(self) -> str:
        return self.storage.name

    @property
    def local_path(self) -> Path:
        if self.root is None:
            raise ValueError(f"{self.namespace_path} is in a cloud bucket, not on a file system")
        return self.root / self.relative if self.relative else self.root

    @property
    def namespace_path(self) -> str:
        return "/" + self.storage.name + ("/" + self.relative if self.relative else "")

    @property
    def storage_type(self) -> str:
        """The Nodeum task source/destination type of this storage."""
        if self.kind == "container":
            return "container"
        secondary = self.storage.pool_id is not None
        if self.kind == "cloud_bucket":
            return "secondary_cloud" if secondary else "primary_cloud"
        return "secondary_nas" if secondary else "primary_nas"


def storage_root(kind: str, storage: Storage) -> Path | None:
    if kind == "cloud_bucket":
        return None
    return Path(storage.root_path if kind == "container" else storage.path)


def split_namespace_path(path: str, attr: str) -> tuple[str, str]:
    """'/share/a/b' -> ('share', 'a/b'), refusing empty, relative and `..` paths."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationFailed.on(attr, "blank")
    if not path.startswith("/"):
        raise ValidationFailed.on(attr, "invalid", "must start with /<storage name>/",
                                  value=path)
    parts = [p for p in PurePosixPath(path).parts[1:] if p not in ("", ".")]
    if any(p == ".." for p in parts) or "\x00" in path:
        raise ValidationFailed.on(attr, "escapes_root", value=path)
    if not parts:
        raise ValidationFailed.on(attr, "invalid", "must name a container, NAS share or cloud "
                                  "bucket", value=path)
    return parts[0], "/".join(parts[1:])


_STORAGE_MODELS = {"container": Container, "nas_share": NasShare, "cloud_bucket": CloudBucket}
# Which storages carry a name, in one statement for the three tables; the rows themselves
# come from the identity map when the session holds them.
_STORAGES_NAMED = union_all(*(
    select(literal(kind, String).label("kind"), model.id.label("id"))
    .where(model.name == bindparam("name"))
    for kind, model in _STORAGE_MODELS.items()
))


def _storage_ids_named(session: Session, name: str) -> list[tuple[str, int]]:
    order = list(_STORAGE_MODELS)
    return sorted(((kind, storage_id) for kind, storage_id in
                   session.execute(_STORAGES_NAMED, {"name": name})),
                  key=lambda row: (order.index(row[0]), row[1]))


def storages_named(session: Session, name: str) -> list[tuple[str, Storage]]:
    """Every storage called `name`: one normally, several when a bucket shares it."""
    return [(kind, session.get(_STORAGE_MODELS[kind], storage_id))
            for kind, storage_id in _storage_ids_named(session, name)]


def find_storage_id(session: Session, name: str) -> tuple[str, int] | None:
    """(kind, id) of the one storage called `name`; None when there is none, or several
    (an ambiguous name leads nowhere rather than to a guess)."""
    return storage_names.lookup(session, name)


class StorageNames:
    """Which storage each name stands for, remembered per database for a few seconds.

    Every report that writes to the catalog resolves the storage names of its paths;
    they change rarely, and whenever a transaction of this process changes a storage
    (created, renamed, deleted; or its connector), everything remembered is forgotten
    as it commits. A session that flushed such a change looks names up itself until it
    commits. The time limit bounds how long a change made by another process can go
    unseen.
    """

    SECONDS = 5.0
    MAX_NAMES = 10_000

    def __init__(self):
        self._lock = threading.Lock()
        self._by_database: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._generation = 0

    def lookup(self, session: Session, name: str) -> tuple[str, int] | None:
        database = session.get_bind()
        now = time.monotonic()
        with self._lock:
            known = self._by_database.setdefault(database, {})
            remembered = known.get(name)
            generation = self._generation
        if remembered is not None and now - remembered[1] < self.SECONDS \
                and not session.info.get(_STORAGES_CHANGED):
            return remembered[0]
        found = _storage_ids_named(session, name)
        value = found[0] if len(found) == 1 else None
        with self._lock:
            # Not if a change committed meanwhile: what was read may predate it.
            if generation == self._generation and not session.info.get(_STORAGES_CHANGED):
                if len(known) >= self.MAX_NAMES:
                    known.clear()
                known[name] = (value, now)
        return value

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._by_database.clear()


storage_names = StorageNames()
_STORAGES_CHANGED = "storages_changed"
_NAMED = (Container, NasShare, CloudBucket, CloudConnector)


def _note_storage_change(mapper, connection, target) -> None:
    # Mapper events: they fire only for these objects, so other flushes pay nothing.
    session = object_session(target)
    if session is not None:
        session.info[_STORAGES_CHANGED] = True


for _model in _NAMED:
    for _when in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _when, _note_storage_change)


@event.listens_for(Session, "after_commit")
def _forget_storage_names(session: Session) -> None:
    if session.info.pop(_STORAGES_CHANGED, False):
        storage_names.forget()



def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.relative_to(root)
        return True
    except ValueError:
        return False


def _only_storage(session: Session, name: str, path: str, attr: str) -> tuple[str, Storage]:
    found = storages_named(session, name)
    if not found:
        raise ValidationFailed.on(attr, "not_found", f"names no container, NAS share or cloud "
                                  f"bucket called '{name}'", value=path)
    if len(found) > 1:
        which = ", ".join(f"{KIND_LABELS[kind]} {storage.id}" for kind, storage in found)
        raise ValidationFailed.on(attr, "ambiguous", f"starts with '{name}', the name of several "
                                  f"storages ({which}): rename one of them", value=path)
    return found[0]


def resolve(session: Session, path: str, attr: str, must_exist: bool) -> Location:
    """Resolve a namespace path to its storage, checking it stays inside its root.

    With `must_exist`, the path must be present (a source). Otherwise only the storage
    root must exist and every existing ancestor must stay inside it (a destination
    folder: missing folders below the root are created when the task runs).
    """
    name, relative = split_namespace_path(path, attr)
    kind, storage = _only_storage(session, name, path, attr)
    if kind == "cloud_bucket":
        return _resolve_in_bucket(session, storage, relative, path, attr, must_exist)
    root = storage_root(kind, storage)
    if not root.is_dir():
        raise ValidationFailed.on(attr, "invalid",
                                  f"is on '{name}', whose root {root} is not reachable", value=path)
    real_root = root.resolve()
    target = root / relative if relative else root
    # Follow symlinks as far as the path exists, and refuse anything resolving outside.
    existing = target
    while not os.path.lexists(existing) and existing != root:
        existing = existing.parent
    if not _inside(real_root, existing.resolve()):
        raise ValidationFailed.on(attr, "escapes_root", value=path)
    if must_exist and not os.path.lexists(target):
        raise ValidationFailed.on(attr, "not_found", "does not exist", value=path)
    if must_exist and not _inside(real_root, target.resolve()):
        raise ValidationFailed.on(attr, "escapes_root", value=path)
    return Location(kind=kind, storage=storage, relative=relative, root=root)


def _resolve_in_bucket(session: Session, bucket: CloudBucket, relative: str, path: str,
                       attr: str, must_exist: bool) -> Location:
    """Ask the bucket itself (briefly) whether the path is there: an object or a prefix."""
    # Imported here: execution_spec depends on the catalog, which depends on this module.
    from tiermover.service.execution_spec import bucket_backend
    from tiermover.storage.open import open_backend

    connector = session.get(CloudConnector, bucket.cloud_connector_id)
    backend = open_backend({**bucket_backend(connector, bucket), **BUCKET_CHECK})
    try:
        problem = backend.bucket_problem()
        entry = backend.stat(relative) if problem is None else None
    except StorageError as error:
        problem = str(error)
    finally:
        backend.close()
    if problem is not None:
        raise ValidationFailed.on(attr, "invalid", f"is on cloud bucket '{bucket.name}', which "
                                  f"cannot be reached: {problem}", value=path)
    if must_exist and entry is None:
        raise ValidationFailed.on(attr, "not_found", "does not exist", value=path)
    return Location(kind="cloud_bucket", storage=bucket, relative=relative, root=None,
                    entry=entry)
