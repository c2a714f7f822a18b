"""Turning rows into Nodeum JSON: dates, collections, and plain column copies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from fastapi.responses import JSONResponse

from tiermover.service.listing import Page


def iso(value: datetime | None) -> str | None:
    """`2025-11-05T15:41:44.753Z`: UTC with milliseconds, as the Nodeum API writes dates."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def columns(row: Any, names: Iterable[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(row, name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out


def collection(key: str, page: Page, render) -> JSONResponse:
    return JSONResponse({"count": page.count, key: [render(row) for row in page.rows]})


def created(body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=201)
