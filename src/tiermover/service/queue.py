"""The executions table is the queue: enqueue, claim, leases and wake-ups.

A claim is one statement. On PostgreSQL its inner SELECT takes the row with
`FOR UPDATE SKIP LOCKED`, so concurrent claims (several nodes, several server processes)
never get the same execution; enqueueing sends NOTIFY, which wakes the claims waiting
in every server process. On SQLite there is one server process and one writer: the
statement is atomic and enqueueing wakes the waiting claims in process.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import (
    and_, bindparam, exists, func, literal_column, not_, or_, select, text, true, update,
)
from sqlalchemy.orm import Session

from tiermover.db.base import utcnow
from tiermover.db.models import ExecutionStorage, Node, TaskExecution
from tiermover.service.transactions import after_commit

log = logging.getLogger("tiermover.queue")

NOTIFY_CHANNEL = "tiermover_queue"
RUNNING = ("calculating", "in_progress")
ACTIVE = ("in_queue", "calculating", "in_progress", "paused")
FINAL = ("done", "finished_with_warnings", "error", "stopped_by_user", "stopped_by_system")


class QueueSignal:
    """Wakes long-polling claims when something may have become claimable.

    Thread-safe: `notify()` may be called from request threads, the PostgreSQL listener
    thread or the maintenance loop; waiters are coroutines on the server's event loop.
    """

    def __init__(self) -> None:
        self._generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    @property
    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        self._generation += 1
        if self._loop is not None and self._event is not None:
            try:
                self._loop.call_soon_threadsafe(self._event.set)
            except RuntimeError:  # loop closed at shutdown
                pass

    async def wait(self, seen_generation: int, timeout: float) -> None:
        if self._event is None or self._generation != seen_generation:
            return
        self._event.clear()
        if self._generation != seen_generation:
            return
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


signal = QueueSignal()


_NOTIFY = text("SELECT pg_notify(:channel, '')")


def request_wake_up(session: Session) -> None:
    """Wake waiting claims once this transaction commits."""
    after_commit(session, signal.notify)
    if session.get_bind().dialect.name == "postgresql":
        # Transactional: delivered to every listening server process at commit. On the
        # session's connection, so that it does not flush the session first (the commit
        # flushes everything at once).
        session.connection().execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})


def storage_keys(node: Node) -> list[str]:
    return list(json.loads(node.storages or "[]"))


def claim_executions(session: Session, node: Node, lease: timedelta,
                     limit: int = 1) -> list[TaskExecution]:
    """Give the node up to `limit` executions it can run, in one statement: highest
    priority first, FIFO within, never before their start window, only those whose
    storages the node all reaches. Returned in that order."""
    if limit < 1:
        return []
    # Imported here: execution_state imports this module.
    from tiermover.service.execution_state import remember_last_log_index

    now = utcnow()
    reachable = storage_keys(node)
    parameters = {"now": now, "lease_end": now + lease, "node_id": node.id, "limit": limit}
    if reachable:
        parameters["reachable"] = reachable
    rows = session.execute(_claim_statement(bool(reachable)), parameters).all()
    claimed = []
    for execution, last_index in rows:
        remember_last_log_index(session, execution.id, last_index)
        claimed.append(execution)
    # RETURNING keeps no order: the node runs them in queue order.
    claimed.sort(key=lambda e: (-e.priority, e.queued_at.timestamp() if e.queued_at else 0.0,
                                e.id))
    return claimed


@functools.cache
def _claim_statement(node_reaches_storages: bool):
    """The claim, built once (per whether the node reaches any storage) with bound
    parameters: now, lease_end, node_id, limit and the node's storage keys (reachable)."""
    from tiermover.service.execution_state import last_log_index

    now = bindparam("now", type_=_DATE_TYPE)
    unreachable_storage = exists().where(
        ExecutionStorage.execution_id == TaskExecution.id,
        not_(ExecutionStorage.storage_key.in_(bindparam("reachable", expanding=True)))
        if node_reaches_storages else true(),
    )
    # Materialized, so that PostgreSQL takes (and SKIP LOCKs) the candidates exactly once,
    # whatever plan it picks for the UPDATE around them.
    picked = (
        select(TaskExecution.id)
        .where(
            TaskExecution.status == "in_queue",
            or_(TaskExecution.window_start.is_(None), TaskExecution.window_start <= now),
            not_(unreachable_storage),
        )
        .order_by(TaskExecution.priority.desc(), TaskExecution.queued_at.asc(),
                  TaskExecution.id.asc())
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # The claimed rows come back whole from the UPDATE, with each execution's last log
    # idx: no SELECT after it. A first claim is the execution's start.
    return (
        update(TaskExecution)
        .where(TaskExecution.id.in_(select(picked.c.id)), TaskExecution.status == "in_queue")
        .values(status="calculating", node_id=bindparam("node_id"), claimed_at=now,
                lease_expires_at=bindparam("lease_end", type_=_DATE_TYPE),
                attempts=TaskExecution.attempts + 1,
                job_started=func.coalesce(TaskExecution.job_started, now))
        # Qualified by hand: RETURNING renders bare column names, and a bare `id` inside
        # the subquery would be the log's own id.
        .returning(TaskExecution,
                   last_log_index(literal_column(f"{TaskExecution.__tablename__}.id")))
        .execution_options(synchronize_session=False, populate_existing=True)
    )


_DATE_TYPE = TaskExecution.__table__.c.job_started.type


def renew_leases(session: Session, node: Node, lease: timedelta) -> None:
    session.execute(
        update(TaskExecution)
        .where(TaskExecution.node_id == node.id, TaskExecution.status.in_(RUNNING))
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


def extend_all_leases(session: Session, lease: timedelta) -> None:
    """At start-up: nodes could not report while the server was down; give them time to
    reconnect before their executions are taken away."""
    session.execute(
        update(TaskExecution)
        .where(TaskExecution.status.in_(RUNNING))
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


def expired_leases(session: Session, now: datetime) -> list[TaskExecution]:
    return list(session.scalars(
        select(TaskExecution).where(
            TaskExecution.status.in_(RUNNING),
            TaskExecution.lease_expires_at < now,
        ).with_for_update(skip_locked=True)
    ))


def windows_expired(session: Session, now: datetime) -> list[TaskExecution]:
    return list(session.scalars(
        select(TaskExecution).where(
            TaskExecution.status == "in_queue",
            TaskExecution.window_end.is_not(None),
            TaskExecution.window_end < now,
        ).with_for_update(skip_locked=True)
    ))


def windows_opening(session: Session, since: datetime, now: datetime) -> bool:
    return session.scalar(
        select(exists().where(
            TaskExecution.status == "in_queue",
            and_(TaskExecution.window_start > since, TaskExecution.window_start <= now),
        ))
    ) or False


def timed_out(session: Session, now: datetime) -> list[TaskExecution]:
    rows = session.scalars(
        select(TaskExecution).where(
            TaskExecution.status.in_(RUNNING),
            TaskExecution.timeout_seconds.is_not(None),
            TaskExecution.control.is_(None),
        )
    )
    return [row for row in rows
            if row.job_started and row.job_started + timedelta(seconds=row.timeout_seconds) < now]


class PostgresListener(threading.Thread):
    """Turns NOTIFY on the queue channel into in-process wake-ups."""

    def __init__(self, dsn: str, signal: QueueSignal):
        super().__init__(name="queue-listener", daemon=True)
        self.dsn = dsn
        self.signal = signal
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.signal.notify()  # anything enqueued while we were not listening
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.signal.notify()
            except Exception as error:  # reconnect: the database may be restarting
                log.warning("queue listener lost its connection (%s); reconnecting", error)
                time.sleep(1.0)
