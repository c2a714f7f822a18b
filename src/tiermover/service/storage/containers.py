"""Containers (primary areas under the server's containers root) and their privileges."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Container, ContainerPrivilege, Pool
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits
from tiermover.service.storage.common import (
    assign, check_not_negative, check_segment, clean_name, column_taken, exists,
    flush, forget_catalog, lookup, namespace_name_taken, rename_in_catalog,
)

CONTAINER_ATTRS = {
    "id": Attr(Container.id, "int"),
    "name": Attr(Container.name),
    "comment": Attr(Container.comment),
    "quota_total_size": Attr(Container.quota_total_size, "int"),
    "quota_on_cache": Attr(Container.quota_on_cache, "int"),
    "stat_total_files": Attr(Container.stat_total_files, "int"),
    "stat_total_size": Attr(Container.stat_total_size, "int"),
    "stat_size_on_cache": Attr(Container.stat_size_on_cache, "int"),
    "guest_right": Attr(Container.guest_right),
    "last_update": Attr(Container.last_update, "datetime"),
}
PRIVILEGE_ATTRS = {
    "id": Attr(ContainerPrivilege.id, "int"),
    "name": Attr(ContainerPrivilege.name),
    "privilege": Attr(ContainerPrivilege.privilege),
    "type": Attr(ContainerPrivilege.type),
}

CONTAINER_WRITABLE = ("name", "comment", "quota_total_size", "quota_on_cache", "guest_right",
                      "push_pool_id", "cleaning_pool_id")
PRIVILEGE_WRITABLE = ("name", "privilege", "type")


# --- containers ----------------------------------------------------------------------------

def list_containers(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(Container), CONTAINER_ATTRS, query, Container.id)


def get_container(session: Session, ref: str | int) -> Container:
    return lookup(session, Container, ref, "container", "container_id", keys=(Container.name,))


def _validate_container(session: Session, values: dict, container: Container | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=container is None)
    check_segment(values.get("name"), failure)
    check_limits(Container, values, failure)
    check_not_negative(values, ("quota_total_size", "quota_on_cache"), failure)
    name = values.get("name")
    if name and "name" not in failure.details and namespace_name_taken(session, name, container):
        failure.add("name", "taken", value=name)
    total = values.get("quota_total_size", container.quota_total_size if container else None)
    on_cache = values.get("quota_on_cache", container.quota_on_cache if container else None)
    if total is not None and on_cache is not None and on_cache > total:
        failure.add("quota_on_cache", "quota_on_cache", "can't be above 100% (total)")
    for attr in ("push_pool_id", "cleaning_pool_id"):
        pool_id = values.get(attr)
        if pool_id is not None and attr not in failure.details \
                and not exists(session, Pool, pool_id):
            failure.add(attr, "not_found", value=pool_id)
    failure.raise_if_any()


def create_container(session: Session, values: dict, containers_root: Path) -> Container:
    """The row and its root directory `<containers root>/<name>`.

    A directory left behind by a deleted container of the same name is taken over as it
    is: deleting a container never deletes files.
    """
    _validate_container(session, values, None)
    root = containers_root / values["name"]
    container = Container(root_path=str(root), guest_right="none")
    assign(container, values, CONTAINER_WRITABLE)
    session.add(container)
    flush(session, value=container.name)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationFailed.on("name", "invalid",
                                  f"has no usable directory {root}: {exc.strerror}") from None
    return container


def update_container(session: Session, container: Container, values: dict) -> Container:
    """A rename changes the namespace path `/<name>/...`, not the directory on disk."""
    _validate_container(session, values, container)
    old_name = container.name
    assign(container, values, CONTAINER_WRITABLE)
    flush(session, value=container.name)
    rename_in_catalog(session, "container", container.id, old_name, container.name)
    return container


def delete_container(session: Session, container: Container) -> None:
    """The row and its catalog go; the files stay in the directory."""
    forget_catalog(session, "container", [container.id])
    session.delete(container)
    session.flush()


# --- privileges ------------------------------------------------------------------------------

def list_privileges(session: Session, container: Container, query: ListQuery) -> Page:
    stmt = select(ContainerPrivilege).where(ContainerPrivilege.container_id == container.id)
    return list_page(session, stmt, PRIVILEGE_ATTRS, query, ContainerPrivilege.id)


def get_privilege(session: Session, container: Container, ref: str | int) -> ContainerPrivilege:
    return lookup(session, ContainerPrivilege, ref, "container privilege",
                  "container_privilege_id",
                  where=(ContainerPrivilege.container_id == container.id,))


def _validate_privilege(session: Session, container: Container, values: dict,
                        privilege: ContainerPrivilege | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=privilege is None)
    check_limits(ContainerPrivilege, values, failure)
    name = values.get("name", privilege.name if privilege else None)
    kind = values.get("type") or (privilege.type if privilege else "user")
    # One privilege per user (or group) and container: two would contradict each other.
    if name and "name" not in failure.details and column_taken(
        session, ContainerPrivilege.name, name, privilege.id if privilege else None,
        ContainerPrivilege.container_id == container.id, ContainerPrivilege.type == kind,
    ):
        failure.add("name", "taken", value=name)
    failure.raise_if_any()


def create_privilege(session: Session, container: Container, values: dict) -> ContainerPrivilege:
    _validate_privilege(session, container, values, None)
    privilege = ContainerPrivilege(container_id=container.id, privilege="read", type="user")
    assign(privilege, values, PRIVILEGE_WRITABLE)
    session.add(privilege)
    session.flush()
    return privilege


def update_privilege(session: Session, container: Container, privilege: ContainerPrivilege,
                     values: dict) -> ContainerPrivilege:
    _validate_privilege(session, container, values, privilege)
    assign(privilege, values, PRIVILEGE_WRITABLE)
    session.flush()
    return privilege


def delete_privilege(session: Session, privilege: ContainerPrivilege) -> None:
    session.delete(privilege)
    session.flush()
