"""Catalog records a running execution works from, a page at a time (the server side of
`tiermover.node.references`, which documents the kinds and their records).

Pages follow the files' namespace paths, so a cursor is the last record's position and a
node can stream millions of records without either side holding them all.
"""

from __future__ import annotations

import json

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from tiermover.db.models import (
    BackupSetFile, CatalogFile, FileCopy, Node, Task, TaskExecution, TaskOption,
)
from tiermover.service import queue
from tiermover.service.catalog_changes import BACKUP_ACTIONS
from tiermover.service.catalog_entries import under
from tiermover.service.errors import Forbidden, ValidationFailed
from tiermover.service.execution_spec import source_paths
from tiermover.service.storage import tape_spec

KINDS = ("copies", "backup_files", "restore", "tape_copies")
MAX_LIMIT = 5000
SUCCESSFUL = ("done", "finished_with_warnings")


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _under_sources(paths: list[str]):
    return or_(*[under(CatalogFile.file_path, path) for path in paths]) if paths else false()


def _held_execution(session: Session, node: Node, execution_id: str) -> TaskExecution:
    execution = session.get(TaskExecution, execution_id)
    if execution is None or execution.node_id != node.id or execution.status not in queue.RUNNING:
        raise Forbidden(f"Execution {execution_id} is not running on node {node.id}")
    return execution


def references(session: Session, node: Node, execution_id: str, kind: str,
               after: str | None, limit: int) -> dict:
    if kind not in KINDS:
        raise ValidationFailed.on("kind", "inclusion", f"must be one of {', '.join(KINDS)}",
                                  value=kind)
    execution = _held_execution(session, node, execution_id)
    task = session.get(Task, execution.task_id)
    limit = max(1, min(int(limit), MAX_LIMIT))
    try:
        cursor = json.loads(after) if after else None
    except ValueError:
        raise ValidationFailed.on("after", "invalid", value=after) from None
    if kind == "tape_copies":
        records, cursor = tape_spec.live_copies(session, task, cursor, limit)
        return {"references": records, "next": json.dumps(cursor) if cursor is not None else None}
    sources = source_paths(session, task)
    if kind == "copies":
        records, cursor = _copies(session, sources, cursor, limit)
    elif kind == "backup_files":
        records, cursor = _backup_files(session, task, execution, cursor, limit)
    else:
        records, cursor = _restore(session, task, sources, cursor, limit)
    return {"references": records, "next": json.dumps(cursor) if cursor is not None else None}


def _copies(session: Session, sources: list[str], cursor, limit: int):
    """Every copy of every file under the sources; a file without one comes once, bare."""
    copy_order = func.coalesce(FileCopy.id, 0)
    statement = (
        select(CatalogFile.file_path, CatalogFile.size, CatalogFile.checksum.label("own_sum"),
               CatalogFile.algorithm.label("own_algorithm"), FileCopy.id.label("copy_id"),
               FileCopy.file_path.label("copy"), FileCopy.checksum, FileCopy.algorithm,
               FileCopy.verified_date, FileCopy.storage_kind, FileCopy.position,
               FileCopy.mtime)
        .outerjoin(FileCopy, FileCopy.file_id == CatalogFile.id)
        .where(CatalogFile.type == "file", _under_sources(sources))
        .order_by(CatalogFile.file_path, copy_order).limit(limit + 1))
    if cursor is not None:
        path, copy_id = cursor
        statement = statement.where(or_(CatalogFile.file_path > path,
                                        and_(CatalogFile.file_path == path,
                                             copy_order > copy_id)))
    rows = list(session.execute(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    records = [{"file": row.file_path, "copy": row.copy, "size": row.size,
                "checksum": row.checksum if row.copy else row.own_sum,
                "algorithm": row.algorithm if row.copy else row.own_algorithm,
                "verified_date": _iso(row.verified_date),
                **({"tape": True, "position": row.position, "mtime": _iso(row.mtime)}
                   if row.storage_kind == "tape" else {})} for row in rows]
    return records, ([rows[-1].file_path, rows[-1].copy_id or 0] if more else None)


def _version_columns():
    return (CatalogFile.file_path, FileCopy.file_path.label("copy"), FileCopy.size,
            FileCopy.mtime, FileCopy.checksum, FileCopy.algorithm, FileCopy.storage_kind,
            FileCopy.position)


def _page(session: Session, statement, cursor, limit: int):
    if cursor is not None:
        statement = statement.where(CatalogFile.file_path > cursor)
    rows = list(session.execute(statement.order_by(CatalogFile.file_path).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    records = [{"file": row.file_path, "copy": row.copy, "size": row.size,
                "mtime": _iso(row.mtime), "checksum": row.checksum, "algorithm": row.algorithm,
                # A copy on a tape: where it starts on the cartridge, for reads in order.
                **({"tape": True, "position": row.position}
                   if row.storage_kind == "tape" else {})}
               for row in rows]
    return records, (rows[-1].file_path if more else None)


def _set_members(execution_id: str):
    return (select(*_version_columns())
            .join(FileCopy, FileCopy.file_id == CatalogFile.id)
            .join(BackupSetFile, and_(BackupSetFile.copy_id == FileCopy.id,
                                      BackupSetFile.file_id == CatalogFile.id))
            .where(BackupSetFile.execution_id == execution_id))


def last_backup_set(session: Session, task: Task, before: TaskExecution | None) -> str | None:
    """The task's newest successful backup execution (other than `before`)."""
    statement = (select(TaskExecution.id)
                 .where(TaskExecution.task_id == task.id, TaskExecution.status.in_(SUCCESSFUL))
                 .order_by(TaskExecution.id.desc()).limit(1))
    if before is not None:
        statement = statement.where(TaskExecution.id != before.id)
    return session.scalar(statement)


def _backup_files(session: Session, task: Task, execution: TaskExecution, cursor, limit: int):
    """What the task's last successful set holds: an incremental one compares with it."""
    if task.workflow_action not in BACKUP_ACTIONS:
        return [], None
    previous = last_backup_set(session, task, execution)
    if previous is None:
        return [], None
    return _page(session, _set_members(previous), cursor, limit)


def _restore(session: Session, task: Task, sources: list[str], cursor, limit: int):
    """The set of the execution in option execution_task_id, or else the newest copy of
    every file under the sources."""
    point_in_time = session.scalar(select(TaskOption.value).where(
        TaskOption.task_id == task.id, TaskOption.type == "execution_task_id"))
    if point_in_time:
        statement = _set_members(point_in_time.strip()).where(_under_sources(sources))
        return _page(session, statement, cursor, limit)
    newer = aliased(FileCopy)
    superseded = select(newer.id).where(
        newer.file_id == FileCopy.file_id,
        or_(newer.creation_date > FileCopy.creation_date,
            and_(newer.creation_date == FileCopy.creation_date, newer.id > FileCopy.id)),
    ).exists()
    statement = (select(*_version_columns())
                 .join(FileCopy, FileCopy.file_id == CatalogFile.id)
                 .where(CatalogFile.type == "file", _under_sources(sources), ~superseded))
    return _page(session, statement, cursor, limit)
