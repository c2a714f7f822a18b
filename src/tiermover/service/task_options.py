"""Task options: typed settings of a task, one of each type, whose value is always text.

Each type checks its value when saved and says what it accepts when it refuses one;
`option_value` gives the engine the typed value back.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Tape, TapeDrive, Task, TaskExecution, TaskOption
from tiermover.service.auth import Principal
from tiermover.service.errors import NotFound, ValidationFailed
from tiermover.service.listing import Attr
from tiermover.service.task_parts import (
    TEXT_VALUE_MAX, lock_task, row_id, text_value, value_taken,
)
from tiermover.service.tasks import resolve_task
from tiermover.service.validation import check_limits

# The order of the official client's TaskOption enum.
OPTION_TYPES = (
    "file_checksum", "reset_file_date", "reset_folder_date", "rename_to", "execution_task_id",
    "selected_drive", "parallel_processing", "task_id", "full_report", "processing_order",
    "rehydration_usage_threshold", "rehydration_deleted_files_threshold", "learning_type",
    "learning_threshold", "tape_to_scratch", "eject_tape_after", "barcodes", "overwrite",
    "soft_erase", "task_template",
)
CHECKSUMS = ("md5", "sha256", "xxh64", "xxh128", "blake3", "crc32")
PROCESSING_ORDERS = ("asc", "desc", "size_asc", "size_desc", "mtime_asc", "mtime_desc")
BOOLEAN_TYPES = frozenset({
    "reset_file_date", "reset_folder_date", "full_report", "tape_to_scratch",
    "eject_tape_after", "overwrite", "soft_erase", "task_template",
})
TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")
PARALLEL_RANGE = (1, 64)
NAME_MAX = 255
_BARCODE_SEPARATORS = re.compile(r"[,|\s]+")

OPTION_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskOption.id, "int"),
    "type": Attr(TaskOption.type),
    "value": Attr(TaskOption.value),
}


def _refuse(kind: str, message: str, value: str) -> ValidationFailed:
    return ValidationFailed.on("value", kind, message, value=value)


def _one_of(choices: tuple[str, ...]) -> Callable:
    def check(_session, _principal, value: str) -> str:
        if value not in choices:
            raise _refuse("inclusion", f"must be one of {', '.join(choices)}", value)
        return value
    return check


def _boolean(_session, _principal, value: str) -> bool:
    word = value.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise _refuse("inclusion", "must be true, false, 1 or 0", value)
    return word in TRUE_WORDS


def _integer_between(low: int | None, high: int | None) -> Callable:
    wanted = (f"an integer from {low} to {high}" if high is not None
              else f"an integer of at least {low}")

    def check(_session, _principal, value: str) -> int:
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise _refuse("not_a_number", f"must be {wanted}", value)
        number = int(text)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _refuse("invalid", f"must be {wanted}", value)
        return number
    return check


def _percentage(_session, _principal, value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = None
    if number is None or not 0 <= number <= 100:
        raise _refuse("invalid", "must be a percentage from 0 to 100", value)
    return number


def _file_name(_session, _principal, value: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\x00" in value:
        raise _refuse("invalid", "must be a single file name: not empty, not . or .., "
                      "without /", value)
    if len(value.encode()) > NAME_MAX:
        raise _refuse("too_long", f"must be at most {NAME_MAX} bytes long", value)
    return value


def _not_blank(_session, _principal, value: str) -> str:
    if not value.strip():
        raise ValidationFailed.on("value", "blank")
    return value


def _execution(session: Session, principal: Principal, value: str) -> str:
    execution = session.get(TaskExecution, value.strip()) if value.strip() else None
    task = session.get(Task, execution.task_id) if execution else None
    if task is None or not (principal.is_admin or task.user_id == principal.user_id):
        raise _refuse("not_found", "must be the id of an execution of one of your tasks", value)
    return execution.id


def _task(session: Session, principal: Principal, value: str) -> int:
    try:
        return resolve_task(session, principal, value).id
    except NotFound:
        raise _refuse("not_found", "must be the id (or name) of one of your tasks",
                      value) from None
    except ValidationFailed as ambiguous:
        message = ambiguous.details.get("task_id", [{}])[0].get("message", "is ambiguous")
        raise _refuse("ambiguous", message, value) from None


def _barcodes(session: Session, _principal, value: str) -> list[str]:
    barcodes = list(dict.fromkeys(b for b in _BARCODE_SEPARATORS.split(value) if b))
    if not barcodes:
        raise _refuse("blank", "must list tape barcodes, separated by , | or spaces", value)
    known = set(session.scalars(select(Tape.barcode).where(Tape.barcode.in_(barcodes))))
    unknown = [b for b in barcodes if b not in known]
    if unknown:
        raise _refuse("not_found", f"names unknown tapes: {', '.join(unknown)}", value)
    return barcodes


def _tape_drive(session: Session, _principal, value: str) -> int:
    text = value.strip()
    if row_id(text) is not None and session.get(TapeDrive, int(text)) is not None:
        return int(text)
    drives = session.scalars(select(TapeDrive.id).where(TapeDrive.name == text).limit(2)).all()
    if len(drives) == 1:
        return drives[0]
    if drives:
        raise _refuse("ambiguous", "names several tape drives: use the drive's id", value)
    raise _refuse("not_found", "must be the id or name of a tape drive", value)


CHECKS: dict[str, Callable[[Session, Principal, str], Any]] = {
    "file_checksum": _one_of(CHECKSUMS),
    "processing_order": _one_of(PROCESSING_ORDERS),
    "parallel_processing": _integer_between(*PARALLEL_RANGE),
    "learning_threshold": _integer_between(0, None),
    "rehydration_usage_threshold": _percentage,
    "rehydration_deleted_files_threshold": _percentage,
    "rename_to": _file_name,
    "learning_type": _not_blank,
    "execution_task_id": _execution,
    "task_id": _task,
    "barcodes": _barcodes,
    "selected_drive": _tape_drive,
    **{kind: _boolean for kind in BOOLEAN_TYPES},
}


def check_option(session: Session, principal: Principal, kind: str, value: str) -> Any:
    """The typed value of an option, or a 422 on `value` saying what the type accepts."""
    return CHECKS[kind](session, principal, value)


def option_value(session: Session, principal: Principal, option: TaskOption) -> Any:
    """The option's value as the engine uses it (bool, int, float, list of barcodes...)."""
    return check_option(session, principal, option.type, option.value)


def _apply(session: Session, principal: Principal, task: Task, option: TaskOption,
           values: dict, creating: bool) -> None:
    failure = ValidationFailed()
    kind = values.get("type", None if creating else option.type)
    if "type" in values or creating:
        if kind is None:
            failure.add("type", "blank")
        elif kind not in OPTION_TYPES:
            failure.add("type", "inclusion", value=kind)
    value = text_value(values["value"]) if "value" in values else (
        None if creating else option.value)
    check_limits(TaskOption, {"value": value}, failure)
    if value is None:
        failure.add("value", "blank")
    elif "value" not in failure.details and len(value) > TEXT_VALUE_MAX:
        failure.add("value", "too_long", count=TEXT_VALUE_MAX)
    failure.raise_if_any()
    try:
        check_option(session, principal, kind, value)
    except ValidationFailed as wrong_value:
        for attr, problems in wrong_value.details.items():
            failure.details.setdefault(attr, []).extend(problems)
    lock_task(session, task)
    if value_taken(session, TaskOption, TaskOption.type, task, kind, option.id):
        failure.add("type", "taken", f"has already been taken: the task already has a {kind} "
                    "option", value=kind)
    failure.raise_if_any()
    option.type, option.value = kind, value


def create_option(session: Session, principal: Principal, task: Task, values: dict) -> TaskOption:
    option = TaskOption(task_id=task.id)
    _apply(session, principal, task, option, values, creating=True)
    session.add(option)
    session.flush()
    return option


def update_option(session: Session, principal: Principal, task: Task, option: TaskOption,
                  values: dict) -> TaskOption:
    _apply(session, principal, task, option, values, creating=False)
    session.flush()
    return option
