"""The read-only file catalog: /files and the same browsing under tasks, executions,
containers and pools; plus the files on a pool's imported media and tapes.

Every context offers the same three routes (root list, one file, a folder's children),
so they are declared once and mounted under each prefix.
"""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, Depends, Request

from tiermover.api.deps import CurrentPrincipal, DbSession, Scope
from tiermover.api.nodeum.filters import parse_list_query
from tiermover.api.nodeum.render import collection
from tiermover.api.nodeum.storage_render import file_renderer, render_import_file, render_tape
from tiermover.service import files as file_service
from tiermover.service.files import FileSet

router = APIRouter(tags=["files"])


# --- how each prefix finds its files (path parameters are read by name) ---------------------

def _everywhere(principal: CurrentPrincipal) -> FileSet:
    return file_service.everywhere(principal)


def _of_task(task_id: str, session: DbSession, principal: CurrentPrincipal) -> FileSet:
    return file_service.of_task(session, principal, task_id)


def _of_execution(task_execution_id: str, session: DbSession,
                  principal: CurrentPrincipal) -> FileSet:
    return file_service.of_execution(session, principal, task_execution_id)


def _of_task_execution(task_id: str, task_execution_id: str, session: DbSession,
                       principal: CurrentPrincipal) -> FileSet:
    return file_service.of_execution(session, principal, task_execution_id, task_id)


def _of_container(container_id: str, session: DbSession, principal: CurrentPrincipal) -> FileSet:
    return file_service.of_container(session, principal, container_id)


def _of_pool(pool_id: str, session: DbSession, principal: CurrentPrincipal) -> FileSet:
    return file_service.of_pool(session, principal, pool_id)


# (prefix, file set, whether the prefix also has /files/{file_id}/tapes)
FILE_CONTEXTS: tuple[tuple[str, Callable[..., FileSet], bool], ...] = (
    ("", _everywhere, False),
    ("/tasks/{task_id}", _of_task, True),
    ("/task_executions/{task_execution_id}", _of_execution, True),
    ("/tasks/{task_id}/task_executions/{task_execution_id}", _of_task_execution, True),
    ("/containers/{container_id}", _of_container, False),
    ("/pools/{pool_id}", _of_pool, True),
)


def _mount_file_routes(prefix: str, file_set: Callable[..., FileSet], with_tapes: bool) -> None:
    # The scope is declared before the file set, so a key lacking it gets 403 before any
    # lookup can answer 404. (A default rather than an Annotated alias: annotations are
    # strings here, and a local alias could not be resolved from them.)
    files_dependency = Depends(file_set)

    def index_files(request: Request, session: DbSession, _: Scope("files", "index"),
                    files: FileSet = files_dependency):
        query = parse_list_query(request.query_params, file_service.FILE_ATTRS)
        page = file_service.list_roots(session, files, query)
        return collection("files", page, file_renderer(session, page.rows))

    def show_file(file_id: str, session: DbSession, _: Scope("files", "show"),
                  files: FileSet = files_dependency):
        entry = file_service.get_file(session, files, file_id)
        return file_renderer(session, [entry])(entry)

    def files_children(file_parent_id: str, request: Request, session: DbSession,
                       _: Scope("files", "index"), files: FileSet = files_dependency):
        query = parse_list_query(request.query_params, file_service.FILE_ATTRS)
        page = file_service.list_children(session, files, file_parent_id, query)
        return collection("files", page, file_renderer(session, page.rows))

    def index_tapes_by_file(file_id: str, request: Request, session: DbSession,
                            _: Scope("files", "tapes"), files: FileSet = files_dependency):
        query = parse_list_query(request.query_params, file_service.TAPE_ATTRS)
        page = file_service.list_tapes_of_file(session, files, file_id, query)
        return collection("tapes", page, render_tape)

    router.add_api_route(prefix + "/files", index_files, methods=["GET"],
                         summary="Lists files on root.")
    router.add_api_route(prefix + "/files/{file_id}", show_file, methods=["GET"],
                         summary="Displays a specific file.")
    router.add_api_route(prefix + "/files/{file_parent_id}/children", files_children,
                         methods=["GET"], summary="Lists files under a specific folder.")
    if with_tapes:
        router.add_api_route(prefix + "/files/{file_id}/tapes", index_tapes_by_file,
                             methods=["GET"], summary="Displays tapes containing specific file.")


for _prefix, _file_set, _with_tapes in FILE_CONTEXTS:
    _mount_file_routes(_prefix, _file_set, _with_tapes)


# --- files on a pool's imported media (data exchange) --------------------------------------

@router.get("/pools/{pool_id}/import_files", summary="Lists files on root of tape of pools, specific for Data Exchange.")
def index_import_files_by_pool(pool_id: str, request: Request, session: DbSession,
                               _: Scope("import_files", "index")):
    query = parse_list_query(request.query_params, file_service.IMPORT_FILE_ATTRS)
    page = file_service.list_import_files(session, pool_id, query)
    return collection("import_files", page, render_import_file)


@router.get("/pools/{pool_id}/import_files/{file_id}", summary="Displays a specific file.")
def show_import_file_by_pool(pool_id: str, file_id: str, session: DbSession,
                             _: Scope("import_files", "show")):
    return render_import_file(file_service.get_import_file(session, pool_id, file_id))


@router.get("/pools/{pool_id}/import_files/{file_parent_id}/children",
            summary="Lists files under a specific folder on tape of pools, specific for Data Exchange.")
def import_files_children_by_pool(pool_id: str, file_parent_id: str, request: Request,
                                  session: DbSession, _: Scope("import_files", "index")):
    query = parse_list_query(request.query_params, file_service.IMPORT_FILE_ATTRS)
    page = file_service.list_import_files(session, pool_id, query, file_parent_id)
    return collection("import_files", page, render_import_file)


# --- files on a pool's tapes (active and offline archives) ---------------------------------

def on_tapes_renderer(session, entries: list) -> Callable:
    """A file on a pool's tapes, with the barcodes of the cartridges holding it (a page
    of files looked up at once)."""
    tapes = file_service.copies_of(session, entries)
    return lambda entry: {"id": entry.id, "name": entry.name, "type": entry.type,
                          "size": entry.size, "barcodes": tapes[entry.id]["tapes"]}


@router.get("/pools/{pool_id}/on_tapes_files", summary="Lists files on root of tape of pools, specific for Active and Offline.")
def index_on_tapes_files_by_pool(pool_id: str, request: Request, session: DbSession,
                                 _: Scope("on_tapes_files", "index")):
    query = parse_list_query(request.query_params, file_service.ON_TAPES_FILE_ATTRS)
    page = file_service.list_on_tapes_files(session, pool_id, query)
    return collection("on_tapes_files", page, on_tapes_renderer(session, page.rows))


@router.get("/pools/{pool_id}/on_tapes_files/{file_id}", summary="Displays a specific file.")
def show_on_tape_file_by_pool(pool_id: str, file_id: str, session: DbSession,
                              _: Scope("on_tapes_files", "show")):
    entry = file_service.get_on_tapes_file(session, pool_id, file_id)
    return on_tapes_renderer(session, [entry])(entry)


@router.get("/pools/{pool_id}/on_tapes_files/{file_parent_id}/children",
            summary="Lists files under a specific folder on tape of pools, specific for Active and Offline.")
def on_tapes_files_children_by_pool(pool_id: str, file_parent_id: str, request: Request,
                                    session: DbSession, _: Scope("on_tapes_files", "index")):
    query = parse_list_query(request.query_params, file_service.ON_TAPES_FILE_ATTRS)
    page = file_service.list_on_tapes_files(session, pool_id, query, file_parent_id)
    return collection("on_tapes_files", page, on_tapes_renderer(session, page.rows))
