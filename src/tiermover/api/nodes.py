"""The node protocol (register, claim with a long-poll, heartbeat, report) and GET /nodes.

Nodes authenticate with an API key holding the scope `nodes/work`. The server's embedded
node speaks exactly this protocol too.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns
from tiermover.db.models import Node
from tiermover.service import nodes as node_service
from tiermover.service import queue
from tiermover.service.auth import Principal, authenticate
from tiermover.service.execution_spec import known_storages

router = APIRouter(tags=["nodes"])

MAX_WAIT_SECONDS = 30.0


class RegisterBody(BaseModel):
    name: str = Field(max_length=255)
    concurrency: int = 1
    storages: list[str] = []
    version: str | None = None


class HeartbeatBody(BaseModel):
    running: list[str] = []


class ReportBody(BaseModel):
    phase: str | None = None
    counters: dict[str, int] = {}
    logs: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None


def _lease(request: Request):
    return request.app.state.settings.lease


def render_node(node: Node, running: list[str], lease_seconds: float) -> dict:
    body = columns(node, ("id", "name", "concurrency", "version", "registered_at", "last_heartbeat"))
    body["storages"] = json.loads(node.storages or "[]")
    body["running_executions"] = running
    age = time.time() - node.last_heartbeat.timestamp()
    body["online"] = age <= lease_seconds
    return body


@router.get("/nodes", summary="Worker nodes, their last heartbeat, running executions and storages.")
def index_nodes(request: Request, session: DbSession, principal: Scope("nodes", "index")):
    page = node_service.list_nodes(session, parse_list_query(request.query_params, node_service.NODE_ATTRS))
    lease = _lease(request).total_seconds()
    return collection("nodes", page,
                      lambda node: render_node(node, node_service.running_on(session, node), lease))


@router.get("/nodes/-/storages", summary="Every storage root a node may reach (for registration).")
def storages(session: DbSession, principal: Scope("nodes", "work")):
    return {"storages": known_storages(session)}


@router.post("/nodes", status_code=201, summary="Register (or re-register) a node.")
def register(body: RegisterBody, request: Request, session: DbSession,
             principal: Scope("nodes", "work")):
    node = node_service.register(session, principal, body.name, body.concurrency, body.storages,
                                 body.version)
    body = render_node(node, [], _lease(request).total_seconds())
    body["lease_seconds"] = _lease(request).total_seconds()
    return JSONResponse(body, status_code=201)


@router.post("/nodes/{node_id}/heartbeat", summary="Renew leases; answers pending commands.")
def heartbeat(node_id: int, body: HeartbeatBody, request: Request, session: DbSession,
              principal: Scope("nodes", "work")):
    node = node_service.get_node(session, principal, node_id)
    return {"commands": node_service.heartbeat(session, node, _lease(request))}


def _claim_with(session: Session, request: Request, principal: Principal,
                node_id: int) -> dict | None:
    node = node_service.get_node(session, principal, node_id)
    return node_service.claim_work(session, node, _lease(request))


def _claim(request: Request, principal: Principal, node_id: int) -> dict | None:
    with request.app.state.session_factory.begin() as session:
        return _claim_with(session, request, principal, node_id)


@router.post("/nodes/{node_id}/claim",
             summary="Long-poll for an execution this node can run (204 when none came).")
async def claim(node_id: int, request: Request,
                wait: float = Query(25.0, ge=0, le=MAX_WAIT_SECONDS)):
    # Authenticated here rather than through a dependency: a dependency would hold a
    # database session for the whole long-poll.
    principal = await run_in_threadpool(_authenticate, request)
    deadline = time.monotonic() + wait
    while True:
        # A node that went away (killed, stopped) must not be handed work it will never
        # run: that execution would sit claimed until its lease expired.
        if await request.is_disconnected():
            return Response(status_code=204)
        seen = queue.signal.generation
        spec = await run_in_threadpool(_claim, request, principal, node_id)
        if spec is not None:
            return JSONResponse(spec)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        await queue.signal.wait(seen, remaining)


def _authenticate(request: Request) -> Principal:
    with request.app.state.session_factory() as session:
        principal = authenticate(session, request.headers.get("authorization"))
        session.commit()
    principal.require_scope("nodes", "work")
    return principal


@router.post("/nodes/{node_id}/executions/{execution_id}/report",
             summary="Progress, logs and finished items of a running execution; a final "
                     "report with claim_next=true also claims the node's next execution.")
def report(node_id: int, execution_id: str, body: ReportBody, request: Request,
           session: DbSession, principal: Scope("nodes", "work"),
           claim_next: bool = Query(False)):
    node = node_service.get_node(session, principal, node_id)
    command = node_service.apply_report(session, node, execution_id, body.model_dump(),
                                        _lease(request))
    if not (claim_next and body.final):
        return {"command": command}
    # The outcome is committed on its own before the claim: a claim that fails must not
    # undo it. A busy node thus saves the claim request between two executions.
    session.commit()
    return {"command": None, "next": _claim_with(session, request, principal, node_id)}
