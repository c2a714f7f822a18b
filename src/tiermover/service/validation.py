"""Checks every writable resource shares, so SQLite and PostgreSQL answer alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import BigInteger, Integer, String

from tiermover.service.errors import ValidationFailed

_INTEGER_LIMITS = {Integer: 2**31 - 1, BigInteger: 2**63 - 1}


def check_limits(model, values: Mapping[str, Any], failure: ValidationFailed) -> None:
    """Refuse what the database column cannot hold, before the database does.

    PostgreSQL refuses an over-long VARCHAR, an out-of-range INTEGER or a NUL character
    where SQLite stores them (and overflows past 64 bits): both must answer the same 422.
    """
    columns = model.__table__.columns
    for name, value in values.items():
        if name not in columns or name in failure.details:
            continue
        column = columns[name]
        if value is None:
            if not column.nullable and not column.primary_key:
                failure.add(name, "blank")
        elif isinstance(value, str):
            if "\x00" in value:
                failure.add(name, "invalid", "must not contain NUL characters")
            elif isinstance(column.type, String) and column.type.length \
                    and len(value) > column.type.length:
                failure.add(name, "too_long", count=column.type.length)
        elif isinstance(value, int) and not isinstance(value, bool):
            high = _INTEGER_LIMITS.get(type(column.type))
            if high is not None and value > high:
                failure.add(name, "less_than_or_equal_to", value=value, count=high)
            elif high is not None and value < -high - 1:
                failure.add(name, "greater_than_or_equal_to", value=value, count=-high - 1)
