"""The many-row helpers that hand tuples straight to the driver (db/bulk.py insert_rows,
upsert_rows, update_rows): what they store must read back exactly as what the ORM stores, on SQLite
and PostgreSQL, with the migrations' real schema."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from conftest import BACKENDS
from tiermover.db.bulk import STAGED_FROM, insert_rows, update_rows, upsert_rows
from tiermover.db.models import CatalogFile, FileCopy

COLUMNS = ("name", "parent", "storage_kind", "storage_id", "path", "file_path", "type",
           "size", "modification_date", "in_cache", "offline", "extern")


def row(path: str, parent: int | None, date: datetime) -> tuple:
    return (path.rpartition("/")[2] or "root", parent, "nas_share", 7, path, f"/share/{path}",
            "file", 3, date, 1, 0, 0)


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_inserted_rows_return_their_ids_and_read_back_like_orm_rows(engine):
    whole_second = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    fraction = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)
    table = CatalogFile.__table__
    with Session(engine) as session, session.begin():
        root = insert_rows(session, table, COLUMNS, [row("", None, whole_second)],
                           returning=("id", "path"))
        assert [path for _, path in root] == [""]
        root_id = root[0][0]
        returned = insert_rows(session, table, COLUMNS,
                               [row(f"f{n}", root_id, fraction if n % 2 else whole_second)
                                for n in range(1500)],  # more than one statement's worth
                               returning=("id", "path"))
        # One already there: left as it is, and not returned.
        again = insert_rows(session, table, COLUMNS,
                            [row("f0", None, fraction), row("late", root_id, fraction)],
                            returning=("id", "path"))
        session.add(CatalogFile(name="orm", parent=root_id, storage_kind="nas_share",
                                storage_id=7, path="orm", file_path="/share/orm", type="file",
                                modification_date=whole_second))
    assert len(returned) == 1500 and {path for _, path in returned} == {
        f"f{n}" for n in range(1500)}
    assert [path for _, path in again] == ["late"]
    # What COPY and SQL text would need escaped goes through as it is, alone (as
    # parameters of one statement) and among many (COPYed on PostgreSQL).
    odd = "we\\ird\ttab\nline 'quoted' \"double\" %s ?"
    for count in (1, STAGED_FROM):
        paths = [odd] if count == 1 else [f"{odd}{n}" for n in range(count)]
        with Session(engine) as session, session.begin():
            assert sorted(path for _, path in insert_rows(
                session, table, COLUMNS, [row(path, root_id, fraction) for path in paths],
                returning=("id", "path"))) == sorted(paths)
    with Session(engine) as session:
        by_path = {entry.path: entry for entry in session.scalars(
            select(CatalogFile).where(CatalogFile.storage_id == 7))}
        assert by_path["f0"].parent == root_id and by_path["f0"].modification_date == whole_second
        assert by_path["f1"].modification_date == fraction
        assert by_path[odd].file_path == f"/share/{odd}"
        assert {file_id for file_id, path in returned} == {by_path[p].id for _, p in returned}
        # Dates compare in SQL as the ORM's do (SQLite keeps them as text).
        same = session.scalars(select(CatalogFile.path).where(
            CatalogFile.storage_id == 7, CatalogFile.modification_date == whole_second,
            CatalogFile.path.in_(["f0", "orm"]))).all()
        assert sorted(same) == ["f0", "orm"]
        if engine.dialect.name == "sqlite":
            stored = dict(session.execute(text(
                "SELECT path, modification_date FROM files WHERE path IN ('f0', 'orm')")).all())
            assert stored["f0"] == stored["orm"]


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
def test_dates_given_as_unix_times_read_back_like_datetimes(engine):
    table = CatalogFile.__table__
    moments = [datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc),
               datetime(2026, 3, 1, 12, 0, 0, 999_999, tzinfo=timezone.utc),
               datetime(1999, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone.utc)]
    with Session(engine) as session, session.begin():
        insert_rows(session, table, COLUMNS,
                    [row(f"d{n}", None, moment.timestamp()) for n, moment in enumerate(moments)],
                    unix_times=("modification_date",))
        insert_rows(session, table, COLUMNS,
                    [row(f"e{n}", None, moment) for n, moment in enumerate(moments)])
        # Another time zone, and none (taken as UTC): stored as the same instant in UTC.
        insert_rows(session, table, COLUMNS, [
            row("z", None, moments[1].astimezone(timezone(timedelta(hours=2)))),
            row("naive", None, moments[1].replace(tzinfo=None))])
        file_id = session.scalar(select(CatalogFile.id).where(CatalogFile.path == "d0"))
        update_rows(session, table, ("access_date",), [(moments[2].timestamp(), file_id)],
                    unix_times=("access_date",))
    with Session(engine) as session:
        found = {entry.path: entry for entry in session.scalars(select(CatalogFile))}
        assert [found[f"d{n}"].modification_date for n in range(3)] == moments
        assert found["d0"].access_date == moments[2]
        assert found["z"].modification_date == found["naive"].modification_date == moments[1]
        if engine.dialect.name == "sqlite":
            stored = dict(session.execute(text("SELECT path, modification_date FROM files")).all())
            assert [stored[f"d{n}"] for n in range(3)] == [stored[f"e{n}"] for n in range(3)]


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
@pytest.mark.parametrize("untouched", [1, STAGED_FROM])  # a few rows, and many (COPYed)
def test_updated_rows_take_their_new_values_by_id(engine, untouched):
    table = CatalogFile.__table__
    date = datetime(2026, 3, 1, tzinfo=timezone.utc)
    later = datetime(2026, 4, 1, 8, 30, tzinfo=timezone.utc)
    names = ["u0", "u2"] + [f"v{n}" for n in range(untouched)]
    with Session(engine) as session, session.begin():
        ids = dict((path, file_id) for file_id, path in insert_rows(
            session, table, COLUMNS, [row(name, None, date) for name in [*names, "u1"]],
            returning=("id", "path")))
        update_rows(session, table, ("size", "modification_date", "checksum"),
                    [(10, later, "abc", ids["u0"]), (20, None, None, ids["u2"])]
                    + [(30 + n, later, f"c{n}", ids[f"v{n}"]) for n in range(untouched)])
    with Session(engine) as session:
        found = {entry.path: (entry.size, entry.modification_date, entry.checksum)
                 for entry in session.scalars(select(CatalogFile))}
    assert found == {"u0": (10, later, "abc"), "u1": (3, date, None), "u2": (20, None, None),
                     **{f"v{n}": (30 + n, later, f"c{n}") for n in range(untouched)}}


COPY_COLUMNS = ("file_id", "storage_kind", "storage_id", "path", "file_path", "size",
                "checksum", "creation_date", "verified_ok")


@pytest.mark.parametrize("fresh_database", BACKENDS, indirect=True)
@pytest.mark.parametrize("others", [1, STAGED_FROM])  # a few rows, and many (COPYed)
def test_upserted_rows_replace_the_row_at_their_key(engine, others):
    date = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=timezone.utc)
    with Session(engine) as session, session.begin():
        file_id = insert_rows(session, CatalogFile.__table__, COLUMNS,
                              [row("f", None, date)], returning=("id",))[0][0]

    def copy(path: str, size: int, checksum: str, ok: bool | None) -> tuple:
        return (file_id, "cloud_bucket", 3, path, f"/bucket/{path}", size, checksum, date, ok)

    def upsert(rows: list[tuple]) -> None:
        with Session(engine) as session, session.begin():
            upsert_rows(session, FileCopy.__table__, COPY_COLUMNS, rows,
                        key=("storage_kind", "storage_id", "path"),
                        update=("size", "checksum", "verified_ok"))

    upsert([copy("kept", 1, "k", None), copy("replaced", 2, "old", None)])
    # The same key twice in one call: the last row counts (one statement may not change
    # a row twice on PostgreSQL).
    upsert([copy("replaced", 5, "new", True), copy("replaced", 6, "newer", False)]
           + [copy(f"n{n}", n, f"c{n}", True) for n in range(others)])
    with Session(engine) as session:
        found = {c.path: (c.size, c.checksum, c.verified_ok, c.creation_date)
                 for c in session.scalars(select(FileCopy))}
    assert found == {"kept": (1, "k", None, date), "replaced": (6, "newer", False, date),
                     **{f"n{n}": (n, f"c{n}", True, date) for n in range(others)}}
