"""Worker nodes: registration, heartbeats, the execution spec they receive, their reports."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from tiermover.db.base import utcnow
from tiermover.db.models import Node, Task, TaskExecution
from tiermover.service import queue
from tiermover.service.auth import Principal
from tiermover.service.errors import Forbidden, NotFound, ValidationFailed
from tiermover.service.execution_spec import execution_spec
from tiermover.service.execution_state import (
    append_log, apply_counters, last_log_index, mirror_to_task, record_items,
    remember_last_log_index,
)
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.notifications import notify_completion
from tiermover.service.scheduler import reset_after_success

NODE_ATTRS = {
    "id": Attr(Node.id, "int"),
    "name": Attr(Node.name),
    "last_heartbeat": Attr(Node.last_heartbeat, "datetime"),
    "registered_at": Attr(Node.registered_at, "datetime"),
}

# What a node may report as the end of its work on an execution, and what it becomes.
NODE_FINALS = ("done", "finished_with_warnings", "error", "paused", "stopped")


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


def claim_work(session: Session, node: Node, lease: timedelta) -> dict | None:
    """The spec of the next execution this node may run, claimed for it; None if none."""
    specs = claim_batch(session, node, lease, 1)
    return specs[0] if specs else None


def claim_batch(session: Session, node: Node, lease: timedelta, limit: int) -> list[dict]:
    """Specs of up to `limit` executions claimed for the node (its free slots), in queue
    order; an empty list when none is waiting."""
    # No heartbeat write here: an empty attempt must cost one statement, not three
    # (the node's heartbeat thread keeps it alive).
    executions = queue.claim_executions(session, node, lease, limit)
    if not executions:
        return []
    _load_tasks(session, executions)
    for execution in executions:
        append_log(session, execution, "info",
                   f"claimed by node {node.name} (attempt {execution.attempts})")
        mirror_to_task(session, execution)
    return [execution_spec(session, execution) for execution in executions]


def _load_tasks(session: Session, executions: list[TaskExecution]) -> None:
    """The executions' tasks in one SELECT: mirroring and specs then find them in the
    session instead of loading each on its own."""
    missing = {e.task_id for e in executions
               if identity_key(Task, e.task_id) not in session.identity_map}
    if missing:
        session.scalars(select(Task).where(Task.id.in_(missing))).all()


def _owned_execution(session: Session, node: Node, execution_id: str) -> TaskExecution:
    execution = _load_executions(session, [execution_id]).get(execution_id)
    if execution is None:
        raise NotFound("task_execution", "task_execution_id", execution_id)
    if execution.node_id != node.id:
        raise _lost(node, execution_id)
    return execution


def _lost(node: Node, execution_id: str) -> Forbidden:
    # The lease was lost (the node was silent too long) and the execution went back to
    # the queue: this node must drop it.
    return Forbidden(f"execution {execution_id} is no longer assigned to node {node.name}")


def _load_executions(session: Session, ids: list[str]) -> dict[str, TaskExecution]:
    """The executions with their last log idx, in one SELECT."""
    found = {}
    for execution, last_index in session.execute(
        select(TaskExecution, last_log_index(TaskExecution.id))
        .where(TaskExecution.id.in_(set(ids)))
    ):
        remember_last_log_index(session, execution.id, last_index)
        found[execution.id] = execution
    return found


def apply_report(session: Session, node: Node, execution_id: str, report: dict,
                 lease: timedelta) -> str | None:
    """Progress, log lines and finished items from a node; returns the pending command."""
    execution = _owned_execution(session, node, execution_id)
    node.last_heartbeat = utcnow()
    return _apply(session, node, execution, report, lease)


def apply_reports(session: Session, node: Node, reports: list[dict],
                  lease: timedelta) -> dict[str, dict]:
    """Several executions' reports at once (a node batches the final reports of its
    executions that end close together). Answers, per execution id, `{"command": ...}`,
    or `{"lost": message}` when the execution is no longer this node's to report on."""
    executions = _load_executions(session, [r["execution_id"] for r in reports])
    _load_tasks(session, list(executions.values()))
    node.last_heartbeat = utcnow()
    results: dict[str, dict] = {}
    for report in reports:
        execution_id = report["execution_id"]
        execution = executions.get(execution_id)
        if execution is None or execution.node_id != node.id:
            error = (_lost(node, execution_id) if execution is not None else
                     NotFound("task_execution", "task_execution_id", execution_id))
            results[execution_id] = {"lost": str(error)}
            continue
        results[execution_id] = {"command": _apply(session, node, execution, report, lease)}
    return results


def _apply(session: Session, node: Node, execution: TaskExecution, report: dict,
           lease: timedelta) -> str | None:
    execution.lease_expires_at = utcnow() + lease
    for entry in report.get("logs") or ():
        append_log(session, execution, entry.get("level", "info"), str(entry.get("msg", "")),
                   entry.get("status_percent"))
    record_items(session, execution, report.get("items") or [])
    apply_counters(execution, report.get("counters") or {})
    phase = report.get("phase")
    if phase in queue.RUNNING and execution.status != phase:
        execution.status = phase
        if phase == "calculating":
            message = f"node {node.name} is listing the sources"
        else:
            message = (f"processing {execution.to_process_files} items, "
                       f"{execution.to_process_size} bytes")
        append_log(session, execution, "info", message)
    final = report.get("final")
    if final:
        _finish(session, execution, final.get("status"), final.get("message"))
    mirror_to_task(session, execution)
    return None if final else execution.control


def _finish(session: Session, execution: TaskExecution, reported: str | None,
            message: str | None) -> None:
    if reported not in NODE_FINALS:
        raise ValidationFailed.on("final.status", "inclusion", value=reported)
    now = utcnow()
    if reported == "paused":
        execution.status = "paused"
        append_log(session, execution, "info", "paused; resume continues from here")
    elif reported == "stopped":
        system = execution.control_reason is not None
        execution.status = "stopped_by_system" if system else "stopped_by_user"
        execution.message = execution.control_reason or "stopped by user"
        execution.job_finished = now
        append_log(session, execution, "warning" if system else "info",
                   f"stopped: {execution.message}")
    else:
        execution.status = reported
        execution.message = message
        execution.job_finished = now
        level = {"done": "info", "finished_with_warnings": "warning"}.get(reported, "error")
        append_log(session, execution, level, f"finished: {reported}" + (f" ({message})" if message else ""))
    execution.control = None
    execution.control_reason = None if execution.status == "paused" else execution.control_reason
    execution.node_id = None
    execution.lease_expires_at = None
    if execution.status in queue.FINAL:
        reset_after_success(session, execution)
        notify_completion(session, execution)


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
