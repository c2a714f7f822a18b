"""/api/v2/tasks/{task_id}/{task_sources, task_destinations, task_options, task_metadata,
task_callbacks}: the parts of a task, each with index/create/show/update/destroy.

The five resources differ only in their body, rules and JSON shape, so one route factory
serves them all. (No `from __future__ import annotations` here: the handlers are closures
and FastAPI must see their annotations as objects, not as names in this module.)
"""

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr
from sqlalchemy.orm import Session

from tiermover.api.deps import DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection, columns, created
from tiermover.api.nodeum.storage_render import (
    render_container, render_file, render_import_file, render_pool, render_tape,
)
from tiermover.db.models import TaskCallback, TaskDestination, TaskMetadatum, TaskOption, TaskSource
from tiermover.service import task_options, task_parts, task_references
from tiermover.service.tasks import resolve_task

router = APIRouter(tags=["task parts"])

# A JSON string, number or boolean: the API's values are text, but clients send numbers.
ScalarValue = StrictStr | StrictBool | StrictInt | StrictFloat | None


class TaskSourceUp(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_id: int | None = None
    file_path: str | None = None
    range: list[int] | None = None
    import_file_id: int | None = None
    import_file_path: str | None = None
    tape_id: int | None = None
    tape_barcode: str | None = None
    pool_id: int | None = None
    pool_name: str | None = None


class TaskDestinationUp(BaseModel):
    model_config = ConfigDict(extra="ignore")

    folder_id: int | None = None
    folder_path: str | None = None
    tape_id: int | None = None
    tape_barcode: str | None = None
    pool_id: int | None = None
    pool_name: str | None = None


class TaskOptionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal[task_options.OPTION_TYPES] | None = None
    value: ScalarValue = None


class TaskMetadatumBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str | None = None
    value: ScalarValue = None


class TaskCallbackBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal[task_parts.CALLBACK_TYPES] | None = None
    script: str | None = None


# --- JSON shapes --------------------------------------------------------------------------

def _name_of(obj, attribute: str):
    return getattr(obj, attribute) if obj is not None else None


def render_source(session: Session, source: TaskSource) -> dict:
    links = task_references.links_of(session, source)
    has_range = source.range_start is not None
    return {
        "file_id": source.file_id,
        "file_path": source.file_path,
        "range": [source.range_start, source.range_end] if has_range else None,
        "import_file_id": source.import_file_id,
        "import_file_path": _name_of(links.import_file, "file_path"),
        "tape_id": source.tape_id,
        "tape_barcode": _name_of(links.tape, "barcode"),
        "pool_id": source.pool_id,
        "pool_name": _name_of(links.pool, "name"),
        "id": source.id,
        "file": render_file(links.file),
        "container": render_container(links.container),
        "import_file": render_import_file(links.import_file),
        "tape": render_tape(links.tape),
        "pool": render_pool(links.pool),
    }


def render_destination(session: Session, destination: TaskDestination) -> dict:
    """Seed 002's shape: the request fields, then id and the embedded objects."""
    links = task_references.links_of(session, destination)
    return {
        "folder_id": destination.folder_id,
        "folder_path": destination.folder_path,
        "tape_id": destination.tape_id,
        "tape_barcode": _name_of(links.tape, "barcode"),
        "pool_id": destination.pool_id,
        "pool_name": _name_of(links.pool, "name"),
        "id": destination.id,
        "folder": render_file(links.file),
        "container": render_container(links.container),
        "tape": render_tape(links.tape),
        "pool": render_pool(links.pool),
    }


def _plain(*names: str) -> Callable[[Session, Any], dict]:
    return lambda _session, row: columns(row, names)


# --- one route factory for the five resources ----------------------------------------------

@dataclass(frozen=True)
class PartResource:
    plural: str  # URL segment, API-key scope controller and collection key
    singular: str  # operation ids, path parameter `<singular>_id`, 404 messages
    label: str  # for summaries: "task source"
    model: type
    attrs: dict
    body: type[BaseModel]
    create: Callable  # (session, principal, task, values) -> part
    update: Callable  # (session, principal, task, part, values) -> part
    render: Callable[[Session, Any], dict]


def add_routes(resource: PartResource) -> None:
    collection_path = f"/tasks/{{task_id}}/{resource.plural}"
    id_param = f"{resource.singular}_id"
    item_path = f"{collection_path}/{{{id_param}}}"
    PartId = Annotated[str, Path(alias=id_param, description=f"Numeric ID of {resource.label}.")]
    Body = resource.body

    def find(session: Session, task, part_id: str):
        return task_parts.find_part(session, resource.model, task, part_id, resource.singular,
                                    id_param)

    @router.get(collection_path, operation_id=f"index_{resource.plural}",
                summary=f"Lists all {resource.plural.replace('_', ' ')} of a task.")
    def index(task_id: str, request: Request, session: DbSession,
              principal: Scope(resource.plural, "index")):
        task = resolve_task(session, principal, task_id)
        query = parse_list_query(request.query_params, resource.attrs)
        page = task_parts.list_parts(session, resource.model, resource.attrs, task, query)
        return collection(resource.plural, page, lambda part: resource.render(session, part))

    @router.post(collection_path, status_code=201, operation_id=f"create_{resource.singular}",
                 summary=f"Creates a new {resource.label}.")
    def create(task_id: str, body: Body, session: DbSession,
               principal: Scope(resource.plural, "create")):
        task = resolve_task(session, principal, task_id)
        part = resource.create(session, principal, task, body.model_dump(exclude_unset=True))
        return created(resource.render(session, part))

    @router.get(item_path, operation_id=f"show_{resource.singular}",
                summary=f"Displays a specific {resource.label}.")
    def show(task_id: str, part_id: PartId, session: DbSession,
             principal: Scope(resource.plural, "show")):
        task = resolve_task(session, principal, task_id)
        return resource.render(session, find(session, task, part_id))

    @router.put(item_path, operation_id=f"update_{resource.singular}",
                summary=f"Updates a specific {resource.label}.")
    def update(task_id: str, part_id: PartId, body: Body, session: DbSession,
               principal: Scope(resource.plural, "update")):
        task = resolve_task(session, principal, task_id)
        part = find(session, task, part_id)
        part = resource.update(session, principal, task, part,
                               body.model_dump(exclude_unset=True))
        return resource.render(session, part)

    @router.delete(item_path, status_code=204, operation_id=f"destroy_{resource.singular}",
                   summary=f"Destroys a specific {resource.label}.")
    def destroy(task_id: str, part_id: PartId, session: DbSession,
                principal: Scope(resource.plural, "destroy")):
        task = resolve_task(session, principal, task_id)
        task_parts.delete_part(session, find(session, task, part_id))
        return Response(status_code=204)


RESOURCES = (
    PartResource(
        "task_sources", "task_source", "task source", TaskSource,
        task_references.SOURCE_ATTRS, TaskSourceUp,
        create=lambda session, _principal, task, values:
            task_references.create_source(session, task, values),
        update=lambda session, _principal, task, part, values:
            task_references.update_source(session, task, part, values),
        render=render_source,
    ),
    PartResource(
        "task_destinations", "task_destination", "task destination", TaskDestination,
        task_references.DESTINATION_ATTRS, TaskDestinationUp,
        create=lambda session, _principal, task, values:
            task_references.create_destination(session, task, values),
        update=lambda session, _principal, task, part, values:
            task_references.update_destination(session, task, part, values),
        render=render_destination,
    ),
    PartResource(
        "task_options", "task_option", "task option", TaskOption,
        task_options.OPTION_ATTRS, TaskOptionBody,
        create=task_options.create_option,
        update=task_options.update_option,
        render=_plain("id", "type", "value"),
    ),
    PartResource(
        "task_metadata", "task_metadatum", "task metadatum", TaskMetadatum,
        task_parts.METADATUM_ATTRS, TaskMetadatumBody,
        create=lambda session, _principal, task, values:
            task_parts.create_metadatum(session, task, values),
        update=lambda session, _principal, task, part, values:
            task_parts.update_metadatum(session, task, part, values),
        render=_plain("id", "key", "value"),
    ),
    PartResource(
        "task_callbacks", "task_callback", "task callback", TaskCallback,
        task_parts.CALLBACK_ATTRS, TaskCallbackBody,
        create=lambda session, _principal, task, values:
            task_parts.create_callback(session, task, values),
        update=lambda session, _principal, _task, part, values:
            task_parts.update_callback(session, part, values),
        render=_plain("id", "type", "script"),
    ),
)

for _resource in RESOURCES:
    add_routes(_resource)
