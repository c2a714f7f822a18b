"""JSON shapes of the storage objects, shared by their own endpoints and by the task
sources/destinations that embed them (seed 002)."""

from __future__ import annotations

from collections.abc import Callable

from tiermover.api.nodeum.render import columns
from tiermover.db.models import (
    CatalogFile, CloudBucket, CloudConnector, Container, ImportFile, Nas, NasShare, Pool, Tape,
    TapeDrive, TapeLibrary,
)
from tiermover.service.auth import Principal
from tiermover.service.files import copies_of

CENSORED = "[censored]"

CONTAINER_FIELDS = (
    "id", "name", "comment", "push_pool_id", "cleaning_pool_id", "quota_total_size",
    "quota_on_cache", "stat_total_files", "only_on_cache_file_count", "stat_total_size",
    "stat_size_on_cache", "only_on_cache_file_size_sum", "guest_right", "last_update",
)
POOL_FIELDS = ("id", "name", "comment", "type", "content", "primary_id", "storage_id",
               "tape_write_protect_when_full")
TAPE_FIELDS = (
    "id", "tape_library_id", "pool_id", "barcode", "location", "type", "locked", "scratch",
    "cleaning", "write_protect", "mounted", "ejected", "known", "mount_count", "date_in",
    "date_move", "free", "max", "last_size_update", "last_maintenance", "last_repack",
    "repack_status", "hash", "force_import_type", "need_to_check",
)
FILE_FIELDS = (
    "id", "name", "parent", "primary_id", "type", "permission", "size", "change_date",
    "modification_date", "access_date", "uid", "gid", "in_cache", "offline", "extern",
    "file_path",
)
IMPORT_FILE_FIELDS = (
    "id", "name", "parent", "type", "permission", "size", "change_date", "modification_date",
    "access_date", "uid", "gid", "file_path",
)
NAS_FIELDS = ("id", "name", "host", "type", "comment", "price")
NAS_SHARE_FIELDS = ("id", "nas_id", "pool_id", "name", "path", "options", "username",
                    "file_count", "file_size_sum")
CLOUD_CONNECTOR_FIELDS = ("id", "name", "url", "url_proxy", "provider", "region", "access_key",
                          "options")
CLOUD_BUCKET_FIELDS = ("id", "cloud_connector_id", "pool_id", "name", "file_count",
                       "file_size_sum", "location", "price", "options")
TAPE_LIBRARY_FIELDS = (
    "id", "name", "comment", "libso", "status", "price", "serial", "protocol", "vendor",
    "product", "firmware", "device", "acs", "storage_slots", "storage_slots_address",
    "io_slots", "io_slots_address", "cartridge_capacity", "cartridge_type", "barcode_prefix",
)
TAPE_DRIVE_FIELDS = (
    "id", "tape_library_id", "name", "comment", "libso", "serial", "scsi_address", "vendor",
    "product", "firmware", "device", "sgdevice", "acs", "lsm", "panel", "transport", "status",
    "full", "mount_count", "use_to", "use_by", "barcode", "task_id", "use_file_processed_size",
    "use_file_size_to_process", "use_file_name_processed", "bandwidth",
)


def render_container(container: Container | None) -> dict | None:
    return None if container is None else columns(container, CONTAINER_FIELDS)


def render_pool(pool: Pool | None) -> dict | None:
    return None if pool is None else columns(pool, POOL_FIELDS)


def render_tape(tape: Tape | None) -> dict | None:
    return None if tape is None else columns(tape, TAPE_FIELDS)


def render_file(entry: CatalogFile | None, copies: dict | None = None) -> dict | None:
    """The Nodeum folder/file object (NodeumFileWithPath); `copies` is the file's entry
    from `service.files.copies_of` (checksums, tapes, cloud_buckets, nas_shares)."""
    if entry is None:
        return None
    body = columns(entry, FILE_FIELDS)
    body.update(copies or {"checksums": [], "tapes": [], "cloud_buckets": [], "nas_shares": []})
    return body


def file_renderer(session, entries: list) -> Callable[[CatalogFile], dict | None]:
    """render_file for a page of files, their copies looked up in one query."""
    summary = copies_of(session, [entry for entry in entries if entry is not None])
    return lambda entry: render_file(entry, summary.get(entry.id) if entry else None)


def render_import_file(entry: ImportFile | None) -> dict | None:
    return None if entry is None else columns(entry, IMPORT_FILE_FIELDS)


def render_nas(nas: Nas) -> dict:
    return columns(nas, NAS_FIELDS)


def render_nas_share(share: NasShare, principal: Principal) -> dict:
    body = columns(share, NAS_SHARE_FIELDS)
    reveal = principal.holds_explicit_scope("nas_shares", "get_password")
    body["password"] = share.password if reveal or share.password is None else CENSORED
    return body


def render_cloud_connector(connector: CloudConnector, principal: Principal) -> dict:
    body = columns(connector, CLOUD_CONNECTOR_FIELDS)
    reveal = principal.holds_explicit_scope("cloud_connectors", "get_secret_key")
    body["secret_key"] = (connector.secret_key if reveal or connector.secret_key is None
                          else CENSORED)
    return body


def render_cloud_bucket(bucket: CloudBucket) -> dict:
    return columns(bucket, CLOUD_BUCKET_FIELDS)


def render_tape_library(library: TapeLibrary) -> dict:
    return columns(library, TAPE_LIBRARY_FIELDS)


def render_tape_drive(drive: TapeDrive) -> dict:
    return columns(drive, TAPE_DRIVE_FIELDS)


MOUNT_INFO_FIELDS = (
    "id", "major_minor", "target", "source", "options", "type", "pool_id", "pool_name",
    "nas_id", "nas_name", "nas_share_id", "nas_share_name", "cloud_connector_id",
    "cloud_connector_name", "cloud_bucket_id", "cloud_bucket_name", "tape_id", "tape_barcode",
    "tape_library_id", "tape_library_name", "tape_library_serial",
)


def render_mount_status(mounted: bool, message: str | None, info: dict) -> dict:
    """MountStatus; `info` holds the MountInfo fields that apply, the others are null."""
    return {"mounted": mounted, "message": message,
            "status": {name: info.get(name) for name in MOUNT_INFO_FIELDS}}
