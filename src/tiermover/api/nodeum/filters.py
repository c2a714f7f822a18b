"""Nodeum's query syntax for collections, parsed into a service-level ListQuery.

    ?status=><done|error      in list          ?name=~backup%    LIKE (% and _)
    ?priority=>=5             comparisons      ?name=!~tmp%      NOT LIKE
    ?sort_by=name:desc|id     several keys, `|` or `,` (the official Python client sends `,`)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tiermover.service.errors import ValidationFailed
from tiermover.service.listing import Attr, Condition, ListQuery

# Longest prefixes first so that ">=" is not read as ">" followed by "=...".
_PREFIXES = (
    ("!><", "not_in"), ("><", "in"), ("!~", "not_like"), ("!=", "ne"), (">=", "ge"),
    ("<=", "le"), ("~", "like"), (">", "gt"), ("<", "lt"), ("=", "eq"),
)

PAGING_PARAMS = frozenset({"limit", "offset", "sort_by"})


def parse_condition(attr: str, raw: str) -> Condition:
    for prefix, op in _PREFIXES:
        if raw.startswith(prefix):
            rest = raw[len(prefix):]
            break
    else:
        op, rest = "eq", raw
    values = rest.split("|") if op in ("in", "not_in") else [rest]
    return Condition(attr=attr, op=op, values=values)


def _non_negative_int(name: str, raw: str | None, failure: ValidationFailed) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        failure.add(name, "not_a_number", value=raw)
        return None
    if value < 0:
        failure.add(name, "greater_than_or_equal_to", value=value, count=0)
        return None
    return value


def parse_sort(raw: str, failure: ValidationFailed) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in raw.replace(",", "|").split("|"):
        part = part.strip()
        if not part:
            continue
        name, _, direction = part.partition(":")
        direction = direction.lower() or "asc"
        if direction not in ("asc", "desc"):
            failure.add("sort_by", "invalid", f"has an unknown direction '{direction}'", value=part)
            continue
        keys.append((name, direction == "desc"))
    return keys


def parse_list_query(
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    attrs: Mapping[str, Attr],
    other_params: Iterable[str] = (),
) -> ListQuery:
    """Read limit/offset/sort_by and one filter per declared attribute.

    A parameter that is neither paging, a declared filter, nor one of `other_params`
    (endpoint switches like `all`) is refused: a typo must not silently list everything.
    """
    items = params.multi_items() if hasattr(params, "multi_items") else (
        params.items() if isinstance(params, Mapping) else params
    )
    allowed_other = set(other_params)
    failure = ValidationFailed()
    query = ListQuery()
    for name, raw in items:
        if name == "limit":
            query.limit = _non_negative_int(name, raw, failure)
        elif name == "offset":
            query.offset = _non_negative_int(name, raw, failure) or 0
        elif name == "sort_by":
            query.sort.extend(parse_sort(raw, failure))
        elif name in attrs:
            query.conditions.append(parse_condition(name, raw))
        elif name not in allowed_other:
            failure.add(name, "invalid", "is not a known filter")
    failure.raise_if_any()
    return query
