"""/api/v2/pools: pools of secondary storage, and their members (PoolUp lists).

The members themselves are listed under /pools/{id}/tapes, /nas_shares and
/cloud_buckets (served with tapes, NAS shares and cloud buckets).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from tiermover.api.deps import AdminScope, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, created
from tiermover.api.nodeum.storage_render import render_pool
from tiermover.service.storage import pools as service

router = APIRouter(tags=["pools"])

PoolType = Literal["active_archive", "offline_archive", "data_exchange", "scratch",
                   "data_enrichment", "primary"]


class PoolBody(BaseModel):
    """Pool fields plus PoolUp: each member list, when given, replaces that kind's members."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    comment: str | None = None
    type: PoolType | None = None
    content: Literal["tape", "cloud", "nas"] | None = None
    storage_id: int | None = None
    tape_write_protect_when_full: bool | None = None
    tape_ids: list[int] | None = None
    nas_share_ids: list[int] | None = None
    cloud_bucket_ids: list[int] | None = None


@router.get("/pools", summary="Lists all pools.")
def index_pools(request: Request, session: DbSession, principal: Scope("pools", "index")):
    query = parse_list_query(request.query_params, service.POOL_ATTRS)
    return collection("pools", service.list_pools(session, query), render_pool)


@router.post("/pools", status_code=201, summary="Creates a new pool.")
def create_pool(body: PoolBody, session: DbSession, principal: AdminScope("pools", "create")):
    return created(render_pool(service.create_pool(session, body.model_dump(exclude_unset=True))))


@router.get("/pools/{pool_id}", summary="Displays a specific pool.")
def show_pool(pool_id: str, session: DbSession, principal: Scope("pools", "show")):
    return render_pool(service.get_pool(session, pool_id))


@router.put("/pools/{pool_id}", summary="Updates a specific pool.")
def update_pool(pool_id: str, body: PoolBody, session: DbSession,
                principal: AdminScope("pools", "update")):
    pool = service.get_pool(session, pool_id)
    return render_pool(service.update_pool(session, pool, body.model_dump(exclude_unset=True)))


@router.delete("/pools/{pool_id}", status_code=204,
               summary="Destroys a specific pool (its members stay, in no pool).")
def destroy_pool(pool_id: str, session: DbSession, principal: AdminScope("pools", "destroy")):
    service.delete_pool(session, service.get_pool(session, pool_id))
    return Response(status_code=204)
