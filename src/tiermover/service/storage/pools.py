"""Pools: secondary storage of one content (tape, NAS, cloud), and which members they have.

Membership is written through the pool (PoolUp: tape_ids, nas_share_ids,
cloud_bucket_ids), each list replacing the pool's current members of that kind.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tiermover.db.models import CloudBucket, NasShare, Pool, Tape, TapeLibrary
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits
from tiermover.service.storage.common import (
    as_id, assign, clean_name, column_taken, exists, flush, lookup,
)

POOL_ATTRS = {
    "id": Attr(Pool.id, "int"),
    "name": Attr(Pool.name),
    "comment": Attr(Pool.comment),
    "type": Attr(Pool.type),
    "content": Attr(Pool.content),
    "primary_id": Attr(Pool.primary_id, "int"),
}
POOL_WRITABLE = ("name", "comment", "type", "content", "storage_id",
                 "tape_write_protect_when_full")
# member list in the body -> (model, the pool content it belongs to)
MEMBERS = {"tape_ids": (Tape, "tape"), "nas_share_ids": (NasShare, "nas"),
           "cloud_bucket_ids": (CloudBucket, "cloud")}


def list_pools(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(Pool), POOL_ATTRS, query, Pool.id)


def get_pool(session: Session, ref: str | int) -> Pool:
    return lookup(session, Pool, ref, "pool", "pool_id", keys=(Pool.name,))


def _has_members(session: Session, pool: Pool) -> bool:
    return any(
        session.scalar(select(model.id).where(model.pool_id == pool.id).limit(1)) is not None
        for model, _ in MEMBERS.values()
    )


def _check_members(session: Session, values: dict, pool: Pool | None, content: str | None,
                   storage_id: int | None, failure: ValidationFailed) -> None:
    for attr, (model, member_content) in MEMBERS.items():
        ids = values.get(attr)
        if not ids or content is None:  # without a content, "content" is the error
            continue
        if content != member_content:
            failure.add(attr, "invalid", f"must be empty: the pool holds {content}, "
                        f"not {member_content}", value=str(ids))
            continue
        storable = [i for i in ids if as_id(i) is not None]  # larger ids exist nowhere
        rows = {row.id: row
                for row in session.scalars(select(model).where(model.id.in_(storable)))}
        for member_id in dict.fromkeys(ids):
            row = rows.get(member_id)
            if row is None:
                failure.add(attr, "not_found", value=member_id)
            elif row.pool_id is not None and (pool is None or row.pool_id != pool.id):
                # Moving a member would orphan what the other pool wrote on it.
                failure.add(attr, "taken", f"has {member_id}, already in pool {row.pool_id}",
                            value=member_id)
            elif model is Tape and storage_id is not None and row.tape_library_id != storage_id:
                failure.add(attr, "invalid", f"has tape {member_id}, which is not in tape "
                            f"library {storage_id} (storage_id)", value=member_id)


def _validate(session: Session, values: dict, pool: Pool | None) -> None:
    failure = ValidationFailed()
    clean_name(values, failure, creating=pool is None)
    check_limits(Pool, values, failure)
    for required in ("type", "content"):
        if pool is None and values.get(required) is None:
            failure.add(required, "blank")
    name = values.get("name")
    if name and "name" not in failure.details and column_taken(
            session, Pool.name, name, pool.id if pool else None):
        failure.add("name", "taken", value=name)
    content = values.get("content") or (pool.content if pool else None)
    if pool is not None and content != pool.content and _has_members(session, pool):
        failure.add("content", "frozen", "can't change while the pool has members")
    storage_id = values.get("storage_id", pool.storage_id if pool else None)
    if content == "tape" and storage_id is not None and "storage_id" in values \
            and "storage_id" not in failure.details \
            and not exists(session, TapeLibrary, storage_id):
        failure.add("storage_id", "not_found", "names no tape library", value=storage_id)
    _check_members(session, values, pool, content, storage_id if content == "tape" else None,
                   failure)
    failure.raise_if_any()


def _set_members(session: Session, pool: Pool, values: dict) -> None:
    for attr, (model, _) in MEMBERS.items():
        if attr not in values or values[attr] is None:
            continue
        ids = list(values[attr])
        session.execute(update(model).where(model.pool_id == pool.id, model.id.not_in(ids))
                        .values(pool_id=None).execution_options(synchronize_session=False))
        if ids:
            session.execute(update(model).where(model.id.in_(ids)).values(pool_id=pool.id)
                            .execution_options(synchronize_session=False))


def create_pool(session: Session, values: dict) -> Pool:
    _validate(session, values, None)
    pool = Pool(tape_write_protect_when_full=False)
    assign(pool, values, POOL_WRITABLE)
    session.add(pool)
    flush(session, value=pool.name)
    _set_members(session, pool, values)
    return pool


def update_pool(session: Session, pool: Pool, values: dict) -> Pool:
    _validate(session, values, pool)
    assign(pool, values, POOL_WRITABLE)
    flush(session, value=pool.name)
    _set_members(session, pool, values)
    return pool


def delete_pool(session: Session, pool: Pool) -> None:
    """The pool goes; its members stay, outside any pool (ON DELETE SET NULL)."""
    session.delete(pool)
    session.flush()
