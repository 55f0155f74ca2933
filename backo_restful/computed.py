"""Computed fields: values worked out from an object's stored values, never stored.

A :class:`Computed` field of a collection schema shows ``get(obj)`` in every
output; ``set`` lets writes give it (turned into stored values), and ``sql``
lets filters and sorts use it (an expression on the collection's columns).
Nothing here knows about storage or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import marshmallow
from marshmallow import fields

from .exceptions import DeclarationError


class Computed(fields.Field):
    """A field whose value ``get`` works out from the object's stored values.

    :param field: the marshmallow field its values are dumped (and loaded) by;
        its ``metadata`` (``can_read``...) are the computed field's.
    :param get: ``get(obj) -> value``: ``obj`` maps ``id`` and every stored field
        to its stored value (a relation to its ids: an id or None, or a list).
    :param set: ``set(obj, value) -> {stored field: value}``, for writes that
        give the field (``obj``: the stored object on update, the body's values
        on create). Without it the field is read-only.
    :param sql: ``sql(columns) -> expression``: the field as SQL, from the
        collection's columns (``columns.price_cents``), for filters and sorts.
    :param data_key: the field's name in JSON, if it is not the attribute's.
    """

    def __init__(
        self,
        field: fields.Field,
        *,
        get: Callable[[Mapping[str, Any]], Any] | None = None,
        set: Callable[[Mapping[str, Any], Any], Mapping[str, Any]] | None = None,
        sql: Callable[[Any], Any] | None = None,
        data_key: str | None = None,
    ) -> None:
        # A read-only field may echo the null it read; a null given to a setter
        # is the inner field's to allow, like any other value.
        nullable = set is None or getattr(field, "allow_none", False)
        super().__init__(data_key=data_key, allow_none=nullable)
        if isinstance(field, fields.Field):
            self.metadata = field.metadata  # can_read, can_modify: the inner field's
        self.field = field
        self.get = get
        self.set = set
        self.sql = sql

    @property
    def read_only(self) -> bool:
        """Whether writes may only send back the value they read."""
        return self.set is None

    def value(self, obj: Mapping[str, Any]) -> Any:
        """The JSON value of the field for the stored object ``obj``."""
        if self.get is None:  # refused by check_computed; for type checkers
            raise TypeError("Computed without get=")
        return self.dump(self.get(obj))

    def dump(self, value: Any) -> Any:
        """``value`` as the inner field dumps it."""
        return None if value is None else self.field._serialize(value, self.name, None)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return self.dump(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.field.deserialize(value, attr, data, **kwargs)


def check_computed(collection: str, name: str, field: Computed) -> None:
    """Refuse a :class:`Computed` declaration that cannot work.

    :raises DeclarationError: naming ``collection`` and field ``name``.
    """
    where = {"collection": collection, "field": name}
    if not isinstance(field.field, fields.Field) or isinstance(field.field, Computed):
        raise DeclarationError(
            "Computed() takes a marshmallow field to dump its values, e.g. fields.Float()",
            **where,
        )
    if getattr(field.field, "target", None) is not None:  # a Ref or RefsList
        raise DeclarationError("a computed field cannot be a relation", **where)
    if not callable(field.get):
        raise DeclarationError("Computed() needs get=, a function of the stored object", **where)
    for option in ("set", "sql"):
        if getattr(field, option) is not None and not callable(getattr(field, option)):
            raise DeclarationError(f"{option}= of Computed() must be a function", **where)


def with_defaults(
    schema: marshmallow.Schema, loaded: dict[str, Any], partial: bool | tuple[str, ...]
) -> frozenset[str]:
    """Give the fields ``loaded`` lacks their ``load_default``, as a load that
    is not ``partial`` does; the required fields it lacks."""
    missing = set()
    for name, field in schema.fields.items():
        if name in loaded or isinstance(field, Computed) or field.dump_only:
            continue
        if isinstance(partial, tuple) and name in partial:
            continue
        default = field.load_default
        if default is not marshmallow.missing:
            loaded[name] = default() if callable(default) else default
        elif field.required:
            missing.add(name)
    return frozenset(missing)


def set_values(
    collection: str, name: str, field: Computed, obj: Mapping[str, Any], value: Any
) -> dict[str, Any]:
    """What ``field``'s setter makes of ``value`` sent for ``obj``.

    :raises DeclarationError: if the setter gives something else than a mapping.
    """
    if field.set is None:
        raise TypeError("read-only computed field")
    values = field.set(obj, value)
    if not isinstance(values, Mapping):
        raise DeclarationError(
            "set= of Computed() must return a dict of stored fields to values",
            collection=collection,
            field=name,
        )
    return dict(values)
