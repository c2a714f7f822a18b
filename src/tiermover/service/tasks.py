"""Task definitions: visibility, lookup by id or name, create, update, delete."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import Pool, Tape, Task, TaskDestination, TaskExecution, TaskSource
from tiermover.service.auth import Principal
from tiermover.service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.task_rules import check_combination
from tiermover.service.validation import check_limits

PRIORITY_RANGE = (0, 100)
DEFAULT_PRIORITY = 5
NAME_MAX = 255


def _related(part, link_column, target_model, target_column):
    """Filter tasks on an attribute of the pool or tape of one of their sources/destinations."""

    def wrap(condition):
        return (
            select(1)
            .select_from(part)
            .join(target_model, link_column == target_model.id)
            .where(part.task_id == Task.id, condition)
            .exists()
        )

    return Attr(target_column, "int" if target_column.key == "id" else "str", wrap)


TASK_ATTRS: dict[str, Attr] = {
    "id": Attr(Task.id, "int"),
    "name": Attr(Task.name),
    "comment": Attr(Task.comment),
    "workflow_type": Attr(Task.workflow_type),
    "workflow_action": Attr(Task.workflow_action),
    "source_type": Attr(Task.source_type),
    "destination_type": Attr(Task.destination_type),
    "priority": Attr(Task.priority, "int"),
    "conflict_resolution": Attr(Task.conflict_resolution),
    "action": Attr(Task.action),
    "activate": Attr(Task.activate, "bool"),
    "creation_date": Attr(Task.creation_date, "datetime"),
    "creation_username": Attr(Task.creation_username),
    "modification_date": Attr(Task.modification_date, "datetime"),
    "modification_username": Attr(Task.modification_username),
    "job_started": Attr(Task.job_started, "datetime"),
    "job_finished": Attr(Task.job_finished, "datetime"),
    "status": Attr(Task.status),
    "progress": Attr(Task.progress, "int"),
    "processed_size": Attr(Task.processed_size, "int"),
    "to_process_size": Attr(Task.to_process_size, "int"),
    "source_pool_id": _related(TaskSource, TaskSource.pool_id, Pool, Pool.id),
    "source_pool_name": _related(TaskSource, TaskSource.pool_id, Pool, Pool.name),
    "source_tape_id": _related(TaskSource, TaskSource.tape_id, Tape, Tape.id),
    "source_tape_barcode": _related(TaskSource, TaskSource.tape_id, Tape, Tape.barcode),
    "destination_pool_id": _related(TaskDestination, TaskDestination.pool_id, Pool, Pool.id),
    "destination_pool_name": _related(TaskDestination, TaskDestination.pool_id, Pool, Pool.name),
    "destination_tape_id": _related(TaskDestination, TaskDestination.tape_id, Tape, Tape.id),
    "destination_tape_barcode": _related(
        TaskDestination, TaskDestination.tape_id, Tape, Tape.barcode
    ),
}

# Fields a client may set; everything else on a task belongs to the server.
WRITABLE = (
    "name", "comment", "workflow_type", "workflow_action", "source_type", "destination_type",
    "priority", "conflict_resolution", "activate", "progress", "delete", "local_server_path",
    "timeout_seconds", "start_window_seconds", "email_recipients", "email_problems_only",
)


def visible_tasks(principal: Principal, everyone: bool = False) -> Select:
    stmt = select(Task)
    if everyone:
        if not principal.is_admin:
            raise Forbidden("Only an administrator may list other users' tasks (all=true)")
        return stmt
    return stmt.where(Task.user_id == principal.user_id)


def list_tasks(session: Session, principal: Principal, query: ListQuery, everyone: bool = False) -> Page:
    return list_page(session, visible_tasks(principal, everyone), TASK_ATTRS, query, Task.id)


def resolve_task(session: Session, principal: Principal, task_ref: str | int) -> Task:
    """A task by numeric id, else by name among the caller's own tasks.

    Administrators reach any task by id; names are not unique, so a name that matches
    several of the caller's tasks is refused rather than guessed.
    """
    ref = str(task_ref).strip()
    if ref.isdigit():
        task = session.get(Task, int(ref))
        if task is not None and (principal.is_admin or task.user_id == principal.user_id):
            return task
        raise NotFound("task", "task_id", ref)
    matches = session.scalars(
        select(Task).where(Task.user_id == principal.user_id, Task.name == ref).limit(2)
    ).all()
    if not matches:
        raise NotFound("task", "task_id", ref)
    if len(matches) > 1:
        count = session.scalar(
            select(func.count()).where(Task.user_id == principal.user_id, Task.name == ref)
        )
        raise ValidationFailed.on(
            "task_id", "ambiguous",
            f"'{ref}' names {count} of your tasks; use the numeric id", value=ref, count=count,
        )
    return matches[0]


COMBINED = ("workflow_type", "workflow_action", "source_type", "destination_type")


def _validate(values: dict, creating: bool, task: Task | None = None) -> None:
    failure = ValidationFailed()
    check_limits(Task, values, failure)
    if (creating or "name" in values) and "name" not in failure.details:
        name = values.get("name")
        if name is None or not str(name).strip():
            failure.add("name", "blank")
    if creating:
        for required in ("workflow_type", "workflow_action"):
            if not values.get(required):
                failure.add(required, "blank")
    for nullable_enum in ("workflow_type", "workflow_action", "conflict_resolution"):
        if not creating and nullable_enum in values and values[nullable_enum] is None:
            failure.add(nullable_enum, "blank")
    priority = values.get("priority")
    if priority is not None and "priority" not in failure.details:
        low, high = PRIORITY_RANGE
        if priority < low:
            failure.add("priority", "greater_than_or_equal_to", value=priority, count=low)
        elif priority > high:
            failure.add("priority", "less_than_or_equal_to", value=priority, count=high)
    combination = {field: values[field] if field in values else getattr(task, field, None)
                   for field in COMBINED}
    check_combination(combination, failure)
    failure.raise_if_any()


def _status_after_activation(session: Session, task: Task) -> str | None:
    if not task.activate:
        return "not_activated"
    latest = session.scalar(
        select(TaskExecution.status)
        .where(TaskExecution.task_id == task.id)
        .order_by(TaskExecution.creation_date.desc())
        .limit(1)
    )
    return latest


def create_task(session: Session, principal: Principal, values: dict) -> Task:
    values = {k: v for k, v in values.items() if k in WRITABLE}
    _validate(values, creating=True)
    now = utcnow()
    task = Task(
        user_id=principal.user_id,
        creation_date=now,
        modification_date=now,
        creation_username=principal.username,
        modification_username=principal.username,
        priority=DEFAULT_PRIORITY,
        conflict_resolution="rename",
        activate=True,
        action="noop",
        progress=0,
        version=1,
    )
    for key, value in values.items():
        if value is not None:
            setattr(task, key, value)
    task.name = task.name.strip()
    task.status = "not_activated" if not task.activate else None
    session.add(task)
    session.flush()
    return task


def update_task(session: Session, principal: Principal, task: Task, values: dict,
                expected_version: int | None = None) -> Task:
    if expected_version is not None and expected_version != task.version:
        raise Conflict(
            f"Task {task.id} is at version {task.version}, not {expected_version}: "
            "reload it and apply the change again"
        )
    values = {k: v for k, v in values.items() if k in WRITABLE}
    _validate(values, creating=False, task=task)
    activation_changed = "activate" in values and bool(values["activate"]) != task.activate
    for key, value in values.items():
        if key == "name":
            value = value.strip()
        if value is None and key in ("priority", "activate", "progress", "delete",
                                     "email_problems_only"):
            continue
        setattr(task, key, value)
    if activation_changed:
        task.status = _status_after_activation(session, task)
    task.modification_date = utcnow()
    task.modification_username = principal.username
    task.version += 1
    session.flush()
    return task


def delete_task(session: Session, task: Task) -> None:
    session.delete(task)
    session.flush()
