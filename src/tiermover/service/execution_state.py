"""The state of an execution and of its task: logs, checkpoints, mirroring, completion."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import (
    ExecutionItem, ExecutionLog, Task, TaskDestination, TaskExecution, TaskSource,
)
from tiermover.service import catalog, queue
from tiermover.service.storage import tape_spec

log = logging.getLogger("tiermover.executions")

LEVELS = ("debug", "info", "warning", "error")


def active_execution(session: Session, task: Task) -> TaskExecution | None:
    return session.scalar(
        select(TaskExecution)
        .where(TaskExecution.task_id == task.id, TaskExecution.status.in_(queue.ACTIVE))
        .order_by(TaskExecution.creation_date.desc())
        .limit(1)
    )


def latest_execution_id(session: Session, task: Task) -> str | None:
    return session.scalar(select(TaskExecution.id).where(TaskExecution.task_id == task.id)
                          .order_by(TaskExecution.creation_date.desc()).limit(1))


def log_page(session: Session, execution_id: str, offset: int, limit: int) -> list[ExecutionLog]:
    return list(session.scalars(
        select(ExecutionLog).where(ExecutionLog.execution_id == execution_id)
        .order_by(ExecutionLog.idx).offset(offset).limit(limit)))


def required_storages(session: Session, task: Task) -> list[str]:
    """Storage keys ("container:3", "nas_share:7", "cloud_bucket:2") the task's sources and
    destinations use."""
    keys: set[str] = set()
    for model in (TaskSource, TaskDestination):
        for part in session.scalars(select(model).where(model.task_id == task.id)):
            if part.container_id:
                keys.add(f"container:{part.container_id}")
            if part.nas_share_id:
                keys.add(f"nas_share:{part.nas_share_id}")
            if part.cloud_bucket_id:
                keys.add(f"cloud_bucket:{part.cloud_bucket_id}")
    keys |= tape_spec.required_library_keys(session, task)
    return sorted(keys)


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


def record_items(session: Session, execution: TaskExecution, items: Iterable[dict]) -> int:
    """Store finished work items (checkpoint + per-file report); returns how many were new."""
    items = list(items)
    known = set(session.scalars(
        select(ExecutionItem.item_key).where(
            ExecutionItem.execution_id == execution.id,
            ExecutionItem.item_key.in_([item["key"] for item in items]),
        )
    )) if items else set()
    fresh = []
    for item in items:
        if item["key"] in known:
            continue  # a retried report: already recorded
        known.add(item["key"])
        fresh.append(item)
        session.add(ExecutionItem(
            execution_id=execution.id, item_key=item["key"], outcome=item.get("outcome", "done"),
            size=item.get("size") or 0, checksum=item.get("checksum"),
            destination=item.get("destination"), message=item.get("message"),
            warning=bool(item.get("warning")),
        ))
        if item.get("message"):
            level = "warning" if item.get("warning") or item.get("outcome") != "done" else "info"
            append_log(session, execution, level, item["message"])
    if fresh:
        # The catalog applies a whole batch at once (a scan reports thousands per request).
        catalog.apply_items(session, execution, fresh)
        tape_spec.apply_tape_changes(session, fresh)
    return len(fresh)


def apply_counters(execution: TaskExecution, counters: dict) -> None:
    for name in ("to_process_files", "to_process_size", "processed_files", "processed_size",
                 "finalized_files", "bandwidth", "estimation_time"):
        if name in counters and counters[name] is not None:
            setattr(execution, name, max(int(counters[name]), 0))
