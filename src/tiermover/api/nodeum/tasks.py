"""/api/v2/tasks (seeds 000 and 001)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns, created
from tiermover.db.models import Task
from tiermover.service import control
from tiermover.service import tasks as task_service

router = APIRouter(tags=["tasks"])

WorkflowType = Literal[
    "active_archive", "offline_archive", "data_exchange", "data_migration", "maintenance",
    "data_enrichment",
]
WorkflowAction = Literal[
    "copy", "move", "erase", "scan", "rehydratation", "format", "check_consistency",
    "duplication", "cache_cleaning", "ejection", "get_index", "full_backup",
    "incremental_backup", "restore", "speedtest",
]
StorageType = Literal[
    "container", "primary_nas", "secondary_nas", "primary_cloud", "secondary_cloud",
    "secondary_tape",
]
ConflictResolution = Literal["rename", "overwrite", "ignore"]


class TaskBody(BaseModel):
    """Writable task fields. Server-owned fields (dates, usernames, status, action, sizes)
    are accepted in a body and ignored, so a shown task can be sent back as it is."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str | None, Field(max_length=task_service.NAME_MAX)] = None
    comment: str | None = None
    workflow_type: WorkflowType | None = None
    workflow_action: WorkflowAction | None = None
    source_type: StorageType | None = None
    destination_type: StorageType | None = None
    priority: int | None = None
    conflict_resolution: ConflictResolution | None = None
    activate: bool | None = None
    progress: int | None = None
    delete: int | None = None
    local_server_path: str | None = None
    version: int | None = Field(None, description="If given, the update applies only at this version (else 409).")
    timeout_seconds: Annotated[int | None, Field(ge=1, description="Stop a run still going after this many seconds (stopped_by_system).")] = None
    start_window_seconds: Annotated[int | None, Field(ge=1, description="A scheduled run not started this long after its time is dropped.")] = None
    email_recipients: str | None = Field(None, description="Comma-separated addresses told when a run ends.")
    email_problems_only: bool | None = Field(None, description="Only e-mail when a run does not end as done.")


TASK_FIELDS = (
    "id", "name", "comment", "workflow_type", "workflow_action", "source_type",
    "destination_type", "priority", "conflict_resolution", "action", "creation_date",
    "modification_date", "creation_username", "modification_username", "status", "progress",
    "job_started", "job_finished", "processed_size", "to_process_size", "version",
    "local_server_path", "timeout_seconds", "start_window_seconds", "email_recipients",
    "email_problems_only",
)


def render_task(task: Task) -> dict:
    body = columns(task, TASK_FIELDS)
    body["activate"] = int(task.activate)  # an integer in the seed's schema
    body["delete"] = task.delete or 0
    return body


@router.get("/tasks", summary="Lists all tasks.")
def index_tasks(
    request: Request, session: DbSession, principal: Scope("tasks", "index"),
    all: Annotated[bool, Query(description="For admin only, display also resources by other users.")] = False,
):
    query = parse_list_query(request.query_params, task_service.TASK_ATTRS, other_params=("all",))
    page = task_service.list_tasks(session, principal, query, everyone=all)
    return collection("tasks", page, render_task)


@router.post("/tasks", status_code=201, summary="Creates a new task.")
def create_task(body: TaskBody, session: DbSession, principal: Scope("tasks", "create")):
    task = task_service.create_task(session, principal, body.model_dump(exclude_unset=True))
    return created(render_task(task))


@router.get("/tasks/{task_id}", summary="Displays a specific task.")
def show_task(task_id: str, session: DbSession, principal: Scope("tasks", "show")):
    return render_task(task_service.resolve_task(session, principal, task_id))


@router.put("/tasks/{task_id}", summary="Updates a specific task.")
def update_task(task_id: str, body: TaskBody, session: DbSession,
                principal: Scope("tasks", "update")):
    task = task_service.resolve_task(session, principal, task_id)
    values = body.model_dump(exclude_unset=True)
    version = values.pop("version", None)
    return render_task(task_service.update_task(session, principal, task, values, version))


@router.delete("/tasks/{task_id}", status_code=204, summary="Destroys a specific task.")
def destroy_task(task_id: str, session: DbSession, principal: Scope("tasks", "destroy")):
    task_service.delete_task(session, task_service.resolve_task(session, principal, task_id))
    return Response(status_code=204)


Verb = Literal["run", "pause", "stop", "resume"]


@router.put("/tasks/{task_id}/action/{verb}", status_code=202,
            summary="Run, pause, stop or resume a task; answers an active job to poll.")
def act_on_task(task_id: str, verb: Verb, session: DbSession, principal: Scope("tasks", "action")):
    task = task_service.resolve_task(session, principal, task_id)
    job = control.request(session, task, verb)
    return JSONResponse(control.render_job(job), status_code=202)


@router.get("/tasks/{task_id}/action/{verb}",
            summary="Result of a control request: 202 while queued or working, 200 once done.")
def control_result(task_id: str, verb: Verb, job_id: str, session: DbSession,
                   principal: Scope("tasks", "action")):
    task = task_service.resolve_task(session, principal, task_id)
    job = control.job_status(session, task, verb, job_id)
    return JSONResponse(control.render_job(job),
                        status_code=200 if job.status in ("completed", "failed") else 202)
