"""E-mail when an execution ends, to the task's recipients, through the configured SMTP server."""

from __future__ import annotations

import logging
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tiermover.db.models import ExecutionLog, Task, TaskExecution
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


# How many warnings and errors of the log an e-mail quotes; the rest is in the log itself.
PROBLEMS_QUOTED = 10


@dataclass
class Problems:
    """The warnings and errors an execution logged: how many, and the first few."""

    count: int
    first: list[ExecutionLog]


def problems_of(session: Session, execution: TaskExecution) -> Problems:
    problem = (ExecutionLog.execution_id == execution.id,
               ExecutionLog.level.in_(("warning", "error")))
    count = session.scalar(select(func.count()).select_from(ExecutionLog).where(*problem)) or 0
    first = list(session.scalars(select(ExecutionLog).where(*problem)
                                 .order_by(ExecutionLog.idx).limit(PROBLEMS_QUOTED)))
    return Problems(count, first)


def _human_size(count: int) -> str:
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{count} bytes"


def _sizes(processed: int | None, total: int | None) -> str:
    processed, total = processed or 0, total or 0
    text = f"{processed} of {total} bytes"
    return text + (f" ({_human_size(total)} in all)" if total >= 1024 else "")


def _when(moment) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else "-"


def compose(task: Task, execution: TaskExecution, problems: Problems) -> EmailMessage:
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(recipients_of(task))
    message["Subject"] = f"[tiermover] {task.name}: {execution.status}"
    lines = [
        f"Task {task.name} (id {task.id}, {task.workflow_type} {task.workflow_action}) "
        f"finished execution {execution.id}.",
        "",
        f"Status:   {execution.status}",
    ]
    if execution.message:
        lines.append(f"Message:  {execution.message}")
    duration = (f" ({(execution.job_finished - execution.job_started).total_seconds():.0f} s)"
                if execution.job_started and execution.job_finished else "")
    lines += [
        f"Started:  {_when(execution.job_started)}",
        f"Finished: {_when(execution.job_finished)}{duration}",
        f"Files:    {execution.processed_files or 0} of {execution.to_process_files or 0} processed",
        f"Size:     {_sizes(execution.processed_size, execution.to_process_size)}",
        "",
    ]
    if problems.count:
        shown = len(problems.first)
        lines.append(f"Warnings and errors in the log: {problems.count}"
                     + (f" (the first {shown} below)" if shown < problems.count else ""))
        lines += [f"  {_when(entry.timestamp)} {entry.level}: {entry.msg}"
                  for entry in problems.first]
    else:
        lines.append("No warnings or errors in the log.")
    lines += ["", f"Full log: GET /api/v2/task_executions/{execution.id}/logs"]
    message.set_content("\n".join(lines) + "\n")
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
    message = compose(task, execution, problems_of(session, execution))
    # Sent once the outcome is committed, off the request thread.
    after_commit(session, lambda: threading.Thread(target=_send, args=(message,),
                                                   daemon=True).start())
