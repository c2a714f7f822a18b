"""/api/v2/cloud_connectors and cloud buckets (under a connector, a pool, or on their own).

Without network access to the clouds yet, the connector test checks the fields offline
(a well-formed http(s) endpoint URL, required for self-hosted providers) and completes;
the bucket sync completes at once and reports the buckets registered with
POST /cloud_connectors/{id}/cloud_buckets (an extension: the Nodeum API discovers them).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from tiermover.api.deps import AdminScope, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, created
from tiermover.api.nodeum.storage_render import (
    CENSORED, render_cloud_bucket, render_cloud_connector, render_mount_status,
)
from tiermover.service.storage import cloud as service
from tiermover.service.storage.jobs import board_for
from tiermover.service.storage.pools import get_pool

router = APIRouter(tags=["cloud"])

Provider = Literal["generic_s3", "amazon_aws_s3", "cloudian_hyperstore", "scality_ring",
                   "dell_emc_ecs", "azure", "google_cloud_storage", "openstack_swift", "wasabi"]
TEST_JOB, SYNC_JOB = "cloud_connector_test", "cloud_bucket_sync"
NOT_MOUNTED = "Cloud buckets are reached through the S3 API; this server does not mount them"


class CloudConnectorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    url: str | None = None
    url_proxy: str | None = None
    provider: Provider | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    options: str | None = None


class CloudBucketBody(BaseModel):
    """`price` and `options` may change; `name` and `location` only when registering."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    location: str | None = None
    price: str | None = None
    options: str | None = None


def connector_values(body: CloudConnectorBody) -> dict:
    values = body.model_dump(exclude_unset=True)
    # A connector shown to a caller without the secret scope and sent back keeps its secret.
    if values.get("secret_key") == CENSORED:
        del values["secret_key"]
    return values


def buckets(page) -> JSONResponse:
    return collection("cloud_buckets", page, render_cloud_bucket)


def mount_status(session, bucket) -> dict:
    return render_mount_status(False, NOT_MOUNTED, service.mount_info(session, bucket))


# --- connectors ------------------------------------------------------------------------------

@router.get("/cloud_connectors", summary="Lists all cloud connectors.")
def index_cloud_connectors(request: Request, session: DbSession,
                           principal: Scope("cloud_connectors", "index")):
    query = parse_list_query(request.query_params, service.CONNECTOR_ATTRS)
    return collection("cloud_connectors", service.list_connectors(session, query),
                      lambda connector: render_cloud_connector(connector, principal))


@router.post("/cloud_connectors", status_code=201, summary="Creates a new cloud connector.")
def create_cloud_connector(body: CloudConnectorBody, session: DbSession,
                           principal: AdminScope("cloud_connectors", "create")):
    connector = service.create_connector(session, connector_values(body))
    return created(render_cloud_connector(connector, principal))


@router.put("/cloud_connectors/-/test", status_code=202,
            summary="Test a cloud connector (offline: checks its endpoint URL).")
def test_cloud_connector(request: Request, body: CloudConnectorBody,
                         principal: AdminScope("cloud_connectors", "test")):
    failure = service.test_problem(body.model_dump(exclude_unset=True))
    job = board_for(request.app.state).finish(TEST_JOB, None, failure)
    return JSONResponse(job.as_status(), status_code=202)


@router.get("/cloud_connectors/-/test",
            summary="Get the result of a cloud connector test (the buckets it found).")
def test_result_cloud_connector(request: Request, principal: AdminScope("cloud_connectors", "test"),
                                job_id: str = Query(description="ID of active job")):
    job = board_for(request.app.state).get(job_id, TEST_JOB, None)
    # Listing buckets needs the network; the job status rides along for those who read it.
    return {**job.as_status(), "cloud_buckets": []}


@router.get("/cloud_connectors/{cloud_connector_id}",
            summary="Displays a specific cloud connector.")
def show_cloud_connector(cloud_connector_id: str, session: DbSession,
                         principal: Scope("cloud_connectors", "show")):
    return render_cloud_connector(service.get_connector(session, cloud_connector_id), principal)


@router.put("/cloud_connectors/{cloud_connector_id}",
            summary="Updates a specific cloud connector.")
def update_cloud_connector(cloud_connector_id: str, body: CloudConnectorBody,
                           session: DbSession, principal: AdminScope("cloud_connectors", "update")):
    connector = service.get_connector(session, cloud_connector_id)
    connector = service.update_connector(session, connector, connector_values(body))
    return render_cloud_connector(connector, principal)


@router.delete("/cloud_connectors/{cloud_connector_id}", status_code=204,
               summary="Destroys a specific cloud connector and its buckets.")
def destroy_cloud_connector(cloud_connector_id: str, session: DbSession,
                            principal: AdminScope("cloud_connectors", "destroy")):
    service.delete_connector(session, service.get_connector(session, cloud_connector_id))
    return Response(status_code=204)


# --- buckets of a connector ------------------------------------------------------------------

BY_CONNECTOR = "/cloud_connectors/{cloud_connector_id}/cloud_buckets"
CONNECTOR_SCOPED_ATTRS = {k: v for k, v in service.BUCKET_ATTRS.items()
                          if k != "cloud_connector_id"}
POOL_SCOPED_ATTRS = {k: v for k, v in service.BUCKET_ATTRS.items() if k != "pool_id"}


@router.put(BY_CONNECTOR + "/-/sync", status_code=202,
            summary="Synchronize the cloud buckets of a connector.")
def sync_cloud_buckets(request: Request, cloud_connector_id: str, session: DbSession,
                       principal: AdminScope("cloud_buckets", "sync")):
    connector = service.get_connector(session, cloud_connector_id)
    job = board_for(request.app.state).finish(SYNC_JOB, connector.id)
    return JSONResponse(job.as_status(), status_code=202)


@router.get(BY_CONNECTOR + "/-/sync",
            summary="Get the result of a bucket sync: the connector's current buckets.")
def sync_result_cloud_buckets(request: Request, cloud_connector_id: str, session: DbSession,
                              principal: AdminScope("cloud_buckets", "sync"),
                              job_id: str = Query(description="ID of active job")):
    connector = service.get_connector(session, cloud_connector_id)
    job = board_for(request.app.state).get(job_id, SYNC_JOB, connector.id)
    found = [render_cloud_bucket(b) for b in service.connector_buckets(session, connector)]
    return {**job.as_status(), "cloud_buckets": found}


@router.get(BY_CONNECTOR, summary="Lists all cloud buckets of a connector.")
def index_cloud_buckets_by_cloud_connector(request: Request, cloud_connector_id: str,
                                           session: DbSession,
                                           principal: Scope("cloud_buckets", "index")):
    connector = service.get_connector(session, cloud_connector_id)
    query = parse_list_query(request.query_params, CONNECTOR_SCOPED_ATTRS)
    return buckets(service.list_buckets(session, query, connector=connector))


@router.post(BY_CONNECTOR, status_code=201,
             summary="Registers a bucket that exists at the provider (extension).")
def create_cloud_bucket(cloud_connector_id: str, body: CloudBucketBody, session: DbSession,
                        principal: AdminScope("cloud_buckets", "create")):
    connector = service.get_connector(session, cloud_connector_id)
    bucket = service.register_bucket(session, connector, body.model_dump(exclude_unset=True))
    return created(render_cloud_bucket(bucket))


@router.get(BY_CONNECTOR + "/{cloud_bucket_id}", summary="Displays a specific cloud bucket.")
def show_cloud_bucket_by_cloud_connector(cloud_connector_id: str, cloud_bucket_id: str,
                                         session: DbSession,
                                         principal: Scope("cloud_buckets", "show")):
    connector = service.get_connector(session, cloud_connector_id)
    return render_cloud_bucket(service.get_bucket(session, cloud_bucket_id, connector=connector))


@router.put(BY_CONNECTOR + "/{cloud_bucket_id}", summary="Updates a specific cloud bucket.")
def update_cloud_bucket_by_cloud_connector(cloud_connector_id: str, cloud_bucket_id: str,
                                           body: CloudBucketBody, session: DbSession,
                                           principal: AdminScope("cloud_buckets", "update")):
    connector = service.get_connector(session, cloud_connector_id)
    bucket = service.get_bucket(session, cloud_bucket_id, connector=connector)
    values = body.model_dump(exclude_unset=True)
    return render_cloud_bucket(service.update_bucket(session, bucket, values))


@router.delete(BY_CONNECTOR + "/{cloud_bucket_id}", status_code=204,
               summary="Forgets a registered cloud bucket (extension; the bucket stays).")
def destroy_cloud_bucket(cloud_connector_id: str, cloud_bucket_id: str, session: DbSession,
                         principal: AdminScope("cloud_buckets", "destroy")):
    connector = service.get_connector(session, cloud_connector_id)
    service.delete_bucket(session, service.get_bucket(session, cloud_bucket_id,
                                                      connector=connector))
    return Response(status_code=204)


@router.get(BY_CONNECTOR + "/{cloud_bucket_id}/mount",
            summary="Get mount status of a cloud bucket.")
def mount_status_cloud_bucket_by_cloud_connector(
    cloud_connector_id: str, cloud_bucket_id: str, session: DbSession,
    principal: Scope("cloud_buckets", "mount_status"),
):
    connector = service.get_connector(session, cloud_connector_id)
    return mount_status(session, service.get_bucket(session, cloud_bucket_id,
                                                    connector=connector))


# --- all buckets -------------------------------------------------------------------------------

@router.get("/cloud_buckets", summary="Lists all cloud buckets.")
def index_cloud_buckets(request: Request, session: DbSession,
                        principal: Scope("cloud_buckets", "index")):
    query = parse_list_query(request.query_params, service.BUCKET_ATTRS)
    return buckets(service.list_buckets(session, query))


@router.get("/cloud_buckets/{cloud_bucket_id}", summary="Displays a specific cloud bucket.")
def show_cloud_bucket(cloud_bucket_id: str, session: DbSession,
                      principal: Scope("cloud_buckets", "show")):
    return render_cloud_bucket(service.get_bucket(session, cloud_bucket_id))


@router.put("/cloud_buckets/{cloud_bucket_id}", summary="Updates a specific cloud bucket.")
def update_cloud_bucket(cloud_bucket_id: str, body: CloudBucketBody, session: DbSession,
                        principal: AdminScope("cloud_buckets", "update")):
    bucket = service.get_bucket(session, cloud_bucket_id)
    values = body.model_dump(exclude_unset=True)
    return render_cloud_bucket(service.update_bucket(session, bucket, values))


@router.get("/cloud_buckets/{cloud_bucket_id}/mount",
            summary="Get mount status of a cloud bucket.")
def mount_status_cloud_bucket(cloud_bucket_id: str, session: DbSession,
                              principal: Scope("cloud_buckets", "mount_status")):
    return mount_status(session, service.get_bucket(session, cloud_bucket_id))


# --- buckets of a pool -------------------------------------------------------------------------

BY_POOL = "/pools/{pool_id}/cloud_buckets"


@router.get(BY_POOL, summary="Lists all cloud buckets of a pool.")
def index_cloud_buckets_by_pool(request: Request, pool_id: str, session: DbSession,
                                principal: Scope("cloud_buckets", "index")):
    pool = get_pool(session, pool_id)
    query = parse_list_query(request.query_params, POOL_SCOPED_ATTRS)
    return buckets(service.list_buckets(session, query, pool=pool))


@router.get(BY_POOL + "/{cloud_bucket_id}", summary="Displays a specific cloud bucket of a pool.")
def show_cloud_bucket_by_pool(pool_id: str, cloud_bucket_id: str, session: DbSession,
                              principal: Scope("cloud_buckets", "show")):
    pool = get_pool(session, pool_id)
    return render_cloud_bucket(service.get_bucket(session, cloud_bucket_id, pool=pool))


@router.put(BY_POOL + "/{cloud_bucket_id}", summary="Updates a specific cloud bucket of a pool.")
def update_cloud_bucket_by_pool(pool_id: str, cloud_bucket_id: str, body: CloudBucketBody,
                                session: DbSession, principal: AdminScope("cloud_buckets", "update")):
    bucket = service.get_bucket(session, cloud_bucket_id, pool=get_pool(session, pool_id))
    values = body.model_dump(exclude_unset=True)
    return render_cloud_bucket(service.update_bucket(session, bucket, values))


@router.get(BY_POOL + "/{cloud_bucket_id}/mount", summary="Get mount status of a cloud bucket.")
def mount_status_cloud_bucket_by_pool(pool_id: str, cloud_bucket_id: str, session: DbSession,
                                      principal: Scope("cloud_buckets", "mount_status")):
    bucket = service.get_bucket(session, cloud_bucket_id, pool=get_pool(session, pool_id))
    return mount_status(session, bucket)
