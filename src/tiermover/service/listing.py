"""The one list/filter/sort/paginate implementation behind every collection endpoint.

A resource declares its attributes (`Attr`: an SQL expression and a kind). Requests are
reduced to `ListQuery` (typed conditions, sort keys, page) by each API dialect; this module
turns that into bound-parameter SQL. Attribute names only ever select from the declared
allow-list, and values are always bound parameters, never SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Callable, Sequence

from dateutil.parser import isoparse
from sqlalchemy import Select, and_, func, not_, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tiermover.service.errors import ValidationFailed

# Unpaged lists stop here so that one request cannot pull a million rows; `count`
# still reports the total, so clients can page with limit/offset.
MAX_PAGE = 10_000

# From this offset on, a page is found by its ids first and only its own rows are read
# after: skipping half a million rows then walks an index (index-only where one covers the
# filters and the order) instead of reading half a million full rows.
DEFERRED_JOIN_OFFSET = 1_000

OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "like", "not_like")


@dataclass(frozen=True)
class Attr:
    """A filterable and sortable attribute of a resource.

    `wrap` turns a condition on a related table into one on the listed rows (usually an
    EXISTS subquery); such attributes cannot be sorted on.
    """

    expr: Any
    kind: str = "str"  # str | int | datetime | bool
    wrap: Callable[[ColumnElement], ColumnElement] | None = None

    @property
    def sortable(self) -> bool:
        return self.wrap is None


@dataclass
class Condition:
    attr: str
    op: str
    values: list[str]


@dataclass
class ListQuery:
    conditions: list[Condition] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (attr, descending)
    limit: int | None = None
    offset: int = 0


@dataclass
class Page:
    rows: list[Any]
    count: int


def _convert(kind: str, raw: str) -> Any:
    if "\x00" in raw:  # no database stores NUL in text; PostgreSQL refuses it outright
        raise ValueError(raw)
    if kind == "str":
        return raw
    if kind == "int":
        value = int(raw.strip())
        if not -(2**63) <= value < 2**63:  # what a BIGINT column can hold
            raise ValueError(raw)
        return value
    if kind == "float":
        return float(raw.strip())
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "t", "yes"):
            return True
        if lowered in ("false", "0", "f", "no"):
            return False
        raise ValueError(raw)
    if kind == "datetime":
        value = isoparse(raw.strip())
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value
    raise ValueError(kind)


def _condition_sql(attr: Attr, op: str, values: list[Any]) -> ColumnElement:
    col = attr.expr
    if op == "eq":
        return col == values[0]
    if op == "ne":
        return or_(col != values[0], col.is_(None))
    if op == "gt":
        return col > values[0]
    if op == "ge":
        return col >= values[0]
    if op == "lt":
        return col < values[0]
    if op == "le":
        return col <= values[0]
    if op == "in":
        return col.in_(values)
    if op == "not_in":
        return or_(col.not_in(values), col.is_(None))
    if op == "like":
        return col.like(values[0])
    if op == "not_like":
        return or_(not_(col.like(values[0])), col.is_(None))
    raise ValueError(op)


def build_where(attrs: dict[str, Attr], conditions: Sequence[Condition]) -> list[ColumnElement]:
    failure = ValidationFailed()
    clauses: list[ColumnElement] = []
    for cond in conditions:
        attr = attrs.get(cond.attr)
        if attr is None:
            failure.add(cond.attr, "invalid", "is not a filterable attribute")
            continue
        if cond.op in ("like", "not_like") and attr.kind != "str":
            failure.add(cond.attr, "invalid", "cannot be matched with ~ (it is not text)",
                        value=cond.values[0])
            continue
        try:
            values = [_convert(attr.kind, raw) for raw in cond.values]
        except (ValueError, OverflowError):
            failure.add(cond.attr, "invalid", f"has a value that is not a valid {attr.kind}",
                        value="|".join(cond.values))
            continue
        clause = _condition_sql(attr, cond.op, values)
        clauses.append(attr.wrap(clause) if attr.wrap else clause)
    failure.raise_if_any()
    return clauses


def build_order(attrs: dict[str, Attr], sort: Sequence[tuple[str, bool]], tiebreak) -> list:
    failure = ValidationFailed()
    order = []
    for name, descending in sort:
        attr = attrs.get(name)
        if attr is None or not attr.sortable:
            failure.add("sort_by", "invalid", f"cannot sort on '{name}'", value=name)
            continue
        order.append(attr.expr.desc() if descending else attr.expr.asc())
    failure.raise_if_any()
    # A unique tie-breaker keeps pages stable when sort keys repeat.
    order.append(tiebreak.desc() if sort and sort[-1][1] else tiebreak.asc())
    return order


def list_page(
    session: Session,
    stmt: Select,
    attrs: dict[str, Attr],
    query: ListQuery,
    tiebreak,
) -> Page:
    """Run `stmt` (a select of one entity, already scoped) with the query applied."""
    where = build_where(attrs, query.conditions)
    order = build_order(attrs, query.sort, tiebreak)
    if where:
        stmt = stmt.where(and_(*where))
    count_stmt = stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    limit = MAX_PAGE if query.limit is None else min(query.limit, MAX_PAGE)
    page = stmt.order_by(*order).limit(limit).offset(query.offset)
    if query.offset >= DEFERRED_JOIN_OFFSET:
        page_ids = page.with_only_columns(tiebreak, maintain_column_froms=True)
        page = stmt.where(tiebreak.in_(page_ids)).order_by(*order)
    rows = session.scalars(page).all()
    if len(rows) < limit and (rows or query.offset == 0):
        count = query.offset + len(rows)  # the page reaches the end: no second query needed
    else:
        count = session.scalar(count_stmt) or 0
    return Page(rows=list(rows), count=count)
