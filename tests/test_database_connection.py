"""A database that drops the server's connections (restart, fail-over) costs requests a
503 with the API's error body, never a 500, and the server carries on by itself."""

from __future__ import annotations

import time
import uuid

import pytest

from conftest import (
    BACKENDS, PG_DB, PG_HOST, PG_PORT, PG_USER, _drop_database, _new_database, start_server,
    stop_server,
)

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS,
                                reason="needs PostgreSQL, to cut the server's connections")


def _terminate_connections(application_name: str) -> int:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=PG_USER,
                         autocommit=True) as conn:
        return len(conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,)).fetchall())


def test_connections_cut_by_the_database_answer_503_then_the_server_recovers(tmp_path):
    database = _new_database("postgresql", tmp_path)
    application_name = "tm_test_" + uuid.uuid4().hex[:8]
    database.url += f"&application_name={application_name}"
    server = start_server(database, tmp_path / "data", args=("--no-worker",))
    try:
        api = server.client()
        # Several requests at once fill the pool with connections that are then cut.
        for _ in range(3):
            assert api.get("/tasks").status_code == 200
        assert _terminate_connections(application_name) >= 1

        answers = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            response = api.get("/tasks")
            answers.append(response)
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text
            body = response.json()
            assert "retry" in body["messages"][0].lower()
            assert body["details"]["base"][0]["error"] == "unavailable"
            assert response.headers["retry-after"] == "1"
        assert answers[-1].status_code == 200, [a.text for a in answers]
        # Writes work again too.
        created = api.post("/tasks", json={"name": "after-the-cut", "workflow_type":
                                           "active_archive", "workflow_action": "copy"})
        assert created.status_code == 201, created.text
    finally:
        stop_server(server)
        _drop_database(database)
