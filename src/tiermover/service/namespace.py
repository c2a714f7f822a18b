"""The one namespace of task paths: `/<container or share name>/<path inside it>`.

Containers live under the server's containers root; NAS shares at the directory the
nodes reach. Nothing may escape its root: `..`, absolute tricks and symlinks that lead
outside are refused, at create time here and again at run time by the nodes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Container, NasShare
from tiermover.service.errors import ValidationFailed


@dataclass(frozen=True)
class Location:
    kind: str  # "container" | "nas_share"
    storage: Container | NasShare
    relative: str  # '' for the root itself; never starts with '/'
    root: Path

    @property
    def storage_name(self) -> str:
        return self.storage.name

    @property
    def local_path(self) -> Path:
        return self.root / self.relative if self.relative else self.root

    @property
    def namespace_path(self) -> str:
        return "/" + self.storage.name + ("/" + self.relative if self.relative else "")

    @property
    def storage_type(self) -> str:
        """The Nodeum task source/destination type of this storage."""
        if self.kind == "container":
            return "container"
        return "secondary_nas" if self.storage.pool_id else "primary_nas"


def storage_root(kind: str, storage: Container | NasShare) -> Path:
    return Path(storage.root_path if kind == "container" else storage.path)


def split_namespace_path(path: str, attr: str) -> tuple[str, str]:
    """'/share/a/b' -> ('share', 'a/b'), refusing empty, relative and `..` paths."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationFailed.on(attr, "blank")
    if not path.startswith("/"):
        raise ValidationFailed.on(attr, "invalid", "must start with /<container or share name>/",
                                  value=path)
    parts = [p for p in PurePosixPath(path).parts[1:] if p not in ("", ".")]
    if any(p == ".." for p in parts) or "\x00" in path:
        raise ValidationFailed.on(attr, "escapes_root", value=path)
    if not parts:
        raise ValidationFailed.on(attr, "invalid", "must name a container or NAS share", value=path)
    return parts[0], "/".join(parts[1:])


def find_storage(session: Session, name: str) -> tuple[str, Container | NasShare] | None:
    container = session.scalar(select(Container).where(Container.name == name))
    if container is not None:
        return "container", container
    share = session.scalar(select(NasShare).where(NasShare.name == name))
    if share is not None:
        return "nas_share", share
    return None


def _inside(root: Path, candidate: Path) -> bool:
    try:
        candidate.relative_to(root)
        return True
    except ValueError:
        return False


def resolve(session: Session, path: str, attr: str, must_exist: bool) -> Location:
    """Resolve a namespace path to its storage, checking it stays inside its root.

    With `must_exist`, the path must be present (a source). Otherwise only the storage
    root must exist and every existing ancestor must stay inside it (a destination
    folder: missing folders below the root are created when the task runs).
    """
    name, relative = split_namespace_path(path, attr)
    found = find_storage(session, name)
    if found is None:
        raise ValidationFailed.on(attr, "not_found",
                                  f"names no container or NAS share called '{name}'", value=path)
    kind, storage = found
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
