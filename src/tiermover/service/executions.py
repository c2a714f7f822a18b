"""Task executions (one row per run of a task): visibility, lookup and lists.

An execution is visible to whoever sees its task: its owner, and administrators (who
reach any execution by id, as they reach any task by id, but list other users'
executions only with `all`).
"""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from tiermover.db.models import Task, TaskExecution
from tiermover.service.auth import Principal
from tiermover.service.errors import Forbidden, NotFound
from tiermover.service.listing import Attr, ListQuery, Page, list_page

# Statuses of a run that completed its work; `complete_list=false` keeps the last of them.
CORRECT_STATUSES = ("done", "finished_with_warnings")

EXECUTION_ATTRS: dict[str, Attr] = {
    # Ids are start times in nanoseconds: equally long digit strings, so they compare
    # and sort as text in the same order as numbers.
    "id": Attr(TaskExecution.id),
    "task_id": Attr(TaskExecution.task_id, "int"),
    "name": Attr(TaskExecution.name),
    "workflow_type": Attr(TaskExecution.workflow_type),
    "workflow_action": Attr(TaskExecution.workflow_action),
    "source_type": Attr(TaskExecution.source_type),
    "destination_type": Attr(TaskExecution.destination_type),
    "status": Attr(TaskExecution.status),
    "log_time": Attr(TaskExecution.log_time, "datetime"),
    "job_started": Attr(TaskExecution.job_started, "datetime"),
    "job_finished": Attr(TaskExecution.job_finished, "datetime"),
    "creation_date": Attr(TaskExecution.creation_date, "datetime"),
    "modification_date": Attr(TaskExecution.modification_date, "datetime"),
    "to_process_size": Attr(TaskExecution.to_process_size, "int"),
    "processed_size": Attr(TaskExecution.processed_size, "int"),
    "to_process_files": Attr(TaskExecution.to_process_files, "int"),
    "processed_files": Attr(TaskExecution.processed_files, "int"),
    "finalized_files": Attr(TaskExecution.finalized_files, "int"),
    "estimation_time": Attr(TaskExecution.estimation_time, "int"),
    "bandwidth": Attr(TaskExecution.bandwidth, "int"),
}


def visible_executions(principal: Principal, everyone: bool = False) -> Select:
    """Executions of the caller's tasks, or of everyone's for an administrator asking `all`."""
    stmt = select(TaskExecution)
    if everyone:
        if not principal.is_admin:
            raise Forbidden("Only an administrator may list other users' executions (all=true)")
        return stmt
    own_tasks = select(Task.id).where(Task.user_id == principal.user_id)
    return stmt.where(TaskExecution.task_id.in_(own_tasks))


def _is_last_correct_of_its_task():
    """True for the most recent done (or finished_with_warnings) execution of each task.

    "Most recent" is by start time, falling back to creation time for a run that never
    recorded a start, and by id between runs started at the same instant.
    """
    other = aliased(TaskExecution)
    started = func.coalesce(other.job_started, other.creation_date)
    last_correct = (
        select(other.id)
        .where(other.task_id == TaskExecution.task_id, other.status.in_(CORRECT_STATUSES))
        .order_by(started.desc(), other.id.desc())
        .limit(1)
        .correlate(TaskExecution)
        .scalar_subquery()
    )
    return TaskExecution.id == last_correct


def list_executions(session: Session, principal: Principal, query: ListQuery,
                    everyone: bool = False, complete_list: bool = True) -> Page:
    """Filters apply to the listed rows: with `complete_list=false`, to each task's last
    correct execution (a filter never brings back an older run instead)."""
    stmt = visible_executions(principal, everyone)
    if not complete_list:
        stmt = stmt.where(_is_last_correct_of_its_task())
    return list_page(session, stmt, EXECUTION_ATTRS, query, TaskExecution.id)


def list_task_executions(session: Session, task: Task, query: ListQuery) -> Page:
    """Executions of one task the caller already resolved (and so may see)."""
    stmt = select(TaskExecution).where(TaskExecution.task_id == task.id)
    return list_page(session, stmt, EXECUTION_ATTRS, query, TaskExecution.id)


def get_execution(session: Session, principal: Principal, execution_id: str,
                  task: Task | None = None) -> TaskExecution:
    """One execution by id; under a task, it must be one of that task's runs.

    Unknown and invisible executions are the same 404, so ids of other users' runs
    cannot be probed.
    """
    execution = session.get(TaskExecution, str(execution_id).strip())
    if execution is not None:
        if task is not None:
            if execution.task_id == task.id:
                return execution
        elif principal.is_admin or session.scalar(
            select(Task.user_id).where(Task.id == execution.task_id)
        ) == principal.user_id:
            return execution
    raise NotFound("task_execution", "task_execution_id", execution_id)
