"""The file catalog: every file tiermover has seen, and which executions handled it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tiermover.db.base import Base, BigId, UTCDateTime, utcnow


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
    # The content's checksum when last read (a copy or a scan with file_checksum); cleared
    # when a scan finds the file changed without hashing it.
    checksum: Mapped[str | None] = mapped_column(String(128))
    algorithm: Mapped[str | None] = mapped_column(String(16))
    # The last scan execution that saw the file: a scan's end forgets what it did not see.
    seen_by: Mapped[str | None] = mapped_column(String(32))


class FileCopy(Base):
    """A copy of a catalogued file on secondary storage (a NAS share, a bucket, a tape).

    `storage_kind` + `storage_id` + `path` say where it is; `file_path` is the same place
    as a namespace path. `size`, `mtime` and `checksum` describe the version it holds.
    """

    __tablename__ = "file_copies"
    __table_args__ = (
        UniqueConstraint("storage_kind", "storage_id", "path", name="uq_file_copies_location"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    storage_kind: Mapped[str] = mapped_column(String(16))
    storage_id: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    file_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checksum: Mapped[str | None] = mapped_column(String(128))
    algorithm: Mapped[str | None] = mapped_column(String(16))
    execution_id: Mapped[str | None] = mapped_column(String(32), index=True)
    creation_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_ok: Mapped[bool | None] = mapped_column(Boolean)
    # On a tape: the cartridge byte where the data starts (reads go in this order).
    position: Mapped[int | None] = mapped_column(BigInteger)


class BackupSetFile(Base):
    """One file version a backup set holds: the copy a restore of that set reads.

    A full set holds what it wrote; an incremental one also the unchanged files, through
    the copies earlier sets made of them.
    """

    __tablename__ = "backup_set_files"
    __table_args__ = (UniqueConstraint("execution_id", "file_id", name="uq_backup_set_files"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    copy_id: Mapped[int] = mapped_column(ForeignKey("file_copies.id", ondelete="CASCADE"),
                                         index=True)


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
    # Lookups by execution use uq_execution_files (it starts with execution_id).
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("task_executions.id", ondelete="CASCADE")
    )
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(32), default="done")
