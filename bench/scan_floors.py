"""What a scan can reach at all on this machine: the walk and the catalog insert alone.

    .venv/bin/python bench/scan_floors.py [--files 200000] [--postgresql URL]

Each line is one piece of a scan done as cheaply as Python allows, over the tree
bench/scan.py builds (empty files, 100 per folder), next to `find -printf` of the same
stat fields. The catalog lines insert that many rows into a fresh `files` table with
its real indexes (created from the models), in batches of 5,000 as a scan's reports
arrive, one transaction per batch. See bench/README.md (scan section).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from scan import FIND_FORMAT, build_tree  # bench/ is the script's folder, first on the path
from sqlalchemy import create_engine, insert, text

from tiermover.db.models import CatalogFile

BATCH = 5000


def timed(label: str, files: int, run) -> float:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"  {label:<58} {seconds:6.2f} s {files / seconds:>10,.0f} /s "
          f"{seconds / files * 1e6:6.2f} us each", flush=True)
    return seconds


def walk_lstat(root: str) -> list:
    """Depth first, a scandir and an lstat per entry, a tuple of its fields each."""
    found = []
    pending = [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda e: e.name)
        for child in children:
            info = child.stat(follow_symlinks=False)
            found.append((child.path, info.st_mode, info.st_size, info.st_uid, info.st_gid,
                          info.st_mtime, info.st_atime, info.st_ctime))
            if child.is_dir(follow_symlinks=False):
                pending.append(child.path)
    return found


def scandir_only(root: str) -> None:
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for child in listing:
                if child.is_dir(follow_symlinks=False):
                    pending.append(child.path)


def rows_of(found: list, storage_id: int) -> list[dict]:
    rows = []
    for path, mode, size, uid, gid, mtime, atime, ctime in found:
        rows.append({"name": path.rpartition("/")[2], "parent": None,
                     "storage_kind": "nas_share", "storage_id": storage_id, "primary_id": None,
                     "path": path, "file_path": "/share" + path, "type": "file",
                     "permission": 100644, "size": size, "change_date": None,
                     "modification_date": None, "access_date": None, "uid": uid, "gid": gid,
                     "in_cache": 1, "offline": 0, "extern": 0, "seen_by": "x" * 32})
    return rows


def sqlite_raw(database: Path, found: list) -> None:
    """sqlite3's executemany, dates as the text SQLAlchemy stores."""
    import sqlite3
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    statement = ("INSERT INTO files (name, parent, storage_kind, storage_id, path, file_path, "
                 "type, permission, size, change_date, modification_date, access_date, uid, "
                 "gid, in_cache, offline, extern, seen_by) VALUES "
                 "(?, NULL, 'nas_share', 1, ?, ?, 'file', 100644, ?, ?, ?, ?, ?, ?, 1, 0, 0, ?)")
    date = "2026-12-03 12:00:00.000000"
    for start in range(0, len(found), BATCH):
        connection.executemany(statement, [
            (path.rpartition("/")[2], path, "/share" + path, size, date, date, date, uid, gid,
             "x" * 32) for path, mode, size, uid, gid, *_ in found[start:start + BATCH]])
        connection.commit()
    connection.close()


def core_insert(url: str, found: list, storage_id: int, returning: bool) -> None:
    """SQLAlchemy Core: executemany of dicts, or INSERT ... RETURNING id (what a scan
    needs to report the new entries' ids)."""
    engine = create_engine(url)
    table = CatalogFile.__table__
    statement = insert(table)
    if returning:
        statement = statement.returning(table.c.id)
    with engine.connect() as connection:
        for start in range(0, len(found), BATCH):
            rows = rows_of(found[start:start + BATCH], storage_id)
            result = connection.execute(statement, rows)
            if returning:
                result.all()
            connection.commit()
    engine.dispose()


def postgresql_copy(url: str, found: list, storage_id: int) -> None:
    """psycopg's COPY into the table, the cheapest way into PostgreSQL."""
    engine = create_engine(url)
    columns = ("name", "storage_kind", "storage_id", "path", "file_path", "type", "permission",
               "size", "uid", "gid", "in_cache", "offline", "extern", "seen_by")
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        for start in range(0, len(found), BATCH):
            with cursor.copy(f"COPY files ({', '.join(columns)}) FROM STDIN") as copy:
                for path, mode, size, uid, gid, *_ in found[start:start + BATCH]:
                    copy.write_row((path.rpartition("/")[2], "nas_share", storage_id, path,
                                    "/share" + path, "file", 100644, size, uid, gid, 1, 0, 0,
                                    "x" * 32))
            connection.commit()
    engine.dispose()


def tiermover_seen(url: str, found: list, execution_files: bool):
    """What the server does with a scan's reports, without HTTP: the catalog's seen
    entries (service/catalog_seen.py: lookup, insert with ids returned), and the
    execution's files, one transaction per batch, on a migrated schema. Returns the
    timed part, ready to run."""
    from sqlalchemy.orm import Session

    from tiermover.db.bulk import insert_rows
    from tiermover.db.migrate import upgrade_to_head
    from tiermover.db.models import Container, ExecutionFile
    from tiermover.service.catalog_entries import Entries, Places
    from tiermover.service.catalog_seen import Sightings

    engine = create_engine(url)
    upgrade_to_head(engine)
    name = f"floors-{uuid.uuid4().hex[:8]}"
    with Session(engine) as session, session.begin():
        session.add(Container(name=name, root_path="/nowhere"))
    rows = [(f"/{name}", "folder", 0, 0o40755, 0, 0, 0.0, 0.0, 0.0, None, None)]
    folders = set()
    for path, mode, size, uid, gid, mtime, atime, ctime in found:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:  # a scan reports folders first
            folders.add(folder)
            rows.append((f"/{name}{folder}", "folder", 0, 0o40755, uid, gid, mtime, atime,
                         ctime, None, None))
            folder = folder.rpartition("/")[0]
        rows.append((f"/{name}{path}", "file", size, mode, uid, gid, mtime, atime, ctime,
                     None, None))
    execution = "f" * 32

    def run() -> None:
        with engine.connect() as connection:  # execution_files names an execution
            if execution_files and engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            elif execution_files:
                connection.exec_driver_sql("SET session_replication_role = replica")
            for start in range(0, len(rows), BATCH):
                with Session(bind=connection) as session:
                    outcomes = Sightings(session, execution, Places(session),
                                         Entries(session)).apply(rows[start:start + BATCH])
                    if execution_files:
                        insert_rows(session, ExecutionFile.__table__,
                                    ("execution_id", "file_id", "outcome"),
                                    [(execution, file_id, outcome)
                                     for _, _, outcome, file_id in outcomes])
                    session.commit()
        engine.dispose()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--postgresql", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="'' to leave PostgreSQL out")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tiermover-floors-"))
    try:
        tree = workdir / "tree"
        build_tree(tree, args.files)
        root = str(tree)
        print(f"{args.files:,} files, {os.cpu_count()} CPUs")
        print("walk:")
        timed("find -printf (stat fields of every entry)", args.files, lambda: subprocess.run(
            ["find", root, "-printf", FIND_FORMAT], stdout=subprocess.DEVNULL, check=True))
        timed("Python scandir, no stat", args.files, lambda: scandir_only(root))
        found: list = []
        timed("Python scandir + lstat + a tuple per entry", args.files,
              lambda: found.extend(walk_lstat(root)))
        found = [(path[len(root):], *rest) for path, *rest in found
                 if not (rest[0] & 0o040000)]
        timed("JSON of the entries as arrays", len(found),
              lambda: json.dumps(found, separators=(",", ":")))
        timed("JSON of the entries as dicts", len(found), lambda: json.dumps(
            [{"op": "seen", "path": p, "entry": {"type": "file", "size": s, "mode": m,
              "uid": u, "gid": g, "mtime": mt, "atime": at, "ctime": ct}}
             for p, m, s, u, g, mt, at, ct in found]))
        print(f"catalog ({len(found):,} rows, batches of {BATCH:,}):")
        database = workdir / "floors.db"
        url = f"sqlite:///{database}"
        engine = create_engine(url)
        CatalogFile.metadata.create_all(engine, tables=[CatalogFile.__table__])
        engine.dispose()
        timed("SQLite: sqlite3 executemany", len(found), lambda: sqlite_raw(database, found))
        timed("SQLite: SQLAlchemy Core executemany", len(found),
              lambda: core_insert(url, found, 2, returning=False))
        timed("SQLite: SQLAlchemy Core INSERT ... RETURNING id", len(found),
              lambda: core_insert(url, found, 3, returning=True))
        tiermover_url = f"sqlite:///{workdir / 'tiermover.db'}"
        timed("SQLite: tiermover's seen entries (catalog_seen)", len(found),
              tiermover_seen(tiermover_url, found, execution_files=False))
        timed("SQLite: the same + the execution's files", len(found),
              tiermover_seen(tiermover_url, found, execution_files=True))
        if args.postgresql:
            schema = f"floors_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.postgresql)
            with admin.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA {schema}"))
            pg_url = f"{args.postgresql}?options=-csearch_path%3D{schema}"
            try:
                engine = create_engine(pg_url)
                CatalogFile.metadata.create_all(engine, tables=[CatalogFile.__table__])
                engine.dispose()
                timed("PostgreSQL: SQLAlchemy Core executemany", len(found),
                      lambda: core_insert(pg_url, found, 2, returning=False))
                timed("PostgreSQL: SQLAlchemy Core INSERT ... RETURNING id", len(found),
                      lambda: core_insert(pg_url, found, 3, returning=True))
                timed("PostgreSQL: COPY", len(found), lambda: postgresql_copy(pg_url, found, 4))
                with admin.begin() as connection:  # the migrations' own schema
                    connection.execute(text(f"CREATE SCHEMA {schema}_tm"))
                tm_url = f"{args.postgresql}?options=-csearch_path%3D{schema}_tm"
                timed("PostgreSQL: tiermover's seen entries (catalog_seen)", len(found),
                      tiermover_seen(tm_url, found, execution_files=False))
                timed("PostgreSQL: the same + the execution's files", len(found),
                      tiermover_seen(tm_url, found, execution_files=True))
            finally:
                with admin.begin() as connection:
                    connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {schema}_tm CASCADE"))
                admin.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
