"""What each kind of marshmallow field is stored as: one table for every layer.

The model asks whether a field can be indexed, the query parser whether it is
stored as a JSON document, the storage which column it gets and how its values
are written and read back. Only marshmallow is imported here, so the model and
the query parser can use the table without the storage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import fields as ma


@dataclass(frozen=True, slots=True)
class Kind:
    """How the values of one kind of field are stored."""

    #: The field classes of this kind (their subclasses too).
    fields: tuple[type[ma.Field], ...]
    #: The column it gets: ``json``, ``uuid``, ``string``, ``boolean``,
    #: ``integer``, ``float``, ``datetime``, ``date`` or ``time``.
    column: str
    #: Stored as a JSON document (serialized on its way in).
    json: bool = False

    @property
    def indexable(self) -> bool:
        """Whether a column of this kind can be indexed (a JSON text cannot)."""
        return not self.json


#: Every storable kind, in the order a field is matched against them: a
#: subclass before its base (``UUID`` is a ``String``).
KINDS = (
    Kind((ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw), "json", json=True),
    Kind((ma.UUID,), "uuid"),
    Kind((ma.String,), "string"),
    Kind((ma.Boolean,), "boolean"),
    Kind((ma.Integer,), "integer"),
    Kind((ma.Float,), "float"),
    Kind((ma.DateTime,), "datetime"),
    Kind((ma.Date,), "date"),
    Kind((ma.Time,), "time"),
)

#: The names of the storable field classes, for error messages.
SUPPORTED = (
    "String, Email, Url, UUID, Integer, Float, Boolean, DateTime, "
    "Date, Time, Dict, List, Tuple, Nested, Enum, Raw"
)


def kind_of(field: ma.Field) -> Kind | None:
    """The kind of ``field``, or None when it cannot be stored."""
    for kind in KINDS:
        if isinstance(field, kind.fields):
            return kind
    return None


def stored_as_json(field: ma.Field) -> bool:
    """Whether ``field``'s values are stored as one JSON document."""
    kind = kind_of(field)
    return kind is not None and kind.json


def indexable(field: ma.Field) -> bool:
    """Whether ``field`` may be declared ``index`` or ``unique`` (a field that
    cannot be stored at all is refused by the storage instead)."""
    kind = kind_of(field)
    return kind is None or kind.indexable


def to_storable(field: ma.Field, value: Any) -> Any:
    """Turn a loaded (validated) value into what its column stores."""
    if value is None or not stored_as_json(field):
        return value
    return field._serialize(value, field.name, None)


#: Fields whose stored value is their JSON value (matched by exact class: a
#: subclass may serialize differently).
_PLAIN = (ma.String, ma.Integer, ma.Boolean)


def serializer(field: ma.Field) -> Callable[[Any], Any] | None:
    """A fast ``stored value -> JSON value`` function for ``field``, or None where
    the stored value is the JSON value already."""
    if stored_as_json(field):
        return None  # stored already serialized
    if type(field) in _PLAIN or (type(field) is ma.Float and not field.as_string):
        return None

    if isinstance(field, ma.AwareDateTime):
        # Stored as naive UTC: say so, so the value reads back as it was written.
        def serialize_aware(value: Any) -> Any:
            if value is None:
                return None
            return field._serialize(value.replace(tzinfo=dt.UTC), field.name, None)

        return serialize_aware

    def serialize(value: Any) -> Any:
        return None if value is None else field._serialize(value, field.name, None)

    return serialize
