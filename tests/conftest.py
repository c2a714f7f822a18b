"""Shared fixtures: real databases (SQLite file, PostgreSQL when reachable) and real servers.

Every fixture that touches a database is parametrized over the reachable backends, so
each test that uses it runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PG_HOST = os.environ.get("TIERMOVER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TIERMOVER_TEST_PG_PORT", "5432"))
PG_DB = os.environ.get("TIERMOVER_TEST_PG_DB", "test")
PG_USER = os.environ.get("TIERMOVER_TEST_PG_USER", "postgres")
ADMIN_PASSWORD = "admin-secret-" + uuid.uuid4().hex[:8]


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=PG_USER,
                             connect_timeout=3):
            return True
    except Exception:
        return False


BACKENDS = ["sqlite"] + (["postgresql"] if postgres_reachable() else [])


@dataclass
class Database:
    backend: str
    url: str
    schema: str | None = None


def _new_database(backend: str, tmp: Path) -> Database:
    if backend == "sqlite":
        return Database("sqlite", f"sqlite:///{tmp / 'tiermover.db'}")
    import psycopg

    schema = "tm_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=PG_USER,
                         autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = (f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
           f"?options=-csearch_path%3D{schema}")
    return Database("postgresql", url, schema)


def _drop_database(db: Database) -> None:
    if db.schema:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=PG_USER,
                             autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')


@pytest.fixture(scope="session", params=BACKENDS)
def database(request, tmp_path_factory) -> Database:
    db = _new_database(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield db
    _drop_database(db)


@pytest.fixture
def fresh_database(request, tmp_path) -> Database:
    """A private, empty database for tests that must not see other tests' rows."""
    backend = getattr(request, "param", "sqlite")
    db = _new_database(backend, tmp_path)
    yield db
    _drop_database(db)


@pytest.fixture
def migrated_engine(fresh_database):
    """An engine on `fresh_database` with the migrations' schema, for tests of the
    service and database layers without a server."""
    from tiermover.db.migrate import upgrade_to_head
    from tiermover.db.session import make_engine

    engine = make_engine(fresh_database.url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    database: Database
    admin_user: str
    admin_password: str
    process: subprocess.Popen

    @property
    def api_url(self) -> str:
        return self.url + "/api/v2"

    def client(self, auth=None, headers=None) -> httpx.Client:
        if auth is None and headers is None:
            auth = (self.admin_user, self.admin_password)
        return httpx.Client(base_url=self.api_url, auth=auth, headers=headers, timeout=30)


def start_server(database: Database, data_dir: Path, extra_env: dict | None = None,
                 admin_user: str = "admin", admin_password: str = ADMIN_PASSWORD,
                 args: tuple[str, ...] = (), port: int | None = None) -> RunningServer:
    port = port or free_port()
    env = {**os.environ, "TIERMOVER_ADMIN_PASSWORD": admin_password, **(extra_env or {})}
    env = {k: v for k, v in env.items() if v is not None}  # None in extra_env unsets
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"server-{port}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tiermover", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir), "--database-url", database.url, "--log-level", "warning",
         *args],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return RunningServer(url, data_dir, database, admin_user, admin_password, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become healthy: see {log.name}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@contextmanager
def private_server(backend: str, tmp: Path, **options) -> Iterator[RunningServer]:
    """A server on a database of its own, for tests that must not share data or nodes."""
    database = _new_database(backend, tmp)
    running = start_server(database, tmp / "data", **options)
    try:
        yield running
    finally:
        stop_server(running)
        _drop_database(database)


@pytest.fixture(scope="session")
def server(database, tmp_path_factory) -> RunningServer:
    """A real `tiermover serve` process on each backend, shared by the session's tests."""
    data_dir = tmp_path_factory.mktemp(f"server-{database.backend}") / "data"
    running = start_server(database, data_dir)
    yield running
    stop_server(running)


@pytest.fixture
def api(server) -> httpx.Client:
    """An HTTP client authenticated as the administrator (Basic auth)."""
    with server.client() as client:
        yield client


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_user(api):
    """Create a non-admin user; returns (username, password, httpx client as that user)."""
    clients = []

    def make(is_admin: bool = False):
        username, password = unique("user"), "pw-" + uuid.uuid4().hex
        response = api.post("/users", json={"username": username, "password": password,
                                            "is_admin": is_admin})
        assert response.status_code == 201, response.text
        client = httpx.Client(base_url=str(api.base_url), auth=(username, password), timeout=30)
        clients.append(client)
        return username, password, client

    yield make
    for client in clients:
        client.close()


def sdk_client(server: RunningServer, username: str | None = None, password: str | None = None,
               api_key: str | None = None):
    """An official nodeum_sdk ApiClient pointed at the running server."""
    import nodeum_sdk

    configuration = nodeum_sdk.Configuration(host=server.api_url)
    if api_key:
        configuration.api_key["Authorization"] = api_key
    else:
        configuration.username = username or server.admin_user
        configuration.password = password or server.admin_password
    return nodeum_sdk.ApiClient(configuration)
