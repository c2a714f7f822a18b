"""What a node receives: the storages it may serve, and the spec of an execution.

A storage reaches the node as a backend descriptor (`tiermover.storage.open`): for
containers and NAS shares `{"kind": "local", "root": ...}`, for cloud buckets
`{"kind": "s3", "endpoint", "region", "access_key", "secret_key", "bucket", "prefix"}`.
The node opens its own backend from it, so the server never needs to reach the data.

A source pool of NAS shares or cloud buckets is all its members, each from its root. A
destination pool of them spreads its writes over its members:
each execution writes to one member, chosen when a node first claims it (the share with
the most free space, the bucket holding the fewest bytes, among those the node reaches)
and kept for the execution's later attempts, which must find the files already written.
"""

from __future__ import annotations

import json
import os

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from tiermover.db.models import (
    CloudBucket, CloudConnector, Container, ExecutionStorage, NasShare, Node, Pool, Task,
    TaskCallback, TaskDestination, TaskExecution, TaskOption, TaskSource,
)
from tiermover.service.execution_state import finished_keys
from tiermover.service.storage import tape_spec


def local_backend(root: str) -> dict:
    return {"kind": "local", "root": root}


def bucket_backend(connector: CloudConnector | None, bucket: CloudBucket) -> dict:
    """How to reach a bucket: its connector's endpoint and keys, and its name."""
    return {"kind": "s3", "endpoint": connector.url if connector else None,
            "region": connector.region if connector else None,
            "access_key": connector.access_key if connector else None,
            "secret_key": connector.secret_key if connector else None,
            "bucket": bucket.name, "prefix": ""}


def _bucket_backend(session: Session, bucket: CloudBucket) -> dict:
    return bucket_backend(session.get(CloudConnector, bucket.cloud_connector_id), bucket)


def known_storages(session: Session) -> list[dict]:
    """Every storage a task may use, with the backend a node must reach to serve it."""
    storages = [{"key": f"container:{c.id}", "kind": "container", "name": c.name,
                 "root": c.root_path, "backend": local_backend(c.root_path)}
                for c in session.scalars(select(Container))]
    storages += [{"key": f"nas_share:{s.id}", "kind": "nas_share", "name": s.name,
                  "root": s.path, "backend": local_backend(s.path)}
                 for s in session.scalars(select(NasShare))]
    connectors = {c.id: c for c in session.scalars(select(CloudConnector))}
    storages += [{"key": f"cloud_bucket:{b.id}", "kind": "cloud_bucket", "name": b.name,
                  "root": None, "backend": bucket_backend(connectors.get(b.cloud_connector_id), b)}
                 for b in session.scalars(select(CloudBucket))]
    return storages + tape_spec.library_storages(session)


def _storage_location(session: Session, kind: str, storage, path: str) -> dict:
    inside = path.strip("/").split("/", 1)[1] if "/" in path.strip("/") else ""
    if kind == "container":
        backend = local_backend(storage.root_path)
    elif kind == "nas_share":
        backend = local_backend(storage.path)
    else:
        backend = _bucket_backend(session, storage)
    return {"namespace_path": path, "storage_key": f"{kind}:{storage.id}",
            "storage_name": storage.name, "backend": backend, "path": inside}


def _location(session: Session, part, path_attr: str) -> dict | None:
    path = getattr(part, path_attr)
    for kind, model, storage_id in (("container", Container, part.container_id),
                                    ("nas_share", NasShare, part.nas_share_id),
                                    ("cloud_bucket", CloudBucket, part.cloud_bucket_id)):
        if storage_id:
            storage = session.get(model, storage_id)
            if storage is None or path is None:
                return None
            return _storage_location(session, kind, storage, path)
    return None


# --- destination pools ----------------------------------------------------------------------

POOL_MEMBERS = {"nas": ("nas_share", NasShare), "cloud": ("cloud_bucket", CloudBucket)}


def _free_bytes(share: NasShare) -> int | None:
    """Free space under a share's path, when the server sees it (else None)."""
    try:
        info = os.statvfs(share.path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def choose_pool_member(session: Session, pool: Pool, reachable: set[str] | None = None):
    """The member of a NAS or cloud pool the next writes go to, or None (no member, or a
    pool of tapes). Among the members in `reachable` (storage keys) when any is.

    NAS: the share with the most free space (statvfs, where the server sees the path;
    when it sees none, the first share). Cloud: the bucket holding the fewest bytes.
    """
    if pool.content not in POOL_MEMBERS:
        return None
    kind, model = POOL_MEMBERS[pool.content]
    members = list(session.scalars(select(model).where(model.pool_id == pool.id)
                                   .order_by(model.id)))
    if reachable:
        members = [m for m in members if f"{kind}:{m.id}" in reachable] or members
    if not members:
        return None
    if model is CloudBucket:
        return min(members, key=lambda bucket: (bucket.file_size_sum or 0, bucket.id))
    free = [(space, -share.id, share) for share in members
            if (space := _free_bytes(share)) is not None]
    return max(free)[2] if free else members[0]


def _pool_location(session: Session, execution: TaskExecution, pool: Pool) -> dict | None:
    """The member this execution writes to: the one chosen by an earlier attempt, else a
    new choice, remembered as a storage the execution needs (later attempts go to nodes
    that reach it)."""
    if pool.content not in POOL_MEMBERS:
        return None
    kind, model = POOL_MEMBERS[pool.content]
    members = {f"{kind}:{member_id}": member_id for member_id in
               session.scalars(select(model.id).where(model.pool_id == pool.id))}
    chosen_key = session.scalar(
        select(ExecutionStorage.storage_key)
        .where(ExecutionStorage.execution_id == execution.id,
               ExecutionStorage.storage_key.in_(list(members) or [""])).limit(1))
    member = session.get(model, members[chosen_key]) if chosen_key else None
    if member is None:
        node = session.get(Node, execution.node_id) if execution.node_id else None
        reachable = set(json.loads(node.storages or "[]")) if node else None
        member = choose_pool_member(session, pool, reachable)
        if member is None:
            return None
        session.add(ExecutionStorage(execution_id=execution.id,
                                     storage_key=f"{kind}:{member.id}"))
        session.flush()
    return _storage_location(session, kind, member, "/" + member.name)


def _sources(session: Session, source: TaskSource) -> list[dict]:
    """A path, or every member of a NAS or cloud pool (each from its root: what the pool
    holds, as duplication copies it)."""
    if source.pool_id and not source.file_path:
        pool = session.get(Pool, source.pool_id)
        if pool is None or pool.content not in POOL_MEMBERS:
            return []
        kind, model = POOL_MEMBERS[pool.content]
        return [_storage_location(session, kind, member, "/" + member.name) for member in
                session.scalars(select(model).where(model.pool_id == pool.id).order_by(model.id))]
    location = _location(session, source, "file_path")
    return [location] if location else []


def _destination(session: Session, execution: TaskExecution,
                 destination: TaskDestination) -> dict | None:
    if tape_spec.is_tape_destination(session, destination):
        return tape_spec.tape_destination(session, session.get(Task, execution.task_id),
                                          destination)
    if destination.pool_id and not destination.folder_path:
        pool = session.get(Pool, destination.pool_id)
        return _pool_location(session, execution, pool) if pool else None
    return _location(session, destination, "folder_path")


def source_paths(session: Session, task: Task) -> list[str]:
    """The namespace paths a task's sources stand for (a pool: each member's root)."""
    return [location["namespace_path"] for s in
            session.scalars(select(TaskSource).where(TaskSource.task_id == task.id)
                            .order_by(TaskSource.id))
            for location in _sources(session, s)]


def execution_spec(session: Session, execution: TaskExecution) -> dict:
    """Everything a node needs to run (or resume) an execution."""
    return execution_specs(session, [execution])[0]


def _by_task(rows, task_id=lambda row: row.task_id) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(task_id(row), []).append(row)
    return grouped


def _load_storages(session: Session, parts: list) -> list:
    """The storages the parts name, a query per kind for all of them, so that the
    `session.get` of each location finds them in the session. Returned to be kept alive
    while the specs are built (the session holds unchanged objects weakly)."""
    loaded: list = []
    for model, attr in ((Container, "container_id"), (NasShare, "nas_share_id"),
                        (CloudBucket, "cloud_bucket_id")):
        ids = {getattr(part, attr) for part in parts if getattr(part, attr)}
        if ids:
            loaded += session.scalars(select(model).where(model.id.in_(ids))).all()
    connectors = {b.cloud_connector_id for b in loaded
                  if isinstance(b, CloudBucket) and b.cloud_connector_id}
    if connectors:
        loaded += session.scalars(select(CloudConnector)
                                  .where(CloudConnector.id.in_(connectors))).all()
    return loaded


# The queries of execution_specs, built once: `task_ids` is the list of the batch's tasks.
# The task parts come as rows, not ORM objects (nothing changes them here, and loading
# objects cost more than the queries): a row reads like the object, column by column.
_TASK_IDS = bindparam("task_ids", expanding=True)
_SPEC_SOURCES = (select(TaskSource.__table__).where(TaskSource.task_id.in_(_TASK_IDS))
                 .order_by(TaskSource.id))
_SPEC_DESTINATIONS = (select(TaskDestination.__table__)
                      .where(TaskDestination.task_id.in_(_TASK_IDS)).order_by(TaskDestination.id))
_SPEC_OPTIONS = select(TaskOption.task_id, TaskOption.type, TaskOption.value).where(
    TaskOption.task_id.in_(_TASK_IDS))
_SPEC_FILTERS = (select(TaskCallback.task_id, TaskCallback.script)
                 .where(TaskCallback.task_id.in_(_TASK_IDS), TaskCallback.type == "filter")
                 .order_by(TaskCallback.id))


def execution_specs(session: Session, executions: list[TaskExecution]) -> list[dict]:
    """The specs of several executions (a node claims several at once), with one query
    per kind of task part for all of them; in the order of `executions`."""
    batch = {"task_ids": sorted({execution.task_id for execution in executions})}
    sources = _by_task(session.execute(_SPEC_SOURCES, batch))
    destinations = _by_task(session.execute(_SPEC_DESTINATIONS, batch))
    options = _by_task(session.execute(_SPEC_OPTIONS, batch))
    filters = _by_task(session.execute(_SPEC_FILTERS, batch))
    storages = _load_storages(session, [part for parts in (*sources.values(),
                                                           *destinations.values())
                                        for part in parts])
    specs = []
    for execution in executions:
        task = session.get(Task, execution.task_id)
        task_sources = [location for s in sources.get(task.id, ())
                        for location in _sources(session, s)]
        if task.workflow_action in tape_spec.TAPE_SOURCE_ACTIONS:
            task_sources = tape_spec.tape_sources(session, task)
        elif task.workflow_action in tape_spec.TAPE_OR_FILE_SOURCE_ACTIONS:
            task_sources += tape_spec.tape_sources(session, task)
        task_destinations = [_destination(session, execution, d)
                             for d in destinations.get(task.id, ())]
        if task.workflow_action == "rehydratation":
            task_destinations = [tape_spec.rehydration_destination(session, task)]
        specs.append({
            "id": execution.id, "task_id": task.id, "task_name": task.name,
            "action": task.workflow_action, "conflict_resolution": task.conflict_resolution,
            "options": {o.type: o.value for o in options.get(task.id, ())},
            "filters": [row.script for row in filters.get(task.id, ())],
            "sources": task_sources,
            "destinations": [d for d in task_destinations if d],
            # Items are only recorded from a claimed node's reports: a first attempt has
            # none.
            "finished_keys": (finished_keys(session, execution) if execution.attempts > 1
                              else []),
            "attempt": execution.attempts,
        })
    del storages  # held until here so that the locations found them in the session
    return specs
