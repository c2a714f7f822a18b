"""The Nodeum Data Archiving API v2, served at /api/v2."""

from importlib import import_module

from fastapi import FastAPI

PREFIX = "/api/v2"

# One router module per resource family; each exposes `router`. A request is matched
# against the routes in this order, one by one: the most requested come first (tasks
# and their runs; users and storage administration are rarer).
ROUTER_MODULES = (
    "tasks", "task_executions", "logs", "task_parts", "task_schedules", "files", "users",
    "containers", "nas", "cloud", "pools", "tapes",
)


def install_nodeum_routes(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        module = import_module(f"tiermover.api.nodeum.{name}")
        app.include_router(module.router, prefix=PREFIX)
