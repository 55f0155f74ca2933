"""Filters: ``filter_`` parsed into a tree of :mod:`~backo_restful.query.nodes`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidFilter, UnknownOperator
from ..model import Collection
from ._utils import details
from .conditions import condition
from .nodes import And, Node, Not, Or
from .paths import Hidden, Path, resolve_path

#: How deep groups (``$and``, ``$or``, ``$not``) of one filter nest.
MAX_NESTING = 16
#: The most conditions one filter holds.
MAX_CONDITIONS = 100
#: The relations the paths of one filter may go through in all (``jar.name`` goes
#: through one): each is a join the database plans, and PostgreSQL's planning time
#: grows fast with their number.
MAX_RELATION_STEPS = 32


def parse_filter(
    collection: Collection, filter_: Any, *, from_text: bool = False, hidden: Hidden | None = None
) -> Node | None:
    """The filter tree of ``filter_`` (``{path: value}``, ``{path: {"$op": value}}``,
    ``{"$and": [...]}``, ``{"$or": [...]}``, ``{"$not": {...}}``), all ANDed.

    :param from_text: the values come from a query string (all strings).
    :param hidden: fields the caller may not read, refused as unknown.
    :raises InvalidFilter: for a malformed filter or a value of the wrong type
        (:class:`UnknownOperator` for an unknown operator).
    :raises UnknownField: for an unknown (or ``hidden``) field.
    """
    if filter_ is None:
        return None
    return parse_group(collection, filter_, Parsing(from_text, hidden), 0)


@dataclass
class Parsing:
    """The state of one filter's parsing."""

    from_text: bool
    hidden: Hidden | None
    conditions: int = 0
    steps: int = 0

    def count(self, path: Path) -> None:
        """Count one more condition, on ``path``, against the limits of a filter."""
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidFilter(f"A filter has more than {MAX_CONDITIONS} conditions.")
        self.steps += len(path.steps)
        if self.steps > MAX_RELATION_STEPS:
            raise InvalidFilter(
                f"A filter goes through more than {MAX_RELATION_STEPS} relations in all "
                "(each field of a path but the last is one)."
            )


def parse_group(collection: Collection, filter_: Any, parsing: Parsing, nesting: int) -> Node:
    """The node of the filter object ``filter_``, nested ``nesting`` groups deep."""
    if nesting > MAX_NESTING:
        raise InvalidFilter(f"Filters nest deeper than {MAX_NESTING} levels.")
    if not isinstance(filter_, Mapping):
        raise InvalidFilter(
            "A filter must be an object of field paths to values.", details(value=filter_)
        )
    nodes: list[Node] = []
    for key, value in filter_.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{key} takes a non-empty list of filters.", details(field=key))
            parts = tuple(parse_group(collection, part, parsing, nesting + 1) for part in value)
            nodes.append(And(parts) if key == "$and" else Or(parts))
        elif key == "$not":
            nodes.append(Not(parse_group(collection, value, parsing, nesting + 1)))
        elif isinstance(key, str) and key.startswith("$"):
            raise UnknownOperator(
                f"Unknown operator {key!r}: use $and, $or or $not here.", details(operator=key)
            )
        else:
            nodes.extend(_parse_entry(collection, key, value, parsing))
    if not nodes:
        raise InvalidFilter("An empty filter matches nothing in particular.")
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_entry(collection: Collection, key: Any, value: Any, parsing: Parsing) -> list[Node]:
    if not isinstance(key, str):
        raise InvalidFilter(f"Invalid field path {key!r}.", details(field=key))
    text, _, operator = key.rpartition(".$")
    if _:
        operators = {"$" + operator: value}
    elif isinstance(value, Mapping):
        if not value or not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise InvalidFilter(
                f'{key!r}: an object value must hold operators, e.g. {{"$gte": 1}}.',
                details(field=key),
            )
        text, operators = key, dict(value)
    else:
        text, operators = key, {"$eq": value}
    path = resolve_path(collection, text, hidden=parsing.hidden)
    nodes = []
    for op, operand in operators.items():
        parsing.count(path)
        nodes.append(condition(collection, path, op, operand, from_text=parsing.from_text))
    return nodes
