"""One condition of a filter: ``path op value``, its value typed by the field."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from marshmallow import ValidationError
from marshmallow import fields as ma

from ..exceptions import InvalidFilter, UnknownOperator
from ..kinds import stored_as_json
from ..model import Collection
from ..values import parse_id, storable
from ._utils import details, flatten
from .nodes import Condition, Node, Not
from .paths import Path, field_of
from .patterns import check_pattern

#: Filter operators. ``$ne``, ``$nin`` and ``$null`` are built from the others.
OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$null",
    "$contains", "$icontains", "$startswith", "$re",
)  # fmt: skip
_STRING_OPERATORS = ("$contains", "$icontains", "$startswith", "$re")
_ORDERING = ("$gt", "$gte", "$lt", "$lte")

#: The most values one ``$in`` or ``$nin`` holds.
MAX_IN = 1000


def operators_of(field: ma.Field | None) -> tuple[str, ...]:
    """The operators a filter on ``field`` takes (None: an id, or a relation,
    which is filtered on by the ids it links to). A field stored as JSON takes
    none; the string operators (``$contains``...) take text fields only."""
    if field is not None and stored_as_json(field):
        return ()
    if isinstance(field, ma.String):
        return OPERATORS
    return tuple(op for op in OPERATORS if op not in _STRING_OPERATORS)


def condition(
    collection: Collection, path: Path, op: str, value: Any, *, from_text: bool = False
) -> Node:
    """The node for ``path op value``, with ``value`` typed by the field at ``path``.

    :raises UnknownOperator: for an operator that does not exist.
    :raises InvalidFilter: for a value the field cannot hold, or an operator
        that does not fit it.
    """
    if op not in OPERATORS:
        raise UnknownOperator(
            f"Unknown operator {op!r} on {path.text!r}; known: {', '.join(OPERATORS)}.",
            details(field=path.text, operator=op),
        )
    field = field_of(collection, path)
    if op == "$null":
        return _null(path, _boolean(path, value, from_text))
    if op in ("$in", "$nin"):
        return _membership(path, field, op, value, from_text)
    if op in _STRING_OPERATORS:
        return _text_match(path, field, op, value)
    typed = typed_value(path, field, value, from_text, op)
    if typed is None:
        if op in _ORDERING:
            raise InvalidFilter(
                f"{op} on {path.text!r} cannot compare with null.", details(field=path.text)
            )
        return _null(path, op == "$eq")
    if op == "$ne":
        return Not(Condition(path, "eq", typed))
    return Condition(path, op[1:], typed)


def _membership(path: Path, field: ma.Field | None, op: str, value: Any, from_text: bool) -> Node:
    """``path $in value`` or ``path $nin value``."""
    values = _list(path, op, value, from_text)
    typed = tuple(typed_value(path, field, item, from_text, op) for item in values)
    if any(item is None for item in typed):
        raise InvalidFilter(
            f"{op} on {path.text!r} cannot hold null: use $null.", details(field=path.text)
        )
    node: Node = Condition(path, "in", typed)
    return Not(node) if op == "$nin" else node


def _text_match(path: Path, field: ma.Field | None, op: str, value: Any) -> Node:
    """``path`` matched with the text ``value`` by a string operator (``$re``...)."""
    if not isinstance(field, ma.String):
        raise InvalidFilter(
            f"{op} works on text fields only, not {path.text!r}.",
            details(field=path.text, operator=op),
        )
    if not isinstance(value, str):
        raise InvalidFilter(
            f"{op} on {path.text!r} takes a string.", details(field=path.text, value=value)
        )
    text = typed_value(path, field, value, True, op)
    if op == "$re":
        check_pattern(path, text)
    return Condition(path, op[1:], text)


def _null(path: Path, wanted: bool) -> Node:
    """``path`` is (``wanted``) or is not null.

    Through a ``RefsList``, "is null" means at least one related object has a
    null there; on a single value a missing related object counts as null.
    """
    if wanted and path.multi:
        return Condition(path, "isnull")
    present = Condition(path, "notnull")
    return Not(present) if wanted else present


def _boolean(path: Path, value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidFilter(
        f"$null on {path.text!r} takes true or false.", details(field=path.text, value=value)
    )


def _list(path: Path, op: str, value: Any, from_text: bool) -> list[Any]:
    if from_text and isinstance(value, str):
        values: list[Any] = value.split(",") if value else []
    elif isinstance(value, list):
        values = value
    else:
        raise InvalidFilter(
            f"{op} on {path.text!r} takes a list.", details(field=path.text, value=value)
        )
    if len(values) > MAX_IN:
        raise InvalidFilter(
            f"{op} on {path.text!r} holds more than {MAX_IN} values.", details(field=path.text)
        )
    return values


def typed_value(path: Path, field: ma.Field | None, value: Any, from_text: bool, op: str) -> Any:
    """``value`` converted by the field's own type (an id for ids and relations).

    :param field: the field at ``path`` (None for an id).
    :param op: the operator it is given to, for the messages.
    :raises InvalidFilter: for a value the field cannot hold.
    """
    if value is None or (from_text and value == "null" and field is None):
        return None
    if isinstance(value, (dict, list)):
        raise InvalidFilter(
            f"{op} on {path.text!r} takes a single value.", details(field=path.text, value=value)
        )
    if field is None:
        return _id(path, value)
    typed = value
    if not isinstance(value, (dt.date, dt.time, uuid.UUID)):
        try:
            typed = field._deserialize(value, path.field, None)
        except ValidationError as exc:
            reason = " ".join(flatten(exc.messages))
            raise InvalidFilter(
                f"Invalid value for {path.text!r}: {reason}", details(field=path.text, value=value)
            ) from None
    typed, problem = storable(typed)
    if problem:
        raise InvalidFilter(
            f"Invalid value for {path.text!r}: {problem}", details(field=path.text, value=value)
        )
    if isinstance(field, ma.UUID):
        typed = str(typed)
    return typed


def _id(path: Path, value: Any) -> int:
    """``value`` as the id of an object."""
    # An id, like an Integer field, takes its digits as a string too (a URL's
    # ids, a JWT's "sub"), as every id parsed anywhere.
    try:
        return parse_id(value)
    except ValueError as exc:
        raise InvalidFilter(
            f"Invalid value for {path.text!r}: {exc}.", details(field=path.text, value=value)
        ) from None
