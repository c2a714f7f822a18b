"""The node protocol (register, claim with a long-poll, heartbeat, report) and GET /nodes.

Nodes authenticate with an API key holding the scope `nodes/work`. The server's embedded
node speaks exactly this protocol too.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns
from tiermover.db.models import Node
from tiermover.service import dispatch
from tiermover.service import nodes as node_service
from tiermover.service import queue
from tiermover.service.auth import Principal, authenticate
from tiermover.service.execution_spec import known_storages

router = APIRouter(tags=["nodes"])
log = logging.getLogger("tiermover.nodes")

MAX_WAIT_SECONDS = 30.0
# Bounds of one request: executions claimed at once, reports carried at once.
MAX_CLAIM = 100
MAX_REPORTS = 1000


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


class FinalOutcome(BaseModel):
    status: Literal[dispatch.NODE_FINALS]
    message: str | None = None


class ExecutionReport(ReportBody):
    execution_id: str = Field(max_length=32)
    final: FinalOutcome | None = None


class ReportsBody(BaseModel):
    reports: list[ExecutionReport] = Field([], max_length=MAX_REPORTS)
    claim: int = Field(0, ge=0, le=MAX_CLAIM)


def _json_body(model: type[BaseModel]):
    """A body read by pydantic straight from its bytes, in one pass: a report carries
    thousands of items, and reading them into Python objects first (what a body
    parameter does) and validating those next costs the server several times more.
    Invalid bodies get the same 422 as any other."""
    async def parse(request: Request) -> BaseModel:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False)) from None

    return Depends(parse)


def _as_dict(report: ReportBody) -> dict:
    """The report as the dispatch service takes it. Shallow: its items and logs are the
    lists just parsed, which `model_dump()` would copy item by item for nothing."""
    body = {name: getattr(report, name) for name in type(report).model_fields}
    if isinstance(report.final, BaseModel):
        body["final"] = report.final.model_dump()
    return body


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


def _claim_with(session: Session, request: Request, principal: Principal, node_id: int,
                limit: int) -> list[dict]:
    node = node_service.get_node(session, principal, node_id)
    return dispatch.claim_batch(session, node, _lease(request), limit)


def _claim(request: Request, principal: Principal, node_id: int, limit: int) -> list[dict]:
    with request.app.state.session_factory.begin() as session:
        return _claim_with(session, request, principal, node_id, limit)


@router.post("/nodes/{node_id}/claim",
             summary="Long-poll for executions this node can run (204 when none came).")
async def claim(node_id: int, request: Request,
                wait: float = Query(25.0, ge=0, le=MAX_WAIT_SECONDS),
                max: int | None = Query(None, ge=1, le=MAX_CLAIM)):  # noqa: A002 - the API's name
    """Without `max`: one execution's spec. With `max`: `{"executions": [...]}`, up to
    `max` of them (a node asks for its free slots)."""
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
        specs = await run_in_threadpool(_claim, request, principal, node_id, max or 1)
        if specs:
            return JSONResponse(specs[0] if max is None else {"executions": specs})
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


def _exchange(request: Request, node_id: int, body: ReportsBody) -> dict:
    with request.app.state.session_factory() as session:
        principal = authenticate(session, request.headers.get("authorization"))
        principal.require_scope("nodes", "work")
        node = node_service.get_node(session, principal, node_id)
        results = dispatch.apply_reports(
            session, node, [_as_dict(report) for report in body.reports], _lease(request))
        executions = []
        if body.claim:
            # In a savepoint: a claim that fails must not undo the reports, which commit
            # with it otherwise (one commit, one WAL flush, per request).
            try:
                with session.begin_nested():
                    executions = dispatch.claim_batch(session, node, _lease(request),
                                                      body.claim)
            except Exception:
                log.exception("claim for node %s failed; its reports are kept", node.name)
                executions = []
        session.commit()
        return {"results": results, "executions": executions}


@router.post("/nodes/{node_id}/reports",
             summary="Reports of several executions at once; `claim` also claims up to that "
                     "many executions for the node's free slots (no waiting).")
async def exchange(node_id: int, body: Annotated[ReportsBody, _json_body(ReportsBody)],
                   request: Request):
    # One thread hop for authentication, reports and claim: a busy node sends one such
    # request per batch of executions that ended, so its fixed cost counts.
    return JSONResponse(await run_in_threadpool(_exchange, request, node_id, body))


@router.post("/nodes/{node_id}/executions/{execution_id}/report",
             summary="Progress, logs and finished items of a running execution; a final "
                     "report with claim_next=true also claims the node's next execution.")
def report(node_id: int, execution_id: str,
           body: Annotated[ReportBody, _json_body(ReportBody)], request: Request,
           session: DbSession, principal: Scope("nodes", "work"),
           claim_next: bool = Query(False)):
    node = node_service.get_node(session, principal, node_id)
    command = dispatch.apply_report(session, node, execution_id, _as_dict(body),
                                    _lease(request))
    if not (claim_next and body.final):
        return {"command": command}
    # The outcome is committed on its own before the claim: a claim that fails must not
    # undo it. A busy node thus saves the claim request between two executions.
    session.commit()
    claimed = _claim_with(session, request, principal, node_id, 1)
    return {"command": None, "next": claimed[0] if claimed else None}
