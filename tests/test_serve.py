"""`tiermover serve`: first start, the administrator, health, and the published API docs."""

from __future__ import annotations

import stat

import httpx
import pytest

from conftest import BACKENDS, start_server, stop_server


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_first_start_generates_the_admin_password_once(fresh_database, tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(fresh_database, data_dir,
                          extra_env={"TIERMOVER_ADMIN_PASSWORD": None,
                                     "TIERMOVER_ADMIN_USER": "root-admin"})
    try:
        secret_file = data_dir / "admin-password"
        password = secret_file.read_text().strip()
        assert len(password) >= 16
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        log = (data_dir.parent / f"server-{server.url.rsplit(':', 1)[1]}.log").read_text()
        assert password in log  # printed once for the operator
        with httpx.Client(base_url=server.api_url, auth=("root-admin", password)) as admin:
            assert admin.get("/users/me").json()["is_admin"] is True
    finally:
        stop_server(server)

    # A restart keeps the same administrator and does not make up a new password.
    restarted = start_server(fresh_database, data_dir, extra_env={"TIERMOVER_ADMIN_PASSWORD": None})
    try:
        assert secret_file.read_text().strip() == password
        with httpx.Client(base_url=restarted.api_url, auth=("root-admin", password)) as admin:
            assert admin.get("/users").json()["count"] == 1
    finally:
        stop_server(restarted)


def test_health_openapi_and_docs(server):
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    spec = httpx.get(server.api_url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v2/tasks", "/api/v2/tasks/{task_id}", "/api/v2/users/me/api_keys"):
        assert path in spec["paths"], path
    docs = httpx.get(server.api_url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
