"""Task schedules: /tasks/{id}/task_schedule (one per task) and /task_schedules, over HTTP
and through the official client; plus the recurrence arithmetic itself."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import nodeum_sdk
import pytest
from dateutil.rrule import rrulestr
from nodeum_sdk.rest import ApiException
from sqlalchemy import select
from sqlalchemy.orm import Session

from conftest import sdk_client, unique
from tiermover.db.models import TaskSchedule
from tiermover.db.session import make_engine
from tiermover.service import schedules
from tiermover.service.errors import ValidationFailed

PARIS_WEEKLY = "DTSTART;TZID=Europe/Paris:20190705T085000\nRRULE:FREQ=WEEKLY"


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database.url)
    yield engine
    engine.dispose()


def new_task(client) -> dict:
    response = client.post("/tasks", json={"name": unique("sched"), "workflow_type": "maintenance",
                                           "workflow_action": "scan"})
    assert response.status_code == 201, response.text
    return response.json()


def parse(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def details(response, status=422) -> dict:
    assert response.status_code == status, response.text
    return response.json()["details"]


def test_one_schedule_per_task_lifecycle(api):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_schedule"
    for method in ("GET", "PUT", "DELETE"):
        missing = api.request(method, url, json={"rrule": "FREQ=DAILY"})
        assert details(missing, 404)["task_id"][0]["error"] == "not_found", method

    before = datetime.now(timezone.utc)
    response = api.post(url, json={"rrule": PARIS_WEEKLY, "task_id": 999, "next": "x",
                                   "missed_count": 7, "done": True})
    assert response.status_code == 201, response.text
    schedule = response.json()
    assert set(schedule) == {"id", "task_id", "rrule", "done", "next", "missed_count",
                             "skipped_count", "missed_last", "missed_first"}
    assert schedule["task_id"] == task["id"] and schedule["rrule"] == PARIS_WEEKLY
    assert schedule["done"] is False and schedule["missed_count"] == 0
    assert schedule["skipped_count"] == 0 and schedule["missed_first"] is None
    upcoming = parse(schedule["next"])
    assert before < upcoming <= before + timedelta(days=7)
    local = upcoming.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.strftime("%A"), local.hour, local.minute) == ("Friday", 8, 50)

    second = api.post(url, json={"rrule": "FREQ=DAILY"})
    assert details(second)["task_id"][0]["error"] == "taken"
    assert api.get(url).json() == schedule
    assert api.get(f"/tasks/{task['name']}/task_schedule").json()["id"] == schedule["id"]

    ended = api.put(url, json={"rrule": "DTSTART:20190101T000000Z\nRRULE:FREQ=DAILY;COUNT=3"})
    assert ended.status_code == 200, ended.text
    assert ended.json()["done"] is True and ended.json()["next"] is None
    assert api.put(url, json={}).json()["rrule"].endswith("COUNT=3")  # nothing to change
    assert details(api.put(url, json={"rrule": "FREQ=NEVER"}))["rrule"][0]["error"] == "invalid"

    deleted = api.delete(url)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(url).status_code == 404
    assert api.post(url, json={"rrule": "FREQ=DAILY"}).status_code == 201  # may be made again


def test_the_accepted_forms_of_a_rule(api):
    def create(rrule: str) -> dict:
        response = api.post(f"/tasks/{new_task(api)['id']}/task_schedule", json={"rrule": rrule})
        assert response.status_code == 201, response.text
        return response.json()

    before = datetime.now(timezone.utc).replace(microsecond=0)
    no_start = create("RRULE:FREQ=DAILY")
    # The moment it was saved becomes its DTSTART, so the rule keeps its meaning later.
    first_line, second_line = no_start["rrule"].split("\n")
    start = datetime.strptime(first_line, "DTSTART:%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert before <= start <= before + timedelta(seconds=5) and second_line == "RRULE:FREQ=DAILY"
    assert parse(no_start["next"]) == start + timedelta(days=1)

    bare = create("FREQ=HOURLY;INTERVAL=2")
    assert bare["rrule"].split("\n")[1] == "RRULE:FREQ=HOURLY;INTERVAL=2"
    utc = create("DTSTART:20190705T085000Z\r\nRRULE:FREQ=DAILY")
    assert parse(utc["next"]).strftime("%H:%M:%S") == "08:50:00"
    floating = create("DTSTART:20190705T085000\nRRULE:FREQ=DAILY")  # no zone: UTC
    assert floating["next"] == utc["next"]
    escaped = create("DTSTART:20190705T085000Z\\nRRULE:FREQ=DAILY")  # a doubly escaped newline
    assert escaped["next"] == utc["next"] and "\n" in escaped["rrule"]
    finished = create("DTSTART:20190705T085000Z\nRRULE:FREQ=DAILY;UNTIL=20200101T000000Z")
    assert finished["done"] is True and finished["next"] is None


@pytest.mark.parametrize("rrule, kind, hint", [
    ("", "blank", "can't be blank"),
    (None, "blank", "can't be blank"),
    ("garbage", "invalid", "'garbage' lines are not supported"),
    ("RRULE:FREQ=FOO", "invalid", "invalid 'FREQ': FOO"),
    ("RRULE:FREQ=DAILY;BYHOUR=25", "invalid", "hour must be in 0..23"),
    ("RRULE:FREQ=DAILY;BYDAY=XX", "invalid", "BYDAY"),
    ("RRULE:INTERVAL=2", "invalid", "has no FREQ"),
    ("RRULE:FREQ=DAILY;INTERVAL=0", "invalid", "INTERVAL must be a positive integer"),
    ("RRULE:FREQ=DAILY;COUNT=2;UNTIL=20300101", "invalid", "COUNT or UNTIL, not both"),
    ("DTSTART:2019\nRRULE:FREQ=DAILY", "invalid", "must be written YYYYMMDDTHHMMSS"),
    ("DTSTART:20190231T000000Z\nRRULE:FREQ=DAILY", "invalid", "not a real date"),
    ("DTSTART;TZID=Mars/Olympus:20190705T085000\nRRULE:FREQ=WEEKLY", "invalid",
     "unknown time zone 'Mars/Olympus'"),
    ("DTSTART;TZID=/etc/passwd:20190705T085000\nRRULE:FREQ=WEEKLY", "invalid",
     "unknown time zone"),
    ("DTSTART;TZID=Europe/Paris:20190705T085000Z\nRRULE:FREQ=WEEKLY", "invalid",
     "both a TZID and a trailing Z"),
    ("DTSTART:20190705T085000Z\nRRULE:FREQ=DAILY;UNTIL=20200101", "invalid", "UNTIL"),
    ("RDATE:20200101T000000Z\nRRULE:FREQ=DAILY", "invalid", "'RDATE' lines are not supported"),
    ("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", "invalid", "one RRULE line"),
    ("RRULE:FREQ=SECONDLY;BYHOUR=3;BYMONTH=2;BYMONTHDAY=30", "invalid", "quickly enough"),
    ("RRULE:FREQ=MINUTELY;COUNT=100000000", "invalid", "quickly enough"),
    ("RRULE:FREQ=DAILY;" + "X" * 2048, "too_long", "too long"),
    ("RRULE:FREQ=DAILY\x00", "invalid", "NUL"),
])
def test_invalid_rules_are_422_on_rrule(api, rrule, kind, hint):
    task = new_task(api)
    started = time.monotonic()
    response = api.post(f"/tasks/{task['id']}/task_schedule", json={"rrule": rrule})
    assert time.monotonic() - started < 5  # even rules dateutil would chew on for minutes
    assert details(response)["rrule"][0]["error"] == kind
    assert hint in response.json()["messages"][0], response.text


def test_wrong_bodies(api):
    url = f"/tasks/{new_task(api)['id']}/task_schedule"
    assert details(api.post(url, json={"rrule": 12}))["rrule"][0]["error"] == "invalid"
    assert details(api.post(url, content=b"{", headers={"content-type": "application/json"}))
    assert details(api.post(url, json={}))["rrule"][0]["error"] == "blank"


def test_listing_schedules(server, api, make_user):
    username, _, owner = make_user()
    weekly, daily, ended = new_task(owner), new_task(owner), new_task(owner)
    for task, rule in ((weekly, PARIS_WEEKLY), (daily, "FREQ=DAILY"),
                       (ended, "DTSTART:20190101T000000Z\nRRULE:FREQ=DAILY;COUNT=1")):
        assert owner.post(f"/tasks/{task['id']}/task_schedule",
                          json={"rrule": rule}).status_code == 201
    _, _, stranger = make_user()
    hidden = new_task(stranger)
    stranger.post(f"/tasks/{hidden['id']}/task_schedule", json={"rrule": "FREQ=HOURLY"})

    def listed(client=owner, **params) -> list[dict]:
        response = client.get("/task_schedules", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] >= len(body["task_schedules"])
        return body["task_schedules"]

    mine = listed()
    assert {s["task_id"] for s in mine} == {weekly["id"], daily["id"], ended["id"]}
    assert all(s["next"] for s in mine if s["task_id"] != ended["id"])
    assert [s["task_id"] for s in listed(done="true")] == [ended["id"]]
    assert {s["task_id"] for s in listed(done="False")} == {weekly["id"], daily["id"]}
    assert [s["task_id"] for s in listed(task_id=daily["id"])] == [daily["id"]]
    assert [s["task_id"] for s in listed(rrule="~%Europe/Paris%")] == [weekly["id"]]
    assert [s["task_id"] for s in listed(sort_by="task_id:desc", limit=1, offset=1)] == [daily["id"]]
    assert owner.get("/task_schedules", params={"limit": 1}).json()["count"] == 3
    without = listed(with_next="false")
    assert all(s["next"] is None and s["missed_count"] is None for s in without)
    assert all(isinstance(s["done"], bool) and s["rrule"] for s in without)
    assert listed(with_next="true")[0]["missed_count"] == 0

    assert details(owner.get("/task_schedules", params={"all": "true"}), 403)
    everyone = {s["task_id"] for s in listed(api, all="true", limit=10_000)}
    assert {weekly["id"], hidden["id"]} <= everyone
    assert hidden["id"] not in {s["task_id"] for s in listed(api)}
    assert details(owner.get("/task_schedules", params={"next": "x"}))["next"]
    assert stranger.get(f"/tasks/{weekly['id']}/task_schedule").status_code == 404
    assert stranger.delete(f"/tasks/{weekly['id']}/task_schedule").status_code == 404


def test_reads_show_a_fresh_next_but_leave_the_stored_cursor(api, engine):
    task = new_task(api)
    url = f"/tasks/{task['id']}/task_schedule"
    created = api.post(url, json={"rrule": "DTSTART:20200101T000000Z\nRRULE:FREQ=MINUTELY"}).json()
    overdue = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    with Session(engine) as session:
        row = session.get(TaskSchedule, created["id"])
        row.next = overdue  # as if the scheduler had not yet handled this occurrence
        session.commit()
    shown = api.get(url).json()
    assert parse(shown["next"]) > datetime.now(timezone.utc) - timedelta(seconds=1)
    with Session(engine) as session:
        assert session.get(TaskSchedule, created["id"]).next == overdue

    # `done` only turns true with time, so a read records it for the `done` filter.
    with Session(engine) as session:
        row = session.get(TaskSchedule, created["id"])
        row.rrule, row.done = "DTSTART:20200101T000000Z\nRRULE:FREQ=DAILY;COUNT=2", False
        session.commit()
    assert api.get(url).json()["done"] is True
    with Session(engine) as session:
        assert session.scalar(select(TaskSchedule.done).where(
            TaskSchedule.id == created["id"])) is True


def test_sdk_task_schedules_round_trip(server):
    client = sdk_client(server)
    task = nodeum_sdk.TasksApi(client).create_task(task_body=nodeum_sdk.Task(
        name=unique("sdk-sched"), workflow_type="active_archive", workflow_action="copy"))
    api = nodeum_sdk.TaskSchedulesApi(client)
    created = api.create_task_schedule(task_id=str(task.id), task_schedule_body=nodeum_sdk.TaskSchedule(
        rrule=PARIS_WEEKLY))
    assert isinstance(created, nodeum_sdk.TaskSchedule)
    assert created.task_id == task.id and created.done is False and created.next.endswith("Z")
    assert api.show_task_schedule(task_id=task.name).to_dict() == created.to_dict()
    updated = api.update_task_schedule(task_id=str(task.id), task_schedule_body=nodeum_sdk.TaskSchedule(
        rrule="DTSTART:20190705T085000Z\nRRULE:FREQ=DAILY"))
    assert updated.id == created.id and updated.rrule.endswith("FREQ=DAILY")
    page = api.index_task_schedules(task_id=str(task.id), with_next=True, sort_by=["id:desc"],
                                    limit=5)
    assert page.count == 1 and page.task_schedules[0].next == updated.next
    assert api.index_task_schedules(task_id=str(task.id), with_next=False).task_schedules[0].next is None
    with pytest.raises(ApiException) as taken:
        api.create_task_schedule(task_id=str(task.id), task_schedule_body=nodeum_sdk.TaskSchedule(
            rrule="FREQ=DAILY"))
    assert taken.value.status == 422 and '"taken"' in taken.value.body
    api.destroy_task_schedule(task_id=str(task.id))
    with pytest.raises(ApiException) as missing:
        api.show_task_schedule(task_id=str(task.id))
    assert missing.value.status == 404


# --- the recurrence arithmetic (no server) --------------------------------------------------

@pytest.mark.parametrize("seed", range(2))
def test_fast_forward_finds_the_same_next_occurrence_as_dateutil(seed):
    """Moving DTSTART forward by whole periods must never change the next occurrence."""
    rng = random.Random(seed)
    # How far back DTSTART may lie: many periods, yet cheap for plain dateutil to walk.
    spans = {"SECONDLY": 3_600, "MINUTELY": 86_400 * 2, "HOURLY": 86_400 * 60,
             "DAILY": 86_400 * 2_000, "WEEKLY": 86_400 * 4_000, "MONTHLY": 86_400 * 9_000,
             "YEARLY": 86_400 * 30_000}
    extras = ["", ";BYDAY=MO,WE", ";BYHOUR=3,15", ";BYMONTHDAY=31", ";BYMONTHDAY=-1",
              ";BYSETPOS=1;BYDAY=MO,TU", ";WKST=SU;BYDAY=SU,SA", ";BYMONTH=3,10;BYDAY=SU"]
    zones = ["Z", "", ";TZID=Europe/Paris", ";TZID=America/New_York", ";TZID=Australia/Lord_Howe"]
    compared = 0
    for _ in range(120):
        freq = rng.choice(list(spans))
        anchor = datetime(2026, 1, 15, 12, 0, 0)
        start = anchor - timedelta(seconds=rng.randint(0, spans[freq]))
        zone = rng.choice(zones)
        value = start.strftime("%Y%m%dT%H%M%S") + ("Z" if zone == "Z" else "")
        params = zone if zone.startswith(";") else ""
        text = (f"DTSTART{params}:{value}\nRRULE:FREQ={freq};"
                f"INTERVAL={rng.choice([1, 2, 3, 5, 13])}{rng.choice(extras)}")
        now = anchor.replace(tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 10**6))
        try:
            recurrence = schedules.parse_recurrence(text, now)
            ours = schedules.next_occurrence(recurrence, now)
        except (ValidationFailed, schedules.TooCostly):
            continue  # rules that can never occur, or not within the budget
        plain = rrulestr(text, tzids=ZoneInfo)
        expected = plain.after(now if recurrence.aware else now.replace(tzinfo=None))
        if expected is not None:
            expected = (expected.astimezone(timezone.utc) if recurrence.aware
                        else expected.replace(tzinfo=timezone.utc))
        assert ours == expected, text
        compared += 1
    assert compared > 100


def test_old_rules_stay_cheap_and_calendar_clamping_is_respected():
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    every_second = schedules.parse_recurrence("DTSTART:19700101T000000Z\nRRULE:FREQ=SECONDLY", now)
    started = time.monotonic()
    assert schedules.next_occurrence(every_second, now) == now + timedelta(seconds=1)
    assert time.monotonic() - started < 0.1
    month_end = schedules.parse_recurrence("DTSTART:19990131T000000Z\nRRULE:FREQ=MONTHLY", now)
    assert schedules.next_occurrence(month_end, now) == datetime(2026, 12, 31, tzinfo=timezone.utc)
    leap_day = schedules.parse_recurrence("DTSTART:19960229T060000Z\nRRULE:FREQ=YEARLY", now)
    assert schedules.next_occurrence(leap_day, now) == datetime(2028, 2, 29, 6, tzinfo=timezone.utc)
    ancient = schedules.parse_recurrence("DTSTART:00010101T000000Z\nRRULE:FREQ=HOURLY", now)
    assert schedules.next_occurrence(ancient, now) == now + timedelta(hours=1)


def test_a_runaway_rule_is_stopped_by_the_budget():
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    never = schedules.parse_recurrence(
        "DTSTART:20261124T000000Z\nRRULE:FREQ=SECONDLY;BYHOUR=3;BYMONTH=2;BYMONTHDAY=30", now)
    started = time.monotonic()
    with pytest.raises(schedules.TooCostly):
        schedules.next_occurrence(never, now)
    assert time.monotonic() - started < schedules.COMPUTE_BUDGET_SECONDS + 0.5
