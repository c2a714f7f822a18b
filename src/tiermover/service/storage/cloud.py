"""Cloud connectors (an S3-compatible endpoint and its keys) and their buckets.

This server does not talk to the clouds yet: testing a connector checks what can be
checked offline (the URL), and a bucket sync reports the buckets registered by hand
(POST /cloud_connectors/{id}/cloud_buckets).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tiermover.db.models import CloudBucket, CloudConnector, Pool
from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, ListQuery, Page, list_page
from tiermover.service.validation import check_limits
from tiermover.service.storage.common import (
    assign, clean_name, column_taken, flush, forget_catalog, lookup,
)

CONNECTOR_ATTRS = {
    "id": Attr(CloudConnector.id, "int"),
    "name": Attr(CloudConnector.name),
    "url": Attr(CloudConnector.url),
    "url_proxy": Attr(CloudConnector.url_proxy),
    "provider": Attr(CloudConnector.provider),
    "region": Attr(CloudConnector.region),
    "access_key": Attr(CloudConnector.access_key),
}
BUCKET_ATTRS = {
    "id": Attr(CloudBucket.id, "int"),
    "cloud_connector_id": Attr(CloudBucket.cloud_connector_id, "int"),
    "pool_id": Attr(CloudBucket.pool_id, "int"),
    "name": Attr(CloudBucket.name),
    "location": Attr(CloudBucket.location),
    "price": Attr(CloudBucket.price),
}

CONNECTOR_WRITABLE = ("name", "url", "url_proxy", "provider", "region", "access_key",
                      "secret_key", "options")
BUCKET_WRITABLE = ("price", "options")  # the rest describes the bucket as the cloud sees it
BUCKET_REGISTRATION = ("name", "location", "price", "options")


def url_problem(url: str | None) -> str | None:
    """Why `url` cannot be an endpoint (http(s)://host[:port][/path]), or None."""
    if url is None or url == "":
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if any(ch.isspace() for ch in url):
        return "must not contain spaces"
    return None


# Providers without a well-known public endpoint: a connector to one needs its URL.
SELF_HOSTED = ("generic_s3", "cloudian_hyperstore", "scality_ring", "dell_emc_ecs",
               "openstack_swift")


def test_problem(values: dict) -> str | None:
    """Why a connector with these fields could not work, as far as told offline."""
    if not values.get("url") and values.get("provider", "generic_s3") in SELF_HOSTED:
        return "Url can't be blank: this provider has no public endpoint"
    for attr in ("url", "url_proxy"):
        problem = url_problem(values.get(attr))
        if problem:
            return f"{attr.capitalize().replace('_', ' ')} {problem}"
    return None


# --- connectors ------------------------------------------------------------------------------

def list_connectors(session: Session, query: ListQuery) -> Page:
    return list_page(session, select(CloudConnector), CONNECTOR_ATTRS, query, CloudConnector.id)


def get_connector(session: Session, ref: str | int) -> CloudConnector:
    return lookup(session, CloudConnector, ref, "cloud connector", "cloud_connector_id",
                  keys=(CloudConnector.name,))


def connector_problems(values: dict, creating: bool) -> ValidationFailed:
    """Everything wrong with connector fields that can be told without the database."""
    failure = ValidationFailed()
    clean_name(values, failure, creating=creating)
    check_limits(CloudConnector, values, failure)
    for attr in ("url", "url_proxy"):
        if attr in failure.details:
            continue
        problem = url_problem(values.get(attr))
        if problem:
            failure.add(attr, "invalid", problem, value=values[attr])
    return failure


def _validate_connector(session: Session, values: dict, connector: CloudConnector | None) -> None:
    failure = connector_problems(values, creating=connector is None)
    name = values.get("name")
    if name and "name" not in failure.details and column_taken(
            session, CloudConnector.name, name, connector.id if connector else None):
        failure.add("name", "taken", value=name)
    failure.raise_if_any()


def create_connector(session: Session, values: dict) -> CloudConnector:
    _validate_connector(session, values, None)
    connector = CloudConnector(provider="generic_s3")
    assign(connector, values, CONNECTOR_WRITABLE)
    session.add(connector)
    flush(session, value=connector.name)
    return connector


def update_connector(session: Session, connector: CloudConnector, values: dict) -> CloudConnector:
    _validate_connector(session, values, connector)
    assign(connector, values, CONNECTOR_WRITABLE)
    flush(session, value=connector.name)
    return connector


def delete_connector(session: Session, connector: CloudConnector) -> None:
    forget_catalog(session, "cloud_bucket", [b.id for b in connector_buckets(session, connector)])
    session.delete(connector)  # its buckets go with it (ON DELETE CASCADE)
    session.flush()


# --- buckets ---------------------------------------------------------------------------------

def _scoped(connector: CloudConnector | None, pool: Pool | None) -> list:
    where = []
    if connector is not None:
        where.append(CloudBucket.cloud_connector_id == connector.id)
    if pool is not None:
        where.append(CloudBucket.pool_id == pool.id)
    return where


def list_buckets(session: Session, query: ListQuery, connector: CloudConnector | None = None,
                 pool: Pool | None = None) -> Page:
    stmt = select(CloudBucket).where(*_scoped(connector, pool))
    return list_page(session, stmt, BUCKET_ATTRS, query, CloudBucket.id)


def connector_buckets(session: Session, connector: CloudConnector) -> list[CloudBucket]:
    return list(session.scalars(select(CloudBucket).where(
        CloudBucket.cloud_connector_id == connector.id).order_by(CloudBucket.id)))


def get_bucket(session: Session, ref: str | int, connector: CloudConnector | None = None,
               pool: Pool | None = None) -> CloudBucket:
    """By id or name; a name shared by buckets of several connectors is ambiguous."""
    return lookup(session, CloudBucket, ref, "cloud bucket", "cloud_bucket_id",
                  keys=(CloudBucket.name,), where=_scoped(connector, pool))


def register_bucket(session: Session, connector: CloudConnector, values: dict) -> CloudBucket:
    """Record a bucket that exists at the provider (it is not created there)."""
    values = {k: v for k, v in values.items() if k in BUCKET_REGISTRATION}
    failure = ValidationFailed()
    clean_name(values, failure, creating=True)
    check_limits(CloudBucket, values, failure)
    name = values.get("name")
    if name and "name" not in failure.details:
        if "/" in name or any(ch.isspace() for ch in name):
            failure.add("name", "invalid", "must not contain '/' or spaces", value=name)
        elif column_taken(session, CloudBucket.name, name, None,
                          CloudBucket.cloud_connector_id == connector.id):
            failure.add("name", "taken", value=name)
    failure.raise_if_any()
    bucket = CloudBucket(cloud_connector_id=connector.id)
    assign(bucket, values, BUCKET_REGISTRATION)
    session.add(bucket)
    session.flush()
    return bucket


def update_bucket(session: Session, bucket: CloudBucket, values: dict) -> CloudBucket:
    values = {k: v for k, v in values.items() if k in BUCKET_WRITABLE}
    failure = ValidationFailed()
    check_limits(CloudBucket, values, failure)
    failure.raise_if_any()
    assign(bucket, values, BUCKET_WRITABLE)
    session.flush()
    return bucket


def delete_bucket(session: Session, bucket: CloudBucket) -> None:
    forget_catalog(session, "cloud_bucket", [bucket.id])
    session.delete(bucket)
    session.flush()


def mount_info(session: Session, bucket: CloudBucket) -> dict:
    """The bucket in the shape of a Nodeum MountInfo (it is reached over S3, not mounted)."""
    connector = session.get(CloudConnector, bucket.cloud_connector_id)
    pool = session.get(Pool, bucket.pool_id) if bucket.pool_id else None
    return {
        "target": None, "source": connector.url if connector else None,
        "options": bucket.options, "type": None,
        "pool_id": bucket.pool_id, "pool_name": pool.name if pool else None,
        "cloud_connector_id": bucket.cloud_connector_id,
        "cloud_connector_name": connector.name if connector else None,
        "cloud_bucket_id": bucket.id, "cloud_bucket_name": bucket.name,
    }
