"""The catalog records a node's running execution works from (see
`tiermover.node.references` for the kinds and records). Part of the node protocol:
nodes authenticate with an API key holding the scope `nodes/work`."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tiermover.api.deps import DbSession, Scope
from tiermover.service import nodes as node_service
from tiermover.service.catalog_references import MAX_LIMIT, references

router = APIRouter(tags=["nodes"])


@router.get("/nodes/{node_id}/executions/{execution_id}/references",
            summary="A page of the catalog records a running execution works from.")
def execution_references(node_id: int, execution_id: str, session: DbSession,
                         principal: Scope("nodes", "work"), kind: str = Query(...),
                         after: str | None = Query(None),
                         limit: int = Query(1000, ge=1, le=MAX_LIMIT)):
    node = node_service.get_node(session, principal, node_id)
    return references(session, node, execution_id, kind, after, limit)
