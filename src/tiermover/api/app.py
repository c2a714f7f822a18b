"""The ASGI application: every API dialect mounted over one service layer."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from tiermover import __version__
from tiermover.api.nodeum import install_nodeum_routes
from tiermover.api.nodeum.errors import install_error_handlers
from tiermover.config import Settings
from tiermover.db.session import make_engine, make_session_factory


class AssumeJsonBodies:
    """Read request bodies as JSON whatever Content-Type the client sent.

    `curl -d '{...}'` sends form encoding by default; refusing such a body as "not JSON"
    would only confuse. A body that is not JSON still gets a 422.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            original = dict(scope["headers"]).get(b"content-type", b"")
            if not original.startswith(b"multipart/"):
                scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        await self.app(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="tiermover",
        version=__version__,
        description="Nodeum Data Archiving API v2 served by tiermover.",
        openapi_url="/api/v2/openapi.json",
        docs_url="/api/v2/docs",
        redoc_url=None,
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.logger = logging.getLogger("tiermover.api")

    install_error_handlers(app)

    health = APIRouter()

    @health.get("/healthz", include_in_schema=False)
    def healthz():
        return JSONResponse({"status": "ok", "version": __version__})

    app.include_router(health)
    install_nodeum_routes(app)
    app.add_middleware(AssumeJsonBodies)
    return app
