"""The Nodeum Data Archiving API v2, served at /api/v2."""

from importlib import import_module

from fastapi import FastAPI

PREFIX = "/api/v2"

# One router module per resource family; each exposes `router`.
ROUTER_MODULES = (
    "users", "tasks", "task_parts", "task_schedules", "task_executions", "files",
    "containers", "nas", "cloud", "pools", "tapes", "logs",
)


def install_nodeum_routes(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        module = import_module(f"tiermover.api.nodeum.{name}")
        app.include_router(module.router, prefix=PREFIX)
