"""Firing task schedules: every occurrence of a rule runs the task, is skipped, or is missed.

Semantics section 3. The stored `next` of a schedule is the first occurrence not yet
handled. Each server pass takes the schedules whose `next` has come and accounts for
every occurrence from there up to now:

- fired: the task is queued, its start window counted from the occurrence;
- skipped (`skipped_count`): the previous run was still active, the task is not
  activated, or several occurrences fell into one pass (one run serves them all);
- missed (`missed_count`, `missed_first`, `missed_last`): it was already more than
  MISSED_GRACE old when a pass first saw it, so no server was there to fire it (the
  service was down, or could not reach its database). Missed occurrences are caught up
  with ONE run, not one per miss.

The three counters reset when an execution of the task ends `done`.

Several server processes may share a PostgreSQL database: the schedule rows are taken
with `FOR UPDATE SKIP LOCKED`, so one occurrence is handled by one process only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from tiermover.db.models import Task, TaskExecution, TaskSchedule
from tiermover.service.control import enqueue_execution
from tiermover.service.errors import ValidationFailed
from tiermover.service.execution_state import active_execution, append_log
from tiermover.service.schedules import (
    Recurrence, TooCostly, _fast_forward, _with_budget, next_occurrence, parse_recurrence,
)

log = logging.getLogger("tiermover.scheduler")

# A pass runs every second; an occurrence it finds older than this was not late by a
# slow pass but passed while no server was running.
MISSED_GRACE = timedelta(seconds=3)
# Counting the occurrences of a long downtime (a SECONDLY rule over a week) walks every
# one of them; past this budget the count stops and is logged as a lower bound.
COUNTING_BUDGET_SECONDS = 1.0
# The maintenance loop never sleeps less than this, even for an occurrence that is due
# but was left for the next pass (its task was locked by another transaction).
MIN_SLEEP_SECONDS = 0.05
# Wake a little after the occurrence: a timer may fire a hair early, and a pass that finds
# the occurrence not yet due would leave it to the next one.
WAKE_AFTER_SECONDS = 0.005


@dataclass
class PassedOccurrences:
    """The occurrences of one schedule from its stored `next` up to now."""

    missed_count: int = 0
    missed_first: datetime | None = None
    missed_last: datetime | None = None
    # Counting stopped at the budget: missed_count is a lower bound.
    missed_count_partial: bool = False
    on_time: list[datetime] = field(default_factory=list)

    def add(self, occurrence: datetime, missed_before: datetime) -> None:
        if occurrence < missed_before:
            self.missed_count += 1
            self.missed_first = self.missed_first or occurrence
            self.missed_last = occurrence
        else:
            self.on_time.append(occurrence)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _rule_time(recurrence: Recurrence, moment: datetime) -> datetime:
    """`moment` as the rule's iterator wants it: aware for TZID/Z rules, naive UTC otherwise."""
    return moment if recurrence.aware else moment.astimezone(timezone.utc).replace(tzinfo=None)


def _as_utc(recurrence: Recurrence, occurrence: datetime) -> datetime:
    if recurrence.aware:
        return occurrence.astimezone(timezone.utc)
    return occurrence.replace(tzinfo=timezone.utc)


def passed_occurrences(recurrence: Recurrence, first: datetime, now: datetime,
                       missed_before: datetime) -> PassedOccurrences:
    """Occurrences in [first, now], sorted into missed (older than `missed_before`) and
    on time; `first` is the stored `next`, so it is an occurrence itself."""
    passed = PassedOccurrences()
    rule = recurrence.build(_fast_forward(recurrence, first - timedelta(seconds=1)))

    def walk() -> None:
        for occurrence in rule.xafter(_rule_time(recurrence, first), inc=True):
            occurrence = _as_utc(recurrence, occurrence)
            if occurrence > now:
                return
            passed.add(occurrence, missed_before)

    try:
        _with_budget(walk, COUNTING_BUDGET_SECONDS)
    except TooCostly:
        # Too many to count: keep the count so far, and find the last missed and the
        # on-time ones directly, from a rule moved close to now.
        passed.missed_count_partial = True
        passed.on_time = []
        near = recurrence.build(_fast_forward(recurrence, missed_before))
        last = _with_budget(lambda: near.before(_rule_time(recurrence, missed_before)))
        if last is not None:
            last = _as_utc(recurrence, last)
            if passed.missed_last is None or last > passed.missed_last:
                passed.missed_count += 1
                passed.missed_first = passed.missed_first or last
                passed.missed_last = last
        for occurrence in _with_budget(lambda: near.between(
                _rule_time(recurrence, missed_before), _rule_time(recurrence, now), inc=True)):
            passed.on_time.append(_as_utc(recurrence, occurrence))
    if not passed.missed_count and not passed.on_time:
        # The stored `next` is due by definition, even if the rule (changed since, or
        # fast-forwarded differently) no longer lists it.
        passed.add(first, missed_before)
    return passed


def _lock_task(session: Session, task_id: int) -> Task | None:
    """The task row, locked; None when another transaction holds it (try next pass).

    The schedule row is already locked: waiting here for a transaction that holds the
    task and wants the schedule (deleting the task cascades to it) would deadlock.
    """
    return session.scalar(select(Task).where(Task.id == task_id)
                          .with_for_update(skip_locked=True))


def _why_not_now(session: Session, task: Task) -> tuple[str | None, TaskExecution | None]:
    """Why the task cannot start a run now (None if it can), and its active execution."""
    if not task.activate:
        return "the task is not activated", None
    running = active_execution(session, task)
    if running is not None:
        return f"still running (execution {running.id} is {running.status})", running
    return None, None


def _fire(session: Session, schedule: TaskSchedule, task: Task, now: datetime) -> None:
    try:
        recurrence = parse_recurrence(schedule.rrule, now)
        passed = passed_occurrences(recurrence, schedule.next, now, now - MISSED_GRACE)
    except (ValidationFailed, TooCostly) as error:
        log.error("schedule %s of task %s: cannot evaluate %r (%s); it no longer fires until "
                  "its rule is updated", schedule.id, task.id, schedule.rrule, error)
        schedule.next = None
        return

    if passed.missed_count:
        schedule.missed_count = (schedule.missed_count or 0) + passed.missed_count
        schedule.missed_first = schedule.missed_first or passed.missed_first
        schedule.missed_last = passed.missed_last
        log.warning("task %s (%s): %s%d scheduled runs missed while the service was down "
                    "(%s to %s)", task.id, task.name,
                    "at least " if passed.missed_count_partial else "", passed.missed_count,
                    _iso(passed.missed_first), _iso(passed.missed_last))

    reason, running = _why_not_now(session, task)
    if passed.on_time:
        # The latest occurrence runs; earlier ones of the same pass are served by it.
        occurrence = passed.on_time[-1]
        if reason is None:
            schedule.skipped_count += len(passed.on_time) - 1
            enqueue_execution(session, task, window_start=occurrence, reason="schedule")
        else:
            schedule.skipped_count += len(passed.on_time)
            _note_skipped(session, task, running, f"scheduled run at {_iso(occurrence)} skipped: {reason}")
    elif passed.missed_count:
        # One catch-up run for the whole downtime, due now (its start window from now).
        # When it cannot start, the occurrences are already counted as missed.
        summary = (f"{passed.missed_count} scheduled runs missed while the service was down "
                   f"({_iso(passed.missed_first)} to {_iso(passed.missed_last)})")
        if reason is None:
            execution = enqueue_execution(session, task, reason="schedule: catch-up run")
            append_log(session, execution, "info", f"catch-up for {summary}")
        else:
            _note_skipped(session, task, running, f"catch-up run for {summary} skipped: {reason}")

    try:
        schedule.next = next_occurrence(recurrence, now)
    except TooCostly:
        log.error("schedule %s of task %s: the next occurrence of %r cannot be computed in "
                  "time; it no longer fires until its rule is updated", schedule.id, task.id,
                  schedule.rrule)
        schedule.next = None
        return
    schedule.done = schedule.next is None


def _note_skipped(session: Session, task: Task, running: TaskExecution | None, message: str) -> None:
    """Tell why a scheduled run did not start: on the run in the way, or in the server log."""
    if running is not None:
        append_log(session, running, "warning", message)
    else:
        log.info("task %s (%s): %s", task.id, task.name, message)


def fire_due_schedules(session: Session, now: datetime) -> int:
    """Handle every schedule whose stored `next` has come; returns how many."""
    due = list(session.scalars(
        select(TaskSchedule)
        .where(TaskSchedule.done.is_(False), TaskSchedule.next.is_not(None),
               TaskSchedule.next <= now)
        .order_by(TaskSchedule.next, TaskSchedule.id)
        .with_for_update(skip_locked=True)
    ))
    handled = 0
    for schedule in due:
        task = _lock_task(session, schedule.task_id)
        if task is None:
            continue  # busy (or being deleted): the occurrence stays due for the next pass
        _fire(session, schedule, task, now)
        handled += 1
    session.flush()
    return handled


def earliest_next(session: Session) -> datetime | None:
    """When the maintenance loop must run next to fire a schedule on time."""
    return session.scalar(select(func.min(TaskSchedule.next))
                          .where(TaskSchedule.done.is_(False), TaskSchedule.next.is_not(None)))


def seconds_until_next_pass(upcoming: datetime | None, interval: float,
                            now: datetime | None = None) -> float:
    """The maintenance loop's sleep: its usual interval, shorter when an occurrence
    falls before the end of it (semantics: schedules fire within a second)."""
    if upcoming is None:
        return interval
    now = now or datetime.now(timezone.utc)
    until = (upcoming - now).total_seconds() + WAKE_AFTER_SECONDS
    return max(MIN_SLEEP_SECONDS, min(interval, until))


def reset_after_success(session: Session, execution: TaskExecution) -> None:
    """A run that ends `done` clears the task's missed and skipped counters."""
    if execution.status != "done":
        return
    session.execute(
        update(TaskSchedule)
        .where(TaskSchedule.task_id == execution.task_id,
               or_(TaskSchedule.missed_count != 0, TaskSchedule.skipped_count != 0,
                   TaskSchedule.missed_first.is_not(None), TaskSchedule.missed_last.is_not(None)))
        .values(missed_count=0, skipped_count=0, missed_first=None, missed_last=None)
        .execution_options(synchronize_session=False)
    )
