"""The parameters of a collection read: an HTTP query string turned into the
keyword arguments of ``get``, and the checks of its numbers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..exceptions import InvalidFilter, InvalidParameter, LimitExceeded, UnknownParameter
from ..model import RESERVED_NAMES, Collection
from ..values import MAX_ID
from ._utils import DIGITS, details, printable
from .conditions import condition
from .filters import Parsing, parse_group
from .nodes import And, Node
from .paths import Hidden, resolve_path

#: Query parameters with a meaning of their own; every other one is a filter.
RESERVED = RESERVED_NAMES

#: The values of ``count``.
COUNT_MODES = ("exact", "estimate", "none")

#: The reserved parameters but ``filter``, which :func:`_parameter` reads.
_PARAMETERS = ("depth", "limit", "offset", "sort", "fields", "count", "after", "before", "view")


def check_count(name: str, value: Any, *, maximum: int = MAX_ID, setting: str | None = None) -> int:
    """``value`` if it is an integer from 0 to ``maximum``.

    :param setting: the server setting behind ``maximum``, named in the message.
    :raises InvalidParameter: naming the parameter, for a value that is not a
        non-negative integer.
    :raises LimitExceeded: naming the parameter (and the setting, if any).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameter(
            f"Parameter {name!r} must be a non-negative integer.",
            details(parameter=name, value=value),
        )
    if value > maximum:
        where = f" ({setting}={maximum})" if setting else f" ({maximum})"
        raise LimitExceeded(
            f"Parameter {name!r} is {value}, over the server's maximum{where}.",
            {"parameter": name, "value": printable(value), "maximum": maximum, "setting": setting},
        )
    return value


def parse_args(
    collection: Collection,
    args: Iterable[tuple[str, list[str]]],
    *,
    max_depth: int | None = None,
    hidden: Hidden | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``get`` from a query string's ``(name, values)`` pairs.

    Flat filters (``?jar=1&year.$gte=2000``) and a JSON ``?filter={...}`` combine.
    ``hidden(collection, name)`` tells the fields the caller may not read: to
    them, such a field does not exist.

    :raises BadRequest: for an unknown, repeated or malformed parameter (an
        :class:`InvalidParameter`, :class:`UnknownParameter`, :class:`InvalidFilter`...).
    """
    result: dict[str, Any] = {}
    nodes: list[Node] = []
    json_filter = None
    parsing = Parsing(from_text=False, hidden=hidden)
    for name, values in args:
        if len(values) != 1:
            raise InvalidParameter(
                f"Parameter {name!r} is given {len(values)} times.", details(parameter=name)
            )
        (value,) = values
        if name == "filter":
            json_filter = _json_filter(value)
        elif name in _PARAMETERS:
            result[name] = _parameter(name, value)
        else:
            nodes.append(_flat_condition(collection, name, value, parsing))
    if json_filter is not None:
        nodes.append(parse_group(collection, json_filter, parsing, 0))
    if nodes:
        result["filter_"] = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
    if max_depth is not None and "depth" in result:
        check_count("depth", result["depth"], maximum=max_depth, setting="BACKO_MAX_DEPTH")
    return result


def _parameter(name: str, value: str) -> Any:
    """The value of the reserved parameter ``name`` (but ``filter``)."""
    if name in ("depth", "limit", "offset"):
        if not DIGITS.fullmatch(value):
            raise InvalidParameter(
                f"Parameter {name!r} must be a non-negative integer, not {value[:50]!r}.",
                details(parameter=name, value=value),
            )
        # Anything this long is over every maximum; don't parse thousands of digits.
        return check_count(name, int(value) if len(value) <= 30 else 10**30)
    if name in ("sort", "fields"):
        return [part for part in value.split(",")] if value else []
    if name == "count" and value not in COUNT_MODES:
        raise InvalidParameter(
            f"Parameter 'count' is one of {', '.join(COUNT_MODES)}.",
            details(parameter="count", value=value),
        )
    return value


def _flat_condition(collection: Collection, name: str, value: str, parsing: Parsing) -> Node:
    """The condition of the flat filter ``name=value`` (``jar=1``, ``year.$gte=2000``)."""
    text, dollar, operator = name.rpartition(".$")
    path_text = text if dollar else name
    head = path_text.split(".", 1)[0]
    field = collection.by_key.get(head)
    hidden = parsing.hidden
    if head != "id" and (field is None or hidden and hidden(collection, field)):
        raise UnknownParameter(
            f"Unknown query parameter {name!r}: not one of {', '.join(RESERVED)} "
            f"nor a field of {collection.name}.",
            details(parameter=name),
        )
    path = resolve_path(collection, path_text, hidden=hidden)
    op = "$" + operator if dollar else "$eq"
    parsing.count(path)
    return condition(collection, path, op, value, from_text=True)


def parse_json(text: str | bytes) -> Any:
    """``text`` parsed as JSON is defined (RFC 8259): ``NaN``, ``Infinity`` and
    numbers too large for a float are not JSON, and nothing could send them back.

    :raises ValueError: if ``text`` is not JSON.
    """
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:30]} is too large a number")
    return number


def _json_filter(value: str) -> Any:
    try:
        parsed = parse_json(value)
    except (ValueError, RecursionError):
        raise InvalidFilter(
            "Parameter 'filter' is not valid JSON.", details(parameter="filter")
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidFilter(
            "Parameter 'filter' must be a JSON object of field paths to values.",
            details(parameter="filter"),
        )
    return parsed
