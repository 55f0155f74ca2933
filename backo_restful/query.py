"""Reading parameters: filters, sort keys, paging and depth, checked and typed.

The engine turns ``filter_`` and ``sort`` into :class:`Condition` and
:class:`SortKey` objects that storage compiles to SQL; :func:`parse_args` turns an
HTTP query string into the same keyword arguments. Every unknown or malformed
parameter is a :class:`~backo_restful.exceptions.BadRequest` that names it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from marshmallow import fields as ma

from .exceptions import BadRequest
from .model import MAX_ID, Collection, check_id, storable

#: Query parameters with a meaning of their own; every other one is a filter.
RESERVED = ("depth", "sort", "limit", "offset", "filter")

_JSON_STORED = (ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw)
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Condition:
    """``field`` (an internal field name, or ``"id"``) compared with ``value`` by ``op``."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class SortKey:
    """Order by ``field`` (an internal name, or ``"id"``), descending if asked."""

    field: str
    descending: bool = False


def parse_filter(
    collection: Collection, filter_: Mapping[str, Any] | None, *, from_text: bool = False
) -> list[Condition]:
    """Typed equality conditions from ``{external field name: value}``.

    :param from_text: the values come from a query string (all strings).
    :raises BadRequest: for an unknown field, a field that cannot be filtered on,
        or a value of the wrong type.
    """
    if filter_ is None:
        return []
    if not isinstance(filter_, Mapping):
        raise BadRequest(
            "The filter must be an object of field names to values.", code="INVALID_FILTER"
        )
    return [
        Condition(*_filter_target(collection, key), _typed(collection, key, value, from_text))
        for key, value in filter_.items()
    ]


def _filter_target(collection: Collection, key: Any) -> tuple[str, str]:
    if key == "id":
        return "id", "eq"
    name = collection.by_key.get(key) if isinstance(key, str) else None
    if name is None:
        raise BadRequest(
            f"Unknown field {key!r} in the filter of {collection.name}.",
            {"field": key, "collection": collection.name},
            code="UNKNOWN_FIELD",
        )
    relation = collection.relations.get(name)
    if relation is not None and relation.multi:
        raise BadRequest(
            f"Cannot filter {collection.name} on the list {key!r}.",
            {"field": key},
            code="INVALID_FILTER",
        )
    field = collection.scalars.get(name)
    if field is not None and isinstance(field, _JSON_STORED):
        raise BadRequest(
            f"Cannot filter {collection.name} on {key!r}: it is stored as a JSON document.",
            {"field": key},
            code="INVALID_FILTER",
        )
    return name, "eq"


def _typed(collection: Collection, key: str, value: Any, from_text: bool) -> Any:
    name = "id" if key == "id" else collection.by_key[key]
    if value is None:
        if name == "id":
            raise _bad_value(key, value, "An id cannot be null.")
        return None
    if name == "id" or name in collection.relations:
        if from_text and isinstance(value, str):
            if value == "null" and name != "id":
                return None
            if _DIGITS.fullmatch(value):
                value = int(value)
        try:
            return check_id(value)
        except ValueError as exc:
            raise _bad_value(key, value, f"Not a valid id: {exc}.") from None
    field = collection.scalars[name]
    if isinstance(value, (dict, list)):
        raise _bad_value(key, value, "Expected a single value.")
    typed = value
    if not isinstance(value, (dt.date, dt.time, uuid.UUID)):
        try:
            typed = field._deserialize(value, name, None)
        except ValidationError as exc:
            raise _bad_value(key, value, " ".join(_flatten(exc.messages))) from None
    typed, problem = storable(typed)
    if problem:
        raise _bad_value(key, value, problem)
    return typed


def _bad_value(key: str, value: Any, reason: str) -> BadRequest:
    return BadRequest(
        f"Invalid filter value for {key!r}: {reason}",
        {"field": key, "value": _printable(value)},
        code="INVALID_FILTER",
    )


def _printable(value: Any) -> Any:
    """``value`` as it may appear in a JSON error body."""
    if isinstance(value, str):
        return value[:100].encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value <= MAX_ID else str(value)[:30]
    return repr(value)[:100]


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in _flatten(value)]
    return [m for value in messages for m in _flatten(value)]


def parse_sort(collection: Collection, sort: Iterable[str] | str | None) -> list[SortKey]:
    """Sort keys from field names, ``-name`` for descending.

    :raises BadRequest: for an unknown field or one that cannot be sorted on.
    """
    if sort is None:
        return []
    if isinstance(sort, str):
        sort = [part for part in sort.split(",")]
    keys: list[SortKey] = []
    seen: set[str] = set()
    for item in sort:
        if not isinstance(item, str) or not item.lstrip("-"):
            raise BadRequest(
                f"Invalid sort key {item!r}: expected a field name, '-' for descending.",
                {"sort": item if isinstance(item, str) else repr(item)},
                code="INVALID_SORT",
            )
        descending = item.startswith("-")
        key = item[1:] if descending else item
        name = "id" if key == "id" else collection.by_key.get(key)
        if name is None:
            raise BadRequest(
                f"Unknown field {key!r} in the sort of {collection.name}.",
                {"field": key, "collection": collection.name},
                code="UNKNOWN_FIELD",
            )
        relation = collection.relations.get(name)
        if relation is not None and relation.storage != "fk_here":
            raise BadRequest(
                f"Cannot sort {collection.name} on the relation {key!r}.",
                {"field": key},
                code="INVALID_SORT",
            )
        if isinstance(collection.scalars.get(name), _JSON_STORED):
            raise BadRequest(
                f"Cannot sort {collection.name} on {key!r}: it is stored as a JSON document.",
                {"field": key},
                code="INVALID_SORT",
            )
        if name in seen:
            raise BadRequest(
                f"Field {key!r} is sorted on twice.", {"field": key}, code="INVALID_SORT"
            )
        seen.add(name)
        keys.append(SortKey(name, descending))
    return keys


def check_count(name: str, value: Any, *, maximum: int = MAX_ID, setting: str | None = None) -> int:
    """``value`` if it is an integer from 0 to ``maximum``.

    :param setting: the server setting behind ``maximum``, named in the message.
    :raises BadRequest: naming the parameter (and the setting, if any).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(
            f"Parameter {name!r} must be a non-negative integer.",
            {"parameter": name, "value": value if isinstance(value, (int, str)) else repr(value)},
            code="INVALID_PARAMETER",
        )
    if value > maximum:
        where = f" ({setting}={maximum})" if setting else f" ({maximum})"
        raise BadRequest(
            f"Parameter {name!r} is {value}, over the server's maximum{where}.",
            {"parameter": name, "value": value, "maximum": maximum, "setting": setting},
            code="LIMIT_EXCEEDED",
        )
    return value


def parse_args(
    collection: Collection,
    args: Iterable[tuple[str, list[str]]],
    *,
    max_depth: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``get`` from a query string's ``(name, values)`` pairs.

    Flat filters (``?jar=1&type=biscuit``) and a JSON ``?filter={...}`` combine.
    :raises BadRequest: for an unknown, repeated or malformed parameter.
    """
    result: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for name, values in args:
        if len(values) != 1:
            raise BadRequest(
                f"Parameter {name!r} is given {len(values)} times.",
                {"parameter": name},
                code="INVALID_PARAMETER",
            )
        (value,) = values
        if name in ("depth", "limit", "offset"):
            if not _DIGITS.fullmatch(value):
                raise BadRequest(
                    f"Parameter {name!r} must be a non-negative integer, not {value[:50]!r}.",
                    {"parameter": name, "value": value[:50]},
                    code="INVALID_PARAMETER",
                )
            # Anything this long is over every maximum; don't parse thousands of digits.
            result[name] = int(value) if len(value) <= 30 else 10**30
            check_count(name, result[name])
        elif name == "sort":
            result["sort"] = value.split(",")
        elif name == "filter":
            result["filter_json"] = _json_filter(value)
        elif name == "id" or name in collection.by_key:
            flat[name] = value
        else:
            raise BadRequest(
                f"Unknown query parameter {name!r}: not one of {', '.join(RESERVED)} "
                f"nor a field of {collection.name}.",
                {"parameter": name},
                code="UNKNOWN_PARAMETER",
            )
    filter_: dict[str, Any] = {}
    for key, value in flat.items():
        _filter_target(collection, key)
        filter_[key] = _typed(collection, key, value, from_text=True)
    json_filter = result.pop("filter_json", None)
    if json_filter is not None:
        both = sorted(set(flat) & set(json_filter))
        if both:
            raise BadRequest(
                f"Field {both[0]!r} is filtered both in 'filter' and as a parameter.",
                {"field": both[0]},
                code="INVALID_FILTER",
            )
        filter_.update(json_filter)
    if filter_:
        result["filter_"] = filter_
    if max_depth is not None and "depth" in result:
        check_count("depth", result["depth"], maximum=max_depth, setting="BACKO_MAX_DEPTH")
    return result


def _json_filter(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise BadRequest(
            "Parameter 'filter' is not valid JSON.", {"parameter": "filter"}, code="INVALID_FILTER"
        ) from None
    if not isinstance(parsed, dict):
        raise BadRequest(
            "Parameter 'filter' must be a JSON object of field names to values.",
            {"parameter": "filter"},
            code="INVALID_FILTER",
        )
    return parsed
