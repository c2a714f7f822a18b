"""Render every failure as the Nodeum error body: {"messages": [...], "details": {...}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tiermover.service.errors import NotFound, ServiceError, ValidationFailed

# pydantic error type -> Rails-style error kind
_PYDANTIC_KINDS = {
    "missing": "blank",
    "literal_error": "inclusion",
    "enum": "inclusion",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "string_too_short": "too_short",
    "too_short": "too_short",
    "greater_than": "greater_than",
    "greater_than_equal": "greater_than_or_equal_to",
    "less_than": "less_than",
    "less_than_equal": "less_than_or_equal_to",
    "int_parsing": "not_a_number",
    "int_from_float": "not_a_number",
    "float_parsing": "not_a_number",
}


def error_body(failure: ValidationFailed) -> dict[str, Any]:
    details = {
        attr: [{k: v for k, v in err.items() if k != "message"} for err in errors]
        for attr, errors in failure.details.items()
    }
    return {"messages": failure.messages, "details": details}


def simple_body(message: str, attr: str, kind: str) -> dict[str, Any]:
    return {"messages": [message], "details": {attr: [{"error": kind}]}}


def _from_pydantic(errors: list[dict]) -> ValidationFailed:
    failure = ValidationFailed()
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")]
        attr = ".".join(loc) or "body"
        kind = err.get("type", "invalid")
        if kind == "json_invalid" or (
            kind in ("model_attributes_type", "dict_type", "model_type") and not loc
        ):
            failure.add("body", "invalid", "must be a JSON object")
            continue
        mapped = _PYDANTIC_KINDS.get(kind, "invalid")
        extra: dict[str, Any] = {}
        ctx = err.get("ctx") or {}
        if mapped in ("too_long", "too_short"):
            extra["count"] = ctx.get("max_length", ctx.get("min_length"))
        elif mapped in ("greater_than", "greater_than_or_equal_to", "less_than",
                        "less_than_or_equal_to"):
            extra["count"] = ctx.get("gt", ctx.get("ge", ctx.get("lt", ctx.get("le"))))
        if mapped != "blank" and "input" in err and isinstance(err["input"], (str, int, float, bool)):
            extra["value"] = err["input"]
        message = None
        if mapped == "inclusion" and "expected" in ctx:
            message = f"is not included in the list ({ctx['expected']})"
        elif mapped == "invalid":
            message = f"is invalid ({err.get('msg', 'wrong type')})"
        failure.add(attr, mapped, message, **extra)
    return failure


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ValidationFailed)
    async def _validation(_request: Request, exc: ValidationFailed):
        return JSONResponse(error_body(exc), status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound):
        return JSONResponse(simple_body(str(exc), exc.attr, "not_found"), status_code=404)

    @app.exception_handler(ServiceError)
    async def _service(_request: Request, exc: ServiceError):
        kinds = {401: "unauthorized", 403: "forbidden", 409: "conflict"}
        headers = {"WWW-Authenticate": 'Basic realm="tiermover"'} if exc.status == 401 else None
        return JSONResponse(
            simple_body(str(exc), "base", kinds.get(exc.status, "invalid")),
            status_code=exc.status, headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError):
        return JSONResponse(error_body(_from_pydantic(list(exc.errors()))), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid")
        message = "Not found" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(simple_body(message, "base", kind), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError):
        # A value the database cannot hold (a NUL character, a number out of range) that
        # validation did not catch: the request is at fault, not the server.
        request.app.state.logger.warning("refused value on %s %s: %s", request.method,
                                         request.url.path, exc.orig)
        return JSONResponse(
            simple_body("A value in the request cannot be stored (invalid characters or out of range)",
                        "base", "invalid"),
            status_code=422,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError):
        # Two requests changed the same thing at once and the database kept one of them.
        request.app.state.logger.warning("conflict on %s %s: %s", request.method,
                                         request.url.path, exc.orig)
        return JSONResponse(
            simple_body("This conflicts with another change made at the same time; "
                        "reload and try again", "base", "taken"),
            status_code=422,
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError):
        if exc.connection_invalidated:
            # The database dropped the connection (restarted, failed over): the pool is
            # renewed and the next attempt gets a fresh connection.
            request.app.state.logger.warning("database connection lost on %s %s: %s",
                                             request.method, request.url.path, exc.orig)
            return JSONResponse(
                simple_body("The database connection was lost; retry the request",
                            "base", "unavailable"),
                status_code=503, headers={"Retry-After": "1"})
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Never leak a traceback; the server log has it.
        request.app.state.logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            simple_body("Internal error: the server log has the details", "base", "internal"),
            status_code=500,
        )
