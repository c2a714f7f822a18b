"""The migrations build exactly the schema the models describe, on every database, and
step down again: a model change without its migration (or the reverse) fails here."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from tiermover.db.base import Base
from tiermover.db.migrate import alembic_config, upgrade_to_head
import tiermover.db.models  # noqa: F401  (registers every table)

from conftest import BACKENDS


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_migrated_schema_matches_the_models(fresh_database):
    engine = create_engine(fresh_database.url)
    try:
        upgrade_to_head(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        command.downgrade(alembic_config(engine), "base")
        with engine.connect() as connection:
            tables = set(engine.dialect.get_table_names(connection))
        assert tables <= {"alembic_version"}
    finally:
        engine.dispose()
