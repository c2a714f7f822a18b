"""Tasks (definitions) and their parts, and task executions (one per run)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tiermover.db.base import Base, BigId, UTCDateTime, utcnow


class Task(Base):
    __tablename__ = "tasks"
    # Every list is scoped to an owner, so each index starts with user_id.
    __table_args__ = (
        # The default order (by id): deep pages are found by an index-only scan.
        Index("ix_tasks_user_id", "user_id", "id"),
        Index("ix_tasks_user_created", "user_id", "creation_date"),
        # Name equality and ordering by name.
        Index("ix_tasks_user_name", "user_id", "name"),
        # Name prefixes (`name=~backup%`): PostgreSQL uses a btree for LIKE only with the
        # pattern operator class (unless the database collation is C). Status and creation
        # date ride along so that counting and ordering the matches need no table reads.
        Index("ix_tasks_user_name_prefix", "user_id", "name", "status", "creation_date",
              postgresql_ops={"name": "varchar_pattern_ops"}),
        Index("ix_tasks_user_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    workflow_type: Mapped[str] = mapped_column(String(32))
    workflow_action: Mapped[str] = mapped_column(String(32))
    source_type: Mapped[str | None] = mapped_column(String(32))
    destination_type: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    conflict_resolution: Mapped[str] = mapped_column(String(16), default="rename")
    action: Mapped[str] = mapped_column(String(8), default="noop")
    activate: Mapped[bool] = mapped_column(Boolean, default=True)
    creation_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modification_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    creation_username: Mapped[str | None] = mapped_column(String(255))
    modification_username: Mapped[str | None] = mapped_column(String(255))
    # Mirrors of the latest execution, kept by the engine.
    status: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    job_started: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_finished: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_size: Mapped[int] = mapped_column(BigInteger, default=0)
    to_process_size: Mapped[int] = mapped_column(BigInteger, default=0)
    delete: Mapped[int] = mapped_column(Integer, default=0)
    local_server_path: Mapped[str | None] = mapped_column(Text)
    # Optimistic locking: every update increments it (see semantics section 2).
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A run still going after this many seconds is stopped by the system ("timeout").
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # Scheduled runs that have not started this long after their occurrence are dropped.
    start_window_seconds: Mapped[int | None] = mapped_column(Integer)
    # Who gets an e-mail when a run ends (comma-separated); only on problems if set.
    email_recipients: Mapped[str | None] = mapped_column(Text)
    email_problems_only: Mapped[bool] = mapped_column(Boolean, default=False)


def _task_fk():
    return mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)


class TaskSource(Base):
    __tablename__ = "task_sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = _task_fk()
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    file_path: Mapped[str | None] = mapped_column(Text)
    container_id: Mapped[int | None] = mapped_column(
        ForeignKey("containers.id", ondelete="SET NULL")
    )
    nas_share_id: Mapped[int | None] = mapped_column(
        ForeignKey("nas_shares.id", ondelete="SET NULL")
    )
    cloud_bucket_id: Mapped[int | None] = mapped_column(
        ForeignKey("cloud_buckets.id", ondelete="SET NULL")
    )
    range_start: Mapped[int | None] = mapped_column(BigInteger)
    range_end: Mapped[int | None] = mapped_column(BigInteger)
    import_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_files.id", ondelete="SET NULL")
    )
    tape_id: Mapped[int | None] = mapped_column(
        ForeignKey("tapes.id", ondelete="SET NULL"), index=True
    )
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )


class TaskDestination(Base):
    __tablename__ = "task_destinations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = _task_fk()
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    folder_path: Mapped[str | None] = mapped_column(Text)
    container_id: Mapped[int | None] = mapped_column(
        ForeignKey("containers.id", ondelete="SET NULL")
    )
    nas_share_id: Mapped[int | None] = mapped_column(
        ForeignKey("nas_shares.id", ondelete="SET NULL")
    )
    cloud_bucket_id: Mapped[int | None] = mapped_column(
        ForeignKey("cloud_buckets.id", ondelete="SET NULL")
    )
    tape_id: Mapped[int | None] = mapped_column(
        ForeignKey("tapes.id", ondelete="SET NULL"), index=True
    )
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )


class TaskOption(Base):
    __tablename__ = "task_options"
    # One option of each type per task, even when two requests race.
    __table_args__ = (UniqueConstraint("task_id", "type", name="uq_task_options_type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = _task_fk()
    type: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)


class TaskMetadatum(Base):
    __tablename__ = "task_metadata"
    __table_args__ = (UniqueConstraint("task_id", "key", name="uq_task_metadata_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = _task_fk()
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str | None] = mapped_column(Text)


class TaskCallback(Base):
    __tablename__ = "task_callbacks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = _task_fk()
    type: Mapped[str] = mapped_column(String(16), default="filter")
    script: Mapped[str] = mapped_column(Text)


class TaskSchedule(Base):
    __tablename__ = "task_schedules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), unique=True
    )
    rrule: Mapped[str] = mapped_column(Text)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    next: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    missed_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    missed_first: Mapped[datetime | None] = mapped_column(UTCDateTime)
    missed_last: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TaskExecution(Base):
    """One run of a task. Its id is the start of the run in nanoseconds, as a string."""

    __tablename__ = "task_executions"
    __table_args__ = (
        Index("ix_task_executions_task_started", "task_id", "job_started"),
        Index("ix_task_executions_queue", "status", "priority", "queued_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(255))
    workflow_type: Mapped[str | None] = mapped_column(String(32))
    workflow_action: Mapped[str | None] = mapped_column(String(32))
    source_type: Mapped[str | None] = mapped_column(String(32))
    destination_type: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="in_queue")
    log_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_started: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_finished: Mapped[datetime | None] = mapped_column(UTCDateTime)
    creation_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modification_date: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )
    to_process_size: Mapped[int] = mapped_column(BigInteger, default=0)
    processed_size: Mapped[int] = mapped_column(BigInteger, default=0)
    to_process_files: Mapped[int] = mapped_column(BigInteger, default=0)
    processed_files: Mapped[int] = mapped_column(BigInteger, default=0)
    finalized_files: Mapped[int] = mapped_column(BigInteger, default=0)
    estimation_time: Mapped[int] = mapped_column(BigInteger, default=0)
    bandwidth: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    # --- the queue (see service/queue.py) ---
    priority: Mapped[int] = mapped_column(Integer, default=5)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A pending command for the node running it ("pause", "stop") and, for a stop the
    # system decided (timeout, lost node), why.
    control: Mapped[str | None] = mapped_column(String(8))
    control_reason: Mapped[str | None] = mapped_column(Text)
