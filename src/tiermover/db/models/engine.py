"""What the execution engine keeps: control jobs, nodes, execution logs and checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tiermover.db.base import Base, BigId, UTCDateTime, utcnow


class ActiveJob(Base):
    """A control request (run, pause, stop, resume) and whether its effect holds yet."""

    __tablename__ = "active_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[str | None] = mapped_column(String(32))
    verb: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Node(Base):
    """A worker node: a process that claims executions over HTTP."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    # JSON list of the storage keys ("container:3", "nas_share:7") the node reaches.
    storages: Mapped[str] = mapped_column(Text, default="[]")
    version: Mapped[str | None] = mapped_column(String(32))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExecutionLog(Base):
    __tablename__ = "execution_logs"
    __table_args__ = (UniqueConstraint("execution_id", "idx", name="uq_execution_logs_idx"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE"), index=True
    )
    idx: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    msg: Mapped[str] = mapped_column(Text)
    status_percent: Mapped[int] = mapped_column(Integer, default=0)


class ExecutionItem(Base):
    """A work item an execution finished: its checkpoint and its per-file report."""

    __tablename__ = "execution_items"
    __table_args__ = (UniqueConstraint("execution_id", "item_key", name="uq_execution_items_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE"), index=True
    )
    item_key: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str | None] = mapped_column(String(128))
    destination: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[bool] = mapped_column(Boolean, default=False)


class ExecutionStorage(Base):
    """A storage an execution touches; only nodes reaching all of them may claim it."""

    __tablename__ = "execution_storages"

    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE"), primary_key=True
    )
    storage_key: Mapped[str] = mapped_column(String(64), primary_key=True)
