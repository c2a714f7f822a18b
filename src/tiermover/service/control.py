"""Control verbs on tasks (run, pause, stop, resume) and their asynchronous jobs.

A verb returns a job at once; the job completes when the verb's effect holds (run: a
node has started the execution; pause: it is paused; stop: it ended as stopped; resume:
it runs again) and fails, with a message, when the verb cannot apply.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import ActiveJob, Task, TaskExecution
from tiermover.service import queue
from tiermover.service.errors import NotFound
from tiermover.service.notifications import notify_completion
from tiermover.service.execution_state import (
    active_execution, active_execution_status, append_log, mirror_to_task,
    record_required_storages, remember_last_log_index,
)

VERBS = ("run", "pause", "stop", "resume")


def new_execution_id() -> str:
    """The start of the run in nanoseconds since the epoch, as Nodeum numbers executions."""
    return str(time.time_ns())


def _job(session: Session, task: Task, verb: str, execution: TaskExecution | None,
         status: str = "queued", message: str | None = None,
         execution_id: str | None = None) -> ActiveJob:
    job = ActiveJob(id=str(uuid.uuid4()), task_id=task.id, verb=verb, status=status,
                    message=message,
                    execution_id=execution.id if execution else execution_id)
    session.add(job)
    return job


def enqueue_execution(session: Session, task: Task, window_start=None, window_end=None,
                      reason: str = "run requested") -> TaskExecution:
    now = utcnow()
    if window_end is None and task.start_window_seconds:
        # Not started this long after it was due (now, or its window start): dropped.
        window_end = (window_start or now) + timedelta(seconds=task.start_window_seconds)
    execution = TaskExecution(
        id=new_execution_id(), task_id=task.id, name=task.name,
        workflow_type=task.workflow_type, workflow_action=task.workflow_action,
        source_type=task.source_type, destination_type=task.destination_type,
        status="in_queue", priority=task.priority, queued_at=now, creation_date=now,
        log_time=now, window_start=window_start, window_end=window_end,
        timeout_seconds=task.timeout_seconds, attempts=0,
    )
    session.add(execution)
    # The row first: the rows below refer to it (they go out together at the commit).
    session.flush()
    record_required_storages(session, execution.id, task)
    remember_last_log_index(session, execution.id, None)  # a new execution has no log yet
    append_log(session, execution, "info", f"queued ({reason}) with priority {task.priority}")
    mirror_to_task(session, execution, task)
    queue.request_wake_up(session)
    return execution


def request(session: Session, task: Task, verb: str) -> ActiveJob:
    """Carry out a control verb as far as it can go now, and return its job."""
    # Nothing flushed before the commit: the flush then updates the task before the
    # execution, in the order a node's report does. An early flush (the SELECT of a log
    # index autoflushes) would lock the execution first, and a report arriving meanwhile
    # would deadlock with this request on PostgreSQL.
    with session.no_autoflush:
        return _request(session, task, verb)


def _request(session: Session, task: Task, verb: str) -> ActiveJob:
    if verb == "run":
        return _run(session, task)
    execution = active_execution(session, task)
    if execution is None:
        return _job(session, task, verb, None, "failed",
                    f"cannot {verb}: the task has no active execution")
    if verb == "pause":
        if execution.status == "paused":
            return _job(session, task, verb, execution, "completed", "already paused")
        if execution.status == "in_queue":
            execution.status = "paused"
            append_log(session, execution, "info", "paused before it started")
            mirror_to_task(session, execution, task)
            return _job(session, task, verb, execution, "completed")
        execution.control = "pause"
        append_log(session, execution, "info", "pause requested")
    elif verb == "resume":
        if execution.status != "paused":
            return _job(session, task, verb, execution, "failed",
                        f"cannot resume: execution {execution.id} is {execution.status}, not paused")
        execution.status = "in_queue"
        execution.control = None
        append_log(session, execution, "info", "resume requested; queued again")
        queue.request_wake_up(session)
    elif verb == "stop":
        if execution.status in ("in_queue", "paused"):
            finish_without_node(session, execution, task, "stopped_by_user", "stopped by user")
            return _job(session, task, verb, execution, "completed")
        execution.control = "stop"
        execution.control_reason = None
        append_log(session, execution, "info", "stop requested")
    mirror_to_task(session, execution, task)
    return _job(session, task, verb, execution, "working")


def _run(session: Session, task: Task) -> ActiveJob:
    if not task.activate:
        return _job(session, task, "run", None, "failed",
                    "the task is not activated (set activate to 1 to run it)")
    active = active_execution_status(session, task)
    if active is not None:
        execution_id, status = active
        return _job(session, task, "run", None, "failed",
                    f"execution {execution_id} of this task is still {status}; "
                    "only one execution of a task runs at a time", execution_id=execution_id)
    return _job(session, task, "run", enqueue_execution(session, task))


def finish_without_node(session: Session, execution: TaskExecution, task: Task, status: str,
                        message: str) -> None:
    now = utcnow()
    execution.status = status
    execution.message = message
    execution.job_finished = now
    execution.control = None
    execution.node_id = None
    append_log(session, execution, "warning" if status != "stopped_by_user" else "info", message)
    mirror_to_task(session, execution, task)
    # The mail quotes the problems logged, this one's too (the task and the execution
    # are both changed by now: one flush, in the usual order).
    session.flush()
    # Ended without a node (never started, expired, lost): recipients hear of it too.
    notify_completion(session, execution)


def _evaluate(job: ActiveJob, execution: TaskExecution | None) -> tuple[str, str | None]:
    """Where the job stands now, from the state of its execution."""
    if job.status in ("completed", "failed") or execution is None:
        return job.status, job.message
    status = execution.status
    final = status in queue.FINAL
    if job.verb == "run":
        if status in queue.RUNNING or status == "paused" or final:
            return "completed", None
        return "queued", None
    if job.verb == "pause":
        if status == "paused":
            return "completed", None
        if final:
            return "failed", f"the execution ended as {status} before it could pause"
        return "working", None
    if job.verb == "stop":
        if status in ("stopped_by_user", "stopped_by_system"):
            return "completed", None
        if final:
            return "failed", f"the execution had already ended as {status}"
        return "working", None
    if job.verb == "resume":
        if status in queue.RUNNING or final:
            return "completed", None
        if status == "paused":
            return "failed", "the execution was paused again before it resumed"
        return "working", None
    return job.status, job.message


def job_status(session: Session, task: Task, verb: str, job_id: str) -> ActiveJob:
    job = session.get(ActiveJob, str(job_id))
    if job is None or job.task_id != task.id or job.verb != verb:
        raise NotFound("job", "job_id", job_id)
    execution = session.get(TaskExecution, job.execution_id) if job.execution_id else None
    status, message = _evaluate(job, execution)
    if (status, message) != (job.status, job.message):
        job.status, job.message = status, message
    return job


def render_job(job: ActiveJob) -> dict:
    body = {"job_id": job.id, "status": job.status, "progress": 0, "total": 1}
    if job.status in ("completed", "failed"):
        body["progress"] = 1
    if job.message:
        body["message"] = job.message
    return body

