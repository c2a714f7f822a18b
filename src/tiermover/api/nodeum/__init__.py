"""The Nodeum Data Archiving API v2, served at /api/v2."""

from fastapi import FastAPI

PREFIX = "/api/v2"


def install_nodeum_routes(app: FastAPI) -> None:
    from tiermover.api.nodeum import tasks, users

    for module in (users, tasks):
        app.include_router(module.router, prefix=PREFIX)
