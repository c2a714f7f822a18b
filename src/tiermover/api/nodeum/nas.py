"""/api/v2/nas and NAS shares, reached under /nas/{id}, /pools/{id} and on their own.

A share's `path` is a directory the nodes already reach (mounted by the system); the
mount status and the test job both check that it is a readable directory.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from tiermover.api.deps import AdminScope, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, created
from tiermover.api.nodeum.storage_render import (
    CENSORED, render_mount_status, render_nas, render_nas_share,
)
from tiermover.service.auth import Principal
from tiermover.service.storage import nas as service
from tiermover.service.storage.jobs import board_for
from tiermover.service.storage.pools import get_pool

router = APIRouter(tags=["nas"])

NasType = Literal["smb_v1", "smb_v2_1", "smb_v3", "nfs_v3", "nfs_v4", "storenext_v5"]
TEST_JOB = "nas_share_test"


class NasBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    host: str | None = None
    type: NasType | None = None
    comment: str | None = None
    price: str | None = None


class NasShareBody(BaseModel):
    """Writable share fields; nas_id, pool_id and the file counts are read-only."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    path: str | None = None
    options: str | None = None
    username: str | None = None
    password: str | None = None


def share_values(body: NasShareBody) -> dict:
    values = body.model_dump(exclude_unset=True)
    # A share shown to a caller without the password scope and sent back keeps its password.
    if values.get("password") == CENSORED:
        del values["password"]
    return values


def shares_of(principal: Principal, page) -> JSONResponse:
    return collection("nas_shares", page, lambda share: render_nas_share(share, principal))


def mount_status(session, share) -> dict:
    problem = service.path_problem(share.path)
    message = f"{share.path} {problem}" if problem else f"{share.path} is reachable"
    return render_mount_status(problem is None, message, service.mount_info(session, share))


# --- NAS ------------------------------------------------------------------------------------

@router.get("/nas", summary="Lists all NAS.")
def index_nas(request: Request, session: DbSession, principal: Scope("nas", "index")):
    query = parse_list_query(request.query_params, service.NAS_ATTRS)
    return collection("nas", service.list_nas(session, query), render_nas)


@router.post("/nas", status_code=201, summary="Creates a new NAS.")
def create_nas(body: NasBody, session: DbSession, principal: AdminScope("nas", "create")):
    return created(render_nas(service.create_nas(session, body.model_dump(exclude_unset=True))))


@router.get("/nas/{nas_id}", summary="Displays a specific NAS.")
def show_nas(nas_id: str, session: DbSession, principal: Scope("nas", "show")):
    return render_nas(service.get_nas(session, nas_id))


@router.put("/nas/{nas_id}", summary="Updates a specific NAS.")
def update_nas(nas_id: str, body: NasBody, session: DbSession,
               principal: AdminScope("nas", "update")):
    nas = service.get_nas(session, nas_id)
    return render_nas(service.update_nas(session, nas, body.model_dump(exclude_unset=True)))


@router.delete("/nas/{nas_id}", status_code=204,
               summary="Destroys a specific NAS and its shares (their directories stay).")
def destroy_nas(nas_id: str, session: DbSession, principal: AdminScope("nas", "destroy")):
    service.delete_nas(session, service.get_nas(session, nas_id))
    return Response(status_code=204)


# --- the share test job ----------------------------------------------------------------------

@router.put("/nas/{nas_id}/nas_shares/-/test", status_code=202,
            summary="Test a NAS share (its path must be a readable directory).")
def test_nas_share(request: Request, nas_id: str, body: NasShareBody, session: DbSession,
                   principal: AdminScope("nas_shares", "test")):
    nas = service.get_nas(session, nas_id)
    problem = service.path_problem(body.path)
    failure = f"Path {problem}" if problem else None
    job = board_for(request.app.state).finish(TEST_JOB, nas.id, failure)
    return JSONResponse(job.as_status(), status_code=202)


@router.get("/nas/{nas_id}/nas_shares/-/test", summary="Get the result of a NAS share test.")
def test_result_nas_share(request: Request, nas_id: str, session: DbSession,
                          principal: AdminScope("nas_shares", "test"),
                          job_id: str = Query(description="ID of active job")):
    nas = service.get_nas(session, nas_id)
    return board_for(request.app.state).get(job_id, TEST_JOB, nas.id).as_status()


# --- shares of a NAS ---------------------------------------------------------------------------

BY_NAS = "/nas/{nas_id}/nas_shares"
NAS_SCOPED_ATTRS = {k: v for k, v in service.SHARE_ATTRS.items() if k != "nas_id"}
POOL_SCOPED_ATTRS = {k: v for k, v in service.SHARE_ATTRS.items() if k != "pool_id"}


@router.get(BY_NAS, summary="Lists all NAS shares of a NAS.")
def index_nas_shares_by_nas(request: Request, nas_id: str, session: DbSession,
                            principal: Scope("nas_shares", "index")):
    nas = service.get_nas(session, nas_id)
    query = parse_list_query(request.query_params, NAS_SCOPED_ATTRS)
    return shares_of(principal, service.list_shares(session, query, nas=nas))


@router.post(BY_NAS, status_code=201, summary="Creates a new NAS share.")
def create_nas_share_by_nas(nas_id: str, body: NasShareBody, session: DbSession,
                            principal: AdminScope("nas_shares", "create")):
    nas = service.get_nas(session, nas_id)
    share = service.create_share(session, nas, share_values(body))
    return created(render_nas_share(share, principal))


@router.get(BY_NAS + "/{nas_share_id}", summary="Displays a specific NAS share.")
def show_nas_share_by_nas(nas_id: str, nas_share_id: str, session: DbSession,
                          principal: Scope("nas_shares", "show")):
    nas = service.get_nas(session, nas_id)
    return render_nas_share(service.get_share(session, nas_share_id, nas=nas), principal)


@router.put(BY_NAS + "/{nas_share_id}", summary="Updates a specific NAS share.")
def update_nas_share_by_nas(nas_id: str, nas_share_id: str, body: NasShareBody,
                            session: DbSession, principal: AdminScope("nas_shares", "update")):
    share = service.get_share(session, nas_share_id, nas=service.get_nas(session, nas_id))
    return render_nas_share(service.update_share(session, share, share_values(body)), principal)


@router.delete(BY_NAS + "/{nas_share_id}", status_code=204,
               summary="Destroys a specific NAS share (its directory stays).")
def destroy_nas_share_by_nas(nas_id: str, nas_share_id: str, session: DbSession,
                             principal: AdminScope("nas_shares", "destroy")):
    share = service.get_share(session, nas_share_id, nas=service.get_nas(session, nas_id))
    service.delete_share(session, share)
    return Response(status_code=204)


@router.get(BY_NAS + "/{nas_share_id}/mount", summary="Get mount status of NAS share.")
def mount_status_nas_share_by_nas(nas_id: str, nas_share_id: str, session: DbSession,
                                  principal: Scope("nas_shares", "mount_status")):
    share = service.get_share(session, nas_share_id, nas=service.get_nas(session, nas_id))
    return mount_status(session, share)


# --- all shares --------------------------------------------------------------------------------

@router.get("/nas_shares", summary="Lists all NAS shares.")
def index_nas_shares(request: Request, session: DbSession,
                     principal: Scope("nas_shares", "index")):
    query = parse_list_query(request.query_params, service.SHARE_ATTRS)
    return shares_of(principal, service.list_shares(session, query))


@router.get("/nas_shares/{nas_share_id}", summary="Displays a specific NAS share.")
def show_nas_share(nas_share_id: str, session: DbSession,
                   principal: Scope("nas_shares", "show")):
    return render_nas_share(service.get_share(session, nas_share_id), principal)


@router.put("/nas_shares/{nas_share_id}", summary="Updates a specific NAS share.")
def update_nas_share(nas_share_id: str, body: NasShareBody, session: DbSession,
                     principal: AdminScope("nas_shares", "update")):
    share = service.get_share(session, nas_share_id)
    return render_nas_share(service.update_share(session, share, share_values(body)), principal)


@router.delete("/nas_shares/{nas_share_id}", status_code=204,
               summary="Destroys a specific NAS share (its directory stays).")
def destroy_nas_share(nas_share_id: str, session: DbSession,
                      principal: AdminScope("nas_shares", "destroy")):
    service.delete_share(session, service.get_share(session, nas_share_id))
    return Response(status_code=204)


@router.get("/nas_shares/{nas_share_id}/mount", summary="Get mount status of NAS share.")
def mount_status_nas_share(nas_share_id: str, session: DbSession,
                           principal: Scope("nas_shares", "mount_status")):
    return mount_status(session, service.get_share(session, nas_share_id))


# --- shares of a pool --------------------------------------------------------------------------

BY_POOL = "/pools/{pool_id}/nas_shares"


@router.get(BY_POOL, summary="Lists all NAS shares of a pool.")
def index_nas_shares_by_pool(request: Request, pool_id: str, session: DbSession,
                             principal: Scope("nas_shares", "index")):
    pool = get_pool(session, pool_id)
    query = parse_list_query(request.query_params, POOL_SCOPED_ATTRS)
    return shares_of(principal, service.list_shares(session, query, pool=pool))


@router.get(BY_POOL + "/{nas_share_id}", summary="Displays a specific NAS share of a pool.")
def show_nas_share_by_pool(pool_id: str, nas_share_id: str, session: DbSession,
                           principal: Scope("nas_shares", "show")):
    share = service.get_share(session, nas_share_id, pool=get_pool(session, pool_id))
    return render_nas_share(share, principal)


@router.put(BY_POOL + "/{nas_share_id}", summary="Updates a specific NAS share of a pool.")
def update_nas_share_by_pool(pool_id: str, nas_share_id: str, body: NasShareBody,
                             session: DbSession, principal: AdminScope("nas_shares", "update")):
    share = service.get_share(session, nas_share_id, pool=get_pool(session, pool_id))
    return render_nas_share(service.update_share(session, share, share_values(body)), principal)


@router.delete(BY_POOL + "/{nas_share_id}", status_code=204,
               summary="Destroys a specific NAS share of a pool (its directory stays).")
def destroy_nas_share_by_pool(pool_id: str, nas_share_id: str, session: DbSession,
                              principal: AdminScope("nas_shares", "destroy")):
    share = service.get_share(session, nas_share_id, pool=get_pool(session, pool_id))
    service.delete_share(session, share)
    return Response(status_code=204)


@router.get(BY_POOL + "/{nas_share_id}/mount", summary="Get mount status of NAS share.")
def mount_status_nas_share_by_pool(pool_id: str, nas_share_id: str, session: DbSession,
                                   principal: Scope("nas_shares", "mount_status")):
    share = service.get_share(session, nas_share_id, pool=get_pool(session, pool_id))
    return mount_status(session, share)
