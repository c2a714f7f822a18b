"""From the execution spec the server sends to the plan a workflow runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tiermover.storage.base import Backend, StorageError
from tiermover.storage.open import open_backend
from tiermover.workflows.base import ExecutionPlan, StorageLocation

MAX_CHUNK = 1024 * 1024


def build_plan(spec: dict, fsync: bool = True, bandwidth_limit: int | None = None,
               catalog: Callable[[str], Iterator[dict]] | None = None,
               storages: Callable[[], list[dict]] | None = None) -> ExecutionPlan:
    """`storages` lists every storage the server knows (GET /nodes/-/storages); it is
    only called when a workflow opens a path outside the task's own storages."""
    backends: dict[str, object] = {}
    by_name: dict[str, dict] = {}

    def open_path(namespace_path: str) -> tuple[Backend, str]:
        name, _, inside = namespace_path.strip("/").partition("/")
        if name not in by_name and storages is not None:
            by_name.update({s["name"]: s for s in storages()})
        known = by_name.get(name)
        if known is None or not known.get("backend"):
            raise StorageError(f"{namespace_path}: no storage called {name!r} on this node")
        if known["key"] not in backends:
            backends[known["key"]] = open_backend(known["backend"], fsync=fsync)
        return backends[known["key"]], inside

    def location(entry: dict) -> StorageLocation:
        # One backend per storage, shared by the sources and destinations on it.
        key = entry.get("storage_key") or entry["storage_name"]
        if key not in backends:
            backends[key] = open_backend(entry["backend"], fsync=fsync)
        return StorageLocation(namespace_path=entry["namespace_path"],
                               storage_name=entry["storage_name"], backend=backends[key],
                               path=entry["path"], storage_key=key,
                               tapes=entry.get("tapes"))

    return ExecutionPlan(
        action=spec["action"],
        sources=[location(s) for s in spec["sources"]],
        destinations=[location(d) for d in spec["destinations"]],
        options=spec.get("options") or {},
        conflict_resolution=spec.get("conflict_resolution") or "rename",
        # Smaller chunks under a bandwidth limit keep the throttling smooth.
        chunk_size=(min(MAX_CHUNK, max(16 * 1024, bandwidth_limit // 8))
                    if bandwidth_limit else MAX_CHUNK),
        resumed=(spec.get("attempt") or 1) > 1,
        execution_id=spec.get("id"),
        task_id=spec.get("task_id"),
        catalog=catalog,
        filters=list(spec.get("filters") or ()),
        open_path=open_path,
    )
