"""Fixtures for end-to-end tests of workflows: a server per backend, real node processes,
containers. Import them into a test module: `from engine_fixtures import *`."""

from __future__ import annotations

import pytest

from conftest import BACKENDS, private_server, unique
from engine_support import NodeProcess, create_container, node_key

__all__ = ["engine", "api", "nodes", "storage", "action_task"]


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tmp_path_factory):
    """A server without an embedded node (the tests start their own), short leases."""
    with private_server(request.param, tmp_path_factory.mktemp(f"engine-{request.param}"),
                        args=("--no-worker",),
                        extra_env={"TIERMOVER_LEASE_SECONDS": "3"}) as server:
        yield server


@pytest.fixture
def api(engine):
    with engine.client() as client:
        yield client


@pytest.fixture
def nodes(engine, api):
    started: list[NodeProcess] = []

    def start(*extra: str, name: str | None = None, wrapper: tuple[str, ...] = ()) -> NodeProcess:
        node = NodeProcess(engine, node_key(api), name or unique("node"), *extra, wrapper=wrapper)
        started.append(node)
        node.wait_registered(api)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def storage(engine, api):
    """A source container and an empty destination container: (name, root) twice."""
    source, source_root = create_container(api, engine)
    destination, destination_root = create_container(api, engine)
    return source, source_root, destination, destination_root


def action_task(api, action: str, sources=(), destinations=(), options=None, filters=(),
                workflow_type: str = "active_archive", **fields) -> dict:
    """A task with its sources, destinations, options and filter callbacks."""
    response = api.post("/tasks", json={"name": unique(action), "workflow_type": workflow_type,
                                        "workflow_action": action, **fields})
    assert response.status_code == 201, response.text
    task = response.json()
    parts = ([("task_sources", {"file_path": path}) for path in sources]
             + [("task_destinations", {"folder_path": path}) for path in destinations]
             + [("task_options", {"type": key, "value": str(value)})
                for key, value in (options or {}).items()]
             + [("task_callbacks", {"type": "filter", "script": script}) for script in filters])
    for collection, body in parts:
        response = api.post(f"/tasks/{task['id']}/{collection}", json=body)
        assert response.status_code == 201, response.text
    return task
