"""Execution logs: GET /task_executions/{id}/logs and /tasks/{id}/logs (latest execution)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.render import columns
from tiermover.service import executions as execution_service
from tiermover.service import tasks as task_service
from tiermover.service.errors import NotFound
from tiermover.service.execution_state import latest_execution_id, log_page

router = APIRouter(tags=["logs"])

Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def _page(session, execution_id: str, offset: int, limit: int) -> list[dict]:
    return [columns(row, ("idx", "timestamp", "level", "msg", "status_percent"))
            for row in log_page(session, execution_id, offset, limit)]


@router.get("/task_executions/{task_execution_id}/logs", summary="An execution's log, paged.")
def execution_logs(task_execution_id: str, session: DbSession,
                   principal: Scope("task_executions", "logs"), offset: Offset = 0,
                   limit: Limit = 1000):
    execution = execution_service.get_execution(session, principal, task_execution_id)
    return _page(session, execution.id, offset, limit)


@router.get("/tasks/{task_id}/logs", summary="The log of the task's latest execution, paged.")
def task_logs(task_id: str, session: DbSession, principal: Scope("tasks", "logs"),
              offset: Offset = 0, limit: Limit = 1000):
    task = task_service.resolve_task(session, principal, task_id)
    latest = latest_execution_id(session, task)
    if latest is None:
        raise NotFound("task_execution", "task_id", task_id)
    return _page(session, latest, offset, limit)
