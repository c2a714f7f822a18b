"""E-mail when an execution ends, to the task's recipients, through the configured SMTP server."""

from __future__ import annotations

import logging
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.orm import Session

from tiermover.db.models import Task, TaskExecution
from tiermover.service.transactions import after_commit

log = logging.getLogger("tiermover.notifications")


@dataclass
class SmtpSettings:
    host: str | None = None
    port: int = 25
    sender: str = "tiermover@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False


smtp = SmtpSettings()


def configure(settings: SmtpSettings) -> None:
    global smtp
    smtp = settings


def recipients_of(task: Task) -> list[str]:
    return [r.strip() for r in (task.email_recipients or "").replace(";", ",").split(",")
            if r.strip()]


def compose(task: Task, execution: TaskExecution) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(recipients_of(task))
    message["Subject"] = f"[tiermover] {task.name}: {execution.status}"
    message.set_content(
        f"Task {task.name} (id {task.id}) finished execution {execution.id}.\n\n"
        f"Status: {execution.status}\n"
        + (f"Message: {execution.message}\n" if execution.message else "")
        + f"Started: {execution.job_started}\nFinished: {execution.job_finished}\n"
        f"Files: {execution.processed_files} of {execution.to_process_files}\n"
        f"Bytes: {execution.processed_size} of {execution.to_process_size}\n"
    )
    return message


def _send(message: EmailMessage) -> None:
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        log.warning("could not send the e-mail '%s' through %s:%s: %s",
                    message["Subject"], smtp.host, smtp.port, error)


def notify_completion(session: Session, execution: TaskExecution) -> None:
    task = session.get(Task, execution.task_id)
    if task is None or not recipients_of(task) or not smtp.host:
        return
    if task.email_problems_only and execution.status == "done":
        return
    message = compose(task, execution)
    # Sent once the outcome is committed, off the request thread.
    after_commit(session, lambda: threading.Thread(target=_send, args=(message,),
                                                   daemon=True).start())
