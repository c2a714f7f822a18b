"""Many-row statements that the ORM's unit of work would issue one row at a time.

Both databases we run on (SQLite, PostgreSQL) speak `INSERT ... ON CONFLICT` the same
way, so the statements below are written once, as SQL text for the driver.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence

from sqlalchemy import Text, any_, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from tiermover.db.base import UTCDateTime, sqlite_datetime_binder, unix_time_binder

# Rows per statement: under SQLite's bound-parameter limit with a dozen columns a row,
# and big enough that a statement's overhead is spread thin.
BATCH = 500
# PostgreSQL: up to this many rows go in as parameters of one statement. COPY through a
# temporary table pays three statements (create, truncate, copy) before the real one,
# which only thousands of rows repay; most reports carry a handful.
STAGED_FROM = 64


def chunks(values: Sequence, size: int = BATCH) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def one_of(session: Session, column, values: list[str]):
    """`column IN values` for text; on PostgreSQL as `= ANY(array)`: one parameter instead
    of hundreds, which PostgreSQL plans much faster."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(Text)))
    return column.in_(values)


# --- rows as tuples, straight to the driver ---------------------------------------------
#
# SQLAlchemy's statement and parameter handling costs more per row than the database's
# own work once a batch holds thousands (a scan's). The helpers below take rows as tuples
# (or dicts, `upsert`) in a given column order, apply only the columns' own
# conversions (dates), and hand the driver one statement for many rows: a multi-row
# VALUES (or an executemany), and on PostgreSQL for many rows a COPY into a temporary
# table and one statement from there.

def _bound(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
           unix_times: Collection[str] = ()) -> Sequence:
    """The rows with each column's bind conversion applied (dates to what the driver
    takes). Columns named in `unix_times` hold Unix times (floats) for date columns.
    Other values repeat a lot (a scan's constant columns), so each distinct one is
    converted once."""
    dialect = session.get_bind().dialect
    from_unix = unix_time_binder(dialect)
    # (index, conversion, values already converted). A file's three dates are often one,
    # so the Unix-time columns share one memo; the others convert with the dialect's own
    # type (SQLite's DATETIME writes the text SQLAlchemy reads back), under the column's
    # decorator (UTCDateTime), except datetimes on SQLite: written as that text directly.
    dates: dict = {}
    conversions = [(index, from_unix, dates) for index, name in enumerate(columns)
                   if name in unix_times]
    datetimes = sqlite_datetime_binder(dialect)
    conversions += [(index, processor, {}) for index, name in enumerate(columns)
                    if name not in unix_times and (processor := (
                        datetimes if datetimes and isinstance(table.c[name].type, UTCDateTime)
                        else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                    )) is not None]
    if not conversions:
        return rows
    converted = []
    for row in rows:
        row = list(row)
        for index, convert, seen in conversions:
            value = row[index]
            if value is not None:
                try:
                    row[index] = seen[value]
                except KeyError:
                    row[index] = seen[value] = convert(value)
        converted.append(row)
    return converted


def _sqlite_rows_per_statement(session: Session, columns: int) -> int:
    connection = session.connection().connection.driver_connection
    import sqlite3

    limit = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(1000, limit // columns))


def _array_types(session: Session, table, columns: Sequence[str]) -> list[str]:
    dialect = session.get_bind().dialect
    return [table.c[name].type.compile(dialect) + "[]" for name in columns]


def _staged(session: Session, table, columns: Sequence[str], rows: Sequence) -> str:
    """PostgreSQL: `rows` COPYed into a temporary table of `columns` (emptied first, and
    at each commit); returns its name. COPY is the cheapest way into PostgreSQL by far,
    and the driver writes its rows in C (parameters, arrays included, cost far more)."""
    # One per table and set of columns, per connection (temporary tables are).
    staging = f"staging_{table.name}_{zlib.crc32(' '.join(columns).encode()):08x}"
    connection = session.connection()
    names = ", ".join(columns)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT {names} FROM {table.name} WITH NO DATA")
    connection.exec_driver_sql(f"TRUNCATE {staging}")
    with connection.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return staging


def insert_rows(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
                returning: Sequence[str] = (), unix_times: Collection[str] = ()) -> list[tuple]:
    """Insert `rows` (tuples in `columns` order) into `table`; a row whose unique key
    already exists is left as it is. Returns the `returning` columns of the rows actually
    inserted (in no particular order). Date columns named in `unix_times` are given as
    Unix times."""
    return _insert_rows(session, table, columns, rows, "DO NOTHING", returning, unix_times)


def upsert_rows(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
                key: Sequence[str], update: Sequence[str],
                unix_times: Collection[str] = ()) -> None:
    """Insert `rows` (tuples in `columns` order), or set the `update` columns of the row
    that holds the same `key` (the columns of a unique constraint). Of rows with the same
    key, the last one counts: one statement may not change a row twice."""
    at = [columns.index(name) for name in key]
    last = {tuple(row[i] for i in at): row for row in rows}
    conflict = (f"({', '.join(key)}) DO UPDATE SET "
                + ", ".join(f"{name} = excluded.{name}" for name in update))
    _insert_rows(session, table, columns, list(last.values()), conflict, (), unix_times)


def upsert(session: Session, model, rows: Iterable[dict], key: Sequence[str],
           update: Sequence[str]) -> None:
    """Insert rows (dicts with the same keys), or update the `update` columns of the row
    holding the same `key`: `upsert_rows` with the rows as tuples."""
    rows = list(rows)
    if not rows:
        return
    columns = tuple(rows[0])
    upsert_rows(session, model.__table__, columns,
                [tuple(row[name] for name in columns) for row in rows], key, update)


def _insert_rows(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
                 conflict: str, returning: Sequence[str], unix_times: Collection[str]
                 ) -> list[tuple]:
    if not rows:
        return []
    connection = session.connection()
    names = ", ".join(columns)
    back = f" RETURNING {', '.join(returning)}" if returning else ""
    values = _bound(session, table, columns, rows, unix_times)
    found: list[tuple] = []
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and len(values) >= STAGED_FROM:
        staging = _staged(session, table, columns, values)
        result = connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "
            f"ON CONFLICT {conflict}{back}")
        return result.all() if returning else found
    # Multi-row VALUES, also without RETURNING: half the cost per row of an executemany.
    group = "(" + ", ".join(["%s" if postgres else "?"] * len(columns)) + ")"
    size = STAGED_FROM if postgres else _sqlite_rows_per_statement(session, len(columns))
    for batch in chunks(values, size):
        statement = (f"INSERT INTO {table.name} ({names}) VALUES "
                     f"{', '.join([group] * len(batch))} ON CONFLICT {conflict}{back}")
        result = connection.exec_driver_sql(statement,
                                            tuple(itertools.chain.from_iterable(batch)))
        if returning:
            # The driver's own tuples: a Row object each would cost more than the insert.
            found += result.cursor.fetchall()
        result.close()
    return found


def update_rows(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
                key: str = "id", unix_times: Collection[str] = ()) -> None:
    """Set `columns` of the rows whose `key` is each tuple's last value (the others are
    the new values, in `columns` order; dates named in `unix_times` as Unix times)."""
    if not rows:
        return
    connection = session.connection()
    values = _bound(session, table, [*columns, key], rows, unix_times)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and len(values) >= STAGED_FROM:
        staging = _staged(session, table, [*columns, key], values)
        assignments = ", ".join(f"{name} = v.{name}" for name in columns)
        connection.exec_driver_sql(f"UPDATE {table.name} SET {assignments} FROM {staging} AS v "
                                   f"WHERE {table.name}.{key} = v.{key}")
        return
    mark = "%s" if postgres else "?"
    assignments = ", ".join(f"{name} = {mark}" for name in columns)
    connection.exec_driver_sql(f"UPDATE {table.name} SET {assignments} WHERE {key} = {mark}",
                               [tuple(row) for row in values])


def rows_with(session: Session, table, columns: Sequence[str], where: dict,
              column: str, values: Sequence, batch: int = 5000,
              as_stored: Collection[str] = ()) -> list[tuple]:
    """`columns` of the rows of `table` that match `where` (column: value) and whose
    `column` is one of `values`, read as the columns' types read them (dates as aware
    datetimes), except those named in `as_stored`: as the driver gives them (on SQLite,
    a date's text)."""
    if not values:
        return []
    dialect = session.get_bind().dialect
    connection = session.connection()
    processors = [(index, processor) for index, name in enumerate(columns)
                  if name not in as_stored
                  and (processor := table.c[name].type.dialect_impl(dialect)
                       .result_processor(dialect, None)) is not None]
    postgres = dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    conditions = " AND ".join(f"{name} = {mark}" for name in where)
    head = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {conditions} AND {column}"
    found = []
    for part in chunks(values, batch):
        if postgres:
            kind = _array_types(session, table, [column])[0]
            result = connection.exec_driver_sql(f"{head} = ANY(%s::{kind})",
                                                (*where.values(), list(part)))
        else:
            result = connection.exec_driver_sql(
                f"{head} IN ({', '.join('?' * len(part))})", (*where.values(), *part))
        # The driver's own tuples: a Row object each cost more than the lookup.
        rows = result.cursor.fetchall()
        result.close()
        if not processors:
            found += rows
            continue
        for row in rows:
            row = list(row)
            for index, processor in processors:
                row[index] = processor(row[index])
            found.append(tuple(row))
    return found
