"""The errors the service layer raises; each API dialect renders them in its own shape.

Validation errors follow the Rails `errors.details` convention the Nodeum API uses:
every invalid attribute maps to a list of `{"error": kind, ...extra}`, and each has an
English message ("Name can't be blank").
"""

from __future__ import annotations

from typing import Any

MESSAGES = {
    "blank": "can't be blank",
    "frozen": "can't be updated",
    "taken": "has already been taken",
    "invalid": "is invalid",
    "inclusion": "is not included in the list",
    "not_found": "not found",
    "ambiguous": "matches several resources, use the numeric id",
    "too_short": "is too short (minimum is {count} characters)",
    "too_long": "is too long (maximum is {count} characters)",
    "not_a_number": "is not a number",
    "greater_than": "must be greater than {count}",
    "greater_than_or_equal_to": "must be greater than or equal to {count}",
    "less_than": "must be less than {count}",
    "less_than_or_equal_to": "must be less than or equal to {count}",
    "wrong_length": "is the wrong length (should be {count} items)",
    "forbidden": "is not allowed",
    "escapes_root": "escapes its storage root",
}


def humanize(attr: str) -> str:
    if attr == "base":
        return ""
    return attr.replace("_", " ").strip().capitalize()


class ServiceError(Exception):
    """Base class; `status` is the HTTP status a dialect should use."""

    status = 400


class ValidationFailed(ServiceError):
    """One or more attributes are invalid (HTTP 422)."""

    status = 422

    def __init__(self, details: dict[str, list[dict[str, Any]]] | None = None,
                 messages: list[str] | None = None):
        self.details: dict[str, list[dict[str, Any]]] = details or {}
        self._extra_messages = messages or []
        super().__init__("; ".join(self.messages))

    @classmethod
    def on(cls, attr: str, error: str, message: str | None = None, **extra: Any) -> "ValidationFailed":
        failure = cls()
        failure.add(attr, error, message, **extra)
        return failure

    def add(self, attr: str, error: str, message: str | None = None, **extra: Any) -> None:
        entry: dict[str, Any] = {"error": error, **extra}
        if message:
            entry["message"] = message
        self.details.setdefault(attr, []).append(entry)

    def __bool__(self) -> bool:
        return bool(self.details or self._extra_messages)

    @property
    def messages(self) -> list[str]:
        out = list(self._extra_messages)
        for attr, errors in self.details.items():
            for err in errors:
                text = err.get("message") or MESSAGES.get(err["error"], err["error"]).format(
                    count=err.get("count", ""), value=err.get("value", "")
                )
                out.append(f"{humanize(attr)} {text}".strip())
        return out

    def raise_if_any(self) -> None:
        if self:
            raise self


class NotFound(ServiceError):
    status = 404

    def __init__(self, resource: str, attr: str = "id", value: Any = None):
        self.resource = resource
        self.attr = attr
        self.value = value
        super().__init__(f"{humanize(resource)} not found")


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class Conflict(ServiceError):
    status = 409
