"""The marshmallow schemas an OpenAPI document describes a data model with.

Each collection gets schemas derived from its own: what a read shows (every
field the document may show, only ``id`` always there), what ``POST`` and
``PUT`` take (no read-only or server-set field), what ``PATCH`` takes (the same,
none required), what a relation creates inside another object (the target's
create schema without the field pointing back) and what ``filter`` takes.
apispec's marshmallow plugin turns them into JSON Schema; the few fields that
exist only in the document (:class:`Link`, :class:`SchemaRef`,
:class:`Condition`) get their JSON Schema from the converter functions here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import marshmallow
from marshmallow import fields

from ..access import managed_fields, right
from ..computed import Computed
from ..model import Collection, RelationInfo
from ..query import OPERATORS, operators_of
from ..values import MAX_ID

#: Operators on every value a filter takes (ids, relations, text, numbers, dates...).
VALUE_OPERATORS = operators_of(None)
#: Operators on text only.
TEXT_OPERATORS = tuple(op for op in OPERATORS if op not in VALUE_OPERATORS)
#: What a field's property keeps as the schema of a value in a filter.
_VALUE_KEYS = ("type", "format", "items")


class Link(fields.Field):
    """A relation in the document: an id, or an object of the schema ``ref``
    (a list of them when ``many``; null too when ``nullable``)."""

    def __init__(self, ref: str, *, many: bool, nullable: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.many = many
        self.nullable = nullable


class SchemaRef(fields.Field):
    """The schema ``ref`` itself (a non-empty list of them when ``many``)."""

    def __init__(self, ref: str, *, many: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.many = many


class Condition(fields.Field):
    """A field in a filter: its value, or operators (``operators``) on it.

    :param value: the field the values are typed by (None: an id or a relation).
    """

    def __init__(self, value: fields.Field | None, operators: tuple[str, ...], **kwargs: Any):
        super().__init__(**kwargs)
        self.value = value
        self.operators = operators


def id_schema() -> dict[str, Any]:
    """The JSON Schema of an id."""
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def value_schema(converter: Any, field: fields.Field | None) -> dict[str, Any]:
    """The schema of one value of ``field`` in a filter (not null): its type
    and format as apispec converts the field (an id for None)."""
    if field is None:
        return id_schema()
    prop = converter.field2property(field)
    value = {key: prop[key] for key in _VALUE_KEYS if key in prop}
    types = value.get("type")
    if isinstance(types, list):
        types = [kind for kind in types if kind != "null"]
        value["type"] = types[0] if len(types) == 1 else types
    return value


def operator_schema(converter: Any, field: fields.Field | None, op: str) -> dict[str, Any]:
    """The schema of the operand of ``op`` on ``field`` in a JSON filter."""
    if op == "$null":
        return {"type": "boolean"}
    if op in TEXT_OPERATORS:
        return {"type": "string"}
    value = value_schema(converter, field)
    if op in ("$in", "$nin"):
        return {"type": "array", "items": value}
    if op in ("$eq", "$ne"):
        return {"anyOf": [value, {"type": "null"}]}
    return value


def link2properties(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """Converter function of :class:`Link`: ``oneOf`` an id and an object."""
    if not isinstance(field, Link):
        return {}
    one: dict[str, Any] = {
        "oneOf": [id_schema(), self.spec.components.get_ref("schema", field.ref)]
    }
    if field.many:
        return {"type": "array", "items": one}
    if field.nullable:
        one["oneOf"].append({"type": "null"})
    return one


def schemaref2properties(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """Converter function of :class:`SchemaRef`."""
    if not isinstance(field, SchemaRef):
        return {}
    ref = self.spec.components.get_ref("schema", field.ref)
    return {"type": "array", "minItems": 1, "items": ref} if field.many else dict(ref)


def condition2properties(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """Converter function of :class:`Condition`: a value (or null), or operators."""
    if not isinstance(field, Condition):
        return {}
    operators = {op: operator_schema(self, field.value, op) for op in field.operators}
    return {
        "anyOf": [
            value_schema(self, field.value),
            {"type": "null"},
            {
                "type": "object",
                "properties": operators,
                "additionalProperties": False,
                "minProperties": 1,
            },
        ]
    }


def naive2properties(self: Any, field: fields.Field, ret: dict[str, Any]) -> dict[str, Any]:
    """Converter function of a ``DateTime`` without a time zone: its values are
    ISO 8601 without an offset, which JSON Schema's ``date-time`` (RFC 3339) is not."""
    naive = isinstance(field, fields.DateTime) and not isinstance(field, fields.AwareDateTime)
    if not naive or field.format not in (None, "iso", "iso8601"):  # type: ignore[attr-defined]
        return {}
    ret.pop("format", None)  # as apispec's own field2nullable takes "$ref" out
    return {"pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"}


#: The converter functions to add to the marshmallow plugin's converter.
CONVERTER_FUNCTIONS = (
    naive2properties, link2properties, schemaref2properties, condition2properties,
)  # fmt: skip


class _Strict(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.RAISE


class _Open(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.INCLUDE


class ErrorObject(_Strict):
    """What went wrong: a stable code, a sentence, and machine-readable details."""

    code = fields.String(
        required=True, metadata={"description": "Stable UPPER_SNAKE code: match on it."}
    )
    message = fields.String(required=True, metadata={"description": "For people; may change."})
    details = fields.Dict(required=True, metadata={"description": "Machine-readable data."})


class Error(_Strict):
    """The body of every error (docs/errors.md)."""

    error = fields.Nested(ErrorObject, required=True)


#: The pointer of a JSON Patch operation (RFC 6901): ``/field/0``, ``~1`` for ``/``.
_POINTER = {"type": "string", "pattern": "^(/([^/~]|~[01])*)*$"}

#: A JSON Patch document (RFC 6902), which PATCH takes as ``application/json-patch+json``.
JSON_PATCH: dict[str, Any] = {
    "type": "array",
    "description": (
        "JSON Patch operations (RFC 6902) on the object as the caller reads it at "
        "depth 1 (relations as ids), applied in order, all or none."
    ),
    "items": {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "op": {"enum": ["add", "replace", "test"]},
                    "path": _POINTER,
                    "value": {},
                },
                "required": ["op", "path", "value"],
            },
            {
                "type": "object",
                "properties": {"op": {"const": "remove"}, "path": _POINTER},
                "required": ["op", "path"],
            },
            {
                "type": "object",
                "properties": {
                    "op": {"enum": ["move", "copy"]},
                    "from": _POINTER,
                    "path": _POINTER,
                },
                "required": ["op", "from", "path"],
            },
        ]
    },
}


class NoArgs(_Strict):
    """The arguments of an action that takes none: an empty object (or no body)."""


def camel(name: str) -> str:
    """``name`` as the start of a schema name: ``order_line`` -> ``OrderLine``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


@dataclass(frozen=True)
class Names:
    """The names of the schemas of one collection."""

    read: str
    create: str
    patch: str
    filter: str

    @classmethod
    def of(cls, collection: Collection) -> Names:
        base = camel(collection.name)
        return cls(base, f"{base}Create", f"{base}Patch", f"{base}Filter")


def nested_name(relation: RelationInfo) -> str:
    """The name of the schema of an object created inside ``relation``."""
    owner = camel(relation.collection.name)
    return f"{camel(relation.target.name)}CreateIn{owner}{camel(relation.name)}"


def _copy(field: fields.Field, **changes: Any) -> fields.Field:
    field = copy.copy(field)
    field.metadata = dict(field.metadata)
    for name, value in changes.items():
        setattr(field, name, value)
    return field


def _readable(collection: Collection, name: str) -> bool:
    """Whether some caller may read field ``name`` (a rule that is a function may allow)."""
    return right(collection, name, "can_read") is not False


def _writable(collection: Collection, name: str, field: fields.Field) -> bool:
    """Whether some caller may give field ``name`` in a write."""
    if field.dump_only or right(collection, name, "can_modify") is False:
        return False
    if name in managed_fields(collection):
        return False
    return not (isinstance(field, Computed) and field.read_only)


def read_schema(collection: Collection) -> type[marshmallow.Schema]:
    """What a read of ``collection`` shows: ``id``, and any of its readable fields
    (``fields``, views and rights choose which); relations as ids or objects."""
    declared: dict[str, Any] = {"id": fields.Integer(required=True, metadata=id_schema())}
    for name, field in collection.schema_class._declared_fields.items():
        if not _readable(collection, name):
            continue
        key = field.data_key or name
        relation = collection.relations.get(name)
        if relation is not None:
            target = Names.of(relation.target).read
            declared[name] = Link(
                target, many=relation.multi, nullable=not relation.required, data_key=key
            )
            continue
        inner = field.field if isinstance(field, Computed) else field
        # A field a write left out reads back as null; a computed one may be null.
        nullable = field.allow_none or not field.required or isinstance(field, Computed)
        declared[name] = _copy(
            inner, required=False, allow_none=nullable, data_key=key, load_only=False,
            dump_only=isinstance(field, Computed) and field.read_only,
        )  # fmt: skip
    return type(Names.of(collection).read, (_Strict,), declared)


def create_schema(
    collection: Collection, *, name: str, leave_out: str | None = None
) -> type[marshmallow.Schema]:
    """What a ``POST`` or ``PUT`` of ``collection`` takes (named ``name``), or
    an object created inside a relation: then without ``leave_out``, the field
    pointing back."""
    declared: dict[str, Any] = {}
    for field_name, field in collection.schema_class._declared_fields.items():
        if field_name == leave_out or not _writable(collection, field_name, field):
            continue
        relation = collection.relations.get(field_name)
        if relation is not None:
            declared[field_name] = Link(
                nested_name(relation),
                many=relation.multi,
                nullable=not relation.required,
                data_key=field.data_key or field_name,
                required=field.required,
            )
            continue
        if isinstance(field, Computed):
            field = _copy(
                field.field, required=False, data_key=field.data_key, allow_none=field.allow_none
            )
        declared[field_name] = _copy(field, load_only=False)
    return type(name, (_Strict,), declared)


def filter_schema(collection: Collection) -> type[marshmallow.Schema]:
    """What ``filter`` takes: each field a value or operators, ``$and``,
    ``$or`` and ``$not`` groups, and paths through relations (``jar.name``)."""
    name = Names.of(collection).filter
    declared: dict[str, Any] = {
        "and_": SchemaRef(name, many=True, data_key="$and"),
        "or_": SchemaRef(name, many=True, data_key="$or"),
        "not_": SchemaRef(name, many=False, data_key="$not"),
    }
    for key, value, operators in filterable(collection):
        declared[f"field_{key}"] = Condition(value, operators, data_key=key)
    return type(name, (_Open,), declared)


def filterable(collection: Collection) -> list[tuple[str, fields.Field | None, tuple[str, ...]]]:
    """``(key, value field, operators)`` of each field a filter may name, ``id``
    first: the value field is None for ids and relations."""
    result: list[tuple[str, fields.Field | None, tuple[str, ...]]] = [("id", None, VALUE_OPERATORS)]
    for name, field in collection.schema.fields.items():
        if not _readable(collection, name):
            continue
        key = field.data_key or name
        if name in collection.relations:
            result.append((key, None, VALUE_OPERATORS))
            continue
        computed = collection.computed.get(name)
        if computed is not None:
            if computed.sql is None:
                continue
            field = computed.field
        operators = operators_of(field)
        if operators:  # none for a field stored as JSON
            result.append((key, field, operators))
    return result


def sortable(collection: Collection) -> list[str]:
    """The sort keys of ``collection`` and of the objects its ``Ref`` fields
    link (one step: ``jar.name``), ascending; each may be descending too."""
    keys = [key for key, _, _ in filterable(collection) if key not in _lists(collection)]
    for name, relation in collection.relations.items():
        if not relation.multi and _readable(collection, name):
            owner = relation.key
            keys.extend(f"{owner}.{key}" for key in sortable_here(relation.target))
    return keys


def sortable_here(collection: Collection) -> list[str]:
    """The sort keys of ``collection``'s own fields."""
    return [key for key, _, _ in filterable(collection) if key not in _lists(collection)]


def _lists(collection: Collection) -> set[str]:
    return {relation.key for relation in collection.relations.values() if relation.multi}


def selectable(collection: Collection) -> list[str]:
    """What ``fields`` may name: the readable fields, and those of related
    objects one step away (``jar.name``)."""
    own = [
        field.data_key or name
        for name, field in collection.schema.fields.items()
        if _readable(collection, name)
    ]
    result = ["id", *own]
    for name, relation in collection.relations.items():
        if _readable(collection, name):
            target = relation.target
            result.extend(
                f"{relation.key}.{field.data_key or other}"
                for other, field in target.schema.fields.items()
                if _readable(target, other)
            )
    return result
