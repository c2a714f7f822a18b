"""/api/v2/tasks/{task_id}/task_schedule (one per task) and /api/v2/task_schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, created, iso
from tiermover.db.models import TaskSchedule
from tiermover.service import schedules as schedule_service
from tiermover.service.tasks import resolve_task

router = APIRouter(tags=["task schedules"])


class TaskScheduleBody(BaseModel):
    """Only the rule is the client's; task_id, next, done and the missed/skipped counters
    belong to the server and are ignored when sent."""

    model_config = ConfigDict(extra="ignore")

    rrule: str | None = None


def render_schedule(session: Session, schedule: TaskSchedule, with_next: bool = True) -> dict:
    """With `with_next`, the next occurrence and the missed executions; else only the rule."""
    body = {"id": schedule.id, "task_id": schedule.task_id, "rrule": schedule.rrule,
            "done": schedule.done, "next": None, "missed_count": None,
            "skipped_count": schedule.skipped_count, "missed_last": None, "missed_first": None}
    if with_next:
        state = schedule_service.current_state(session, schedule, schedule_service.utc_now())
        body.update(done=state.done, next=iso(state.next), missed_count=schedule.missed_count,
                    missed_last=iso(schedule.missed_last), missed_first=iso(schedule.missed_first))
    return body


@router.get("/task_schedules", summary="Lists all task schedules.")
def index_task_schedules(
    request: Request, session: DbSession, principal: Scope("task_schedules", "index"),
    with_next: Annotated[bool, Query(description="Display the next scheduled date, and "
                                     "information about missing executions.")] = True,
    all: Annotated[bool, Query(description="For admin only, display also the schedules of "
                               "other users' tasks.")] = False,
):
    query = parse_list_query(request.query_params, schedule_service.SCHEDULE_ATTRS,
                             other_params=("with_next", "all"))
    page = schedule_service.list_schedules(session, principal, query, everyone=all)
    return collection("task_schedules", page,
                      lambda schedule: render_schedule(session, schedule, with_next))


@router.get("/tasks/{task_id}/task_schedule", summary="Displays a specific task schedule.")
def show_task_schedule(task_id: str, session: DbSession,
                       principal: Scope("task_schedules", "show")):
    task = resolve_task(session, principal, task_id)
    return render_schedule(session, schedule_service.find_schedule(session, task))


@router.post("/tasks/{task_id}/task_schedule", status_code=201,
             summary="Creates the task's schedule (only one per task).")
def create_task_schedule(task_id: str, body: TaskScheduleBody, session: DbSession,
                         principal: Scope("task_schedules", "create")):
    task = resolve_task(session, principal, task_id)
    schedule = schedule_service.create_schedule(session, task, body.model_dump(exclude_unset=True))
    return created(render_schedule(session, schedule))


@router.put("/tasks/{task_id}/task_schedule", summary="Updates the task's schedule.")
def update_task_schedule(task_id: str, body: TaskScheduleBody, session: DbSession,
                         principal: Scope("task_schedules", "update")):
    task = resolve_task(session, principal, task_id)
    schedule = schedule_service.find_schedule(session, task)
    schedule = schedule_service.update_schedule(session, schedule,
                                                body.model_dump(exclude_unset=True))
    return render_schedule(session, schedule)


@router.delete("/tasks/{task_id}/task_schedule", status_code=204,
               summary="Destroys the task's schedule.")
def destroy_task_schedule(task_id: str, session: DbSession,
                          principal: Scope("task_schedules", "destroy")):
    task = resolve_task(session, principal, task_id)
    schedule_service.delete_schedule(session, schedule_service.find_schedule(session, task))
    return Response(status_code=204)
