"""The state of an execution and of its task: logs, checkpoints, mirroring, completion."""

from __future__ import annotations

import logging

from sqlalchemy import String, bindparam, cast, func, literal, select, union
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.bulk import insert_rows
from tiermover.db.models import (
    ExecutionItem, ExecutionLog, ExecutionStorage, Task, TaskDestination, TaskExecution,
    TaskSource,
)
from tiermover.service import catalog, queue
from tiermover.service.storage import tape_spec

log = logging.getLogger("tiermover.executions")

LEVELS = ("debug", "info", "warning", "error")


# Statements on the path of every execution are built once, with bound parameters: SQLAlchemy
# then skips their construction and cache-key computation on each use.
_ACTIVE_EXECUTION = (
    select(TaskExecution)
    .where(TaskExecution.task_id == bindparam("task_id"),
           TaskExecution.status.in_(queue.ACTIVE))
    .order_by(TaskExecution.creation_date.desc())
    .limit(1)
)


_ACTIVE_EXECUTION_STATUS = (
    select(TaskExecution.id, TaskExecution.status)
    .where(TaskExecution.task_id == bindparam("task_id"),
           TaskExecution.status.in_(queue.ACTIVE))
    .order_by(TaskExecution.creation_date.desc())
    .limit(1)
)


def active_execution(session: Session, task: Task) -> TaskExecution | None:
    return session.scalar(_ACTIVE_EXECUTION, {"task_id": task.id})


def active_execution_status(session: Session, task: Task) -> tuple[str, str] | None:
    """(id, status) of the task's active execution, without loading it."""
    row = session.execute(_ACTIVE_EXECUTION_STATUS, {"task_id": task.id}).first()
    return tuple(row) if row else None


def latest_execution_id(session: Session, task: Task) -> str | None:
    return session.scalar(select(TaskExecution.id).where(TaskExecution.task_id == task.id)
                          .order_by(TaskExecution.creation_date.desc()).limit(1))


def log_page(session: Session, execution_id: str, offset: int, limit: int) -> list[ExecutionLog]:
    return list(session.scalars(
        select(ExecutionLog).where(ExecutionLog.execution_id == execution_id)
        .order_by(ExecutionLog.idx).offset(offset).limit(limit)))


def _storage_keys():
    """(execution_id, key) of every storage a task's parts use ("container:3",
    "nas_share:7", "cloud_bucket:2"), once each."""
    execution_id = bindparam("execution_id", type_=String)
    selects = []
    for model in (TaskSource, TaskDestination):
        for kind, column in (("container", model.container_id),
                             ("nas_share", model.nas_share_id),
                             ("cloud_bucket", model.cloud_bucket_id)):
            key = literal(f"{kind}:", String) + cast(column, String)
            selects.append(select(execution_id, key).where(
                model.task_id == bindparam("task_id"), column.is_not(None)))
    return union(*selects)


_RECORD_STORAGES = ExecutionStorage.__table__.insert().from_select(
    ["execution_id", "storage_key"], _storage_keys())


def record_required_storages(session: Session, execution_id: str, task: Task) -> None:
    """The storages an execution needs (only nodes reaching them all may claim it): those
    of its task's sources and destinations in one INSERT ... SELECT, on the session's
    connection, which does not flush what the session holds; then the tape libraries it
    needs."""
    session.connection().execute(_RECORD_STORAGES,
                                 {"execution_id": execution_id, "task_id": task.id})
    session.add_all(ExecutionStorage(execution_id=execution_id, storage_key=key)
                    for key in sorted(tape_spec.required_library_keys(session, task)))


def last_log_index(execution_id):
    """The highest log idx of an execution, as a column to load along with it (saves the
    SELECT max that the execution's first log line would otherwise cost)."""
    return (select(func.max(ExecutionLog.idx))
            .where(ExecutionLog.execution_id == execution_id)
            .scalar_subquery())


def remember_last_log_index(session: Session, execution_id: str, last: int | None) -> None:
    session.info.setdefault("log_index", {})[execution_id] = -1 if last is None else last


def _next_log_index(session: Session, execution: TaskExecution) -> int:
    counter = session.info.setdefault("log_index", {})
    if execution.id not in counter:
        last = session.scalar(select(func.max(ExecutionLog.idx))
                              .where(ExecutionLog.execution_id == execution.id))
        counter[execution.id] = -1 if last is None else last
    counter[execution.id] += 1
    return counter[execution.id]


def append_log(session: Session, execution: TaskExecution, level: str, message: str,
               status_percent: int | None = None, timestamp=None) -> None:
    level = level if level in LEVELS else "info"
    session.add(ExecutionLog(
        execution_id=execution.id, idx=_next_log_index(session, execution),
        timestamp=timestamp or utcnow(), level=level, msg=message[:10_000],
        status_percent=status_percent if status_percent is not None else _percent(execution),
    ))


def _percent(execution: TaskExecution) -> int:
    if execution.to_process_size:
        return min(100, int(100 * execution.processed_size / execution.to_process_size))
    if execution.to_process_files:
        return min(100, int(100 * (execution.processed_files or 0) / execution.to_process_files))
    return 100 if execution.status in ("done", "finished_with_warnings") else 0


def mirror_to_task(session: Session, execution: TaskExecution, task: Task | None = None) -> None:
    """The task shows its latest execution: status, pending command, sizes, dates."""
    task = task or session.get(Task, execution.task_id)
    task.status = execution.status
    task.action = execution.control or "noop"
    task.processed_size = execution.processed_size or 0
    task.to_process_size = execution.to_process_size or 0
    task.job_started = execution.job_started
    task.job_finished = execution.job_finished
    task.progress = _percent(execution)


def finished_keys(session: Session, execution: TaskExecution) -> list[str]:
    return list(session.scalars(
        select(ExecutionItem.item_key).where(ExecutionItem.execution_id == execution.id)))


# The columns of a finished item's row, in the order store_items gives them.
ITEM_COLUMNS = ("execution_id", "item_key", "outcome", "size", "checksum", "destination",
                "message", "warning")


def store_items(session: Session,
                reports: list[tuple[TaskExecution, list[dict]]]) -> list[list[dict]]:
    """Store the finished work items (checkpoint + per-file report) of several reports
    together (one statement per few hundred rows); returns, per report, the items that
    were new (a retried report's items are already there and are left out)."""
    # Tuples straight to the driver (db/bulk): a report carries up to a thousand items,
    # and SQLAlchemy's per-row parameter handling cost more than the insert itself.
    rows = [(execution.id, item["key"], item.get("outcome", "done"), item.get("size") or 0,
             item.get("checksum"), item.get("destination"), item.get("message"),
             bool(item.get("warning")))
            for execution, items in reports for item in items]
    if not rows:
        return [[] for _ in reports]
    stored = set(map(tuple, insert_rows(session, ExecutionItem.__table__, ITEM_COLUMNS, rows,
                                        returning=("execution_id", "item_key"))))
    fresh = []
    for execution, items in reports:
        new = []
        for item in items:
            if (execution.id, item["key"]) in stored:
                stored.discard((execution.id, item["key"]))  # a key twice in one report
                new.append(item)
        fresh.append(new)
    return fresh


def log_items(session: Session, execution: TaskExecution, fresh: list[dict]) -> None:
    """A log line for each new item that carries a message (skipped, renamed, failed)."""
    for item in fresh:
        if item.get("message"):
            level = "warning" if item.get("warning") or item.get("outcome") != "done" else "info"
            append_log(session, execution, level, item["message"])


def apply_to_catalog(session: Session, execution: TaskExecution, fresh: list[dict],
                     full_report: bool | None = None) -> None:
    """`full_report`: the task's option, when the caller read it already."""
    if fresh:
        # The catalog applies a whole batch at once (a scan reports thousands per request).
        catalog.apply_items(session, execution, fresh, full_report)
        tape_spec.apply_tape_changes(session, fresh)


def apply_counters(execution: TaskExecution, counters: dict) -> None:
    for name in ("to_process_files", "to_process_size", "processed_files", "processed_size",
                 "finalized_files", "bandwidth", "estimation_time"):
        if name in counters and counters[name] is not None:
            setattr(execution, name, max(int(counters[name]), 0))
