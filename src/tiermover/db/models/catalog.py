"""The file catalog: every file tiermover has seen, and which executions handled it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tiermover.db.base import Base, BigId, UTCDateTime


class CatalogFile(Base):
    """A file or folder in the namespace `/<container or share>/<path>`.

    `storage_kind` + `storage_id` name the container or NAS share holding the primary
    copy; `path` is relative to its root ('' for the root folder itself).
    """

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("storage_kind", "storage_id", "path", name="uq_files_location"),
        Index("ix_files_parent_name", "parent", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(1024))
    parent: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    storage_kind: Mapped[str] = mapped_column(String(16))
    storage_id: Mapped[int] = mapped_column(BigInteger)
    primary_id: Mapped[int | None] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    file_path: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(8))
    permission: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    change_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    modification_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)
    in_cache: Mapped[int] = mapped_column(Integer, default=1)
    offline: Mapped[int] = mapped_column(Integer, default=0)
    extern: Mapped[int] = mapped_column(Integer, default=0)


class ImportFile(Base):
    """A file seen on imported media (e.g. a tape read back with get_index)."""

    __tablename__ = "import_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(1024))
    parent: Mapped[int | None] = mapped_column(ForeignKey("import_files.id", ondelete="CASCADE"))
    file_path: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(8))
    permission: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    change_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    modification_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uid: Mapped[int | None] = mapped_column(Integer)
    gid: Mapped[int | None] = mapped_column(Integer)


class ExecutionFile(Base):
    """A file an execution handled, with its outcome (the per-execution report)."""

    __tablename__ = "execution_files"
    __table_args__ = (UniqueConstraint("execution_id", "file_id", name="uq_execution_files"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE"), index=True
    )
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(32), default="done")
