"""What a node receives: the storages it may serve, and the spec of an execution.

A storage reaches the node as a backend descriptor (`tiermover.storage.open`): for local
and NAS paths `{"kind": "local", "root": ...}`. The node opens its own backend from it, so
the server never needs to reach the data itself.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import (
    Container, NasShare, Task, TaskCallback, TaskDestination, TaskExecution, TaskOption,
    TaskSource,
)
from tiermover.service.execution_state import finished_keys


def local_backend(root: str) -> dict:
    return {"kind": "local", "root": root}


def known_storages(session: Session) -> list[dict]:
    """Every storage a task may use, with the backend a node must reach to serve it."""
    storages = [{"key": f"container:{c.id}", "kind": "container", "name": c.name,
                 "root": c.root_path, "backend": local_backend(c.root_path)}
                for c in session.scalars(select(Container))]
    storages += [{"key": f"nas_share:{s.id}", "kind": "nas_share", "name": s.name,
                  "root": s.path, "backend": local_backend(s.path)}
                 for s in session.scalars(select(NasShare))]
    return storages


def _location(session: Session, part, path_attr: str) -> dict | None:
    path = getattr(part, path_attr)
    if part.container_id:
        storage, kind = session.get(Container, part.container_id), "container"
        root = storage.root_path if storage else None
    elif part.nas_share_id:
        storage, kind = session.get(NasShare, part.nas_share_id), "nas_share"
        root = storage.path if storage else None
    else:
        return None
    if storage is None or path is None:
        return None
    inside = path.strip("/").split("/", 1)[1] if "/" in path.strip("/") else ""
    return {"namespace_path": path, "storage_key": f"{kind}:{storage.id}",
            "storage_name": storage.name, "backend": local_backend(root), "path": inside}


def execution_spec(session: Session, execution: TaskExecution) -> dict:
    """Everything a node needs to run (or resume) an execution."""
    task = session.get(Task, execution.task_id)
    sources = [_location(session, s, "file_path") for s in
               session.scalars(select(TaskSource).where(TaskSource.task_id == task.id)
                               .order_by(TaskSource.id))]
    destinations = [_location(session, d, "folder_path") for d in
                    session.scalars(select(TaskDestination).where(TaskDestination.task_id == task.id)
                                    .order_by(TaskDestination.id))]
    options = {o.type: o.value for o in
               session.scalars(select(TaskOption).where(TaskOption.task_id == task.id))}
    return {
        "id": execution.id, "task_id": task.id, "task_name": task.name,
        "action": task.workflow_action, "conflict_resolution": task.conflict_resolution,
        "options": options,
        "filters": list(session.scalars(
            select(TaskCallback.script).where(TaskCallback.task_id == task.id,
                                              TaskCallback.type == "filter")
            .order_by(TaskCallback.id))),
        "sources": [s for s in sources if s], "destinations": [d for d in destinations if d],
        # Items are only recorded from a claimed node's reports: a first attempt has none.
        "finished_keys": finished_keys(session, execution) if execution.attempts > 1 else [],
        "attempt": execution.attempts,
    }
