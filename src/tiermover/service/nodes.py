"""Worker nodes: registration, heartbeats, listing. What they claim and report is in
`tiermover.service.dispatch`."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import Node, TaskExecution
from tiermover.service import queue
from tiermover.service.auth import Principal
from tiermover.service.errors import Forbidden, NotFound, ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page

NODE_ATTRS = {
    "id": Attr(Node.id, "int"),
    "name": Attr(Node.name),
    "last_heartbeat": Attr(Node.last_heartbeat, "datetime"),
    "registered_at": Attr(Node.registered_at, "datetime"),
}


def register(session: Session, principal: Principal, name: str, concurrency: int,
             storages: list[str], version: str | None) -> Node:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed.on("name", "blank")
    if concurrency < 1:
        raise ValidationFailed.on("concurrency", "greater_than_or_equal_to", count=1)
    node = session.scalar(select(Node).where(Node.name == name))
    if node is None:
        node = Node(name=name)
        session.add(node)
    elif node.user_id not in (None, principal.user_id) and not principal.is_admin:
        raise ValidationFailed.on("name", "taken", value=name)
    node.user_id = principal.user_id
    node.concurrency = concurrency
    node.storages = json.dumps(sorted(set(storages)))
    node.version = version
    node.last_heartbeat = utcnow()
    session.flush()
    queue.request_wake_up(session)
    return node


def get_node(session: Session, principal: Principal, node_id: int) -> Node:
    node = session.get(Node, node_id)
    if node is None:
        raise NotFound("node", "node_id", node_id)
    if node.user_id != principal.user_id and not principal.is_admin:
        raise Forbidden("This node was registered by another user")
    return node


def heartbeat(session: Session, node: Node, lease: timedelta) -> dict[str, str]:
    """Renew the node's leases; answer the commands pending for its executions."""
    node.last_heartbeat = utcnow()
    queue.renew_leases(session, node, lease)
    running = session.scalars(select(TaskExecution).where(
        TaskExecution.node_id == node.id, TaskExecution.status.in_(queue.RUNNING)))
    return {execution.id: execution.control for execution in running if execution.control}


def list_nodes(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(Node), NODE_ATTRS, query, Node.id)


def running_on(session: Session, node: Node) -> list[str]:
    return list(session.scalars(select(TaskExecution.id).where(
        TaskExecution.node_id == node.id, TaskExecution.status.in_(queue.RUNNING))))


EMBEDDED_KEY_NAME = "embedded node"


def provision_embedded_key(session: Session) -> str | None:
    """A fresh `nodes/work` key for the server's own node (older ones are revoked)."""
    from tiermover.db.models import ApiKey, User
    from tiermover.service.users import create_api_key, delete_api_key

    admin = session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id).limit(1))
    if admin is None:
        return None
    for old in session.scalars(select(ApiKey).where(ApiKey.user_id == admin.id,
                                                    ApiKey.name == EMBEDDED_KEY_NAME)):
        delete_api_key(session, old)
    principal = Principal(user_id=admin.id, username=admin.username, is_admin=True)
    _, key = create_api_key(session, principal, {
        "name": EMBEDDED_KEY_NAME, "api_key_scopes": [{"controller": "nodes", "action": "work"}]})
    return key
