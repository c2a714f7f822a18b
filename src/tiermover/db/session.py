"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker


def normalize_database_url(url: str) -> str:
    """Accept the URLs people type (`postgresql://`) and pick our drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_url_for(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'tiermover.db').resolve()}"


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the single writer commits; NORMAL is durable in WAL
    # mode except for the last transactions before a power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # LIKE must mean the same on every backend: case-sensitive, as in PostgreSQL. It also
    # lets SQLite use ordinary indexes for prefix patterns (`name=~backup%`).
    cursor.execute("PRAGMA case_sensitive_like=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=8, max_overflow=8
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No ping at each checkout: it is a round trip before every transaction (a fifth of a
    # small request). A connection the database dropped fails on its first use instead;
    # SQLAlchemy then discards the whole pool, and that request answers 503 (retry).
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
