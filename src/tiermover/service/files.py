"""Browsing the file catalog: everywhere, in a container or pool, in a task's results.

Each browsing context is a `FileSet`: the catalog entries it may reach (`members`) and
the ones it shows at its top level (`roots`). Lists, children and single files of every
context then share one implementation.

Who sees what:
- Containers have an access model (guest right, per-user privileges): a user other than
  an administrator browses the containers granting them read or read_write.
- NAS shares and pools have none: they are shared infrastructure every user may browse.
- A task's and an execution's files follow the task: its owner sees every file it handled.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from tiermover.db.models import (
    CatalogFile, Container, ContainerPrivilege, ExecutionFile, FileCopy, ImportFile, NasShare,
    Pool, Tape, TaskExecution,
)
from tiermover.service.auth import Principal
from tiermover.service.errors import Forbidden, NotFound
from tiermover.service.executions import get_execution
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.storage.common import as_id
from tiermover.service.storage.containers import get_container
from tiermover.service.storage.pools import get_pool
from tiermover.service.tasks import resolve_task

READ_RIGHTS = ("read", "read_write")


def _file_attrs(model) -> dict[str, Attr]:
    return {
        "file_id": Attr(model.id, "int"),
        "name": Attr(model.name),
        "type": Attr(model.type),
        "permission": Attr(model.permission, "int"),
        "size": Attr(model.size, "int"),
        "change_date": Attr(model.change_date, "datetime"),
        "modification_date": Attr(model.modification_date, "datetime"),
        "access_date": Attr(model.access_date, "datetime"),
        "gid": Attr(model.gid, "int"),
        "uid": Attr(model.uid, "int"),
    }


FILE_ATTRS = _file_attrs(CatalogFile)
IMPORT_FILE_ATTRS = _file_attrs(ImportFile)
ON_TAPES_FILE_ATTRS = {key: FILE_ATTRS[key] for key in ("name", "type", "size")}
TAPE_ATTRS = {"id": Attr(Tape.id, "int"), "barcode": Attr(Tape.barcode)}


@dataclass(frozen=True)
class FileSet:
    members: ColumnElement
    roots: ColumnElement


# --- who may read which container ----------------------------------------------------------

def _readable_containers(principal: Principal):
    """Ids of the containers a non-administrator may read.

    A privilege naming the user decides; without one, the container's guest right does.
    """
    own_privilege = and_(
        ContainerPrivilege.container_id == Container.id,
        ContainerPrivilege.type == "user",
        ContainerPrivilege.name == principal.username,
    )
    granted = exists().where(own_privilege, ContainerPrivilege.privilege.in_(READ_RIGHTS))
    unlisted = ~exists().where(own_privilege)
    return select(Container.id).where(
        or_(granted, and_(unlisted, Container.guest_right.in_(READ_RIGHTS)))
    )


def _readable_by(principal: Principal) -> ColumnElement:
    if principal.is_admin:
        return true()
    return or_(
        CatalogFile.storage_kind == "nas_share",
        and_(CatalogFile.storage_kind == "container",
             CatalogFile.storage_id.in_(_readable_containers(principal))),
    )


# --- browsing contexts ---------------------------------------------------------------------

def everywhere(principal: Principal) -> FileSet:
    """The whole catalog; its top level is the root folder of each container and share."""
    members = _readable_by(principal)
    return FileSet(members, and_(members, CatalogFile.parent.is_(None)))


def of_container(session: Session, principal: Principal, container_ref: str) -> FileSet:
    """A container's files; its top level is what its root folder holds.

    The root folder itself is the container, shown by /containers/{id}, so it is not
    one of the container's files.
    """
    container = get_container(session, container_ref)
    if not principal.is_admin and session.scalar(
        _readable_containers(principal).where(Container.id == container.id)
    ) is None:
        raise Forbidden(f"You have no read right on container '{container.name}'")
    in_container = and_(CatalogFile.storage_kind == "container",
                        CatalogFile.storage_id == container.id)
    root = aliased(CatalogFile)
    root_id = select(root.id).where(root.storage_kind == "container",
                                     root.storage_id == container.id, root.path == "")
    members = and_(in_container, CatalogFile.path != "")
    return FileSet(members, and_(members, CatalogFile.parent.in_(root_id)))


def of_pool(session: Session, principal: Principal, pool_ref: str) -> FileSet:
    """Files on a pool's storage: its NAS shares, and the container a primary pool serves.

    Copies on tapes and cloud buckets are not in the catalog, so they do not appear here.
    """
    pool = get_pool(session, pool_ref)
    shares = select(NasShare.id).where(NasShare.pool_id == pool.id)
    on_pool = and_(CatalogFile.storage_kind == "nas_share", CatalogFile.storage_id.in_(shares))
    if pool.primary_id is not None:
        on_pool = or_(on_pool, and_(CatalogFile.storage_kind == "container",
                                    CatalogFile.storage_id == pool.primary_id))
    members = and_(on_pool, _readable_by(principal))
    return FileSet(members, and_(members, CatalogFile.parent.is_(None)))


def _handled(handled_ids) -> FileSet:
    """Files some executions handled; the top level is each handled entry whose folder
    was not itself handled (a copied folder shows once, its content below it)."""
    members = CatalogFile.id.in_(handled_ids)
    return FileSet(members, and_(members, or_(CatalogFile.parent.is_(None),
                                              CatalogFile.parent.not_in(handled_ids))))


def of_task(session: Session, principal: Principal, task_ref: str) -> FileSet:
    task = resolve_task(session, principal, task_ref)
    runs = select(TaskExecution.id).where(TaskExecution.task_id == task.id)
    return _handled(select(ExecutionFile.file_id).where(ExecutionFile.execution_id.in_(runs)))


def of_execution(session: Session, principal: Principal, execution_id: str,
                 task_ref: str | None = None) -> FileSet:
    task = resolve_task(session, principal, task_ref) if task_ref is not None else None
    execution = get_execution(session, principal, execution_id, task)
    return _handled(select(ExecutionFile.file_id).where(ExecutionFile.execution_id == execution.id))


# --- lists and lookups within a context ----------------------------------------------------

def list_roots(session: Session, files: FileSet, query: ListQuery) -> Page:
    return list_page(session, select(CatalogFile).where(files.roots), FILE_ATTRS, query,
                     CatalogFile.id)


def get_file(session: Session, files: FileSet, file_ref: str, attr: str = "file_id") -> CatalogFile:
    file_id = as_id(file_ref)
    entry = None if file_id is None else session.scalar(
        select(CatalogFile).where(CatalogFile.id == file_id, files.members))
    if entry is None:
        raise NotFound("file", attr, file_ref)
    return entry


def list_children(session: Session, files: FileSet, parent_ref: str, query: ListQuery) -> Page:
    """The context's entries directly in a folder.

    The folder must be reachable: one of the context's entries, or the folder holding
    one (a task that copied only some files of a folder still lets one browse it).
    """
    parent_id = as_id(parent_ref)
    reachable = parent_id is not None and (
        session.scalar(select(CatalogFile.id).where(CatalogFile.id == parent_id, files.members))
        or session.scalar(select(CatalogFile.id)
                          .where(CatalogFile.parent == parent_id, files.members).limit(1))
    )
    if not reachable:
        raise NotFound("file", "file_parent_id", parent_ref)
    stmt = select(CatalogFile).where(CatalogFile.parent == parent_id, files.members)
    return list_page(session, stmt, FILE_ATTRS, query, CatalogFile.id)


def list_tapes_of_file(session: Session, files: FileSet, file_ref: str, query: ListQuery) -> Page:
    """Tapes holding a copy of the file (404 if the file is out of context)."""
    entry = get_file(session, files, file_ref)
    on_tapes = select(FileCopy.storage_id).where(FileCopy.file_id == entry.id,
                                                 FileCopy.storage_kind == "tape")
    return list_page(session, select(Tape).where(Tape.id.in_(on_tapes)), TAPE_ATTRS, query,
                     Tape.id)


# --- where each file's copies are ---------------------------------------------------------

# Copies into another container are catalogued too (restore and check_consistency use
# them) but the Nodeum file object has no list for them.
COPY_LISTS = {"nas_share": "nas_shares", "cloud_bucket": "cloud_buckets", "tape": "tapes"}


def copies_of(session: Session, entries: list[CatalogFile]) -> dict[int, dict[str, list[str]]]:
    """Per file id: its checksums (`algorithm:value`) and the storages holding a copy
    (`nas_shares`, `cloud_buckets`, `tapes` by name), for a page of files at once."""
    summary = {entry.id: {"checksums": [f"{entry.algorithm}:{entry.checksum}"]
                          if entry.checksum else [],
                          "tapes": [], "cloud_buckets": [], "nas_shares": []}
               for entry in entries}
    if not summary:
        return summary
    rows = session.execute(
        select(FileCopy.file_id, FileCopy.storage_kind, FileCopy.file_path, FileCopy.checksum,
               FileCopy.algorithm)
        .where(FileCopy.file_id.in_(list(summary))).order_by(FileCopy.id))
    for row in rows:
        lists = summary[row.file_id]
        parts = row.file_path.strip("/").split("/")
        # A tape copy is at /<library>/<barcode>/...: the file object names the barcode.
        storage = parts[1] if row.storage_kind == "tape" and len(parts) > 1 else parts[0]
        where = lists.get(COPY_LISTS.get(row.storage_kind, ""))
        if where is not None and storage not in where:
            where.append(storage)
        if row.checksum and f"{row.algorithm}:{row.checksum}" not in lists["checksums"]:
            lists["checksums"].append(f"{row.algorithm}:{row.checksum}")
    return summary


# --- files on a pool's media ---------------------------------------------------------------

def _import_file(session: Session, pool: Pool, file_ref: str, attr: str) -> ImportFile:
    file_id = as_id(file_ref)
    entry = None if file_id is None else session.scalar(
        select(ImportFile).where(ImportFile.id == file_id, ImportFile.pool_id == pool.id))
    if entry is None:
        raise NotFound("import_file", attr, file_ref)
    return entry


def list_import_files(session: Session, pool_ref: str, query: ListQuery,
                      parent_ref: str | None = None) -> Page:
    """Files seen on a pool's imported media: the top level, or a folder's entries."""
    pool = get_pool(session, pool_ref)
    stmt = select(ImportFile).where(ImportFile.pool_id == pool.id)
    if parent_ref is None:
        stmt = stmt.where(ImportFile.parent.is_(None))
    else:
        stmt = stmt.where(ImportFile.parent == _import_file(session, pool, parent_ref,
                                                            "file_parent_id").id)
    return list_page(session, stmt, IMPORT_FILE_ATTRS, query, ImportFile.id)


def get_import_file(session: Session, pool_ref: str, file_ref: str) -> ImportFile:
    pool = get_pool(session, pool_ref)
    return _import_file(session, pool, file_ref, "file_id")


def _on_pool_tapes(pool: Pool):
    """Catalog entries holding, or leading to, a copy on one of the pool's tapes."""
    inner = aliased(CatalogFile)
    return (select(FileCopy.id)
            .join(inner, inner.id == FileCopy.file_id)
            .join(Tape, and_(FileCopy.storage_kind == "tape", FileCopy.storage_id == Tape.id))
            .where(Tape.pool_id == pool.id,
                   inner.storage_kind == CatalogFile.storage_kind,
                   inner.storage_id == CatalogFile.storage_id,
                   or_(CatalogFile.parent.is_(None), inner.path == CatalogFile.path,
                       inner.path.like(CatalogFile.path.concat("/%"))))
            .exists())


def list_on_tapes_files(session: Session, pool_ref: str, query: ListQuery,
                        parent_ref: str | None = None) -> Page:
    """Files on a pool's tapes, as the tree of the storages they were copied from: the
    storages' roots at the top, then a folder's entries holding copies on those tapes."""
    pool = get_pool(session, pool_ref)
    stmt = select(CatalogFile).where(_on_pool_tapes(pool))
    if parent_ref is None:
        stmt = stmt.where(CatalogFile.parent.is_(None))
    else:
        parent_id = as_id(parent_ref)
        parent = None if parent_id is None else session.scalar(
            select(CatalogFile).where(CatalogFile.id == parent_id, _on_pool_tapes(pool)))
        if parent is None:
            raise NotFound("on_tapes_file", "file_parent_id", parent_ref)
        stmt = stmt.where(CatalogFile.parent == parent.id)
    return list_page(session, stmt, ON_TAPES_FILE_ATTRS, query, CatalogFile.id)


def get_on_tapes_file(session: Session, pool_ref: str, file_ref: str):
    pool = get_pool(session, pool_ref)
    file_id = as_id(file_ref)
    entry = None if file_id is None else session.scalar(
        select(CatalogFile).where(CatalogFile.id == file_id, _on_pool_tapes(pool)))
    if entry is None:
        raise NotFound("on_tapes_file", "file_id", file_ref)
    return entry
