"""NAS and their shares.

A share's `path` is the directory where the nodes reach it, already mounted (by the
system, not by tiermover). It names the root of `/<share name>/...` in the namespace.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Nas, NasShare, Pool
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits
from tiermover.service.storage.common import (
    assign, check_segment, clean_name, column_taken, flush, forget_catalog,
    lookup, namespace_name_taken, rename_in_catalog,
)

NAS_ATTRS = {
    "id": Attr(Nas.id, "int"),
    "name": Attr(Nas.name),
    "comment": Attr(Nas.comment),
    "host": Attr(Nas.host),
    "type": Attr(Nas.type),
    "price": Attr(Nas.price),
}
SHARE_ATTRS = {
    "id": Attr(NasShare.id, "int"),
    "name": Attr(NasShare.name),
    "path": Attr(NasShare.path),
    "options": Attr(NasShare.options),
    "username": Attr(NasShare.username),
    "nas_id": Attr(NasShare.nas_id, "int"),
    "pool_id": Attr(NasShare.pool_id, "int"),
}

NAS_WRITABLE = ("name", "host", "type", "comment", "price")
SHARE_WRITABLE = ("name", "path", "options", "username", "password")
# What a mount of each NAS protocol is called in a mount table (MountInfo.type).
MOUNT_TYPES = {"smb_v1": "cifs", "smb_v2_1": "cifs", "smb_v3": "cifs",
               "nfs_v3": "nfs", "nfs_v4": "nfs"}


# --- NAS ------------------------------------------------------------------------------------

def list_nas(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(Nas), NAS_ATTRS, query, Nas.id)


def get_nas(session: Session, ref: str | int) -> Nas:
    return lookup(session, Nas, ref, "NAS", "nas_id", keys=(Nas.name,))


def _validate_nas(session: Session, values: dict, nas: Nas | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=nas is None)
    check_limits(Nas, values, failure)
    name = values.get("name")
    if name and "name" not in failure.details and column_taken(
            session, Nas.name, name, nas.id if nas else None):
        failure.add("name", "taken", value=name)
    failure.raise_if_any()


def create_nas(session: Session, values: dict) -> Nas:
    _validate_nas(session, values, None)
    nas = Nas(type="nfs_v4")
    assign(nas, values, NAS_WRITABLE)
    session.add(nas)
    flush(session, value=nas.name)
    return nas


def update_nas(session: Session, nas: Nas, values: dict) -> Nas:
    _validate_nas(session, values, nas)
    assign(nas, values, NAS_WRITABLE)
    flush(session, value=nas.name)
    return nas


def delete_nas(session: Session, nas: Nas) -> None:
    """The NAS and its shares (the directories themselves are untouched)."""
    share_ids = session.scalars(select(NasShare.id).where(NasShare.nas_id == nas.id)).all()
    forget_catalog(session, "nas_share", share_ids)
    session.delete(nas)
    session.flush()


# --- share paths -------------------------------------------------------------------------------

def path_problem(path: str | None) -> str | None:
    """Why `path` cannot be a share's root, or None when it can."""
    if not path or not path.strip():
        return "can't be blank"
    if "\x00" in path:
        return "must not contain NUL characters"
    if not path.startswith("/"):
        return "must be an absolute path"
    if ".." in PurePosixPath(path).parts:
        return "must not contain '..'"
    if not os.path.isdir(path):
        return "is not a reachable directory"
    if not os.access(path, os.R_OK | os.X_OK):
        return "is a directory this server may not read"
    return None


def normalized_path(path: str) -> str:
    """`/mnt//nas/` -> `/mnt/nas`: one spelling per directory."""
    return str(PurePosixPath(path))


# --- shares ------------------------------------------------------------------------------------

def list_shares(session: Session, query: ListQuery, nas: Nas | None = None,
                pool: Pool | None = None) -> Page:
    stmt = select(NasShare)
    if nas is not None:
        stmt = stmt.where(NasShare.nas_id == nas.id)
    if pool is not None:
        stmt = stmt.where(NasShare.pool_id == pool.id)
    return list_page(session, stmt, SHARE_ATTRS, query, NasShare.id)


def get_share(session: Session, ref: str | int, nas: Nas | None = None,
              pool: Pool | None = None) -> NasShare:
    where = []
    if nas is not None:
        where.append(NasShare.nas_id == nas.id)
    if pool is not None:
        where.append(NasShare.pool_id == pool.id)
    return lookup(session, NasShare, ref, "NAS share", "nas_share_id",
                  keys=(NasShare.name,), where=where)


def _validate_share(session: Session, values: dict, share: NasShare | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=share is None)
    check_segment(values.get("name"), failure)
    check_limits(NasShare, values, failure)
    name = values.get("name")
    if name and "name" not in failure.details and namespace_name_taken(session, name, share):
        failure.add("name", "taken", value=name)
    if (share is None or "path" in values) and "path" not in failure.details:
        problem = path_problem(values.get("path"))
        if problem == "can't be blank":
            failure.add("path", "blank")
        elif problem:
            failure.add("path", "invalid", problem, value=values.get("path"))
        else:
            values["path"] = normalized_path(values["path"])
    failure.raise_if_any()


def create_share(session: Session, nas: Nas, values: dict) -> NasShare:
    _validate_share(session, values, None)
    share = NasShare(nas_id=nas.id)
    assign(share, values, SHARE_WRITABLE)
    session.add(share)
    flush(session, value=share.name)
    return share


def update_share(session: Session, share: NasShare, values: dict) -> NasShare:
    _validate_share(session, values, share)
    old_name = share.name
    assign(share, values, SHARE_WRITABLE)
    flush(session, value=share.name)
    rename_in_catalog(session, "nas_share", share.id, old_name, share.name)
    return share


def delete_share(session: Session, share: NasShare) -> None:
    forget_catalog(session, "nas_share", [share.id])
    session.delete(share)
    session.flush()


def mount_info(session: Session, share: NasShare) -> dict:
    """Where the share is reached, in the shape of a Nodeum MountInfo."""
    nas = session.get(Nas, share.nas_id)
    pool = session.get(Pool, share.pool_id) if share.pool_id else None
    return {
        "target": share.path, "source": nas.host if nas else None, "options": share.options,
        "type": MOUNT_TYPES.get(nas.type) if nas else None,
        "pool_id": share.pool_id, "pool_name": pool.name if pool else None,
        "nas_id": share.nas_id, "nas_name": nas.name if nas else None,
        "nas_share_id": share.id, "nas_share_name": share.name,
    }
