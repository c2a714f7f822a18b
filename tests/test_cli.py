"""The shell commands for users and API keys work on the same database as the server."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from conftest import BACKENDS, start_server, stop_server, unique


def tiermover(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tiermover", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_users_and_keys_made_in_the_shell_work_over_http(fresh_database, tmp_path):
    data_dir = tmp_path / "data"
    where = ["--data-dir", str(data_dir), "--database-url", fresh_database.url]
    username = unique("ops")
    made = tiermover("users", "create", username, *where)
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    again = tiermover("users", "create", username, "--password", "x", *where)
    assert again.returncode == 2 and "already been taken" in again.stderr

    key_run = tiermover("api-keys", "create", "--user", username, "--scope", "tasks/index", *where)
    assert key_run.returncode == 0, key_run.stderr
    key = key_run.stdout.strip()
    bad_scope = tiermover("api-keys", "create", "--user", username, "--scope", "tasks", *where)
    assert bad_scope.returncode == 2 and "controller/action" in bad_scope.stderr

    server = start_server(fresh_database, data_dir)
    try:
        with httpx.Client(base_url=server.api_url, auth=(username, password)) as as_user:
            assert as_user.get("/users/me").json()["username"] == username
        with httpx.Client(base_url=server.api_url, headers={"Authorization": key}) as with_key:
            assert with_key.get("/tasks").status_code == 200
            assert with_key.get("/users/me/api_keys").status_code == 403
    finally:
        stop_server(server)
