"""Schedules fire executions: on time, skipped while the task is still running, missed
while the service is down and then caught up with one run; counters reset on success.
A real server and real nodes in their own processes; every test on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import BACKENDS, private_server, start_server
from engine_support import (
    NodeProcess, copy_task, create_container, logs, make_tree, node_key, wait_task,
)
from tiermover.db.migrate import upgrade_to_head
from tiermover.db.models import Task, TaskExecution, TaskSchedule, User
from tiermover.db.session import make_engine
from tiermover.service.schedules import parse_recurrence
from tiermover.service.scheduler import (
    COUNTING_BUDGET_SECONDS, MISSED_GRACE, fire_due_schedules, passed_occurrences,
)

# The worker node of these tests copies at 200 KB/s: small trees finish at once, a
# 700 KB file keeps its execution running for about 3.5 s.
BANDWIDTH_LIMIT = "200K"


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tmp_path_factory):
    """A private server without an embedded node; the module's node runs in its own process."""
    with private_server(request.param, tmp_path_factory.mktemp(f"schedules-{request.param}"),
                        args=("--no-worker",)) as server:
        yield server


@pytest.fixture(scope="module")
def api(engine):
    with engine.client() as client:
        yield client


@pytest.fixture(scope="module")
def node(engine, api):
    worker = NodeProcess(engine, node_key(api), "scheduled-node", "--bwlimit", BANDWIDTH_LIMIT)
    worker.wait_registered(api)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def stored(engine):
    """The schedules table as the scheduler sees it (its `next` cursor, not the API view)."""
    database = make_engine(engine.database.url)

    def read(task_id: int) -> TaskSchedule:
        with Session(database) as session:
            return session.scalar(select(TaskSchedule).where(TaskSchedule.task_id == task_id))

    yield read
    database.dispose()


def first_occurrence(seconds_ahead: float) -> datetime:
    """A whole second at least `seconds_ahead` from now (DTSTART has no fractions)."""
    return datetime.fromtimestamp(math.ceil(time.time() + seconds_ahead), timezone.utc)


def rule(start: datetime, every_seconds: int, count: int) -> str:
    return (f"DTSTART:{start:%Y%m%dT%H%M%SZ}\n"
            f"RRULE:FREQ=SECONDLY;INTERVAL={every_seconds};COUNT={count}")


def parse(stamp: str | None) -> datetime | None:
    return None if stamp is None else datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def schedule_task(api, task_id: int, rrule: str) -> dict:
    response = api.post(f"/tasks/{task_id}/task_schedule", json={"rrule": rrule})
    assert response.status_code == 201, response.text
    return response.json()


def executions(api, task_id: int) -> list[dict]:
    page = api.get(f"/tasks/{task_id}/task_executions", params={"sort_by": "creation_date:asc"})
    assert page.status_code == 200, page.text
    return page.json()["task_executions"]


def wait_executions(api, task_id: int, count: int, statuses: set[str], timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = executions(api, task_id)
        if len(found) >= count and all(e["status"] in statuses for e in found[:count]):
            return found
        time.sleep(0.05)
    raise AssertionError(f"task {task_id}: {executions(api, task_id)} after {timeout}s")


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()))


@pytest.fixture
def small_copy(engine, api):
    """A copy task over a tree of a few small files, and a factory for more of them."""
    source, source_root = create_container(api, engine)
    destination, _ = create_container(api, engine)
    make_tree(source_root / "tree", files=3, size=2_000, folders=1)

    def make(**fields) -> dict:
        return copy_task(api, f"/{source}/tree", f"/{destination}/out", **fields)

    return make


def test_schedule_fires_within_a_second_and_next_advances(api, node, small_copy, stored):
    task = small_copy(conflict_resolution="overwrite")
    inactive = small_copy(activate=False)
    first = first_occurrence(1.5)
    second = first + timedelta(seconds=2)
    schedule_task(api, task["id"], rule(first, 2, count=2))
    schedule_task(api, inactive["id"], rule(first, 2, count=1))
    assert stored(task["id"]).next == first

    runs = wait_executions(api, task["id"], 1, {"done"})
    assert len(runs) == 1
    started = parse(runs[0]["job_started"])
    assert first <= started < first + timedelta(seconds=1), (first, started)
    # The scheduler's cursor moved on to the next occurrence; the rule is not done yet.
    assert stored(task["id"]).next == second and stored(task["id"]).done is False
    assert api.get(f"/tasks/{task['id']}/task_schedule").json()["next"] is not None

    runs = wait_executions(api, task["id"], 2, {"done"})
    started = parse(runs[1]["job_started"])
    assert second <= started < second + timedelta(seconds=1), (second, started)
    assert "queued (schedule)" in " ".join(entry["msg"] for entry in logs(api, runs[1]["id"]))
    schedule = api.get(f"/tasks/{task['id']}/task_schedule").json()
    assert schedule["done"] is True and schedule["next"] is None
    assert schedule["skipped_count"] == 0 and schedule["missed_count"] == 0
    assert stored(task["id"]).next is None
    assert len(executions(api, task["id"])) == 2

    # A task that is not activated does not run: its occurrence counts as skipped.
    assert executions(api, inactive["id"]) == []
    schedule = api.get(f"/tasks/{inactive['id']}/task_schedule").json()
    assert schedule["skipped_count"] == 1 and schedule["done"] is True


def test_occurrence_during_a_running_execution_is_skipped_until_a_success(
        engine, api, node, stored):
    source, source_root = create_container(api, engine)
    destination, _ = create_container(api, engine)
    (source_root / "big").mkdir()
    (source_root / "big" / "slow.bin").write_bytes(b"x" * 700_000)  # ~3.5 s at 200 KB/s
    task = copy_task(api, f"/{source}/big", f"/{destination}/out")
    first = first_occurrence(1.5)
    second = first + timedelta(seconds=2)
    schedule_task(api, task["id"], rule(first, 2, count=2))

    running = wait_executions(api, task["id"], 1, {"in_progress"})[0]
    sleep_until(second + timedelta(seconds=0.7))
    assert api.get(f"/tasks/{task['id']}").json()["status"] == "in_progress"
    schedule = api.get(f"/tasks/{task['id']}/task_schedule").json()
    assert schedule["skipped_count"] == 1, schedule
    assert schedule["done"] is True  # the skipped occurrence was the last one
    assert len(executions(api, task["id"])) == 1
    messages = [entry["msg"] for entry in logs(api, running["id"])]
    assert any(f"scheduled run at {second:%Y-%m-%dT%H:%M:%SZ} skipped: still running" in m
               for m in messages), messages

    # The run ends `done`: the skipped count starts again from zero.
    assert wait_task(api, task["id"], timeout=30)["status"] == "done"
    schedule = api.get(f"/tasks/{task['id']}/task_schedule").json()
    assert schedule["skipped_count"] == 0 and schedule["missed_count"] == 0
    assert stored(task["id"]).skipped_count == 0


def restart(server, down_before: datetime, up_after: datetime) -> None:
    """Kill the server before `down_before` (a crash: no graceful shutdown waiting for the
    node's long-poll), keep it down until `up_after`, start it again on the same port,
    database and data directory (the module's node reconnects)."""
    server.process.kill()
    server.process.wait(10)
    assert datetime.now(timezone.utc) < down_before, "the server stopped too late"
    sleep_until(up_after)
    port = int(server.url.rsplit(":", 1)[1])
    restarted = start_server(server.database, server.data_dir, args=("--no-worker",), port=port)
    server.process = restarted.process  # the module fixture stops this one at the end


def test_downtime_counts_missed_occurrences_and_catches_up_once(engine, api, node, stored):
    source, source_root = create_container(api, engine)
    destination, _ = create_container(api, engine)
    (source_root / "big").mkdir()
    # A slow catch-up run (about 3.5 s), so the counters can be read before its success
    # resets them.
    (source_root / "big" / "slow.bin").write_bytes(b"y" * 700_000)
    task = copy_task(api, f"/{source}/big", f"/{destination}/out")
    first = first_occurrence(2)
    occurrences = [first, first + timedelta(seconds=1)]
    schedule_task(api, task["id"], rule(first, 1, count=2))

    # Down through both occurrences, and long enough for them to count as missed.
    restart(engine, down_before=first,
            up_after=occurrences[-1] + MISSED_GRACE + timedelta(seconds=0.2))
    schedule = api.get(f"/tasks/{task['id']}/task_schedule").json()
    assert schedule["missed_count"] == 2, schedule
    assert parse(schedule["missed_first"]) == occurrences[0]
    assert parse(schedule["missed_last"]) == occurrences[-1]
    assert schedule["done"] is True and schedule["skipped_count"] == 0
    assert stored(task["id"]).next is None

    # One catch-up run, not one per missed occurrence; it starts as soon as the node can.
    runs = wait_executions(api, task["id"], 1, {"in_progress", "done"})
    assert len(runs) == 1, runs
    messages = " ".join(entry["msg"] for entry in logs(api, runs[0]["id"]))
    assert "catch-up for 2 scheduled runs missed" in messages, messages

    assert wait_task(api, task["id"], timeout=30)["status"] == "done"
    schedule = api.get(f"/tasks/{task['id']}/task_schedule").json()
    assert schedule["missed_count"] == 0 and schedule["skipped_count"] == 0
    assert schedule["missed_first"] is None and schedule["missed_last"] is None
    assert len(executions(api, task["id"])) == 1


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL row locks")
@pytest.mark.parametrize("fresh_database", ["postgresql"], indirect=True)
def test_two_server_processes_never_fire_one_occurrence_twice(fresh_database):
    """Two scheduler passes at the same moment, as two server processes on one PostgreSQL
    database would run them: the second skips the schedule the first holds, and once the
    first commits the occurrence is no longer due."""
    database = make_engine(fresh_database.url)
    try:
        upgrade_to_head(database)
        now = datetime.now(timezone.utc)
        due = (now - timedelta(seconds=1)).replace(microsecond=0)  # DTSTART has no fractions
        with Session(database) as session, session.begin():
            owner = User(username="owner", password_hash="-")
            session.add(owner)
            session.flush()
            task = Task(user_id=owner.id, name="nightly", workflow_type="active_archive",
                        workflow_action="copy", activate=True, priority=5)
            session.add(task)
            session.flush()
            session.add(TaskSchedule(task_id=task.id, rrule=rule(due, 60, count=5), next=due,
                                     done=False, missed_count=0, skipped_count=0))
            task_id = task.id
        with Session(database) as first, Session(database) as second:
            with first.begin():
                assert fire_due_schedules(first, now) == 1
                with second.begin():
                    assert fire_due_schedules(second, now) == 0  # locked: skipped, not fired
            with second.begin():
                assert fire_due_schedules(second, now) == 0  # committed: next is a minute on
        with Session(database) as session:
            fired = session.scalars(select(TaskExecution).where(TaskExecution.task_id == task_id))
            assert [e.window_start for e in fired] == [due]
            schedule = session.scalar(select(TaskSchedule).where(TaskSchedule.task_id == task_id))
            assert schedule.next == due + timedelta(seconds=60) and schedule.skipped_count == 0
    finally:
        database.dispose()


def test_counting_a_long_downtime_stops_at_its_budget_but_keeps_the_last_and_on_time():
    """A SECONDLY rule down for a week has 600 000 occurrences: too many to walk one by
    one. The count is a lower bound, the last missed and the on-time ones are exact."""
    now = datetime(2030, 1, 8, 12, 0, 0, 500_000, tzinfo=timezone.utc)
    week_ago = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    recurrence = parse_recurrence(f"DTSTART:{week_ago:%Y%m%dT%H%M%SZ}\nRRULE:FREQ=SECONDLY", now)
    started = time.monotonic()
    passed = passed_occurrences(recurrence, week_ago, now, now - MISSED_GRACE)
    assert time.monotonic() - started < COUNTING_BUDGET_SECONDS + 1
    assert passed.missed_count_partial and 0 < passed.missed_count < 7 * 86_400
    assert passed.missed_first == week_ago
    assert passed.missed_last == datetime(2030, 1, 8, 11, 59, 57, tzinfo=timezone.utc)
    assert passed.on_time == [datetime(2030, 1, 8, 11, 59, 58, tzinfo=timezone.utc),
                              datetime(2030, 1, 8, 11, 59, 59, tzinfo=timezone.utc),
                              datetime(2030, 1, 8, 12, 0, 0, tzinfo=timezone.utc)]

    # A short downtime is counted exactly.
    short = passed_occurrences(recurrence, now - timedelta(seconds=10.5), now, now - MISSED_GRACE)
    assert not short.missed_count_partial
    assert (short.missed_count, short.missed_first, short.missed_last) == (
        8, datetime(2030, 1, 8, 11, 59, 50, tzinfo=timezone.utc),
        datetime(2030, 1, 8, 11, 59, 57, tzinfo=timezone.utc))
    assert len(short.on_time) == 3
