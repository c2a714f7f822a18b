"""Task schedules: one RFC 5545 recurrence per task, its next occurrence, and `done`.

The rule text is `DTSTART[;TZID=Area/City]:YYYYMMDDTHHMMSS[Z]` and one `RRULE:` line, as
Nodeum shows (`DTSTART;TZID=Europe/Paris:20190705T085000\\nRRULE:FREQ=WEEKLY`). A rule
without DTSTART starts at the moment it is saved, and that DTSTART is written into the
stored text so the rule keeps meaning the same thing. A DTSTART with neither Z nor TZID
is read as UTC.

The stored `next` is the scheduler's cursor: the next occurrence it has not yet handled.
It is set when the rule is saved; reads show a freshly computed next occurrence but leave
the cursor alone, since a cursor already in the past is an occurrence still to be fired,
skipped or counted as missed (semantics section 3).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrule, rrulestr
from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import Task, TaskSchedule
from tiermover.service.auth import Principal
from tiermover.service.errors import NotFound, ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.task_parts import lock_task
from tiermover.service.tasks import visible_tasks
from tiermover.service.validation import check_limits

log = logging.getLogger(__name__)

MAX_RRULE_LENGTH = 2048
# dateutil walks candidate dates one by one; a rule whose days almost never match
# (FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30) can keep it busy for minutes. Every
# computation therefore runs under a time budget.
COMPUTE_BUDGET_SECONDS = 0.25

SCHEDULE_ATTRS: dict[str, Attr] = {
    "id": Attr(TaskSchedule.id, "int"),
    "rrule": Attr(TaskSchedule.rrule),
    "done": Attr(TaskSchedule.done, "bool"),
    "task_id": Attr(TaskSchedule.task_id, "int"),
}

_DATE_TIME = re.compile(r"\d{8}T\d{6}Z?")
_FIXED_PERIODS = {
    "WEEKLY": timedelta(weeks=1), "DAILY": timedelta(days=1), "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1), "SECONDLY": timedelta(seconds=1),
}
_CALENDAR_MONTHS = {"MONTHLY": 1, "YEARLY": 12}


class TooCostly(Exception):
    """Computing occurrences of a rule went past its time budget."""


def _invalid(message: str, text: str | None = None) -> ValidationFailed:
    extra = {"value": text} if text is not None else {}
    return ValidationFailed.on("rrule", "invalid", f"is invalid: {message}", **extra)


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Recurrence:
    """A checked rule: its DTSTART split into parts, and its RRULE line."""

    start: datetime  # wall-clock time of DTSTART, naive
    zone: str | None  # TZID, if any
    utc_marker: bool  # DTSTART written with a trailing Z
    rrule_line: str  # "RRULE:FREQ=..."
    parts: dict[str, str]  # the RRULE's NAME=value parts, names upper-cased

    @property
    def aware(self) -> bool:
        return self.zone is not None or self.utc_marker

    def dtstart_line(self, start: datetime | None = None) -> str:
        value = _ical_date_time(start or self.start) + ("Z" if self.utc_marker else "")
        return f"DTSTART;TZID={self.zone}:{value}" if self.zone else f"DTSTART:{value}"

    @property
    def text(self) -> str:
        return f"{self.dtstart_line()}\n{self.rrule_line}"

    def build(self, start: datetime | None = None) -> rrule:
        return rrulestr(f"{self.dtstart_line(start)}\n{self.rrule_line}", tzids=_zone)

    def wall_clock(self, moment: datetime) -> datetime:
        """`moment` (aware) on this rule's wall clock, naive."""
        return moment.astimezone(_zone(self.zone) if self.zone else timezone.utc).replace(tzinfo=None)


def _ical_date_time(moment: datetime) -> str:
    # Not strftime: its %Y does not zero-pad years below 1000 on every platform.
    return (f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
            f"T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}")


def _split_lines(text: str) -> list[str]:
    # A literal backslash-n (a doubly escaped newline) is taken as a newline: a backslash
    # can never be part of a valid rule.
    return [line.strip() for line in re.split(r"\r?\n|\\n", text) if line.strip()]


def _parse_dtstart(line: str) -> tuple[datetime, str | None, bool]:
    name, _, value = line.partition(":")
    params = name.split(";")[1:]
    zone = None
    for param in params:
        key, _, param_value = param.partition("=")
        if key.upper() != "TZID" or not param_value:
            raise _invalid(f"DTSTART parameter '{param}' is not supported (only TZID)")
        if param_value not in _known_zones():
            raise _invalid(f"unknown time zone '{param_value}' (use a name like Europe/Paris)")
        zone = param_value
    value = value.strip()
    if not _DATE_TIME.fullmatch(value):
        raise _invalid(f"DTSTART '{value}' must be written YYYYMMDDTHHMMSS, followed by Z "
                       "for UTC or preceded by ;TZID=Area/City")
    if zone and value.endswith("Z"):
        raise _invalid("DTSTART has both a TZID and a trailing Z")
    try:
        start = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise _invalid(f"DTSTART '{value}' is not a real date and time") from None
    return start, zone, value.endswith("Z")


def _parse_rrule_parts(line: str) -> dict[str, str]:
    body = line.split(":", 1)[1] if line.upper().startswith("RRULE") else line
    parts: dict[str, str] = {}
    for part in body.split(";"):
        name, equals, value = part.partition("=")
        if not equals or not name:
            raise _invalid(f"'{part}' in the RRULE is not NAME=value")
        parts[name.strip().upper()] = value.strip()
    if "FREQ" not in parts:
        raise _invalid("the RRULE has no FREQ")
    for positive in ("INTERVAL", "COUNT"):
        if positive in parts and not re.fullmatch(r"0*[1-9]\d{0,8}", parts[positive]):
            raise _invalid(f"{positive} must be a positive integer, not '{parts[positive]}'")
    if "COUNT" in parts and "UNTIL" in parts:
        raise _invalid("an RRULE may have COUNT or UNTIL, not both (RFC 5545)")
    until = parts.get("UNTIL")
    if until is not None and not re.fullmatch(r"\d{8}(T\d{6}Z?)?", until):
        raise _invalid(f"UNTIL '{until}' must be written YYYYMMDD or YYYYMMDDTHHMMSS[Z]")
    return parts


def parse_recurrence(text: object, now: datetime) -> Recurrence:
    """Check a rule text (422 on `rrule` when wrong) and return it normalised."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed.on("rrule", "blank")
    if len(text) > MAX_RRULE_LENGTH:
        raise ValidationFailed.on("rrule", "too_long", count=MAX_RRULE_LENGTH)
    dtstart_lines, rrule_lines = [], []
    for line in _split_lines(text):
        written = re.split(r"[;:]", line, maxsplit=1)[0]
        name = written.upper()
        if name == "DTSTART":
            dtstart_lines.append(line)
        elif name == "RRULE" or "=" in name:  # a bare "FREQ=..." is an RRULE too
            rrule_lines.append(line if name == "RRULE" else "RRULE:" + line)
        else:
            raise _invalid(f"'{written}' lines are not supported: give one DTSTART line and "
                           "one RRULE line", text)
    if len(rrule_lines) != 1 or len(dtstart_lines) > 1:
        raise _invalid("give one RRULE line and at most one DTSTART line", text)
    if dtstart_lines:
        start, zone, utc_marker = _parse_dtstart(dtstart_lines[0])
    else:
        start, zone, utc_marker = now.astimezone(timezone.utc).replace(
            tzinfo=None, microsecond=0), None, True
    parts = _parse_rrule_parts(rrule_lines[0])
    recurrence = Recurrence(start, zone, utc_marker,
                            "RRULE:" + rrule_lines[0].split(":", 1)[1].strip(), parts)
    try:
        recurrence.build()
    except (ValueError, TypeError, OverflowError, KeyError) as error:
        raise _invalid(str(error) or type(error).__name__, text) from None
    return recurrence


def _with_budget(compute, seconds: float = COMPUTE_BUDGET_SECONDS):
    """Run `compute()`, interrupting it once it has run for `seconds`.

    A trace function sees every Python-level call of this thread (dateutil calls one per
    candidate date), so it can stop a computation that would otherwise run for minutes.
    """
    deadline = time.monotonic() + seconds

    def tracer(_frame, _event, _arg):
        if time.monotonic() > deadline:
            raise TooCostly()
        return None  # no per-line tracing: calls are enough and much cheaper

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return compute()
    finally:
        sys.settrace(previous)


def _fast_forward(recurrence: Recurrence, now: datetime) -> datetime:
    """A later DTSTART that yields the same occurrences from `now` on.

    Moving DTSTART by whole periods of the rule (INTERVAL x FREQ, on its wall clock) keeps
    every occurrence after it, and spares dateutil from walking through years of past
    ones. Not possible with COUNT (counted from DTSTART), nor when a calendar shift would
    clamp the day (31 January plus one month).
    """
    start = recurrence.start
    if "COUNT" in recurrence.parts:
        return start
    wall_now = recurrence.wall_clock(now)
    freq = recurrence.parts["FREQ"].upper()
    interval = int(recurrence.parts.get("INTERVAL", "1"))  # checked positive when parsed
    if freq in _FIXED_PERIODS:
        period = _FIXED_PERIODS[freq] * interval
        periods = (wall_now - start) // period - 1
        return start + period * periods if periods > 0 else start
    months = _CALENDAR_MONTHS.get(freq, 0) * interval
    if not months:
        return start
    elapsed = (wall_now.year - start.year) * 12 + wall_now.month - start.month
    periods = elapsed // months - 1
    if periods <= 0:
        return start
    moved = start + relativedelta(months=periods * months)
    return moved if moved.day == start.day else start


def next_occurrence(recurrence: Recurrence, now: datetime) -> datetime | None:
    """The first occurrence strictly after `now` (UTC), None when there is none left.

    Raises TooCostly when the rule cannot be evaluated within the budget.
    """
    rule = recurrence.build(_fast_forward(recurrence, now))
    if recurrence.aware:
        found = _with_budget(lambda: rule.after(now))
        return None if found is None else found.astimezone(timezone.utc)
    found = _with_budget(lambda: rule.after(now.astimezone(timezone.utc).replace(tzinfo=None)))
    return None if found is None else found.replace(tzinfo=timezone.utc)


def check_evaluable(recurrence: Recurrence, now: datetime) -> datetime | None:
    """next_occurrence, as a 422 when the rule is too costly to evaluate.

    A COUNT rule is walked from its DTSTART on every evaluation, so all its occurrences
    must fit in the budget, not only the next one.
    """
    try:
        upcoming = next_occurrence(recurrence, now)
        if "COUNT" in recurrence.parts:
            rule = recurrence.build()
            _with_budget(rule.count)
        return upcoming
    except TooCostly:
        raise _invalid("it cannot be evaluated quickly enough (occurrences too sparse or "
                       "too many; use a coarser FREQ, fewer BY parts or a smaller COUNT)",
                       recurrence.text) from None


# --- persistence --------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleState:
    next: datetime | None
    done: bool


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def current_state(session: Session, schedule: TaskSchedule, now: datetime) -> ScheduleState:
    """The next occurrence after `now` and whether the rule is done, computed afresh.

    `done` can only turn true with time, so it is recorded here for the `done` filter; the
    stored `next` (the scheduler's cursor) is left alone.
    """
    try:
        recurrence = parse_recurrence(schedule.rrule, now)
        upcoming = next_occurrence(recurrence, now)
    except (ValidationFailed, TooCostly):
        log.warning("schedule %s: cannot compute the next occurrence of %r", schedule.id,
                    schedule.rrule)
        return ScheduleState(next=None, done=schedule.done)
    if upcoming is None and not schedule.done:
        schedule.done = True
        session.flush()
    return ScheduleState(next=upcoming, done=upcoming is None)


def find_schedule(session: Session, task: Task) -> TaskSchedule:
    schedule = session.scalar(select(TaskSchedule).where(TaskSchedule.task_id == task.id))
    if schedule is None:
        raise NotFound("task_schedule", "task_id", task.id)
    return schedule


def _apply_rule(schedule: TaskSchedule, text: object, now: datetime) -> None:
    failure = ValidationFailed()
    check_limits(TaskSchedule, {"rrule": text}, failure)
    failure.raise_if_any()
    recurrence = parse_recurrence(text, now)
    upcoming = check_evaluable(recurrence, now)
    schedule.rrule = recurrence.text
    schedule.next = upcoming
    schedule.done = upcoming is None


def create_schedule(session: Session, task: Task, values: dict) -> TaskSchedule:
    lock_task(session, task)
    existing = session.scalar(select(TaskSchedule.id).where(TaskSchedule.task_id == task.id))
    if existing is not None:
        raise ValidationFailed.on("task_id", "taken", "already has a schedule: update it "
                                  "instead (only one per task)", value=str(task.id))
    schedule = TaskSchedule(task_id=task.id, missed_count=0, skipped_count=0)
    _apply_rule(schedule, values.get("rrule"), utc_now())
    session.add(schedule)
    session.flush()
    return schedule


def update_schedule(session: Session, schedule: TaskSchedule, values: dict) -> TaskSchedule:
    if "rrule" in values:
        _apply_rule(schedule, values["rrule"], utc_now())
        session.flush()
    return schedule


def delete_schedule(session: Session, schedule: TaskSchedule) -> None:
    session.delete(schedule)
    session.flush()


def list_schedules(session: Session, principal: Principal, query: ListQuery,
                   everyone: bool = False) -> Page:
    task_ids = visible_tasks(principal, everyone).with_only_columns(Task.id)
    stmt = select(TaskSchedule).where(TaskSchedule.task_id.in_(task_ids))
    return list_page(session, stmt, SCHEDULE_ATTRS, query, TaskSchedule.id)
