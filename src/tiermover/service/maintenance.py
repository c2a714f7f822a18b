"""The server's periodic pass: lost nodes, expired start windows, timeouts, schedules.

Runs about once a second in every server process; each change is taken with row locks
(SKIP LOCKED on PostgreSQL), so several processes never act twice on one execution.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from tiermover.db.base import utcnow
from tiermover.db.models import Task
from tiermover.service import queue, scheduler
from tiermover.service.control import finish_without_node
from tiermover.service.execution_state import append_log, mirror_to_task

log = logging.getLogger("tiermover.maintenance")

# A node that loses the same execution this often is not trusted with it again.
MAX_ATTEMPTS = 5


def requeue_lost(session: Session, now: datetime) -> int:
    lost = queue.expired_leases(session, now)
    for execution in lost:
        task = session.get(Task, execution.task_id)
        if execution.attempts >= MAX_ATTEMPTS:
            finish_without_node(session, execution, task, "stopped_by_system",
                                f"its node stopped answering {execution.attempts} times")
            continue
        append_log(session, execution, "warning",
                   "its node stopped answering; queued again, it resumes from its checkpoint")
        execution.status = "in_queue"
        execution.node_id = None
        execution.lease_expires_at = None
        mirror_to_task(session, execution, task)
    if lost:
        queue.request_wake_up(session)
    return len(lost)


def expire_windows(session: Session, now: datetime) -> int:
    expired = queue.windows_expired(session, now)
    for execution in expired:
        finish_without_node(session, execution, session.get(Task, execution.task_id),
                            "stopped_by_system", "start window expired")
    return len(expired)


def enforce_timeouts(session: Session, now: datetime) -> int:
    late = queue.timed_out(session, now)
    for execution in late:
        execution.control = "stop"
        execution.control_reason = "timeout"
        append_log(session, execution, "warning",
                   f"timeout: still running after {execution.timeout_seconds} s; stopping")
        mirror_to_task(session, execution)
    return len(late)


class Maintenance:
    def __init__(self, session_factory: sessionmaker, lease: timedelta):
        self.session_factory = session_factory
        self.lease = lease
        self.last_pass = utcnow()
        # The earliest occurrence still to fire: the loop wakes up for it (see api/app.py).
        self.next_occurrence: datetime | None = None

    def start(self) -> None:
        """Once at start-up: nodes could not report while the server was down, and schedules
        could not fire (their missed occurrences are counted and caught up with one run)."""
        with self.session_factory.begin() as session:
            queue.extend_all_leases(session, self.lease)
        self.fire_schedules(utcnow())

    def fire_schedules(self, now: datetime) -> None:
        # A transaction of its own: a schedule that fails to fire must not undo the rest
        # of the pass (lost nodes, windows, timeouts).
        with self.session_factory.begin() as session:
            scheduler.fire_due_schedules(session, now)
            self.next_occurrence = scheduler.earliest_next(session)

    def run_once(self) -> None:
        now = utcnow()
        with self.session_factory.begin() as session:
            requeue_lost(session, now)
            expire_windows(session, now)
            enforce_timeouts(session, now)
            if queue.windows_opening(session, self.last_pass, now):
                queue.request_wake_up(session)
        self.last_pass = now
        self.fire_schedules(now)
