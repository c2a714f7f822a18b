"""/api/v2/task_executions and /api/v2/tasks/{task_id}/task_executions (read-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns
from tiermover.db.models import TaskExecution
from tiermover.service import executions as execution_service
from tiermover.service import tasks as task_service

router = APIRouter(tags=["task_executions"])

# nodeum-sdk 1.88's index_task_executions_by_task never fills this path's {task_id}: it
# sends the template as it is and the task in the `task_id` query parameter instead.
SDK_UNFILLED_TASK_ID = "{task_id}"

EXECUTION_FIELDS = (
    "id", "task_id", "name", "workflow_type", "workflow_action", "source_type",
    "destination_type", "status", "log_time", "job_started", "job_finished",
    "to_process_size", "processed_size", "to_process_files", "processed_files",
    "finalized_files", "estimation_time", "bandwidth", "creation_date", "modification_date",
)


def render_execution(execution: TaskExecution) -> dict:
    return columns(execution, EXECUTION_FIELDS)


@router.get("/task_executions", summary="Lists all task executions.")
def index_task_executions(
    request: Request, session: DbSession, principal: Scope("task_executions", "index"),
    complete_list: Annotated[bool, Query(
        description="If false, only includes the last correct execution of a task."
    )] = True,
    all: Annotated[bool, Query(description="For admin only, display also resources by other users.")] = False,
):
    query = parse_list_query(request.query_params, execution_service.EXECUTION_ATTRS,
                             other_params=("all", "complete_list"))
    page = execution_service.list_executions(session, principal, query, everyone=all,
                                             complete_list=complete_list)
    return collection("task_executions", page, render_execution)


@router.get("/tasks/{task_id}/task_executions", summary="Lists all task executions of a task.")
def index_task_executions_by_task(
    task_id: str, request: Request, session: DbSession,
    principal: Scope("task_executions", "index"),
):
    params = request.query_params.multi_items()
    if task_id == SDK_UNFILLED_TASK_ID:
        task_id = request.query_params.get("task_id", "")
        params = [(name, value) for name, value in params if name != "task_id"]
    task = task_service.resolve_task(session, principal, task_id)
    query = parse_list_query(params, execution_service.EXECUTION_ATTRS)
    page = execution_service.list_task_executions(session, task, query)
    return collection("task_executions", page, render_execution)


@router.get("/task_executions/{task_execution_id}", summary="Displays a specific task execution.")
def show_task_execution(task_execution_id: str, session: DbSession,
                        principal: Scope("task_executions", "show")):
    return render_execution(
        execution_service.get_execution(session, principal, task_execution_id))


@router.get("/tasks/{task_id}/task_executions/{task_execution_id}",
            summary="Displays a specific task execution of a task.")
def show_task_execution_by_task(task_id: str, task_execution_id: str, session: DbSession,
                                principal: Scope("task_executions", "show")):
    task = task_service.resolve_task(session, principal, task_id)
    return render_execution(
        execution_service.get_execution(session, principal, task_execution_id, task))
