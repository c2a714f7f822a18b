"""Declarative base and the column types every model shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timestamps are stored as UTC and always come back timezone-aware.

    SQLite keeps naive text that sorts chronologically; PostgreSQL keeps timestamptz.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _sqlite_seconds(d: datetime) -> str:
    """A UTC datetime as SQLite's DATETIME text up to the seconds."""
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d} "
            f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}")


def unix_time_binder(dialect) -> Callable[[float], object]:
    """Converts Unix times straight to what a UTCDateTime column stores: SQLite's text
    (SQLAlchemy's DATETIME format, microseconds always written), PostgreSQL's aware
    datetime. A scan stores three dates per file; going through a datetime and the
    column's processors costs more than the row's insert on SQLite."""
    if dialect.name != "sqlite":
        return lambda seconds: datetime.fromtimestamp(float(seconds), tz=timezone.utc)
    whole_seconds: dict[int, str] = {}  # files of a tree share many

    def text(seconds) -> str:
        whole, micro = divmod(round(seconds * 1_000_000), 1_000_000)
        prefix = whole_seconds.get(whole)
        if prefix is None:
            if len(whole_seconds) > 100_000:
                whole_seconds.clear()
            prefix = whole_seconds[whole] = _sqlite_seconds(
                datetime.fromtimestamp(whole, tz=timezone.utc))
        return f"{prefix}.{micro:06d}"

    return text


def sqlite_datetime_binder(dialect) -> Callable[[datetime], str] | None:
    """On SQLite, datetimes straight to the text a UTCDateTime column stores (what its
    process_bind_param and then SQLite's DATETIME processor write: UTC, microseconds
    always), for the many-row helpers of db/bulk.py; None elsewhere. A naive datetime is
    taken as UTC, as process_bind_param takes it."""
    if dialect.name != "sqlite":
        return None
    utc = timezone.utc

    def text(value: datetime) -> str:
        if value.tzinfo is not None:
            if value.tzinfo is not utc:
                value = value.astimezone(utc)
            value = value.replace(tzinfo=None)
        # (isoformat is C: several times cheaper than formatting the fields in Python.)
        return value.isoformat(" ", "microseconds")

    return text


def utcnow() -> datetime:
    """Now, to the millisecond: the API shows milliseconds, so a date a client received
    compares equal to the stored one when sent back in a filter."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
