"""The self-description routes in the OpenAPI document: ``/_meta``,
``<url>[/<id>]/_meta`` and ``<url>[/<id>]/_check`` (see :mod:`.openapi`).

Their bodies are the marshmallow schemas below, the shapes
:meth:`~backo_restful.engine.Engine.describe` and
:meth:`~backo_restful.engine.Engine.check` answer with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import marshmallow
from marshmallow import fields, validate

from ..engine.describing import FIELD_TYPES
from ..exceptions import (
    BodyTooLarge,
    InvalidId,
    NotFound,
    UnknownField,
    UnknownParameter,
    UnsupportedMediaType,
)
from ..model import DeleteStrategy
from ..query import OPERATORS
from . import openapi_schemas as schemas
from .openapi_operations import _BODY, Errors, Paths, _headless, _options, allow_response

if TYPE_CHECKING:
    from .openapi import Builder, Route

_META_ALLOW = {"collection": "GET, HEAD, OPTIONS, POST", "item": "GET, HEAD, OPTIONS"}
_CHECK_ALLOW = "OPTIONS, POST"
_TYPES = sorted({name for _, name in FIELD_TYPES} | {"any", "relation"})
_KINDS = ["one-to-one", "one-to-many", "many-to-one", "many-to-many"]


class _Strict(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.RAISE


class Validator(marshmallow.Schema):
    """A validator as plain data: its ``type`` and its settings."""

    class Meta:
        unknown = marshmallow.INCLUDE

    type = fields.String(
        required=True,
        validate=validate.OneOf(
            [
                "length",
                "range",
                "choices",
                "none_of",
                "contains_only",
                "contains_none_of",
                "regexp",
                "equal",
                "email",
                "url",
                "custom",
            ]
        ),  # fmt: skip
    )


class ArgDescription(_Strict):
    """A field of an action's arguments."""

    type = fields.String(required=True, validate=validate.OneOf(_TYPES))
    required = fields.Boolean(required=True)
    nullable = fields.Boolean(required=True)
    default = fields.Raw(metadata={"description": "Absent when there is none."})
    validators = fields.List(fields.Nested(Validator), required=True)
    read_only = fields.Boolean(required=True)
    write_only = fields.Boolean(required=True)


class FieldRights(_Strict):
    """What the caller may do with a field."""

    read = fields.Boolean(required=True)
    modify = fields.Boolean(required=True)


class FieldDescription(ArgDescription):
    """A field of a collection, as one caller sees it."""

    computed = fields.Boolean(required=True)
    index = fields.Boolean(required=True)
    unique = fields.Boolean(required=True)
    filters = fields.List(fields.String(validate=validate.OneOf(OPERATORS)), required=True)
    sortable = fields.Boolean(required=True)
    rights = fields.Nested(FieldRights, required=True)
    target = fields.String(metadata={"description": "Of a relation: the collection it links."})
    reverse = fields.String(metadata={"description": "Of a relation: the other side's field."})
    kind = fields.String(validate=validate.OneOf(_KINDS))
    many = fields.Boolean()
    on_delete = fields.String(
        allow_none=True, validate=validate.OneOf([s.value for s in DeleteStrategy])
    )


class Rights(_Strict):
    """What the caller may do with the collection's objects (with one, on it)."""

    list = fields.Boolean(required=True)
    create = fields.Boolean(required=True)
    read = fields.Boolean(required=True)
    update = fields.Boolean(required=True)
    delete = fields.Boolean(required=True)


class ActionDescription(_Strict):
    """An action, and whether the caller may run it."""

    on = fields.String(required=True, validate=validate.OneOf(["item", "collection"]))
    args = fields.Dict(keys=fields.String(), values=fields.Nested(ArgDescription), required=True)
    allowed = fields.Boolean(required=True)


class CollectionDescription(_Strict):
    """A collection as one caller sees it: ``GET <url>/_meta``."""

    name = fields.String(required=True)
    rights = fields.Nested(Rights, required=True)
    fields_ = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(FieldDescription),
        required=True,
        data_key="fields",
    )
    views = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)
    actions = fields.Dict(
        keys=fields.String(), values=fields.Nested(ActionDescription), required=True
    )


class ModelDescription(_Strict):
    """The model as one caller sees it: ``GET /_meta``."""

    name = fields.String(required=True)
    collections = fields.Dict(
        keys=fields.String(), values=fields.Nested(CollectionDescription), required=True
    )


class CheckRequest(_Strict):
    """The body of ``_check``."""

    item = fields.Dict(required=True, metadata={"description": "The draft object."})
    path = fields.String(
        allow_none=True, metadata={"description": "Check this field only (as clients name it)."}
    )


class CheckResult(_Strict):
    """The answer of ``_check``: whether the draft would be accepted, and why not."""

    valid = fields.Boolean(required=True)
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        required=True,
        metadata={"description": "Field -> its messages (for nested objects, theirs by field)."},
    )


#: The component name of each schema above.
COMPONENTS = {
    schema.__name__: schema
    for schema in (ModelDescription, CollectionDescription, CheckRequest, CheckResult)
}


def _register(builder: Builder) -> None:
    """Add the description schemas to the document (once)."""
    for name, schema in COMPONENTS.items():
        if name not in builder.spec.components.schemas:
            builder.spec.components.schema(name, schema=schema)


def model_description(builder: Builder, rule: str) -> None:
    """``GET``, ``HEAD`` and ``OPTIONS`` on ``/_meta`` (at ``rule``): the whole model."""
    _register(builder)
    described = builder.ok(
        "The model: every collection, as the caller sees it.", builder.ref("ModelDescription")
    )
    responses = builder.responses(None, {"200": described}, {400: (UnknownParameter,)})
    headless = builder.responses(
        None, {"200": _headless(described)}, {400: (UnknownParameter,)}, body=False
    )
    options = allow_response(builder, _META_ALLOW["item"])
    operations = {
        "get": {"summary": "Describe the model, with the caller's rights", "responses": responses},
        "head": {"summary": "The headers of the model's description", "responses": headless},
        "options": {"summary": "The methods this route serves", "responses": {"200": options}},
    }
    for verb, operation in operations.items():
        operation.update(operationId=builder.unique_id(f"{verb}_model"), tags=["_meta"])
    builder.spec.path(path=builder.rule_path(rule), operations=operations)


def health_description(builder: Builder, rule: str) -> None:
    """``GET``, ``HEAD`` and ``OPTIONS`` on ``/_health`` (at ``rule``): whether
    the database answers. No token is needed (``security: []``)."""
    status = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
    up = builder.ok("The database answers.", status)
    up["headers"]["Cache-Control"] = {"description": "no-store", "schema": {"type": "string"}}
    options = allow_response(builder, _META_ALLOW["item"])
    operations = {
        "get": {
            "summary": "Whether the database answers (503 STORAGE_UNAVAILABLE if not)",
            "responses": builder.responses(None, {"200": up}, {}),
        },
        "head": {
            "summary": "The headers of the health check",
            "responses": builder.responses(None, {"200": _headless(up)}, {}, body=False),
        },
        "options": {"summary": "The methods this route serves", "responses": {"200": options}},
    }
    for verb, operation in operations.items():
        operation.update(
            operationId=builder.unique_id(f"{verb}_health"), tags=["_health"], security=[]
        )
    builder.spec.path(path=builder.rule_path(rule), operations=operations)


def meta_route(builder: Builder, route: Route) -> Paths:
    """``<url>/_meta`` (``GET``, ``HEAD``, ``POST`` a draft) or ``<url>/<id>/_meta``."""
    _register(builder)
    collection = route.collection
    item = route.kind.startswith("item")
    target = f"this {collection.name}" if item else f"the {collection.name} collection"
    described = builder.ok(
        f"{target.capitalize()}, as the caller sees it, with their rights.",
        builder.ref("CollectionDescription"),
    )
    errors: Errors = {400: (UnknownParameter, *((InvalidId,) if item else ()))}
    if item:
        errors[404] = (NotFound,)
    operations: dict[str, Any] = {
        "get": builder.operation(
            "describe_object" if item else "describe",
            route,
            f"Describe {target}, with the caller's rights",
            responses=builder.responses(collection, {"200": described}, errors),
        ),
        "head": builder.operation(
            "head_describe_object" if item else "head_describe",
            route,
            f"The headers of the description of {target}",
            responses=builder.responses(
                collection, {"200": _headless(described)}, errors, body=False
            ),
        ),
        "options": _options(builder, route, _META_ALLOW["item" if item else "collection"]),
    }
    if not item:
        draft = builder.ref(schemas.Names.of(collection).patch)
        operations["post"] = builder.operation(
            "describe_draft",
            route,
            f"Describe the {collection.name} collection with the caller's rights on a draft",
            requestBody=builder.body(draft),
            responses=builder.responses(
                collection,
                {"200": described},
                {
                    400: _BODY,
                    413: (BodyTooLarge,),
                    415: (UnsupportedMediaType,),
                },
            ),
        )
    yield builder.path(route), operations


def check_route(builder: Builder, route: Route) -> Paths:
    """``POST <url>/_check`` (a create) or ``POST <url>/<id>/_check`` (a PATCH)."""
    _register(builder)
    collection = route.collection
    item = route.kind.startswith("item")
    errors: Errors = {
        400: (*_BODY, UnknownField, *((InvalidId,) if item else ())),
        413: (BodyTooLarge,),
        415: (UnsupportedMediaType,),
    }
    if item:
        errors[404] = (NotFound,)
    checked = builder.ok(
        "Whether the draft would be accepted, and what is wrong with it by field.",
        builder.ref("CheckResult"),
    )
    what = f"a PATCH of this {collection.name}" if item else f"a new {collection.name}"
    operations = {
        "post": builder.operation(
            "check_patch" if item else "check",
            route,
            f"Check a draft of {what}, writing nothing",
            requestBody=builder.body(builder.ref("CheckRequest")),
            responses=builder.responses(collection, {"200": checked}, errors),
        ),
        "options": _options(builder, route, _CHECK_ALLOW),
    }
    yield builder.path(route), operations


#: The route kinds this module describes (added to ``ROUTE_KINDS``).
DESCRIBE_KINDS = {
    "collection_meta": meta_route,
    "item_meta": meta_route,
    "collection_check": check_route,
    "item_check": check_route,
}
