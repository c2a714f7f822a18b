"""Storage names resolved for the catalog are remembered for a few seconds
(service/namespace.StorageNames); a change of a storage committed by this process is
seen by the next lookup, and two databases never share what is remembered."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from conftest import BACKENDS
from tiermover.db.migrate import upgrade_to_head
from tiermover.db.models import Container
from tiermover.db.session import make_engine
from tiermover.service.namespace import find_storage_id


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


def _lookup(engine, name: str):
    with Session(engine) as session:
        return find_storage_id(session, name)


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_a_committed_change_of_a_storage_is_seen_by_the_next_lookup(engine, tmp_path):
    assert _lookup(engine, "alpha") is None  # remembered as unknown...
    with Session(engine) as session, session.begin():
        container = Container(name="alpha", root_path=str(tmp_path / "alpha"))
        session.add(container)
        session.flush()
        container_id = container.id
    assert _lookup(engine, "alpha") == ("container", container_id)  # ...until created
    with Session(engine) as session, session.begin():
        session.get(Container, container_id).name = "beta"
    assert _lookup(engine, "alpha") is None
    assert _lookup(engine, "beta") == ("container", container_id)
    with Session(engine) as session, session.begin():
        session.delete(session.get(Container, container_id))
    assert _lookup(engine, "beta") is None
    with Session(engine) as session, session.begin():
        session.add(Container(name="beta", root_path=str(tmp_path / "new")))
    with Session(engine) as session:
        new_id = session.query(Container).one().id
    assert _lookup(engine, "beta") == ("container", new_id)


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_a_session_that_changed_a_storage_looks_names_up_itself(engine, tmp_path):
    with Session(engine) as session, session.begin():
        session.add(Container(name="gamma", root_path=str(tmp_path / "gamma")))
    assert _lookup(engine, "gamma")[0] == "container"
    with Session(engine) as session, session.begin():
        session.get(Container, _lookup(engine, "gamma")[1]).name = "delta"
        session.flush()
        # Not committed: others still see gamma, this session sees its own change.
        assert find_storage_id(session, "gamma") is None
        assert find_storage_id(session, "delta")[0] == "container"
        assert _lookup(engine, "gamma")[0] == "container"
    assert _lookup(engine, "gamma") is None


def test_two_databases_do_not_share_remembered_names(tmp_path):
    engines = [make_engine(f"sqlite:///{tmp_path / f'db{n}.sqlite'}") for n in range(2)]
    try:
        for number, engine in enumerate(engines):
            upgrade_to_head(engine)
            with Session(engine) as session, session.begin():
                # Different ids for the same name in the two databases.
                for extra in range(number):
                    session.add(Container(name=f"other{extra}", root_path=str(tmp_path)))
                session.add(Container(name="same", root_path=str(tmp_path / "same")))
        found = [_lookup(engine, "same") for engine in engines]
        assert found[0] != found[1] and {kind for kind, _ in found} == {"container"}
        assert [_lookup(engine, "same") for engine in engines] == found
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_a_name_looked_up_again_costs_no_statement(engine, tmp_path):
    with Session(engine) as session, session.begin():
        session.add(Container(name="epsilon", root_path=str(tmp_path / "epsilon")))
    statements = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    first = _lookup(engine, "epsilon")
    looked_up = len(statements)
    assert first[0] == "container" and looked_up >= 1
    assert [_lookup(engine, "epsilon") for _ in range(3)] == [first] * 3
    assert len(statements) == looked_up
