"""The ASGI application: every API dialect mounted over one service layer."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tiermover import __version__
from tiermover.api.nodeum import install_nodeum_routes
from tiermover.api.nodeum.errors import install_error_handlers
from tiermover.config import Settings
from tiermover.db.session import make_engine, make_session_factory
from tiermover.service import notifications, queue, scheduler
from tiermover.service.maintenance import Maintenance


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


MAINTENANCE_INTERVAL_SECONDS = 1.0


def _server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _start_embedded_node(app: FastAPI):
    from tiermover.node.worker import NodeWorker
    from tiermover.service.nodes import provision_embedded_key

    settings: Settings = app.state.settings
    with app.state.session_factory.begin() as session:
        key = provision_embedded_key(session)
    if key is None:
        return None
    worker = NodeWorker(_server_url(settings), key, name=f"embedded-{settings.port}",
                        concurrency=settings.embedded_workers, fsync=settings.fsync)
    threading.Thread(target=worker.run, name="embedded-node", daemon=True).start()
    return worker


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    queue.signal.attach(asyncio.get_running_loop())
    notifications.configure(notifications.SmtpSettings(
        host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_sender,
        username=settings.smtp_username, password=settings.smtp_password,
        starttls=settings.smtp_starttls))
    listener = None
    engine = app.state.engine
    if engine.dialect.name == "postgresql":
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = queue.PostgresListener(dsn, queue.signal)
        listener.start()
    maintenance = Maintenance(app.state.session_factory, settings.lease)
    await run_in_threadpool(maintenance.start)

    async def maintain():
        while True:
            # Wake up early for an occurrence due before the next pass: schedules fire
            # within a second of their time.
            await asyncio.sleep(scheduler.seconds_until_next_pass(
                maintenance.next_occurrence, MAINTENANCE_INTERVAL_SECONDS))
            try:
                await run_in_threadpool(maintenance.run_once)
            except Exception:
                app.state.logger.exception("maintenance pass failed")

    maintainer = asyncio.create_task(maintain())
    worker = None
    if app.state.start_embedded_node and settings.embedded_workers > 0:
        worker = await run_in_threadpool(_start_embedded_node, app)
    try:
        yield
    finally:
        maintainer.cancel()
        if worker is not None:
            worker.stop()
        if listener is not None:
            listener.stopping.set()


def create_app(settings: Settings, embedded_node: bool = True) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="tiermover",
        version=__version__,
        description="Nodeum Data Archiving API v2 served by tiermover.",
        openapi_url="/api/v2/openapi.json",
        docs_url="/api/v2/docs",
        redoc_url=None,
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.start_embedded_node = embedded_node
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.logger = logging.getLogger("tiermover.api")

    install_error_handlers(app)

    health = APIRouter()

    @health.get("/healthz", include_in_schema=False)
    def healthz():
        return JSONResponse({"status": "ok", "version": __version__})

    from tiermover.api import node_references, nodes

    # Routes are matched in the order they are included: nodes' requests (claims, reports,
    # heartbeats) are the most frequent of all, so their routes come first.
    app.include_router(nodes.router, prefix="/api/v2")
    app.include_router(node_references.router, prefix="/api/v2")
    app.include_router(health)
    install_nodeum_routes(app)
    app.add_middleware(AssumeJsonBodies)
    return app
