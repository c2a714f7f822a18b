"""E-mail when a run ends: a real SMTP server (aiosmtpd) receives what the server under
test sends through TIERMOVER_SMTP_HOST/PORT. Every test on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from conftest import BACKENDS, free_port, private_server
from engine_support import act, copy_task, create_container, make_tree, wait_task

SENDER = "tiermover@example.com"


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str, EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.mail_from, message))
        return "250 Message accepted for delivery"

    def about(self, task_name: str) -> list[tuple[list[str], str, EmailMessage]]:
        with self._lock:
            return [m for m in self.messages if task_name in m[2]["Subject"]]

    def wait_for(self, task_name: str, timeout: float = 15) -> list[tuple[list[str], str, EmailMessage]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.about(task_name)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no e-mail about {task_name} after {timeout}s")


@pytest.fixture(scope="module")
def inbox():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tmp_path_factory, inbox):
    """A private server (embedded node) that sends its e-mail to the test's SMTP server."""
    _, smtp_port = inbox
    with private_server(request.param, tmp_path_factory.mktemp(f"notifications-{request.param}"),
                        extra_env={"TIERMOVER_SMTP_HOST": "127.0.0.1",
                                   "TIERMOVER_SMTP_PORT": str(smtp_port),
                                   "TIERMOVER_SMTP_FROM": SENDER}) as server:
        yield server


@pytest.fixture(scope="module")
def api(engine):
    with engine.client() as client:
        yield client


@pytest.fixture
def tree(engine, api):
    """A source folder of three small files and a destination container."""
    source, source_root = create_container(api, engine)
    destination, _ = create_container(api, engine)
    make_tree(source_root / "tree", files=3, size=1_000, folders=1)
    return source, source_root, destination


def run_to_end(api, task: dict) -> str:
    act(api, task["id"], "run")
    return wait_task(api, task["id"], timeout=30)["status"]


def test_a_run_that_ends_done_mails_every_recipient(api, tree, inbox):
    handler, _ = inbox
    source, _, destination = tree
    task = copy_task(api, f"/{source}/tree", f"/{destination}/out",
                     email_recipients="ops@example.com, storage-team@example.com")
    assert run_to_end(api, task) == "done"

    [(recipients, sender, message)] = handler.wait_for(task["name"])
    assert sorted(recipients) == ["ops@example.com", "storage-team@example.com"]
    assert sender == SENDER and message["From"] == SENDER
    assert message["Subject"] == f"[tiermover] {task['name']}: done"
    body = message.get_content()
    assert "Status:   done" in body
    assert "Files:    5 of 5 processed" in body  # three files and two folders (tree, dir0)
    assert "Size:     3000 of 3000 bytes (2.9 KiB in all)" in body
    assert "No warnings or errors in the log." in body
    time.sleep(0.5)
    assert len(handler.about(task["name"])) == 1  # one e-mail per run, not more


def test_problems_only_mails_a_failed_run_and_not_a_done_one(api, tree, inbox):
    handler, _ = inbox
    source, source_root, destination = tree
    quiet = copy_task(api, f"/{source}/tree", f"/{destination}/quiet",
                      email_recipients="ops@example.com", email_problems_only=True)
    assert run_to_end(api, quiet) == "done"

    failing = copy_task(api, f"/{source}/tree", f"/{destination}/failing",
                        email_recipients="ops@example.com", email_problems_only=True)
    unwatched = copy_task(api, f"/{source}/tree", f"/{destination}/unwatched")
    shutil.rmtree(source_root / "tree")  # gone after the tasks were created: the runs fail
    assert run_to_end(api, unwatched) == "error"
    assert run_to_end(api, failing) == "error"

    [(recipients, _, message)] = handler.wait_for(failing["name"])
    assert recipients == ["ops@example.com"]
    assert message["Subject"] == f"[tiermover] {failing['name']}: error"
    body = message.get_content()
    assert "Status:   error" in body
    assert f"/{source}/tree does not exist" in body  # the reason, from the execution
    assert "Warnings and errors in the log:" in body and " error: " in body
    # The done run with problems_only and the task without recipients sent nothing; their
    # runs ended before the failing one, so their e-mail would have arrived first.
    assert handler.about(quiet["name"]) == []
    assert handler.about(unwatched["name"]) == []
