"""The Nodeum collection machinery on /tasks: operators, types, sorting, paging, errors.

Each test works as a fresh user so that only its own tasks are listed.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from conftest import unique
from tiermover.db.models import Pool, Tape, TaskDestination, TaskSource
from tiermover.db.session import make_engine


@pytest.fixture
def owner(make_user):
    """A user with five tasks of known fields; returns (client, tasks by short name)."""
    _, _, client = make_user()
    specs = {
        "alpha": dict(priority=2, workflow_action="copy", conflict_resolution="rename"),
        "beta": dict(priority=9, workflow_action="move", conflict_resolution="ignore"),
        "gamma": dict(priority=10, workflow_action="scan", activate=False),
        "delta_x": dict(priority=50, workflow_action="copy", comment="keep"),
        "deltaXx": dict(priority=100, workflow_action="erase"),
    }
    tasks = {}
    for short, fields in specs.items():
        body = {"name": f"{short}", "workflow_type": "maintenance", **fields}
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        tasks[short] = response.json()
    return client, tasks


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["tasks"]]


def test_each_operator(owner):
    client, _ = owner
    listed = lambda **params: set(names(client.get("/tasks", params=params)))  # noqa: E731
    assert listed(name="beta") == {"beta"}
    assert listed(name="=beta") == {"beta"}
    assert listed(name="!=beta") == {"alpha", "delta_x", "deltaXx", "gamma"}
    assert listed(priority=">9") == {"delta_x", "deltaXx", "gamma"}
    assert listed(priority=">=9") == {"beta", "delta_x", "deltaXx", "gamma"}
    assert listed(priority="<10") == {"alpha", "beta"}
    assert listed(priority="<=10") == {"alpha", "beta", "gamma"}
    assert listed(workflow_action="><copy|scan") == {"alpha", "delta_x", "gamma"}
    assert listed(workflow_action="!><copy|scan") == {"beta", "deltaXx"}
    assert listed(name="~delta%") == {"delta_x", "deltaXx"}
    assert listed(name="~Delta%") == set()  # LIKE is case-sensitive on every backend
    assert listed(name="!~delta%") == {"alpha", "beta", "gamma"}
    assert listed(activate="false") == {"gamma"}
    assert listed(activate="1", priority="<10") == {"alpha", "beta"}
    assert listed(comment="keep") == {"delta_x"}
    assert listed(comment="!=keep") == {"alpha", "beta", "deltaXx", "gamma"}


def test_like_wildcards_match_single_and_many_characters(owner):
    client, _ = owner
    # `_` is exactly one character: "delta_x" and "deltaXx" both match the pattern "delta_x";
    # "delta_" (six characters) matches neither seven-letter name.
    assert sorted(names(client.get("/tasks", params={"name": "~delta_x"}))) == sorted(["delta_x", "deltaXx"])
    assert sorted(names(client.get("/tasks", params={"name": "~delta__"}))) == sorted(["delta_x", "deltaXx"])
    assert names(client.get("/tasks", params={"name": "~delta_"})) == []
    assert sorted(names(client.get("/tasks", params={"name": "~%a"}))) == ["alpha", "beta", "gamma"]


def test_numbers_and_dates_compare_as_numbers_and_dates(owner):
    client, tasks = owner
    # Lexically "10" < "9"; numerically it is not.
    assert names(client.get("/tasks", params={"priority": ">9", "sort_by": "priority"})) == [
        "gamma", "delta_x", "deltaXx"]
    created = sorted(t["creation_date"] for t in tasks.values())
    earliest, latest = created[0], created[-1]
    after_first = names(client.get("/tasks", params={"creation_date": f">{earliest}"}))
    assert len(after_first) == 4
    # Another ISO spelling of the same instant compares equal.
    plus_zero = latest.replace("Z", "+00:00")
    assert len(names(client.get("/tasks", params={"creation_date": f"<={plus_zero}"}))) == 5
    assert names(client.get("/tasks", params={"creation_date": ">2999-01-01"})) == []
    assert len(names(client.get("/tasks", params={"creation_date": ">2000-01-01"}))) == 5


@pytest.mark.parametrize("separator", [",", "|"])
def test_sort_on_several_keys_with_either_separator(owner, separator):
    client, _ = owner
    sort = separator.join(["workflow_action:desc", "priority:asc"])
    assert names(client.get("/tasks", params={"sort_by": sort})) == [
        "gamma", "beta", "deltaXx", "alpha", "delta_x"]
    assert names(client.get("/tasks", params={"sort_by": "priority:desc"})) == [
        "deltaXx", "delta_x", "gamma", "beta", "alpha"]
    assert names(client.get("/tasks", params={"sort_by": "conflict_resolution:desc|priority:desc"})) == [
        "deltaXx", "delta_x", "gamma", "alpha", "beta"]


def test_limit_offset_and_total_count(owner):
    client, _ = owner
    page = client.get("/tasks", params={"sort_by": "priority", "limit": 2, "offset": 1}).json()
    assert page["count"] == 5
    assert [t["name"] for t in page["tasks"]] == ["beta", "gamma"]
    filtered = client.get("/tasks", params={"priority": ">=9", "limit": 1}).json()
    assert filtered["count"] == 4 and len(filtered["tasks"]) == 1
    beyond = client.get("/tasks", params={"offset": 50}).json()
    assert beyond == {"count": 5, "tasks": []}


@pytest.mark.parametrize("params, attr", [
    ({"nonsense": "1"}, "nonsense"),
    ({"sort_by": "password_hash"}, "sort_by"),
    ({"sort_by": "name:sideways"}, "sort_by"),
    ({"sort_by": "source_pool_name"}, "sort_by"),
    ({"priority": ">high"}, "priority"),
    ({"priority": "><1|two"}, "priority"),
    ({"activate": "perhaps"}, "activate"),
    ({"creation_date": ">yesterday"}, "creation_date"),
    ({"priority": "~1%"}, "priority"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"offset": "x"}, "offset"),
    ({"id": "99999999999999999999999"}, "id"),
])
def test_bad_filters_are_422_naming_the_parameter(owner, params, attr):
    client, _ = owner
    response = client.get("/tasks", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert attr in body["details"] and body["messages"]


def test_values_are_bound_never_spliced_into_sql(owner):
    client, _ = owner
    for hostile in ("x' OR '1'='1", "%' OR 1=1 --", "beta; DROP TABLE tasks"):
        assert names(client.get("/tasks", params={"name": hostile})) == []
    assert client.get("/tasks", params={"sort_by": "name; DROP TABLE tasks"}).status_code == 422
    assert len(names(client.get("/tasks"))) == 5


def test_source_and_destination_pool_and_tape_filters(server, owner):
    client, tasks = owner
    engine = make_engine(server.database.url)
    suffix = unique("")
    with Session(engine) as session, session.begin():
        archive = Pool(name=f"archive{suffix}", type="offline_archive", content="tape")
        scratch = Pool(name=f"scratch{suffix}", type="scratch", content="tape")
        session.add_all([archive, scratch])
        session.flush()
        tape = Tape(barcode=f"B{suffix[-6:]}L5".upper(), pool_id=archive.id)
        session.add(tape)
        session.flush()
        session.add_all([
            TaskSource(task_id=tasks["alpha"]["id"], pool_id=archive.id),
            TaskSource(task_id=tasks["beta"]["id"], tape_id=tape.id),
            TaskDestination(task_id=tasks["beta"]["id"], pool_id=scratch.id),
            TaskDestination(task_id=tasks["gamma"]["id"], tape_id=tape.id),
        ])
        ids = dict(archive=archive.id, scratch=scratch.id, tape=tape.id, barcode=tape.barcode)
    engine.dispose()
    listed = lambda **params: set(names(client.get("/tasks", params=params)))  # noqa: E731
    assert listed(source_pool_id=ids["archive"]) == {"alpha"}
    assert listed(source_pool_name=f"archive{suffix}") == {"alpha"}
    assert listed(source_pool_name=f"~%{suffix}") == {"alpha"}
    assert listed(source_tape_id=ids["tape"]) == {"beta"}
    assert listed(source_tape_barcode=ids["barcode"]) == {"beta"}
    assert listed(destination_pool_id=f"><{ids['scratch']}|{ids['archive']}") == {"beta"}
    assert listed(destination_pool_name=f"scratch{suffix}") == {"beta"}
    assert listed(destination_tape_id=ids["tape"]) == {"gamma"}
    assert listed(destination_tape_barcode=ids["barcode"]) == {"gamma"}
    assert listed(destination_tape_barcode="NOPE00L5") == set()
