"""What every storage object shares: lookup by id or name, value limits, name rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tiermover.db.models import CatalogFile, Container, NasShare
from tiermover.service.errors import NotFound, ValidationFailed

def as_id(ref: str | int) -> int | None:
    """The numeric id a path parameter names, or None when it is not one (a name)."""
    text = str(ref).strip()
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    return None


def exists(session: Session, model, row_id: int) -> bool:
    """Whether a row with this id exists (ids out of the column's range exist nowhere)."""
    return as_id(row_id) is not None and session.get(model, row_id) is not None


def lookup(session: Session, model, ref: str | int, resource: str, attr: str,
           keys: Iterable = (), where: Iterable = ()):
    """A row by numeric id, else by one of its `keys` columns (name, serial, barcode).

    `where` narrows the search to a parent (the NAS of a share, the pool of a tape): a
    row outside it is as missing as a row that does not exist. A key that matches several
    rows is refused rather than guessed.
    """
    ref = str(ref).strip()
    if "\x00" in ref:  # no row holds one (PostgreSQL would refuse the query outright)
        raise NotFound(resource, attr, ref)
    where = list(where)
    numeric = as_id(ref)
    if numeric is not None:
        row = session.scalar(select(model).where(model.id == numeric, *where))
        if row is not None:
            return row
    for key in keys:
        rows = session.scalars(select(model).where(key == ref, *where).limit(2)).all()
        if len(rows) > 1:
            raise ValidationFailed.on(attr, "ambiguous", value=ref)
        if rows:
            return rows[0]
    raise NotFound(resource, attr, ref)


def check_not_negative(values: Mapping[str, Any], names: Iterable[str],
                       failure: ValidationFailed) -> None:
    for name in names:
        value = values.get(name)
        if value is not None and value < 0:
            failure.add(name, "greater_than_or_equal_to", value=value, count=0)


def clean_name(values: dict, failure: ValidationFailed, creating: bool, attr: str = "name") -> None:
    """Strip the name in place; a name is required on create and never cleared."""
    if not creating and attr not in values:
        return
    name = values.get(attr)
    name = name.strip() if isinstance(name, str) else name
    if not name:
        failure.add(attr, "blank")
        return
    values[attr] = name


def check_segment(name: str | None, failure: ValidationFailed, attr: str = "name") -> None:
    """A name that is also one path segment: `/<name>/...` or a file name on disk."""
    if not name:
        return
    if "/" in name or name in (".", ".."):
        failure.add(attr, "invalid", "must be a single path segment (no '/', not '.' or '..')",
                    value=name)


def namespace_name_taken(session: Session, name: str, own: Container | NasShare | None) -> bool:
    """Containers and NAS shares share the namespace `/<name>/...`: a name is either's."""
    container = session.scalar(select(Container.id).where(Container.name == name))
    share = session.scalar(select(NasShare.id).where(NasShare.name == name))
    if container is not None and not (isinstance(own, Container) and own.id == container):
        return True
    return share is not None and not (isinstance(own, NasShare) and own.id == share)


def column_taken(session: Session, column, value, own_id: int | None, *where) -> bool:
    """Whether another row (within `where`) already holds `value` in `column`."""
    if value is None:
        return False
    model_id = column.class_.id
    stmt = select(model_id).where(column == value, *where)
    if own_id is not None:
        stmt = stmt.where(model_id != own_id)
    return session.scalar(stmt.limit(1)) is not None


def assign(row, values: Mapping[str, Any], writable: Iterable[str]) -> None:
    for name in writable:
        if name in values:
            setattr(row, name, values[name])


def flush(session: Session, taken_attr: str = "name", value: Any = None) -> None:
    """Flush, turning a unique-constraint race (two creates at once) into "taken"."""
    try:
        session.flush()
    except IntegrityError:
        raise ValidationFailed.on(taken_attr, "taken", value=value) from None


# --- the catalog entries of a container or share ------------------------------------------

def rename_in_catalog(session: Session, kind: str, storage_id: int, old: str, new: str) -> None:
    """Catalog paths start with the storage name: `/<name>/...` follows a rename."""
    if old == new:
        return
    of_storage = (CatalogFile.storage_kind == kind, CatalogFile.storage_id == storage_id)
    rest = func.substr(CatalogFile.file_path, len(old) + 2)  # what follows "/<old>"
    session.execute(
        update(CatalogFile).where(*of_storage)
        .values(file_path=literal("/" + new).op("||")(rest))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CatalogFile).where(*of_storage, CatalogFile.path == "")
        .values(name=new).execution_options(synchronize_session=False)
    )


def forget_catalog(session: Session, kind: str, storage_ids: Iterable[int]) -> None:
    """Drop the catalog of storage that is being deleted.

    Its ids may be given again (SQLite reuses the highest one), and a new container or
    share must not inherit the files of a former one.
    """
    ids = list(storage_ids)
    if ids:
        session.execute(
            delete(CatalogFile)
            .where(CatalogFile.storage_kind == kind, CatalogFile.storage_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
