"""The parts of a task: what every part shares, and the two simple ones.

Every part (source, destination, option, metadatum, callback) belongs to one task, is
looked up inside it, and is listed through the common listing. Metadata and filter
callbacks live here; sources/destinations and options, which check references to other
objects, have their own modules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Task, TaskCallback, TaskMetadatum
from tiermover.service.errors import NotFound, ValidationFailed
from tiermover.service.filter_expressions import compile_filter
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits

MAX_ROW_ID = 2**63 - 1  # what a BIGINT primary key can hold
TEXT_VALUE_MAX = 65_535

METADATUM_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskMetadatum.id, "int"),
    "key": Attr(TaskMetadatum.key),
    "value": Attr(TaskMetadatum.value),
}
CALLBACK_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskCallback.id, "int"),
    "type": Attr(TaskCallback.type),
    "script": Attr(TaskCallback.script),
}
CALLBACK_TYPES = ("filter",)


def row_id(raw: Any) -> int | None:
    """A client-given id as a usable primary key, or None when it cannot name a row."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        return None
    return value if 0 < value <= MAX_ROW_ID else None


def lock_task(session: Session, task: Task) -> None:
    """Serialise changes to one task's parts, so that two concurrent requests cannot both
    pass a uniqueness check (one option of each type, one schedule...). SQLite has a
    single writer anyway; PostgreSQL locks the task row until the transaction ends."""
    session.execute(select(Task.id).where(Task.id == task.id).with_for_update())


def find_part(session: Session, model, task: Task, raw_id: Any, resource: str, attr: str):
    """A part of `task` by id; parts of other tasks are as missing as unknown ids."""
    part_id = row_id(raw_id)
    part = session.get(model, part_id) if part_id is not None else None
    if part is None or part.task_id != task.id:
        raise NotFound(resource, attr, raw_id)
    return part


def list_parts(session: Session, model, attrs: dict[str, Attr], task: Task,
               query: ListQuery) -> Page:
    return list_page(session, select(model).where(model.task_id == task.id), attrs, query,
                     model.id)


def delete_part(session: Session, part) -> None:
    session.delete(part)
    session.flush()


def text_value(value: Any) -> str | None:
    """Values are strings in the API; a JSON number or boolean is accepted as its text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def value_taken(session: Session, model, column, task: Task, value: str,
                own_id: int | None) -> bool:
    """Whether another part of `task` already has `value` in `column`."""
    stmt = select(model.id).where(model.task_id == task.id, column == value)
    if own_id is not None:
        stmt = stmt.where(model.id != own_id)
    return session.scalar(stmt.limit(1)) is not None


# --- metadata -----------------------------------------------------------------------------

def _apply_metadatum(session: Session, task: Task, metadatum: TaskMetadatum, values: dict,
                     creating: bool) -> None:
    changes: dict[str, Any] = {}
    if creating or "key" in values:
        key = values.get("key")
        changes["key"] = key.strip() if isinstance(key, str) else None
    if creating or "value" in values:
        changes["value"] = text_value(values.get("value"))
    failure = ValidationFailed()
    check_limits(TaskMetadatum, changes, failure)
    if "key" in changes and "key" not in failure.details:
        if not changes["key"]:
            failure.add("key", "blank")
        else:
            lock_task(session, task)
            if value_taken(session, TaskMetadatum, TaskMetadatum.key, task, changes["key"],
                           metadatum.id):
                failure.add("key", "taken", value=changes["key"])
    value = changes.get("value")
    if value is not None and "value" not in failure.details and len(value) > TEXT_VALUE_MAX:
        failure.add("value", "too_long", count=TEXT_VALUE_MAX)
    failure.raise_if_any()
    for name, change in changes.items():
        setattr(metadatum, name, change)


def create_metadatum(session: Session, task: Task, values: dict) -> TaskMetadatum:
    metadatum = TaskMetadatum(task_id=task.id)
    _apply_metadatum(session, task, metadatum, values, creating=True)
    session.add(metadatum)
    session.flush()
    return metadatum


def update_metadatum(session: Session, task: Task, metadatum: TaskMetadatum,
                     values: dict) -> TaskMetadatum:
    _apply_metadatum(session, task, metadatum, values, creating=False)
    session.flush()
    return metadatum


# --- filter callbacks ---------------------------------------------------------------------

def _apply_callback(callback: TaskCallback, values: dict, creating: bool) -> None:
    if "type" in values or creating:
        # "filter" is the only type there is, so a client may leave it out.
        kind = values.get("type") or "filter"
        if kind not in CALLBACK_TYPES:
            raise ValidationFailed.on("type", "inclusion", value=kind)
        callback.type = kind
    if "script" in values or creating:
        script = values.get("script")
        failure = ValidationFailed()
        check_limits(TaskCallback, {"script": script}, failure)
        failure.raise_if_any()
        callback.script = compile_filter(script).text


def create_callback(session: Session, task: Task, values: dict) -> TaskCallback:
    callback = TaskCallback(task_id=task.id)
    _apply_callback(callback, values, creating=True)
    session.add(callback)
    session.flush()
    return callback


def update_callback(session: Session, callback: TaskCallback, values: dict) -> TaskCallback:
    _apply_callback(callback, values, creating=False)
    session.flush()
    return callback
