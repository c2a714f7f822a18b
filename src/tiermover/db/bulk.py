"""Many-row statements that the ORM's unit of work would issue one row at a time.

Both databases we run on (SQLite, PostgreSQL) speak `INSERT ... ON CONFLICT`, but
SQLAlchemy builds it per dialect; these helpers pick the right one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Text, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

# Rows per statement: under SQLite's bound-parameter limit with a dozen columns a row,
# and big enough that a statement's overhead is spread thin.
BATCH = 500


def chunks(values: Sequence, size: int = BATCH) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert(session: Session, model):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def insert_ignoring_conflicts(session: Session, model, rows: Iterable[dict]) -> None:
    """Insert rows; a row whose unique key already exists is left as it is (another
    request may have inserted it a moment ago)."""
    rows = list(rows)
    for batch in chunks(rows):
        session.execute(_insert(session, model).on_conflict_do_nothing(), list(batch))


def upsert(session: Session, model, rows: Iterable[dict], key: Sequence[str],
           update: Sequence[str]) -> None:
    """Insert rows, or update the `update` columns of the row holding the same `key`."""
    rows = list(rows)
    for batch in chunks(rows):
        statement = _insert(session, model)
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={name: getattr(statement.excluded, name) for name in update})
        session.execute(statement, list(batch))


def one_of(session: Session, column, values: list[str]):
    """`column IN values` for text; on PostgreSQL as `= ANY(array)`: one parameter instead
    of hundreds, which PostgreSQL plans much faster."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(Text)))
    return column.in_(values)
