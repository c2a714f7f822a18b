"""A cartridge's own index as import files of its pool (what get_index reads back).

The cartridge is the top folder, `/<barcode>`, and what it holds lies beneath it as on
the tape (`/<barcode>/projects/a.bin`); folders missing from the index are made for the
files under them. A new get_index of the cartridge replaces what the last one imported.
"""

from __future__ import annotations

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from tiermover.db.models import ImportFile, Tape
from tiermover.service.catalog_entries import attribute_values


def import_index(session: Session, tape: Tape, files: list[dict]) -> int:
    """Replaces the cartridge's import files in its pool; how many entries it now has."""
    if tape.pool_id is None:
        return 0
    top_path = f"/{tape.barcode}"
    escaped = top_path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    session.execute(delete(ImportFile).where(
        ImportFile.pool_id == tape.pool_id,
        or_(ImportFile.file_path == top_path,
            ImportFile.file_path.like(escaped + "/%", escape="\\"))))
    top = ImportFile(pool_id=tape.pool_id, name=tape.barcode, parent=None, file_path=top_path,
                     type="folder", size=0)
    session.add(top)
    session.flush()
    ids = {"": top.id}
    by_path = {entry["path"].strip("/"): entry for entry in files if entry.get("path")}

    def folder_id(path: str) -> int:
        if path not in ids:
            parent, _, name = path.rpartition("/")
            row = ImportFile(pool_id=tape.pool_id, name=name, parent=folder_id(parent),
                             file_path=f"{top_path}/{path}",
                             **{**_attributes(by_path.get(path)), "type": "folder", "size": 0})
            session.add(row)
            session.flush()
            ids[path] = row.id
        return ids[path]

    count = 1
    for path in sorted(by_path):
        entry = by_path[path]
        if entry.get("type") == "folder":
            folder_id(path)
            continue
        parent, _, name = path.rpartition("/")
        session.add(ImportFile(pool_id=tape.pool_id, name=name, parent=folder_id(parent),
                               file_path=f"{top_path}/{path}", type="file",
                               **_attributes(entry)))
        count += 1
    session.flush()
    return count + len(ids) - 1


def _attributes(entry: dict | None) -> dict:
    if not entry:
        return {}
    values = attribute_values(entry)
    return {"permission": values["permission"], "size": values["size"],
            "change_date": values["change_date"],
            "modification_date": values["modification_date"],
            "access_date": values["access_date"], "uid": values["uid"], "gid": values["gid"]}
