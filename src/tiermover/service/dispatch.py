"""What nodes claim and what they report back: executions handed out in batches, and
batches of reports applied with a few statements for all of them.

A busy node sends the final reports of the executions that ended since its last request
together, and claims in the same request as many executions as it has free slots, so the
fixed cost of a request (authentication, transactions, loading the node) is shared.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from tiermover.db.base import utcnow
from tiermover.db.models import Node, Task, TaskExecution, TaskOption, TaskSchedule
from tiermover.service import catalog, queue
from tiermover.service.errors import Forbidden, NotFound, ValidationFailed
from tiermover.service.execution_spec import execution_specs
from tiermover.service.execution_state import (
    append_log, apply_counters, apply_to_catalog, last_log_index, log_items, mirror_to_task,
    remember_last_log_index, store_items,
)
from tiermover.service.notifications import notify_completion
from tiermover.service.scheduler import reset_after_success

# What a node may report as the end of its work on an execution, and what it becomes.
NODE_FINALS = ("done", "finished_with_warnings", "error", "paused", "stopped")


# --- claims ---------------------------------------------------------------------------------

def claim_batch(session: Session, node: Node, lease: timedelta, limit: int) -> list[dict]:
    """Specs of up to `limit` executions claimed for the node (its free slots), in queue
    order; an empty list when none is waiting."""
    # No heartbeat write here: an empty attempt must cost one statement, not three
    # (the node's heartbeat thread keeps it alive).
    executions = queue.claim_executions(session, node, lease, limit)
    if not executions:
        return []
    tasks = _load_tasks(session, executions)
    for execution in executions:
        append_log(session, execution, "info",
                   f"claimed by node {node.name} (attempt {execution.attempts})")
        mirror_to_task(session, execution, tasks[execution.task_id])
    return execution_specs(session, executions)


def _load_tasks(session: Session, executions) -> dict[int, Task]:
    """The executions' tasks in one SELECT (those the session does not hold already).
    The caller keeps the dict while it works: the session only holds weak references to
    unchanged objects, and a later `session.get` must still find them."""
    tasks, missing = {}, set()
    for execution in executions:
        task = session.identity_map.get(identity_key(Task, execution.task_id))
        if task is not None:
            tasks[task.id] = task
        else:
            missing.add(execution.task_id)
    if missing:
        tasks.update((t.id, t) for t in session.scalars(_TASKS, {"ids": sorted(missing)}))
    return tasks


_TASKS = select(Task).where(Task.id.in_(bindparam("ids", expanding=True)))
# The executions with their tasks, their last log idx, whether the task has a schedule
# (whose counters of missed runs a run that ends done clears; most tasks have none) and
# its option full_report (what the catalog logs per file).
_EXECUTIONS = (select(TaskExecution, Task, last_log_index(TaskExecution.id),
                      exists().where(TaskSchedule.task_id == Task.id),
                      select(TaskOption.value)
                      .where(TaskOption.task_id == Task.id, TaskOption.type == "full_report")
                      .limit(1).scalar_subquery())
               .join(Task, Task.id == TaskExecution.task_id)
               .where(TaskExecution.id.in_(bindparam("ids", expanding=True))))


# --- reports --------------------------------------------------------------------------------

def _lost(node: Node, execution_id: str) -> Forbidden:
    # The lease was lost (the node was silent too long) and the execution went back to
    # the queue: this node must drop it.
    return Forbidden(f"execution {execution_id} is no longer assigned to node {node.name}")


def _load_executions(session: Session, ids: list[str]
                     ) -> tuple[dict[str, TaskExecution], dict[int, Task], set[int], set[int]]:
    """The executions with their tasks and last log idx, the ids of those tasks that
    have a schedule and of those that ask for a full report, in one SELECT."""
    executions, tasks, scheduled, full_reports = {}, {}, set(), set()
    for execution, task, last_index, has_schedule, full_report in session.execute(
            _EXECUTIONS, {"ids": sorted(set(ids))}):
        remember_last_log_index(session, execution.id, last_index)
        executions[execution.id] = execution
        tasks[task.id] = task
        if has_schedule:
            scheduled.add(task.id)
        if catalog.is_set(full_report):
            full_reports.add(task.id)
    return executions, tasks, scheduled, full_reports


def apply_report(session: Session, node: Node, execution_id: str, report: dict,
                 lease: timedelta) -> str | None:
    """Progress, log lines and finished items of one execution; returns the pending
    command. Raises NotFound / Forbidden (the node lost it)."""
    node.last_heartbeat = utcnow()
    results, errors = _apply_reports(session, node, [dict(report, execution_id=execution_id)],
                                     lease)
    if execution_id in errors:
        raise errors[execution_id]
    return results[execution_id]["command"]


def apply_reports(session: Session, node: Node, reports: list[dict],
                  lease: timedelta) -> dict[str, dict]:
    """Several executions' reports at once. Answers, per execution id, `{"command": ...}`
    (pause/stop pending, or None), or `{"lost": message}` when the execution is no longer
    this node's to report on (its lease expired and it went back to the queue).

    Statements are shared by the whole batch: one SELECT of the executions, one of their
    tasks, one INSERT of the finished items, one flush of the logs and state changes;
    only the catalog is applied report by report.
    """
    return _apply_reports(session, node, reports, lease)[0]


def _apply_reports(session: Session, node: Node, reports: list[dict], lease: timedelta
                   ) -> tuple[dict[str, dict], dict[str, Exception]]:
    for report in reports:
        final = report.get("final")
        if final and final.get("status") not in NODE_FINALS:
            raise ValidationFailed.on("final.status", "inclusion", value=final.get("status"))
    executions, tasks, scheduled, full_reports = _load_executions(
        session, [r["execution_id"] for r in reports])
    results: dict[str, dict] = {}
    errors: dict[str, Exception] = {}
    accepted: list[tuple[dict, TaskExecution]] = []
    for report in reports:
        execution_id = report["execution_id"]
        execution = executions.get(execution_id)
        if execution is None or execution.node_id != node.id:
            error = (_lost(node, execution_id) if execution is not None else
                     NotFound("task_execution", "task_execution_id", execution_id))
            results[execution_id] = {"lost": str(error)}
            errors[execution_id] = error
            continue
        accepted.append((report, execution))
    if not accepted:
        return results, errors
    lease_end = utcnow() + lease
    # Nothing reaches the database until every report is applied: the logs, items and
    # state changes of the whole batch then go out together.
    applied = []
    with session.no_autoflush:
        fresh_items = store_items(session, [(execution, report.get("items") or [])
                                            for report, execution in accepted])
        for (report, execution), fresh in zip(accepted, fresh_items):
            if execution.node_id != node.id:  # a report after its final in one batch
                results[execution.id] = {"lost": str(_lost(node, execution.id))}
                continue
            execution.lease_expires_at = lease_end
            results[execution.id] = {"command": _apply(
                session, node, execution, tasks[execution.task_id], report, fresh,
                execution.task_id in scheduled)}
            applied.append((report, execution, fresh))
    session.flush()
    for report, execution, fresh in applied:
        apply_to_catalog(session, execution, fresh, execution.task_id in full_reports)
        if report.get("final") and execution.status in queue.FINAL:
            # After the flush: the mail quotes the problems logged, this report's too.
            notify_completion(session, execution)
    return results, errors


def _apply(session: Session, node: Node, execution: TaskExecution, task: Task, report: dict,
           fresh_items: list[dict], scheduled: bool) -> str | None:
    for entry in report.get("logs") or ():
        append_log(session, execution, entry.get("level", "info"), str(entry.get("msg", "")),
                   entry.get("status_percent"))
    log_items(session, execution, fresh_items)
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
        _finish(session, execution, final.get("status"), final.get("message"), scheduled)
    mirror_to_task(session, execution, task)
    return None if final else execution.control


def _finish(session: Session, execution: TaskExecution, reported: str,
            message: str | None, scheduled: bool = True) -> None:
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
        append_log(session, execution, level,
                   f"finished: {reported}" + (f" ({message})" if message else ""))
    execution.control = None
    execution.control_reason = None if execution.status == "paused" else execution.control_reason
    execution.node_id = None
    execution.lease_expires_at = None
    if execution.status in queue.FINAL and scheduled:
        reset_after_success(session, execution)
