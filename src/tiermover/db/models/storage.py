"""The storage objects tasks refer to: containers, NAS shares, cloud buckets, pools, tapes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tiermover.db.base import Base, BigId, UTCDateTime, utcnow


class Container(Base):
    """A primary area tiermover manages under its own root directory."""

    __tablename__ = "containers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    root_path: Mapped[str] = mapped_column(Text)
    quota_total_size: Mapped[int | None] = mapped_column(BigInteger)
    quota_on_cache: Mapped[int | None] = mapped_column(BigInteger)
    stat_total_files: Mapped[int] = mapped_column(BigInteger, default=0)
    stat_total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    stat_size_on_cache: Mapped[int] = mapped_column(BigInteger, default=0)
    only_on_cache_file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    only_on_cache_file_size_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    guest_right: Mapped[str] = mapped_column(String(16), default="none")
    push_pool_id: Mapped[int | None] = mapped_column(ForeignKey("pools.id", ondelete="SET NULL"))
    cleaning_pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL")
    )
    last_update: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ContainerPrivilege(Base):
    __tablename__ = "container_privileges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    container_id: Mapped[int] = mapped_column(
        ForeignKey("containers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    privilege: Mapped[str] = mapped_column(String(16), default="read")
    type: Mapped[str] = mapped_column(String(8), default="user")


class Pool(Base):
    __tablename__ = "pools"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(String(16))
    # The container a primary pool serves (kept as a plain id: containers refer to
    # pools too, and a foreign key both ways would make the tables a cycle).
    primary_id: Mapped[int | None] = mapped_column(BigInteger)
    storage_id: Mapped[int | None] = mapped_column(BigInteger)
    tape_write_protect_when_full: Mapped[bool] = mapped_column(Boolean, default=False)


class Nas(Base):
    __tablename__ = "nas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    host: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16), default="nfs_v4")
    comment: Mapped[str | None] = mapped_column(Text)
    price: Mapped[str | None] = mapped_column(String(64))


class NasShare(Base):
    """A directory the nodes reach (an NFS/SMB mount or a local path), already mounted."""

    __tablename__ = "nas_shares"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    nas_id: Mapped[int] = mapped_column(ForeignKey("nas.id", ondelete="CASCADE"), index=True)
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255), unique=True)
    path: Mapped[str] = mapped_column(Text)
    options: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(String(255))
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    file_size_sum: Mapped[int] = mapped_column(BigInteger, default=0)


class CloudConnector(Base):
    __tablename__ = "cloud_connectors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    url: Mapped[str | None] = mapped_column(Text)
    url_proxy: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32), default="generic_s3")
    region: Mapped[str | None] = mapped_column(String(64))
    access_key: Mapped[str | None] = mapped_column(String(255))
    secret_key: Mapped[str | None] = mapped_column(String(255))
    options: Mapped[str | None] = mapped_column(Text)


class CloudBucket(Base):
    __tablename__ = "cloud_buckets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cloud_connector_id: Mapped[int] = mapped_column(
        ForeignKey("cloud_connectors.id", ondelete="CASCADE"), index=True
    )
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    file_count: Mapped[int] = mapped_column(BigInteger, default=0)
    file_size_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    location: Mapped[str | None] = mapped_column(String(255))
    price: Mapped[str | None] = mapped_column(String(64))
    options: Mapped[str | None] = mapped_column(Text)


class TapeLibrary(Base):
    __tablename__ = "tape_libraries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    comment: Mapped[str | None] = mapped_column(Text)
    libso: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="online")
    price: Mapped[str | None] = mapped_column(String(64))
    serial: Mapped[str | None] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(16), default="scsi")
    vendor: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(Text)
    acs: Mapped[int | None] = mapped_column(Integer)
    storage_slots: Mapped[int | None] = mapped_column(Integer)
    storage_slots_address: Mapped[int | None] = mapped_column(Integer)
    io_slots: Mapped[int | None] = mapped_column(Integer)
    io_slots_address: Mapped[int | None] = mapped_column(Integer)
    # What blank cartridges added to the library are (extensions; a virtual library's
    # cartridges are files of this capacity).
    cartridge_capacity: Mapped[int | None] = mapped_column(BigInteger)
    cartridge_type: Mapped[str | None] = mapped_column(String(16))
    barcode_prefix: Mapped[str | None] = mapped_column(String(16))


class TapeDrive(Base):
    __tablename__ = "tape_drives"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tape_library_id: Mapped[int] = mapped_column(
        ForeignKey("tape_libraries.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    libso: Mapped[str | None] = mapped_column(String(255))
    serial: Mapped[str | None] = mapped_column(String(64))
    scsi_address: Mapped[int | None] = mapped_column(Integer)
    vendor: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(Text)
    sgdevice: Mapped[str | None] = mapped_column(Text)
    acs: Mapped[int | None] = mapped_column(Integer)
    lsm: Mapped[int | None] = mapped_column(Integer)
    panel: Mapped[int | None] = mapped_column(Integer)
    transport: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="online")
    full: Mapped[int] = mapped_column(Integer, default=0)
    mount_count: Mapped[int] = mapped_column(Integer, default=0)
    use_to: Mapped[str | None] = mapped_column(String(64))
    use_by: Mapped[str | None] = mapped_column(String(64))
    barcode: Mapped[str | None] = mapped_column(String(32))
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    use_file_processed_size: Mapped[int] = mapped_column(BigInteger, default=0)
    use_file_size_to_process: Mapped[int] = mapped_column(BigInteger, default=0)
    use_file_name_processed: Mapped[str | None] = mapped_column(Text)
    bandwidth: Mapped[int] = mapped_column(BigInteger, default=0)


class Tape(Base):
    __tablename__ = "tapes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tape_library_id: Mapped[int | None] = mapped_column(
        ForeignKey("tape_libraries.id", ondelete="SET NULL"), index=True
    )
    pool_id: Mapped[int | None] = mapped_column(
        ForeignKey("pools.id", ondelete="SET NULL"), index=True
    )
    barcode: Mapped[str] = mapped_column(String(32), unique=True)
    location: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16), default="data_lto5")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    scratch: Mapped[bool] = mapped_column(Boolean, default=True)
    cleaning: Mapped[bool] = mapped_column(Boolean, default=False)
    write_protect: Mapped[bool] = mapped_column(Boolean, default=False)
    mounted: Mapped[bool] = mapped_column(Boolean, default=False)
    ejected: Mapped[bool] = mapped_column(Boolean, default=False)
    known: Mapped[bool] = mapped_column(Boolean, default=True)
    mount_count: Mapped[int] = mapped_column(Integer, default=0)
    date_in: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    date_move: Mapped[datetime | None] = mapped_column(UTCDateTime)
    free: Mapped[int] = mapped_column(BigInteger, default=0)
    max: Mapped[int] = mapped_column(BigInteger, default=0)
    last_size_update: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_maintenance: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_repack: Mapped[datetime | None] = mapped_column(UTCDateTime)
    repack_status: Mapped[bool] = mapped_column(Boolean, default=False)
    hash: Mapped[str | None] = mapped_column(String(128))
    force_import_type: Mapped[bool] = mapped_column(Boolean, default=False)
    need_to_check: Mapped[bool] = mapped_column(Boolean, default=False)
