"""/api/v2/containers and their privileges (administrators manage, users read)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from tiermover.api.deps import AdminScope, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns, created
from tiermover.api.nodeum.storage_render import render_container
from tiermover.db.models import ContainerPrivilege
from tiermover.service.storage import containers as service

router = APIRouter(tags=["containers"])

Right = Literal["none", "read", "read_write"]


class ContainerBody(BaseModel):
    """Writable container fields; statistics and dates are the server's and are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    comment: str | None = None
    quota_total_size: int | None = None
    quota_on_cache: int | None = None
    guest_right: Right | None = None
    push_pool_id: int | None = None
    cleaning_pool_id: int | None = None


class PrivilegeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    privilege: Right | None = None
    type: Literal["user", "group"] | None = None


def render_privilege(privilege: ContainerPrivilege) -> dict:
    return columns(privilege, ("id", "name", "privilege", "type"))


# --- containers ----------------------------------------------------------------------------

@router.get("/containers", summary="Lists all containers.")
def index_containers(request: Request, session: DbSession,
                     principal: Scope("containers", "index")):
    query = parse_list_query(request.query_params, service.CONTAINER_ATTRS)
    return collection("containers", service.list_containers(session, query), render_container)


@router.post("/containers", status_code=201,
             summary="Creates a new container and its root directory.")
def create_container(request: Request, body: ContainerBody, session: DbSession,
                     principal: AdminScope("containers", "create")):
    container = service.create_container(session, body.model_dump(exclude_unset=True),
                                         request.app.state.settings.containers_root)
    return created(render_container(container))


@router.get("/containers/{container_id}", summary="Displays a specific container.")
def show_container(container_id: str, session: DbSession,
                   principal: Scope("containers", "show")):
    return render_container(service.get_container(session, container_id))


@router.put("/containers/{container_id}", summary="Updates a specific container.")
def update_container(container_id: str, body: ContainerBody, session: DbSession,
                     principal: AdminScope("containers", "update")):
    container = service.get_container(session, container_id)
    values = body.model_dump(exclude_unset=True)
    return render_container(service.update_container(session, container, values))


@router.delete("/containers/{container_id}", status_code=204,
               summary="Destroys a specific container (its files stay on disk).")
def destroy_container(container_id: str, session: DbSession,
                      principal: AdminScope("containers", "destroy")):
    service.delete_container(session, service.get_container(session, container_id))
    return Response(status_code=204)


# --- privileges ------------------------------------------------------------------------------

PRIVILEGES = "/containers/{container_id}/container_privileges"


@router.get(PRIVILEGES, summary="Lists all container privileges.")
def index_container_privileges(request: Request, container_id: str, session: DbSession,
                               principal: Scope("container_privileges", "index")):
    container = service.get_container(session, container_id)
    query = parse_list_query(request.query_params, service.PRIVILEGE_ATTRS)
    page = service.list_privileges(session, container, query)
    return collection("container_privileges", page, render_privilege)


@router.post(PRIVILEGES, status_code=201, summary="Creates a new container privilege.")
def create_container_privilege(container_id: str, body: PrivilegeBody, session: DbSession,
                               principal: AdminScope("container_privileges", "create")):
    container = service.get_container(session, container_id)
    privilege = service.create_privilege(session, container, body.model_dump(exclude_unset=True))
    return created(render_privilege(privilege))


@router.get(PRIVILEGES + "/{container_privilege_id}",
            summary="Displays a specific container privilege.")
def show_container_privilege(container_id: str, container_privilege_id: str,
                             session: DbSession,
                             principal: Scope("container_privileges", "show")):
    container = service.get_container(session, container_id)
    return render_privilege(service.get_privilege(session, container, container_privilege_id))


@router.put(PRIVILEGES + "/{container_privilege_id}",
            summary="Updates a specific container privilege.")
def update_container_privilege(container_id: str, container_privilege_id: str,
                               body: PrivilegeBody, session: DbSession,
                               principal: AdminScope("container_privileges", "update")):
    container = service.get_container(session, container_id)
    privilege = service.get_privilege(session, container, container_privilege_id)
    values = body.model_dump(exclude_unset=True)
    return render_privilege(service.update_privilege(session, container, privilege, values))


@router.delete(PRIVILEGES + "/{container_privilege_id}", status_code=204,
               summary="Destroys a specific container privilege.")
def destroy_container_privilege(container_id: str, container_privilege_id: str,
                                session: DbSession,
                                principal: AdminScope("container_privileges", "destroy")):
    container = service.get_container(session, container_id)
    service.delete_privilege(session, service.get_privilege(session, container,
                                                            container_privilege_id))
    return Response(status_code=204)
