"""Control verbs change a running execution's task before the execution itself, in the
order a node's report does: two transactions locking the same two rows in opposite orders
deadlock on PostgreSQL (a pause sent while the node reports was answered 500)."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from conftest import BACKENDS, _drop_database, _new_database
from tiermover.db.base import Base, utcnow
from tiermover.db.models import Task, TaskExecution, User
from tiermover.db.session import make_engine
from tiermover.service import control


@pytest.fixture(params=BACKENDS)
def session(request, tmp_path):
    database = _new_database(request.param, tmp_path)
    engine = make_engine(database.url)
    Base.metadata.create_all(engine)
    request.addfinalizer(lambda: (engine.dispose(), _drop_database(database)))
    with Session(engine) as session:
        user = User(username="admin", password_hash="-", is_admin=True)
        session.add(user)
        session.flush()
        task = Task(user_id=user.id, name="copy", workflow_type="active_archive",
                    workflow_action="copy", activate=True, priority=5,
                    conflict_resolution="rename", version=1)
        session.add(task)
        session.flush()
        session.add(TaskExecution(
            id="1", task_id=task.id, name="copy", workflow_type="active_archive",
            workflow_action="copy", status="in_progress", priority=5, attempts=1,
            creation_date=utcnow(), log_time=utcnow()))
        session.commit()
        yield session


def _updated_tables(session: Session, work) -> list[str]:
    updated = []

    def record(_conn, _cursor, statement, *_args):
        if statement.startswith("UPDATE "):
            updated.append(statement.split()[1])

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
        session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return updated


@pytest.mark.parametrize("verb", ["pause", "stop"])
def test_a_verb_on_a_running_execution_updates_the_task_first(session, verb):
    task = session.get(Task, session.get(TaskExecution, "1").task_id)
    updated = _updated_tables(session, lambda: control.request(session, task, verb))
    assert "task_executions" in updated and "tasks" in updated, updated
    assert updated.index("tasks") < updated.index("task_executions"), updated
    assert session.get(TaskExecution, "1").control == verb


def test_a_report_updates_the_task_first_too(session):
    # The order the verbs must follow: what the unit of work does with both rows changed.
    execution = session.get(TaskExecution, "1")
    task = session.get(Task, execution.task_id)

    def report():
        execution.processed_files = 3
        task.processed_size = 10

    updated = _updated_tables(session, report)
    assert updated.index("tasks") < updated.index("task_executions"), updated
